"""Which mount commands decide a waiting host: only the app's own attempts for its current launch (CONTRACT:
"Only the app's own attempts for the host's current launch count"). A command counts when it was requested
during this launch, on the mount document's default version, with exactly the parameters the app would send
now; anything else run through the document (by hand, by someone allowed to run it, by an earlier launch of a
host reused from a warm pool) never lets a host in, and never throws one away.

Reproductions of the second review (issue 18: findings 1, 2 and 10, and the named-group suspicion)."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from moto.autoscaling.responses import AutoScalingResponse

from chalicelib.mount.commands import launch_comment
from simulation import hosts, moto_gaps
from simulation.landscape import lifecycle_state, mount_attribute, register_container_instance, scale_out
from tests.conftest import SCHEDULED_EVENT, deliver_outbox
from tests.support.launch import launched_in_service, mount_commands, relaunch_from_warm_pool, sweep_for, tag_group
from tests.support.permissions import deny, deny_scaling_activities

ROGUE_NFS_SERVER = "10.0.200.9"  # an address in the VPC that is no mount target of the file system


def _app_parameters(land, instance_id):
    """The parameters of the app's own mount command to the host (the one it sent first)."""
    (command,) = [c for c in mount_commands(land, instance_id) if c["Comment"].startswith("efs-automount")][:1]
    return {name: list(values) for name, values in command["Parameters"].items()}


def _send_by_hand(land, instance_id, parameters, comment="by hand", version=None):
    extra = {"DocumentVersion": version} if version else {}
    land.client("ssm").send_command(
        DocumentName="efs-automount-mount",
        InstanceIds=[instance_id],
        Parameters=parameters,
        Comment=comment,
        **extra,
    )


def _waiting_with_agent(land, bus):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # launch: agent offline, nothing sent
    hosts.boot_agents(land, [instance_id])
    return instance_id


def _sent_by_app(land, instance_id):
    return [c for c in mount_commands(land, instance_id) if c.get("Comment", "").startswith("efs-automount")]


def test_someone_elses_failing_command_does_not_abandon_the_host(land, bus, lambda_):
    # Whoever may run the mount document sends it to a waiting host with the group's file system and path
    # but other parameters than the app's: RequireTls=true on a host without efs-utils fails for good (exit 4).
    instance_id = _waiting_with_agent(land, bus)
    _send_by_hand(
        land,
        instance_id,
        {
            "FileSystemId": [land.file_system_id],
            "MountPath": [f"/mnt/efs/{land.file_system_id}"],
            "Region": [land.region],
            "RequireTls": ["true"],
        },
    )
    hosts.answer(land, "Failed", response_code=4)
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert moto_gaps.decided_result(land.account, land.region, instance_id) is None, outcomes
    assert _sent_by_app(land, instance_id), f"the app sent no mount of its own: {outcomes}"


@pytest.mark.parametrize(
    "change",
    [
        {"MountTargetIp": [ROGUE_NFS_SERVER]},  # a rogue NFS server, mounted in place of the file system
        {"DnsWaitSeconds": ["0"]},  # a parameter the app never sends
        {"RequireTls": ["true"]},
    ],
    ids=["rogue-mount-target", "extra-parameter", "other-tls"],
)
def test_someone_elses_successful_command_does_not_let_the_host_in(land, bus, lambda_, change):
    # The app's mount of the host fails transiently; before its retry, someone sends the document with the
    # app's parameters but one, named like the app's launch mount, and it succeeds.
    instance_id = _waiting_with_agent(land, bus)
    register_container_instance(land, instance_id)
    deliver_outbox(bus)  # the registration sends the app's mount
    parameters = _app_parameters(land, instance_id)
    hosts.answer(land, "Failed", response_code=75)
    deliver_outbox(bus)
    _send_by_hand(land, instance_id, {**parameters, **change}, comment=launch_comment(land.group_name))
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert lifecycle_state(land, instance_id) == "Pending:Wait", f"let in on someone else's command: {outcomes}"


def test_a_command_on_another_document_version_does_not_let_the_host_in(land, bus, lambda_):
    instance_id = _waiting_with_agent(land, bus)
    register_container_instance(land, instance_id)
    deliver_outbox(bus)
    parameters = _app_parameters(land, instance_id)
    hosts.answer(land, "Failed", response_code=75)
    deliver_outbox(bus)
    # a version of the document someone added (not the default the app deploys), with the app's parameters
    ssm = land.client("ssm")
    content = json.loads(ssm.get_document(Name="efs-automount-mount")["Content"])
    content["description"] = "edited by hand"
    ssm.update_document(Name="efs-automount-mount", Content=json.dumps(content), DocumentVersion="$LATEST")
    _send_by_hand(land, instance_id, parameters, comment=launch_comment(land.group_name), version="$LATEST")
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert lifecycle_state(land, instance_id) == "Pending:Wait", f"let in on another document version: {outcomes}"


def test_the_apps_own_command_still_lets_the_host_in(land, bus, lambda_):
    # Given the rule above, the app's own mount (sent by the registration step) is what lets the host in.
    instance_id = _waiting_with_agent(land, bus)
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert lifecycle_state(land, instance_id) == "InService"
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"


def test_a_named_launch_mount_whose_group_changed_its_mount_since_does_not_let_the_host_in(land, bus, lambda_, clock):
    # The app's launch mount names the group; the operator points the group at another path while it runs.
    instance_id = _waiting_with_agent(land, bus)
    register_container_instance(land, instance_id)
    deliver_outbox(bus)
    tag_group(land, "efs-automount:mount-path", "/data/shared")
    clock.advance(61)  # past the cache of the group's tags, well within the named-group shortcut's 120 s
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert lifecycle_state(land, instance_id) == "Pending:Wait", f"let in on the old path: {outcomes}"
    paths = [c["Parameters"]["MountPath"] for c in _sent_by_app(land, instance_id)]
    assert ["/data/shared"] in paths, f"no mount of the group's new path was sent: {outcomes}"


def test_a_named_launch_mount_marks_no_host_before_the_group_it_names_lets_it_in(land, bus, lambda_):
    # A second group with our hook mounts the same file system without an access point; the host waits in the
    # first group, which asks for an access point. Someone sends the second group's exact mount, named after it.
    first = "fsap-0123456789abcdef0"
    tag_group(land, "efs-automount:access-point-id", first)
    autoscaling = land.client("autoscaling")
    template = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"][
        0
    ]["LaunchTemplate"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="other-hosts",
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "$Latest"},
        MinSize=0,
        MaxSize=1,
        DesiredCapacity=0,
        VPCZoneIdentifier=",".join(land.subnet_ids),
        Tags=[
            {
                "Key": "efs-automount:file-system-id",
                "Value": land.file_system_id,
                "PropagateAtLaunch": False,
                "ResourceId": "other-hosts",
                "ResourceType": "auto-scaling-group",
            }
        ],
    )
    autoscaling.put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName="other-hosts",
        LifecycleTransition=moto_gaps.LAUNCHING,
        HeartbeatTimeout=900,
        DefaultResult="ABANDON",
    )
    instance_id = _waiting_with_agent(land, bus)
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    own = _app_parameters(land, instance_id)
    assert own["AccessPointId"] == [first]
    hosts.answer(land, "Failed", response_code=75)
    deliver_outbox(bus)
    _send_by_hand(
        land,
        instance_id,
        {**own, "AccessPointId": [""], "RequireTls": ["false"]},
        comment=launch_comment("other-hosts"),
    )
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert lifecycle_state(land, instance_id) == "Pending:Wait", outcomes
    assert mount_attribute(land, container_instance) is None, (
        f"the host was marked mounted on a command naming a group it does not wait in: {outcomes}"
    )


def test_a_late_status_event_of_a_previous_launch_does_not_let_a_relaunched_host_in(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    (status_event,) = [e for e in moto_gaps.WORLD.drain() if "Command" in e["detail-type"]]
    bus.deliver(status_event)
    assert lifecycle_state(land, instance_id) == "InService"

    # An hour later the host goes back to the warm pool and out again; its launch event is late, and the first
    # thing delivered is the previous launch's status event once more (EventBridge delivers at least once).
    clock.advance(3600)
    relaunch_from_warm_pool(land, instance_id)
    launch_events = moto_gaps.WORLD.drain()
    outcomes = bus.deliver(status_event)

    assert lifecycle_state(land, instance_id) == "Pending:Wait", f"let in on the previous launch's mount: {outcomes}"
    for event in launch_events:
        bus.deliver(event)
    assert len(mount_commands(land, instance_id)) == 2, "this launch gets its own mount"


def test_an_unmeasured_wait_never_starts_at_a_previous_launchs_command(land, bus, lambda_, clock, monkeypatch):
    # A member role without autoscaling:DescribeScalingActivities: the app cannot read when this launch began.
    refused = deny_scaling_activities(monkeypatch)
    instance_id = launched_in_service(land, bus)
    before = len(mount_commands(land, instance_id))

    # The group's mount path changes; 40 minutes later the host goes back to the warm pool and out again.
    tag_group(land, "efs-automount:mount-path", "/data/shared")
    clock.advance(40 * 60)
    relaunch_from_warm_pool(land, instance_id)
    outcomes = [o for _, o in deliver_outbox(bus)]
    lambda_.invoke("sweeper", SCHEDULED_EVENT)

    decided = moto_gaps.decided_result(land.account, land.region, instance_id)
    assert decided is None, f"decided {decided} seconds into this launch: {outcomes}"
    assert len(mount_commands(land, instance_id)) > before, f"no mount attempt for this launch: {outcomes}"
    assert refused, "the wait was measured after all: DescribeScalingActivities was never refused"


def test_an_unmeasured_wait_seen_again_after_a_gap_is_measured_afresh(land, bus, lambda_, clock, monkeypatch):
    # The same, but this container never saw the host leave its first wait (another decided it): a sight of the
    # host waiting long after the last one may be a new launch, so the measure starts again.
    refused = deny_scaling_activities(monkeypatch)
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)
    clock.advance(61)
    lambda_.invoke("sweeper", SCHEDULED_EVENT)  # the sweeper sees it waiting (agent offline)
    # decided elsewhere (its agent came online and another container let it in), unseen by this container
    moto_gaps.complete_lifecycle_action  # noqa: B018 - the simulation's completion, as AWS would apply it
    land.client("autoscaling").complete_lifecycle_action(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        InstanceId=instance_id,
        LifecycleActionResult="CONTINUE",
    )
    clock.advance(40 * 60)
    relaunch_from_warm_pool(land, instance_id)
    moto_gaps.WORLD.drain()  # its launch event lost
    hosts.boot_agents(land, [instance_id])
    clock.advance(61)
    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    decided = moto_gaps.decided_result(land.account, land.region, instance_id)
    assert decided is None, f"decided {decided} on a wait measured from the previous launch: {report}"
    assert refused, "the wait was measured after all: DescribeScalingActivities was never refused"


def test_an_unexpected_validation_error_on_completion_is_not_taken_for_already_decided(
    land, bus, lambda_, clock, monkeypatch
):
    # AWS says "No active Lifecycle Action found with instance ID i-…" for an action already decided (seen in
    # public logs; AWS documents no wording). Any other ValidationError is not a decision: the step fails, and
    # the next step (Lambda's retry, the sweeper) decides the host.
    instance_id = _waiting_with_agent(land, bus)
    register_container_instance(land, instance_id)
    deliver_outbox(bus)
    original = AutoScalingResponse.complete_lifecycle_action
    refusals = []

    def refuse_once(self):
        if not refusals:
            refusals.append(1)
            raise moto_gaps.AsgValidationError("Unable to complete the lifecycle action at this time")
        return original(self)

    monkeypatch.setattr(AutoScalingResponse, "complete_lifecycle_action", refuse_once)
    hosts.answer(land, "Success")
    with pytest.raises(Exception, match="Unable to complete"):
        deliver_outbox(bus)
    assert refusals == [1], "CompleteLifecycleAction was never refused"
    assert lifecycle_state(land, instance_id) == "Pending:Wait"

    clock.advance(61)  # the sweeper's next run
    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE", report


def test_a_hung_command_is_cancelled_when_the_host_is_decided(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)
    sweep_for(lambda_, clock, 1680)  # its agent comes online late, 28 minutes in
    hosts.boot_agents(land, [instance_id])
    sweep_for(lambda_, clock, 60)  # the sweeper sends the mount; the host then hangs
    (command,) = mount_commands(land, instance_id)
    assert command["Status"] == "InProgress"

    sweep_for(lambda_, clock, 300)  # past MAX_WAIT_SECONDS: the host is decided

    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON"
    (command,) = mount_commands(land, instance_id)
    assert command["Status"] in ("Cancelled", "Cancelling"), "the hung mount may still mount a decided host"


def test_completion_errors_other_than_validation_propagate(land, bus, lambda_, monkeypatch):
    instance_id = _waiting_with_agent(land, bus)
    register_container_instance(land, instance_id)
    deliver_outbox(bus)
    refused = deny(monkeypatch, AutoScalingResponse, "complete_lifecycle_action", "autoscaling:CompleteLifecycleAction")
    hosts.answer(land, "Success")
    with pytest.raises(ClientError, match="AccessDenied"):
        deliver_outbox(bus)
    assert refused, "CompleteLifecycleAction was never refused"

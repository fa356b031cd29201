"""The failure matrix: whatever AWS and Lambda do, every host ends with the right decision, once,
and no lifecycle action is left to time out into the hook's default."""

from __future__ import annotations

import copy
import datetime
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.ssm import models as ssm_models

from chalicelib import entrypoints
from chalicelib.launch import registration as host_record
from chalicelib.launch import sweeper
from chalicelib.plumbing.accounts import AssumeRoleFailed
from simulation import hosts, moto_gaps
from simulation.eventbus import EventBus
from simulation.landscape import (
    AMI_ID,
    Landscape,
    build_landscape,
    create_member_role,
    lifecycle_state,
    mount_attribute,
    register_container_instance,
    scale_out,
    session_in_account,
)
from simulation.queues import sqs_event, take_messages
from tests.conftest import OWN_ACCOUNT, SCHEDULED_EVENT, deliver_outbox, load_event, make_lambda, metric_names
from tests.support.launch import (
    launched_in_service,
    mount_commands,
    relaunch_from_warm_pool,
    retry_message,
    sweep_for,
    tag_group,
)
from tests.support.permissions import deny_scaling_activities

MEMBER = "210987654321"


def assert_decided(land: Landscape, expected: dict[str, str]) -> None:
    """Each host decided as expected, by the app: none left waiting, none decided by the hook's timeout."""
    assert moto_gaps.WORLD.timed_out == []
    for instance_id, result in expected.items():
        assert moto_gaps.decided_result(land.account, land.region, instance_id) == result, instance_id
        assert moto_gaps.pending_action(land.account, land.region, instance_id) is None, instance_id


def test_ecs_registers_before_the_ssm_agent_looks_densely_then_mounts_once(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    assert deliver_outbox(queued.bus)[0][1]["outcome"] == "waiting: SSM agent not online yet"
    register_container_instance(land, instance_id)
    assert deliver_outbox(queued.bus)[0][1]["outcome"] == "waiting: agent, retry in 2s"

    delays = []
    queued.lambda_.calls.clear()
    for _ in range(3):  # K = 3 more looks while the SSM agent is still not online
        delays += queued.deliver_retries(clock)
    futile = set(queued.lambda_.operations())
    hosts.boot_agents(land, [instance_id])
    delays += queued.deliver_retries(clock)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert delays == [2, 2, 2, 3]
    # a look while the agent is offline: one agent check and the next message, nothing else
    assert futile == {"ssm:DescribeInstanceInformation", "sqs:SendMessage"}
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_waiting_host_is_heartbeated_and_given_up_before_the_global_timeout(land, queued, clock):
    (instance_id,) = scale_out(land, 1)  # its agents never come online: no registration event either
    deliver_outbox(queued.bus)

    # The hook's heartbeat timeout is 900 s: a heartbeat is due every 450 s of waiting. The sweeper runs
    # every minute and drives a host whose heartbeat or budget falls due within its next runs.
    for _ in range(60):
        if moto_gaps.pending_action(land.account, land.region, instance_id) is None:
            break
        clock.advance(60)
        moto_gaps.expire_actions()
        queued.lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON"
    assert clock.offset >= 1800  # MAX_WAIT_SECONDS
    assert mount_commands(land, instance_id) == []
    assert moto_gaps.WORLD.decided  # decided by us, not by a timeout


def test_heartbeats_are_recorded_while_waiting(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)
    action = moto_gaps.pending_action(land.account, land.region, instance_id)

    # Its agent is not online: the sweeper drives it once its hook's 900 s heartbeat timeout comes within
    # three runs, and heartbeats it then
    for _ in range(13):
        clock.advance(60)
        moto_gaps.expire_actions()
        queued.lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert action.heartbeats == 1
    assert moto_gaps.WORLD.timed_out == []
    assert "autoscaling:RecordLifecycleActionHeartbeat" in queued.lambda_.operations()


def test_thirty_percent_of_aws_calls_throttled(land, bus, throttled):
    instance_ids = scale_out(land, 3)
    hosts.boot_agents(land, instance_ids)
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert throttled.throttled > 5
    assert all(len(mount_commands(land, i)) == 1 for i in instance_ids)
    assert_decided(land, dict.fromkeys(instance_ids, "CONTINUE"))


def test_crash_after_send_command_neither_mounts_twice_nor_decides_twice(land, lambda_, monkeypatch):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()

    # Lambda dies right after SendCommand returned, before anything else happened
    from chalicelib.launch import flow as lifecycle

    crashed = []

    def crash(message, **keys):
        if message == "mount command sent":
            crashed.append(message)
            raise RuntimeError("Lambda crashed")

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle.logger, "info", crash)
        with pytest.raises(RuntimeError):
            lambda_.invoke("on_launch", launch)
    assert crashed == ["mount command sent"]

    # Lambda's retry delivers the launch event again
    assert lambda_.invoke("on_launch", launch) == {"outcome": "waiting: mount command running"}
    hosts.answer(land, "Success")
    (status,) = moto_gaps.WORLD.drain()
    assert lambda_.invoke("on_command_status", status) == {"outcome": "completed CONTINUE"}

    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_lost_status_event_is_picked_up_by_the_sweeper(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success", emit=False)
    clock.advance(120)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["hosts"] == {instance_id: "completed CONTINUE"}
    assert_decided(land, {instance_id: "CONTINUE"})


def test_status_event_delivered_three_times_decides_once(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    (status,) = moto_gaps.WORLD.drain()

    outcomes = [bus.deliver(status)[0][1]["outcome"] for _ in range(3)]

    assert outcomes == ["completed CONTINUE", "already decided", "already decided"]
    assert_decided(land, {instance_id: "CONTINUE"})


def test_events_out_of_order_still_decide_once(land, bus, lambda_):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()
    # The status of a command arrives before the launch event that would have sent it: nothing to confirm
    early = {
        **launch,
        "source": "aws.ssm",
        "detail-type": "EC2 Command Invocation Status-change Notification",
        "detail": {
            "command-id": "11111111-2222-4333-8444-555555555555",
            "document-name": "efs-automount-mount",
            "instance-id": instance_id,
            "status": "Success",
        },
    }
    assert lambda_.invoke("on_command_status", early) == {"outcome": "ignored: command not found"}
    lambda_.invoke("on_launch", launch)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    # A late, repeated launch event after the decision changes nothing
    assert lambda_.invoke("on_launch", launch) == {"outcome": "done: host is InService"}
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_host_terminated_mid_flight_ends_quietly(land, queued, clock, app_logs):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)  # waiting for its agents
    register_container_instance(land, instance_id)
    deliver_outbox(queued.bus)  # its ECS agent registered first: a look is queued for its SSM agent
    land.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=instance_id, ShouldDecrementDesiredCapacity=True
    )
    hosts.boot_agents(land, [instance_id])

    queued.deliver_retries(clock)

    assert take_messages(land, queued.url) == []
    assert not app_logs("ERROR")
    assert mount_commands(land, instance_id) == []
    assert any(line["message"] == "host is no longer in its group; its flow ends here" for line in app_logs())


def test_assume_role_denied_is_an_error_and_decides_nothing(tmp_path, app_logs, capsys, clock):
    member = build_landscape(session_in_account(MEMBER))
    create_member_role(member.session, OWN_ACCOUNT, external_id="right")
    own = build_landscape(boto3.Session(region_name="us-east-1"), group_name="own-hosts")
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER, EXTERNAL_ID="wrong")
    (member_host,) = scale_out(member, 1)
    (own_host,) = scale_out(own, 1)
    hosts.boot_agents(own, [own_host])
    events = moto_gaps.WORLD.drain()
    member_launch = next(e for e in events if e["account"] == MEMBER)

    with pytest.raises(AssumeRoleFailed):
        lambda_.invoke("on_launch", member_launch)
    clock.advance(120)
    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert lifecycle_state(member, member_host) == "Pending:Wait"
    assert moto_gaps.decided_result(MEMBER, "us-east-1", member_host) is None
    assert report["hosts"][own_host].startswith("mount command sent")
    assert any(f"arn:aws:iam::{MEMBER}:role/efs-automount-member" in e for e in report["errors"])
    assert "AssumeRoleFailures" in metric_names(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("status", "code", "attempts", "result"),
    [
        ("Failed", 75, 3, "ABANDON"),  # transient: tried MOUNT_ATTEMPTS times, then the failure result
        ("TimedOut", -1, 3, "ABANDON"),  # SSM timed out: transient
        ("Cancelled", -1, 3, "ABANDON"),
        ("Failed", 3, 1, "ABANDON"),  # permanent: decided at once
        ("Failed", 2, 1, "ABANDON"),
    ],
)
def test_failed_commands_retry_when_transient_and_decide_at_once_when_permanent(
    land, queued, clock, status, code, attempts, result
):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)

    for _ in range(10):
        if moto_gaps.pending_action(land.account, land.region, instance_id) is None:
            break
        hosts.answer(land, status, response_code=code)
        deliver_outbox(queued.bus)
        queued.deliver_retries(clock)

    assert len(mount_commands(land, instance_id)) == attempts
    assert_decided(land, {instance_id: result})


def test_transient_failure_then_success_lets_the_host_in(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)

    hosts.answer(land, "Failed", response_code=75)
    assert deliver_outbox(queued.bus)[0][1]["outcome"].startswith("waiting: mount retry, retry in")
    assert queued.deliver_retries(clock)  # the second attempt is sent
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert len(mount_commands(land, instance_id)) == 2
    assert_decided(land, {instance_id: "CONTINUE"})


def test_without_a_queue_the_sweeper_carries_the_retries(land, bus, lambda_, clock, app_logs):
    (instance_id,) = scale_out(land, 1)
    register_container_instance(land, instance_id)
    deliver_outbox(bus)
    assert deliver_outbox(bus) == []
    hosts.boot_agents(land, [instance_id])
    clock.advance(61)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert report["hosts"][instance_id].startswith("mount command sent")
    assert_decided(land, {instance_id: "CONTINUE"})
    (warning,) = [w for w in app_logs("WARNING") if "RETRY_QUEUE_URL" in w["message"]]
    assert "sweeper" in warning["message"]


def test_sweeper_leaves_hosts_launched_moments_ago_to_their_event(land, bus, lambda_):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["hosts"] == {instance_id: "skipped: launched moments ago"}
    assert mount_commands(land, instance_id) == []


def test_sweeper_drives_at_most_its_budget_per_run(tmp_path, land, clock):
    lambda_ = make_lambda(tmp_path, SWEEP_MAX_HOSTS="2")
    instance_ids = scale_out(land, 3)
    clock.advance(120)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["truncated"] is True
    assert len(report["hosts"]) == 2
    assert set(report["hosts"]) < set(instance_ids)


def test_sweeper_leaves_groups_without_our_hook_alone(lambda_, clock):
    other = build_landscape(boto3.Session(region_name="us-east-1"), hook_name="someone-elses-hook")
    (instance_id,) = scale_out(other, 1)
    hosts.boot_agents(other, [instance_id])
    clock.advance(120)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["hosts"] == {}
    assert lifecycle_state(other, instance_id) == "Pending:Wait"
    assert mount_commands(other, instance_id) == []


# --- Decisions rest on what AWS says now (issue 10) -------------------------------------------


def at(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_replayed_launch_event_a_year_old_mounts_the_host(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()
    launch["time"] = at(clock() - 365 * 86400)  # replayed from an EventBridge archive

    outcome = lambda_.invoke("on_launch", launch)["outcome"]
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert outcome.startswith("mount command sent")
    assert_decided(land, {instance_id: "CONTINUE"})


def test_launch_event_from_a_skewed_clock_is_ignored_and_the_budget_still_holds(land, queued, clock, app_logs):
    (instance_id,) = scale_out(land, 1)  # its agent never comes online
    (launch,) = moto_gaps.WORLD.drain()
    launch["time"] = at(clock() + 86400)
    queued.lambda_.invoke("on_launch", launch)

    for _ in range(60):
        if moto_gaps.pending_action(land.account, land.region, instance_id) is None:
            break
        clock.advance(60)
        queued.lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert_decided(land, {instance_id: "ABANDON"})
    assert 1800 <= clock.offset < 1800 + 120  # MAX_WAIT_SECONDS from the launch Auto Scaling reports
    assert any("implausible" in line["message"] for line in app_logs("WARNING"))


def test_warm_pool_host_started_two_days_ago_retries_a_transient_failure(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    moto_gaps.leave_warm_pool(land.account, land.region, instance_id, warmed_at=clock() - 2 * 86400)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)

    hosts.answer(land, "Failed", response_code=75)
    deliver_outbox(queued.bus)
    queued.deliver_retries(clock)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert len(mount_commands(land, instance_id)) == 2
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_retry_message_started_at_zero_decides_nothing(land, queued, clock):
    (instance_id,) = scale_out(land, 1)  # agent not online yet: the host waits
    deliver_outbox(queued.bus)
    take_messages(land, queued.url)  # only the forged message is left to move it

    outcome = queued.lambda_.invoke("on_retry", retry_message(land, instance_id))
    hosts.boot_agents(land, [instance_id])
    queued.deliver_retries(clock)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert outcome == {"batchItemFailures": []}
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_retry_message_naming_another_group_goes_by_the_group_aws_reports(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)
    take_messages(land, queued.url)
    hosts.boot_agents(land, [instance_id])

    queued.lambda_.invoke("on_retry", retry_message(land, instance_id, group_name="another-group"))
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_retry_message_for_a_host_of_a_group_without_our_hook_touches_nothing(land, queued, clock):
    other = build_landscape(
        land.session,
        hook_name="someone-elses-hook",
        group_name="other-hosts",
        group_tags={"efs-automount:file-system-id": land.file_system_id},
        with_file_system=False,
        with_document=False,
    )
    (instance_id,) = scale_out(other, 1)
    hosts.boot_agents(other, [instance_id])
    moto_gaps.WORLD.drain()

    # named with our group's name: the host's own group (per AWS) is the one that counts
    queued.lambda_.invoke("on_retry", retry_message(land, instance_id))

    action = moto_gaps.pending_action(other.account, other.region, instance_id)
    assert lifecycle_state(other, instance_id) == "Pending:Wait"
    assert action is not None and action.heartbeats == 0
    assert mount_commands(other, instance_id) == []
    assert moto_gaps.WORLD.completions == []


def test_forged_retry_message_for_a_host_not_waiting_changes_nothing(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    queued.lambda_.invoke("on_retry", retry_message(land, instance_id))

    assert lifecycle_state(land, instance_id) == "InService"
    assert moto_gaps.WORLD.completions == [(land.account, land.region, instance_id, "CONTINUE")]


def test_lost_registration_event_still_gets_the_host_its_attribute(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    container_instance = register_container_instance(land, instance_id)
    lost = moto_gaps.WORLD.drain()  # the ECS event never reaches the app
    assert [e["detail-type"] for e in lost] == ["ECS Container Instance State Change"]

    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"
    assert_decided(land, {instance_id: "CONTINUE"})


def test_sixty_stuck_hosts_do_not_starve_a_healthy_one(tmp_path, land, clock):
    lambda_ = make_lambda(tmp_path, SWEEP_MAX_HOSTS="50")
    from app import app

    bus = EventBus(app, lambda_.invoke)
    instance_ids = scale_out(land, 61)
    healthy = instance_ids[-1]  # last in any order by instance id
    deliver_outbox(bus)  # no agent online: every host waits for the sweeper
    hosts.boot_agents(land, [healthy])

    for _ in range(40):  # the sweeper runs every minute
        if not moto_gaps.WORLD.actions:
            break
        clock.advance(60)
        moto_gaps.expire_actions()
        lambda_.invoke("sweeper", SCHEDULED_EVENT)
        hosts.answer(land, "Success")
        deliver_outbox(bus)

    assert_decided(land, {healthy: "CONTINUE", **dict.fromkeys(instance_ids[:-1], "ABANDON")})


def test_a_host_held_by_another_hook_costs_nothing_after_the_first_look(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    moto_gaps.hold_by_another_hook(land.account, land.region, instance_id)
    clock.advance(120)
    entrypoints.lifecycle_flow.cache_clear()  # the sweeper runs in a container of its own

    first = lambda_.invoke("sweeper", SCHEDULED_EVENT)
    lambda_.calls.clear()
    second = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert first["hosts"] == {instance_id: "already decided"}
    assert instance_id not in second["hosts"]
    assert "ssm:ListCommands" not in lambda_.operations()
    assert "autoscaling:DescribeAutoScalingInstances" not in lambda_.operations()


# --- Only AWS's facts change where tasks run or what enters service (issue 10 follow-up) ------


def test_forged_warm_pool_launch_event_does_not_let_an_unmounted_host_in(land, bus, lambda_):
    (instance_id,) = scale_out(land, 1)  # launching into the group itself: AWS reports Pending:Wait
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()
    launch["detail"]["Destination"] = "WarmPool"  # a direct invoke, or a malformed event

    outcome = lambda_.invoke("on_launch", launch)["outcome"]
    state_before_mount = lifecycle_state(land, instance_id)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert state_before_mount == "Pending:Wait"
    assert outcome.startswith("mount command sent")
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_mounted_tag_sets_no_attribute_until_the_mount_is_real(land, bus, lambda_, clock, app_logs):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # its agent is not online: nothing is mounted yet
    tag = f"efs-automount:mounted:{land.file_system_id}"
    # Anyone with ec2:CreateTags in the account can write the app's tag
    land.client("ec2").create_tags(Resources=[instance_id], Tags=[{"Key": tag, "Value": "/mnt/efs/x"}])
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    attribute_on_forged_tag = mount_attribute(land, container_instance)

    hosts.boot_agents(land, [instance_id])
    clock.advance(120)
    lambda_.invoke("sweeper", SCHEDULED_EVENT)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert attribute_on_forged_tag is None  # the tag is not even read: SSM's record is the proof
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_registration_event_cannot_mark_another_hosts_container_instance(land, bus, lambda_):
    mounted, other = scale_out(land, 2)
    hosts.boot_agents(land, [mounted])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    other_container_instance = register_container_instance(land, other)
    (registration,) = moto_gaps.WORLD.drain()
    # A direct invoke pairs the mounted host with the other host's container instance
    registration["detail"]["ec2InstanceId"] = mounted

    lambda_.invoke("on_container_instance", registration)

    assert mount_attribute(land, other_container_instance) is None
    assert lifecycle_state(land, other) == "Pending:Wait"


def test_forged_container_instance_tag_cannot_mark_another_host(land, bus):
    target, other = scale_out(land, 2)
    hosts.boot_agents(land, [target])
    deliver_outbox(bus)  # the target's mount command is sent; the other waits for its agent
    other_container_instance = register_container_instance(land, other)
    deliver_outbox(bus)
    target_container_instance = register_container_instance(land, target)
    moto_gaps.WORLD.drain()  # the target's registration event is lost
    # Anyone with ec2:CreateTags points the target's record at the other host's container instance
    land.client("ec2").create_tags(
        Resources=[target],
        Tags=[
            {"Key": "efs-automount:ecs-cluster", "Value": land.cluster_arn},
            {"Key": "efs-automount:container-instance", "Value": other_container_instance},
        ],
    )

    hosts.answer(land, "Success", instance_ids=[target])
    deliver_outbox(bus)

    assert mount_attribute(land, other_container_instance) is None
    assert mount_attribute(land, target_container_instance) == f"/mnt/efs/{land.file_system_id}"
    assert_decided(land, {target: "CONTINUE"})


# --- The second adversarial review of issue 10 (findings 1-4, 7-10) ---


# Adversarial: two steps for one waiting host run at the same time (a retry message and the sweeper,
# or any principal allowed to invoke on_retry directly). Both list the host's commands before either
# sends, so both send: duplicate mount commands, and transient attempts burnt at once.


def forged(land, instance_id, attempt=1):
    body = {
        "account": land.account,
        "region": land.region,
        "group_name": land.group_name,
        "instance_id": instance_id,
        "attempt": attempt,
    }
    return sqs_event([{"messageId": f"m{attempt}", "receiptHandle": "r", "body": json.dumps(body)}])


def interleave(monkeypatch, second_step, times=1):
    """Run `second_step` inside the first step, after it listed the host's commands and before it looks again
    for a command sent meanwhile (the last read before it sends), `times` times. Returns the list of the
    injections made, for the test to assert that they happened."""
    from chalicelib.launch.facts import HostFacts

    original = HostFacts.sent_meanwhile
    ran = []

    def sent_meanwhile(self):
        if len(ran) < times:
            ran.append(True)
            second_step(len(ran))
        return original(self)

    monkeypatch.setattr(HostFacts, "sent_meanwhile", sent_meanwhile)
    return ran


def test_two_overlapping_steps_send_one_mount_command(land, queued, clock, monkeypatch):  # noqa: F811
    (instance_id,) = scale_out_waiting(land, queued)
    hosts.boot_agents(land, [instance_id])
    clock.advance(70)
    # the queued retry and another step (the sweeper's, or a direct invoke of on_retry) overlap
    ran = interleave(monkeypatch, lambda _: queued.lambda_.invoke("on_retry", forged(land, instance_id, 2)))
    queued.lambda_.invoke("on_retry", forged(land, instance_id, 1))
    assert ran == [True], "the second step did not run inside the first"

    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)
    assert_decided(land, {instance_id: "CONTINUE"})
    assert len(mount_commands(land, instance_id)) == 1, "duplicate mount commands"


def test_overlapping_steps_after_one_transient_failure_spend_one_attempt(land, queued, clock, monkeypatch):  # noqa: F811
    (instance_id,) = scale_out_waiting(land, queued)
    hosts.boot_agents(land, [instance_id])
    queued.deliver_retries(clock)  # first mount command sent
    hosts.answer(land, "Failed", response_code=75)  # transient (DNS of a new mount target, say)
    moto_gaps.WORLD.drain()
    take_messages(land, queued.url)
    clock.advance(15)
    # three steps overlap (forged invokes of on_retry, or retry + sweeper + status event)
    ran = interleave(
        monkeypatch, lambda n: queued.lambda_.invoke("on_retry", forged(land, instance_id, 5 + n)), times=2
    )
    queued.lambda_.invoke("on_retry", forged(land, instance_id, 4))
    assert ran == [True, True], "the overlapping steps did not run inside the first"
    hosts.answer(land, "Failed", response_code=75)  # the transient cause is still there 15 s later
    deliver_outbox(queued.bus)
    # README: transient failures are "sent again after 10 s, 20 s, ..., up to MOUNT_ATTEMPTS (3)"; one
    # forged burst must not spend them all within a second and throw the host away.
    assert moto_gaps.decided_result(land.account, land.region, instance_id) is None, (
        f"host decided {moto_gaps.decided_result(land.account, land.region, instance_id)} "
        f"after {len(mount_commands(land, instance_id))} commands, 15 s after its first failure"
    )


def scale_out_waiting(land, queued):
    from simulation.landscape import scale_out

    ids = scale_out(land, 1)
    deliver_outbox(queued.bus)  # agent not online: waits
    take_messages(land, queued.url)
    return ids


# Adversarial: one served account/region whose Auto Scaling calls fail with anything but an assume-role
# failure (an SCP denying a region, an opt-in region not enabled in a member account, a member role
# without autoscaling:DescribeLifecycleHooks, a throttled DescribeAutoScalingGroups beyond 6 attempts)
# makes the whole sweep raise: no host in any account is swept or heartbeated, and a host whose status
# event was lost times out into the hook's default.


def test_one_unreachable_region_does_not_stop_the_sweep_of_the_others(tmp_path, land, clock, monkeypatch):
    lambda_ = make_lambda(tmp_path, SWEEP_REGIONS="af-south-1")
    from app import app
    from simulation.eventbus import EventBus

    bus = EventBus(app, lambda_.invoke)
    original = sweeper.all_groups
    refused = []

    def all_groups(autoscaling):
        if autoscaling.meta.region_name == "af-south-1":  # opt-in region not enabled, or denied by an SCP
            refused.append(autoscaling.meta.region_name)
            raise ClientError(
                {
                    "Error": {
                        "Code": "UnrecognizedClientException",
                        "Message": "The security token included in the request is invalid.",
                    }
                },
                "DescribeAutoScalingGroups",
            )
        return original(autoscaling)

    monkeypatch.setattr(sweeper, "all_groups", all_groups)

    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success", emit=False)  # the status event is lost: only the sweeper can decide

    for _ in range(20):  # the sweeper runs every minute for 20 minutes
        clock.advance(60)
        moto_gaps.expire_actions()
        report = lambda_.invoke("sweeper", SCHEDULED_EVENT)  # one bad place must not fail the whole run

    assert_decided(land, {instance_id: "CONTINUE"})
    assert any("af-south-1" in error for error in report["errors"])
    assert refused, "af-south-1 was never listed: nothing was in the way"


# Adversarial: warm pools.
#
# 1. A host launching into the warm pool waits in Warmed:Pending:Wait under our hook. Only its launch event
#    completes it: the sweeper looks at Pending:Wait hosts only, and `drive` returns "done: host is
#    Warmed:Pending:Wait". A lost event (EventBridge does not promise delivery; a member account's rule
#    missing; on_launch failing past Lambda's retries) leaves the action to time out into the default.
# 2. A host that was mounted, returned to the warm pool and launched from it again is let in on the
#    SSM record of its *previous* launch: no command is sent for this launch, whatever the group's tags
#    say now. Failures of an earlier launch likewise count against this launch's attempts.


def test_lost_warm_pool_entry_event_is_made_up_for_by_the_sweeper(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    moto_gaps.enter_warm_pool(land.account, land.region, instance_id)
    moto_gaps.WORLD.drain()  # the launch event (Destination WarmPool) is lost
    assert lifecycle_state(land, instance_id) == "Warmed:Pending:Wait"

    for _ in range(20):  # 20 minutes of sweeps
        clock.advance(60)
        moto_gaps.expire_actions()
        lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert_decided(land, {instance_id: "CONTINUE"})


def test_relaunch_from_warm_pool_mounts_what_the_group_asks_for_now(land, bus, lambda_, clock):
    instance_id = launched_in_service(land, bus)

    # Days later the group is pointed at a new file system (anyone with autoscaling tag rights, or the owner)
    efs = land.client("efs")
    new_fs = efs.create_file_system(CreationToken="new-data")["FileSystemId"]
    for subnet in land.subnet_ids:
        efs.create_mount_target(FileSystemId=new_fs, SubnetId=subnet)
    land.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": "efs-automount:file-system-id",
                "Value": new_fs,
                "PropagateAtLaunch": False,
            }
        ]
    )
    clock.advance(3600)
    relaunch_from_warm_pool(land, instance_id)

    outcomes = [o for _, o in deliver_outbox(bus)]

    commands = mount_commands(land, instance_id)
    sent_for_new = [c for c in commands if c["Parameters"]["FileSystemId"] == [new_fs]]
    decided = moto_gaps.decided_result(land.account, land.region, instance_id)
    assert sent_for_new, f"host let in without mounting {new_fs}: {outcomes}, decided {decided}"


def test_failures_of_a_previous_launch_do_not_count_against_this_one(tmp_path, land, clock):
    from app import app
    from simulation.eventbus import EventBus
    from tests.conftest import make_lambda

    # the group lets hosts in when mounting fails for good (efs-automount:on-failure CONTINUE)
    land.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": "efs-automount:on-failure",
                "Value": "CONTINUE",
                "PropagateAtLaunch": False,
            }
        ]
    )
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    for _ in range(3):  # three transient failures (the file system's DNS was broken that day)
        hosts.answer(land, "Failed", response_code=75)
        deliver_outbox(bus)
        clock.advance(61)
        lambda_.invoke("sweeper", SCHEDULED_EVENT)
        deliver_outbox(bus)
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE"
    before = len(mount_commands(land, instance_id))

    # fixed since; the host goes back to the warm pool and is launched from it a day later
    clock.advance(86400)
    relaunch_from_warm_pool(land, instance_id)
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert len(mount_commands(land, instance_id)) > before, f"no mount tried for this launch: {outcomes}"


# Adversarial: the wait budget.
#
# 1. `drive` returns "waiting: mount command running" before it looks at the budget, so a host whose
#    command hangs (agent lost after accepting it, host frozen) keeps waiting past MAX_WAIT_SECONDS, for
#    as long as SSM's delivery and execution timeouts allow (up to COMMAND_TIMEOUT_SECONDS + 600 s).
# 2. A host whose wait cannot be measured (member role without autoscaling:DescribeScalingActivities, and
#    no command sent because its agent never came online) is heartbeated until the hook's *global*
#    timeout, and so decided by the hook's default result, never by the app.


def test_a_hung_mount_command_does_not_keep_the_host_waiting_past_its_budget(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)
    sweep_for(lambda_, clock, 1680)  # its agent comes online late, 28 minutes in
    hosts.boot_agents(land, [instance_id])
    sweep_for(lambda_, clock, 60)  # the sweeper sends the mount command; the host then hangs
    assert len(land.client("ssm").list_commands(InstanceId=instance_id)["Commands"]) == 1

    sweep_for(lambda_, clock, 300)  # 5 minutes past MAX_WAIT_SECONDS (1800)

    assert clock.offset >= 1800 + 240
    assert moto_gaps.WORLD.timed_out == []
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON", (
        "still waiting past MAX_WAIT_SECONDS: the running command hides the budget"
    )


def test_an_unmeasured_wait_is_decided_by_the_app_before_the_hooks_global_timeout(
    land, bus, lambda_, clock, monkeypatch
):
    refused = deny_scaling_activities(monkeypatch)
    land.client("autoscaling").put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        LifecycleTransition=moto_gaps.LAUNCHING,
        HeartbeatTimeout=120,
        DefaultResult="ABANDON",
    )
    (instance_id,) = scale_out(land, 1)  # its SSM agent never comes online (broken instance profile)
    moto_gaps.pending_action(land.account, land.region, instance_id).heartbeat_timeout = 120
    deliver_outbox(bus)

    global_timeout = min(172800, 100 * 120)  # 12,000 s: AWS then applies DefaultResult
    sweep_for(lambda_, clock, global_timeout - 60)

    assert refused, "the wait was measured after all: DescribeScalingActivities was never refused"
    assert moto_gaps.WORLD.timed_out == []
    assert moto_gaps.pending_action(land.account, land.region, instance_id) is None, (
        "the app never decided the host before the hook's global timeout: the default result will"
    )


# Adversarial: `drive` takes a command's overall Status as the host's. SSM's command-level "Success" means
# "every invocation reached a terminal state and MaxErrors was not reached", not that this host's
# invocation succeeded (mount_commands.invocation says so itself). A command of our document sent to two
# hosts with MaxErrors 1 (an operator re-running the mount by hand) whose invocation failed on this host
# lets the host in and sets the attribute.


def test_overall_success_of_a_two_host_command_is_not_this_hosts_mount(land, bus):
    host, other = scale_out(land, 2)
    hosts.boot_agents(land, [host, other])
    launches = moto_gaps.WORLD.drain()  # held back: the operator's command comes first
    container_instance = register_container_instance(land, host)
    moto_gaps.WORLD.drain()
    path = f"/mnt/efs/{land.file_system_id}"
    ssm = land.client("ssm")
    command = ssm.send_command(
        DocumentName="efs-automount-mount",
        InstanceIds=[host, other],
        MaxErrors="1",
        Parameters={
            "FileSystemId": [land.file_system_id],
            "MountPath": [path],
            "Region": [land.region],
            "AccessPointId": [""],
            "MountTargetIp": [""],
            "ReadOnly": ["false"],
            "RequireTls": ["false"],
        },
    )["Command"]
    moto_gaps.finish_invocation(land.account, land.region, command["CommandId"], host, "Failed", 3, emit=False)
    moto_gaps.finish_invocation(land.account, land.region, command["CommandId"], other, "Success", 0, emit=False)
    # As SSM reports it: all invocations terminal, MaxErrors not reached -> the command's Status is Success
    backend = ssm_models.ssm_backends[land.account][land.region]
    stored = backend.get_command_by_id(command["CommandId"])
    stored.status = stored.status_details = "Success"
    assert ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=host)["Status"] == "Failed"

    for launch in launches:
        bus.deliver(launch)
    deliver_outbox(bus)

    assert mount_attribute(land, container_instance) is None, "attribute set for a mount that failed on the host"
    assert moto_gaps.decided_result(land.account, land.region, host) != "CONTINUE", "host let in unmounted"


# Adversarial: a host is thrown away on a group tag value AWS no longer reports. The group's tags are
# cached for 60 s per container; a tag fixed within that minute still decides the failure result for
# the hosts launched after the fix (and, the other way round, a file system tag removed a moment ago
# still sends mounts).


def test_a_host_launched_after_the_tag_was_fixed_is_not_abandoned_on_the_cached_value(land, bus, clock):
    tag_group(land, "efs-automount:mount-path", "/etc/cron.d/x")  # a typo: outside MOUNT_ROOTS
    (first,) = scale_out(land, 1)
    hosts.boot_agents(land, [first])
    deliver_outbox(bus)
    assert moto_gaps.decided_result(land.account, land.region, first) == "ABANDON"  # right, then

    tag_group(land, "efs-automount:mount-path", "/mnt/efs/shared")  # the operator fixes it
    clock.advance(20)
    (second,) = scale_out(land, 1)
    hosts.boot_agents(land, [second])
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert moto_gaps.decided_result(land.account, land.region, second) != "ABANDON", (
        f"host launched 20 s after the fix thrown away on the old tag value: {outcomes}"
    )


# --- Issue 13's adversarial review: the registration-driven send, the sweeper's agent check, the cached launch ---
SUMMARY_NO_CLUSTER = (
    'efs-automount: {{"status":"mounted","exit_code":0,"file_system_id":"{fs}","mount_path":"{path}","ecs_cluster":""}}'
)


def drain_retries(queued, clock, limit=40):
    for _ in range(limit):
        if not queued.deliver_retries(clock):
            break


def test_in_service_host_registering_while_its_ssm_agent_is_offline_gets_the_attribute(land, queued, clock):
    (h,) = scale_out(land, 1)
    hosts.boot_agents(land, [h])
    deliver_outbox(queued.bus)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)
    assert lifecycle_state(land, h) == "InService"  # mounted, no container instance yet

    # The ECS agent registers while SSM's agent is briefly not Online (restart / ConnectionLost)
    hosts.boot_agents(land, [h], ping_status="ConnectionLost")
    ci = register_container_instance(land, h)

    # SSM's record proves the mount whatever the agent's state now; ECS reports the container instance on the host
    assert deliver_outbox(queued.bus) == [("on_container_instance", {"outcome": "attribute set"})]
    assert take_messages(land, queued.url) == []
    assert mount_attribute(land, ci) == f"/mnt/efs/{land.file_system_id}"


def test_registration_before_agent_then_summary_without_cluster_still_sets_the_attribute(land, queued, clock):
    (h,) = scale_out(land, 1)
    assert deliver_outbox(queued.bus)[0][1]["outcome"] == "waiting: SSM agent not online yet"
    ci = register_container_instance(land, h)  # ECS registers first: the common case
    assert deliver_outbox(queued.bus) == [("on_container_instance", {"outcome": "waiting: agent, retry in 2s"})]
    hosts.boot_agents(land, [h])
    drain_retries(queued, clock)
    (command,) = mount_commands(land, h)
    # The host's agent config names the cluster elsewhere (env var, or an ARN): the summary names none.
    moto_gaps.finish_invocation(
        land.account,
        land.region,
        command["CommandId"],
        h,
        "Success",
        0,
        SUMMARY_NO_CLUSTER.format(fs=land.file_system_id, path=f"/mnt/efs/{land.file_system_id}"),
    )
    assert deliver_outbox(queued.bus) == [("on_command_status", {"outcome": "completed CONTINUE"})]

    # Expected: the registration's knowledge (cluster, container instance) is not lost -> attribute set.
    assert mount_attribute(land, ci) == f"/mnt/efs/{land.file_system_id}"


def test_a_registration_that_failed_midway_is_done_on_lambdas_retry(land, bus, lambda_, monkeypatch):
    (h,) = scale_out(land, 1)
    hosts.boot_agents(land, [h])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    ci = register_container_instance(land, h)
    (registration,) = moto_gaps.WORLD.drain()

    calls = {"n": 0}
    original = host_record.mount_on_record

    def throttled_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "ListCommands")
        return original(*args, **kwargs)

    monkeypatch.setattr(host_record, "mount_on_record", throttled_once)
    with pytest.raises(ClientError):
        lambda_.invoke("on_container_instance", registration)  # Lambda retries an async invoke that raised
    retried = lambda_.invoke("on_container_instance", registration)

    # the retry does the work (it was skipped as "already recorded" when settled before the work)
    assert mount_attribute(land, ci) == f"/mnt/efs/{land.file_system_id}", retried
    assert calls["n"] >= 1, "the registration's work never failed"


def test_plain_ecs_host_without_ssm_registration_costs_no_retry_chain(land, queued, clock):
    ec2 = land.client("ec2")
    (plain,) = [i["InstanceId"] for i in ec2.run_instances(ImageId=AMI_ID, MinCount=1, MaxCount=1)["Instances"]]
    register_container_instance(land, plain)  # an ECS host outside any group, no SSM agent
    first = deliver_outbox(queued.bus)
    queued.lambda_.calls.clear()
    looks = 0
    while queued.deliver_retries(clock):
        looks += 1
    ops = queued.lambda_.operations()
    # README: "State changes ... of hosts not in a tagged group, cost no further AWS calls."
    assert looks == 0, (first, looks, len(ops), sorted(set(ops)))


def test_one_forged_registration_for_a_nonexistent_instance_costs_at_most_one_more_step(land, queued, clock):
    event = load_event("container-instance-registered")
    event["account"], event["region"] = land.account, land.region
    event["detail"]["ec2InstanceId"] = "i-0123456789abcdef9"
    outcome = queued.lambda_.invoke("on_container_instance", copy.deepcopy(event))
    looks = 0
    while queued.deliver_retries(clock):
        looks += 1
    # "At worst, a forged message makes the step run one more time"
    assert looks <= 1, (outcome, looks)


def test_offline_hosts_do_not_starve_a_host_with_a_lost_status_event(tmp_path, land, clock):
    from app import app

    lambda_ = make_lambda(tmp_path, SWEEP_MAX_HOSTS="2")
    bus = EventBus(app, lambda_.invoke)
    a, b, c = scale_out(land, 3)
    hosts.boot_agents(land, [c])  # a and b: SSM agents slow / broken, not online
    deliver_outbox(bus)
    hosts.answer(land, "Success", instance_ids=[c], emit=False)  # c's status event is lost

    decided_after = None
    for minute in range(1, 16):
        clock.advance(60)
        moto_gaps.expire_actions()
        report = lambda_.invoke("sweeper", SCHEDULED_EVENT)
        if moto_gaps.decided_result(land.account, land.region, c) is not None:
            decided_after = minute
            break

    # The sweeper, "a safety net ... so that hosts stuck for good cannot starve the others", picks c up within a
    # run or two; a and b (skipped: agent offline) once took both slots on every run.
    assert decided_after is not None and decided_after <= 3, (decided_after, report["hosts"])


def test_group_with_hook_but_no_file_system_tag_is_let_in_at_launch(bus, lambda_, clock):
    land = build_landscape(boto3.Session(region_name="us-east-1"), group_tags={})
    (h,) = scale_out(land, 1)  # no SSM agent (not needed: nothing is mounted), no ECS registration
    outcomes = deliver_outbox(bus)
    # README edge cases: "group has no efs-automount:file-system-id tag | completes CONTINUE"
    assert outcomes == [("on_launch", {"outcome": "completed CONTINUE"})]


def test_invalid_tag_is_decided_at_launch_not_after_the_heartbeat_timeout(bus, lambda_, clock):
    land = build_landscape(
        boto3.Session(region_name="us-east-1"),
        group_tags={"efs-automount:file-system-id": "fs-0123456789abcdef0", "efs-automount:mount-path": "/etc"},
    )
    (h,) = scale_out(land, 1)
    deliver_outbox(bus)
    minutes = 0
    while moto_gaps.decided_result(land.account, land.region, h) is None and minutes < 20:
        clock.advance(60)
        minutes += 1
        moto_gaps.expire_actions()
        lambda_.invoke("sweeper", SCHEDULED_EVENT)
    # Decided with the failure result by the launch step ("no command is sent; completes with the failure
    # result"), not held until its heartbeat deadline comes within 3 sweeps.
    assert minutes <= 1, (minutes, lifecycle_state(land, h))


def test_relaunch_after_another_hosts_read_gets_a_new_mount(land, bus, lambda_, clock):
    (h,) = scale_out(land, 1)
    hosts.boot_agents(land, [h])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    assert deliver_outbox(bus) == [("on_command_status", {"outcome": "completed CONTINUE"})]
    assert len(mount_commands(land, h)) == 1

    # Ten minutes later another host B of the group launches: its step reads the group's activities,
    # remembering every launch on the page, H's old one too (read after H's old command).
    clock.advance(600)
    (b,) = scale_out(land, 1)
    hosts.boot_agents(land, [b])
    deliver_outbox(bus)

    # H goes back to the warm pool and is launched from it again (same file system, same path).
    clock.advance(120)
    relaunch_from_warm_pool(land, h)
    outcomes = deliver_outbox(bus)

    commands = mount_commands(land, h)
    # Expected (README: "host launched again from a warm pool: mounted again for this launch"):
    # a mount command for this launch, the host still in Pending:Wait.
    assert len(commands) == 2, (
        outcomes,
        lifecycle_state(land, h),
        moto_gaps.decided_result(land.account, land.region, h),
    )


# --- The adversarial review of issue 13's first mount and named group (findings 1-4) ---
# 1-2 came with the first mount sent at once; 3-4 were older, in the whole step, and reachable from the new paths.

ACCESS_POINT = "fsap-0123456789abcdef0"


# Finding 1: the first-mount step sends no heartbeat. The full step it replaces heartbeats once half the
# hook's heartbeat timeout has passed (README "Heartbeats and the budget": "each step sends
# RecordLifecycleActionHeartbeat once half the hook's heartbeat timeout has passed"). With a short hook, the
# sweeper cannot make up for it: it leaves hosts younger than 60 s to their events.


def test_first_mount_heartbeats_a_host_waiting_past_half_its_heartbeat_timeout(land, bus, lambda_, clock):
    land.client("autoscaling").put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        LifecycleTransition=moto_gaps.LAUNCHING,
        HeartbeatTimeout=60,
        DefaultResult="ABANDON",
    )
    (instance_id,) = scale_out(land, 1)
    moto_gaps.pending_action(land.account, land.region, instance_id).heartbeat_timeout = 60
    deliver_outbox(bus)  # launch event: agent offline, nothing sent

    # 40 s in (past half the 60 s heartbeat timeout), the SSM agent comes online and the host registers in ECS
    clock.advance(40)
    hosts.boot_agents(land, [instance_id])
    register_container_instance(land, instance_id)
    deliver_outbox(bus)
    assert len(mount_commands(land, instance_id)) == 1  # the first mount went out at once

    # The sweeper's run at 55 s leaves the host to its events (launched < 60 s ago); the mount takes 25 s
    # (efs-utils with TLS, the script's DNS wait), so its status arrives 65 s after launch.
    clock.advance(15)
    moto_gaps.expire_actions()
    lambda_.invoke("sweeper", SCHEDULED_EVENT)
    clock.advance(10)
    moto_gaps.expire_actions()
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert moto_gaps.WORLD.timed_out == [], (
        "no heartbeat at the first mount: the hook timed out into its default result (ABANDON) "
        "while the mount was running"
    )
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE"


# Finding 2 (change 1): the first-mount step reads no launch activity, so it checks no budget. A host whose SSM
# agent comes online after MAX_WAIT_SECONDS (the registration event, any agent look of the retry queue, or a
# forged retry message with waiting_for "agent", lands between two sweeper runs) gets a mount command, and is let
# in on it, instead of being decided with its failure result as the full step would.


def test_a_host_whose_agent_comes_online_after_its_budget_gets_no_mount(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # launch event: agent offline
    # the agent stays offline; the sweeper heartbeats the host (900 s hook) and, at 1790 s, finds it within budget
    sweep_for(lambda_, clock, 1740)
    sweep_for(lambda_, clock, 50, step=50)  # the last run before the budget, 1790 s in
    assert moto_gaps.pending_action(land.account, land.region, instance_id) is not None

    # 1810 s after launch (budget 1800 s), before the sweeper's next run, the agent comes online and it registers
    clock.advance(20)
    hosts.boot_agents(land, [instance_id])
    register_container_instance(land, instance_id)
    outcomes = [o for _, o in deliver_outbox(bus)]
    hosts.answer(land, "Success")
    outcomes += [o for _, o in deliver_outbox(bus)]

    assert mount_commands(land, instance_id) == [], f"a mount was sent to a host past its budget: {outcomes}"
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON", outcomes


# Finding 3 (both changes, pre-existing in the full step): "tags ask for exactly the mount the command made" is
# checked on FileSystemId and MountPath only. A successful command of our document that mounted without the
# group's access point (the whole file system instead of the access point's directory and POSIX identity), or
# read-only, lets the waiting host in and sets the attribute. Whoever may run the mount document writes all of
# it, the comment naming the group included, so the named-group path takes it too.


def test_a_mount_without_the_groups_access_point_does_not_let_the_host_in(land, bus, lambda_, clock):
    tag_group(land, "efs-automount:access-point-id", ACCESS_POINT)
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # launch event: agent offline
    hosts.boot_agents(land, [instance_id])
    path = f"/mnt/efs/{land.file_system_id}"
    land.client("ssm").send_command(
        DocumentName="efs-automount-mount",
        InstanceIds=[instance_id],
        Parameters={
            "FileSystemId": [land.file_system_id],
            "MountPath": [path],  # the group's path, but neither its access point nor read-write
            "Region": [land.region],
            "ReadOnly": ["true"],
        },
        Comment=f"efs-automount: launch in {land.group_name}",
    )
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert lifecycle_state(land, instance_id) == "Pending:Wait", (
        f"host let in on a read-only mount without the group's access point {ACCESS_POINT}: {outcomes}"
    )
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    assert mount_attribute(land, container_instance) is None


# Finding 4 (reachable through change 1's send, pre-existing in the full step): a send the mount document refuses
# decides the host with the failure result of the 60 s tag cache. README "Mount failures": "the failure result
# (efs-automount:on-failure) of any failure decision [is] read again without the 60 s cache before a host is
# thrown away or let in unmounted".


def test_a_refused_send_decides_on_the_failure_result_tag_of_this_moment(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # launch event: the group's tags are read (cached 60 s); agent offline
    # the operator sets the group to keep hosts whose mount fails (a document mid-redeploy, say)
    tag_group(land, "efs-automount:on-failure", "CONTINUE")
    land.client("ssm").delete_document(Name="efs-automount-mount")
    clock.advance(20)
    hosts.boot_agents(land, [instance_id])
    register_container_instance(land, instance_id)
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE", (
        f"host thrown away on the cached failure result, 20 s after the tag asked for CONTINUE: {outcomes}"
    )

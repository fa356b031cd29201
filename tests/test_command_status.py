"""Command status events: only ours, only once confirmed with SSM, decided once."""

from __future__ import annotations

from simulation import hosts, moto_gaps
from simulation.landscape import (
    app_mount_parameters,
    lifecycle_state,
    mount_attribute,
    register_container_instance,
    scale_out,
)
from tests.conftest import deliver_outbox, load_event
from tests.support.launch import ACCESS_POINT, in_service_then_confined_to_an_access_point


def _mount_running(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    (invocation,) = hosts.running_invocations(land)
    return instance_id, invocation["CommandId"]


def test_foreign_command_is_ignored_without_any_aws_call(lambda_):
    result = lambda_.invoke("on_command_status", load_event("command-status-foreign-document"))

    assert result == {"outcome": "ignored: document AWS-RunShellScript is not ours"}
    assert lambda_.operations() == []


def test_status_not_confirmed_by_ssm_decides_nothing(land, bus, lambda_):
    # Given a mount still running, when an event claims it succeeded
    instance_id, command_id = _mount_running(land, bus)
    event = load_event("command-status-success", **{"command-id": command_id, "instance-id": instance_id})

    result = lambda_.invoke("on_command_status", event)

    # Then SSM's own word wins: nothing is decided
    assert result == {"outcome": "ignored: SSM says InProgress"}
    assert lifecycle_state(land, instance_id) == "Pending:Wait"


def test_unknown_command_is_ignored(land, lambda_):
    event = load_event("command-status-success", **{"command-id": "00000000-0000-4000-8000-000000000000"})

    assert lambda_.invoke("on_command_status", event) == {"outcome": "ignored: command not found"}


def test_event_naming_another_host_than_the_command_is_ignored(land, bus, lambda_):
    instance_id, command_id = _mount_running(land, bus)
    hosts.answer(land, "Success", emit=False)
    event = load_event("command-status-success", **{"command-id": command_id, "instance-id": "i-0aaaaaaaaaaaaaaaa"})

    assert lambda_.invoke("on_command_status", event) == {"outcome": "ignored: command not confirmed"}
    assert lifecycle_state(land, instance_id) == "Pending:Wait"


def test_repeated_success_event_completes_once(land, bus, lambda_):
    instance_id, command_id = _mount_running(land, bus)
    hosts.answer(land, "Success", emit=False)
    event = load_event("command-status-success", **{"command-id": command_id, "instance-id": instance_id})

    first = lambda_.invoke("on_command_status", event)
    second = lambda_.invoke("on_command_status", event)

    assert first == {"outcome": "completed CONTINUE"}
    assert second == {"outcome": "already decided"}
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE"


def test_host_terminated_mid_flight_ends_quietly(land, bus, lambda_):
    instance_id, command_id = _mount_running(land, bus)
    hosts.answer(land, "Success", emit=False)
    land.client("autoscaling").complete_lifecycle_action(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        InstanceId=instance_id,
        LifecycleActionResult="ABANDON",
    )
    event = load_event("command-status-success", **{"command-id": command_id, "instance-id": instance_id})

    # ABANDON terminated it: AWS reports it in no group any more
    assert lambda_.invoke("on_command_status", event) == {"outcome": "mounted; host is not in an Auto Scaling group"}


def test_mount_confirmed_writes_nothing_on_the_host_but_the_attribute(land, bus, lambda_):
    # Given a registered host whose mount is running
    instance_id, _ = _mount_running(land, bus)
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    # When SSM confirms it
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    # Then the proof is SSM's record: no EC2 tag is written (issue 13), and the container instance is marked
    tags = land.client("ec2").describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]
    assert not [t for t in tags if t["Key"].startswith("efs-automount:")]
    assert "ec2:CreateTags" not in lambda_.operations()
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"


def test_command_sent_to_several_hosts_is_confirmed_per_host(land, bus, lambda_):
    # Given an operator re-ran the app's mount (exactly its parameters) on two waiting hosts at once
    first, second = scale_out(land, 2)
    moto_gaps.WORLD.drain()
    hosts.boot_agents(land, [first, second])
    command_id = land.client("ssm").send_command(
        DocumentName="efs-automount-mount",
        InstanceIds=[first, second],
        Parameters=app_mount_parameters(land, first),
    )["Command"]["CommandId"]

    # When only the first host has finished
    hosts.answer(land, "Success", instance_ids=[first])

    # Then the first is let in on its own invocation's word, and the second still waits
    assert deliver_outbox(bus) == [("on_command_status", {"outcome": "completed CONTINUE"})]
    assert "ssm:GetCommandInvocation" in lambda_.operations()
    assert lifecycle_state(land, first) == "InService"
    assert lifecycle_state(land, second) == "Pending:Wait"
    assert command_id


def test_a_success_at_another_path_than_the_groups_does_not_let_the_host_in(land, bus):
    # Given an operator mounted the file system by hand at a path the group's tags do not ask for
    (instance_id,) = scale_out(land, 1)
    moto_gaps.WORLD.drain()
    hosts.boot_agents(land, [instance_id])
    land.client("ssm").send_command(
        DocumentName="efs-automount-mount",
        InstanceIds=[instance_id],
        Parameters={"FileSystemId": [land.file_system_id], "MountPath": ["/mnt/shared"], "Region": ["us-east-1"]},
    )
    hosts.answer(land, "Success")

    # When its status event arrives, then the app mounts what the group asks for before letting the host in
    ((_, outcome),) = deliver_outbox(bus)[:1]
    assert outcome["outcome"].startswith("mount command sent")
    assert lifecycle_state(land, instance_id) == "Pending:Wait"


def test_status_of_a_launch_mount_asks_auto_scaling_where_the_host_waits_before_completing(land, bus, lambda_):
    # The command's comment names the host's group, but anyone who may run the document writes comments, and the
    # mount target a command names says nothing of the host's zone: Auto Scaling says where the host waits.
    instance_id, command_id = _mount_running(land, bus)
    hosts.answer(land, "Success", emit=False)
    lambda_.calls.clear()
    event = load_event("command-status-success", **{"command-id": command_id, "instance-id": instance_id})

    assert lambda_.invoke("on_command_status", event) == {"outcome": "completed CONTINUE"}
    assert "autoscaling:DescribeAutoScalingInstances" in lambda_.operations(), lambda_.operations()
    assert lifecycle_state(land, instance_id) == "InService"


def _second_group(land, name):
    autoscaling = land.client("autoscaling")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"][0]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"{land.group_name}-template", "Version": "$Latest"},
        MinSize=0,
        MaxSize=10,
        DesiredCapacity=0,
        VPCZoneIdentifier=group["VPCZoneIdentifier"],
        Tags=[
            {"Key": t["Key"], "Value": t["Value"], "PropagateAtLaunch": False, "ResourceId": name}
            for t in group["Tags"]
        ],
    )
    autoscaling.put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=name,
        LifecycleTransition=moto_gaps.LAUNCHING,
        HeartbeatTimeout=900,
        DefaultResult="ABANDON",
    )


def test_a_comment_naming_another_group_changes_nothing(land, bus, lambda_):
    # Anyone allowed to run the mount document writes its comment: a group named there is only a hint. A
    # command that names another group (with the same tags and hook) is decided in the group AWS reports.
    _second_group(land, "other-hosts")
    instance_id, command_id = _mount_running(land, bus)
    ssm = land.client("ssm")
    ours = ssm.list_commands(CommandId=command_id)["Commands"][0]
    forged = ssm.send_command(
        DocumentName=ours["DocumentName"],
        InstanceIds=[instance_id],
        Parameters=ours["Parameters"],
        Comment="efs-automount: launch in other-hosts",
    )["Command"]["CommandId"]
    hosts.answer(land, "Success", emit=False)
    event = load_event("command-status-success", **{"command-id": forged, "instance-id": instance_id})

    assert lambda_.invoke("on_command_status", event) == {"outcome": "completed CONTINUE"}
    assert moto_gaps.WORLD.completions[-1][1:] == (land.region, instance_id, "CONTINUE")
    assert lifecycle_state(land, instance_id) == "InService"
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"


def test_a_mount_by_hand_without_the_groups_access_point_does_not_mark_a_host_in_service(land, bus, lambda_, clock):
    from simulation.landscape import container_instance_attributes

    # Given a host in service mounted without the access point its group now asks for, registered while the
    # event was lost
    instance_id = in_service_then_confined_to_an_access_point(land, bus)
    clock.advance(120)
    container_instance = register_container_instance(land, instance_id)
    moto_gaps.WORLD.drain()
    # When an operator runs the mount document again by hand, as it was sent before the access point
    (launch,) = [c for c in land.client("ssm").list_commands(InstanceId=instance_id)["Commands"]]
    land.client("ssm").send_command(
        DocumentName=launch["DocumentName"], InstanceIds=[instance_id], Parameters=launch["Parameters"]
    )
    hosts.answer(land, "Success")
    outcomes = [o for _, o in deliver_outbox(bus)]

    # Then its status event does not mark the host either: the mount is not the group's
    marks = {n: v for n, v in container_instance_attributes(land, container_instance).items() if "efs-automount" in n}
    assert marks == {}, outcomes
    assert outcomes == [{"outcome": f"not marked: mounted otherwise (without the group's access point {ACCESS_POINT})"}]

"""Launch events the contract singles out: missing or invalid tags, other hooks, warm pools, late agents."""

from __future__ import annotations

import boto3
import pytest

from simulation import hosts, moto_gaps
from simulation.landscape import build_landscape, lifecycle_state, scale_out
from tests.conftest import deliver_outbox, load_event


def _land_with_tags(tags):
    return build_landscape(boto3.Session(region_name="us-east-1"), group_tags=tags)


def test_group_without_file_system_tag_continues_and_logs_an_error(bus, app_logs):
    land = _land_with_tags({})
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    assert deliver_outbox(bus) == [("on_launch", {"outcome": "completed CONTINUE"})]

    assert lifecycle_state(land, instance_id) == "InService"
    assert hosts.running_invocations(land) == []
    errors = app_logs("ERROR")
    assert "efs-automount:file-system-id" in errors[0]["message"]


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("efs-automount:file-system-id", "fs-12345678; rm -rf /", "is not fs- followed by 8 or 17 hex digits"),
        ("efs-automount:mount-path", "/mnt/efs/$(reboot)", "is not an absolute path"),
        ("efs-automount:mount-path", "/mnt/../etc", "contains '..'"),
        ("efs-automount:mount-path", "/etc/cron.d", "is not strictly under one of MOUNT_ROOTS"),
        ("efs-automount:access-point-id", "fsap-nope", "is not fsap- followed by 17 hex digits"),
        ("efs-automount:on-failure", "MAYBE", "is neither ABANDON nor CONTINUE"),
    ],
)
def test_invalid_tag_sends_nothing_and_completes_with_the_failure_result(bus, app_logs, tag, value, reason):
    land = _land_with_tags({"efs-automount:file-system-id": "fs-0123456789abcdef0", tag: value})
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    assert deliver_outbox(bus) == [("on_launch", {"outcome": "completed ABANDON"})]

    assert land.client("ssm").list_commands()["Commands"] == []
    assert lifecycle_state(land, instance_id) == "Terminated"
    (error,) = app_logs("ERROR")
    assert error["tag"] == tag
    assert reason in error["reason"]


def test_invalid_tag_uses_a_valid_on_failure_tag(bus):
    land = _land_with_tags({"efs-automount:file-system-id": "fs-bad", "efs-automount:on-failure": "CONTINUE"})
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    assert deliver_outbox(bus) == [("on_launch", {"outcome": "completed CONTINUE"})]


def test_other_hooks_are_never_touched(land, lambda_):
    (instance_id,) = scale_out(land, 1)
    moto_gaps.WORLD.drain()
    event = load_event("launch-other-hook", EC2InstanceId=instance_id, AutoScalingGroupName=land.group_name)

    result = lambda_.invoke("on_launch", event)

    assert result["outcome"].startswith("ignored: hook someone-elses-hook is not ours")
    assert lambda_.operations() == []
    assert lifecycle_state(land, instance_id) == "Pending:Wait"


def test_warm_pool_launch_continues_without_a_command(land, lambda_):
    (instance_id,) = scale_out(land, 1)
    moto_gaps.enter_warm_pool(land.account, land.region, instance_id)  # AWS: Warmed:Pending:Wait
    moto_gaps.WORLD.drain()
    action = moto_gaps.pending_action(land.account, land.region, instance_id)
    event = load_event(
        "warm-pool-launch",
        EC2InstanceId=instance_id,
        AutoScalingGroupName=land.group_name,
        LifecycleActionToken=action.token,
    )

    assert lambda_.invoke("on_launch", event) == {"outcome": "completed CONTINUE"}

    assert lifecycle_state(land, instance_id) == "Warmed:Stopped"
    assert land.client("ssm").list_commands()["Commands"] == []
    assert "ssm:SendCommand" not in lambda_.operations()


def test_host_leaving_the_warm_pool_is_mounted(land, lambda_):
    (instance_id,) = scale_out(land, 1)
    moto_gaps.WORLD.drain()
    hosts.boot_agents(land, [instance_id])
    event = load_event("warm-pool-exit-launch", EC2InstanceId=instance_id, AutoScalingGroupName=land.group_name)

    assert lambda_.invoke("on_launch", event)["outcome"].startswith("mount command sent")


def test_test_notification_is_ignored(lambda_):
    result = lambda_.invoke("on_launch", load_event("test-notification"))

    assert result == {"outcome": "ignored: Auto Scaling test notification"}
    assert lambda_.operations() == []


def test_agent_not_online_sends_nothing_and_waits(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id], ping_status="ConnectionLost")

    assert deliver_outbox(bus) == [("on_launch", {"outcome": "waiting: SSM agent not online yet"})]

    assert land.client("ssm").list_commands()["Commands"] == []
    assert lifecycle_state(land, instance_id) == "Pending:Wait"


def test_agent_not_registered_sends_nothing_until_it_is(land, lambda_):
    (instance_id,) = scale_out(land, 1)
    (event,) = moto_gaps.WORLD.drain()

    assert lambda_.invoke("on_launch", event)["outcome"] == "waiting: SSM agent not online yet"

    # A repeated delivery, once the agent is online, sends the command.
    hosts.boot_agents(land, [instance_id])
    assert lambda_.invoke("on_launch", event)["outcome"].startswith("mount command sent")


def test_missing_mount_document_completes_with_the_failure_result(bus, app_logs):
    land = build_landscape(boto3.Session(region_name="us-east-1"), with_document=False)
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    assert deliver_outbox(bus) == [("on_launch", {"outcome": "completed ABANDON"})]
    (error,) = app_logs("ERROR")
    assert error["document"] == "efs-automount-mount"


def test_group_deleted_before_the_event_is_handled_quietly(land, lambda_):
    (instance_id,) = scale_out(land, 1)
    (event,) = moto_gaps.WORLD.drain()
    land.client("autoscaling").delete_auto_scaling_group(AutoScalingGroupName=land.group_name, ForceDelete=True)
    hosts.boot_agents(land, [instance_id])  # its agent is online: the step itself runs, and finds no host

    assert lambda_.invoke("on_launch", event) == {"outcome": "done: host gone"}
    assert land.client("ssm").list_commands()["Commands"] == []

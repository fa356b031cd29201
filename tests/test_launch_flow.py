"""The launch lifecycle flow through the handlers, over moto: scale out, mount, decide."""

from __future__ import annotations

import boto3

from simulation import hosts, moto_gaps
from simulation.landscape import (
    build_landscape,
    lifecycle_state,
    mount_attribute,
    register_container_instance,
    scale_out,
)
from tests.conftest import deliver_outbox, make_lambda


def test_scaled_out_host_mounts_efs_and_goes_in_service(land, bus):
    # Given a tagged group whose new host's SSM agent is online
    (instance_id,) = scale_out(land, 1)
    assert lifecycle_state(land, instance_id) == "Pending:Wait"
    hosts.boot_agents(land, [instance_id])

    # When the launch event arrives, the host stays in Pending:Wait with a mount command running
    results = deliver_outbox(bus)
    assert [name for name, _ in results] == ["on_launch"]
    assert results[0][1]["outcome"].startswith("mount command sent")
    (invocation,) = hosts.running_invocations(land)
    assert invocation["Parameters"]["FileSystemId"] == [land.file_system_id]
    assert invocation["Parameters"]["MountPath"] == [f"/mnt/efs/{land.file_system_id}"]
    assert lifecycle_state(land, instance_id) == "Pending:Wait"

    # Then once the agent reports Success, the action completes CONTINUE
    hosts.answer(land, "Success")
    results = deliver_outbox(bus)
    assert results == [("on_command_status", {"outcome": "completed CONTINUE"})]
    assert lifecycle_state(land, instance_id) == "InService"
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE"


def test_attribute_is_set_when_host_registered_before_the_mount(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    container_instance = register_container_instance(land, instance_id)
    assert deliver_outbox(bus) == [("on_container_instance", {"outcome": "waiting: mount command running"})]
    assert mount_attribute(land, container_instance) is None

    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"


def test_attribute_is_set_when_host_registers_after_the_mount(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    container_instance = register_container_instance(land, instance_id)
    assert deliver_outbox(bus) == [("on_container_instance", {"outcome": "attribute set"})]

    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"


def test_failed_mount_abandons_the_host_by_default(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)

    hosts.answer(land, "Failed", response_code=3)
    results = deliver_outbox(bus)

    assert results == [("on_command_status", {"outcome": "completed ABANDON"})]
    assert lifecycle_state(land, instance_id) == "Terminated"


def test_group_on_failure_tag_continue_lets_a_failed_host_in(bus):
    land = build_landscape(boto3.Session(region_name="us-east-1"), group_tags={})
    autoscaling = land.client("autoscaling")
    file_system_id = land.file_system_id or "fs-0123456789abcdef0"
    autoscaling.create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": k,
                "Value": v,
                "PropagateAtLaunch": False,
            }
            for k, v in {"efs-automount:file-system-id": file_system_id, "efs-automount:on-failure": "CONTINUE"}.items()
        ]
    )
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)

    hosts.answer(land, "Failed", response_code=3)

    assert deliver_outbox(bus) == [("on_command_status", {"outcome": "completed CONTINUE"})]
    assert lifecycle_state(land, instance_id) == "InService"


def test_on_failure_setting_continue_applies_without_a_tag(tmp_path, land):
    lambda_ = make_lambda(tmp_path, ON_FAILURE="CONTINUE")
    from app import app
    from simulation.eventbus import EventBus

    bus = EventBus(app, lambda_.invoke)
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)

    hosts.answer(land, "Failed", response_code=4)

    assert deliver_outbox(bus) == [("on_command_status", {"outcome": "completed CONTINUE"})]

"""Container instance registrations: the attribute follows a confirmed mount, whatever comes first."""

from __future__ import annotations

import boto3

from chalicelib.mount.attribute import mount_attribute_name
from simulation import hosts, moto_gaps
from simulation.landscape import (
    build_landscape,
    container_instance_attributes,
    mount_attribute,
    register_container_instance,
    scale_out,
)
from tests.conftest import deliver_outbox, load_event
from tests.support.launch import ACCESS_POINT, in_service_then_confined_to_an_access_point


def test_host_of_an_untagged_group_is_left_untouched(bus, lambda_):
    land = build_landscape(boto3.Session(region_name="us-east-1"), group_tags={})
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    lambda_.calls.clear()

    register_container_instance(land, instance_id)
    assert deliver_outbox(bus) == [("on_container_instance", {"outcome": "ignored: its group asks for no mount"})]

    assert "ecs:PutAttributes" not in lambda_.operations()
    assert "ssm:ListCommands" not in lambda_.operations()


def test_event_already_carrying_the_attribute_costs_no_aws_call(lambda_):
    event = load_event("container-instance-registered")
    path = "/mnt/efs/fs-0123456789abcdef0"
    event["detail"]["attributes"].append({"name": mount_attribute_name("fs-0123456789abcdef0", path), "value": path})

    assert lambda_.invoke("on_container_instance", event) == {"outcome": "ignored: attribute already set"}
    assert lambda_.operations() == []


def test_a_host_marked_by_an_earlier_release_gets_the_attribute_named_after_its_path(land, bus, lambda_):
    # Given a host mounted and marked before the attribute was named after the path: it carries only
    # `efs-automount.<fs>` (revisions rewritten then ask for that one)
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    container_instance = register_container_instance(land, instance_id)
    (registration,) = moto_gaps.WORLD.drain()
    path, legacy = f"/mnt/efs/{land.file_system_id}", f"efs-automount.{land.file_system_id}"
    land.client("ecs").put_attributes(
        cluster=land.cluster_name, attributes=[{"name": legacy, "value": path, "targetId": container_instance}]
    )
    registration["detail"]["attributes"].append({"name": legacy, "value": path})

    # When ECS reports a change of its container instance (a task started, the agent reconnected)
    outcome = lambda_.invoke("on_container_instance", registration)

    # Then tasks rewritten from now on can be placed there, and those rewritten before still can
    assert outcome == {"outcome": "attribute set"}
    assert mount_attribute(land, container_instance) == path
    assert container_instance_attributes(land, container_instance)[legacy] == path


def test_repeated_state_changes_of_a_recorded_host_cost_no_further_calls(land, bus, lambda_):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    register_container_instance(land, instance_id)
    (registration,) = moto_gaps.WORLD.drain()
    lambda_.invoke("on_container_instance", registration)
    lambda_.calls.clear()

    # A task starts: ECS sends another state change for the same container instance
    assert lambda_.invoke("on_container_instance", registration) == {"outcome": "ignored: already recorded"}
    assert lambda_.operations() == []


def test_host_that_is_not_an_ec2_instance_is_ignored(lambda_):
    event = load_event("container-instance-registered")
    del event["detail"]["ec2InstanceId"]

    assert lambda_.invoke("on_container_instance", event) == {"outcome": "ignored: not an EC2 instance"}


def test_reregistered_host_gets_the_attribute_again(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    first = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert mount_attribute(land, first) is not None

    # The host is deregistered and registers again: a new container instance without attributes
    land.client("ecs").deregister_container_instance(cluster=land.cluster_name, containerInstance=first, force=True)
    second = register_container_instance(land, instance_id)
    deliver_outbox(bus)

    assert mount_attribute(land, second) == f"/mnt/efs/{land.file_system_id}"


def test_first_mount_of_a_registered_host_lists_its_commands_once_just_before_sending(land, bus, lambda_):
    # README "Performance": a host with no mount command on SSM's record has nothing to decide, so the step
    # lists the host's commands once, just before the send (its budget and heartbeat checked first).
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # launch: agent offline, nothing sent
    hosts.boot_agents(land, [instance_id])
    lambda_.calls.clear()

    register_container_instance(land, instance_id)
    ((_, result),) = deliver_outbox(bus)

    assert result["outcome"].startswith("mount command sent: "), result
    operations = lambda_.operations()
    assert operations.count("ssm:ListCommands") == 1, operations
    assert operations[-2:] == ["ssm:ListCommands", "ssm:SendCommand"], operations


# --- one rule for "this host carries the group's mount" (issue 18, finding 4) ----------------------


def test_registration_does_not_mark_a_host_whose_mount_lacks_the_groups_access_point(land, bus, clock):
    # Given a host mounted without the access point its group now asks for
    instance_id = in_service_then_confined_to_an_access_point(land, bus)
    clock.advance(120)  # the app's cached group tags have expired
    # When its container instance registers anew (an agent reinstall, a re-registration)
    container_instance = register_container_instance(land, instance_id)
    outcomes = [o for _, o in deliver_outbox(bus)]

    # Then it is not marked: no task asking for the file system is placed where it would see the whole of it
    marks = {n: v for n, v in container_instance_attributes(land, container_instance).items() if "efs-automount" in n}
    assert marks == {}, f"marked on a mount without the group's access point {ACCESS_POINT}: {outcomes}"
    assert outcomes == [{"outcome": f"not marked: mounted otherwise (without the group's access point {ACCESS_POINT})"}]

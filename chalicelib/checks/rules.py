"""What the configuration checks decide, over plain data: AWS's answers in, problem sentences (and what could not
be decided) out, into a Findings. No AWS here: chalicelib/checks/configuration.py reads and hands the answers over."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from chalicelib.checks.findings import Findings
from chalicelib.mount.spec import (
    FILE_SYSTEM_TAG,
    MOUNT_PATH_TAG,
    MountConfigError,
    MountSpec,
    access_point_id_from_tags,
    default_mount_path,
    failure_result_from_tags,
    file_system_id_from_tags,
    validate_mount_path,
)
from chalicelib.plumbing.lifecycle_result import LifecycleResult

T = TypeVar("T")

# --- hook-missing, hook-timeout ---------------------------------------------------------------------------------

LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"
# The app heartbeats a waiting host whenever one is due, from whichever step runs (CONTRACT, "Launch behaviour"):
# a hook whose heartbeat timeout is this or more never expires while the app still works on it.
MIN_HEARTBEAT_SECONDS = 120
SUGGESTED_HEARTBEAT_SECONDS = 900
# PutLifecycleHook's default HeartbeatTimeout, for a hook described without one.
DEFAULT_HEARTBEAT_SECONDS = 3600


def judge_hook(group_name: str, hook_name: str, hooks: Sequence[Mapping[str, Any]], findings: Findings) -> None:
    """hook-missing and hook-timeout, from DescribeLifecycleHooks' LifecycleHooks for the group."""
    ours = [hook for hook in hooks if hook.get("LifecycleHookName") == hook_name]
    create = (
        f"create it (transition {LAUNCHING}, heartbeat timeout {SUGGESTED_HEARTBEAT_SECONDS} s, default result ABANDON)"
    )
    if not ours:
        findings.problem(
            "hook-missing",
            f"group {group_name} has no launch lifecycle hook named {hook_name}: its hosts go in service unmounted; "
            f"{create}",
        )
        return
    hook = ours[0]
    transition = hook.get("LifecycleTransition")
    if transition != LAUNCHING:
        findings.problem(
            "hook-missing",
            f"group {group_name} has a hook named {hook_name} for {transition}, not a launch lifecycle hook: its hosts "
            f"go in service unmounted; delete it and {create}",
        )
        return
    heartbeat = hook.get("HeartbeatTimeout", DEFAULT_HEARTBEAT_SECONDS)
    if isinstance(heartbeat, int) and heartbeat < MIN_HEARTBEAT_SECONDS:
        findings.problem(
            "hook-timeout",
            f"the hook {hook_name} of group {group_name} has a heartbeat timeout of {heartbeat} s, under the "
            f"{MIN_HEARTBEAT_SECONDS} s the app heartbeats within: a host's wait can end with the hook's default "
            f"result while it is being mounted; set it to {MIN_HEARTBEAT_SECONDS} s or more "
            f"({SUGGESTED_HEARTBEAT_SECONDS} s suggested)",
        )


# --- tag-invalid ------------------------------------------------------------------------------------------------


def judge_tags(
    group_name: str,
    tags: Mapping[str, str],
    roots: Sequence[str],
    default_result: LifecycleResult,
    findings: Findings,
) -> MountSpec | None:
    """tag-invalid for each efs-automount:* group tag the launch step refuses (mount_spec_from_tags and
    failure_result_from_tags, each tag on its own so that every bad one is named); the mount the group asks for
    when every tag is valid, None otherwise or without the file system tag."""
    if FILE_SYSTEM_TAG not in tags:
        return None
    errors: list[MountConfigError] = []

    def valid(read: Callable[[], T]) -> T | None:
        try:
            return read()
        except MountConfigError as exc:
            errors.append(exc)
            return None

    file_system_id = valid(lambda: file_system_id_from_tags(tags))
    mount_path = tags.get(MOUNT_PATH_TAG) or None
    if mount_path is not None:
        valid(lambda: validate_mount_path(mount_path, MOUNT_PATH_TAG, roots))
    elif file_system_id is not None:
        mount_path = default_mount_path(file_system_id)
        try:
            validate_mount_path(mount_path, MOUNT_PATH_TAG, roots)
        except MountConfigError as exc:
            # The default path is the app's, but the tag is what the group's owner sets to move it.
            errors.append(MountConfigError(MOUNT_PATH_TAG, f"not set, so the default applies: {exc.reason}"))
    access_point_id = valid(lambda: access_point_id_from_tags(tags))
    result = valid(lambda: failure_result_from_tags(tags, default_result)) or default_result
    for error in errors:
        findings.problem(
            "tag-invalid",
            f"group {group_name}, tag {error.tag}: {error.reason}; no mount command is sent to its hosts, and each "
            f"launch is completed {result.value}",
        )
    if errors or file_system_id is None or mount_path is None:
        return None
    return MountSpec(file_system_id, mount_path, access_point_id)


# --- file-system-missing, access-point-mismatch -----------------------------------------------------------------

# A file system or access point being updated still serves its clients; one being created will soon, so it is
# no problem yet (nor mountable now: the network checks wait for it).
MOUNTABLE_STATES = frozenset({"available", "updating"})
COMING_STATES = frozenset({"creating"})


def judge_file_system(
    file_system_id: str, account: str, region: str, described: Mapping[str, Any] | None, findings: Findings
) -> bool:
    """file-system-missing from DescribeFileSystems' description of it (None: FileSystemNotFound); whether it is
    there to mount."""
    where = f"account {account}, region {region}"
    if described is None:
        findings.problem(
            "file-system-missing",
            f"file system {file_system_id} does not exist in {where}: create it there, or tag the group "
            f"{FILE_SYSTEM_TAG} with one that does",
        )
        return False
    state = str(described.get("LifeCycleState", "")).lower()
    if state in MOUNTABLE_STATES:
        return True
    if state in COMING_STATES:
        findings.not_sure(f"file-system-missing: file system {file_system_id} in {where} is still {state}")
        return False
    findings.problem(
        "file-system-missing",
        f"file system {file_system_id} in {where} is {state or 'in no known state'}, not available: no host can mount "
        f"it; tag the group {FILE_SYSTEM_TAG} with an available one",
    )
    return False


def judge_access_point(
    spec: MountSpec, account: str, region: str, described: Mapping[str, Any] | None, findings: Findings
) -> None:
    """access-point-mismatch from DescribeAccessPoints' description of the group's access point (None:
    AccessPointNotFound)."""
    access_point_id = spec.access_point_id
    where = f"account {account}, region {region}"
    fix = f"create one on {spec.file_system_id} and tag the group efs-automount:access-point-id with it"
    if described is None:
        findings.problem("access-point-mismatch", f"access point {access_point_id} does not exist in {where}: {fix}")
        return
    owner = described.get("FileSystemId")
    if owner != spec.file_system_id:
        findings.problem(
            "access-point-mismatch",
            f"access point {access_point_id} belongs to file system {owner}, not to the group's "
            f"{spec.file_system_id}: the mount fails; {fix}",
        )
        return
    state = str(described.get("LifeCycleState", "")).lower()
    if state in COMING_STATES:
        findings.not_sure(f"access-point-mismatch: access point {access_point_id} in {where} is still {state}")
    elif state not in MOUNTABLE_STATES:
        findings.problem(
            "access-point-mismatch",
            f"access point {access_point_id} of {spec.file_system_id} in {where} is {state or 'in no known state'}, "
            f"not available: the mount fails; {fix}",
        )


# --- file-system-policy -----------------------------------------------------------------------------------------

CLIENT_MOUNT = "elasticfilesystem:ClientMount"
CLIENT_WRITE = "elasticfilesystem:ClientWrite"
SECURE_TRANSPORT = "aws:securetransport"
VIA_MOUNT_TARGET = "elasticfilesystem:accessedviamounttarget"
ACCESS_POINT_ARN = "elasticfilesystem:accesspointarn"


def partition(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def file_system_arn(account: str, region: str, file_system_id: str) -> str:
    return f"arn:{partition(region)}:elasticfilesystem:{region}:{account}:file-system/{file_system_id}"


def access_point_arn(account: str, region: str, access_point_id: str) -> str:
    return f"arn:{partition(region)}:elasticfilesystem:{region}:{account}:access-point/{access_point_id}"


@dataclass(frozen=True)
class MountRequest:
    """What a host's mount presents to EFS. With an access point, efs-utils mounts with the options tls, iam and
    accesspoint= (host/mount-efs.sh): the client is the host's instance role, over TLS. Without one it mounts with
    no iam option: an anonymous client, over TLS when RequireTls is true or efs-utils is there, else plain NFS."""

    file_system_arn: str
    access_point_arn: str | None
    # The command's RequireTls parameter (mount_command_parameters).
    require_tls: bool

    @property
    def anonymous(self) -> bool:
        return self.access_point_arn is None

    def tls_cases(self) -> tuple[bool, ...]:
        """Whether the mount uses TLS: for sure, or either way (the host's helper decides)."""
        return (True,) if self.require_tls or not self.anonymous else (True, False)

    def context(self, tls: bool) -> dict[str, Any]:
        """The condition keys EFS sets for this client (EFS User Guide, "Using IAM to control access to file
        systems": EFS condition keys for clients), by lower-case name; a key absent here is absent there."""
        context: dict[str, Any] = {SECURE_TRANSPORT: tls, VIA_MOUNT_TARGET: True}
        if self.access_point_arn is not None:
            context[ACCESS_POINT_ARN] = self.access_point_arn
        return context


@dataclass(frozen=True)
class Verdict:
    """One action's fate under the policy: `allowed` True/False, or None with `why` saying what is not known."""

    allowed: bool | None
    why: str


def _all(results: Iterable[bool | None]) -> bool | None:
    """Three-valued AND: False wins, then unknown."""
    known = list(results)
    if False in known:
        return False
    return None if None in known else True


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def _like(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's wildcards: * any run of characters, ? any one."""
    expression = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(expression, value, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


def _principal(statement: Mapping[str, Any], anonymous: bool) -> bool | None:
    if "NotPrincipal" in statement:
        return None
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return None
    named = _strings(principal.get("AWS", []))
    if named is None:
        return None
    if "*" in named:
        return True
    # An anonymous client is no named principal. The hosts' role may be one: that is not known here.
    return None if named and not anonymous else False


def _matches(statement: Mapping[str, Any], element: str, value: str, ignore_case: bool) -> bool | None:
    """Action/NotAction or Resource/NotResource; a statement without either applies to everything."""
    if element in statement:
        patterns = _strings(statement[element])
        return None if patterns is None else any(_like(p, value, ignore_case) for p in patterns)
    if f"Not{element}" in statement:
        patterns = _strings(statement[f"Not{element}"])
        return None if patterns is None else not any(_like(p, value, ignore_case) for p in patterns)
    return True


STRING_OPERATORS: dict[str, tuple[bool, bool, bool]] = {
    # operator: (negated, wildcards, ignore case)
    "StringEquals": (False, False, False),
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False),
    "StringNotLike": (True, True, False),
    "ArnEquals": (False, True, False),
    "ArnLike": (False, True, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
}


def _condition(operator: str, key: str, values: Any, context: Mapping[str, Any]) -> bool | None:
    """One condition key under one operator (IAM User Guide, "IAM JSON policy elements: Condition operators"):
    a key absent from the request makes a condition false, a negated one true, except ...IfExists (true) and Null.
    Keys and operators this model does not know are unknown (None)."""
    if key not in (SECURE_TRANSPORT, VIA_MOUNT_TARGET, ACCESS_POINT_ARN):
        return None
    wanted = [values] if isinstance(values, bool | str) else values
    if not isinstance(wanted, list) or not all(isinstance(v, bool | str) for v in wanted):
        return None
    present = key in context
    if operator == "Null":
        flags = {str(v).lower() for v in wanted}
        return None if not flags <= {"true", "false"} else ("false" if present else "true") in flags
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    if base == "Bool":
        # Only the forms IAM documents ("true"/"false"; JSON booleans too): anything else is not known here.
        flags = {v if isinstance(v, bool) else {"true": True, "false": False}.get(v) for v in wanted}
        if None in flags:
            return None
        return True if not present and if_exists else present and context[key] in flags
    if base not in STRING_OPERATORS:
        return None
    negated, wildcards, ignore_case = STRING_OPERATORS[base]
    if not present:
        return True if if_exists else negated
    value = context[key]
    if not isinstance(value, str) or not all(isinstance(v, str) for v in wanted):
        return None
    if wildcards:
        hit = any(_like(str(v), value, ignore_case) for v in wanted)
    else:
        hit = any((str(v).lower() == value.lower()) if ignore_case else v == value for v in wanted)
    return not hit if negated else hit


def _conditions(statement: Mapping[str, Any], context: Mapping[str, Any]) -> bool | None:
    condition = statement.get("Condition")
    if condition is None:
        return True
    if not isinstance(condition, dict):
        return None
    results: list[bool | None] = []
    for operator, block in condition.items():
        if not isinstance(block, dict) or ":" in operator:  # ForAnyValue:/ForAllValues: are not modelled
            return None
        results += [_condition(operator, key.lower(), values, context) for key, values in block.items()]
    return _all(results)


def statements(policy: Any) -> list[Mapping[str, Any]] | None:
    """A policy's statements (Statement may be one object), None when it is not shaped as IAM documents."""
    found = policy.get("Statement") if isinstance(policy, dict) else None
    found = [found] if isinstance(found, dict) else found
    if not isinstance(found, list) or not all(isinstance(s, dict) for s in found):
        return None
    if any(s.get("Effect") not in ("Allow", "Deny") for s in found):
        return None
    return found


def _label(statement: Mapping[str, Any], index: int) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if isinstance(sid, str) and sid else f"statement {index + 1}"


def decide(policy_statements: Sequence[Mapping[str, Any]], action: str, request: MountRequest, tls: bool) -> Verdict:
    """Whether the file system policy lets the hosts' client do `action`: an applying Deny refuses; else an
    applying Allow allows. With no Allow, an anonymous client is refused; a role may still be allowed by its own
    IAM policies (an allow in either the identity or the file system policy is enough), which are not read here."""
    context = request.context(tls)
    denied: list[str] = []
    deny_unknown: list[str] = []
    allow: bool | None = False
    for index, statement in enumerate(policy_statements):
        applies = _all(
            (
                _principal(statement, request.anonymous),
                _matches(statement, "Action", action, ignore_case=True),
                # A Resource that is not the file system's ARN as built here is unknown rather than another
                # resource: a policy on a file system names that file system.
                _matches(statement, "Resource", request.file_system_arn, ignore_case=False) or None,
                _conditions(statement, context),
            )
        )
        if statement["Effect"] == "Deny":
            if applies:
                denied.append(_label(statement, index))
            elif applies is None:
                deny_unknown.append(_label(statement, index))
        elif applies or (applies is None and allow is False):
            allow = applies
    if denied:
        return Verdict(False, f"{denied[0]} denies {action}")
    if allow is False and request.anonymous:
        return Verdict(False, f"no statement allows {action} to an anonymous client")
    if allow is False:
        return Verdict(None, f"no statement allows {action}: the hosts' role may be allowed by its own IAM policies")
    if deny_unknown:
        return Verdict(None, f"{deny_unknown[0]} may deny {action} (a principal or condition not known here)")
    if allow is None:
        return Verdict(None, f"whether a statement allows {action} rests on a principal or condition not known here")
    return Verdict(True, f"{action} is allowed")


def judge_file_system_policy(
    file_system_id: str, policy_text: str | None, request: MountRequest, findings: Findings
) -> None:
    """file-system-policy from DescribeFileSystemPolicy's Policy (None: PolicyNotFound, the default policy, which
    lets any client that reaches a mount target do everything)."""
    if policy_text is None:
        return
    try:
        policy_statements = statements(json.loads(policy_text))
    except ValueError:
        policy_statements = None
    if policy_statements is None:
        findings.not_sure(f"file-system-policy: the policy of {file_system_id} is not shaped as IAM documents")
        return
    who = (
        "anonymous clients (the group has no access point, so its hosts mount without IAM)"
        if request.anonymous
        else "the hosts' instance role (they mount the group's access point with IAM)"
    )
    for action, consequence in (
        (CLIENT_MOUNT, "its hosts cannot mount it"),
        (CLIENT_WRITE, "its hosts' mount is read-only, and the group asks for read-write"),
    ):
        verdicts = {tls: decide(policy_statements, action, request, tls) for tls in request.tls_cases()}
        if all(v.allowed is False for v in verdicts.values()):
            findings.problem(
                "file-system-policy",
                f"the policy of file system {file_system_id} refuses {action} to {who}: "
                f"{verdicts[True].why}; {consequence}; change the policy",
            )
            return
        if verdicts.get(False) and verdicts[True].allowed is not verdicts[False].allowed:
            # Allowed with TLS or without it, not both: whether the mount works depends on whether the host's
            # helper mounts with TLS (amazon-efs-utils does, and the script installs it where it can), which no
            # API shows. Not a problem to report: what the policy decides either way, in the log.
            refused = False if verdicts[False].allowed is False else True
            findings.not_sure(
                f"file-system-policy: the policy of {file_system_id} refuses {action} "
                f"{'without' if refused is False else 'over'} TLS ({verdicts[refused].why}); the app's mount command "
                f"does not require TLS (it reads a TLS demand only as a Deny with "
                f'{{"Bool": {{"aws:SecureTransport": "false"}}}}), so it depends on the host\'s mount helper'
            )
            continue
        unsure = [v.why for v in verdicts.values() if v.allowed is None]
        if unsure:
            findings.not_sure(f"file-system-policy: the policy of {file_system_id}: {unsure[0]}")
            return


# --- document-drift ---------------------------------------------------------------------------------------------


def content_digest(content: Any) -> str:
    """The canonical digest of a document's content: SHA-256 of its JSON with sorted keys and no whitespace, so
    the text CloudFormation writes from a template object digests like deploy/mount-document.json. (The document
    holds strings only: CloudFormation turns no number or boolean of it into a string.)"""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def judge_document(
    document_name: str,
    account: str,
    region: str,
    described: Mapping[str, Any] | None,
    content: str | None,
    expected_digest: str,
    findings: Findings,
) -> None:
    """document-drift from DescribeDocument's Document (None: the document does not exist) and GetDocument's
    Content of its default version, in JSON."""
    where = f"account {account}, region {region}"
    redeploy = "deploy the app's stack (or the member stack) there again"
    if described is None:
        findings.problem(
            "document-drift",
            f"the mount document {document_name} does not exist in {where}: no host there can be mounted; {redeploy}",
        )
        return
    owner = described.get("Owner")
    if owner != account:
        findings.problem(
            "document-drift",
            f"the mount document {document_name} in {where} is owned by {owner}, not by the account: the app would "
            f"run someone else's document on the hosts; {redeploy}",
        )
        return
    if content is None:
        return
    try:
        digest = content_digest(json.loads(content))
    except ValueError:
        digest = None
    if digest != expected_digest:
        default, latest = described.get("DefaultVersion"), described.get("LatestVersion")
        newer = f" (its latest version is {latest})" if latest and latest != default else ""
        findings.problem(
            "document-drift",
            f"the default version {default} of the mount document {document_name} in {where} is not the one this "
            f"app deploys{newer}: the hosts would run something else; {redeploy}",
        )


# --- agent-offline ----------------------------------------------------------------------------------------------

HOSTS_NAMED = 10


def judge_agents(group_name: str, in_service: Sequence[str], online: set[str], findings: Findings) -> None:
    """agent-offline: the group's hosts in service whose SSM agent SSM does not report Online."""
    offline = sorted(set(in_service) - online)
    if not offline:
        return
    named = ", ".join(offline[:HOSTS_NAMED])
    more = f" and {len(offline) - HOSTS_NAMED} more" if len(offline) > HOSTS_NAMED else ""
    hosts = "host" if len(offline) == 1 else "hosts"
    findings.problem(
        "agent-offline",
        f"{len(offline)} {hosts} of group {group_name} in service have no SSM agent online ({named}{more}): they can "
        f"be neither mounted nor repaired; give their instance profile the policy AmazonSSMManagedInstanceCore and "
        f"them a route to SSM (the ssm, ssmmessages and ec2messages endpoints, or the internet)",
    )

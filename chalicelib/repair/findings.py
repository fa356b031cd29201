"""Repair's pure part: its input checked into a RepairRequest, and what is wrong with a host or a task
definition and which fix follows. Plain data in, plain data out; the repair flow reads and writes AWS."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from chalicelib.mount.attribute import legacy_placement_expression, mount_attribute_name
from chalicelib.mount.commands import RUNNING_STATUSES, spec_from_parameters
from chalicelib.plumbing.names import ACCOUNT_ID, CLUSTER_ARN, GROUP_NAME, REGION

REPAIR_KEYS = ("cluster", "auto_scaling_group", "account", "region", "dry_run")
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


class RepairInputError(ValueError):
    """Repair was invoked with a key that is missing, unknown or malformed; the message names the key."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"repair input `{key}`: {reason}")
        self.key = key


@cache
def partition_regions(own_region: str) -> frozenset[str]:
    """The regions of the partition `own_region` is in (all partitions' when botocore does not know it), from
    the shipped botocore's endpoint data: a name of the right shape that is no region is refused by name."""
    import botocore.loaders

    partitions = botocore.loaders.create_loader().load_data("endpoints")["partitions"]
    regions = [frozenset(partition["regions"]) for partition in partitions]
    return next((found for found in regions if own_region in found), frozenset().union(*regions))


@dataclass(frozen=True)
class RepairRequest:
    cluster: str | None
    auto_scaling_group: str | None
    account: str | None
    region: str
    dry_run: bool = False


def parse_repair_request(event: Any, own_region: str) -> RepairRequest:
    """The invocation's JSON object, checked key by key before any AWS call."""
    if not isinstance(event, dict):
        raise RepairInputError("(input)", "expected a JSON object with `cluster` or `auto_scaling_group`")
    unknown = sorted(str(key) for key in event if key not in REPAIR_KEYS)
    if unknown:
        raise RepairInputError(unknown[0], f"is not a repair key (known: {', '.join(REPAIR_KEYS)})")

    def text(key: str, pattern: re.Pattern[str], shape: str) -> str | None:
        value = event.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise RepairInputError(key, f"{str(value)[:80]!r} is not {shape}")
        return value

    cluster = event.get("cluster")
    if cluster is not None and not (
        isinstance(cluster, str) and (CLUSTER_NAME.fullmatch(cluster) or CLUSTER_ARN.fullmatch(cluster))
    ):
        raise RepairInputError("cluster", f"{str(cluster)[:80]!r} is not an ECS cluster name or ARN")
    group = text("auto_scaling_group", GROUP_NAME, "an Auto Scaling group name")
    if cluster is None and group is None:
        raise RepairInputError("cluster", "is required unless `auto_scaling_group` is given")
    account = text("account", ACCOUNT_ID, "a 12-digit account id")
    region = text("region", REGION, "a region name") or own_region
    if not REGION.fullmatch(region or ""):
        raise RepairInputError("region", "is required: the function's own region is unknown")
    if region != own_region and region not in partition_regions(own_region):
        raise RepairInputError(
            "region", f"{region!r} is not a region of this partition that the shipped botocore knows"
        )
    dry_run = event.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise RepairInputError("dry_run", f"{str(dry_run)[:20]!r} is not true or false")
    if isinstance(cluster, str) and CLUSTER_ARN.fullmatch(cluster):
        # An ARN names its own account and region: they must be the ones repair acts in.
        arn_region, arn_account = cluster.split(":")[3:5]
        if account is not None and arn_account != account:
            raise RepairInputError("cluster", f"is in account {arn_account}, not in `account` {account}")
        if arn_region != region:
            raise RepairInputError("cluster", f"is in region {arn_region}, not in `region` {region}")
        account = account or arn_account
    return RepairRequest(cluster, group, account, region, dry_run)


# --- hosts ------------------------------------------------------------------------------------


class HostFix(Enum):
    NOTHING = "nothing"
    # ECS does not settle it: SSM's record of the host's mount must be read first.
    NEEDS_EVIDENCE = "needs evidence"
    SET_ATTRIBUTE = "set attribute"
    SEND_MOUNT = "send mount"


@dataclass(frozen=True)
class HostFindings:
    problems: tuple[str, ...]
    fix: HostFix


@dataclass(frozen=True)
class MountEvidence:
    """SSM's record of the group's file system on a host (mount_commands.mount_on_record's rule): the path at
    which the newest finished command of our document for it succeeded on the host, or None (none finished in
    SSM's 30 days, or it failed); and how that mount differs from the group's whole mount (None: it is exactly
    the group's)."""

    proven_path: str | None
    difference: str | None = None


# The host refuses a mount over the same file system mounted otherwise at the path (the script's exit 3), and
# the app never unmounts: someone must.
MOUNTED_OTHERWISE_ADVICE = "not marked: replace the host, or unmount it there and run repair again"


def host_findings(
    file_system_id: str,
    mount_path: str,
    registered: bool,
    attribute_value: str | None,
    evidence: MountEvidence | None = None,
) -> HostFindings:
    """What is wrong with a host in service, and the fix (README: Repair, "Evidence that a host is mounted").

    `registered` and `attribute_value` are ECS's word on the container instance it reports on the host (the value
    of the mount attribute for the group's file system at the group's path). When it carries the attribute at the
    group's path, repair would change nothing: no evidence is needed. Anything else is decided by SSM's record
    (`evidence`), the only proof of a mount: proven, exactly the group's mount, the attribute is set (a host not
    registered yet gets it from its registration); at the group's path but otherwise (another access point, or
    none), it is reported and not marked; otherwise the mount is sent, which verifies it on the host, and the
    attribute follows from its status event.
    """
    attribute = mount_attribute_name(file_system_id, mount_path)
    if registered and attribute_value == mount_path:
        return HostFindings((), HostFix.NOTHING)
    if evidence is None:
        return HostFindings((), HostFix.NEEDS_EVIDENCE)
    proven = evidence.proven_path
    if proven == mount_path and evidence.difference is not None:
        return HostFindings((f"mounted otherwise: {evidence.difference}; {MOUNTED_OTHERWISE_ADVICE}",), HostFix.NOTHING)
    if proven == mount_path:
        if not registered:
            return HostFindings((), HostFix.NOTHING)
        problem = (
            f"container instance lacks the attribute {attribute}"
            if attribute_value is None
            else f"attribute {attribute} is {attribute_value!r}, not {mount_path!r}"
        )
        return HostFindings((problem,), HostFix.SET_ATTRIBUTE)
    problems = ["never mounted" if proven is None else f"mounted at {proven}, the group asks for {mount_path}"]
    if attribute_value is not None and attribute_value != proven:
        problems.append(f"its container instance carries {attribute} without a confirmed mount")
    return HostFindings(tuple(problems), HostFix.SEND_MOUNT)


def mount_command_running(commands: list[dict[str, Any]], file_system_id: str, roots: tuple[str, ...]) -> bool:
    """Whether the newest of our mount commands (oldest first) for the file system is still running: then
    another is not sent, and its status event finishes the job."""
    for command in reversed(commands):
        spec = spec_from_parameters(command.get("Parameters", {}), roots)
        if spec is not None and spec.file_system_id == file_system_id:
            return command.get("Status") in RUNNING_STATUSES
    return False


# --- task definitions -------------------------------------------------------------------------


class TaskDefinitionFix(Enum):
    NOTHING = "nothing"
    REGISTER = "register"
    UPDATE_SERVICES = "update services"


@dataclass(frozen=True)
class TaskDefinitionFindings:
    problems: tuple[str, ...]
    fix: TaskDefinitionFix


def task_definition_findings(
    services: list[str],
    mounts_file_system: bool,
    standing: str | None,
    latest_arn: str | None,
    update_services: bool,
) -> TaskDefinitionFindings:
    """What is wrong with a revision tagged for EFS that services of the cluster run, and the fix.

    `standing` and `latest_arn` are the task definition flow's own verdict (`TaskDefinitionFlow.standing`): None
    when the family has no ACTIVE revision, else "latest", "rewritten" (the latest is its rewrite), "in-flight"
    (the latest is the rewrite of an older revision, for the moment a release takes to overtake it), "superseded",
    "rewritten-earlier" (the latest is an earlier release's rewrite, with the constraint that ignores the path),
    or "forged" (the latest carries the source tag naming it but is not the rewrite `is_rewrite_of` rebuilds).
    """
    if mounts_file_system:
        return TaskDefinitionFindings((), TaskDefinitionFix.NOTHING)
    if standing is None:
        return TaskDefinitionFindings(("its family has no ACTIVE revision: not rewritten",), TaskDefinitionFix.NOTHING)
    running = f"service{'s' if len(services) > 1 else ''} {', '.join(sorted(services))}"
    if standing == "rewritten":
        problem = f"{running} still run{'' if len(services) > 1 else 's'} it, not its rewrite {latest_arn}"
        if update_services:
            return TaskDefinitionFindings((problem,), TaskDefinitionFix.UPDATE_SERVICES)
        advice = "UPDATE_SERVICES is off: update the service to the rewrite, or turn the setting on"
        return TaskDefinitionFindings((problem, advice), TaskDefinitionFix.NOTHING)
    if standing == "rewritten-earlier":
        problem = (
            f"{running} still run{'' if len(services) > 1 else 's'} it; its rewrite {latest_arn} is an earlier "
            "release's, whose constraint ignores the host path: no service is moved to it; register the source "
            "again (same tags)"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    if standing == "forged":
        problem = (
            f"the family's latest {latest_arn} names it in efs-automount:source but is not the app's rewrite of it: "
            "no service is moved to it; check who registered it"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    if standing == "superseded":
        problem = (
            f"superseded by {latest_arn}, which is not its rewrite: not rewritten, "
            "because the app never makes an older definition the family's latest"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    if standing == "in-flight":
        problem = (
            f"{latest_arn}, the rewrite of an older revision, is the family's latest for the moment: run repair again"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    problem = "tagged for EFS but never rewritten (its RegisterTaskDefinition event was missed)"
    return TaskDefinitionFindings((problem,), TaskDefinitionFix.REGISTER)


def legacy_constraint_problem(definition: dict[str, Any], file_system_id: str) -> str | None:
    """The problem with a revision whose placement constraint is the one releases before the path-id added
    (`attribute:efs-automount.<fs> exists`): it lets tasks onto hosts mounted at any path, and hosts mounted from
    now on carry only the attribute named after their path, so its tasks find ever fewer hosts. It is a rewrite
    already, never rewritten again: the user registers its source anew. None for any other revision."""
    expression = legacy_placement_expression(file_system_id)
    if not any(c.get("expression") == expression for c in definition.get("placementConstraints") or []):
        return None
    return (
        f"its placement constraint {expression} is an earlier release's: it ignores the host path, and only hosts "
        "mounted before the upgrade carry that attribute; register its source again (same tags) for a rewrite that "
        "asks for the mount at its host path"
    )


# --- the report -------------------------------------------------------------------------------


def summarize(report: dict[str, Any]) -> dict[str, int]:
    items = report.get("groups", []) + report["instances"] + report["lifecycle_actions"] + report["task_definitions"]
    return {
        "examined": len(items),
        "with_problems": sum(1 for item in items if item["problems"]),
        "actions": sum(len(item["actions"]) for item in items),
        "errors": len(report["errors"]),
    }

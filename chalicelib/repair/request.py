"""Repair's input: the invocation's JSON object checked key by key into a RepairRequest, before any AWS call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

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

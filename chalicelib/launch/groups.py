"""Auto Scaling group lookups: a group's tags, its instances (zone and lifecycle state), our hook's timing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError


@dataclass(frozen=True)
class Group:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    # Instance id -> Availability Zone and -> lifecycle state, for the instances the group has now.
    instance_zones: dict[str, str] = field(default_factory=dict)
    instance_states: dict[str, str] = field(default_factory=dict)
    # Whether the group has a warm pool (whose hosts DescribeAutoScalingGroups does not list).
    has_warm_pool: bool = False


@dataclass(frozen=True)
class Hook:
    """Our launch hook's timing on a group: an action not heartbeated for heartbeat_timeout seconds, or
    older than global_timeout, ends with the hook's default result."""

    heartbeat_timeout: int
    global_timeout: int


def _group(raw: dict[str, Any]) -> Group:
    instances = raw.get("Instances", [])
    return Group(
        name=raw["AutoScalingGroupName"],
        tags={tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])},
        instance_zones={i["InstanceId"]: i["AvailabilityZone"] for i in instances},
        instance_states={i["InstanceId"]: i["LifecycleState"] for i in instances},
        has_warm_pool=bool(raw.get("WarmPoolConfiguration")),
    )


@dataclass(frozen=True)
class GroupMember:
    """One instance as its group sees it."""

    group_name: str
    lifecycle_state: str
    zone: str


def describe_member(autoscaling: Any, instance_id: str) -> GroupMember | None:
    """The instance's group, lifecycle state and zone; None once it left every group. One small call,
    whatever the group's size (DescribeAutoScalingGroups would list every instance of it)."""
    found = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance_id])["AutoScalingInstances"]
    if not found:
        return None
    return GroupMember(found[0]["AutoScalingGroupName"], found[0]["LifecycleState"], found[0]["AvailabilityZone"])


def group_tags(autoscaling: Any, group_name: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    pages = autoscaling.get_paginator("describe_tags").paginate(
        Filters=[{"Name": "auto-scaling-group", "Values": [group_name]}]
    )
    for page in pages:
        tags.update({tag["Key"]: tag["Value"] for tag in page["Tags"]})
    return tags


def all_groups(autoscaling: Any) -> Iterator[Group]:
    for page in autoscaling.get_paginator("describe_auto_scaling_groups").paginate(PaginationConfig={"PageSize": 100}):
        yield from (_group(raw) for raw in page["AutoScalingGroups"])


def describe_hook(autoscaling: Any, group_name: str, hook_name: str) -> Hook | None:
    """Our hook on the group, or None when the group does not have it."""
    try:
        hooks = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=group_name, LifecycleHookNames=[hook_name])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            return None
        raise
    for hook in hooks.get("LifecycleHooks", []):
        if hook.get("LifecycleHookName") == hook_name:
            heartbeat = int(hook.get("HeartbeatTimeout", 3600))
            # AWS's global timeout: the lesser of 48 hours and 100 heartbeat timeouts.
            return Hook(heartbeat, int(hook.get("GlobalTimeout", min(172800, 100 * heartbeat))))
    return None


def warm_pool_waiting(autoscaling: Any, group_name: str) -> dict[str, str]:
    """Instance id -> zone of the group's warm-pool hosts waiting on a launch hook on their way into the pool
    (Warmed:Pending:Wait), as DescribeWarmPool reports them."""
    waiting: dict[str, str] = {}
    token = None
    while True:
        page = autoscaling.describe_warm_pool(
            AutoScalingGroupName=group_name, **({"NextToken": token} if token else {})
        )
        for instance in page.get("Instances", []):
            if instance.get("LifecycleState") == "Warmed:Pending:Wait":
                waiting[instance["InstanceId"]] = instance.get("AvailabilityZone", "")
        token = page.get("NextToken")
        if not token:
            return waiting

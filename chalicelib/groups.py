"""Auto Scaling group lookups: a group's tags and the zones of its instances, in one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Group:
    name: str
    tags: dict[str, str] = field(default_factory=dict)
    # Instance id -> Availability Zone, for the instances the group has now (Pending:Wait included).
    instance_zones: dict[str, str] = field(default_factory=dict)


def describe_group(autoscaling: Any, group_name: str) -> Group | None:
    """The group as it is now, or None when it no longer exists."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        return None
    return Group(
        name=group_name,
        tags={tag["Key"]: tag["Value"] for tag in groups[0].get("Tags", [])},
        instance_zones={i["InstanceId"]: i["AvailabilityZone"] for i in groups[0].get("Instances", [])},
    )

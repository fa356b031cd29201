"""Which groups and hosts repair examines (pure): the groups of a cluster's EC2 capacity providers, the groups tagged
for EFS, and a group's hosts waiting on a launch hook or in service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chalicelib.launch.groups import Group
from chalicelib.mount.spec import FILE_SYSTEM_TAG

# Fargate's capacity providers have no Auto Scaling group.
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def ec2_capacity_providers(cluster: Mapping[str, Any]) -> list[str]:
    """The cluster's capacity providers that may have a group (DescribeClusters' shape)."""
    return [p for p in cluster.get("capacityProviders") or [] if p not in FARGATE_PROVIDERS]


def auto_scaling_group_name(provider: Mapping[str, Any]) -> str | None:
    """The group of an EC2 capacity provider (DescribeCapacityProviders' shape): its ARN ends in
    `autoScalingGroupName/<name>`. None for a provider without one."""
    group_arn = (provider.get("autoScalingGroupProvider") or {}).get("autoScalingGroupArn", "")
    if "autoScalingGroupName/" not in group_arn:
        return None
    return group_arn.split("autoScalingGroupName/", 1)[1]


def examined_groups(asked: str | None, described: list[Group]) -> tuple[list[Group], list[dict[str, str]]]:
    """The groups to examine, those tagged for EFS, and the report's errors for a group asked for by name
    (`asked`) that is missing or untagged."""
    tagged = [group for group in described if FILE_SYSTEM_TAG in group.tags]
    errors = []
    if asked is not None and not described:
        errors.append({"item": asked, "error": "Auto Scaling group not found"})
    elif asked is not None and not tagged:
        errors.append({"item": asked, "error": f"group has no {FILE_SYSTEM_TAG} tag"})
    return tagged, errors


def hosts_waiting(group: Group) -> list[str]:
    """The group's hosts held by a launch hook (ours or another's), sorted."""
    return sorted(i for i, state in group.instance_states.items() if state == "Pending:Wait")


def hosts_in_service(group: Group) -> list[str]:
    return [i for i, state in sorted(group.instance_states.items()) if state == "InService"]

"""Auto Scaling group lookups: a group's tags, read fresh or from a short-lived cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

# Container instance events come often; a group's tags rarely change.
TAG_CACHE_SECONDS = 300


def group_tags(autoscaling: Any, group_name: str) -> dict[str, str] | None:
    """The group's tags, or None when the group no longer exists."""
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
    if not groups:
        return None
    return {tag["Key"]: tag["Value"] for tag in groups[0].get("Tags", [])}


class GroupTagCache:
    """group_tags, remembered per (account, region, group) for TAG_CACHE_SECONDS."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, dict[str, str] | None]] = {}

    def get(self, key: tuple[str, ...], autoscaling: Any, group_name: str) -> dict[str, str] | None:
        now = self._clock()
        cached = self._entries.get(key)
        if cached is not None and now - cached[0] < TAG_CACHE_SECONDS:
            return cached[1]
        tags = group_tags(autoscaling, group_name)
        self._entries[key] = (now, tags)
        return tags

"""How long a waiting host may wait, when it needs a heartbeat, and which host the sweeper looks at
first: pure decisions over times that AWS reports (never an event's time or a message's)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from chalicelib.launch.groups import Hook

# Give up this long before AWS's global timeout would decide with the hook's default result.
GLOBAL_TIMEOUT_MARGIN_SECONDS = 300
# AWS's largest global timeout (48 h): no launch event older than this can belong to a waiting host.
MAX_GLOBAL_TIMEOUT_SECONDS = 172800
# Clocks disagree a little; a time further ahead of ours than this is not believed.
CLOCK_SKEW_SECONDS = 300
# Auto Scaling records one activity per launch: "Launching a new EC2 instance: i-…", or "… from warm
# pool: i-…" when the host leaves a warm pool. "… into warm pool: i-…" starts no launch action.
LAUNCH_ACTIVITY = re.compile(r"Launching a new EC2 instance(?: from warm pool)?: (i-[0-9a-f]{8,17})")
# The sweeper runs every minute: a host whose deadline falls within two runs (and a margin) is urgent.
URGENT_WITHIN_SECONDS = 180


def wait_budget(hook: Hook, max_wait_seconds: int) -> float:
    """How long a host may wait in all: our setting, but always short of the hook's global timeout."""
    return min(max_wait_seconds, hook.global_timeout - GLOBAL_TIMEOUT_MARGIN_SECONDS)


def heartbeat_due(now: float, last_heartbeat_at: float | None, hook: Hook) -> bool:
    """Heartbeat at half the hook's heartbeat timeout, so a late Lambda still beats the deadline; when
    nothing AWS reports says when the action last began or was heartbeated, now."""
    return last_heartbeat_at is None or now - last_heartbeat_at >= hook.heartbeat_timeout / 2


def implausible_time(moment: float, now: float, max_age: float) -> str | None:
    """Why a time cannot be the start of a host's wait (it lies ahead of us, or longer ago than any
    wait can last), or None."""
    if moment > now + CLOCK_SKEW_SECONDS:
        return f"{int(moment - now)} s in the future"
    if now - moment > max_age:
        return f"{int(now - moment)} s ago, longer than a wait can last ({max_age} s)"
    return None


def launch_starts(activities: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Instance id -> start (epoch seconds) of its newest launch activity, from DescribeScalingActivities
    pages (newest first)."""
    starts: dict[str, float] = {}
    for activity in activities:
        match = LAUNCH_ACTIVITY.fullmatch(str(activity.get("Description", "")))
        start = activity.get("StartTime")
        if match and isinstance(start, datetime.datetime):
            starts.setdefault(match.group(1), start.timestamp())
    return starts


def over_budget(now: float, started: float | None, budget: float) -> bool:
    """Whether the host has waited longer than its budget; never when its start is not known."""
    return started is not None and now - started > budget


def latest(*moments: float | None) -> float | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def deadline(now: float, started: float | None, last_heartbeat_at: float | None, hook: Hook, budget: float) -> float:
    """When the host must be looked at again: before the hook's heartbeat timeout runs out, and when its
    budget is spent. A host whose times are unknown is due now."""
    beat = latest(started, last_heartbeat_at)
    if beat is None:
        return now
    due = beat + hook.heartbeat_timeout
    return min(due, started + budget) if started is not None else due


@dataclass(frozen=True)
class SweepEntry:
    key: tuple[str, str, str]  # account, region, instance id
    deadline: float
    # When this container last looked at the host (None: never).
    looked_at: float | None


def sweep_order(entries: Iterable[SweepEntry], now: float) -> list[SweepEntry]:
    """Urgent hosts first (deadline within two runs), nearest deadline first; then the others, the one
    looked at longest ago first, so that hosts stuck for good cannot take every run's budget."""
    entries = list(entries)
    urgent = [e for e in entries if e.deadline - now <= URGENT_WITHIN_SECONDS]
    others = [e for e in entries if e.deadline - now > URGENT_WITHIN_SECONDS]
    urgent.sort(key=lambda e: (e.deadline, e.key))
    others.sort(key=lambda e: (float("-inf") if e.looked_at is None else e.looked_at, e.deadline, e.key))
    return urgent + others

"""The figures of a burst: percentiles of the hosts' times, AWS calls per host by operation and by handler, and
the outcomes (decided, timed out, duplicates)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from simulation.scale_out.event_loop import HostRecord, Simulation


def percentile(values: list[float], share: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


def burst_figures(simulation: Simulation, records: list[HostRecord], hosts: int, end: float) -> dict[str, Any]:
    continued = [r for r in records if r.result == "CONTINUE"]
    added = [r.first_command - r.agent_online for r in records if r.first_command and r.agent_online]
    in_service = [r.completed - r.launch for r in continued if r.completed is not None]
    floor = [r.plan.agent_after_s + r.plan.mount_s for r in continued]
    over_floor = [r.completed - r.launch - r.plan.agent_after_s - r.plan.mount_s for r in continued if r.completed]
    by_operation = Counter(call for _, _, call in simulation.calls)
    by_handler = Counter(handler for _, handler, _ in simulation.calls)
    calls = len(simulation.calls)
    return {
        "hosts": hosts,
        "added_latency_p50_s": percentile(added, 0.5),
        "added_latency_p95_s": percentile(added, 0.95),
        "added_latency_max_s": percentile(added, 1.0),
        "launch_to_in_service_p50_s": percentile(in_service, 0.5),
        "launch_to_in_service_p95_s": percentile(in_service, 0.95),
        "floor_p50_s": percentile(floor, 0.5),
        "floor_p95_s": percentile(floor, 0.95),
        "over_floor_p50_s": percentile(over_floor, 0.5),
        "over_floor_p95_s": percentile(over_floor, 0.95),
        "aws_calls": calls,
        "aws_calls_per_host": round(calls / hosts, 2),
        "aws_calls_per_host_by_operation": {k: round(v / hosts, 2) for k, v in sorted(by_operation.items())},
        "aws_calls_per_host_by_handler": {k: round(v / hosts, 2) for k, v in sorted(by_handler.items())},
        "throttled_requests": simulation.throttled,
        "invocations": dict(sorted(simulation.invocations.items())),
        "handler_errors": dict(sorted(simulation.errors.items())),
        "execution_environments": {k: len(v) for k, v in sorted(simulation.environments.items())},
        "dead_letters": simulation.dead_letters,
        "continued": len(continued),
        "abandoned": sum(1 for r in records if r.result == "ABANDON"),
        "undecided": hosts - sum(1 for r in records if r.result or r.timed_out),
        "timed_out": sum(1 for r in records if r.timed_out),
        "duplicate_commands": sum(max(0, r.commands - 1) for r in records),
        "duplicate_decisions": sum(max(0, r.decisions - 1) for r in records),
        "commands_before_agent_online": sum(
            1 for r in records if r.first_command and (r.agent_online is None or r.first_command < r.agent_online)
        ),
        "simulated_seconds": round(end - simulation.start, 1),
    }

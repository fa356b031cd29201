"""A burst: many hosts at once against the moto server of `make demo`, a share of the AWS calls throttled."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from bench.deployed import deployed_settings, function_environment, patched_env, stack_resources
from bench.meter import METER, fresh_app, invoker
from bench.report import progress


def burst(host_count: int, throttle_share: float) -> dict[str, Any]:
    from simulation.demo import local_aws
    from simulation.throttling import throttle_everything

    meter = METER
    with local_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import moto_gaps

        app = fresh_app()
        from simulation.eventbus import EventBus
        from simulation.landscape import build_landscape, scale_out

        land = build_landscape(boto3.Session(region_name="us-east-1"))
        made = stack_resources(land.client)
        settings = deployed_settings("on_launch", made, "on_command_status", "on_container_instance")
        deployed.enter_context(patched_env(function_environment(settings)))
        invoke = invoker(app, meter, settings)
        bus = EventBus(app, invoke)
        throttler = throttle_everything(throttle_share)
        started = time.perf_counter()
        instance_ids = scale_out(land, host_count)
        for instance_id in instance_ids:
            moto_gaps.register_agent(land.account, land.region, instance_id)
        for event in progress(moto_gaps.WORLD.drain(), "burst: launch events"):
            bus.deliver(event)
        answer_all(land)
        for event in progress(moto_gaps.WORLD.drain(), "burst: status events"):
            bus.deliver(event)
        elapsed = time.perf_counter() - started
        throttler.share = 0.0
        completions = [c for c in moto_gaps.WORLD.completions if c[2] in set(instance_ids)]
        decided = {c[2] for c in completions}
        commands = land.client("ssm").list_commands()["Commands"]
        per_host_commands: dict[str, int] = {}
        for command in commands:
            for instance_id in command["InstanceIds"]:
                per_host_commands[instance_id] = per_host_commands.get(instance_id, 0) + 1
        continued = sum(1 for c in completions if c[3] == "CONTINUE")
    return {
        "hosts": host_count,
        "throttled_share": throttle_share,
        "throttled_requests": throttler.throttled,
        "continued": continued,
        "undecided": host_count - len(decided),
        "duplicate_decisions": len(completions) - len(decided),
        "duplicate_commands": sum(n - 1 for n in per_host_commands.values()),
        "aws_calls": len(meter.calls),
        "seconds": round(elapsed, 1),
        "hosts_per_second": round(host_count / elapsed, 1),
        "note": "one process, handlers run one after another against the moto server of `make demo`; "
        "botocore's retry backoff is made instant so throttling costs calls, not sleep",
    }


def answer_all(land: Any) -> None:
    """Every host's agent finishes its mount command successfully (straight in moto, for speed)."""
    from moto.ssm.models import ssm_backends

    from simulation import moto_gaps

    backend = ssm_backends[land.account][land.region]
    for command in list(backend._commands):
        for invocation in command.invocations:
            if invocation["Status"] == "InProgress":
                moto_gaps.finish_invocation(
                    land.account, land.region, command.command_id, invocation["InstanceId"], "Success"
                )

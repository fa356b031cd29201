"""Per host, steady state: the AWS calls and the app's own time for one host's launch, registration and status;
and Lambda time against a flow that polls."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from bench.deployed import deployed_settings, function_environment, patched_env, stack_resources
from bench.meter import METER, Meter, fresh_app, invoker
from bench.report import progress

# Which handler each event of a host's launch goes to (the app's EventBridge rules).
HANDLER_FOR = {
    "EC2 Instance-launch Lifecycle Action": "on_launch",
    "EC2 Command Invocation Status-change Notification": "on_command_status",
    "ECS Container Instance State Change": "on_container_instance",
}


def per_host(hosts_measured: int, command_seconds: float) -> dict[str, Any]:
    from moto import mock_aws

    meter = METER
    with mock_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import moto_gaps

        app = fresh_app()
        from simulation.landscape import build_landscape

        moto_gaps.install()
        land = build_landscape(boto3.Session(region_name="us-east-1"))
        made = stack_resources(land.client)
        settings = deployed_settings("on_launch", made, "on_command_status", "on_container_instance")
        deployed.enter_context(patched_env(function_environment(settings)))
        invoke = invoker(app, meter, settings)
        for _ in range(3):  # warm: clients made, caches filled, settings parsed
            one_host(land, invoke)
        meter.reset()
        invoke.seconds = 0.0  # type: ignore[attr-defined]
        decided = [one_host(land, invoke) for _ in progress(range(hosts_measured), "per host: hosts")]
        continued = sum(moto_gaps.decided_result(land.account, land.region, i) == "CONTINUE" for i in decided)
    return per_host_figures(hosts_measured, command_seconds, continued, meter, invoke.seconds)  # type: ignore[attr-defined]


def one_host(land: Any, invoke: Callable[[str, dict[str, Any]], Any]) -> str:
    """A host launched, its agents online, registered with ECS and its mount answered; every event it makes AWS emit
    handled on the way."""
    from simulation import hosts, moto_gaps
    from simulation.landscape import register_container_instance, scale_out

    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    for event in moto_gaps.WORLD.drain():
        invoke(HANDLER_FOR[event["detail-type"]], event)
    register_container_instance(land, instance_id)
    for event in moto_gaps.WORLD.drain():
        invoke(HANDLER_FOR[event["detail-type"]], event)
    hosts.answer(land, "Success", instance_ids=[instance_id])
    for event in moto_gaps.WORLD.drain():
        invoke(HANDLER_FOR[event["detail-type"]], event)
    return instance_id


def per_host_figures(
    hosts_measured: int, command_seconds: float, continued: int, meter: Meter, seconds: float
) -> dict[str, Any]:
    """The measured hosts' figures, from what `meter` counted and the handlers' `seconds`."""
    calls_per_host = len(meter.calls) / hosts_measured
    handler_seconds = seconds / hosts_measured
    own_seconds = (seconds - meter.aws_seconds) / hosts_measured
    breakdown: dict[str, float] = {}
    for call in meter.calls:
        breakdown[call] = breakdown.get(call, 0) + 1 / hosts_measured
    polling_seconds = command_seconds + handler_seconds
    return {
        "per_host": {
            "hosts": hosts_measured,
            "continued": continued,
            "aws_calls": round(calls_per_host, 2),
            "aws_calls_by_operation": {k: round(v, 2) for k, v in sorted(breakdown.items())},
            "own_ms": round(own_seconds * 1000, 2),
            "handler_ms_incl_aws": round(handler_seconds * 1000, 2),
            "target_calls": 6,
            "target_own_ms": 5,
        },
        "lambda_time_vs_polling": {
            "mount_command_seconds": command_seconds,
            "event_driven_billed_seconds": round(handler_seconds, 4),
            "polling_billed_seconds": round(polling_seconds, 4),
            "ratio_polling_to_event_driven": round(polling_seconds / handler_seconds, 1),
            "note": "billed time of a flow that sleeps until the command ends is the command's "
            "duration plus the same work; AWS latency here is local moto's, lower than real AWS",
        },
    }

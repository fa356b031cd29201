"""The runs: a burst of hosts and one host alone, each in a fresh world, and their figures with what was
modelled."""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from simulation.packaged import build_package
from simulation.scale_out.event_loop import Simulation, schedules
from simulation.scale_out.figures import burst_figures
from simulation.scale_out.model import Model, draw_hosts, median_host
from simulation.scale_out.process import ROOT, Process


def burst(process: Process, hosts: int, throttle: float, seed: int, model: Model, one_environment: bool) -> dict:
    simulation = Simulation(process, model, seed, throttle, one_environment)
    with simulation.world():
        simulation.launch(simulation.start, draw_hosts(hosts, model, seed))
        end = simulation.run(lambda: simulation.all_decided(hosts), simulation.start + model.cap_s)
        records = list(simulation.hosts.values())
        figures = burst_figures(simulation, records, hosts, end)
        figures["records"] = [r.as_dict(simulation.start) for r in records]
    return figures


def single_host(process: Process, seed: int, model: Model, one_environment: bool) -> dict[str, Any]:
    """One host scaled out alone, no throttling, at the middle of every draw: every call the app makes from its
    launch until the attribute is set on its container instance. Cold: the first host, in new execution
    environments. Warm: a second host, launched after the first is done, in the environments the first
    warmed."""
    simulation = Simulation(process, model, seed, 0.0, one_environment)
    simulation.watch_attribute = True
    plan = median_host(model)
    figures: dict[str, Any] = {}
    with simulation.world():
        for label in ("cold", "warm"):
            launched = simulation.process.clock.base + (0.0 if label == "cold" else 30.0)
            known = set(simulation.hosts)
            simulation.launch(launched, [plan])

            def done(known: set[str] = known) -> bool:
                new = [h for i, h in simulation.hosts.items() if i not in known]
                return bool(new) and new[0].attribute_set is not None and new[0].result is not None

            simulation.run(done, launched + model.cap_s)
            host = next(h for i, h in simulation.hosts.items() if i not in known)
            until = host.attribute_set if host.attribute_set is not None else math.inf
            window = [(t, handler, call) for t, handler, call in simulation.calls if launched <= t <= until]
            figures[label] = {
                "aws_calls": len(window),
                "by_operation": dict(sorted(Counter(c for _, _, c in window).items())),
                "by_handler": dict(sorted(Counter(h for _, h, _ in window).items())),
                "launch_to_attribute_s": None if host.attribute_set is None else round(until - launched, 2),
                "launch_to_in_service_s": None if host.completed is None else round(host.completed - launched, 2),
                "result": host.result,
            }
    return {
        "single_host_aws_calls": figures["warm"]["aws_calls"],
        "single_host_aws_calls_cold": figures["cold"]["aws_calls"],
        "single_host": {
            **figures,
            "host": asdict(plan),
            "note": "sweeper calls in the window are counted (its one-minute schedule may fall in it)",
        },
    }


NOTE = (
    "Simulated seconds. The app's real handlers run in-process over moto; each invocation takes "
    "{overhead} s + {call} s per AWS request (throttled ones too) + botocore's backoff, and a new execution "
    "environment adds {cold} s; events it causes are emitted at its end and reach their rules' targets "
    "{eb} s later (+/- jitter). One invocation per execution environment at a time: a function with none free "
    "starts a new one with empty caches. The floor is physics only: the host's SSM agent online + its mount's "
    "own seconds - launch; any design also needs the status event's delivery (~{eb} s) and one handler run "
    "after the mount ends, which are not in the floor. added_latency = first mount command accepted by SSM - "
    "agent online. The SQS poller hands each retry message to on_retry alone (batch of one). Overlapping "
    "invocations run one after another in this process: each one's changes to AWS land as it runs, its clock "
    "advancing per call, so the clock may step back by an invocation's length between happenings. Execution "
    "environments are never reclaimed, and EventBridge loses no event."
)


def simulate(
    hosts: int,
    throttle: float,
    seed: int,
    model: Model,
    app_dir: Path | None,
    one_environment: bool = False,
    package: Path | None = None,
) -> dict[str, Any]:
    """The figures of a burst of `hosts` and of one host alone; `package`: the app's `make package` output (built
    here from `app_dir` when not given)."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if package is None:
            package = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "package"
            build_package((app_dir or ROOT).resolve(), package)
        return _simulate(hosts, throttle, seed, model, app_dir, one_environment, package, started)


def _simulate(
    hosts: int,
    throttle: float,
    seed: int,
    model: Model,
    app_dir: Path | None,
    one_environment: bool,
    package: Path,
    started: float,
) -> dict[str, Any]:
    process = Process(app_dir, throttle_seed=seed, package=package)
    figures = burst(process, hosts, throttle, seed, model, one_environment)
    figures.update(single_host(process, seed, model, one_environment))
    figures.update(
        {
            "throttle": throttle,
            "seed": seed,
            "app": str(process.app_dir),
            "model": model.described(),
            "lambda_environments": "one per function" if one_environment else "one per concurrent invocation",
            "function_settings": {
                name: {"timeout_s": f.timeout_s, "memory_mb": f.memory_mb, "environment": sorted(f.environment)}
                for name, f in sorted(process.functions.items())
            },
            "schedules_s": schedules(process.app),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "note": NOTE.format(
                overhead=model.invocation_overhead_s, call=model.call_s, cold=model.cold_start_s, eb=model.eventbridge_s
            ),
        }
    )
    return figures

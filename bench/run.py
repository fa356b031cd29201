"""`make bench`: what efs-automount costs per host, per burst and per cold start.

Figures that depend on this machine's speed are reported as ratios measured in one run.
Writes build/bench.json, files the app's own log and metric lines in build/bench.log, shows progress
while it measures, and ends with one table. Benchmarks are not tests: nothing here asserts.

Each part measured is a module of bench/; this one runs them (all, or `--only PART`) and writes the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# `python bench/run.py` as well as `python -m bench.run`: the parts are found from the project's root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.burst import burst
from bench.checks import checks_at_scale
from bench.cold_start import cold_start
from bench.deployed import PACKAGED, ROOT, packaged_settings_described
from bench.meter import APP_LOG, METER
from bench.package import package
from bench.per_host import per_host
from bench.repair import repair_at_scale
from bench.report import table
from bench.scale_out import scale_out
from bench.task_definitions import task_definitions

OUT = ROOT / "build" / "bench.json"
PICTURE = "scale-out.png"
LOG = ROOT / "build" / "bench.log"


def main(argv: list[str] | None = None) -> int:
    parser = arguments()
    args = parser.parse_args(argv)
    METER.install()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    log = args.log.open("w")
    APP_LOG[:] = [log]
    results: dict[str, Any] = {}
    steps = parts(args)
    if args.only is not None:
        steps = [step for step in steps if step[0] == args.only]
        if not steps:
            parser.error(f"--only: no part named {args.only!r}")
        if args.out.exists():
            results.update(json.loads(args.out.read_text()))
    measure(steps, results, log)
    log.close()
    if PACKAGED:
        # What was measured: each function as the packaged template deploys it.
        results["function_settings"] = packaged_settings_described()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "scale_out" in dict(steps) and args.out.resolve() == OUT.resolve() and (args.out.parent / PICTURE).exists():
        # The README shows the picture of a full `make bench`.
        import shutil

        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(args.out.parent / PICTURE, ROOT / "docs" / PICTURE)
        print(f"  picture: {args.out.parent / PICTURE}, copied to docs/{PICTURE}", file=sys.stderr)
    print(table(results))
    print(f"\n  figures: {args.out}; the app's log and metric lines: {args.log}")
    return 0


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--hosts", type=int, default=30, help="hosts measured per host (steady state)")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--task-definitions", type=int, default=500)
    parser.add_argument("--repair-hosts", type=int, default=1000)
    parser.add_argument("--repair-services", type=int, default=200)
    parser.add_argument("--scale-out-hosts", type=int, default=1000, help="hosts of the simulated scale-out")
    parser.add_argument("--check-groups", type=int, default=100, help="groups of the hourly checks (3 accounts)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the figures go (JSON)")
    parser.add_argument("--log", type=Path, default=LOG, help="where the app's log and metric lines go")
    parser.add_argument(
        "--only", default=None, help="run one part (e.g. scale_out); the others' figures in --out are kept"
    )
    return parser


def parts(args: argparse.Namespace) -> list[tuple[str, Callable[[], dict[str, Any]]]]:
    """Every part, in the order they run, sized by the command line."""
    return [
        ("cold_start", lambda: cold_start(args.cold_runs)),
        ("per_host", lambda: per_host(args.hosts, command_seconds=20.0)),
        ("task_definitions", lambda: task_definitions(args.task_definitions)),
        ("burst", lambda: burst(args.burst, throttle_share=0.2)),
        ("repair", lambda: repair_at_scale(args.repair_hosts, args.repair_services)),
        ("checks", lambda: checks_at_scale(args.check_groups, account_count=3)),
        ("package", lambda: package(args.cold_runs)),
        ("scale_out", lambda: scale_out(args.scale_out_hosts, 0.2, seed=13, picture=args.out.parent / PICTURE)),
    ]


def measure(steps: list[tuple[str, Callable[[], dict[str, Any]]]], results: dict[str, Any], log: IO[str]) -> None:
    """Each step run, its figures into `results`, its progress on the terminal."""
    print(
        f"efs-automount bench: {len(steps)} parts, a few minutes; progress below, figures at the end", file=sys.stderr
    )
    for number, (name, step) in enumerate(steps, start=1):
        started = time.perf_counter()
        # The handlers' EMF metrics print to stdout, as in Lambda: filed with the logs, off the terminal.
        with contextlib.redirect_stdout(log):
            results[name] = step()
        log.flush()
        print(f"  [{number}/{len(steps)}] {name} measured in {time.perf_counter() - started:.1f}s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

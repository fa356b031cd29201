"""A scale-out in simulated time: the app's real handlers over moto, with AWS's delays modelled.

`python -m simulation.scale_out --hosts 1000 --throttle 0.2 --seed 13 [--app DIR] --out FILE.json`: the figures
(JSON), and with `--records FILE` each host's record."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from simulation.scale_out.model import Model
from simulation.scale_out.process import REGION
from simulation.scale_out.runs import simulate


def main(argv: list[str] | None = None) -> int:
    # Named as it is run: the package's __main__.py would otherwise name itself.
    parser = argparse.ArgumentParser(prog="python -m simulation.scale_out", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--throttle", type=float, default=0.2, help="share of the app's AWS requests throttled")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--app", type=Path, default=None, help="a directory with app.py, chalicelib/, .chalice/")
    parser.add_argument(
        "--package", type=Path, default=None, help="the app's `make package` output (default: built from --app)"
    )
    parser.add_argument("--ecs-delta-mean", type=float, default=Model.ecs_delta_mean_s, help="seconds")
    parser.add_argument("--ecs-delta-sd", type=float, default=Model.ecs_delta_sd_s, help="seconds")
    parser.add_argument("--agent-median", type=float, default=Model.agent_median_s, help="seconds")
    parser.add_argument("--launch-batch", type=int, default=Model.launch_batch, help="hosts launched per second")
    parser.add_argument(
        "--one-environment", action="store_true", help="one warm execution environment per function, however busy"
    )
    parser.add_argument("--out", type=Path, default=None, help="the figures (JSON); stdout without")
    parser.add_argument("--records", type=Path, default=None, help="per-host records (JSON)")
    args = parser.parse_args(argv)
    model = Model(
        ecs_delta_mean_s=args.ecs_delta_mean,
        ecs_delta_sd_s=args.ecs_delta_sd,
        agent_median_s=args.agent_median,
        launch_batch=args.launch_batch,
    )
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ.update(AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    figures = simulate(args.hosts, args.throttle, args.seed, model, args.app, args.one_environment, args.package)
    records = figures.pop("records")
    if args.records:
        args.records.parent.mkdir(parents=True, exist_ok=True)
        args.records.write_text(json.dumps(records) + "\n")
    text = json.dumps(figures, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # The app iterates sets of strings here and there: a fixed hash seed keeps a run's order, and so its
        # figures, the same from one run to the next.
        os.execve(
            sys.executable,
            [sys.executable, "-m", "simulation.scale_out", *sys.argv[1:]],
            {**os.environ, "PYTHONHASHSEED": "0"},
        )
    sys.exit(main())

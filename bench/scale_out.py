"""The scale-out in simulated time (simulation/scale_out/): the working tree's app beside the app before issue 13,
and the picture of launch to in service per host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.deployed import ROOT
from bench.report import progress

# The app as it was before issue 13 ("today's design"), exported from git for the comparison.
TODAY_COMMIT = "05934d3"
TODAY_PARTS = ("app.py", "chalicelib", ".chalice", "deploy", "requirements.txt")
SCALE_OUT_GOALS = {
    "added_latency_p50_s": 2,
    "added_latency_p95_s": 10,
    "aws_calls_per_host": 8,
    "single_host_aws_calls": 12,
}
SCALE_OUT_KEYS = (
    "added_latency_p50_s",
    "added_latency_p95_s",
    "aws_calls_per_host",
    "single_host_aws_calls",
    "single_host_aws_calls_cold",
    "launch_to_in_service_p50_s",
    "launch_to_in_service_p95_s",
    "floor_p50_s",
    "floor_p95_s",
    "over_floor_p50_s",
    "over_floor_p95_s",
    "aws_calls_per_host_by_operation",
    "aws_calls_per_host_by_handler",
    "throttled_requests",
    "continued",
    "undecided",
    "timed_out",
    "duplicate_commands",
    "duplicate_decisions",
    "commands_before_agent_online",
    "simulated_seconds",
    "wall_seconds",
    "single_host",
    "function_settings",
)


def export_today(target: Path) -> str | None:
    """The app of TODAY_COMMIT in `target`; the reason when it cannot be had (no git, no history)."""
    import io
    import shutil
    import tarfile

    git = shutil.which("git")
    if git is None:
        return "git is not installed"
    found = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{TODAY_COMMIT}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        return f"commit {TODAY_COMMIT} is not in this checkout's history (a tarball, or a shallow clone)"
    archive = subprocess.run([git, "-C", str(ROOT), "archive", TODAY_COMMIT, *TODAY_PARTS], capture_output=True)
    if archive.returncode != 0:
        return f"git archive {TODAY_COMMIT} failed: {archive.stderr.decode(errors='replace').strip()}"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return None


def scale_out(hosts: int, throttle_share: float, seed: int, picture: Path | None) -> dict[str, Any]:
    """A burst of `hosts` in simulated time (simulation/scale_out/), for the working tree's app and for the app
    before issue 13, each in its own process, with the same seed and model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        skipped = export_today(work / "today")
        runs = {"new": None} if skipped else {"new": None, "today": work / "today"}
        processes = {}
        for name, app_dir in runs.items():
            command = [sys.executable, "-m", "simulation.scale_out", "--hosts", str(hosts)]
            command += ["--throttle", str(throttle_share), "--seed", str(seed)]
            command += ["--out", str(work / f"{name}.json"), "--records", str(work / f"{name}-hosts.json")]
            if app_dir is not None:
                command += ["--app", str(app_dir)]
            # The two run side by side (a core each); their figures are in simulated time.
            processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        for name, process in progress(processes.items(), "scale-out: simulating", total=len(processes)):
            out, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"scale-out ({name}) failed: {err[-3000:]}")
        figures = {name: json.loads((work / f"{name}.json").read_text()) for name in processes}
        records = {name: json.loads((work / f"{name}-hosts.json").read_text()) for name in processes}
    new = figures["new"]
    result: dict[str, Any] = {key: new.get(key) for key in SCALE_OUT_KEYS}
    result["hosts"], result["throttled_share"], result["seed"] = hosts, throttle_share, seed
    if "today" in figures:
        result["today"] = {key: figures["today"].get(key) for key in SCALE_OUT_KEYS}
        result["today"]["commit"] = TODAY_COMMIT
    else:
        result["today"] = {"skipped": skipped}
    result["model"] = new["model"]
    result["lambda_environments"] = new["lambda_environments"]
    result["goals"] = dict(SCALE_OUT_GOALS)
    result["note"] = new["note"]
    if picture is not None:
        draw_scale_out(records, result, picture)
        result["picture"] = str(picture)
    return result


def draw_scale_out(records: dict[str, list[dict[str, Any]]], figures: dict[str, Any], path: Path) -> None:
    """ECDFs of launch-to-in-service per host, today's design beside the new one, and the physical floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def ecdf(values: list[float]) -> tuple[list[float], list[float]]:
        ordered = sorted(values)
        return ordered, [(i + 1) / len(ordered) for i in range(len(ordered))]

    def in_service(hosts: list[dict[str, Any]]) -> list[float]:
        return [h["completed"] - h["launch"] for h in hosts if h["result"] == "CONTINUE"]

    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    base = records["new"]
    floor = [h["agent_online"] + h["mount_s"] - h["launch"] for h in base if h["agent_online"] is not None]
    axes.step(
        *ecdf(floor), where="post", color="0.35", linestyle="--", label="physical floor: SSM agent online + mount"
    )
    if "today" in records:
        today = in_service(records["today"])
        axes.step(
            *ecdf(today), where="post", color="tab:red", linewidth=3.5, alpha=0.5, label=f"today ({TODAY_COMMIT})"
        )
    axes.step(*ecdf(in_service(base)), where="post", color="tab:blue", linewidth=1.5, label="this working tree")
    model = figures["model"]
    axes.set_xlabel("launch to in service (CompleteLifecycleAction CONTINUE), simulated seconds")
    axes.set_ylabel("share of hosts")
    # The long tail (agents that come online after many minutes) would squeeze the rest: cut at the 99th percentile.
    shown = sorted(floor + in_service(base) + (today if "today" in records else []))
    axes.set_xlim(0, shown[int(0.99 * (len(shown) - 1))] * 1.1 if shown else None)
    axes.text(0.99, 0.3, "x axis cut at the 99th percentile", transform=axes.transAxes, ha="right", fontsize=8)
    axes.set_ylim(0, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(
        f"{figures['hosts']:,} hosts scaled out, {figures['throttled_share']:.0%} of AWS calls throttled: "
        "launch to in service per host\n"
        f"SSM agent online {model['agent_min_s']:g} s + lognormal(median {model['agent_median_s']:g} s, "
        f"sigma {model['agent_sigma']:g}) after launch; ECS registers at agent online + "
        f"N({model['ecs_delta_mean_s']:g} s, sd {model['ecs_delta_sd_s']:g} s); mount {model['mount_min_s']:g}-"
        f"{model['mount_max_s']:g} s",
        fontsize=8.5,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)

"""`make bench` still runs (tiny sizes, a fresh process). Its figures are not judged here: no timing is
asserted, only the correctness figures a benchmark run must never get wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_runs_end_to_end_and_its_correctness_figures_hold(tmp_path):
    out, log = tmp_path / "bench.json", tmp_path / "bench.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    command = [sys.executable, "-m", "bench.run", "--cold-runs", "1", "--hosts", "2", "--burst", "5"]
    command += ["--task-definitions", "3", "--repair-hosts", "4", "--repair-services", "3", "--out", str(out)]
    command += ["--log", str(log), "--scale-out-hosts", "5", "--check-groups", "4"]

    run = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=300)

    # It reads like a report: the app's JSON log lines and EMF metrics went to the log file, not the terminal,
    # and the figures end in one table
    terminal = run.stdout + run.stderr
    assert '"level"' not in terminal and "_aws" not in terminal, terminal[:2000]
    logged = log.read_text()
    assert '"_aws"' in logged and '"level"' in logged
    report = run.stdout.rstrip().splitlines()
    assert report[0].split() == ["figure", "result", "note"]
    assert any(line.strip().startswith("burst: decided CONTINUE") and "5 / 5" in line for line in report)
    assert str(out) in report[-1] and str(log) in report[-1]

    figures = json.loads(out.read_text())
    # What it measured is what is deployed: each function with its packaged settings (issue 18, finding 5), the
    # scale-out's too
    for settings in (figures["function_settings"], figures["scale_out"]["function_settings"]):
        assert "RETRY_QUEUE_URL" in settings["on_container_instance"]["environment"]
        assert "IDEMPOTENCY_TABLE" in settings["on_task_definition"]["environment"]
        assert settings["repair"]["timeout_s"] == figures["repair"]["timeout_seconds"] == 900
    assert figures["burst"]["continued"] == 5
    assert figures["burst"]["duplicate_commands"] == figures["burst"]["duplicate_decisions"] == 0
    assert figures["task_definitions"]["revisions_added"] == 3
    assert figures["per_host"]["per_host"]["continued"] == 2
    assert figures["package"]["deployment_zip_kib"] > figures["package"]["without_sdk_zip_kib"] > 0
    # The cold start compared is the one Lambda would see: the shipped botocore, or the runtime's
    assert figures["package"]["botocore_loaded_from"] == {"shipped": "package", "without_sdk": "runtime"}
    scale_out = figures["scale_out"]
    assert scale_out["continued"] == 5 and scale_out["timed_out"] == 0
    assert scale_out["duplicate_commands"] == scale_out["duplicate_decisions"] == 0
    assert "skipped" in scale_out["today"] or scale_out["today"]["continued"] == 5
    assert (tmp_path / "scale-out.png").stat().st_size > 0
    repair = figures["repair"]
    assert repair["dry_run"]["summary"]["actions"] == repair["repair"]["summary"]["actions"] == 3
    # the group (checked, no problem), 3 hosts, the task definition
    assert repair["second_run"]["summary"] == {"examined": 6, "with_problems": 0, "actions": 0, "errors": 0}
    checks = figures["checks"]
    # 4 groups over 3 accounts, each set up as the README asks: checked, and no problem
    assert checks["groups_checked"] == 4 and checks["problems"] == 0 and checks["errors"] == []
    assert not any(
        call.split(":")[1].startswith(("Create", "Put", "Update", "Delete"))
        for call in checks["aws_calls_by_operation"]
    )
    assert not any(
        call.split(":")[1].startswith(("Create", "Put", "Send", "Register", "Update"))
        for call in repair["dry_run"]["aws_calls_by_operation"]
    )

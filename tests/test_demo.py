"""`make demo` end to end: a fresh process, a local moto server, hosts scaled out and decided."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_demo_mounts_every_host_and_abandons_the_failed_one():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [sys.executable, "-m", "simulation.demo", "--hosts", "3", "--fail", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    table = result.stdout.split("\nResult\n")[1].split("\nTask definition\n")[0]
    rows = [line.split() for line in table.splitlines() if line.strip().startswith("i-")]
    assert [row[4] for row in rows] == ["ABANDON", "CONTINUE", "CONTINUE"]
    assert [row[2] for row in rows] == ["Failed", "Success", "Success"]
    assert all(row[3].startswith("/mnt/efs/fs-") for row in rows[1:])
    assert "waiting: agent, retry in 10s" in result.stdout
    assert "retry message for" in result.stdout
    task_definition = result.stdout.split("\nTask definition\n")[1].split("\nRepair\n")[0]
    assert "uploads:1 -> uploads:2 (2 revisions)" in task_definition
    assert "attribute:efs-automount.fs-" in task_definition
    assert "ignored: already rewritten as" in result.stdout
    # The repair scene: a dry run reports the three drifts, repair fixes them, a second run finds nothing
    dry_run, fixed, again = result.stdout.split("\nRepair\n")[1].split("$ make repair")[1:]
    assert "! never mounted" in dry_run and "-> would send the mount command" in dry_run
    assert "! container instance lacks the attribute efs-automount.fs-" in dry_run
    assert "-> would register the next revision" in dry_run
    assert "examined 4, with problems 3, actions 3, errors 0" in dry_run
    assert "-> mount command sent: " in fixed and "-> registered arn:" in fixed and "-> attribute" in fixed
    assert "nothing to repair" in again and "with problems 0, actions 0, errors 0" in again

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
    task_definition = result.stdout.split("\nTask definition\n")[1]
    assert "uploads:1 -> uploads:2 (2 revisions)" in task_definition
    assert "attribute:efs-automount.fs-" in task_definition
    assert "ignored: already rewritten as" in result.stdout

"""`make demo` end to end: a fresh process, a local moto server, hosts scaled out and decided."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from simulation.namespace_host import namespace_unavailable
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
    table = result.stdout.split("\nResult\n")[1].split("\nHosts\n")[0]
    rows = [line.split() for line in table.splitlines() if line.strip().startswith("i-")]
    assert [row[4] for row in rows] == ["ABANDON", "CONTINUE", "CONTINUE"]
    assert [row[2] for row in rows] == ["Failed", "Success", "Success"]
    assert all(row[3].startswith("/mnt/efs/fs-") for row in rows[1:])
    # the late host: waiting at launch, its mount sent when ECS registers it (at about its SSM agent's time)
    assert "waiting: SSM agent not online yet" in result.stdout
    assert "the moment its mount is sent" in result.stdout
    task_definition = result.stdout.split("\nTask definition\n")[1].split("\nRepair\n")[0]
    assert "uploads:1 -> uploads:2 (2 revisions)" in task_definition
    assert "attribute:efs-automount.fs-" in task_definition
    assert "ignored: already rewritten as" in result.stdout
    # The repair scene: a dry run reports the three drifts, repair fixes them, a second run finds nothing
    repair, checks = result.stdout.split("\nRepair\n")[1].split("\nConfiguration checks\n")
    dry_run, fixed, again = repair.split("$ make repair")[1:]
    assert "! never mounted" in dry_run and "-> would send the mount command" in dry_run
    assert "! container instance lacks the attribute efs-automount.fs-" in dry_run
    assert "-> would register the next revision" in dry_run
    assert "examined 5, with problems 3, actions 3, errors 0" in dry_run  # the group (no problem), 2 hosts, 1 revision
    assert "-> mount command sent: " in fixed and "-> registered arn:" in fixed and "-> attribute" in fixed
    assert "nothing to repair" in again and "with problems 0, actions 0, errors 0" in again
    # The checks scene: the mount targets' group admits only SSH; the dry run names it per mount target; fixed,
    # the check is clean and the next host mounts
    before, after = checks.split("$ make repair GROUP=")[1:]
    assert before.count("! nfs-blocked: mount target fsmt-") == 2 and "admits no TCP 2049" in before
    assert "nothing to repair" in after.split("the next host")[0]
    assert ": InService" in after
    _assert_timeline_reads_well(result.stdout)
    _assert_hosts_ran_the_script(result.stdout, [row[0] for row in rows])


def _assert_timeline_reads_well(stdout: str) -> None:
    header, *lines = stdout.split("\nTimeline")[1].split("\nResult\n")[0].splitlines()
    assert "on a simulated clock" in header
    # Every message starts in the same column, whatever the actor's name
    column = lines[0].index("group ")
    actors = {line[:column].split("s  ", 1)[1].strip() for line in lines}
    assert "Lambda on_container_instance" in actors
    assert all(line[column - 1] == " " and line[column] != " " for line in lines), "\n".join(lines)


def _assert_hosts_ran_the_script(stdout: str, hosts: list[str]) -> None:
    section = stdout.split("\nHosts\n")[1].split("\nTask definition\n")[0]
    if namespace_unavailable() is not None:
        assert "simulated" in section.splitlines()[0]
        return
    # Each host's own host/mount-efs.sh summary, as SSM returned it to the app
    assert "host/mount-efs.sh ran for real" in section.splitlines()[0]
    summaries = {}
    for line in section.splitlines()[1:]:
        found = re.match(r"\s+(i-[0-9a-f]+)\s+exit (\d+)\s+efs-automount: (\{.*\})$", line)
        if found:
            summaries[found[1]] = (int(found[2]), json.loads(found[3]))
    assert list(summaries)[: len(hosts)] == hosts  # then the host repair mounts
    failed_code, failed = summaries[hosts[0]]
    assert failed_code == failed["exit_code"] == 3 and failed["status"] == "failed"
    for code, summary in list(summaries.values())[1:]:
        assert code == 0
        assert summary["status"] == "mounted" and summary["changed"] is True and summary["helper"] == "nfs"
        assert summary["mount_path"] == "/mnt/efs/" + summary["file_system_id"]
        assert summary["ecs_cluster"] == "apps"


def test_make_help_lists_every_target_and_the_demo_options():
    makefile = (ROOT / "Makefile").read_text()
    targets = re.search(r"^\.PHONY: (.*)$", makefile, re.MULTILINE)[1].split()

    result = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True)

    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert set(targets) <= listed | {"help"}, set(targets) - listed
    assert "HOSTS=" in result.stdout and "FAIL=" in result.stdout


def test_without_root_or_unshare_the_demo_says_the_mount_is_simulated():
    from types import SimpleNamespace

    from simulation.demo import host_lines

    agents = SimpleNamespace(
        simulated="needs root to mount in a private namespace",
        summaries={"i-0123456789abcdef0": (0, 'efs-automount: {"status":"mounted","exit_code":0}')},
    )

    lines = host_lines(agents)

    assert lines[0].strip().startswith("The mount is simulated: host/mount-efs.sh did not run here (needs root")
    assert lines[-1].split()[:3] == ["i-0123456789abcdef0", "exit", "0"]

"""The scale-out simulation (simulation/scale_out/) runs the app's real handlers through a small burst in
simulated time, and the app holds its guarantees there: every host decided CONTINUE, none left to its hook's
timeout, no second command and no second decision. And the simulation is honest about its own clock: no
host's mount command is accepted before its SSM agent is online. Outcomes only; no timing is judged.

SCALE_OUT_APP=<dir> runs it against another export of the app (for example the one before issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT

HOSTS = 40


def test_a_small_throttled_burst_decides_every_host_once_and_never_before_its_agent(tmp_path, package_dir):
    out, records = tmp_path / "figures.json", tmp_path / "hosts.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "RETRY_QUEUE_URL"}
    command = [sys.executable, "-m", "simulation.scale_out", "--hosts", str(HOSTS), "--throttle", "0.2"]
    command += ["--seed", "13", "--launch-batch", "20", "--out", str(out), "--records", str(records)]
    if os.environ.get("SCALE_OUT_APP"):
        command += ["--app", os.environ["SCALE_OUT_APP"]]  # its own package, built by the simulation
    else:
        command += ["--package", str(package_dir)]  # the session's `make package` output

    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600)

    figures, hosts = json.loads(out.read_text()), json.loads(records.read_text())
    assert len(hosts) == HOSTS
    assert figures["continued"] == HOSTS, figures
    assert figures["undecided"] == figures["timed_out"] == 0
    assert figures["duplicate_commands"] == figures["duplicate_decisions"] == 0
    assert figures["throttled_requests"] > 0  # the burst really was throttled
    for host in hosts:
        assert host["result"] == "CONTINUE" and host["commands"] == 1 and host["decisions"] == 1, host
        # The simulation's own honesty: SSM accepts no command before the host's agent is online, and the host is
        # in service only after its mount ran.
        assert host["agent_online"] <= host["first_command"], host
        assert host["first_command"] + host["mount_s"] <= host["completed"], host
    assert figures["commands_before_agent_online"] == 0
    assert figures["added_latency_p50_s"] >= 0
    # One host alone: its attribute is set and it is decided, warm and cold.
    for run in ("warm", "cold"):
        assert figures["single_host"][run]["result"] == "CONTINUE"
        assert figures["single_host"][run]["launch_to_attribute_s"] is not None
    assert 0 < figures["single_host_aws_calls"] <= figures["single_host_aws_calls_cold"]


def test_the_simulated_functions_run_with_their_packaged_settings(package_dir, monkeypatch):
    # Issue 18, finding 5: what is measured is what is deployed. Each function the simulation invokes sees its own
    # packaged environment (the queue's URL where the template gives it), memory and timeout, and no other's.
    from simulation import packaged
    from simulation.scale_out.clock import Invocation
    from simulation.scale_out.model import Model
    from simulation.scale_out.process import Context, Process

    process = Process(None, throttle_seed=1, package=package_dir)
    process.functions = packaged.load(package_dir / "sam.json", {"RetryQueue": "q", "IdempotencyTable": "t"})
    for variable in {v for f in process.functions.values() for v in f.environment} | {"POWERTOOLS_LOG_LEVEL"}:
        monkeypatch.setenv(variable, "")  # recorded: put back as it was (or removed) after the test
    for name, settings in process.functions.items():
        process.use_function(name)
        seen = {variable: os.environ.get(variable) for f in process.functions.values() for variable in f.environment}
        expected = {**settings.environment, "POWERTOOLS_LOG_LEVEL": "WARNING"}
        assert {k: v for k, v in seen.items() if v is not None} == expected, name
        context = Context(Invocation(name, 100.0, Model()), settings)
        assert context.memory_limit_in_mb == settings.memory_mb
        assert context.get_remaining_time_in_millis() <= settings.timeout_s * 1000
    assert process.functions["on_container_instance"].environment["RETRY_QUEUE_URL"] == "q"
    assert process.functions["repair"].timeout_s == 900

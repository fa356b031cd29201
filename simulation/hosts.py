"""The hosts' side: SSM agents that come online and answer mount commands as a real host would."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from simulation import moto_gaps
from simulation.landscape import Landscape
from simulation.namespace_host import ROOT, NamespaceHost, namespace_unavailable

MOUNT_DOCUMENT = ROOT / "deploy" / "mount-document.json"

SUMMARY = (
    'efs-automount: {{"status":"{status}","exit_code":{code},"file_system_id":"{fs}","mount_path":"{path}",'
    '"ecs_cluster":"{cluster}"}}'
)


def boot_agents(land: Landscape, instance_ids: Iterable[str], ping_status: str = "Online") -> None:
    for instance_id in instance_ids:
        moto_gaps.register_agent(land.account, land.region, instance_id, ping_status)


def running_invocations(land: Landscape, instance_id: str | None = None) -> list[dict]:
    """Invocations the agents have not finished, oldest first."""
    ssm = land.client("ssm")
    commands = ssm.list_commands(**({"InstanceId": instance_id} if instance_id else {}))["Commands"]
    running = []
    for command in commands:
        invocations = ssm.list_command_invocations(CommandId=command["CommandId"])["CommandInvocations"]
        running += [
            dict(i, Parameters=command["Parameters"])
            for i in invocations
            if i["Status"] == "InProgress" and (instance_id is None or i["InstanceId"] == instance_id)
        ]
    return running


def answer(
    land: Landscape,
    status: str = "Success",
    response_code: int | None = None,
    instance_ids: Iterable[str] | None = None,
    emit: bool = True,
) -> list[tuple[str, str]]:
    """Finish every running invocation (of the given hosts) with `status`; returns (command, instance) pairs."""
    wanted = set(instance_ids) if instance_ids is not None else None
    code = response_code if response_code is not None else (0 if status == "Success" else 75)
    answered = []
    for invocation in running_invocations(land):
        if wanted is not None and invocation["InstanceId"] not in wanted:
            continue
        parameters = invocation["Parameters"]
        output = SUMMARY.format(
            status="mounted" if status == "Success" else "failed",
            code=code,
            fs=parameters.get("FileSystemId", [""])[0],
            path=json.dumps(parameters.get("MountPath", [""])[0])[1:-1],
            # The cluster named by ECS_CLUSTER in the host's /etc/ecs/ecs.config (the landscape's user data).
            cluster=land.cluster_name,
        )
        moto_gaps.finish_invocation(
            land.account, land.region, invocation["CommandId"], invocation["InstanceId"], status, code, output, emit
        )
        answered.append((invocation["CommandId"], invocation["InstanceId"]))
    return answered


@dataclass
class ScriptAgents:
    """SSM agents that run what the mount document runs, for real: its script (with the MOUNT_ROOTS baked
    into it) and the command's parameters as the SSM_* environment, each host in its own private mount
    namespace where a tmpfs stands in for NFS (simulation/namespace_host.py). Where that cannot run (not
    root, or no `unshare`), `simulated` says why, and the agents answer with a made-up summary instead."""

    land: Landscape
    workdir: Path
    simulated: str | None = field(default_factory=namespace_unavailable)
    summaries: dict[str, tuple[int, str]] = field(default_factory=dict)  # host -> (exit code, summary line)

    def answer(
        self, instance_ids: Iterable[str] | None = None, occupied: Iterable[str] = ()
    ) -> list[tuple[str, str, str]]:
        """Run every running invocation (of the given hosts); returns (command, instance, SSM status).

        On an `occupied` host someone else's data already sits at the mount path, so the script refuses
        it (exit 3, permanent)."""
        wanted, occupied = set(instance_ids) if instance_ids is not None else None, set(occupied)
        answered = []
        for invocation in running_invocations(self.land):
            command_id, instance_id = invocation["CommandId"], invocation["InstanceId"]
            if wanted is not None and instance_id not in wanted:
                continue
            parameters = _document_defaults() | {k: v[0] for k, v in invocation["Parameters"].items() if v}
            if self.simulated:
                code = 3 if instance_id in occupied else 0
                output = SUMMARY.format(
                    status="failed" if code else "mounted",
                    code=code,
                    fs=parameters["FileSystemId"],
                    path=json.dumps(parameters["MountPath"])[1:-1],
                    cluster=self.land.cluster_name,
                )
            else:
                code, output = self._run_script(command_id, instance_id, parameters, instance_id in occupied)
            status = "Success" if code == 0 else "Failed"
            moto_gaps.finish_invocation(
                self.land.account, self.land.region, command_id, instance_id, status, code, output
            )
            self.summaries[instance_id] = (code, (output.strip().splitlines() or [""])[-1])
            answered.append((command_id, instance_id, status))
        return answered

    def _run_script(
        self, command_id: str, instance_id: str, parameters: dict[str, str], occupied: bool
    ) -> tuple[int, str]:
        script = self.workdir / "mount-document.sh"
        if not script.exists():
            commands = json.loads(MOUNT_DOCUMENT.read_text())["mainSteps"][0]["inputs"]["runCommand"]
            script.write_text("\n".join(commands) + "\n")
        fs, region, path = parameters["FileSystemId"], parameters["Region"], parameters["MountPath"]
        host = NamespaceHost(
            self.workdir / f"{instance_id}-{command_id[:8]}",
            dns_name=f"{fs}.efs.{region}.amazonaws.com",
            dns_address=parameters.get("MountTargetIp") or "10.0.0.17",
            script=script,
            ecs_config=f"ECS_CLUSTER={self.land.cluster_name}\n",
        )
        someone_elses = f"mkdir -p {shlex.quote(path)} && echo data >{shlex.quote(path + '/README')}"
        (run,) = host.run(*([someone_elses] if occupied else []), {f"SSM_{k}": v for k, v in parameters.items()})
        return run.code, run.stdout


def _document_defaults() -> dict[str, str]:
    """The parameters SSM fills in from the document when the command does not send them."""
    parameters = json.loads(MOUNT_DOCUMENT.read_text())["parameters"]
    return {name: spec["default"] for name, spec in parameters.items() if "default" in spec}

"""The hosts' side: SSM agents that come online and answer mount commands as a real host would."""

from __future__ import annotations

import json
from collections.abc import Iterable

from simulation import moto_gaps
from simulation.landscape import Landscape

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

"""`make demo`'s configuration-checks scene: the mount targets' security group admits only SSH (a first setup),
repair's dry run names it before any host fails, the platform team fixes it, the check is clean, and the next
host mounts (README: "Configuration checks")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NFS = {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049}
SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}


def _admit_only(ec2: Any, group_id: str, permission: dict[str, Any], source_group: str) -> None:
    """The security group's ingress becomes this one rule, from the hosts' security group."""
    (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    if group["IpPermissions"]:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=group["IpPermissions"])
    ec2.authorize_security_group_ingress(
        GroupId=group_id, IpPermissions=[{**permission, "UserIdGroupPairs": [{"GroupId": source_group}]}]
    )


def checks_scene(
    land: Any,
    invoke_repair: Callable[[dict[str, Any]], dict[str, Any]],
    deliver: Callable[[list[dict[str, Any]]], None],
    timeline: Callable[[str, str], None],
    agents: Any,
) -> tuple[list[str], bool]:
    """Break, find, fix, check, mount; returns the printed checks and whether the next host mounted."""
    from simulation import hosts, moto_gaps
    from simulation.landscape import lifecycle_state, scale_out
    from tools.repair import render_table

    ec2 = land.client("ec2")
    target_group, host_group = land.mount_target_security_group_id, land.host_security_group_id
    _admit_only(ec2, target_group, SSH, host_group)
    timeline("platform team", f"the mount targets' security group {target_group} admits only SSH from the hosts")
    printed = []
    payload = {"auto_scaling_group": land.group_name, "dry_run": True}
    for title in ("before the next scale-out", "after the fix"):
        report = invoke_repair(payload)
        (group,) = report["groups"]
        command = f"make repair GROUP={land.group_name} DRY_RUN=1"
        timeline("operator", f"{command} ({title}): {len(group['problems'])} problem(s)")
        printed += [f"$ {command}   # {title}", *(f"  {line}" for line in render_table(report).splitlines()), ""]
        if title == "before the next scale-out":
            _admit_only(ec2, target_group, NFS, host_group)
            timeline("platform team", f"{target_group} admits TCP 2049 from the hosts' group {host_group}")
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver(moto_gaps.WORLD.drain())
    for _, _, status in agents.answer([instance_id]):
        timeline("SSM agent", f"{instance_id}: mount script finished: {status}")
    deliver(moto_gaps.WORLD.drain())
    state = lifecycle_state(land, instance_id)
    timeline("Auto Scaling", f"{instance_id} is {state}")
    printed.append(f"the next host, {instance_id}: {state}")
    return printed, state == "InService"

"""The mount targets' security group, set to admit exactly what a test needs."""

from __future__ import annotations

from typing import Any

from simulation.landscape import Landscape

NFS = {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049}
SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22}


def replace_ingress(land: Landscape, *permissions: dict[str, Any]) -> None:
    """The mount targets' group admits exactly `permissions`."""
    ec2 = land.client("ec2")
    group_id = land.mount_target_security_group_id
    current = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]["IpPermissions"]
    ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=current)
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=list(permissions))

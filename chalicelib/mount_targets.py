"""Which EFS mount target a host uses: the one in its Availability Zone, found before anything is sent.

A file system is reachable only through a mount target in the host's own zone (without
one, its DNS name does not resolve there), and a new mount target takes time to resolve;
so the Lambda finds it and passes its IP to the host script as a fallback.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class NoMountTarget(Exception):
    """The file system cannot be mounted from the host's zone: a permanent failure."""


class MountTargetNotReady(Exception):
    """The zone's mount target is still being created: try again later."""


def select_mount_target_ip(targets: list[dict[str, Any]], file_system_id: str, zone: str) -> str:
    """The IP of the file system's available mount target in `zone`."""
    in_zone = [t for t in targets if t.get("AvailabilityZoneName") == zone]
    if not in_zone:
        zones = sorted({t.get("AvailabilityZoneName", "?") for t in targets}) or ["none"]
        raise NoMountTarget(
            f"{file_system_id} has no mount target in {zone}, the host's Availability Zone "
            f"(it has mount targets in: {', '.join(zones)}); create one there"
        )
    available = [t for t in in_zone if t.get("LifeCycleState") == "available"]
    if not available:
        state = in_zone[0].get("LifeCycleState")
        raise MountTargetNotReady(f"the mount target of {file_system_id} in {zone} is {state}, not available yet")
    return available[0]["IpAddress"]


def describe_mount_targets(efs: Any, file_system_id: str) -> list[dict[str, Any]]:
    try:
        pages = efs.get_paginator("describe_mount_targets").paginate(FileSystemId=file_system_id)
        return [target for page in pages for target in page["MountTargets"]]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "FileSystemNotFound":
            raise NoMountTarget(f"file system {file_system_id} does not exist in this account and region") from exc
        raise

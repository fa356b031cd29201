"""What a host needs to know about its file system before anything is sent: the mount target in its
Availability Zone, and whether the file system's policy demands TLS.

A file system is reachable only through a mount target in the host's own zone (without
one, its DNS name does not resolve there), and a new mount target takes time to resolve;
so the Lambda finds it and passes its IP to the host script as a fallback.
"""

from __future__ import annotations

import json
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


def policy_requires_tls(policy: dict[str, Any]) -> bool:
    """True when a file system policy denies requests made without TLS (aws:SecureTransport false)."""
    for statement in policy.get("Statement", []):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        condition = statement.get("Condition", {})
        secure = condition.get("Bool", {}).get("aws:SecureTransport") if isinstance(condition, dict) else None
        if secure in ("false", False, ["false"]):
            return True
    return False


def file_system_requires_tls(efs: Any, file_system_id: str) -> bool:
    try:
        policy = efs.describe_file_system_policy(FileSystemId=file_system_id)["Policy"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "PolicyNotFound":
            return False
        raise
    return policy_requires_tls(json.loads(policy))

"""What to mount on a group's hosts: the group's tags, validated, and the SSM parameters they become.

Pure functions over plain data. The patterns here are the only gate between a tag
value and a root shell on the host, and the mount document repeats them as its
parameters' allowedPattern (tools/build_deploy.py). A mount path must lie strictly under
one of MOUNT_ROOTS, the directories whoever deploys the app chose (contract, "Settings").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.names import DEFAULT_MOUNT_ROOTS, PATH_COMPONENT, REGION

TAG_PREFIX = "efs-automount:"
FILE_SYSTEM_TAG = "efs-automount:file-system-id"
MOUNT_PATH_TAG = "efs-automount:mount-path"
ACCESS_POINT_TAG = "efs-automount:access-point-id"
ON_FAILURE_TAG = "efs-automount:on-failure"

FILE_SYSTEM_ID = re.compile(r"^fs-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
ACCESS_POINT_ID = re.compile(r"^fsap-[0-9a-f]{17}$")
IPV4_ADDRESS = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$")
# 128 at most: the path is also the value of the ECS attribute, which allows no more.
MOUNT_PATH = re.compile(r"^/[A-Za-z0-9._/-]{1,127}$")


def mount_path_pattern(roots: Sequence[str]) -> str:
    """A mount path strictly under one of `roots`, as far as a pattern can say it (not its length)."""
    alternatives = "|".join(root.replace(".", r"\.") for root in roots)
    return rf"^(?:{alternatives})(?:/{PATH_COMPONENT})+$"


class MountConfigError(ValueError):
    """A group tag has a value efs-automount refuses; the message names the tag and why."""

    def __init__(self, tag: str, reason: str) -> None:
        super().__init__(f"tag {tag}: {reason}")
        self.tag = tag
        self.reason = reason


@dataclass(frozen=True)
class MountSpec:
    file_system_id: str
    mount_path: str
    access_point_id: str | None = None


def default_mount_path(file_system_id: str) -> str:
    return f"/mnt/efs/{file_system_id}"


def validate_mount_path(path: str, tag: str, roots: Sequence[str] = DEFAULT_MOUNT_ROOTS) -> str:
    if not MOUNT_PATH.fullmatch(path):
        raise MountConfigError(tag, f"{path[:80]!r} is not an absolute path of [A-Za-z0-9._/-] up to 128 characters")
    if ".." in path:
        raise MountConfigError(tag, f"{path!r} contains '..'")
    normalised = re.sub(r"/+", "/", path).rstrip("/") or "/"
    if normalised != path:
        raise MountConfigError(tag, f"{path!r} is not in normal form; write {normalised!r}")
    if any(part in ("", ".") for part in path.split("/")[1:]):
        raise MountConfigError(tag, f"{path!r} has an empty or '.' component")
    if not any(path.startswith(root + "/") for root in roots):
        raise MountConfigError(
            tag, f"{path!r} is not strictly under one of MOUNT_ROOTS ({', '.join(roots)}), set when the app is deployed"
        )
    return path


def file_system_id_from_tags(tags: Mapping[str, str]) -> str | None:
    """The file system tag's value, validated; None without the tag (group and task definition alike)."""
    if FILE_SYSTEM_TAG not in tags:
        return None
    file_system_id = tags[FILE_SYSTEM_TAG]
    if not FILE_SYSTEM_ID.fullmatch(file_system_id):
        raise MountConfigError(FILE_SYSTEM_TAG, f"{file_system_id[:80]!r} is not fs- followed by 8 or 17 hex digits")
    return file_system_id


def access_point_id_from_tags(tags: Mapping[str, str]) -> str | None:
    access_point_id = tags.get(ACCESS_POINT_TAG) or None
    if access_point_id is not None and not ACCESS_POINT_ID.fullmatch(access_point_id):
        raise MountConfigError(ACCESS_POINT_TAG, f"{access_point_id[:80]!r} is not fsap- followed by 17 hex digits")
    return access_point_id


def mount_spec_from_tags(tags: Mapping[str, str], roots: Sequence[str] = DEFAULT_MOUNT_ROOTS) -> MountSpec | None:
    """The mount a group asks for, None when it has no file system tag; raises MountConfigError."""
    file_system_id = file_system_id_from_tags(tags)
    if file_system_id is None:
        return None
    mount_path = tags.get(MOUNT_PATH_TAG) or default_mount_path(file_system_id)
    validate_mount_path(mount_path, MOUNT_PATH_TAG, roots)
    return MountSpec(file_system_id, mount_path, access_point_id_from_tags(tags))


def failure_result_from_tags(tags: Mapping[str, str], default: LifecycleResult) -> LifecycleResult:
    """The result for a host whose mount failed for good; raises MountConfigError for a bad tag."""
    value = tags.get(ON_FAILURE_TAG)
    if value is None:
        return default
    try:
        return LifecycleResult(value)
    except ValueError:
        raise MountConfigError(ON_FAILURE_TAG, f"{value[:80]!r} is neither ABANDON nor CONTINUE") from None


def mount_command_parameters(
    spec: MountSpec, region: str, mount_target_ip: str, require_tls: bool = False
) -> dict[str, list[str]]:
    """The SendCommand parameters for the mount document: exactly what reaches the host."""
    if not REGION.fullmatch(region):
        raise ValueError(f"region {region[:40]!r} is not an AWS region name")
    if not IPV4_ADDRESS.fullmatch(mount_target_ip):
        raise ValueError(f"mount target IP {mount_target_ip[:40]!r} is not an IPv4 address")
    return {
        "FileSystemId": [spec.file_system_id],
        "MountPath": [spec.mount_path],
        "Region": [region],
        "AccessPointId": [spec.access_point_id or ""],
        "MountTargetIp": [mount_target_ip],
        "ReadOnly": ["false"],
        # An access point is always mounted with TLS and IAM; a policy may demand TLS of every client.
        "RequireTls": ["true" if require_tls or spec.access_point_id else "false"],
    }

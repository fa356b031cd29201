"""SSM's record of our mount commands on a host: which were sent, how each ended there, what each mounted.

This record, not a tag anyone could write, is what proves a mount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.mount.spec import (
    ACCESS_POINT_TAG,
    FILE_SYSTEM_TAG,
    MOUNT_PATH_TAG,
    MountConfigError,
    MountSpec,
    mount_spec_from_tags,
)

RUNNING_STATUSES = frozenset({"Pending", "InProgress", "Delayed", "Cancelling"})


# DescribeInstanceInformation takes at most 50 instance ids in its InstanceIds filter.
INSTANCE_INFORMATION_PER_CALL = 50


def agents_online(ssm: Any, instance_ids: list[str]) -> set[str]:
    """The hosts whose SSM agent SSM reports Online: one call per 50 hosts."""
    online: set[str] = set()
    for start in range(0, len(instance_ids), INSTANCE_INFORMATION_PER_CALL):
        batch = instance_ids[start : start + INSTANCE_INFORMATION_PER_CALL]
        pages = ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": batch}]
        )
        for page in pages:
            online |= {
                item["InstanceId"]
                for item in page.get("InstanceInformationList", [])
                if item.get("PingStatus") == "Online" and item.get("InstanceId") in batch
            }
    return online


# SendCommand's Comment holds at most 100 characters.
COMMENT_LENGTH = 100
LAUNCH_COMMENT = "efs-automount: launch"
NAMING = " in "


def launch_comment(group_name: str) -> str:
    """The comment of a launch mount: it names the host's group when the name fits (Auto Scaling allows 255
    characters), for whoever reads SSM's command history. Anyone who may run the document writes comments:
    the app never reads one back."""
    named = f"{LAUNCH_COMMENT}{NAMING}{group_name}"
    # ASCII only: SSM documents the limit as a length without saying whether it counts characters, UTF-16 units
    # or bytes; for ASCII they are the same, and a comment over the limit would make every SendCommand fail.
    return named if len(named) <= COMMENT_LENGTH and named.isascii() else LAUNCH_COMMENT


def commands_for(ssm: Any, instance_id: str, document: str) -> list[dict[str, Any]]:
    """Our mount commands sent to the host, oldest first."""
    commands = []
    for page in ssm.get_paginator("list_commands").paginate(InstanceId=instance_id):
        commands += [c for c in page["Commands"] if c.get("DocumentName") == document]
    return sorted(commands, key=lambda c: c["RequestedDateTime"])


def invocation(ssm: Any, command: dict[str, Any], instance_id: str) -> dict[str, Any]:
    """The host's invocation as SSM reports it. A one-host command that succeeded says all we need;
    a failure is read in full for the script's exit code and summary (and a command sent to several hosts
    says nothing of one of them: its Success allows errors up to MaxErrors)."""
    if command.get("InstanceIds") == [instance_id] and command["Status"] == "Success":
        return {"Status": "Success"}
    return ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)


def spec_from_parameters(parameters: dict[str, list[str]], roots: tuple[str, ...]) -> MountSpec | None:
    """The mount a command asked for, read back from its parameters: None if they are not a mount the app
    sends (the app never mounts read-only; an omitted parameter is the document's default)."""
    try:
        if parameters.get("ReadOnly", ["false"])[0] != "false":
            return None
        tags = {
            FILE_SYSTEM_TAG: parameters["FileSystemId"][0],
            MOUNT_PATH_TAG: parameters["MountPath"][0],
            ACCESS_POINT_TAG: parameters.get("AccessPointId", [""])[0],
        }
        return mount_spec_from_tags(tags, roots)
    except (KeyError, IndexError, TypeError, AttributeError, MountConfigError):
        return None


def latest_finished(commands: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per file system (its FileSystemId parameter), the newest of the commands (oldest first) that has finished,
    whatever else it asked for. A running command is left to its own status event."""
    latest: dict[str, dict[str, Any]] = {}
    for command in commands:
        file_system_id = (command.get("Parameters") or {}).get("FileSystemId") or [None]
        if isinstance(file_system_id[0], str) and command.get("Status") not in RUNNING_STATUSES:
            latest[file_system_id[0]] = command
    return latest


def mount_difference(parameters: dict[str, list[str]], asked: MountSpec, roots: tuple[str, ...]) -> str | None:
    """The one rule for "this command mounted the group's mount": None when its parameters ask for exactly the
    mount the group asks for now, whole (file system, path, access point, read-write); otherwise how they
    differ, in a few words. A mount of the same file system without the group's access point is not this mount:
    tasks there would see the whole file system."""
    try:
        read_only = parameters.get("ReadOnly", ["false"])[0] != "false"
    except (IndexError, TypeError, AttributeError):
        read_only = True
    if read_only:
        return "read-only"
    mounted = spec_from_parameters(parameters, roots)
    if mounted is None:
        return "with parameters the app does not send"
    if mounted.file_system_id != asked.file_system_id:
        return f"file system {mounted.file_system_id}, not {asked.file_system_id}"
    if mounted.mount_path != asked.mount_path:
        return f"at {mounted.mount_path}, not {asked.mount_path}"
    if mounted.access_point_id == asked.access_point_id:
        return None
    if mounted.access_point_id is None:
        return f"without the group's access point {asked.access_point_id}"
    if asked.access_point_id is None:
        return f"through access point {mounted.access_point_id}, where the group asks for none"
    return f"through access point {mounted.access_point_id}, not the group's {asked.access_point_id}"


def command_difference(command: dict[str, Any], asked: MountSpec, roots: tuple[str, ...]) -> str | None:
    """How a command of the document differs from the group's whole mount (mount_difference), or that it ran
    another version of the document than its default (whose script may do anything: it proves no mount)."""
    version = command.get("DocumentVersion")
    if version not in DEFAULT_VERSIONS:
        return f"on document version {str(version)[:20]}, not the default"
    return mount_difference(command.get("Parameters") or {}, asked, roots)


@dataclass(frozen=True)
class MountOnRecord:
    """SSM's record of the group's file system on a host: the newest finished command of the document for it
    succeeded there, asking for the mount at `mount_path`; `difference` says how that mount differs from the
    group's whole mount (mount_difference), None when it is exactly the group's: only then is the host mounted
    as its group asks, and marked."""

    mount_path: str | None
    difference: str | None


def mount_on_record(
    ssm: Any, instance_id: str, commands: list[dict[str, Any]], asked: MountSpec, roots: tuple[str, ...]
) -> MountOnRecord | None:
    """What SSM's record (`commands`, oldest first) proves of the group's file system on the host; None when the
    newest finished command for it did not succeed there, or there is none. The registration step, the status
    step and repair judge a host in service by it. No call for a one-host command."""
    command = latest_finished(commands).get(asked.file_system_id)
    if command is None or invocation(ssm, command, instance_id)["Status"] != "Success":
        return None
    parameters = command.get("Parameters") or {}
    path = (parameters.get("MountPath") or [None])[0]
    return MountOnRecord(path if isinstance(path, str) else None, command_difference(command, asked, roots))


def requested_at(command: dict[str, Any]) -> float:
    return command["RequestedDateTime"].timestamp()


# SendCommand's DocumentVersion: "$DEFAULT, $LATEST, or a specific version number"
# (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html). The app names none, so
# SSM runs the default version; a command that named another version ran something else.
DEFAULT_VERSIONS = frozenset({None, "", "$DEFAULT"})


def host_status(ssm: Any, command: dict[str, Any], instance_id: str) -> str:
    """The status of the command on this host: the command's own for a one-host command (no call), the
    host's invocation's otherwise (a command's Success allows failures up to MaxErrors)."""
    if command.get("InstanceIds") == [instance_id]:
        return str(command["Status"])
    return str(invocation(ssm, command, instance_id)["Status"])

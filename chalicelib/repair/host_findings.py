"""What is wrong with a host of an examined group, and which fix follows (pure): ECS's word on its container
instance and SSM's record of its mount in, the problems and the fix out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from chalicelib.mount.attribute import mount_attribute_name
from chalicelib.mount.commands import RUNNING_STATUSES, spec_from_parameters


class HostFix(Enum):
    NOTHING = "nothing"
    # ECS does not settle it: SSM's record of the host's mount must be read first.
    NEEDS_EVIDENCE = "needs evidence"
    SET_ATTRIBUTE = "set attribute"
    SEND_MOUNT = "send mount"


@dataclass(frozen=True)
class HostFindings:
    problems: tuple[str, ...]
    fix: HostFix


@dataclass(frozen=True)
class MountEvidence:
    """SSM's record of the group's file system on a host (mount_commands.mount_on_record's rule): the path at
    which the newest finished command of our document for it succeeded on the host, or None (none finished in
    SSM's 30 days, or it failed); and how that mount differs from the group's whole mount (None: it is exactly
    the group's)."""

    proven_path: str | None
    difference: str | None = None


# The host refuses a mount over the same file system mounted otherwise at the path (the script's exit 3), and
# the app never unmounts: someone must.
MOUNTED_OTHERWISE_ADVICE = "not marked: replace the host, or unmount it there and run repair again"


def host_findings(
    file_system_id: str,
    mount_path: str,
    registered: bool,
    attribute_value: str | None,
    evidence: MountEvidence | None = None,
) -> HostFindings:
    """What is wrong with a host in service, and the fix (README: Repair, "Evidence that a host is mounted").

    `registered` and `attribute_value` are ECS's word on the container instance it reports on the host (the value
    of the mount attribute for the group's file system at the group's path). When it carries the attribute at the
    group's path, repair would change nothing: no evidence is needed. Anything else is decided by SSM's record
    (`evidence`), the only proof of a mount: proven, exactly the group's mount, the attribute is set (a host not
    registered yet gets it from its registration); at the group's path but otherwise (another access point, or
    none), it is reported and not marked; otherwise the mount is sent, which verifies it on the host, and the
    attribute follows from its status event.
    """
    attribute = mount_attribute_name(file_system_id, mount_path)
    if registered and attribute_value == mount_path:
        return HostFindings((), HostFix.NOTHING)
    if evidence is None:
        return HostFindings((), HostFix.NEEDS_EVIDENCE)
    proven = evidence.proven_path
    if proven == mount_path and evidence.difference is not None:
        return HostFindings((f"mounted otherwise: {evidence.difference}; {MOUNTED_OTHERWISE_ADVICE}",), HostFix.NOTHING)
    if proven == mount_path:
        if not registered:
            return HostFindings((), HostFix.NOTHING)
        problem = (
            f"container instance lacks the attribute {attribute}"
            if attribute_value is None
            else f"attribute {attribute} is {attribute_value!r}, not {mount_path!r}"
        )
        return HostFindings((problem,), HostFix.SET_ATTRIBUTE)
    problems = ["never mounted" if proven is None else f"mounted at {proven}, the group asks for {mount_path}"]
    if attribute_value is not None and attribute_value != proven:
        problems.append(f"its container instance carries {attribute} without a confirmed mount")
    return HostFindings(tuple(problems), HostFix.SEND_MOUNT)


def mount_command_running(commands: list[dict[str, Any]], file_system_id: str, roots: tuple[str, ...]) -> bool:
    """Whether the newest of our mount commands (oldest first) for the file system is still running: then
    another is not sent, and its status event finishes the job."""
    for command in reversed(commands):
        spec = spec_from_parameters(command.get("Parameters", {}), roots)
        if spec is not None and spec.file_system_id == file_system_id:
            return command.get("Status") in RUNNING_STATUSES
    return False

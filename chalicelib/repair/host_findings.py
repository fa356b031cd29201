"""What is wrong with a host of an examined group, and what repair does about it (pure). For a host in service,
ECS's word on its container instance and SSM's record of its mount in, the problems and the fix out; for a host
waiting on our hook, when its wait began and whether SSM proves its launch's mount. Each plan says, dry run or not,
what the report says and which change repair makes (none in a dry run)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from chalicelib.mount.attribute import mount_attribute_name
from chalicelib.mount.commands import RUNNING_STATUSES, spec_from_parameters
from chalicelib.repair.findings import Act, Plan


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
    """What is wrong with a host in service, and the fix (docs/operations.md, "What repair finds").

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


def in_service_plan(findings: HostFindings, file_system_id: str, mount_path: str, dry_run: bool) -> Plan:
    """What repair does about a host in service now: set the attribute (only SSM's proof of exactly the group's mount
    finds it lacking). A mount to send waits for the hosts' agents to be read (`mount_send_plan`)."""
    if findings.fix is not HostFix.SET_ATTRIBUTE:
        return Plan(findings.problems)
    attribute = mount_attribute_name(file_system_id, mount_path)
    if dry_run:
        return Plan(findings.problems, (f"would set the attribute {attribute} to {mount_path}",))
    return Plan(findings.problems, (f"attribute {attribute} set to {mount_path}",), Act.SET_ATTRIBUTE)


def mount_send_plan(online: bool, running: bool, file_system_id: str, mount_path: str, dry_run: bool) -> Plan:
    """Whether the mount is sent to a host that needs it: only through an online agent, and not while a mount sent
    earlier (by a previous run or the launch step) runs: its status event sets the attribute."""
    if not online:
        return Plan(("its SSM agent is not online: no mount can be sent now",))
    if running:
        return Plan(("mount command running: its status event sets the attribute",))
    if dry_run:
        return Plan(actions=(f"would send the mount command ({file_system_id} at {mount_path})",))
    return Plan(act=Act.SEND_MOUNT)


def after_sending(outcome: str) -> Plan:
    """The launch step's answer to a mount sent by repair: sent, or why not (no mount target, agent gone, ...)."""
    return Plan(actions=(outcome,)) if outcome.startswith("mount command sent") else Plan((outcome,))


def waiting_problem(hook_name: str, now: float, started: float | None, grace: float) -> str | None:
    """What is wrong with a host waiting on our hook whose action is not decided. None while its launch activity
    (as the sweeper reads it) began less than `grace` ago: its launch event is moments old and acts on it."""
    if started is not None and now - started < grace:
        return None
    waited = f" for {int(now - started)} s" if started is not None else " (since when, AWS does not say)"
    return f"waiting on the {hook_name} hook{waited}"


def settled_in_ecs(registered: bool, attribute_value: str | None, mount_path: str) -> bool:
    """For a waiting host whose launch's mount SSM proves: whether ECS shows nothing left for it. Its container
    instance carries the attribute, or it has not registered (its registration sets it). A proven mount whose
    attribute is missing is the launch step's to finish: it sets the attribute, then completes."""
    return not registered or attribute_value == mount_path


def waiting_host_plan(problem: str, mount_settled: bool, dry_run: bool) -> Plan:
    """What repair does about a stalled waiting host. When SSM's record proves its launch's mount and ECS shows
    nothing left for it (`mount_settled`), all that can be left is completing our action, most likely decided
    already (another hook holds the host): the launch step is not run again, as it would set the attribute once more
    on every run. Otherwise the launch step runs: send the mount, complete, or decide. The problem is reported with
    what was done (`after_completing`, `after_driving`): nothing, when our action was decided meanwhile."""
    if dry_run:
        would = (
            "would complete its action CONTINUE, unless it is decided already"
            if mount_settled
            else "would drive its launch step (send the mount, complete or decide)"
        )
        return Plan((problem,), (would,))
    return Plan(act=Act.COMPLETE if mount_settled else Act.DRIVE)


def after_completing(problem: str, completed: bool) -> Plan:
    if not completed:
        return Plan()  # decided already
    return Plan((problem,), ("launch step: completed CONTINUE (SSM's record proves its mount)",))


def after_driving(problem: str, outcome: str) -> Plan:
    if outcome == "already decided":
        return Plan()  # decided meanwhile, or earlier while another hook holds it
    return Plan((problem,), (f"launch step: {outcome}",))

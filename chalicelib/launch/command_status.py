"""A mount command's status event: what SSM itself reports of the command decides, never the event.

A success on a waiting host goes to the launch step, which decides whether it is this launch's mount; one on a
host in service marks it only for exactly the mount its group asks for now; a failure goes to the launch step.
"""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.launch.decision import PENDING_WAIT
from chalicelib.launch.groups import GroupMember, describe_member
from chalicelib.mount.commands import command_difference, invocation, spec_from_parameters
from chalicelib.mount.spec import MountSpec
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import CommandStatus
from chalicelib.plumbing.observability import logger
from chalicelib.plumbing.settings import Settings


class LaunchStep(Protocol):
    """What this step asks of the launch flow (launch/flow.py)."""

    def drive(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        *,
        member: GroupMember | None = None,
        confirmed: dict[str, Any] | None = None,
    ) -> str: ...

    def group_mount_spec(self, aws: AwsAccess, group_name: str) -> MountSpec | None: ...

    def mark(
        self, aws: AwsAccess, instance_id: str, spec: MountSpec, command: dict[str, Any], group_name: str
    ) -> None: ...


def on_command_status(step: LaunchStep, settings: Settings, status: CommandStatus, aws: AwsAccess) -> str:
    ssm = aws.client("ssm")
    command = _our_command(ssm, status.command_id, settings.mount_document)
    # Act on what SSM says, not on the event: confirm the document, the host and the status.
    if command is None:
        logger.warning("command not found in SSM, or not of our document; ignored", command_id=status.command_id)
        return "ignored: command not found"
    if status.instance_id not in command.get("InstanceIds", []):
        logger.warning("command did not target this instance; ignored", command_id=status.command_id)
        return "ignored: command not confirmed"
    confirmed = invocation(ssm, command, status.instance_id)["Status"]
    if confirmed != status.status:
        logger.warning(
            "SSM reports another status than the event; waiting for its own event",
            event_status=status.status,
            ssm_status=confirmed,
        )
        return f"ignored: SSM says {confirmed}"
    if confirmed == "Success":
        return _on_success(step, settings, status, command, aws)
    member = describe_member(aws.client("autoscaling"), status.instance_id)
    if member is None:
        logger.error("mount failed on a host outside any Auto Scaling group", status=confirmed)
        return f"mount {confirmed}; host is not in an Auto Scaling group"
    return step.drive(aws, member.group_name, status.instance_id, member=member)


def _on_success(
    step: LaunchStep, settings: Settings, status: CommandStatus, command: dict[str, Any], aws: AwsAccess
) -> str:
    spec = spec_from_parameters(command.get("Parameters", {}), settings.mount_roots)
    if spec is None:
        logger.error("command parameters are not a valid mount; ignored", command_id=status.command_id)
        return "ignored: parameters not a mount"
    member = describe_member(aws.client("autoscaling"), status.instance_id)
    if member is not None and member.lifecycle_state == PENDING_WAIT:
        # Whether this command lets the host in is the step's decision: of this launch, and the
        # mount the group's tags ask for now. SSM's record of the command was just read: reused.
        return step.drive(aws, member.group_name, status.instance_id, member=member, confirmed=command)
    if member is None:
        # No group asks for a mount, so none counts as confirmed (contract: "exactly what the group asks now").
        logger.info("mount confirmed on a host outside any Auto Scaling group; no attribute set")
        return "mounted; host is not in an Auto Scaling group"
    # A host in service mounted by repair or by hand: marked only for exactly the mount its group asks now.
    asked = step.group_mount_spec(aws, member.group_name)
    if asked is None:
        logger.warning("mount confirmed on a host whose group asks for no mount; no attribute set")
        return "not marked: its group asks for no mount"
    difference = command_difference(command, asked, settings.mount_roots)
    if difference is not None:
        logger.warning(
            "mount confirmed, but not the one the host's group asks for; no attribute set", differs=difference
        )
        return f"not marked: mounted otherwise ({difference})"
    step.mark(aws, status.instance_id, spec, command, member.group_name)
    return "already decided"  # as before this step: the attribute set again, nothing decided


def _our_command(ssm: Any, command_id: str, document: str) -> dict[str, Any] | None:
    try:
        commands = ssm.list_commands(CommandId=command_id)["Commands"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") != "InvalidCommandId":
            raise
        return None
    return commands[0] if commands and commands[0].get("DocumentName") == document else None

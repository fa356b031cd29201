"""The launch lifecycle flow: a new host waits in Pending:Wait until its EFS mount is confirmed.

Launch event -> group tags -> SSM agent online -> mount command sent.
Command status event -> status confirmed with SSM -> host recorded, attribute set -> action completed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.accounts import AwsAccess
from chalicelib.events import LAUNCH_TRANSITION, CommandStatus, LaunchAction
from chalicelib.groups import describe_group
from chalicelib.host_record import read_host_record, record_mount, set_mount_attributes
from chalicelib.lifecycle_result import LifecycleResult
from chalicelib.mount_spec import (
    FILE_SYSTEM_TAG,
    MOUNT_PATH_TAG,
    MountConfigError,
    MountSpec,
    failure_result_from_tags,
    mount_command_parameters,
    mount_spec_from_tags,
)
from chalicelib.mount_targets import (
    NoMountTarget,
    describe_mount_targets,
    file_system_requires_tls,
    select_mount_target_ip,
)
from chalicelib.observability import count, logger
from chalicelib.script_result import ScriptResult, script_result_from_invocation
from chalicelib.settings import Settings
from chalicelib.ttl_cache import TtlCache

ALREADY_DECIDED = "No active Lifecycle Action found"
# Mount targets and policies change rarely; a scale-out burst asks about the same file system many times.
FILE_SYSTEM_CACHE_SECONDS = 60


@dataclass(frozen=True)
class FileSystemAccess:
    """How hosts reach a file system: its mount targets, and whether its policy demands TLS."""

    mount_targets: list[dict[str, Any]]
    requires_tls: bool


class AgentNotReady(Exception):
    """The host's SSM agent is not online yet; the launch event must be tried again later."""


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def lifecycle_result_for(command_status: str, failure_result: LifecycleResult) -> LifecycleResult:
    """The result a final command status decides: only a successful mount lets the host in."""
    return LifecycleResult.CONTINUE if command_status == "Success" else failure_result


def launch_skip_reason(action: LaunchAction, settings: Settings) -> str | None:
    """Why a launch event is none of our business, decided without any AWS call."""
    if action.hook_name != settings.hook_name:
        return f"hook {action.hook_name} is not ours ({settings.hook_name})"
    if action.transition != LAUNCH_TRANSITION:
        return f"transition {action.transition} is not a launch"
    return None


def command_skip_reason(status: CommandStatus, settings: Settings) -> str | None:
    """Why a command status event is none of our business: the document marks a command as ours."""
    if status.document_name != settings.mount_document:
        return f"document {status.document_name} is not ours"
    return None


def complete_lifecycle_action(
    autoscaling: Any, hook_name: str, group_name: str, instance_id: str, result: LifecycleResult
) -> bool:
    """Complete our hook's action for the instance; False when it was already decided."""
    try:
        autoscaling.complete_lifecycle_action(
            LifecycleHookName=hook_name,
            AutoScalingGroupName=group_name,
            InstanceId=instance_id,
            LifecycleActionResult=result.value,
        )
    except ClientError as exc:
        if error_code(exc) == "ValidationError" and ALREADY_DECIDED in exc.response["Error"].get("Message", ""):
            logger.info("lifecycle action was already decided", result=result.value)
            return False
        raise
    logger.info("lifecycle action completed", result=result.value, group=group_name)
    count("HooksCompleted", Result=result.value)
    return True


class LifecycleFlow:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._file_systems: TtlCache[FileSystemAccess] = TtlCache(FILE_SYSTEM_CACHE_SECONDS)

    def _complete(self, aws: AwsAccess, group_name: str, instance_id: str, result: LifecycleResult) -> str:
        completed = complete_lifecycle_action(
            aws.client("autoscaling"), self._settings.hook_name, group_name, instance_id, result
        )
        return f"completed {result.value}" if completed else "already decided"

    def on_launch(self, action: LaunchAction, aws: AwsAccess) -> str:
        if action.into_warm_pool:
            # A warm-pool host is stopped before use; it mounts on the launch event that takes it out.
            return self._complete(aws, action.group_name, action.instance_id, LifecycleResult.CONTINUE)
        group = describe_group(aws.client("autoscaling"), action.group_name)
        if group is None:
            logger.warning("group no longer exists; nothing to decide", group=action.group_name)
            return "ignored: group gone"
        tags = group.tags
        try:
            failure_result = failure_result_from_tags(tags, self._settings.on_failure)
            spec = mount_spec_from_tags(tags)
        except MountConfigError as exc:
            logger.error(
                "group tag is invalid; no mount command sent",
                tag=exc.tag,
                reason=exc.reason,
                group=action.group_name,
            )
            count("MountsFailed", Reason="invalid-tag")
            result = _safe_failure_result(tags, self._settings.on_failure)
            return self._complete(aws, action.group_name, action.instance_id, result)
        if spec is None:
            logger.error(
                f"group has no {FILE_SYSTEM_TAG} tag but uses the {self._settings.hook_name} hook; letting the host in",
                group=action.group_name,
            )
            return self._complete(aws, action.group_name, action.instance_id, LifecycleResult.CONTINUE)
        zone = group.instance_zones.get(action.instance_id)
        if zone is None:
            logger.warning("host is no longer in its group; nothing to decide", group=action.group_name)
            return "ignored: host left the group"
        try:
            file_system = self._file_system(aws, spec.file_system_id)
            parameters = mount_command_parameters(
                spec,
                aws.region,
                select_mount_target_ip(file_system.mount_targets, spec.file_system_id, zone),
                file_system.requires_tls,
            )
        except NoMountTarget as exc:
            logger.error("cannot mount from the host's zone; no mount command sent", reason=str(exc), zone=zone)
            count("MountsFailed", Reason="no-mount-target")
            return self._complete(aws, action.group_name, action.instance_id, failure_result)
        return self._send_mount_command(action, aws, spec, parameters, failure_result)

    def _file_system(self, aws: AwsAccess, file_system_id: str) -> FileSystemAccess:
        def load() -> FileSystemAccess:
            efs = aws.client("efs")
            targets = describe_mount_targets(efs, file_system_id)
            return FileSystemAccess(targets, file_system_requires_tls(efs, file_system_id))

        return self._file_systems.get((aws.account, aws.region, file_system_id), load)

    def _send_mount_command(
        self,
        action: LaunchAction,
        aws: AwsAccess,
        spec: MountSpec,
        parameters: dict[str, list[str]],
        failure_result: LifecycleResult,
    ) -> str:
        ssm = aws.client("ssm")
        if not _agent_online(ssm, action.instance_id):
            logger.warning("SSM agent not online yet; the launch event will be retried")
            raise AgentNotReady(f"SSM agent on {action.instance_id} is not online yet")
        try:
            command = ssm.send_command(
                DocumentName=self._settings.mount_document,
                InstanceIds=[action.instance_id],
                Parameters=parameters,
                TimeoutSeconds=self._settings.command_timeout_seconds,
                Comment=f"efs-automount: mount {spec.file_system_id} at launch"[:100],
            )["Command"]
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidInstanceId":
                raise AgentNotReady(f"SSM does not accept {action.instance_id} yet") from exc
            if code in ("InvalidDocument", "InvalidParameters", "InvalidDocumentVersion"):
                logger.error(
                    "mount document refused the command; deploy the document (README: Deploy)",
                    document=self._settings.mount_document,
                    error=str(exc),
                )
                count("MountsFailed", Reason="document")
                return self._complete(aws, action.group_name, action.instance_id, failure_result)
            raise
        logger.info(
            "mount command sent",
            command_id=command["CommandId"],
            file_system_id=spec.file_system_id,
            mount_path=spec.mount_path,
            mount_target_ip=parameters["MountTargetIp"][0],
            require_tls=parameters["RequireTls"][0],
        )
        count("MountCommandsSent")
        return f"mount command sent: {command['CommandId']}"

    def on_command_status(self, status: CommandStatus, aws: AwsAccess) -> str:
        ssm = aws.client("ssm")
        try:
            commands = ssm.list_commands(CommandId=status.command_id)["Commands"]
        except ClientError as exc:
            if error_code(exc) != "InvalidCommandId":
                raise
            commands = []
        if not commands:
            logger.warning("command not found in SSM; ignored", command_id=status.command_id)
            return "ignored: command not found"
        # Act on what SSM says, not on the event: confirm the document, the host and the status.
        if commands[0]["DocumentName"] != self._settings.mount_document:
            logger.warning("command is not of our document in SSM; ignored", command_id=status.command_id)
            return "ignored: command not confirmed"
        command = commands[0]
        if status.instance_id not in command.get("InstanceIds", []):
            logger.warning("command did not target this instance; ignored", command_id=status.command_id)
            return "ignored: command not confirmed"
        invocation = _invocation(ssm, command, status.instance_id)
        confirmed = invocation["Status"]
        if confirmed != status.status:
            logger.warning(
                "SSM reports another status than the event; waiting for its own event",
                event_status=status.status,
                ssm_status=confirmed,
            )
            return f"ignored: SSM says {confirmed}"
        if confirmed != "Success":
            return self._on_mount_failed(aws, status, script_result_from_invocation(invocation))
        spec = _spec_from_parameters(command.get("Parameters", {}))
        if spec is None:
            logger.error("command parameters are not a valid mount; ignored", command_id=status.command_id)
            return "ignored: parameters not a mount"
        return self._on_mounted(aws, status, spec)

    def _on_mounted(self, aws: AwsAccess, status: CommandStatus, spec: MountSpec) -> str:
        ec2 = aws.client("ec2")
        # Write the mount before reading the container instance: see host_record.
        record_mount(ec2, status.instance_id, spec)
        record = read_host_record(ec2, status.instance_id)
        count("MountsSucceeded")
        logger.info("mount confirmed", file_system_id=spec.file_system_id, mount_path=spec.mount_path)
        if record.cluster_arn and record.container_instance_arn:
            set_mount_attributes(
                aws.client("ecs"),
                record.cluster_arn,
                record.container_instance_arn,
                {spec.file_system_id: spec.mount_path},
            )
            logger.info("mount attribute set", cluster=record.cluster_arn)
        if record.group_name is None:
            return "mounted; host is not in an Auto Scaling group"
        return self._complete(aws, record.group_name, status.instance_id, LifecycleResult.CONTINUE)

    def _on_mount_failed(self, aws: AwsAccess, status: CommandStatus, result: ScriptResult) -> str:
        kind = "permanent" if result.permanent else "transient"
        count("MountsFailed", Reason=kind)
        failure = {"status": result.status, "exit_code": result.exit_code, "failure": kind, "detail": result.message}
        record = read_host_record(aws.client("ec2"), status.instance_id)
        if record.group_name is None:
            logger.error("mount failed on a host outside any Auto Scaling group", **failure)
            return f"mount {result.status} ({kind}); host is not in an Auto Scaling group"
        group = describe_group(aws.client("autoscaling"), record.group_name)
        failure_result = _safe_failure_result(group.tags if group else {}, self._settings.on_failure)
        decision = lifecycle_result_for(result.status, failure_result)
        logger.error("mount failed", result=decision.value, group=record.group_name, **failure)
        return self._complete(aws, record.group_name, status.instance_id, decision)


def _safe_failure_result(tags: dict[str, str], default: LifecycleResult) -> LifecycleResult:
    try:
        return failure_result_from_tags(tags, default)
    except MountConfigError:
        return default


def _agent_online(ssm: Any, instance_id: str) -> bool:
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
    return any(
        item.get("InstanceId") == instance_id and item.get("PingStatus") == "Online"
        for item in info.get("InstanceInformationList", [])
    )


def _invocation(ssm: Any, command: dict[str, Any], instance_id: str) -> dict[str, Any]:
    """The host's invocation as SSM reports it. A one-host command that succeeded says all we need;
    a failure is read in full for the script's exit code and summary."""
    if command.get("InstanceIds") == [instance_id] and command["Status"] == "Success":
        return {"Status": "Success"}
    return ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)


def _spec_from_parameters(parameters: dict[str, list[str]]) -> MountSpec | None:
    """The mount a command asked for, read back from its parameters (None if they are not ours)."""
    try:
        tags = {FILE_SYSTEM_TAG: parameters["FileSystemId"][0], MOUNT_PATH_TAG: parameters["MountPath"][0]}
        return mount_spec_from_tags(tags)
    except (KeyError, IndexError, TypeError, MountConfigError):
        return None

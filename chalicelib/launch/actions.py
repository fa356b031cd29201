"""The launch step's actions: what the decision (launch/decision.py) asks for, done against AWS.

Complete the host's action (marking a mounted host first, cancelling a spent wait's commands), send the mount,
or look again later through the retry queue; every host left waiting is heartbeated when due.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.container_instances.marking import MountMarks
from chalicelib.launch.decision import Action, Complete, Done, Heartbeat, Send
from chalicelib.launch.facts import HostFacts
from chalicelib.launch.reads import LaunchReads
from chalicelib.launch.retry_queue import WAITING_FOR_AGENT, RetryMessage, RetryQueue, agent_retry_delay
from chalicelib.launch.wait import LaunchWaits
from chalicelib.mount.commands import COMMENT_LENGTH, launch_comment
from chalicelib.mount.spec import MountSpec
from chalicelib.mount.targets import MountTargetNotReady, NoMountTarget
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.memory import HostMemory
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings

ALREADY_DECIDED = "No active Lifecycle Action found"
# How long the sweeper passes over a host whose action it saw decided while another hook holds it. Not
# longer: a warm pool may take the host back and launch it again, with a new action of ours.
DECIDED_MEMORY_SECONDS = 300
# SendCommand's refusals that say the mount document is missing or not ours to run with these parameters.
DOCUMENT_REFUSED = ("InvalidDocument", "InvalidParameters", "InvalidDocumentVersion")


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


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


class LaunchActions:
    """Acts for the launch step, and remembers the hosts it decided."""

    def __init__(
        self,
        settings: Settings,
        retry_queue: RetryQueue,
        reads: LaunchReads,
        waits: LaunchWaits,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._retry_queue = retry_queue
        self._reads = reads
        self._waits = waits
        self._clock = clock
        self._marks = MountMarks()
        self._decided = HostMemory()
        self._warned_no_queue = False

    def act(
        self, facts: HostFacts, action: Action, container_instance: tuple[str, str] | None, queue_retry: bool
    ) -> str:
        aws, group_name, instance_id = facts.aws, facts.group_name, facts.instance_id
        if isinstance(action, Done):
            if action.note:
                logger.info(action.note, group=group_name)
            return action.outcome
        if isinstance(action, Complete):
            return self._decide(facts, action, container_instance)
        if isinstance(action, Heartbeat):
            self._waits.heartbeat(aws, group_name, instance_id, action.at)
            facts.beaten = True
            return "heartbeat recorded"
        if isinstance(action, Send):
            return self.send(facts, action.parameters, queue_retry)
        if action.note:
            getattr(logger, action.level)(action.note, **action.fields)
        if action.delay is None:
            return f"waiting: {action.reason}"
        return self.later(aws, group_name, instance_id, facts.attempt, action.delay, action.reason)

    def _decide(self, facts: HostFacts, action: Complete, container_instance: tuple[str, str] | None) -> str:
        aws, group_name, instance_id = facts.aws, facts.group_name, facts.instance_id
        if action.mounted is not None:
            spec = facts.asked.spec
            assert spec is not None, "a mount proves the group's mount only when it asks for one"  # noqa: S101
            count("MountsSucceeded")
            logger.info("mount confirmed", file_system_id=spec.file_system_id, mount_path=spec.mount_path)
            self._marks.mark(aws, instance_id, spec, action.mounted, group_name, container_instance)
        if action.note:
            logger.error(action.note, group=group_name)
        self._cancel(aws, instance_id, action.cancel)
        outcome = self.complete(aws, group_name, instance_id, action.result)
        if action.failure is not None:
            # Decided first: the checks that explain the failure must not hold the decision up.
            failure = action.failure
            fields = dict(failure.fields, result=action.result.value)
            if failure.explain:
                fields["configuration_problems"] = self._reads.problems_now(aws, group_name)
            logger.error(failure.message, **fields)
            count("MountsFailed", Reason=failure.reason)
        return outcome

    def send(self, facts: HostFacts, parameters: dict[str, list[str]], queue_retry: bool) -> str:
        aws, group_name, instance_id = facts.aws, facts.group_name, facts.instance_id
        try:
            command = self._send_mount_command(aws, instance_id, parameters, launch_comment(group_name))
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidInstanceId":
                # Its SSM agent is not online yet: asking SSM is one call, as a check first would be.
                logger.info("SSM does not accept the host yet; waiting for its agent")
                if not queue_retry:
                    return "waiting: SSM agent not online yet"
                delay = agent_retry_delay(facts.attempt + 1)
                return self.later(aws, group_name, instance_id, facts.attempt, delay, "agent", WAITING_FOR_AGENT)
            if code not in DOCUMENT_REFUSED:
                raise
            logger.error(
                "mount document refused the command; deploy the document (docs/getting-started.md)",
                document=self._settings.mount_document,
                error=str(exc),
            )
            count("MountsFailed", Reason="document")
            return self.complete(aws, group_name, instance_id, facts.failure_result_now())
        logger.info(
            "mount command sent",
            command_id=command.get("CommandId"),
            file_system_id=parameters["FileSystemId"][0],
            mount_path=parameters["MountPath"][0],
            mount_target_ip=parameters["MountTargetIp"][0],
            require_tls=parameters["RequireTls"][0],
        )
        count("MountCommandsSent")
        return f"mount command sent: {command.get('CommandId')}"

    def _send_mount_command(
        self, aws: AwsAccess, instance_id: str, parameters: dict[str, list[str]], comment: str
    ) -> dict[str, Any]:
        return (
            aws.client("ssm")
            .send_command(
                DocumentName=self._settings.mount_document,
                InstanceIds=[instance_id],
                Parameters=parameters,
                TimeoutSeconds=self._settings.command_timeout_seconds,
                Comment=comment[:COMMENT_LENGTH],
            )
            .get("Command", {})
        )

    def complete(self, aws: AwsAccess, group_name: str, instance_id: str, result: LifecycleResult) -> str:
        completed = complete_lifecycle_action(
            aws.client("autoscaling"), self._settings.hook_name, group_name, instance_id, result
        )
        key = (aws.account, aws.region, instance_id)
        self._decided.remember(key, self._clock())
        self._waits.forget(key)
        return f"completed {result.value}" if completed else "already decided"

    def later(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        attempt: int,
        delay: int,
        reason: str,
        waiting_for: str = "",
    ) -> str:
        message = RetryMessage(aws.account, aws.region, group_name, instance_id, attempt + 1, waiting_for)
        if self._retry_queue.later(message, delay):
            count("RetriesQueued", Reason=reason)
            return f"waiting: {reason}, retry in {delay}s"
        if not self._warned_no_queue:
            logger.warning("RETRY_QUEUE_URL is not set: the sweeper carries retries (every minute)")
            self._warned_no_queue = True
        return f"waiting: {reason}, the sweeper retries"

    def _cancel(self, aws: AwsAccess, instance_id: str, running: tuple[dict[str, Any], ...]) -> None:
        """Cancel our commands still running on the host, so none mounts after the host was decided."""
        for command in running:
            try:
                aws.client("ssm").cancel_command(CommandId=command["CommandId"], InstanceIds=[instance_id])
            except ClientError as exc:
                # Finished meanwhile (the decision stands: the budget is spent), or already cancelled.
                logger.warning("could not cancel a mount command", command_id=command["CommandId"], error=str(exc))

    def mark(self, aws: AwsAccess, instance_id: str, spec: MountSpec, command: dict[str, Any], group_name: str) -> None:
        """A host in service mounted exactly as its group asks: marked, as a launch's mount is."""
        count("MountsSucceeded")
        logger.info("mount confirmed", file_system_id=spec.file_system_id, mount_path=spec.mount_path)
        self._marks.mark(aws, instance_id, spec, command, group_name)

    def mount_in_service(self, aws: AwsAccess, instance_id: str, zone: str, spec: MountSpec) -> str:
        """Repair: send the launch step's mount (same document, parameters, mount target) to a host already in
        service whose SSM agent is online. Nothing is completed or heartbeated: there is no action left. Its
        status event records the mount and sets the attribute, as for any mount."""
        try:
            parameters = self._reads.mount_parameters(aws, spec, zone)
        except (NoMountTarget, MountTargetNotReady) as exc:
            return f"not sent: {exc}"
        comment = f"efs-automount: mount {spec.file_system_id} by repair"
        try:
            command = self._send_mount_command(aws, instance_id, parameters, comment)
        except ClientError as exc:
            if error_code(exc) in ("InvalidInstanceId", *DOCUMENT_REFUSED):
                return f"not sent: {exc}"
            raise
        logger.info("mount command sent by repair", command_id=command.get("CommandId"), instance_id=instance_id)
        count("MountCommandsSent")
        return f"mount command sent: {command.get('CommandId')}"

    def known_decided(self, aws: AwsAccess, instance_id: str) -> bool:
        """Whether this container saw our action for the host decided in the last few minutes (another hook
        may still hold the host)."""
        decided_at = self._decided.get((aws.account, aws.region, instance_id))
        return decided_at is not None and self._clock() - decided_at < DECIDED_MEMORY_SECONDS

"""The launch lifecycle flow: a new host waits in Pending:Wait until its EFS mount is confirmed.

Every entry point (launch event, command status event, retry message, sweeper) ends in
`drive`, one step that reads where the host stands from AWS itself (its lifecycle state, our
mount commands and their results) and moves it on: send the command, wait, retry, or decide.
Nothing is remembered between steps but what AWS holds, so any step may run late, twice, out
of order, or after a crash, and the host is still decided once, correctly. What a container
remembers (launch activity starts, its own heartbeats, hosts already decided) only spares calls.

How long a host has waited is measured from Auto Scaling's launch activity for it, read from AWS
when the step needs it; an event's time, an EC2 launch time and a retry message's content never
count (README: "Nothing lost").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.container_instances.ecs import (
    CLUSTER_NAME,
    find_container_instance,
    is_hosts_container_instance,
    set_mount_attributes,
)
from chalicelib.launch.budget import (
    MAX_GLOBAL_TIMEOUT_SECONDS,
    deadline,
    implausible_time,
    over_budget,
    wait_budget,
)
from chalicelib.launch.groups import Group, GroupMember, Hook, describe_hook, describe_member, group_tags
from chalicelib.launch.retry_queue import (
    AGENT_DELAYS_SECONDS,
    WAITING_FOR_AGENT,
    RetryMessage,
    RetryQueue,
    agent_retry_delay,
    retry_delay,
)
from chalicelib.launch.wait import BoundedMemory, HostMemory, LaunchWaits

# The SSM record of our commands; the lifecycle names are kept for repair, which reads them from here.
from chalicelib.mount.commands import (
    COMMENT_LENGTH,
    RUNNING_STATUSES,
    agents_online,
    command_difference,
    host_status,
    launch_attempts,
    launch_comment,
    requested_at,
    send_rounds,
)
from chalicelib.mount.commands import commands_for as _commands_for
from chalicelib.mount.commands import invocation as _invocation
from chalicelib.mount.commands import spec_from_parameters as _spec_from_parameters
from chalicelib.mount.script_result import ScriptResult, parse_summary, script_result_from_invocation
from chalicelib.mount.spec import (
    FILE_SYSTEM_TAG,
    MountConfigError,
    MountSpec,
    failure_result_from_tags,
    mount_command_parameters,
    mount_spec_from_tags,
)
from chalicelib.mount.targets import (
    MountTargetNotReady,
    NoMountTarget,
    describe_mount_targets,
    file_system_requires_tls,
    select_mount_target_ip,
)
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import LAUNCH_TRANSITION, CommandStatus, LaunchAction
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings
from chalicelib.plumbing.ttl_cache import TtlCache

ALREADY_DECIDED = "No active Lifecycle Action found"
# A host launched into a warm pool waits here under a launch hook; in Pending:Wait when it leaves the pool
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
WARM_POOL_WAIT = "Warmed:Pending:Wait"
# Mount targets and policies change rarely; a scale-out burst asks about the same file system many times.
FILE_SYSTEM_CACHE_SECONDS = 60
HOOK_CACHE_SECONDS = 300
# A burst launches many hosts of one group at once; a tag fixed by an operator applies within a minute.
GROUP_TAG_CACHE_SECONDS = 60
# How long the sweeper passes over a host whose action it saw decided while another hook holds it. Not
# longer: a warm pool may take the host back and launch it again, with a new action of ours.
DECIDED_MEMORY_SECONDS = 300
# Less than the shortest way back through a warm pool (in service, scaled in to the pool, stopped, started
# again): a successful command younger than this is of the current launch when read after the launch's start.
WARM_POOL_ROUND_TRIP_SECONDS = 120
# Clusters asked for a host's container instance when nothing names its cluster.
MAX_CLUSTERS_SEARCHED = 20


@dataclass(frozen=True)
class FileSystemAccess:
    """How hosts reach a file system: its mount targets, and whether its policy demands TLS."""

    mount_targets: list[dict[str, Any]]
    requires_tls: bool


def now() -> float:
    """The time the flow goes by (epoch seconds); one seam for tests that let hours pass."""
    return time.time()


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def retry_after_failure(result: ScriptResult, failed_attempts: int, max_attempts: int) -> bool:
    """Whether a failed mount is worth another attempt: transient, and attempts left."""
    return not result.permanent and failed_attempts < max_attempts


def launch_skip_reason(action: LaunchAction, settings: Settings) -> str | None:
    """Why a launch event is none of our business, decided without any AWS call."""
    if action.hook_name != settings.hook_name:
        return f"hook {action.hook_name} is not ours ({settings.hook_name})"
    if action.transition != LAUNCH_TRANSITION:
        return f"transition {action.transition} is not a launch"
    return None


def enters_warm_pool(lifecycle_state: str) -> bool:
    """Whether the host's lifecycle state, as AWS reports it, is a launch hook's wait on the way into a warm
    pool, where the host is stopped, not put in service. Any other state is driven as a launch."""
    return lifecycle_state == WARM_POOL_WAIT


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
    def __init__(self, settings: Settings, retry_queue: RetryQueue, clock: Callable[[], float] | None = None) -> None:
        self._settings = settings
        self._retry_queue = retry_queue
        self.clock = clock or (lambda: now())

        # The caches go by the flow's clock, as every other time the flow keeps.
        def flow_clock() -> float:
            return self.clock()

        self._file_systems: TtlCache[FileSystemAccess] = TtlCache(FILE_SYSTEM_CACHE_SECONDS, clock=flow_clock)
        self._hooks: TtlCache[Hook | None] = TtlCache(HOOK_CACHE_SECONDS, clock=flow_clock)
        self._tags: TtlCache[dict[str, str]] = TtlCache(GROUP_TAG_CACHE_SECONDS, clock=flow_clock)
        self._problems: TtlCache[list[str]] = TtlCache(GROUP_TAG_CACHE_SECONDS, clock=flow_clock)
        self._warned_no_queue = False
        # When each host's wait began (AWS's launch activity) and this container's heartbeats for it.
        self._waits = LaunchWaits(settings.hook_name, flow_clock)
        # The last look, and hosts whose action is decided.
        self._looked_at = HostMemory()
        self._decided = HostMemory()
        # The cluster this container last found each group's hosts registered in (a hint ECS confirms).
        self._clusters: BoundedMemory[tuple[str, str, str], str] = BoundedMemory()

    # --- entry points -------------------------------------------------------------------------

    def on_launch(self, action: LaunchAction, aws: AwsAccess) -> str:
        if action.into_warm_pool:
            # The event's word is not enough to let a host go on unmounted: AWS must report it entering the pool.
            member = describe_member(aws.client("autoscaling"), action.instance_id)
            if member is not None and enters_warm_pool(member.lifecycle_state):
                # Stopped in the pool until used; it mounts on the launch event that takes it out.
                return self._complete(aws, member.group_name, action.instance_id, LifecycleResult.CONTINUE)
            logger.warning(
                "launch event says WarmPool but AWS does not report the host entering one; driven as a launch",
                lifecycle_state=member.lifecycle_state if member else None,
            )
        if action.time is not None:
            # Replayed from an archive, or from a skewed clock: said, and never used either way.
            why = implausible_time(action.time, self.clock(), MAX_GLOBAL_TIMEOUT_SECONDS)
            if why is not None:
                logger.warning("launch event time is implausible; ignored", event_time=action.time, reason=why)
        if not self._asks_for_a_mount(aws, action.group_name):
            return self.drive(aws, action.group_name, action.instance_id)
        if not self.agent_online(aws, action.instance_id):
            # As good as always at launch: agents come online 20 s to minutes later. The host's ECS registration
            # (at about the time its SSM agent comes online) sends the mount; the sweeper, if that event is lost.
            logger.info("SSM agent not online yet; the host's registration in ECS sends the mount")
            self._keep_alive(aws, action.group_name, action.instance_id)
            return "waiting: SSM agent not online yet"
        return self.drive(aws, action.group_name, action.instance_id, agent_online=True)

    def _asks_for_a_mount(self, aws: AwsAccess, group_name: str) -> bool:
        """Whether the group's tags (cached; the name is the event's) ask for a valid mount. Anything else goes
        straight to the step, which decides at once on AWS's word (README: "Edge cases")."""
        try:
            tags = self._group_tags(aws, group_name)
            failure_result_from_tags(tags, self._settings.on_failure)
            return mount_spec_from_tags(tags, self._settings.mount_roots) is not None
        except MountConfigError:
            return False

    def group_mount_spec(self, aws: AwsAccess, group_name: str) -> MountSpec | None:
        """The mount the group's tags (cached, as every step reads them) ask for now; None when they ask for none
        or a tag is refused. A host in service is marked only for a mount that is exactly this one."""
        try:
            return mount_spec_from_tags(self._group_tags(aws, group_name), self._settings.mount_roots)
        except MountConfigError:
            return None

    def agent_online(self, aws: AwsAccess, instance_id: str) -> bool:
        return instance_id in agents_online(aws.client("ssm"), [instance_id])

    def wait_for_agent(self, aws: AwsAccess, group_name: str, instance_id: str) -> str:
        """Look at the waiting host again shortly (its ECS agent registered before its SSM agent came online)."""
        self._keep_alive(aws, group_name, instance_id)
        return self._later(aws, group_name, instance_id, 0, agent_retry_delay(1), "agent", WAITING_FOR_AGENT)

    def _keep_alive(self, aws: AwsAccess, group_name: str, instance_id: str) -> None:
        """Heartbeat the waiting host when one is due, in a step that sends nothing (its agent is offline), so a
        hook of 120 s or more never expires while the app waits for the agent. The launch's start and the hook
        are cached (one read serves a burst). Nothing here asks whether the host waits: AWS refuses a heartbeat
        for a host that does not wait in the group under our hook, so a group name or host that is only a hint
        (an event's, a message's) costs a refused heartbeat, and never counts as a sight of the host waiting."""
        hook = self._hook(aws, group_name)
        if hook is None:
            return
        started = self._waits.started(aws, group_name, instance_id, hook, seen_waiting=False)
        self._waits.keep_alive(aws, group_name, instance_id, hook, started, self.clock())

    def on_retry(self, message: RetryMessage, aws: AwsAccess) -> str:
        # A message only says "look at this host again": its group name, attempt and what it waits for are hints.
        waiting_for_agent = message.waiting_for == WAITING_FOR_AGENT and message.attempt <= len(AGENT_DELAYS_SECONDS)
        if waiting_for_agent and self.agent_online(aws, message.instance_id):
            return self.drive(aws, message.group_name, message.instance_id, message.attempt, agent_online=True)
        if waiting_for_agent:
            self._keep_alive(aws, message.group_name, message.instance_id)
            return self._later(
                aws,
                message.group_name,
                message.instance_id,
                message.attempt,
                agent_retry_delay(message.attempt + 1),
                "agent",
                WAITING_FOR_AGENT,
            )
        return self.drive(aws, message.group_name, message.instance_id, message.attempt)

    def on_command_status(self, status: CommandStatus, aws: AwsAccess) -> str:
        ssm = aws.client("ssm")
        command = _our_command(ssm, status.command_id, self._settings.mount_document)
        # Act on what SSM says, not on the event: confirm the document, the host and the status.
        if command is None:
            logger.warning("command not found in SSM, or not of our document; ignored", command_id=status.command_id)
            return "ignored: command not found"
        if status.instance_id not in command.get("InstanceIds", []):
            logger.warning("command did not target this instance; ignored", command_id=status.command_id)
            return "ignored: command not confirmed"
        confirmed = _invocation(ssm, command, status.instance_id)["Status"]
        if confirmed != status.status:
            logger.warning(
                "SSM reports another status than the event; waiting for its own event",
                event_status=status.status,
                ssm_status=confirmed,
            )
            return f"ignored: SSM says {confirmed}"
        if confirmed == "Success":
            return self._on_success(aws, status, command)
        member = describe_member(aws.client("autoscaling"), status.instance_id)
        if member is None:
            logger.error("mount failed on a host outside any Auto Scaling group", status=confirmed)
            return f"mount {confirmed}; host is not in an Auto Scaling group"
        return self.drive(aws, member.group_name, status.instance_id, member=member)

    def _on_success(self, aws: AwsAccess, status: CommandStatus, command: dict[str, Any]) -> str:
        spec = _spec_from_parameters(command.get("Parameters", {}), self._settings.mount_roots)
        if spec is None:
            logger.error("command parameters are not a valid mount; ignored", command_id=status.command_id)
            return "ignored: parameters not a mount"
        member = describe_member(aws.client("autoscaling"), status.instance_id)
        if member is not None and member.lifecycle_state == "Pending:Wait":
            # Whether this command lets the host in is the step's decision: of this launch, and the
            # mount the group's tags ask for now. SSM's record of the command was just read: reused.
            return self.drive(aws, member.group_name, status.instance_id, member=member, confirmed=command)
        if member is None:
            # No group asks for a mount, so none counts as confirmed (contract: "exactly what the group asks now").
            logger.info("mount confirmed on a host outside any Auto Scaling group; no attribute set")
            return "mounted; host is not in an Auto Scaling group"
        # A host in service mounted by repair or by hand: marked only for exactly the mount its group asks now.
        asked = self.group_mount_spec(aws, member.group_name)
        if asked is None:
            logger.warning("mount confirmed on a host whose group asks for no mount; no attribute set")
            return "not marked: its group asks for no mount"
        difference = command_difference(command, asked, self._settings.mount_roots)
        if difference is not None:
            logger.warning(
                "mount confirmed, but not the one the host's group asks for; no attribute set", differs=difference
            )
            return f"not marked: mounted otherwise ({difference})"
        self._mounted(aws, status.instance_id, spec, command, member.group_name)
        return "already decided"  # as before this step: the attribute set again, nothing decided

    # --- the step -----------------------------------------------------------------------------

    def drive(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        attempt: int = 0,
        group: Group | None = None,
        fresh_tags: bool = False,
        member: GroupMember | None = None,
        confirmed: dict[str, Any] | None = None,
        container_instance: tuple[str, str] | None = None,
        agent_online: bool = False,
    ) -> str:
        """Move a host in Pending:Wait on: send the mount, wait, retry, or decide. Safe to repeat.

        `group_name` is a hint (an event's or a message's): the group AWS reports for the host counts.
        `confirmed`: a command SSM reported succeeded on the host a moment ago (the status event's step); when
        it is of this launch and asks for the group's mount, it decides without listing the host's commands.
        `container_instance`: (cluster, ARN) of the host's registration event, a hint ECS confirms.
        `agent_online`: SSM reported the host's agent online a moment ago, so a first mount is sent at once."""
        key = (aws.account, aws.region, instance_id)
        if group is not None:  # the sweeper's listing of the group: AWS's own view
            group_name = group.name
            state, zone, tags = (
                group.instance_states.get(instance_id),
                group.instance_zones.get(instance_id, ""),
                group.tags,
            )
        else:
            # `member`: AWS's report of the host read a moment ago by the caller (the status event's step).
            member = member or describe_member(aws.client("autoscaling"), instance_id)
            if member is not None and member.group_name != group_name:
                logger.warning("host is in another group than named; going by AWS", named=group_name)
            group_name = member.group_name if member else group_name
            state, zone = (member.lifecycle_state, member.zone) if member else (None, "")
            tags = self._group_tags(aws, group_name, fresh_tags) if member else {}
        if state is None:
            logger.info("host is no longer in its group; its flow ends here", group=group_name)
            return "done: host gone"
        if state != "Pending:Wait" and not enters_warm_pool(state):
            return f"done: host is {state}"
        self._looked_at.remember(key, self.clock())
        hook = self._hook(aws, group_name)
        if hook is None:
            return f"ignored: group has no {self._settings.hook_name} hook"
        if enters_warm_pool(state):
            # AWS reports the host on its way into the warm pool, stopped there until used: it mounts on the
            # launch that takes it out. Completed here too, so a lost launch event costs nothing.
            return self._complete(aws, group_name, instance_id, LifecycleResult.CONTINUE)
        try:
            failure_result = failure_result_from_tags(tags, self._settings.on_failure)
            spec = mount_spec_from_tags(tags, self._settings.mount_roots)
        except MountConfigError as exc:
            if group is None and not fresh_tags:
                # A cached tag must not throw a host away: AWS's tags of this moment decide.
                return self.drive(aws, group_name, instance_id, attempt, fresh_tags=True, confirmed=confirmed)
            logger.error("group tag is invalid; no mount command sent", tag=exc.tag, reason=exc.reason)
            count("MountsFailed", Reason="invalid-tag")
            return self._complete(aws, group_name, instance_id, _safe_failure_result(tags, self._settings))
        if spec is None:
            logger.error(
                f"group has no {FILE_SYSTEM_TAG} tag but uses the {self._settings.hook_name} hook; letting the host in",
                group=group_name,
            )
            return self._complete(aws, group_name, instance_id, LifecycleResult.CONTINUE)

        ssm = aws.client("ssm")
        current = self.clock()
        # What the app would send the host now: only a command with exactly these parameters is an attempt of ours.
        expected = self._parameters_now(aws, spec, zone)
        # The sweeper and repair come back on their own: no retry chain of their making.
        queue_retry = group is None
        listed = None
        if agent_online and confirmed is None:
            first, listed = self._first_mount(
                aws, group_name, instance_id, zone, spec, hook, failure_result, attempt, queue_retry
            )
            if first is not None:
                return first
        # SSM confirmed, a moment ago, a command sent too recently to be of an earlier launch of this host (no way
        # back through a warm pool is that short): when it is ours, it decides without the launch activity's read.
        if confirmed and launch_attempts([confirmed], current - WARM_POOL_ROUND_TRIP_SECONDS, expected):
            self._mounted(aws, instance_id, spec, confirmed, group_name, container_instance)
            return self._complete(aws, group_name, instance_id, LifecycleResult.CONTINUE)
        if confirmed:
            commands = [confirmed]
        elif listed is not None:
            commands = listed
        else:
            commands = _commands_for(ssm, instance_id, self._settings.mount_document)
        self._waits.first_sight(key, current)
        # The launch's start is read after our newest command was sent, so a relaunch (warm pool) before it shows.
        read_after = requested_at(commands[-1]) if commands else None
        started = self._waits.started(aws, group_name, instance_id, hook, read_after=read_after)
        ours = self._attempts(key, commands, expected)
        statuses = {c["CommandId"]: host_status(ssm, c, instance_id) for c in ours}
        mounted = next((c for c in reversed(ours) if statuses[c["CommandId"]] == "Success"), None)
        if mounted is not None and current - requested_at(mounted) > WARM_POOL_ROUND_TRIP_SECONDS:
            # Old enough that the host may have gone in service, back to a warm pool and out again since: this
            # launch's start is read afresh (a cached one may be older than the relaunch), and the command counts
            # only if it is of this launch.
            self._waits.started(aws, group_name, instance_id, hook, fresh=True)
            ours = self._attempts(key, commands, expected)
            mounted = next((c for c in reversed(ours) if statuses.get(c["CommandId"]) == "Success"), None)
        if mounted is not None:
            # SSM's record of this launch's command decides (the status event, or a late look after a lost one).
            self._mounted(aws, instance_id, spec, mounted, group_name, container_instance)
            return self._complete(aws, group_name, instance_id, LifecycleResult.CONTINUE)
        if confirmed:
            # Not of this launch, or not the mount the group asks for now: the host's whole record decides.
            return self.drive(aws, group_name, instance_id, attempt, member=member, fresh_tags=fresh_tags)
        self._waits.keep_alive(aws, group_name, instance_id, hook, started, current)
        running = [c for c in ours if statuses[c["CommandId"]] in RUNNING_STATUSES]

        budget = wait_budget(hook, self._settings.max_wait_seconds)
        if over_budget(current, started, budget):
            # Decide only on what AWS reports now: read the launch activity afresh (a cached start may
            # belong to an earlier launch of a reused warm-pool host).
            started = self._waits.started(aws, group_name, instance_id, hook, fresh=True)
            if started is not None and over_budget(current, started, budget):
                # A command still running past the budget (a hung host) is cancelled, then the host decided.
                self._cancel(ssm, instance_id, running)
                failure_result = self._failure_result_now(aws, group_name, failure_result)
                outcome = self._complete(aws, group_name, instance_id, failure_result)
                # Decided first: the checks that explain the failure must not hold the decision up.
                logger.error(
                    "host waited longer than its budget; deciding with the failure result",
                    waited_seconds=int(current - started),
                    commands_cancelled=len(running),
                    result=failure_result.value,
                    configuration_problems=self._problems_now(aws, group_name),
                )
                count("MountsFailed", Reason="timeout")
                return outcome
        if running:
            return "waiting: mount command running"

        rounds = send_rounds(ours)
        if rounds:
            last = rounds[-1][-1]
            result = script_result_from_invocation(_invocation(ssm, last, instance_id))
            failed = len(rounds)  # overlapping steps' commands are one attempt (README: "Nothing lost")
            kind = "permanent" if result.permanent else "transient"
            if not retry_after_failure(result, failed, self._settings.mount_attempts):
                failure_result = self._failure_result_now(aws, group_name, failure_result)
                outcome = self._complete(aws, group_name, instance_id, failure_result)
                logger.error(
                    "mount failed for good",
                    status=result.status,
                    exit_code=result.exit_code,
                    failure=kind,
                    detail=result.message,
                    attempts=failed,
                    result=failure_result.value,
                    configuration_problems=self._problems_now(aws, group_name),
                )
                count("MountsFailed", Reason=kind)
                return outcome
            retry_at = requested_at(last) + retry_delay(failed)
            if current < retry_at:
                logger.warning("mount failed transiently; retrying", exit_code=result.exit_code, attempts=failed)
                return self._later(aws, group_name, instance_id, attempt, int(retry_at - current) + 1, "mount retry")

        try:
            parameters = self._mount_parameters(aws, spec, zone)
        except NoMountTarget as exc:
            outcome = self._complete(
                aws, group_name, instance_id, self._failure_result_now(aws, group_name, failure_result)
            )
            logger.error(
                "cannot mount from the host's zone; no mount command sent",
                reason=str(exc),
                zone=zone,
                configuration_problems=self._problems_now(aws, group_name),
            )
            count("MountsFailed", Reason="no-mount-target")
            return outcome
        except MountTargetNotReady as exc:
            logger.warning("mount target not ready; waiting", reason=str(exc))
            return self._later(aws, group_name, instance_id, attempt, retry_delay(attempt + 1), "mount target")
        if _commands_for(ssm, instance_id, self._settings.mount_document)[len(commands) :]:
            # Another step sent one since this one listed (an overlapping retry, sweep or invoke): it is ours.
            logger.info("another step sent the mount command meanwhile; not sending a second")
            return "waiting: mount command running"
        return self._send(aws, group_name, instance_id, spec, parameters, failure_result, attempt, queue_retry)

    # --- pieces -------------------------------------------------------------------------------

    def _first_mount(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        zone: str,
        spec: MountSpec,
        hook: Hook,
        failure_result: LifecycleResult,
        attempt: int,
        queue_retry: bool,
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        """A host with no mount command on SSM's record has nothing to decide: no attempt failed, none runs, none
        is of an earlier launch. Within its budget, and heartbeated when due, its mount is sent at once, the
        host's commands listed once, just before (README: "Performance"). No outcome when SSM has a record of
        the host (returned, for the whole step to decide on), when the budget is spent, or when its zone has no
        mount target ready: the whole step decides then. Only once SSM reported the host's agent online a moment
        ago, so the command is accepted."""
        key = (aws.account, aws.region, instance_id)
        current = self.clock()
        self._waits.first_sight(key, current)
        started = self._waits.started(aws, group_name, instance_id, hook)
        if over_budget(current, started, wait_budget(hook, self._settings.max_wait_seconds)):
            return None, None
        self._waits.keep_alive(aws, group_name, instance_id, hook, started, current)
        parameters = self._parameters_now(aws, spec, zone)
        if parameters is None:
            return None, None
        commands = _commands_for(aws.client("ssm"), instance_id, self._settings.mount_document)
        if commands:
            return None, commands
        return self._send(aws, group_name, instance_id, spec, parameters, failure_result, attempt, queue_retry), None

    def _send(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        spec: MountSpec,
        parameters: dict[str, list[str]],
        failure_result: LifecycleResult,
        attempt: int,
        queue_retry: bool = True,
    ) -> str:
        try:
            command = self._send_mount_command(aws, instance_id, parameters, launch_comment(group_name))
        except ClientError as exc:
            code = error_code(exc)
            if code == "InvalidInstanceId":
                # Its SSM agent is not online yet: asking SSM is one call, as a check first would be.
                logger.info("SSM does not accept the host yet; waiting for its agent")
                if not queue_retry:
                    return "waiting: SSM agent not online yet"
                return self._later(
                    aws, group_name, instance_id, attempt, agent_retry_delay(attempt + 1), "agent", WAITING_FOR_AGENT
                )
            if code in ("InvalidDocument", "InvalidParameters", "InvalidDocumentVersion"):
                logger.error(
                    "mount document refused the command; deploy the document (README: Deploy)",
                    document=self._settings.mount_document,
                    error=str(exc),
                )
                count("MountsFailed", Reason="document")
                return self._complete(
                    aws, group_name, instance_id, self._failure_result_now(aws, group_name, failure_result)
                )
            raise
        logger.info(
            "mount command sent",
            command_id=command.get("CommandId"),
            file_system_id=spec.file_system_id,
            mount_path=spec.mount_path,
            mount_target_ip=parameters["MountTargetIp"][0],
            require_tls=parameters["RequireTls"][0],
        )
        count("MountCommandsSent")
        return f"mount command sent: {command.get('CommandId')}"

    def _mount_parameters(self, aws: AwsAccess, spec: MountSpec, zone: str) -> dict[str, list[str]]:
        """The parameters the app sends a host in `zone` for the mount: its zone's mount target, the file system's
        TLS rule (both cached a minute). Raises NoMountTarget or MountTargetNotReady."""
        file_system = self._file_system(aws, spec.file_system_id)
        ip = select_mount_target_ip(file_system.mount_targets, spec.file_system_id, zone)
        return mount_command_parameters(spec, aws.region, ip, file_system.requires_tls)

    def _parameters_now(self, aws: AwsAccess, spec: MountSpec, zone: str) -> dict[str, list[str]] | None:
        """The parameters the app would send the host now; None when it would send nothing (no mount target ready
        in its zone): then no command counts as the app's attempt."""
        try:
            return self._mount_parameters(aws, spec, zone)
        except (NoMountTarget, MountTargetNotReady):
            return None

    def _attempts(
        self, key: tuple[str, str, str], commands: list[dict[str, Any]], expected: dict[str, list[str]] | None
    ) -> list[dict[str, Any]]:
        """The app's own attempts for the host's current launch, of the commands (oldest first)."""
        since = self._waits.since(key)
        return [] if since is None else launch_attempts(commands, since, expected)

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

    def mount_in_service(self, aws: AwsAccess, instance_id: str, zone: str, spec: MountSpec) -> str:
        """Repair: send the launch step's mount (same document, parameters, mount target) to a host already in
        service whose SSM agent is online. Nothing is completed or heartbeated: there is no action left. Its
        status event records the mount and sets the attribute, as for any mount."""
        try:
            parameters = self._mount_parameters(aws, spec, zone)
        except (NoMountTarget, MountTargetNotReady) as exc:
            return f"not sent: {exc}"
        try:
            command = self._send_mount_command(
                aws, instance_id, parameters, f"efs-automount: mount {spec.file_system_id} by repair"
            )
        except ClientError as exc:
            if error_code(exc) in (
                "InvalidInstanceId",
                "InvalidDocument",
                "InvalidParameters",
                "InvalidDocumentVersion",
            ):
                return f"not sent: {exc}"
            raise
        logger.info("mount command sent by repair", command_id=command.get("CommandId"), instance_id=instance_id)
        count("MountCommandsSent")
        return f"mount command sent: {command.get('CommandId')}"

    def _mounted(
        self,
        aws: AwsAccess,
        instance_id: str,
        spec: MountSpec,
        command: dict[str, Any],
        group_name: str | None,
        container_instance: tuple[str, str] | None = None,
    ) -> None:
        """A mount SSM confirmed: set the attribute on the host's container instance when it is registered.
        Not registered yet: its registration's step sets it, on the same proof (host_record).
        `container_instance`: (cluster, ARN) an event named, a hint ECS must confirm."""
        count("MountsSucceeded")
        logger.info("mount confirmed", file_system_id=spec.file_system_id, mount_path=spec.mount_path)
        ecs = aws.client("ecs")
        found = None
        if container_instance is not None:
            cluster, arn = container_instance
            found = (cluster, arn) if is_hosts_container_instance(ecs, cluster, arn, instance_id) else None
        if found is None:
            found = self._find_container_instance(aws, instance_id, command, group_name)
        if found is None:
            logger.info("host has no container instance yet; its registration sets the attribute")
            return
        cluster, arn = found
        set_mount_attributes(ecs, cluster, arn, {spec.file_system_id: spec.mount_path})
        logger.info("mount attribute set", cluster=cluster)

    def _find_container_instance(
        self, aws: AwsAccess, instance_id: str, command: dict[str, Any], group_name: str | None
    ) -> tuple[str, str] | None:
        """The host's container instance as ECS reports it, in the cluster this container last found the group's
        hosts in (a hint: most groups feed one cluster), else in the cluster the host's mount summary names
        (a hint, one GetCommandInvocation). The registration event may be lost: ECS is asked either way."""
        ecs = aws.client("ecs")
        group_key = (aws.account, aws.region, group_name or "")
        tried: set[str] = set()

        def candidates() -> Iterator[str | None]:
            yield self._clusters.get(group_key)
            named = self._cluster_named_by_host(aws, instance_id, command)
            yield named
            if named is None and not self._clusters.get(group_key):
                # Nothing names the host's cluster (its ECS_CLUSTER is not set in ecs.config): every cluster here.
                for page in ecs.get_paginator("list_clusters").paginate():
                    yield from page.get("clusterArns", [])

        for cluster in candidates():
            name = (cluster or "").rsplit("/", 1)[-1]
            if not name or name in tried or len(tried) >= MAX_CLUSTERS_SEARCHED:
                continue
            tried.add(name)
            arn = find_container_instance(ecs, cluster, instance_id)
            if arn is not None:
                if group_name:
                    self._clusters.remember(group_key, cluster)
                return cluster, arn
        return None

    def _cluster_named_by_host(self, aws: AwsAccess, instance_id: str, command: dict[str, Any]) -> str | None:
        """The cluster the host joined, from its mount summary (a hint: ECS confirms); None when it has none."""
        try:
            invocation = aws.client("ssm").get_command_invocation(
                CommandId=command["CommandId"], InstanceId=instance_id
            )
        except ClientError as exc:
            if error_code(exc) not in ("InvocationDoesNotExist", "InvalidCommandId"):
                raise
            return None
        cluster = parse_summary(invocation.get("StandardOutputContent", "")).get("ecs_cluster")
        if cluster == "":
            return None  # no ECS configuration on the host: not an ECS host
        if not isinstance(cluster, str) or not CLUSTER_NAME.fullmatch(cluster):
            logger.info("mount summary names no valid ECS cluster; the registration event sets the attribute")
            return None
        return cluster

    def _complete(self, aws: AwsAccess, group_name: str, instance_id: str, result: LifecycleResult) -> str:
        completed = complete_lifecycle_action(
            aws.client("autoscaling"), self._settings.hook_name, group_name, instance_id, result
        )
        self._forget_launch(aws, instance_id)
        return f"completed {result.value}" if completed else "already decided"

    def _forget_launch(self, aws: AwsAccess, instance_id: str) -> None:
        key = (aws.account, aws.region, instance_id)
        self._decided.remember(key, self.clock())
        self._waits.forget(key)

    def _later(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        attempt: int,
        delay: int,
        reason: str,
        waiting_for: str = "",
    ) -> str:
        message = RetryMessage(
            account=aws.account,
            region=aws.region,
            group_name=group_name,
            instance_id=instance_id,
            attempt=attempt + 1,
            waiting_for=waiting_for,
        )
        if self._retry_queue.later(message, delay):
            count("RetriesQueued", Reason=reason)
            return f"waiting: {reason}, retry in {delay}s"
        if not self._warned_no_queue:
            logger.warning("RETRY_QUEUE_URL is not set: the sweeper carries retries (every minute)")
            self._warned_no_queue = True
        return f"waiting: {reason}, the sweeper retries"

    def proves_launch_mounted(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        zone: str,
        spec: MountSpec,
        commands: list[dict[str, Any]],
    ) -> bool:
        """Whether SSM's record (`commands`, oldest first) proves the waiting host mounted as the step judges it
        (repair): one of the app's own attempts for this launch (requested since it began, as Auto Scaling
        reports it now: a warm pool may have launched the host again) succeeded on the host."""
        ssm = aws.client("ssm")
        expected = self._parameters_now(aws, spec, zone)
        # Of any launch first (no read when none succeeded), then of this one, read afresh.
        succeeded = [
            c for c in launch_attempts(commands, 0.0, expected) if host_status(ssm, c, instance_id) == "Success"
        ]
        hook = self._hook(aws, group_name)
        if not succeeded or hook is None:
            return False
        key = (aws.account, aws.region, instance_id)
        self._waits.first_sight(key, self.clock())
        self._waits.started(aws, group_name, instance_id, hook, fresh=True)
        return bool(self._attempts(key, succeeded, expected))

    def known_decided(self, aws: AwsAccess, instance_id: str) -> bool:
        """Whether this container saw our action for the host decided in the last few minutes (another hook
        may still hold the host)."""
        decided_at = self._decided.get((aws.account, aws.region, instance_id))
        return decided_at is not None and self.clock() - decided_at < DECIDED_MEMORY_SECONDS

    def sweep_deadline(
        self, aws: AwsAccess, group_name: str, instance_id: str, current: float
    ) -> tuple[float, float | None]:
        """When the host must be looked at again, and when its wait began (None: unknown)."""
        hook = self._hook(aws, group_name)
        if hook is None:
            return current, None
        started = self._waits.started(aws, group_name, instance_id, hook)
        key = (aws.account, aws.region, instance_id)
        if self._waits.unmeasured(key):
            return current, None  # looked at (and heartbeated) on every run
        budget = wait_budget(hook, self._settings.max_wait_seconds)
        return deadline(current, started, self._waits.last_heartbeat(key), hook, budget), started

    def saw_waiting_for_agent(self, aws: AwsAccess, instance_id: str) -> None:
        """The sweeper looked at the host and left it to its agent: others take the next runs' budget first."""
        self._looked_at.remember((aws.account, aws.region, instance_id), self.clock())

    def looked_at(self, aws: AwsAccess, instance_id: str) -> float | None:
        return self._looked_at.get((aws.account, aws.region, instance_id))

    def _group_tags(self, aws: AwsAccess, group_name: str, fresh: bool = False) -> dict[str, str]:
        key = (aws.account, aws.region, group_name)
        if fresh:
            self._tags.forget(key)
        return self._tags.get(key, lambda: group_tags(aws.client("autoscaling"), group_name))

    def _failure_result_now(self, aws: AwsAccess, group_name: str, cached: LifecycleResult) -> LifecycleResult:
        """The failure result the group's tags ask for as AWS reports them now (a cached value may be a
        minute old): a host is thrown away or let in unmounted only on the tag of this moment."""
        fresh = _safe_failure_result(self._group_tags(aws, group_name, fresh=True), self._settings)
        if fresh != cached:
            logger.warning("failure result changed since the group's tags were read", was=cached.value, now=fresh.value)
        return fresh

    def _problems_now(self, aws: AwsAccess, group_name: str) -> list[str]:
        """The group's configuration problems as the checks find them (cached a minute: a burst of hosts failing
        alike is checked once), so that a failure explains itself (each counted in ConfigurationProblems); none when
        they cannot be read. Only once a host is decided: the checks never hold a decision up."""
        from chalicelib.checks.group_checks import GroupChecks, tagged_groups

        def check() -> list[str]:
            described = tagged_groups(aws, group_name)
            return GroupChecks(self._settings).check(aws, described[0]).findings.problems if described else []

        try:
            problems = self._problems.get((aws.account, aws.region, group_name), check)
        except Exception as exc:  # noqa: BLE001 - the failure is decided either way; the checks only explain it
            logger.warning("could not check the group's configuration", error=str(exc))
            return []
        for problem in problems:
            count("ConfigurationProblems", Rule=problem.split(":", 1)[0])
        return problems

    def _cancel(self, ssm: Any, instance_id: str, running: list[dict[str, Any]]) -> None:
        """Cancel our commands still running on the host, so none mounts after the host was decided."""
        for command in running:
            try:
                ssm.cancel_command(CommandId=command["CommandId"], InstanceIds=[instance_id])
            except ClientError as exc:
                # Finished meanwhile (the decision stands: the budget is spent), or already cancelled.
                logger.warning("could not cancel a mount command", command_id=command["CommandId"], error=str(exc))

    def has_our_hook(self, aws: AwsAccess, group_name: str) -> bool:
        return self._hook(aws, group_name) is not None

    def _hook(self, aws: AwsAccess, group_name: str) -> Hook | None:
        return self._hooks.get(
            (aws.account, aws.region, group_name),
            lambda: describe_hook(aws.client("autoscaling"), group_name, self._settings.hook_name),
        )

    def _file_system(self, aws: AwsAccess, file_system_id: str) -> FileSystemAccess:
        def load() -> FileSystemAccess:
            efs = aws.client("efs")
            targets = describe_mount_targets(efs, file_system_id)
            return FileSystemAccess(targets, file_system_requires_tls(efs, file_system_id))

        return self._file_systems.get((aws.account, aws.region, file_system_id), load)


def _safe_failure_result(tags: dict[str, str], settings: Settings) -> LifecycleResult:
    try:
        return failure_result_from_tags(tags, settings.on_failure)
    except MountConfigError:
        return settings.on_failure


def _our_command(ssm: Any, command_id: str, document: str) -> dict[str, Any] | None:
    try:
        commands = ssm.list_commands(CommandId=command_id)["Commands"]
    except ClientError as exc:
        if error_code(exc) != "InvalidCommandId":
            raise
        return None
    return commands[0] if commands and commands[0].get("DocumentName") == document else None

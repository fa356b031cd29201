"""The launch lifecycle flow: a new host waits in Pending:Wait until its EFS mount is confirmed.

Every entry point (launch event, command status event, retry message, sweeper) ends in `drive`, one step that
reads the host's facts from AWS itself (its lifecycle state, our mount commands and their results), asks the
launch decision (launch/decision.py) and acts: send the command, wait, retry, or decide. Nothing is remembered
between steps but what AWS holds, so any step may run late, twice, out of order, or after a crash, and the host
is still decided once, correctly. What a container remembers (launch activity starts, its own heartbeats, hosts
already decided, cached reads) only spares calls.

How long a host has waited is measured from Auto Scaling's launch activity for it, read from AWS when the step
needs it; an event's time, an EC2 launch time and a retry message's content never count (docs/how-it-works.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.launch.actions import LaunchActions
from chalicelib.launch.attempts import launch_attempts
from chalicelib.launch.budget import MAX_GLOBAL_TIMEOUT_SECONDS, deadline, implausible_time, wait_budget
from chalicelib.launch.command_status import on_command_status
from chalicelib.launch.decision import PENDING_WAIT, Heartbeat, decide_launch, enters_warm_pool
from chalicelib.launch.facts import HostFacts
from chalicelib.launch.groups import Group, GroupMember, describe_member
from chalicelib.launch.reads import LaunchReads
from chalicelib.launch.retry_queue import (
    AGENT_DELAYS_SECONDS,
    WAITING_FOR_AGENT,
    RetryMessage,
    RetryQueue,
    agent_retry_delay,
)
from chalicelib.launch.wait import LaunchWaits
from chalicelib.mount.commands import agents_online, host_status
from chalicelib.mount.spec import MountSpec
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import LAUNCH_TRANSITION, CommandStatus, LaunchAction
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.memory import HostMemory
from chalicelib.plumbing.observability import logger
from chalicelib.plumbing.settings import Settings


def now() -> float:
    """The time the flow goes by (epoch seconds); one seam for tests that let hours pass."""
    return time.time()


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


class LifecycleFlow:
    def __init__(self, settings: Settings, retry_queue: RetryQueue, clock: Callable[[], float] | None = None) -> None:
        self._settings = settings
        self._retry_queue = retry_queue
        self.clock = clock or (lambda: now())

        # The caches go by the flow's clock, as every other time the flow keeps.
        def flow_clock() -> float:
            return self.clock()

        self.reads = LaunchReads(settings, flow_clock)
        # When each host's wait began (AWS's launch activity) and this container's heartbeats for it.
        self._waits = LaunchWaits(settings.hook_name, flow_clock)
        self.actions = LaunchActions(settings, retry_queue, self.reads, self._waits, flow_clock)
        # The last look at each host.
        self._looked_at = HostMemory()

    # --- entry points -------------------------------------------------------------------------

    def on_launch(self, action: LaunchAction, aws: AwsAccess) -> str:
        if action.into_warm_pool:
            # The event's word is not enough to let a host go on unmounted: AWS must report it entering the pool.
            member = describe_member(aws.client("autoscaling"), action.instance_id)
            if member is not None and enters_warm_pool(member.lifecycle_state):
                # Stopped in the pool until used; it mounts on the launch event that takes it out.
                return self.actions.complete(aws, member.group_name, action.instance_id, LifecycleResult.CONTINUE)
            logger.warning(
                "launch event says WarmPool but AWS does not report the host entering one; driven as a launch",
                lifecycle_state=member.lifecycle_state if member else None,
            )
        if action.time is not None:
            # Replayed from an archive, or from a skewed clock: said, and never used either way.
            why = implausible_time(action.time, self.clock(), MAX_GLOBAL_TIMEOUT_SECONDS)
            if why is not None:
                logger.warning("launch event time is implausible; ignored", event_time=action.time, reason=why)
        # Anything but a valid mount goes straight to the step, which decides at once on AWS's word.
        if not self.reads.asks_for_a_mount(aws, action.group_name):
            return self.drive(aws, action.group_name, action.instance_id)
        if not self.agent_online(aws, action.instance_id):
            # As good as always at launch: agents come online 20 s to minutes later. The host's ECS registration
            # (at about the time its SSM agent comes online) sends the mount; the sweeper, if that event is lost.
            logger.info("SSM agent not online yet; the host's registration in ECS sends the mount")
            self._keep_alive(aws, action.group_name, action.instance_id)
            return "waiting: SSM agent not online yet"
        return self.drive(aws, action.group_name, action.instance_id, agent_online=True)

    def group_mount_spec(self, aws: AwsAccess, group_name: str) -> MountSpec | None:
        return self.reads.group_mount_spec(aws, group_name)

    def agent_online(self, aws: AwsAccess, instance_id: str) -> bool:
        return instance_id in agents_online(aws.client("ssm"), [instance_id])

    def wait_for_agent(self, aws: AwsAccess, group_name: str, instance_id: str, attempt: int = 0) -> str:
        """Look at the waiting host again shortly (its ECS agent registered before its SSM agent came online)."""
        self._keep_alive(aws, group_name, instance_id)
        delay = agent_retry_delay(attempt + 1)
        return self.actions.later(aws, group_name, instance_id, attempt, delay, "agent", WAITING_FOR_AGENT)

    def _keep_alive(self, aws: AwsAccess, group_name: str, instance_id: str) -> None:
        """Heartbeat the waiting host when one is due, in a step that sends nothing (its agent is offline), so a
        hook of 120 s or more never expires while the app waits for the agent. The launch's start and the hook
        are cached (one read serves a burst). Nothing here asks whether the host waits: AWS refuses a heartbeat
        for a host that does not wait in the group under our hook, so a group name or host that is only a hint
        (an event's, a message's) costs a refused heartbeat, and never counts as a sight of the host waiting."""
        hook = self.reads.hook(aws, group_name)
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
            return self.wait_for_agent(aws, message.group_name, message.instance_id, message.attempt)
        return self.drive(aws, message.group_name, message.instance_id, message.attempt)

    def on_command_status(self, status: CommandStatus, aws: AwsAccess) -> str:
        return on_command_status(self, self._settings, status, aws)

    # --- the step: read the facts, decide, act ------------------------------------------------

    def drive(
        self,
        aws: AwsAccess,
        group_name: str,
        instance_id: str,
        attempt: int = 0,
        group: Group | None = None,
        member: GroupMember | None = None,
        confirmed: dict[str, Any] | None = None,
        container_instance: tuple[str, str] | None = None,
        agent_online: bool = False,
    ) -> str:
        """Move a host in Pending:Wait on: send the mount, wait, retry, or decide. Safe to repeat.

        `group_name` is a hint (an event's or a message's): the group AWS reports for the host counts.
        `group`: the sweeper's listing of the group (AWS's own view); `member`: AWS's report of the host read a
        moment ago by the caller. `confirmed`: a command SSM reported succeeded on the host a moment ago.
        `container_instance`: (cluster, ARN) of the host's registration event, a hint ECS confirms.
        `agent_online`: SSM reported the host's agent online a moment ago, so a first mount is sent at once."""
        facts = HostFacts(
            aws,
            self.reads,
            self._waits,
            self._looked_at,
            self._settings.mount_document,
            self.clock,
            group_name,
            instance_id,
            attempt=attempt,
            group=group,
            member=member,
            confirmed=confirmed,
            agent_online=agent_online,
        )
        settings = self._settings
        try:
            action = decide_launch(facts, settings.hook_name, settings.max_wait_seconds, settings.mount_attempts)
            if isinstance(action, Heartbeat):
                # Heartbeated, the host is decided on the same facts (read once: asking again costs no call).
                self.actions.act(facts, action, container_instance, queue_retry=False)
                action = decide_launch(facts, settings.hook_name, settings.max_wait_seconds, settings.mount_attempts)
        except ClientError:
            self._keep_alive_through_a_failed_read(facts)
            raise
        # The sweeper and repair come back on their own: no retry chain of their making.
        return self.actions.act(facts, action, container_instance, queue_retry=group is None)

    def _keep_alive_through_a_failed_read(self, facts: HostFacts) -> None:
        """A read failed (EFS, SSM or Auto Scaling answering errors): the step fails, to be run again, but a host AWS
        reported waiting is heartbeated when due all the same, so that an outage of a read longer than half the
        hook's heartbeat timeout never lets the hook expire into its default result."""
        place = facts.__dict__.get("place")
        if facts.beaten or place is None or place.state != PENDING_WAIT:
            return
        try:
            hook = self.reads.hook(facts.aws, place.group_name)
            if hook is not None:
                since = self._waits.since(facts.key)
                self._waits.keep_alive(facts.aws, place.group_name, facts.instance_id, hook, since, facts.now)
        except ClientError as exc:
            logger.warning("could not heartbeat the host after a failed read", error=str(exc))

    # --- for the sweeper, the command status step and repair ---------------------------------

    def mark(self, aws: AwsAccess, instance_id: str, spec: MountSpec, command: dict[str, Any], group_name: str) -> None:
        self.actions.mark(aws, instance_id, spec, command, group_name)

    def mount_in_service(self, aws: AwsAccess, instance_id: str, zone: str, spec: MountSpec) -> str:
        return self.actions.mount_in_service(aws, instance_id, zone, spec)

    def proves_launch_mounted(
        self, aws: AwsAccess, group_name: str, instance_id: str, zone: str, spec: MountSpec, commands: list[Any]
    ) -> bool:
        """Whether SSM's record (`commands`, oldest first) proves the waiting host mounted as the step judges it
        (repair): one of the app's own attempts for this launch (requested since it began, as Auto Scaling
        reports it now: a warm pool may have launched the host again) succeeded on the host."""
        ssm = aws.client("ssm")
        parameters = self.reads.parameters_now(aws, spec, zone)
        expected = parameters if isinstance(parameters, dict) else None
        # Of any launch first (no read when none succeeded), then of this one, read afresh.
        succeeded = [
            c for c in launch_attempts(commands, 0.0, expected) if host_status(ssm, c, instance_id) == "Success"
        ]
        hook = self.reads.hook(aws, group_name)
        if not succeeded or hook is None:
            return False
        key = (aws.account, aws.region, instance_id)
        self._waits.first_sight(key, self.clock())
        self._waits.started(aws, group_name, instance_id, hook, fresh=True)
        since = self._waits.since(key)
        return since is not None and bool(launch_attempts(succeeded, since, expected))

    def known_decided(self, aws: AwsAccess, instance_id: str) -> bool:
        return self.actions.known_decided(aws, instance_id)

    def sweep_deadline(
        self, aws: AwsAccess, group_name: str, instance_id: str, current: float
    ) -> tuple[float, float | None]:
        """When the host must be looked at again, and when its wait began (None: unknown)."""
        hook = self.reads.hook(aws, group_name)
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

    def has_our_hook(self, aws: AwsAccess, group_name: str) -> bool:
        return self.reads.hook(aws, group_name) is not None

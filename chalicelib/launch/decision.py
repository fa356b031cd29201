"""The launch step's decision: from the facts of one host, the one thing to do with it now.

Pure: every fact comes through `LaunchFacts`, which the flow reads from AWS lazily (a fact the decision does not
ask for is never read) and tests give as plain values. The rules that decide a host are asked here, each from the
one place it lives: which commands are this launch's attempts (launch/attempts.py), how long the host may wait and
has waited (launch/budget.py), what its group asks for (mount/spec.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib.launch.attempts import launch_attempts, send_rounds
from chalicelib.launch.budget import over_budget, wait_budget
from chalicelib.launch.groups import Hook
from chalicelib.launch.retry_queue import retry_delay
from chalicelib.mount.commands import RUNNING_STATUSES, requested_at
from chalicelib.mount.script_result import ScriptResult
from chalicelib.mount.spec import FILE_SYSTEM_TAG, MountConfigError, MountSpec
from chalicelib.mount.targets import MountTargetNotReady, NoMountTarget
from chalicelib.plumbing.lifecycle_result import LifecycleResult

PENDING_WAIT = "Pending:Wait"
# A host launched into a warm pool waits here under a launch hook; in Pending:Wait when it leaves the pool
# (https://docs.aws.amazon.com/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html).
WARM_POOL_WAIT = "Warmed:Pending:Wait"
# Less than the shortest way back through a warm pool (in service, scaled in to the pool, stopped, started
# again): a successful command younger than this is of the current launch when read after the launch's start.
WARM_POOL_ROUND_TRIP_SECONDS = 120

Command = dict[str, Any]
Parameters = dict[str, list[str]]


def enters_warm_pool(lifecycle_state: str | None) -> bool:
    """Whether the host's lifecycle state, as AWS reports it, is a launch hook's wait on the way into a warm
    pool, where the host is stopped, not put in service. Any other state is driven as a launch."""
    return lifecycle_state == WARM_POOL_WAIT


def retry_after_failure(result: ScriptResult, failed_attempts: int, max_attempts: int) -> bool:
    """Whether a failed mount is worth another attempt: transient, and attempts left."""
    return not result.permanent and failed_attempts < max_attempts


# --- the facts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where AWS reports the host: its group, its lifecycle state (None: in no group any more) and its zone."""

    group_name: str
    state: str | None
    zone: str


@dataclass(frozen=True)
class Asked:
    """What the group's tags ask for: the mount (None: none) and the failure result; or the tag refused."""

    spec: MountSpec | None
    failure_result: LifecycleResult
    refused: MountConfigError | None = None


class LaunchFacts(Protocol):
    """What the decision may ask of one host. Each is read when first asked, then kept for the step."""

    # The step's time, taken when the decision first asks for it: once the host, its group and hook are read.
    now: float
    # The time of the first-mount look, taken when first asked for: once the mount targets are read too.
    first_mount_now: float
    # The caller's count of looks at the host (a retry message's attempt): a hint, for backoff only.
    attempt: int
    # SSM reported the host's agent online a moment ago: a first mount is sent at once.
    agent_online: bool
    # A command SSM reported succeeded on the host a moment ago (the status event's step), or None.
    confirmed: Command | None

    @property
    def place(self) -> Place: ...

    @property
    def hook(self) -> Hook | None: ...

    @property
    def asked(self) -> Asked: ...

    @property
    def parameters(self) -> Parameters | NoMountTarget | MountTargetNotReady:
        """What the app would send the host now, or why it would send nothing (its zone's mount target)."""
        ...

    @property
    def commands(self) -> list[Command]:
        """SSM's record of the host's mount commands, oldest first."""
        ...

    def started(self, fresh: bool = False, read_after: float | None = None) -> float | None:
        """When the host's wait began as AWS reports it (None: unknown); `fresh`: read again now."""
        ...

    def since(self) -> float | None:
        """The moment from which a command counts as one of this launch's (the start last read)."""
        ...

    def status(self, command: Command) -> str: ...

    def result(self, command: Command) -> ScriptResult: ...

    def failure_result_now(self) -> LifecycleResult:
        """The failure result the group's tags ask for as AWS reports them at this moment."""
        ...

    def sent_meanwhile(self) -> bool:
        """Whether another step sent the host a command since `commands` was read."""
        ...

    def heartbeat_due(self, started: float | None, at: float) -> bool:
        """Whether the host needs a heartbeat at `at` (never twice in a step), its wait having begun at `started`."""
        ...


# --- the actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """Why a host is decided with the failure result: MountsFailed's Reason, and the error to log."""

    reason: str
    message: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    # Whether the group's configuration problems are read to explain it (not when the failure names its cause).
    explain: bool = True


@dataclass(frozen=True)
class Done:
    """Nothing to do: the host is gone, in service, or none of ours."""

    outcome: str
    note: str = ""


@dataclass(frozen=True)
class Complete:
    """Complete the host's action with `result`: first mark the host for the command that `mounted` it, or
    cancel the commands still running on it."""

    result: LifecycleResult
    mounted: Command | None = None
    cancel: tuple[Command, ...] = ()
    failure: Failure | None = None
    note: str = ""


@dataclass(frozen=True)
class Heartbeat:
    """Record a heartbeat for the host's action (at `at`), then decide again on the same facts."""

    started: float | None
    at: float


@dataclass(frozen=True)
class Send:
    """Send the mount command with these parameters."""

    parameters: Parameters


@dataclass(frozen=True)
class Wait:
    """The host waits on: looked at again in `delay` seconds through the retry queue, or, with no delay, when what
    it waits for reports (a running command's status event)."""

    reason: str
    delay: int | None = None
    note: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)
    level: str = "warning"


Action = Done | Complete | Heartbeat | Send | Wait


# --- the decision -------------------------------------------------------------------------------


def decide_launch(facts: LaunchFacts, hook_name: str, max_wait_seconds: int, mount_attempts: int) -> Action:
    """The one thing to do now with a host that may wait on our launch hook."""
    place = facts.place
    if place.state is None:
        return Done("done: host gone", note="host is no longer in its group; its flow ends here")
    if place.state != PENDING_WAIT and not enters_warm_pool(place.state):
        return Done(f"done: host is {place.state}")
    hook = facts.hook
    if hook is None:
        return Done(f"ignored: group has no {hook_name} hook")
    if enters_warm_pool(place.state):
        # AWS reports the host on its way into the warm pool, stopped there until used: it mounts on the launch
        # that takes it out. Completed here too, so a lost launch event costs nothing.
        return Complete(LifecycleResult.CONTINUE)
    asked = facts.asked
    if asked.refused is not None:
        failure = Failure(
            "invalid-tag",
            "group tag is invalid; no mount command sent",
            {"tag": asked.refused.tag, "reason": asked.refused.reason},
            explain=False,
        )
        return Complete(asked.failure_result, failure=failure)
    if asked.spec is None:
        note = f"group has no {FILE_SYSTEM_TAG} tag but uses the {hook_name} hook; letting the host in"
        return Complete(LifecycleResult.CONTINUE, note=note)
    budget = wait_budget(hook, max_wait_seconds)
    # The step's time, then the parameters every path compares commands with (in this order, as ever).
    facts.now  # noqa: B018 - a read of the clock at this point of the step
    parameters = facts.parameters
    if facts.agent_online and facts.confirmed is None:
        first = _first_mount(facts, budget, parameters)
        if first is not None:
            return first
    return _decide_on_record(facts, budget, mount_attempts)


def _first_mount(
    facts: LaunchFacts, budget: float, parameters: Parameters | NoMountTarget | MountTargetNotReady
) -> Heartbeat | Send | None:
    """A host with no mount command on SSM's record has nothing to decide: no attempt failed, none runs, none is
    of an earlier launch. Within its budget, its mount is sent at once (docs/performance.md). None when SSM has
    a record of the host, the budget is spent or no mount target is ready: the whole record decides then."""
    now = facts.first_mount_now
    started = facts.started()
    if over_budget(now, started, budget):
        return None
    if facts.heartbeat_due(started, now):
        return Heartbeat(started, now)
    if not isinstance(parameters, dict) or facts.commands:
        return None
    return Send(parameters)


@dataclass(frozen=True)
class _Record:
    """This launch's attempts of the commands, and the newest of them that succeeded on the host."""

    started: float | None
    attempts: list[Command]
    statuses: dict[str, str]
    mounted: Command | None


def _this_launch(facts: LaunchFacts, commands: list[Command], expected: Parameters | None) -> _Record:
    # The launch's start is read after our newest command was sent, so a relaunch (warm pool) before it shows.
    started = facts.started(read_after=requested_at(commands[-1]) if commands else None)
    ours = _attempts(facts, commands, expected)
    statuses = {c["CommandId"]: facts.status(c) for c in ours}
    mounted = _newest_success(ours, statuses)
    if mounted is not None and facts.now - requested_at(mounted) > WARM_POOL_ROUND_TRIP_SECONDS:
        # Old enough that the host may have gone in service, back to a warm pool and out again since: this
        # launch's start is read afresh, and the command counts only if it is of this launch.
        facts.started(fresh=True)
        ours = _attempts(facts, commands, expected)
        mounted = _newest_success(ours, statuses)
    return _Record(started, ours, statuses, mounted)


def _attempts(facts: LaunchFacts, commands: list[Command], expected: Parameters | None) -> list[Command]:
    since = facts.since()
    return [] if since is None else launch_attempts(commands, since, expected)


def _newest_success(ours: list[Command], statuses: dict[str, str]) -> Command | None:
    return next((c for c in reversed(ours) if statuses.get(c["CommandId"]) == "Success"), None)


def _decide_on_record(facts: LaunchFacts, budget: float, mount_attempts: int) -> Action:
    """Decide on SSM's record of the host: this launch's mount confirmed, a wait spent, a failure final, or the
    mount (again)."""
    parameters = facts.parameters
    expected = parameters if isinstance(parameters, dict) else None
    confirmed = facts.confirmed
    if confirmed is not None:
        # Sent too recently to be of an earlier launch of this host (no way back through a warm pool is that
        # short): when it is ours, it decides without the launch activity's read.
        if launch_attempts([confirmed], facts.now - WARM_POOL_ROUND_TRIP_SECONDS, expected):
            return Complete(LifecycleResult.CONTINUE, mounted=confirmed)
        record = _this_launch(facts, [confirmed], expected)
        if record.mounted is not None:
            return Complete(LifecycleResult.CONTINUE, mounted=record.mounted)
        # Not of this launch, or not the mount the group asks for now: the host's whole record decides.
    record = _this_launch(facts, facts.commands, expected)
    if record.mounted is not None:
        # SSM's record of this launch's command decides (the status event, or a late look after a lost one).
        return Complete(LifecycleResult.CONTINUE, mounted=record.mounted)
    if facts.heartbeat_due(record.started, facts.now):
        # Every host left waiting is heartbeated when due, before anything that may take long.
        return Heartbeat(record.started, facts.now)
    running = tuple(c for c in record.attempts if record.statuses[c["CommandId"]] in RUNNING_STATUSES)
    if over_budget(facts.now, record.started, budget):
        # Decided only on what AWS reports now: a cached start may belong to an earlier launch of a reused host.
        started = facts.started(fresh=True)
        if started is not None and over_budget(facts.now, started, budget):
            failure = Failure(
                "timeout",
                "host waited longer than its budget; deciding with the failure result",
                {"waited_seconds": int(facts.now - started), "commands_cancelled": len(running)},
            )
            return Complete(facts.failure_result_now(), cancel=running, failure=failure)
    if running:
        return Wait("mount command running")
    retry = _after_failed_attempts(facts, record, mount_attempts)
    if retry is not None:
        return retry
    if isinstance(parameters, NoMountTarget):
        failure = Failure(
            "no-mount-target",
            "cannot mount from the host's zone; no mount command sent",
            {"reason": str(parameters), "zone": facts.place.zone},
        )
        return Complete(facts.failure_result_now(), failure=failure)
    if isinstance(parameters, MountTargetNotReady):
        fields = {"reason": str(parameters)}
        delay = retry_delay(facts.attempt + 1)
        return Wait("mount target", delay, "mount target not ready; waiting", fields)
    if facts.sent_meanwhile():
        # Another step sent one since this one listed (an overlapping retry, sweep or invoke): it is ours.
        note = "another step sent the mount command meanwhile; not sending a second"
        return Wait("mount command running", note=note, level="info")
    return Send(parameters)


def _after_failed_attempts(facts: LaunchFacts, record: _Record, mount_attempts: int) -> Action | None:
    """After this launch's failed attempts: the failure result when the last one is final, a wait for the backoff,
    or None when the next attempt is due (or none failed)."""
    rounds = send_rounds(record.attempts)
    if not rounds:
        return None
    last = rounds[-1][-1]
    result = facts.result(last)
    failed = len(rounds)  # overlapping steps' commands are one attempt (docs/how-it-works.md)
    kind = "permanent" if result.permanent else "transient"
    if not retry_after_failure(result, failed, mount_attempts):
        failure = Failure(
            kind,
            "mount failed for good",
            {
                "status": result.status,
                "exit_code": result.exit_code,
                "failure": kind,
                "detail": result.message,
                "attempts": failed,
            },
        )
        return Complete(facts.failure_result_now(), failure=failure)
    retry_at = requested_at(last) + retry_delay(failed)
    if facts.now < retry_at:
        fields = {"exit_code": result.exit_code, "attempts": failed}
        delay = int(retry_at - facts.now) + 1
        return Wait("mount retry", delay, "mount failed transiently; retrying", fields)
    return None

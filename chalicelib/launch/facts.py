"""The facts of one host for the launch decision, read from AWS when the decision first asks for each.

A fact the decision never asks for is never read, and one asked twice is read once in a step (the launch's
start is the exception: the decision asks for it afresh before a decision that throws a host away).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from chalicelib.launch.decision import PENDING_WAIT, Asked, Command, Parameters, Place, enters_warm_pool
from chalicelib.launch.groups import Group, GroupMember, Hook, describe_member
from chalicelib.launch.reads import LaunchReads
from chalicelib.launch.wait import LaunchWaits
from chalicelib.mount.commands import commands_for, host_status, invocation
from chalicelib.mount.script_result import ScriptResult, script_result_from_invocation
from chalicelib.mount.targets import MountTargetNotReady, NoMountTarget
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.memory import HostMemory
from chalicelib.plumbing.observability import logger


class HostFacts:
    """One step's facts of one host. `group_name` is a hint (an event's or a message's): the group AWS reports
    for the host counts. `group`: the sweeper's listing of the group, AWS's own view of its hosts; `member`: AWS's
    report of the host read a moment ago by the caller."""

    def __init__(
        self,
        aws: AwsAccess,
        reads: LaunchReads,
        waits: LaunchWaits,
        looked_at: HostMemory,
        document: str,
        clock: Callable[[], float],
        group_name: str,
        instance_id: str,
        *,
        attempt: int = 0,
        group: Group | None = None,
        member: GroupMember | None = None,
        confirmed: Command | None = None,
        agent_online: bool = False,
    ) -> None:
        self.aws, self._reads, self._waits, self._looked_at = aws, reads, waits, looked_at
        self._document = document
        self._clock = clock
        self.instance_id = instance_id
        self.key = (aws.account, aws.region, instance_id)
        self.attempt, self.agent_online, self.confirmed = attempt, agent_online, confirmed
        self._named_group, self._group, self._member = group_name, group, member
        self._tags: dict[str, str] = {}
        # The tags are AWS's of this moment when the sweeper's listing gave them.
        self._fresh_tags = group is not None
        self._seen = False
        # Each read once in a step: the decision may be asked again after a heartbeat, on the same facts.
        self._starts: dict[tuple[bool, float | None], float | None] = {}
        self._statuses: dict[str, str] = {}
        self._results: dict[str, ScriptResult] = {}
        self.beaten = False

    @cached_property
    def place(self) -> Place:
        if self._group is not None:
            group = self._group
            self._tags = group.tags
            place = Place(
                group.name, group.instance_states.get(self.instance_id), group.instance_zones.get(self.instance_id, "")
            )
        else:
            self._member = self._member or describe_member(self.aws.client("autoscaling"), self.instance_id)
            member = self._member
            if member is not None and member.group_name != self._named_group:
                logger.warning("host is in another group than named; going by AWS", named=self._named_group)
            if member is None:
                return Place(self._named_group, None, "")
            # The group's tags are read with the host's report, as every step needs them.
            self._tags = self._reads.group_tags(self.aws, member.group_name)
            place = Place(member.group_name, member.lifecycle_state, member.zone)
        if place.state == PENDING_WAIT or enters_warm_pool(place.state):
            self._looked_at.remember(self.key, self._clock())
        return place

    @cached_property
    def now(self) -> float:
        return self._clock()

    @cached_property
    def first_mount_now(self) -> float:
        return self._clock()

    @property
    def group_name(self) -> str:
        return self.place.group_name

    @cached_property
    def hook(self) -> Hook | None:
        return self._reads.hook(self.aws, self.group_name)

    @cached_property
    def asked(self) -> Asked:
        asked = self._reads.asked(self._tags)
        if (asked.refused is not None or asked.spec is None) and not self._fresh_tags:
            # A cached tag must neither throw a host away nor let it in unmounted: AWS's tags of this moment decide.
            self._tags, self._fresh_tags = self._reads.group_tags(self.aws, self.group_name, fresh=True), True
            asked = self._reads.asked(self._tags)
        return asked

    @cached_property
    def parameters(self) -> Parameters | NoMountTarget | MountTargetNotReady:
        spec = self.asked.spec
        assert spec is not None, "the decision asks for parameters only of a group that asks for a mount"  # noqa: S101
        found = self._reads.parameters_now(self.aws, spec, self.place.zone)
        if isinstance(found, NoMountTarget):
            # A cached list of mount targets must not throw a host away: AWS's list of this moment decides.
            found = self._reads.parameters_now(self.aws, spec, self.place.zone, fresh=True)
        return found

    @cached_property
    def commands(self) -> list[Command]:
        return commands_for(self.aws.client("ssm"), self.instance_id, self._document)

    def started(self, fresh: bool = False, read_after: float | None = None) -> float | None:
        hook = self.hook
        assert hook is not None, "the decision asks for the wait only of a host under our hook"  # noqa: S101
        if (fresh, read_after) not in self._starts:
            if not self._seen:
                self._waits.first_sight(self.key, self.now)
                self._seen = True
            group_name, instance_id = self.group_name, self.instance_id
            start = self._waits.started(self.aws, group_name, instance_id, hook, fresh=fresh, read_after=read_after)
            if fresh:
                # Read afresh: every start this step read before is older news.
                self._starts.clear()
            self._starts[fresh, read_after] = start
        return self._starts[fresh, read_after]

    def since(self) -> float | None:
        return self._waits.since(self.key)

    def status(self, command: Command) -> str:
        if command["CommandId"] not in self._statuses:
            self._statuses[command["CommandId"]] = host_status(self.aws.client("ssm"), command, self.instance_id)
        return self._statuses[command["CommandId"]]

    def result(self, command: Command) -> ScriptResult:
        if command["CommandId"] not in self._results:
            found = invocation(self.aws.client("ssm"), command, self.instance_id)
            self._results[command["CommandId"]] = script_result_from_invocation(found)
        return self._results[command["CommandId"]]

    def failure_result_now(self) -> LifecycleResult:
        return self._reads.failure_result_now(self.aws, self.group_name, self.asked.failure_result)

    def heartbeat_due(self, started: float | None, at: float) -> bool:
        hook = self.hook
        assert hook is not None, "the decision asks for a heartbeat only of a host under our hook"  # noqa: S101
        return not self.beaten and self._waits.heartbeat_due(self.key, hook, started, at)

    def sent_meanwhile(self) -> bool:
        return bool(commands_for(self.aws.client("ssm"), self.instance_id, self._document)[len(self.commands) :])

"""The discrete-event loop: one world (a fresh moto), its queue of timed happenings and what each does, the
app's functions invoked in their execution environments, and what AWS does after (events, commands, retries)."""

from __future__ import annotations

import contextlib
import datetime
import functools
import heapq
import itertools
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from simulation.scale_out.clock import Invocation
from simulation.scale_out.execution_environments import Environment
from simulation.scale_out.model import HostPlan, Model
from simulation.scale_out.process import REGION, Process
from simulation.scale_out.scaling_activities import fast_describe_scaling_activities

QUEUE_NAME = "efs-automount-retries"


RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


@functools.cache
def schedules(app: Any) -> dict[str, float]:
    """The app's scheduled functions and their rates in seconds (EventBridge rate expressions)."""
    from chalice.app import ScheduledEventConfig

    found = {}
    for source in app.event_sources:
        if isinstance(source, ScheduledEventConfig):
            expression = source.schedule_expression
            text = expression if isinstance(expression, str) else expression.to_string()
            match = RATE.fullmatch(text.strip())
            if match is None:
                raise NotImplementedError(f"schedule {text!r} of {source.name}: only rate() is simulated")
            found[source.name] = int(match.group(1)) * RATE_UNITS[match.group(2).rstrip("s")]
    return found


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(moment: datetime.datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)).timestamp()


@dataclass
class HostRecord:
    instance_id: str
    plan: HostPlan
    launch: float
    agent_online: float | None = None
    ecs_registered: float | None = None
    container_instance_arn: str | None = None
    first_command: float | None = None
    commands: int = 0
    completed: float | None = None
    result: str | None = None
    decisions: int = 0
    timed_out: bool = False
    attribute_set: float | None = None

    def as_dict(self, origin: float) -> dict[str, Any]:
        def rel(value: float | None) -> float | None:
            return None if value is None else round(value - origin, 3)

        return {
            "instance_id": self.instance_id,
            "launch": rel(self.launch),
            "agent_online": rel(self.agent_online),
            "ecs_registered": rel(self.ecs_registered),
            "first_command": rel(self.first_command),
            "completed": rel(self.completed),
            "result": self.result,
            "commands": self.commands,
            "decisions": self.decisions,
            "timed_out": self.timed_out,
            "mount_s": round(self.plan.mount_s, 3),
        }


class Simulation:
    """One world (a fresh moto), its hosts and the app's functions' execution environments."""

    def __init__(self, process: Process, model: Model, seed: int, throttle: float, one_environment: bool) -> None:
        self.process = process
        self.model = model
        self.throttle = throttle
        self.one_environment = one_environment
        self.seed = seed
        self.rng = random.Random(f"delays-{seed}")
        self.queue: list[tuple[float, int, str, Any]] = []
        self.sequence = itertools.count()
        self.hosts: dict[str, HostRecord] = {}
        self.pending_plans: list[HostPlan] = []
        self.environments: dict[str, list[Environment]] = {}
        self.calls: list[tuple[float, str, str]] = []  # (simulated time, handler, service:operation)
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.dead_letters = 0
        self.throttled = 0
        self.commands_seen = 0
        self.completions_seen = 0
        self.timeouts_seen = 0
        self.last_expire = -math.inf
        self.decided = 0  # hosts decided (by the app) or timed out
        self.watch_attribute = False

    # --- the world ---

    @contextlib.contextmanager
    def world(self) -> Iterator[None]:
        import boto3
        from moto import mock_aws

        from simulation import moto_gaps
        from simulation.landscape import build_landscape
        from simulation.queues import create_retry_queue

        with mock_aws():
            from moto.moto_api._internal import mock_random

            mock_random.seed(self.seed)  # instance ids, command ids: the same world each run
            moto_gaps.install()
            moto_gaps.WORLD.reset()
            from moto.autoscaling.responses import AutoScalingResponse

            AutoScalingResponse.describe_scaling_activities = fast_describe_scaling_activities  # type: ignore[method-assign]
            self.start = self.process.clock.base = float(int(time.time()))
            moto_gaps.WORLD.clock = self.process.clock
            self.land = build_landscape(boto3.Session(region_name=REGION))
            # The simulation's own clients (AWS's side of the world), made once rather than per use.
            self.land.client = functools.cache(self.land.client)  # type: ignore[method-assign]
            self.queue_url = create_retry_queue(self.land, QUEUE_NAME)
            self.process.install(self.queue_url)
            from simulation.eventbus import EventBus

            self.bus = EventBus(self.process.app, lambda name, event: None)
            self.process.throttler.share = self.throttle
            try:
                yield
            finally:
                self.process.throttler.share = 0.0
                moto_gaps.WORLD.clock = time.time

    def at(self, moment: float, kind: str, payload: Any = None) -> None:
        heapq.heappush(self.queue, (moment, next(self.sequence), kind, payload))

    def launch(self, moment: float, plans: list[HostPlan]) -> None:
        """Hosts launched in batches from `moment`, each batch one scale-out."""
        batch = self.model.launch_batch
        for index in range(0, len(plans), batch):
            self.at(moment + (index // batch) * self.model.launch_interval_s, "launch", plans[index : index + batch])

    def run(self, until: Callable[[], bool], cap: float) -> float:
        """Process happenings until `until()` holds or the simulated clock passes `cap`; returns the time."""
        from simulation import moto_gaps

        clock = self.process.clock
        queued = {payload for _, _, kind, payload in self.queue if kind == "schedule"}
        for name, interval in schedules(self.process.app).items():
            if name in queued:
                continue
            tick = self.start + random.Random(f"{name}-{self.seed}").uniform(0, interval)
            while tick <= clock.base:
                tick += interval
            self.at(tick, "schedule", name)
        while self.queue:
            moment, _, kind, payload = heapq.heappop(self.queue)
            if moment > cap:
                self.at(moment, kind, payload)
                clock.base = cap
                break
            clock.base = moment
            if moment - self.last_expire >= self.model.expire_check_s:
                self.last_expire = moment
                if moto_gaps.expire_actions():
                    self.settle(moment)
            getattr(self, f"_on_{kind}")(moment, payload)
            if until():
                break
        return clock.base

    # --- happenings ---

    def _on_launch(self, moment: float, plans: list[HostPlan]) -> None:
        from simulation.landscape import scale_out

        instance_ids = scale_out(self.land, len(plans))
        for instance_id, plan in zip(instance_ids, plans, strict=True):
            self.hosts[instance_id] = HostRecord(instance_id, plan, moment)
            self.at(moment + plan.agent_after_s, "agent", instance_id)
            self.at(moment + plan.ecs_after_s, "ecs", instance_id)
        self.settle(moment)

    def _on_agent(self, moment: float, instance_id: str) -> None:
        from simulation import moto_gaps

        moto_gaps.register_agent(self.land.account, self.land.region, instance_id)
        self.hosts[instance_id].agent_online = moment

    def _on_ecs(self, moment: float, instance_id: str) -> None:
        from simulation.landscape import register_container_instance

        host = self.hosts[instance_id]
        if host.result == "ABANDON" or host.timed_out:
            return  # terminated
        host.container_instance_arn = register_container_instance(self.land, instance_id)
        host.ecs_registered = moment
        self.settle(moment)

    def _on_finish(self, moment: float, payload: tuple[str, str]) -> None:
        from moto.ssm.models import ssm_backends

        from simulation import moto_gaps
        from simulation.hosts import SUMMARY

        command_id, instance_id = payload
        command = ssm_backends[self.land.account][self.land.region].get_command_by_id(command_id)
        if command.get_invocation(instance_id, None)["Status"] != "InProgress":
            return  # cancelled meanwhile
        parameters = command.parameters or {}
        summary = SUMMARY.format(
            status="mounted",
            code=0,
            fs=(parameters.get("FileSystemId") or [""])[0],
            path=json.dumps((parameters.get("MountPath") or [""])[0])[1:-1],
            cluster=self.land.cluster_name,
        )
        moto_gaps.finish_invocation(self.land.account, self.land.region, command_id, instance_id, "Success", 0, summary)
        self.settle(moment)

    def _on_deliver(self, moment: float, event: dict[str, Any]) -> None:
        for name in self.bus.targets(event):
            self.invoke(moment, name, event, retries_left=len(self.model.async_retry_delays_s))

    def _on_retry_async(self, moment: float, payload: tuple[str, dict[str, Any], int]) -> None:
        name, event, retries_left = payload
        self.invoke(moment, name, event, retries_left)

    def _on_sqs(self, moment: float, record: dict[str, Any]) -> None:
        result = self.invoke(moment, "on_retry", {"Records": [record]}, retries_left=0)
        failed = isinstance(result, dict) and result.get("batchItemFailures")
        if result is None or failed:
            receives = int(record["attributes"]["ApproximateReceiveCount"])
            if receives >= self.model.sqs_max_receives:
                self.dead_letters += 1
                return
            again = {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": str(receives + 1)}}
            self.at(moment + self.model.sqs_visibility_s, "sqs", again)

    def _on_schedule(self, moment: float, name: str) -> None:
        self.at(moment + schedules(self.process.app)[name], "schedule", name)
        event = {
            "version": "0",
            "id": f"{name}-{next(self.sequence)}",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.land.account,
            "time": _iso(moment),
            "region": self.land.region,
            "resources": [f"arn:aws:events:{self.land.region}:{self.land.account}:rule/efs-automount-dev-{name}"],
            "detail": {},
        }
        self.invoke(moment, name, event, retries_left=len(self.model.async_retry_delays_s))

    # --- invoking ---

    def environment(self, name: str, moment: float) -> tuple[Environment, bool]:
        """A free execution environment of the function (the one used last), else a new one (cold)."""
        pool = self.environments.setdefault(name, [])
        if self.one_environment and pool:
            return pool[0], False
        free = [e for e in pool if e.busy_until <= moment]
        if free:
            return max(free, key=lambda e: e.busy_until), False
        pool.append(Environment())
        return pool[-1], True

    def invoke(self, moment: float, name: str, event: dict[str, Any], retries_left: int) -> Any:
        environment, cold = self.environment(name, moment)
        start = moment + (self.model.cold_start_s if cold else 0.0)
        invocation = Invocation(name, start, self.model)
        self.invocations[name] += 1
        environment.invocations += 1
        result: Any = None
        try:
            result = self.process.invoke(invocation, environment, json.loads(json.dumps(event)))
        except Exception:  # noqa: BLE001 - a function error, as Lambda sees it
            self.errors[name] += 1
            if retries_left and name != "on_retry":
                delays = self.model.async_retry_delays_s
                delay = delays[len(delays) - retries_left]
                end = invocation.clock()
                self.at(end + delay, "retry_async", (name, event, retries_left - 1))
        end = invocation.clock()
        environment.busy_until = end
        self.throttled += invocation.throttled
        self.calls += [(start, name, call) for call in invocation.calls]
        self.settle(end)
        return result

    def settle(self, moment: float) -> None:
        """What AWS does with what just happened, as of `moment`: events go to EventBridge, accepted mount
        commands start on their hosts, retry messages wait out their delay, decisions are recorded."""
        from moto.ssm.models import ssm_backends

        from simulation import moto_gaps
        from simulation.queues import take_messages

        for event in moto_gaps.WORLD.drain():
            event["time"] = _iso(moment)
            delay = self.model.eventbridge_s + self.rng.uniform(
                self.model.eventbridge_low_s, self.model.eventbridge_high_s
            )
            self.at(moment + delay, "deliver", event)
        commands = ssm_backends[self.land.account][self.land.region]._commands
        for command in commands[self.commands_seen :]:
            requested = _epoch(command.requested_date_time)
            for invocation in command.invocations:
                host = self.hosts.get(invocation["InstanceId"])
                if host is None:
                    continue
                host.commands += 1
                if host.first_command is None:
                    host.first_command = requested
                if invocation["Status"] == "InProgress":
                    # The host's agent runs it as soon as SSM accepted it; it ends after the mount's own seconds.
                    finish = max(requested + host.plan.mount_s, moment)
                    self.at(finish, "finish", (command.command_id, host.instance_id))
        self.commands_seen = len(commands)
        for delay, record in take_messages(self.land, self.queue_url):
            pickup = self.rng.uniform(self.model.sqs_pickup_low_s, self.model.sqs_pickup_high_s)
            self.at(moment + delay + pickup, "sqs", record)
        completions = moto_gaps.WORLD.completions
        for _, _, instance_id, result in completions[self.completions_seen :]:
            host = self.hosts.get(instance_id)
            if host is not None:
                host.decisions += 1
                if host.result is None:
                    host.result, host.completed = result, moment
                    self.decided += not host.timed_out
        self.completions_seen = len(completions)
        timed_out = moto_gaps.WORLD.timed_out
        for _, _, instance_id in timed_out[self.timeouts_seen :]:
            host = self.hosts.get(instance_id)
            if host is not None and not host.timed_out:
                host.timed_out = True
                self.decided += host.result is None
        self.timeouts_seen = len(timed_out)
        if self.watch_attribute:
            self._check_attributes(moment)

    def _check_attributes(self, moment: float) -> None:
        from simulation.landscape import container_instance_attributes

        # Any mount attribute of the file system: the app compared (`--app`) may be a release that named it
        # `efs-automount.<fs>`, and its chalicelib (first on sys.path) has no chalicelib.mount.attribute.
        prefix = f"efs-automount.{self.land.file_system_id}"
        for host in self.hosts.values():
            if host.attribute_set is None and host.container_instance_arn:
                attributes = container_instance_attributes(self.land, host.container_instance_arn)
                if any(name.startswith(prefix) and value for name, value in attributes.items()):
                    host.attribute_set = moment

    def all_decided(self, expected: int) -> bool:
        return self.decided >= expected

"""A scale-out in simulated time: the app's real handlers over moto, with AWS's delays modelled.

`python -m simulation.scale_out --hosts 1000 --throttle 0.2 --seed 13 [--app DIR] --out FILE.json`

A discrete-event simulation. Time is a simulated clock: a priority queue of timed happenings (a batch of
hosts launched, a host's SSM agent coming online, its ECS agent registering, a mount finishing on the host,
an event reaching a handler, a retry message picked up, the sweeper's schedule) drives everything, and the
clock jumps to the next one. Each happening runs for real against moto in this process; what it makes AWS
emit (events, retry messages, mount commands) becomes later happenings, after the delays AWS would take.

Per host (one seeded draw per host, the same whichever app runs): when its SSM agent comes online, when
its ECS agent registers, and how long its mount takes. The figures are in simulated seconds; the app's
AWS calls are counted while its handlers run. `--app DIR` runs the app in DIR (app.py, chalicelib/,
.chalice/) instead of this working tree's; the simulation itself always comes from this working tree.

What is modelled, and where it is an assumption, is said where it is modelled (`Model`, below) and in the
output's "note". Nothing here is shipped.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import heapq
import importlib
import io
import itertools
import json
import math
import os
import random
import re
import sys
import tempfile
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from simulation.packaged import FunctionSettings, build_package
from simulation.packaged import load as load_packaged_settings

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's default account
# The stack the simulated functions belong to (their names: <stack>-<function>, as packaged).
STACK_NAME = "efs-automount"
REGION = "us-east-1"
QUEUE_NAME = "efs-automount-retries"


@dataclass(frozen=True)
class Model:
    """Every parameter of the draws and delays (simulated seconds)."""

    # Auto Scaling launches the burst in batches: `launch_batch` hosts every `launch_interval_s`.
    launch_batch: int = 100
    launch_interval_s: float = 1.0
    # SSM agent online after launch: agent_min_s + lognormal(median agent_median_s, sigma agent_sigma),
    # capped at agent_cap_s. An assumption: AWS documents no distribution; issue 13 and field reports say
    # "about 30 s to several minutes", 20-240 s with a long tail.
    agent_min_s: float = 20.0
    agent_median_s: float = 35.0
    agent_sigma: float = 0.9
    agent_cap_s: float = 900.0
    # ECS agent registration: agent online + Normal(mean, sd), never before launch + 1 s. An assumption: both
    # agents start at boot (ecs-init and amazon-ssm-agent are systemd units of the ECS-optimized AMI), so they
    # come up at about the same time; the result depends on it (run with --ecs-delta-mean/--ecs-delta-sd).
    ecs_delta_mean_s: float = 0.0
    ecs_delta_sd_s: float = 4.0
    # The mount's own seconds on the host (efs-utils or NFS mount, verify, fstab): uniform.
    mount_min_s: float = 2.0
    mount_max_s: float = 6.0
    # EventBridge delivery of an event AWS emitted to a matching rule's target: base + uniform(low, high).
    # An assumption: EventBridge documents no latency; about half a second is what is seen (issue 13).
    eventbridge_s: float = 0.5
    eventbridge_low_s: float = -0.2
    eventbridge_high_s: float = 0.3
    # Lambda's SQS poller picks a message up this long after it becomes visible (after its DelaySeconds,
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-delay-queues.html): the
    # poller long-polls, so an assumption of uniform(low, high).
    sqs_pickup_low_s: float = 0.05
    sqs_pickup_high_s: float = 0.5
    # A failed message (partial batch response) reappears after the queue's visibility timeout
    # (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html); after maxReceiveCount
    # receives it goes to the dead-letter queue (simulation/queues.py: 360 s, 5).
    sqs_visibility_s: float = 360.0
    sqs_max_receives: int = 5
    # A handler invocation: overhead + per AWS request (throttled answers included) + botocore's backoff.
    # An assumption: ~30 ms per call from Lambda to a regional AWS API.
    invocation_overhead_s: float = 0.05
    call_s: float = 0.03
    # A Lambda execution environment serves one invocation at a time; a function with none free starts a new
    # one ("For each concurrent request, Lambda provisions a separate instance of your execution
    # environment", https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html), paying its init
    # (cold start). An assumption: 0.4 s (make bench measures ~0.3 s importing the app, plus the runtime's start).
    cold_start_s: float = 0.4
    # Errors of an asynchronous invocation (EventBridge targets, the schedule) are retried twice, after 1
    # and then 2 minutes (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
    async_retry_delays_s: tuple[float, ...] = (60.0, 120.0)
    # Every scheduled function of the app (the sweeper's rate(1 minute)) runs at its rate from a random phase.
    # How often the hooks' timeouts are checked (moto_gaps.expire_actions).
    expire_check_s: float = 1.0
    # The run stops when every host is decided, or at this much simulated time.
    cap_s: float = 7200.0

    def described(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "agent_online_after_launch": f"{self.agent_min_s} s + lognormal(median {self.agent_median_s} s, "
            f"sigma {self.agent_sigma}), at most {self.agent_cap_s} s",
            "ecs_registration": f"agent online + Normal({self.ecs_delta_mean_s} s, sd {self.ecs_delta_sd_s} s)",
            "mount_seconds": f"uniform({self.mount_min_s}, {self.mount_max_s})",
            "eventbridge_delivery": f"{self.eventbridge_s} s + uniform({self.eventbridge_low_s}, "
            f"{self.eventbridge_high_s})",
            "invocation": f"{self.invocation_overhead_s} s + {self.call_s} s per AWS request + botocore's backoff; "
            f"a new execution environment adds {self.cold_start_s} s",
        }


@dataclass
class HostPlan:
    """One host's draws: seconds after its launch."""

    agent_after_s: float
    ecs_after_s: float
    mount_s: float


def draw_hosts(count: int, model: Model, seed: int) -> list[HostPlan]:
    """The hosts' own draws, from their own stream: the same whatever the app does."""
    rng = random.Random(f"hosts-{seed}")
    plans = []
    for _ in range(count):
        lognormal = rng.lognormvariate(math.log(model.agent_median_s), model.agent_sigma)
        agent = min(model.agent_min_s + lognormal, model.agent_cap_s)
        ecs = max(1.0, agent + rng.gauss(model.ecs_delta_mean_s, model.ecs_delta_sd_s))
        plans.append(HostPlan(agent, ecs, rng.uniform(model.mount_min_s, model.mount_max_s)))
    return plans


def median_host(model: Model) -> HostPlan:
    """A host at the middle of every draw (the single-host figures)."""
    agent = model.agent_min_s + model.agent_median_s
    return HostPlan(agent, max(1.0, agent + model.ecs_delta_mean_s), (model.mount_min_s + model.mount_max_s) / 2)


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


# --- the process: the app, the clock, the meter, throttling -----------------------------------------------


@dataclass
class Invocation:
    """One handler invocation in progress: its simulated start, and what it has spent so far."""

    name: str
    start: float
    model: Model
    calls: list[str] = field(default_factory=list)
    throttled: int = 0
    backoff_s: float = 0.0

    def clock(self) -> float:
        requests = len(self.calls) + self.throttled
        return self.start + self.model.invocation_overhead_s + self.model.call_s * requests + self.backoff_s


class SimClock:
    """The simulated time: between happenings, the happening's time; inside an invocation, its start plus
    what its calls have taken so far (so a command it sends is stamped when it is sent)."""

    def __init__(self, start: float) -> None:
        self.base = start
        self.invocation: Invocation | None = None

    def __call__(self) -> float:
        return self.invocation.clock() if self.invocation is not None else self.base


class _TimeModule(types.ModuleType):
    """`time` as the app's modules see it: time() and monotonic() are the simulated clock."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__("time")
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def time(self) -> float:
        return self._clock()

    def monotonic(self) -> float:
        return self._clock()


def _cached(value: Any) -> bool:
    return callable(value) and hasattr(value, "cache_clear") and hasattr(value, "__wrapped__")


class ContainerMemory:
    """What a Lambda execution environment keeps between invocations: the app's module-level functools caches
    (entrypoints' flows, settings, accounts, whatever the app caches so). Before an invocation, every module
    attribute bound to such a cached function (also where a module imported it by name) is pointed at the
    copy of the environment that runs it, so one environment's caches never serve another.

    Other module-level state (a plain global dict) would be shared by all: none in the app as written."""

    def __init__(self, clock: SimClock) -> None:
        self._clock = clock
        self._originals: dict[tuple[str, str], Any] = {}
        self._keys: dict[int, tuple[str, str]] = {}
        self._kept: list[Any] = []
        self._bindings: list[tuple[types.ModuleType, str, tuple[str, str]]] = []
        self._modules_seen = -1

    def _app_modules(self) -> list[types.ModuleType]:
        return [
            module
            for name, module in list(sys.modules.items())
            if module is not None and (name == "app" or name == "chalicelib" or name.startswith("chalicelib."))
        ]

    def scan(self) -> None:
        if len(sys.modules) == self._modules_seen:
            return
        self._modules_seen = len(sys.modules)
        bindings = []
        for module in self._app_modules():
            self._simulated_time(module)
            for attr, value in list(vars(module).items()):
                key = self._keys.get(id(value))
                if key is None and _cached(value):
                    wrapped = value.__wrapped__
                    key = (getattr(wrapped, "__module__", "") or "", getattr(wrapped, "__qualname__", attr))
                    if not key[0].startswith("chalicelib"):
                        continue
                    self._originals.setdefault(key, value)
                    self._keys[id(value)] = key
                    self._kept.append(value)
                if key is not None:
                    bindings.append((module, attr, key))
        self._bindings = bindings

    def _simulated_time(self, module: types.ModuleType) -> None:
        """The app's clocks go by the simulated time: its modules' `time`, and defaults bound to time.time or
        time.monotonic at definition (a TtlCache's clock)."""
        if vars(module).get("time") is time:
            module.time = _TimeModule(self._clock)  # type: ignore[attr-defined]
        real = (time.time, time.monotonic)
        for value in list(vars(module).values()):
            functions = [value] if isinstance(value, types.FunctionType) else []
            if isinstance(value, type) and value.__module__ == module.__name__:
                functions += [f for f in vars(value).values() if isinstance(f, types.FunctionType)]
            for function in functions:
                if function.__defaults__ and any(d in real for d in function.__defaults__):
                    function.__defaults__ = tuple(self._clock if d in real else d for d in function.__defaults__)
                if function.__kwdefaults__ and any(d in real for d in function.__kwdefaults__.values()):
                    function.__kwdefaults__ = {
                        k: self._clock if d in real else d for k, d in function.__kwdefaults__.items()
                    }

    def use(self, memory: dict[tuple[str, str], Any]) -> None:
        """Point the app's cached functions at this environment's `memory` (filled as needed)."""
        self.scan()
        for module, attr, key in self._bindings:
            function = memory.get(key)
            if function is None:
                original = self._originals[key]
                parameters = original.cache_parameters() if hasattr(original, "cache_parameters") else {}
                function = functools.lru_cache(maxsize=parameters.get("maxsize"), typed=parameters.get("typed", False))(
                    original.__wrapped__
                )
                memory[key] = function
                self._keys[id(function)] = key
                self._kept.append(function)
            setattr(module, attr, function)


@dataclass
class Environment:
    """One Lambda execution environment of a function."""

    memory: dict[tuple[str, str], Any] = field(default_factory=dict)
    busy_until: float = 0.0
    invocations: int = 0


class Context:
    """What Lambda passes as the context (enough for Powertools and the app): the function's packaged memory, and
    what is left of its packaged timeout in simulated time."""

    aws_request_id = "scale-out"

    def __init__(self, invocation: Invocation, settings: FunctionSettings) -> None:
        self.function_name = f"{STACK_NAME}-{invocation.name}"
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"
        self.memory_limit_in_mb = settings.memory_mb
        self._invocation, self._timeout_s = invocation, settings.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._invocation.start + self._timeout_s - self._invocation.clock()) * 1000))


class Process:
    """This process's patches, made once: the app imported (from `app_dir` first on sys.path), botocore's
    calls metered, throttled and their backoff made instant but counted in simulated time. Each function runs with
    the settings its packaged template gives it (`package`: the directory `make package` writes for the app), so
    what is simulated is what is deployed."""

    def __init__(self, app_dir: Path | None, throttle_seed: int, package: Path) -> None:
        self.app_dir = (app_dir or ROOT).resolve()
        self.package = package
        self.functions: dict[str, FunctionSettings] = {}
        self.clock = SimClock(time.time())
        self.memory = ContainerMemory(self.clock)
        self.backoff_rng = random.Random(f"backoff-{throttle_seed}")
        self.throttler: Any = None
        self.throttle_seed = throttle_seed
        self.app: Any = None
        self.log: Any = io.StringIO()

    def environment(self, name: str) -> dict[str, str]:
        """The function's packaged environment; its logs kept to warnings (they are not read, only their cost)."""
        return {**self.functions[name].environment, "POWERTOOLS_LOG_LEVEL": "WARNING"}

    def use_function(self, name: str) -> None:
        """The process's environment variables as Lambda sets them for `name`: its own, none of another function's
        (each execution environment reads them once, when it first loads its settings)."""
        own = self.environment(name)
        for variable in {v for f in self.functions.values() for v in f.environment} - set(own):
            os.environ.pop(variable, None)
        os.environ.update(own)

    def install(self, queue_url: str) -> None:
        """Once, inside the first mock: patches, then the app imported as its retry queue's subscriber imports it
        (the queue's URL in place of the packaged queue's: the one this world made)."""
        if self.app is not None:
            return
        # The table is named as the stack would name it; only on_task_definition and repair use it, and a scale-out
        # invokes neither.
        made = {"RetryQueue": queue_url, "IdempotencyTable": f"efs-automount-idempotency-{STACK_NAME}"}
        self.functions = load_packaged_settings(self.package / "sam.json", made)
        self.use_function("on_retry")
        from botocore.client import BaseClient
        from botocore.endpoint import Endpoint
        from botocore.retries.standard import ExponentialBackoff

        from simulation.throttling import Throttler

        process = self
        original_call = BaseClient._make_api_call

        def metered(client: Any, operation: str, params: dict[str, Any]) -> Any:
            invocation = process.clock.invocation
            if invocation is None:
                return original_call(client, operation, params)
            before = process.throttler.throttled
            try:
                return original_call(client, operation, params)
            finally:
                invocation.throttled += process.throttler.throttled - before
                invocation.calls.append(f"{client.meta.service_model.signing_name}:{operation}")

        BaseClient._make_api_call = metered  # type: ignore[method-assign]
        # Throttled only while an app handler runs (the simulation's own reads are AWS's physics, not the app's).
        self.throttler = Throttler(0.0, seed=self.throttle_seed, applies=lambda: process.clock.invocation is not None)
        Endpoint._do_get_response = self.throttler(Endpoint._do_get_response)  # type: ignore[method-assign]
        original_delay = ExponentialBackoff.delay_amount

        def delay_amount(backoff: Any, context: Any) -> float:
            # botocore's own backoff (standard mode: rand * min(2 ** attempt, 20) s for throttling), from a seeded
            # stream; not slept, but added to the invocation's simulated duration.
            backoff._random = process.backoff_rng.random
            seconds = original_delay(backoff, context)
            if process.clock.invocation is not None:
                process.clock.invocation.backoff_s += seconds
            return 0

        ExponentialBackoff.delay_amount = delay_amount  # type: ignore[method-assign]
        # Every execution environment makes its own boto3 session and clients, as Lambda's would; they share
        # botocore's loader here only so that the service models are read from disk once (wall time).
        import botocore.endpoint
        import botocore.session

        loader = botocore.session.create_loader()
        botocore.session.create_loader = lambda *args, **kwargs: loader
        # Likewise, environments share a client of the same service, region, credentials and config (making one
        # costs tens of milliseconds of wall time and megabytes; no AWS call): only for clients an app handler
        # makes, never the simulation's own.
        original_client = botocore.session.Session.create_client
        clients: dict[tuple[Any, ...], Any] = {}
        configs: list[Any] = []  # kept alive: their ids are in the keys

        def create_client(session: Any, *args: Any, **kwargs: Any) -> Any:
            if process.clock.invocation is None:
                return original_client(session, *args, **kwargs)
            credentials = session.get_credentials()
            key = (
                args,
                tuple(sorted((k, id(v) if k == "config" else v) for k, v in kwargs.items())),
                credentials.access_key if credentials else None,
                session.get_config_variable("region"),
            )
            client = clients.get(key)
            if client is None:
                client = clients[key] = original_client(session, *args, **kwargs)
                configs.append(kwargs.get("config"))
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        # botocore sleeps the backoff it computed (0 here) between attempts: not even that.
        botocore.endpoint.time = types.SimpleNamespace(sleep=lambda seconds: None, time=time.time)  # type: ignore[attr-defined]
        # The simulation's modules come from this working tree, whatever DIR holds: imported before DIR goes first.
        for module in ("eventbus", "hosts", "landscape", "moto_gaps", "queues", "throttling"):
            importlib.import_module(f"simulation.{module}")
        if str(self.app_dir) != str(ROOT):
            sys.path.insert(0, str(self.app_dir))
        for stale in [n for n in sys.modules if n == "app" or n == "chalicelib" or n.startswith("chalicelib.")]:
            del sys.modules[stale]
        app_module = importlib.import_module("app")
        if Path(app_module.__file__ or "").resolve().parent != self.app_dir:
            raise RuntimeError(f"app imported from {app_module.__file__}, not from {self.app_dir}")
        # Every module of the app imported now, so its caches are known before the first invocation.
        chalicelib = self.app_dir / "chalicelib"
        for path in sorted(chalicelib.rglob("*.py")):
            importlib.import_module(
                ".".join(("chalicelib", *path.relative_to(chalicelib).with_suffix("").parts)).removesuffix(".__init__")
            )
        # The flow's module: chalicelib/launch/flow.py, or chalicelib/lifecycle.py in an app of before issue 20.
        lifecycle = sys.modules.get("chalicelib.launch.flow") or sys.modules["chalicelib.lifecycle"]

        # The flow's clock seam (tests/conftest.py's `clock` fixture patches the same).
        lifecycle.now = self.clock  # type: ignore[assignment]
        observability = sys.modules.get("chalicelib.plumbing.observability") or sys.modules["chalicelib.observability"]
        logger = observability.logger

        logger.registered_handler.setStream(self.log)
        self.app = app_module.app
        self.memory.scan()

    def invoke(self, invocation: Invocation, environment: Environment, event: dict[str, Any]) -> Any:
        """Run the handler as Lambda would, in `environment`; raises what the handler raises."""
        self.memory.use(environment.memory)
        self.use_function(invocation.name)
        self.clock.invocation = invocation
        try:
            with contextlib.redirect_stdout(self.log):
                context = Context(invocation, self.functions[invocation.name])
                return self.app.handler_map[invocation.name](event, context)
        finally:
            self.clock.invocation = None
            if self.log.tell() > 1 << 20:  # the app's logs and metrics are not kept
                self.log.seek(0)
                self.log.truncate()


# --- a faster DescribeScalingActivities -------------------------------------------------------------------

_ACTIVITY_FIELDS = ("ActivityId", "AutoScalingGroupName", "Description", "Cause", "StartTime", "StatusCode")
_ACTIVITY_XML: dict[tuple[str, str], str] = {}


def _activity_xml(activity: dict[str, Any]) -> str:
    key = (activity["ActivityId"], activity["Description"])
    text = _ACTIVITY_XML.get(key)
    if text is None:
        from xml.sax.saxutils import escape

        values = dict(activity, StartTime=activity["StartTime"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        members = "".join(f"<{name}>{escape(str(values[name]))}</{name}>" for name in _ACTIVITY_FIELDS)
        text = _ACTIVITY_XML[key] = (
            f"<member>{members}<Progress>{activity['Progress']}</Progress>"
            f"<Details>{escape(activity['Details'])}</Details></member>"
        )
    return text


def fast_describe_scaling_activities(response: Any) -> str:
    """moto_gaps.describe_scaling_activities, answered alike (same activities, order, pages and NextToken) but
    with the XML written directly: moto's generic serializer of 100 activities a page, times the app's pages
    per host, was half of a 1,000-host run's wall time. Simulated figures do not change."""
    from simulation import moto_gaps

    result = moto_gaps.describe_scaling_activities(response)
    body = result.result if hasattr(result, "result") else result
    activities = "".join(_activity_xml(a) for a in body["Activities"])
    token = f"<NextToken>{body['NextToken']}</NextToken>" if "NextToken" in body else ""
    return (
        '<DescribeScalingActivitiesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">'
        f"<DescribeScalingActivitiesResult><Activities>{activities}</Activities>{token}"
        "</DescribeScalingActivitiesResult><ResponseMetadata><RequestId>scale-out</RequestId></ResponseMetadata>"
        "</DescribeScalingActivitiesResponse>"
    )


# --- the simulation --------------------------------------------------------------------------------------


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


# --- runs and figures ------------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 2)


def burst(process: Process, hosts: int, throttle: float, seed: int, model: Model, one_environment: bool) -> dict:
    simulation = Simulation(process, model, seed, throttle, one_environment)
    with simulation.world():
        simulation.launch(simulation.start, draw_hosts(hosts, model, seed))
        end = simulation.run(lambda: simulation.all_decided(hosts), simulation.start + model.cap_s)
        records = list(simulation.hosts.values())
        figures = burst_figures(simulation, records, hosts, end)
        figures["records"] = [r.as_dict(simulation.start) for r in records]
    return figures


def burst_figures(simulation: Simulation, records: list[HostRecord], hosts: int, end: float) -> dict[str, Any]:
    continued = [r for r in records if r.result == "CONTINUE"]
    added = [r.first_command - r.agent_online for r in records if r.first_command and r.agent_online]
    in_service = [r.completed - r.launch for r in continued if r.completed is not None]
    floor = [r.plan.agent_after_s + r.plan.mount_s for r in continued]
    over_floor = [r.completed - r.launch - r.plan.agent_after_s - r.plan.mount_s for r in continued if r.completed]
    by_operation = Counter(call for _, _, call in simulation.calls)
    by_handler = Counter(handler for _, handler, _ in simulation.calls)
    calls = len(simulation.calls)
    return {
        "hosts": hosts,
        "added_latency_p50_s": percentile(added, 0.5),
        "added_latency_p95_s": percentile(added, 0.95),
        "added_latency_max_s": percentile(added, 1.0),
        "launch_to_in_service_p50_s": percentile(in_service, 0.5),
        "launch_to_in_service_p95_s": percentile(in_service, 0.95),
        "floor_p50_s": percentile(floor, 0.5),
        "floor_p95_s": percentile(floor, 0.95),
        "over_floor_p50_s": percentile(over_floor, 0.5),
        "over_floor_p95_s": percentile(over_floor, 0.95),
        "aws_calls": calls,
        "aws_calls_per_host": round(calls / hosts, 2),
        "aws_calls_per_host_by_operation": {k: round(v / hosts, 2) for k, v in sorted(by_operation.items())},
        "aws_calls_per_host_by_handler": {k: round(v / hosts, 2) for k, v in sorted(by_handler.items())},
        "throttled_requests": simulation.throttled,
        "invocations": dict(sorted(simulation.invocations.items())),
        "handler_errors": dict(sorted(simulation.errors.items())),
        "execution_environments": {k: len(v) for k, v in sorted(simulation.environments.items())},
        "dead_letters": simulation.dead_letters,
        "continued": len(continued),
        "abandoned": sum(1 for r in records if r.result == "ABANDON"),
        "undecided": hosts - sum(1 for r in records if r.result or r.timed_out),
        "timed_out": sum(1 for r in records if r.timed_out),
        "duplicate_commands": sum(max(0, r.commands - 1) for r in records),
        "duplicate_decisions": sum(max(0, r.decisions - 1) for r in records),
        "commands_before_agent_online": sum(
            1 for r in records if r.first_command and (r.agent_online is None or r.first_command < r.agent_online)
        ),
        "simulated_seconds": round(end - simulation.start, 1),
    }


def single_host(process: Process, seed: int, model: Model, one_environment: bool) -> dict[str, Any]:
    """One host scaled out alone, no throttling, at the middle of every draw: every call the app makes from its
    launch until the attribute is set on its container instance. Cold: the first host, in new execution
    environments. Warm: a second host, launched after the first is done, in the environments the first
    warmed."""
    simulation = Simulation(process, model, seed, 0.0, one_environment)
    simulation.watch_attribute = True
    plan = median_host(model)
    figures: dict[str, Any] = {}
    with simulation.world():
        for label in ("cold", "warm"):
            launched = simulation.process.clock.base + (0.0 if label == "cold" else 30.0)
            known = set(simulation.hosts)
            simulation.launch(launched, [plan])

            def done(known: set[str] = known) -> bool:
                new = [h for i, h in simulation.hosts.items() if i not in known]
                return bool(new) and new[0].attribute_set is not None and new[0].result is not None

            simulation.run(done, launched + model.cap_s)
            host = next(h for i, h in simulation.hosts.items() if i not in known)
            until = host.attribute_set if host.attribute_set is not None else math.inf
            window = [(t, handler, call) for t, handler, call in simulation.calls if launched <= t <= until]
            figures[label] = {
                "aws_calls": len(window),
                "by_operation": dict(sorted(Counter(c for _, _, c in window).items())),
                "by_handler": dict(sorted(Counter(h for _, h, _ in window).items())),
                "launch_to_attribute_s": None if host.attribute_set is None else round(until - launched, 2),
                "launch_to_in_service_s": None if host.completed is None else round(host.completed - launched, 2),
                "result": host.result,
            }
    return {
        "single_host_aws_calls": figures["warm"]["aws_calls"],
        "single_host_aws_calls_cold": figures["cold"]["aws_calls"],
        "single_host": {
            **figures,
            "host": asdict(plan),
            "note": "sweeper calls in the window are counted (its one-minute schedule may fall in it)",
        },
    }


NOTE = (
    "Simulated seconds. The app's real handlers run in-process over moto; each invocation takes "
    "{overhead} s + {call} s per AWS request (throttled ones too) + botocore's backoff, and a new execution "
    "environment adds {cold} s; events it causes are emitted at its end and reach their rules' targets "
    "{eb} s later (+/- jitter). One invocation per execution environment at a time: a function with none free "
    "starts a new one with empty caches. The floor is physics only: the host's SSM agent online + its mount's "
    "own seconds - launch; any design also needs the status event's delivery (~{eb} s) and one handler run "
    "after the mount ends, which are not in the floor. added_latency = first mount command accepted by SSM - "
    "agent online. The SQS poller hands each retry message to on_retry alone (batch of one). Overlapping "
    "invocations run one after another in this process: each one's changes to AWS land as it runs, its clock "
    "advancing per call, so the clock may step back by an invocation's length between happenings. Execution "
    "environments are never reclaimed, and EventBridge loses no event."
)


def simulate(
    hosts: int,
    throttle: float,
    seed: int,
    model: Model,
    app_dir: Path | None,
    one_environment: bool = False,
    package: Path | None = None,
) -> dict[str, Any]:
    """The figures of a burst of `hosts` and of one host alone; `package`: the app's `make package` output (built
    here from `app_dir` when not given)."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if package is None:
            package = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "package"
            build_package((app_dir or ROOT).resolve(), package)
        return _simulate(hosts, throttle, seed, model, app_dir, one_environment, package, started)


def _simulate(
    hosts: int,
    throttle: float,
    seed: int,
    model: Model,
    app_dir: Path | None,
    one_environment: bool,
    package: Path,
    started: float,
) -> dict[str, Any]:
    process = Process(app_dir, throttle_seed=seed, package=package)
    figures = burst(process, hosts, throttle, seed, model, one_environment)
    figures.update(single_host(process, seed, model, one_environment))
    figures.update(
        {
            "throttle": throttle,
            "seed": seed,
            "app": str(process.app_dir),
            "model": model.described(),
            "lambda_environments": "one per function" if one_environment else "one per concurrent invocation",
            "function_settings": {
                name: {"timeout_s": f.timeout_s, "memory_mb": f.memory_mb, "environment": sorted(f.environment)}
                for name, f in sorted(process.functions.items())
            },
            "schedules_s": schedules(process.app),
            "wall_seconds": round(time.perf_counter() - started, 1),
            "note": NOTE.format(
                overhead=model.invocation_overhead_s, call=model.call_s, cold=model.cold_start_s, eb=model.eventbridge_s
            ),
        }
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--throttle", type=float, default=0.2, help="share of the app's AWS requests throttled")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--app", type=Path, default=None, help="a directory with app.py, chalicelib/, .chalice/")
    parser.add_argument(
        "--package", type=Path, default=None, help="the app's `make package` output (default: built from --app)"
    )
    parser.add_argument("--ecs-delta-mean", type=float, default=Model.ecs_delta_mean_s, help="seconds")
    parser.add_argument("--ecs-delta-sd", type=float, default=Model.ecs_delta_sd_s, help="seconds")
    parser.add_argument("--agent-median", type=float, default=Model.agent_median_s, help="seconds")
    parser.add_argument("--launch-batch", type=int, default=Model.launch_batch, help="hosts launched per second")
    parser.add_argument(
        "--one-environment", action="store_true", help="one warm execution environment per function, however busy"
    )
    parser.add_argument("--out", type=Path, default=None, help="the figures (JSON); stdout without")
    parser.add_argument("--records", type=Path, default=None, help="per-host records (JSON)")
    args = parser.parse_args(argv)
    model = Model(
        ecs_delta_mean_s=args.ecs_delta_mean,
        ecs_delta_sd_s=args.ecs_delta_sd,
        agent_median_s=args.agent_median,
        launch_batch=args.launch_batch,
    )
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ.update(AWS_DEFAULT_REGION=REGION, AWS_REGION=REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    figures = simulate(args.hosts, args.throttle, args.seed, model, args.app, args.one_environment, args.package)
    records = figures.pop("records")
    if args.records:
        args.records.parent.mkdir(parents=True, exist_ok=True)
        args.records.write_text(json.dumps(records) + "\n")
    text = json.dumps(figures, indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # The app iterates sets of strings here and there: a fixed hash seed keeps a run's order, and so its
        # figures, the same from one run to the next.
        os.execve(
            sys.executable,
            [sys.executable, "-m", "simulation.scale_out", *sys.argv[1:]],
            {**os.environ, "PYTHONHASHSEED": "0"},
        )
    sys.exit(main())

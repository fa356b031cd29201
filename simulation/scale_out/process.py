"""This process, set up once for the simulation: the app imported (from `--app`'s directory), botocore's calls
metered and throttled, its backoff and its client making patched, the flow's clock seam; and a handler invoked
as Lambda would, with its packaged settings."""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import random
import sys
import time
import types
from pathlib import Path
from typing import Any

from simulation.packaged import FunctionSettings
from simulation.packaged import load as load_packaged_settings
from simulation.scale_out.clock import Invocation, SimClock
from simulation.scale_out.execution_environments import ContainerMemory, Environment

ROOT = Path(__file__).resolve().parent.parent.parent
ACCOUNT = "123456789012"  # moto's default account
# The stack the simulated functions belong to (their names: <stack>-<function>, as packaged).
STACK_NAME = "efs-automount"
REGION = "us-east-1"


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
        self._meter_calls()
        self._throttle_calls()
        self._share_loader_and_clients()
        self._import_app()

    def _meter_calls(self) -> None:
        """Each AWS call an app handler makes counted on its invocation, with the throttled answers it met."""
        from botocore.client import BaseClient

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

    def _throttle_calls(self) -> None:
        """The app's requests throttled (a share set per world); botocore's backoff counted in simulated time,
        never slept."""
        import botocore.endpoint
        from botocore.endpoint import Endpoint
        from botocore.retries.standard import ExponentialBackoff

        from simulation.throttling import Throttler

        process = self
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
        # botocore sleeps the backoff it computed (0 here) between attempts: not even that.
        botocore.endpoint.time = types.SimpleNamespace(sleep=lambda seconds: None, time=time.time)  # type: ignore[attr-defined]

    def _share_loader_and_clients(self) -> None:
        """botocore's loader, and the clients app handlers make, shared by every execution environment."""
        import botocore.session

        process = self
        # Every execution environment makes its own boto3 session and clients, as Lambda's would; they share
        # botocore's loader here only so that the service models are read from disk once (wall time).
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

    def _import_app(self) -> None:
        """The app imported from `app_dir`, every module of it, with its flow's clock and its logger patched."""
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

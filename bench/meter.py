"""The app as a new Lambda container has it, its handlers invoked as Lambda invokes them, and the AWS calls they
make counted and timed."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

# Where the app's JSON log lines go (its EMF metrics print to stdout, which the steps send to the same file).
APP_LOG: list[IO[str]] = []

# Assumed latency of one AWS API call from Lambda in the same region, for the projection to real AWS.
ASSUMED_AWS_CALL_SECONDS = 0.05


class Meter:
    """Counts the AWS calls made through botocore while on, and the time spent inside them."""

    def __init__(self) -> None:
        self.on = False
        self.calls: list[str] = []
        self.aws_seconds = 0.0

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        meter = self

        def metered(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if not meter.on:
                return original(client, operation, params)
            started = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                meter.aws_seconds += time.perf_counter() - started
                meter.calls.append(f"{client.meta.service_model.signing_name}:{operation}")

        BaseClient._make_api_call = metered  # type: ignore[method-assign]

    @contextmanager
    def measuring(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def reset(self) -> None:
        self.calls.clear()
        self.aws_seconds = 0.0


METER = Meter()


def fresh_app() -> Any:
    """The app as a new Lambda container would have it: no cached settings, clients or flows."""
    from app import app
    from chalicelib import entrypoints
    from chalicelib.plumbing import accounts, settings
    from chalicelib.plumbing.observability import logger

    if APP_LOG:
        logger.registered_handler.setStream(APP_LOG[0])
    settings.load_settings.cache_clear()
    accounts.aws_accounts.cache_clear()
    for flow in (entrypoints.lifecycle_flow, entrypoints.container_instance_flow, entrypoints.task_definition_flow):
        flow.cache_clear()
    METER.reset()
    return app


class Context:
    """What Lambda passes as the context (enough for Powertools): the function's packaged memory and timeout."""

    aws_request_id = "bench"

    def __init__(self, name: str, settings: Any) -> None:
        self.function_name = f"efs-automount-{name}"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.memory_limit_in_mb = settings.memory_mb
        self.timeout_ms = settings.timeout_s * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def invoker(app: Any, meter: Meter, settings: Any) -> Callable[[str, dict[str, Any]], Any]:
    """Call a handler as Lambda does, with the step's function settings; returns (result, handler seconds)."""

    def invoke(name: str, event: dict[str, Any]) -> Any:
        with meter.measuring():
            started = time.perf_counter()
            result = app.handler_map[name](json.loads(json.dumps(event)), Context(name, settings))
            invoke.seconds += time.perf_counter() - started
        return result

    invoke.seconds = 0.0  # type: ignore[attr-defined]
    return invoke

"""Fixtures: moto with its gaps filled, fake credentials, the app behind chalice's test client,
and a record of every AWS operation the app's own code makes."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import datetime
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.endpoint import Endpoint
from botocore.retries.standard import ExponentialBackoff

# Fake credentials before anything makes a client: no test may reach real AWS.
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    POWERTOOLS_METRICS_NAMESPACE="EfsAutomount",
    POWERTOOLS_DEV="false",
)

from chalice.test import Client  # noqa: E402
from hypothesis import HealthCheck  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from moto import mock_aws  # noqa: E402

# Import the app as deployed with a retry queue, so on_retry exists; each test's own settings say
# whether a queue is used.
os.environ["RETRY_QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/efs-automount-retries"
from app import app  # noqa: E402

del os.environ["RETRY_QUEUE_URL"]
from chalicelib import entrypoints  # noqa: E402
from chalicelib.plumbing import accounts, settings  # noqa: E402
from simulation import moto_gaps  # noqa: E402
from simulation.eventbus import EventBus  # noqa: E402
from simulation.landscape import Landscape, build_landscape  # noqa: E402
from simulation.throttling import Throttler  # noqa: E402

# Shared machines are noisy: judge hypothesis examples by outcome, never by time.
hypothesis_settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("suite")

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
OWN_ACCOUNT = "123456789012"

# Every (IAM service prefix, operation) the app's code called while a handler ran, suite-wide.
RECORDED_OPERATIONS: set[tuple[str, str]] = set()
# The same by handler (its Chalice name), from the handlers run through `Lambda.invoke`.
RECORDED_BY_HANDLER: dict[str, set[str]] = {}
# Recordings by handler of whoever asked for one (`recording_by_handler`), while they run.
_recordings: list[dict[str, set[str]]] = []
_calls: contextvars.ContextVar[list[tuple[str, str]] | None] = contextvars.ContextVar("calls", default=None)
_original_make_api_call = BaseClient._make_api_call


def _recording_make_api_call(self: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
    calls = _calls.get()
    if calls is not None:
        prefix = self.meta.service_model.signing_name
        calls.append((prefix, operation_name))
        RECORDED_OPERATIONS.add((prefix, operation_name))
    return _original_make_api_call(self, operation_name, api_params)


BaseClient._make_api_call = _recording_make_api_call  # type: ignore[method-assign]


def load_event(name: str, **detail: Any) -> dict[str, Any]:
    """A sample event from events/, happening now, with detail fields replaced."""
    event = json.loads((EVENTS / f"{name}.json").read_text())
    event["time"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"].update(detail)
    return event


def documentation() -> str:
    """The README and every page of docs/, as users read them: commands and policies shown there are what the
    tests that quote the documentation check."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return "\n".join(page.read_text() for page in pages)


def reset_app_caches() -> None:
    settings.load_settings.cache_clear()
    accounts.aws_accounts.cache_clear()
    entrypoints.lifecycle_flow.cache_clear()
    entrypoints.container_instance_flow.cache_clear()
    entrypoints.task_definition_flow.cache_clear()


@contextlib.contextmanager
def fresh_aws() -> Iterator[None]:
    """A simulated AWS of its own: moto with its gaps filled, nothing in it yet, and the app's caches empty."""
    with mock_aws():
        moto_gaps.install()
        moto_gaps.WORLD.reset()
        reset_app_caches()
        yield
    reset_app_caches()


@pytest.fixture(autouse=True)
def aws() -> Iterator[None]:
    with fresh_aws():
        yield


@contextlib.contextmanager
def recording_by_handler() -> Iterator[dict[str, set[str]]]:
    """Every operation the app's handlers make while the block runs, by handler (its Chalice name)."""
    recorded: dict[str, set[str]] = {}
    _recordings.append(recorded)
    try:
        yield recorded
    finally:
        _recordings.remove(recorded)


@dataclass
class Lambda:
    """The app as Lambda runs it (chalice's test client), with the stage's settings overridden."""

    client: Client
    calls: list[tuple[str, str]] = field(default_factory=list)

    def invoke(self, name: str, event: dict[str, Any]) -> Any:
        token = _calls.set(self.calls)
        start = len(self.calls)
        try:
            return self.client.lambda_.invoke(name, copy.deepcopy(event)).payload
        finally:
            _calls.reset(token)
            made = {f"{p}:{o}" for p, o in self.calls[start:]}
            for recorded in (RECORDED_BY_HANDLER, *_recordings):
                recorded.setdefault(name, set()).update(made)

    def operations(self) -> list[str]:
        return [f"{prefix}:{operation}" for prefix, operation in self.calls]


def make_lambda(tmp_path: Path, **env: str) -> Lambda:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"].update(env)
    project = tmp_path / "project"
    (project / ".chalice").mkdir(parents=True, exist_ok=True)
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    reset_app_caches()
    return Lambda(Client(app, stage_name="dev", project_dir=str(project)))


@pytest.fixture
def lambda_(tmp_path: Path) -> Lambda:
    return make_lambda(tmp_path)


@pytest.fixture
def land() -> Landscape:
    return build_landscape(boto3.Session(region_name="us-east-1"))


@pytest.fixture
def bus(lambda_: Lambda) -> EventBus:
    return EventBus(app, lambda_.invoke)


def deliver_outbox(bus: EventBus) -> list[tuple[str, Any]]:
    """Deliver everything AWS has emitted so far, and what that emits in turn."""
    results: list[tuple[str, Any]] = []
    while events := moto_gaps.WORLD.drain():
        for event in events:
            results.extend(bus.deliver(event))
    return results


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


def log_lines(captured: str) -> list[dict[str, Any]]:
    """The app's JSON log lines (Powertools Logger) among what a test printed."""
    lines = []
    for line in captured.splitlines():
        if line.startswith("{") and '"level"' in line:
            lines.append(json.loads(line))
    return lines


@pytest.fixture
def app_logs() -> Iterator[Any]:
    """The app's log lines so far, as dicts: app_logs() or app_logs("ERROR")."""
    from chalicelib.plumbing.observability import logger

    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)

    def lines(level: str | None = None) -> list[dict[str, Any]]:
        return [line for line in log_lines(buffer.getvalue()) if level is None or line["level"] == level]

    yield lines
    handler.setStream(previous)


def metric_names(captured: str) -> list[str]:
    """Names of the EMF metrics the app printed."""
    names = []
    for line in captured.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                names += [m["Name"] for m in directive["Metrics"]]
    return names


class Clock:
    """The flow's clock: real time plus however long a test lets pass."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def install_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """One clock for the flow and the simulated AWS (activity start times, hook timeouts)."""
    fake = Clock()
    monkeypatch.setattr("chalicelib.launch.flow.now", fake)
    monkeypatch.setattr(moto_gaps.WORLD, "clock", fake)
    return fake


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return install_clock(monkeypatch)


@pytest.fixture
def queued(tmp_path: Path, land: Landscape) -> Any:
    """The app with a retry queue, and a way to let its messages come back."""
    from tests.support.retry_queue import Queued

    return Queued(tmp_path, land)


@pytest.fixture
def repair_context(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Repair's Lambda context with its real 900 s timeout (chalice's test client gives every function 3 s); set
    `remaining_millis` to make time run out."""
    import chalice.test

    from tests.support.repair import RepairContext

    RepairContext.remaining_millis = None
    monkeypatch.setattr(chalice.test, "LambdaContext", RepairContext)
    yield RepairContext
    RepairContext.remaining_millis = None


SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": OWN_ACCOUNT,
    "time": "2026-11-21T10:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/efs-automount-dev-sweeper"],
    "detail": {},
}


@pytest.fixture
def throttled(monkeypatch: pytest.MonkeyPatch) -> Throttler:
    """30% of the app's AWS calls throttled; botocore's backoff made instant so the test stays quick."""
    throttler = Throttler(0.3, applies=lambda: _calls.get() is not None)
    monkeypatch.setattr(Endpoint, "_do_get_response", throttler(Endpoint._do_get_response))
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    return throttler


@pytest.fixture(scope="session")
def representative_operations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The operations each handler made in the representative flows (tests/support/representative_flows.py), run
    once a session, each in a simulated AWS of its own: whatever else ran, these paths did."""
    from tests.support.representative_flows import run_representative_flows

    return run_representative_flows(tmp_path_factory.mktemp("representative-flows"))


@pytest.fixture(scope="session")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `chalice package` writes for the prod stage with deploy/app-resources.json merged (as `make package`
    does before precompiling): built once for every test that reads the template or the zip."""
    out = tmp_path_factory.mktemp("package")
    chalice = Path(sys.executable).parent / "chalice"
    queue_url = "https://sqs.us-east-1.amazonaws.com/000000000000/efs-automount-retries"
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1", RETRY_QUEUE_URL=queue_url)
    command = [str(chalice), "package", "--stage", "prod", "--merge-template", "deploy/app-resources.json", str(out)]
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def packaged(package_dir: Path) -> dict[str, Any]:
    """The packaged template."""
    return json.loads((package_dir / "sam.json").read_text())


SHORTEST_HOOK = 120  # the contract's shortest heartbeat timeout; shorter ones are reported by the checks


@pytest.fixture
def short_hook(land):
    land.client("autoscaling").put_lifecycle_hook(
        LifecycleHookName=land.hook_name,
        AutoScalingGroupName=land.group_name,
        LifecycleTransition=moto_gaps.LAUNCHING,
        HeartbeatTimeout=SHORTEST_HOOK,
        DefaultResult="ABANDON",
    )

    def launch():
        from simulation.landscape import scale_out

        (instance_id,) = scale_out(land, 1)
        moto_gaps.pending_action(land.account, land.region, instance_id).heartbeat_timeout = SHORTEST_HOOK
        return instance_id

    return launch

"""Who may schedule a retry: every function whose handler can reach the retry queue learns its URL and is one of
the queue's senders, under `chalice deploy` (the queue policy README has you apply) and packaged alike."""

from __future__ import annotations

import ast
import json

import pytest

from simulation.landscape import register_container_instance, scale_out
from simulation.queues import create_retry_queue
from tests.conftest import RECORDED_BY_HANDLER, ROOT, deliver_outbox, make_lambda
from tools import build_deploy
from tools.build_deploy import retry_queue_attributes


# Review of issue 18, finding 5: the registration step schedules the dense agent looks itself.
def test_the_registration_step_sends_retries_and_is_a_retry_sender(tmp_path, land, clock):
    # What the registration step does with a queue configured: it schedules the agent looks itself.
    url = create_retry_queue(land)
    lambda_ = make_lambda(tmp_path, RETRY_QUEUE_URL=url)
    from app import app
    from simulation.eventbus import EventBus

    bus = EventBus(app, lambda_.invoke)
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)  # launch: agent offline, nothing sent
    register_container_instance(land, instance_id)
    lambda_.calls.clear()
    ((handler, outcome),) = deliver_outbox(bus)
    assert handler == "on_container_instance"
    assert outcome["outcome"] == "waiting: agent, retry in 2s"
    assert "sqs:SendMessage" in lambda_.operations()

    # chalice deploy: RETRY_QUEUE_URL is a stage variable (every function has it); the queue policy README
    # tells you to apply denies SendMessage to every role but these:
    policy = json.loads(retry_queue_attributes(url.replace("http://", "https://"), "prod")["Policy"])
    senders = policy["Statement"][0]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    # the packaged template: the same list, and only those functions are given RETRY_QUEUE_URL
    template = json.loads((ROOT / "deploy" / "app-resources.json").read_text())
    env = template["Resources"]["OnContainerInstance"].get("Properties", {}).get("Environment")

    problems = []
    if not any(s.endswith("-on_container_instance") for s in senders):
        problems.append(f"chalice deploy: the queue policy denies on_container_instance's SendMessage ({senders})")
    if not env or "RETRY_QUEUE_URL" not in env.get("Variables", {}):
        problems.append("chalice package: OnContainerInstance is not given RETRY_QUEUE_URL (no dense looks)")
    assert not problems, problems


def test_the_senders_are_read_from_the_code():
    # Given app.py and chalicelib/entrypoints.py as they are, the handlers whose entry point reaches the retry
    # queue are these six: everything but the task definition rewrite.
    assert build_deploy.retry_senders() == (
        "OnLaunch",
        "OnCommandStatus",
        "OnContainerInstance",
        "Sweeper",
        "OnRetry",
        "Repair",
    )
    # The derivation rests on one fact: the retry queue is made in one function of entrypoints.py, nowhere else.
    makers = []
    for path in sorted((ROOT / "chalicelib").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(c, ast.Call) and getattr(c.func, "id", None) == "RetryQueue" for c in ast.walk(node)
            ):
                makers.append((path.name, node.name))
    assert makers == [("entrypoints.py", build_deploy.RETRY_QUEUE_MAKER)]


def test_a_handler_that_comes_to_schedule_retries_becomes_a_sender(tmp_path, monkeypatch):
    # Given the task definition entry point made to reach the lifecycle flow through a helper of its own
    source = (ROOT / "chalicelib" / "entrypoints.py").read_text()
    changed = source.replace(
        "def handle_task_definition_registered(event: Any, context: Any = None) -> dict[str, str]:\n",
        "def _helper() -> Any:\n    return lifecycle_flow()\n\n\n"
        "def handle_task_definition_registered(event: Any, context: Any = None) -> dict[str, str]:\n    _helper()\n",
    )
    assert changed != source
    (tmp_path / "entrypoints.py").write_text(changed)
    monkeypatch.setattr(build_deploy, "ENTRYPOINTS", tmp_path / "entrypoints.py")
    # Then it is a sender: its URL and the queue's policy follow, with nobody listing it
    assert "OnTaskDefinition" in build_deploy.retry_senders()
    resources = build_deploy.app_resources()["Resources"]
    assert "RETRY_QUEUE_URL" in resources["OnTaskDefinition"]["Properties"]["Environment"]["Variables"]


@pytest.mark.last
def test_every_handler_seen_sending_to_the_retry_queue_is_a_sender(representative_operations):
    # Whatever the derivation reads, the session saw these handlers send (in the representative flows, which the
    # fixture has run, and in every other test): each must be allowed to.
    seen = {**RECORDED_BY_HANDLER}
    for name, operations in representative_operations.items():
        seen[name] = seen.get(name, set()) | operations
    sending = sorted(name for name, operations in seen.items() if "sqs:SendMessage" in operations)
    assert sending, "no handler sent a retry in this session"
    assert [name for name in sending if build_deploy.logical_id(name) not in build_deploy.retry_senders()] == []

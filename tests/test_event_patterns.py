"""Each sample event reaches exactly the handler that acts on it, by the app's own EventBridge patterns."""

from __future__ import annotations

import json

import pytest

from app import app
from simulation.eventbus import EventBus
from tests.conftest import EVENTS

EXPECTED = {
    "launch-lifecycle-action": ["on_launch"],
    "launch-lifecycle-action-warm-pool": ["on_launch"],
    "warm-pool-launch": ["on_launch"],
    "warm-pool-exit-launch": ["on_launch"],
    "launch-other-hook": [],
    "test-notification": [],
    "command-status-success": ["on_command_status"],
    "command-status-failed": ["on_command_status"],
    "command-status-timed-out": ["on_command_status"],
    "command-status-in-progress": [],
    "command-status-foreign-document": [],
    "container-instance-registered": ["on_container_instance"],
    "container-instance-draining": [],
    "task-definition-registered": ["on_task_definition"],
    "task-definition-registered-truncated": ["on_task_definition"],
    "task-definition-registration-failed": [],
}


def test_every_sample_event_has_an_expected_route():
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event_matches_exactly_its_handler(name):
    bus = EventBus(app, invoke=lambda *_: None)
    event = json.loads((EVENTS / f"{name}.json").read_text())

    assert bus.targets(event) == EXPECTED[name]


def test_every_handler_has_a_rule():
    assert sorted(EventBus(app, invoke=lambda *_: None).rules) == [
        "on_command_status",
        "on_container_instance",
        "on_launch",
        "on_task_definition",
    ]

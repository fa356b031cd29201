"""Fuzzing: no handler raises on any event, however malformed; what it cannot use it logs and drops."""

from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import EVENTS, load_event

HANDLERS = ["on_launch", "on_command_status", "on_container_instance", "on_task_definition"]
SAMPLES = sorted(p.stem for p in EVENTS.glob("*.json"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=10,
)
FUZZ = settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _paths(value, prefix=()):
    """Every key path in a JSON value."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield (*prefix, index)
            yield from _paths(child, (*prefix, index))


@st.composite
def mutated_samples(draw):
    event = load_event(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(event))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return event


@FUZZ
@given(event=json_values, handler=st.sampled_from(HANDLERS))
def test_any_json_at_all_is_dropped_without_raising(lambda_, event, handler):
    result = lambda_.invoke(handler, event)

    assert result["outcome"].startswith(("rejected:", "ignored:"))


@FUZZ
@given(event=mutated_samples(), handler=st.sampled_from(HANDLERS))
def test_mutated_sample_events_never_raise(lambda_, event, handler):
    result = lambda_.invoke(handler, copy.deepcopy(event))

    assert isinstance(result["outcome"], str)


@FUZZ
@given(body=json_values.map(json.dumps) | st.text(max_size=50))
def test_retry_queue_messages_that_make_no_sense_are_dropped_not_retried(lambda_, body):
    record = {"messageId": "m-1", "receiptHandle": "r-1", "body": body, "attributes": {}, "eventSource": "aws:sqs"}

    assert lambda_.invoke("on_retry", {"Records": [record]}) == {"batchItemFailures": []}

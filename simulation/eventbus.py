"""EventBridge's default bus, as far as efs-automount needs it: route each event by the app's own patterns."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalice.app import Chalice, CloudWatchEventConfig
from moto.events.models import EventPattern, EventPatternParser

Invoke = Callable[[str, dict[str, Any]], Any]


class EventBus:
    def __init__(self, app: Chalice, invoke: Invoke) -> None:
        self._invoke = invoke
        self.rules: dict[str, EventPattern] = {}
        for source in app.event_sources:
            if isinstance(source, CloudWatchEventConfig):
                raw = json.dumps(source.event_pattern)
                self.rules[source.name] = EventPattern(raw, EventPatternParser(raw).parse())

    def targets(self, event: dict[str, Any]) -> list[str]:
        """The handlers whose rule matches the event."""
        return [name for name, pattern in self.rules.items() if pattern.matches_event(event)]

    def deliver(self, event: dict[str, Any]) -> list[tuple[str, Any]]:
        """Invoke every matching handler, as EventBridge would; returns (handler, result) pairs."""
        return [(name, self._invoke(name, event)) for name in self.targets(event)]

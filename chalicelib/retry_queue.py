"""The retry queue: one message per waiting host, delivered again after a growing delay.

A host whose SSM agent is not online yet, or whose mount failed transiently, is tried again
through SQS (DelaySeconds) rather than by sleeping in Lambda. Without RETRY_QUEUE_URL the
sweeper carries these retries instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from chalicelib.aws_names import ACCOUNT_ID, GROUP_NAME, INSTANCE_ID, REGION
from chalicelib.events import EventOrigin, MalformedEvent

FIRST_DELAY_SECONDS = 10
MAX_DELAY_SECONDS = 60


def retry_delay(attempt: int) -> int:
    """Seconds before try `attempt` (1-based): 10, 20, 40, then 60 at most."""
    return min(FIRST_DELAY_SECONDS * 2 ** max(attempt - 1, 0), MAX_DELAY_SECONDS)


@dataclass(frozen=True)
class RetryMessage:
    """A waiting host, and how long it has been waiting (epoch seconds)."""

    account: str
    region: str
    group_name: str
    instance_id: str
    attempt: int
    started_at: float
    heartbeat_at: float

    @property
    def origin(self) -> EventOrigin:
        return EventOrigin(self.account, self.region)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, body: str) -> RetryMessage:
        try:
            data = json.loads(body)
        except (TypeError, ValueError) as exc:
            raise MalformedEvent(f"retry message is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedEvent("retry message is not a JSON object")
        checks = {"account": ACCOUNT_ID, "region": REGION, "group_name": GROUP_NAME, "instance_id": INSTANCE_ID}
        for key, pattern in checks.items():
            if not isinstance(data.get(key), str) or not pattern.fullmatch(data[key]):
                raise MalformedEvent(f"retry message {key} is missing or invalid")
        numbers = {}
        for key in ("attempt", "started_at", "heartbeat_at"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise MalformedEvent(f"retry message {key} is missing or not a non-negative number")
            numbers[key] = value
        return cls(**{k: data[k] for k in checks}, **numbers)  # type: ignore[arg-type]


class RetryQueue:
    """Sends retry messages to RETRY_QUEUE_URL (in the app's own account) with a delay."""

    def __init__(self, url: str | None, sqs: Callable[[], Any]) -> None:
        self.url = url
        self._sqs = sqs

    def later(self, message: RetryMessage, delay_seconds: int) -> bool:
        """Queue the message; False when there is no queue (the sweeper will find the host)."""
        if self.url is None:
            return False
        self._sqs().send_message(
            QueueUrl=self.url, MessageBody=message.to_json(), DelaySeconds=max(0, min(delay_seconds, 900))
        )
        return True

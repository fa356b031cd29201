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

from chalicelib.plumbing.events import EventOrigin, MalformedEvent
from chalicelib.plumbing.names import ACCOUNT_ID, GROUP_NAME, INSTANCE_ID, REGION

FIRST_DELAY_SECONDS = 10
MAX_DELAY_SECONDS = 60


def retry_delay(attempt: int) -> int:
    """Seconds before try `attempt` (1-based): 10, 20, 40, then 60 at most."""
    return min(FIRST_DELAY_SECONDS * 2 ** max(attempt - 1, 0), MAX_DELAY_SECONDS)


# A host whose ECS agent registered before its SSM agent came online: the two usually come up seconds apart,
# so it is looked at again densely at first, then ever more sparsely (docs/performance.md).
AGENT_DELAYS_SECONDS = (2, 2, 2, 3, 3, 4, 5, 6, 8, 10, 15, 20, 30)
WAITING_FOR_AGENT = "agent"


def agent_retry_delay(attempt: int) -> int:
    """Seconds before look `attempt` (1-based) at a host whose SSM agent is not online yet."""
    if attempt > len(AGENT_DELAYS_SECONDS):
        return MAX_DELAY_SECONDS
    return AGENT_DELAYS_SECONDS[max(attempt, 1) - 1]


# Attempts beyond this change nothing (the delay is at its longest); a larger number is not believed.
MAX_ATTEMPT = 1000


@dataclass(frozen=True)
class RetryMessage:
    """ "Look at this host again": where it is, and hints (its group's name, how often it was tried).

    Anyone allowed to send to the queue can write one, so nothing in it decides anything: the step
    checks in AWS that the host waits under our hook, in the group AWS reports, before it acts. Times
    are not carried; `started_at` and `heartbeat_at` of messages from earlier versions are ignored.
    """

    account: str
    region: str
    group_name: str
    instance_id: str
    attempt: int
    # "agent": the host's SSM agent was not online at the last look. Only ever adds a check (one
    # DescribeInstanceInformation) before the step: it cannot skip or decide anything.
    waiting_for: str = ""

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
        attempt = data.get("attempt")
        if isinstance(attempt, bool) or not isinstance(attempt, int) or not 0 <= attempt <= MAX_ATTEMPT:
            raise MalformedEvent(f"retry message attempt is missing or not a whole number from 0 to {MAX_ATTEMPT}")
        waiting_for = data.get("waiting_for", "")
        if waiting_for not in ("", WAITING_FOR_AGENT):
            raise MalformedEvent(f"retry message waiting_for is not '' or '{WAITING_FOR_AGENT}'")
        return cls(**{k: data[k] for k in checks}, attempt=attempt, waiting_for=waiting_for)


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

"""The app deployed with a retry queue, and a way to let the queue's messages come back to it."""

from __future__ import annotations

from pathlib import Path

from simulation import moto_gaps
from simulation.eventbus import EventBus
from simulation.landscape import Landscape
from simulation.queues import create_retry_queue, sqs_event, take_messages
from tests.conftest import Clock, make_lambda


class Queued:
    """The app with a retry queue: its Lambda, the bus that delivers AWS's events to it, the queue's URL."""

    def __init__(self, tmp_path: Path, land: Landscape) -> None:
        from app import app

        self.land = land
        self.url = create_retry_queue(land)
        self.lambda_ = make_lambda(tmp_path, RETRY_QUEUE_URL=self.url)
        self.bus = EventBus(app, self.lambda_.invoke)

    def deliver_retries(self, clock: Clock) -> list[int]:
        """Let time pass to the latest message's delay, deliver them all; returns their delays."""
        taken = take_messages(self.land, self.url)
        if taken:
            clock.advance(max(delay for delay, _ in taken))
            moto_gaps.expire_actions()
            response = self.lambda_.invoke("on_retry", sqs_event([record for _, record in taken]))
            assert response == {"batchItemFailures": []}
        return [delay for delay, _ in taken]

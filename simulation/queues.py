"""The retry queue as Lambda's SQS trigger sees it: take every message (time passing over any delay)."""

from __future__ import annotations

import json
from typing import Any

from moto.sqs.models import sqs_backends

from simulation.landscape import Landscape


def create_retry_queue(land: Landscape, name: str = "efs-automount-retries") -> str:
    """The retry queue with its dead-letter queue, as the packaged deployment makes them."""
    sqs = land.client("sqs")
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": "360",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]


def take_messages(land: Landscape, queue_url: str) -> list[tuple[int, dict[str, Any]]]:
    """Remove every message from the queue, delayed or not; returns (its delay in seconds, its SQS record)."""
    queue = sqs_backends[land.account][land.region].queues[queue_url.rsplit("/", 1)[-1]]
    taken = []
    with queue._messages_lock:
        messages, queue._messages[:] = list(queue._messages), []
    for message in messages:
        delay = round(max(0.0, message.delayed_until - message.sent_timestamp) / 1000) if message.delayed_until else 0
        record = {
            "messageId": message.id,
            "receiptHandle": message.receipt_handle or message.id,
            "body": message.body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(message.sent_timestamp)},
            "messageAttributes": {},
            "md5OfBody": message.body_md5,
            "eventSource": "aws:sqs",
            "eventSourceARN": queue.queue_arn,
            "awsRegion": land.region,
        }
        taken.append((delay, record))
    return taken


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}

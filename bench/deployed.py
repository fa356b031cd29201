"""Each function as the packaged template deploys it: its settings, the stack's resources they name, and the
process environment set to them while a part runs."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Each function runs with the settings its packaged template gives it (simulation/packaged.py), so the figures are
# of the configuration that is deployed: built once per run, as `make package` builds it.
PACKAGED: dict[str, Any] = {}
# What the stack names its idempotency table (the queue is named in the template: efs-automount-retries).
TABLE_NAME = "efs-automount-idempotency-efs-automount"


def packaged_sam() -> dict[str, Any]:
    from simulation.packaged import build_package

    if "sam" not in PACKAGED:
        with tempfile.TemporaryDirectory() as tmp:
            PACKAGED["sam"] = json.loads(build_package(ROOT, Path(tmp) / "package").read_text())
    return PACKAGED["sam"]


def deployed_settings(function: str, made: dict[str, str], *alike: str) -> Any:
    """`function`'s packaged settings, what they refer to (resources, parameters) taken from `made`. A step that
    invokes other handlers too (`alike`) runs them with the same settings, as one process caches one set: only
    when the template gives them the same (Lambda gives each function its own)."""
    from simulation.packaged import function_settings

    functions = function_settings(packaged_sam(), made)
    for other in alike:
        if functions[other].environment != functions[function].environment:
            raise RuntimeError(f"{other} is deployed with other settings than {function}: measure them apart")
    return functions[function]


def packaged_settings_described() -> dict[str, Any]:
    """Each packaged function's timeout, memory and the names of its environment variables."""
    from simulation.packaged import function_settings

    functions = function_settings(packaged_sam(), {"RetryQueue": "", "IdempotencyTable": ""})
    return {
        name: {"timeout_s": f.timeout_s, "memory_mb": f.memory_mb, "environment": sorted(f.environment)}
        for name, f in sorted(functions.items())
    }


def function_environment(settings: Any) -> dict[str, str]:
    """The function's environment; its logs kept to warnings (they are filed, not read)."""
    return {**settings.environment, "POWERTOOLS_LOG_LEVEL": "WARNING"}


def stack_resources(client: Callable[[str], Any]) -> dict[str, str]:
    """What the packaged stack makes that the functions' settings refer to, made here as the stack makes them: the
    retry queue (with its dead-letter queue) and the idempotency table."""
    sqs, dynamodb = client("sqs"), client("dynamodb")
    dlq = sqs.create_queue(QueueName="efs-automount-retries-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue = sqs.create_queue(
        QueueName="efs-automount-retries", Attributes={"VisibilityTimeout": "360", "RedrivePolicy": redrive}
    )["QueueUrl"]
    dynamodb.create_table(
        TableName=TABLE_NAME,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    return {"RetryQueue": queue, "IdempotencyTable": TABLE_NAME}


def import_environment() -> dict[str, str]:
    """The environment the app is imported with in a cold start: a function's that subscribes nothing (on_launch)."""
    from simulation.packaged import PACKAGE_QUEUE_URL

    made = {"RetryQueue": PACKAGE_QUEUE_URL, "IdempotencyTable": TABLE_NAME}
    return function_environment(deployed_settings("on_launch", made))


@contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

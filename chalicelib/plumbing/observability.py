"""The one place Powertools Logger and Metrics are made, and the adapter every handler goes through.

Chalice hands event handlers one event object; Powertools decorators want
(event, context), so `lambda_handler` adapts before it applies them.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "efs-automount"
NAMESPACE = "EfsAutomount"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# Many events rightly end with no metric (ignored, already decided): that is not worth a warning each.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# botocore logs every retry and credential lookup at INFO/DEBUG; our own lines say what matters.
for noisy in ("botocore", "boto3", "urllib3"):
    logging.getLogger(noisy).setLevel(logging.WARNING)


def count(name: str, **dimensions: str) -> None:
    """Add 1 to a metric; with dimensions, as its own EMF blob so they apply to it alone."""
    if not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return
    from aws_lambda_powertools.metrics import single_metric

    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


def _tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "true").lower() == "false"


def lambda_function_handler(function: Callable[[dict[str, Any], Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap `function(event_dict, context)` with logging and metrics; Chalice's plain `lambda_function`
    hands it the event and context as they are."""
    wrapped = logger.inject_lambda_context(clear_state=True)(metrics.log_metrics(function))
    if _tracing_enabled():
        # X-Ray costs import time on every cold start, so it loads only when asked for.
        from aws_lambda_powertools import Tracer

        wrapped = Tracer(service=SERVICE).capture_lambda_handler(wrapped)
    return functools.wraps(function)(wrapped)


def lambda_handler(function: Callable[[dict[str, Any], Any], Any]) -> Callable[[Any], Any]:
    """Wrap `function(event_dict, context)` as a Chalice event handler with logging and metrics."""
    wrapped = lambda_function_handler(function)

    @functools.wraps(function)
    def handler(event: Any) -> Any:
        return wrapped(event.to_dict(), event.context)

    return handler

"""A busy AWS account: a share of requests answered with ThrottlingException, at botocore's endpoint,
so that botocore's own retry handling is what copes with it (tests and benchmarks)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse


class _EmptyBody:
    def stream(self, **_: Any) -> list[bytes]:
        return [b""]


class Throttler:
    """Answers a share of the app's AWS requests with ThrottlingException, as a busy account would;
    never more than twice in a row, so botocore's retries (six attempts) always get through."""

    def __init__(self, share: float, seed: int = 7, applies: Callable[[], bool] = lambda: True) -> None:
        self.share = share
        self.applies = applies
        self.random = random.Random(seed)
        self.throttled = 0
        self.in_a_row = 0

    def __call__(self, original: Any) -> Any:
        throttler = self

        def do_get_response(endpoint: Any, request: Any, operation_model: Any, context: Any) -> Any:
            if throttler.applies() and throttler.in_a_row < 2 and throttler.random.random() < throttler.share:
                throttler.throttled += 1
                throttler.in_a_row += 1
                http = AWSResponse(request.url, 400, {}, _EmptyBody())
                parsed = {
                    "Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                    "ResponseMetadata": {"HTTPStatusCode": 400, "HTTPHeaders": {}},
                }
                return (http, parsed), None
            throttler.in_a_row = 0
            return original(endpoint, request, operation_model, context)

        return do_get_response


def throttle_everything(share: float) -> Throttler:
    """For a whole process (the benchmark): throttle every request; botocore's backoff made instant,
    so what is measured is the app's work and AWS's answers, not sleeping."""
    from botocore.endpoint import Endpoint
    from botocore.retries.standard import ExponentialBackoff

    throttler = Throttler(share)
    Endpoint._do_get_response = throttler(Endpoint._do_get_response)  # type: ignore[method-assign]
    ExponentialBackoff.delay_amount = lambda self, context: 0  # type: ignore[method-assign]
    return throttler

"""One run's EFS reads, shared by the groups it checks: groups of one file system read its description, policy,
mount targets and their security groups once per run (repair's, the hourly one's), not once per group."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

# Answers that would differ on a second try are never kept: the next group asks again.
PASSING_ERRORS = ("Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException")


class _Answers:
    """The answers (or the lasting errors) of a client's read calls, by operation and arguments."""

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], tuple[Any, ClientError | None]] = {}

    def answer(self, operation: str, kwargs: dict[str, Any], read: Callable[[], Any]) -> Any:
        key = (operation, json.dumps(kwargs, sort_keys=True, default=str))
        if key not in self._kept:
            try:
                self._kept[key] = (read(), None)
            except ClientError as exc:
                error = exc.response.get("Error", {}).get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
                if error in PASSING_ERRORS or status >= 500:
                    raise
                self._kept[key] = (None, exc)
        answer, error = self._kept[key]
        if error is not None:
            raise error
        return answer


class _Paginator:
    def __init__(self, paginator: Any, operation: str, answers: _Answers) -> None:
        self._paginator, self._operation, self._answers = paginator, operation, answers

    def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        pages = self._answers.answer(
            f"pages:{self._operation}", kwargs, lambda: list(self._paginator.paginate(**kwargs))
        )
        return iter(pages)


class _ReadOnceClient:
    """An EFS client whose Describe calls and paginators answer from the run's reads."""

    def __init__(self, client: Any, answers: _Answers) -> None:
        self._client, self._answers = client, answers

    def get_paginator(self, operation: str) -> _Paginator:
        return _Paginator(self._client.get_paginator(operation), operation, self._answers)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not name.startswith("describe_"):
            return attribute

        def read(**kwargs: Any) -> Any:
            return self._answers.answer(name, kwargs, lambda: attribute(**kwargs))

        return read


class RunReads:
    """The account and region's AwsAccess for one run of checks: EFS reads answered once per run."""

    def __init__(self, aws: Any) -> None:
        self._aws = aws
        self.account, self.region = aws.account, aws.region
        self._efs = _ReadOnceClient(aws.client("efs"), _Answers())

    def client(self, service: str) -> Any:
        return self._efs if service == "efs" else self._aws.client(service)

"""AWS refusing an operation as it refuses a role without the permission, and a count of the refusals, so a test
can tell the refusal really reached the app."""

from __future__ import annotations

from typing import Any

import pytest
from moto.core.exceptions import ServiceException


class AccessDenied(ServiceException):
    code = "AccessDenied"


def deny(monkeypatch: pytest.MonkeyPatch, responses: type, method: str, action: str) -> list[str]:
    """Moto's `responses.method` (an operation of a moto responses class) answers AccessDenied for `action`;
    returns the list of refusals made, one entry each."""
    refused: list[str] = []

    def denied(self: Any) -> Any:
        refused.append(action)
        raise AccessDenied(f"not authorized to perform: {action}")

    monkeypatch.setattr(responses, method, denied)
    return refused


def deny_scaling_activities(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A member stack from before the permission was added: no autoscaling:DescribeScalingActivities."""
    from moto.autoscaling.responses import AutoScalingResponse

    return deny(
        monkeypatch, AutoScalingResponse, "describe_scaling_activities", "autoscaling:DescribeScalingActivities"
    )

"""The two results a lifecycle action can be completed with."""

from enum import StrEnum


class LifecycleResult(StrEnum):
    CONTINUE = "CONTINUE"
    ABANDON = "ABANDON"

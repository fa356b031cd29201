"""The two results a lifecycle action can be completed with."""

from enum import Enum


class LifecycleResult(str, Enum):
    CONTINUE = "CONTINUE"
    ABANDON = "ABANDON"

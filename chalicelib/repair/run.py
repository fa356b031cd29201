"""One repair run's clock and errors: the run stops before an item when too little time is left for it, and a read
that fails is an error naming its phase while the rest goes on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from chalicelib.plumbing.observability import count, logger

# Stop before an item when less time than this is left: enough to finish one and return the report.
STOP_MARGIN_MILLIS = 30_000

T = TypeVar("T")


class OutOfTime(Exception):
    """Less time is left than one more item may need."""


class ClusterNotFound(Exception):
    """The cluster named in the input does not exist (or no longer) in that account and region."""


class RepairRun:
    """The report being filled, the time left, and where the run is (what `stopped` names)."""

    def __init__(self, report: dict[str, Any], remaining_millis: Callable[[], int]) -> None:
        self.report = report
        self._remaining_millis = remaining_millis
        self.where = ""

    def check_time(self, item: str) -> None:
        if self._remaining_millis() < STOP_MARGIN_MILLIS:
            raise OutOfTime(f"stopped before {item}")

    def guarded(self, item: str, phase: str, read: Callable[[], T]) -> T | None:
        """The read's result, or None with an error in the report naming the phase. Running out of time is
        not an error: it stops the run (`stopped`)."""
        try:
            return read()
        except OutOfTime:
            raise
        except ClusterNotFound as exc:
            self.report["errors"].append({"item": item, "error": str(exc)})
        except Exception as exc:
            self.error(item, exc, phase)
        return None

    def error(self, item: str, exc: Exception, phase: str | None = None) -> None:
        logger.exception("repair could not finish an item", item=item, phase=phase)
        count("RepairErrors")
        error = str(exc) or type(exc).__name__
        self.report["errors"].append({"item": item, "error": f"{phase}: {error}" if phase else error})

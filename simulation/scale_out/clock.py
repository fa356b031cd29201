"""The simulated clock: between happenings, the happening's time; inside an invocation, its start plus what its
AWS calls have taken so far."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulation.scale_out.model import Model


@dataclass
class Invocation:
    """One handler invocation in progress: its simulated start, and what it has spent so far."""

    name: str
    start: float
    model: Model
    calls: list[str] = field(default_factory=list)
    throttled: int = 0
    backoff_s: float = 0.0

    def clock(self) -> float:
        requests = len(self.calls) + self.throttled
        return self.start + self.model.invocation_overhead_s + self.model.call_s * requests + self.backoff_s


class SimClock:
    """The simulated time: between happenings, the happening's time; inside an invocation, its start plus
    what its calls have taken so far (so a command it sends is stamped when it is sent)."""

    def __init__(self, start: float) -> None:
        self.base = start
        self.invocation: Invocation | None = None

    def __call__(self) -> float:
        return self.invocation.clock() if self.invocation is not None else self.base

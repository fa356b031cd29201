"""What the checks of one group found: problems (reported, counted) and what they could not be sure of (logged)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The rule ids of the contract, in the order a reader fixes them.
RULES = (
    "hook-missing",
    "hook-timeout",
    "tag-invalid",
    "file-system-missing",
    "access-point-mismatch",
    "mount-target-missing",
    "nfs-blocked",
    "file-system-policy",
    "document-drift",
    "agent-offline",
)


@dataclass
class Findings:
    """Problems (`rule-id: sentence naming the resource to fix`) and unsure notes (never reported as problems:
    a check that cannot be sure says so in the log, not in the report)."""

    problems: list[str] = field(default_factory=list)
    unsure: list[str] = field(default_factory=list)

    def problem(self, rule: str, sentence: str) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}")
        self.problems.append(f"{rule}: {sentence}")

    def not_sure(self, what: str) -> None:
        self.unsure.append(what)

    def rules(self) -> list[str]:
        return [p.split(":", 1)[0] for p in self.problems]

"""What host/mount-efs.sh reported: its exit code and last-line JSON summary, and whether a retry can help."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SUMMARY_PREFIX = "efs-automount: "
# Exit codes the script documents as permanent: bad input, something else at the path, no helper,
# not this file system's server, a mount path that is not safe. A failed write/read probe is 75,
# transient: a fix of the access point or policy lets a retry pass.
PERMANENT_EXIT_CODES = frozenset({2, 3, 4, 5, 6})


@dataclass(frozen=True)
class ScriptResult:
    status: str
    exit_code: int | None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def permanent(self) -> bool:
        """True when running the script again cannot succeed (SSM timeouts and crashes may)."""
        return self.exit_code in PERMANENT_EXIT_CODES

    @property
    def message(self) -> str:
        return str(self.summary.get("message") or self.status)


def script_result_from_invocation(invocation: dict[str, Any]) -> ScriptResult:
    """Read a GetCommandInvocation response; SSM reports -1 when the script never ended by itself."""
    code = invocation.get("ResponseCode")
    return ScriptResult(
        status=invocation.get("Status", "Unknown"),
        exit_code=code if isinstance(code, int) and code >= 0 else None,
        summary=parse_summary(invocation.get("StandardOutputContent", "")),
    )


def parse_summary(output: str) -> dict[str, Any]:
    """The script's JSON summary: its last line, if that line is one."""
    lines = output.strip().splitlines()
    if not lines or not lines[-1].startswith(SUMMARY_PREFIX):
        return {}
    try:
        summary = json.loads(lines[-1].removeprefix(SUMMARY_PREFIX))
    except json.JSONDecodeError:
        return {}
    return summary if isinstance(summary, dict) else {}

"""Which commands count as this launch's attempts: the one rule the launch step, the registration step, the
sweeper and repair all ask, and how overlapping sends group into one attempt.
"""

from __future__ import annotations

from typing import Any

from chalicelib.mount.commands import DEFAULT_VERSIONS, requested_at

# Steps that overlap for one host (a retry message, the sweeper, a status event) may each send: commands
# requested this close together are one send round, one attempt. Shorter than the first backoff (10 s),
# so two rounds the backoff separates never merge.
ROUND_SECONDS = 9


def is_launch_attempt(command: dict[str, Any], since: float, parameters: dict[str, list[str]]) -> bool:
    """Whether a command of the mount document is one of the app's own attempts for the host's current launch:
    requested at or after `since` (a moment of this launch), on the document's default version, with exactly
    `parameters`, the ones the app would send now (every one: a rogue MountTargetIp, another RequireTls or a
    DnsWaitSeconds the app never sends make it someone else's command, which never decides a host)."""
    return (
        requested_at(command) >= since
        and command.get("DocumentVersion") in DEFAULT_VERSIONS
        and command.get("Parameters") == parameters
    )


def launch_attempts(
    commands: list[dict[str, Any]], since: float, parameters: dict[str, list[str]] | None
) -> list[dict[str, Any]]:
    """Of the commands (oldest first), the app's own attempts for this launch (is_launch_attempt); none when the
    app would send nothing now (`parameters` None: no mount target ready in the host's zone)."""
    if parameters is None:
        return []
    return [c for c in commands if is_launch_attempt(c, since, parameters)]


def send_rounds(commands: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The commands (oldest first) grouped into send rounds: a round is every command requested within
    ROUND_SECONDS of its first."""
    rounds: list[list[dict[str, Any]]] = []
    for command in commands:
        if rounds and requested_at(command) - requested_at(rounds[-1][0]) < ROUND_SECONDS:
            rounds[-1].append(command)
        else:
            rounds.append([command])
    return rounds

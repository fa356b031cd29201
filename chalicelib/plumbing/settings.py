"""The app's settings: Lambda environment variables parsed once into a frozen value."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.names import (
    ACCOUNT_ID,
    DEFAULT_MOUNT_ROOTS,
    DOCUMENT_NAME,
    EXTERNAL_ID,
    HOOK_NAME,
    MOUNT_ROOT,
    QUEUE_URL,
    REGION,
    ROLE_NAME,
    TABLE_NAME,
)

DEFAULT_HOOK_NAME = "efs-automount"
DEFAULT_MEMBER_ROLE_NAME = "efs-automount-member"
DEFAULT_MOUNT_DOCUMENT = "efs-automount-mount"


class SettingsError(ValueError):
    """A Lambda environment variable has a value the app cannot use."""


@dataclass(frozen=True)
class Settings:
    hook_name: str = DEFAULT_HOOK_NAME
    trusted_accounts: frozenset[str] = frozenset()
    member_role_name: str = DEFAULT_MEMBER_ROLE_NAME
    external_id: str | None = None
    on_failure: LifecycleResult = LifecycleResult.ABANDON
    # Directories a mount path must lie strictly under (deploy-time; no tag can widen them).
    mount_roots: tuple[str, ...] = DEFAULT_MOUNT_ROOTS
    mount_document: str = DEFAULT_MOUNT_DOCUMENT
    # Seconds SSM may take to deliver the command and the script may run.
    command_timeout_seconds: int = 600
    # Optional: a DynamoDB table for Powertools idempotency of task definition rewrites.
    idempotency_table: str | None = None
    # Opt-in follow-ups of a task definition rewrite (docs/pipelines.md).
    update_services: bool = False
    deregister_source: bool = False
    # Optional: the SQS queue for retries of waiting hosts (docs/how-it-works.md).
    retry_queue_url: str | None = None
    # Mount attempts per host (transient failures are retried), and how long a host may wait in all.
    mount_attempts: int = 3
    max_wait_seconds: int = 1800
    # Where the sweeper looks (besides the function's own region), and how many hosts one run drives.
    sweep_regions: tuple[str, ...] = ()
    sweep_max_hosts: int = 50

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Each group of settings parsed apart; the first value the app cannot use fails, naming its variable."""
        return cls(
            **_access_settings(environ),
            **_mount_settings(environ),
            **_task_definition_settings(environ),
            **_retry_settings(environ),
        )


def _value(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value, trimmed; None when unset or blank."""
    return environ.get(name, "").strip() or None


def _listed(environ: Mapping[str, str], name: str) -> list[str]:
    """A comma-separated variable's entries, trimmed, without blanks."""
    return [entry.strip() for entry in environ.get(name, "").split(",") if entry.strip()]


def _text(environ: Mapping[str, str], name: str, default: str, pattern: re.Pattern[str]) -> str:
    value = _value(environ, name) or default
    if not pattern.fullmatch(value):
        raise SettingsError(f"{name}={value!r} is not valid: expected {pattern.pattern}")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = (_value(environ, name) or "false").lower()
    if value not in ("true", "false"):
        raise SettingsError(f"{name}={value!r} is not valid: expected true or false")
    return value == "true"


def _number(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _value(environ, name) or str(default)
    if not value.isdigit() or not low <= int(value) <= high:
        raise SettingsError(f"{name}={value!r} is not valid: expected {low} to {high}")
    return int(value)


def _access_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """Whose events are acted on, and how the app reaches a trusted account."""
    accounts = _listed(environ, "TRUSTED_ACCOUNTS")
    bad = [a for a in accounts if not ACCOUNT_ID.fullmatch(a)]
    if bad:
        raise SettingsError(f"TRUSTED_ACCOUNTS has entries that are not 12-digit account ids: {bad}")
    external_id = _value(environ, "EXTERNAL_ID")
    if external_id is not None and not EXTERNAL_ID.fullmatch(external_id):
        raise SettingsError("EXTERNAL_ID is not valid: expected 2 to 1224 of [\\w+=,.@:/-]")
    return {
        "hook_name": _text(environ, "HOOK_NAME", DEFAULT_HOOK_NAME, HOOK_NAME),
        "trusted_accounts": frozenset(accounts),
        "member_role_name": _text(environ, "MEMBER_ROLE_NAME", DEFAULT_MEMBER_ROLE_NAME, ROLE_NAME),
        "external_id": external_id,
    }


def _mount_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """What a mount may reach on a host, how it is sent, and how long a host may wait for it."""
    on_failure = _value(environ, "ON_FAILURE") or LifecycleResult.ABANDON.value
    try:
        failure_result = LifecycleResult(on_failure)
    except ValueError:
        raise SettingsError(f"ON_FAILURE={on_failure!r} is not valid: expected ABANDON or CONTINUE") from None
    roots = tuple(dict.fromkeys(_listed(environ, "MOUNT_ROOTS")))
    bad_roots = [r for r in roots if not MOUNT_ROOT.fullmatch(r) or len(r) > 120]
    if bad_roots:
        raise SettingsError(
            f"MOUNT_ROOTS has entries that are not normalized absolute directories other than '/' "
            f"(components of [A-Za-z0-9._-], no '.' or '..', at most 120 characters): {bad_roots}"
        )
    return {
        "on_failure": failure_result,
        "mount_roots": roots or DEFAULT_MOUNT_ROOTS,
        "mount_document": _text(environ, "MOUNT_DOCUMENT", DEFAULT_MOUNT_DOCUMENT, DOCUMENT_NAME),
        "command_timeout_seconds": _number(environ, "COMMAND_TIMEOUT_SECONDS", 600, 30, 2880),
        "mount_attempts": _number(environ, "MOUNT_ATTEMPTS", 3, 1, 10),
        "max_wait_seconds": _number(environ, "MAX_WAIT_SECONDS", 1800, 120, 172800),
    }


def _task_definition_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The rewrite's idempotency table and its opt-in follow-ups."""
    table = _value(environ, "IDEMPOTENCY_TABLE")
    if table is not None and not TABLE_NAME.fullmatch(table):
        raise SettingsError(f"IDEMPOTENCY_TABLE={table!r} is not a DynamoDB table name")
    return {
        "idempotency_table": table,
        "update_services": _flag(environ, "UPDATE_SERVICES"),
        "deregister_source": _flag(environ, "DEREGISTER_SOURCE"),
    }


def _retry_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The retry queue, and where and how far the sweeper looks (the function's own region first)."""
    queue_url = _value(environ, "RETRY_QUEUE_URL")
    if queue_url is not None and not QUEUE_URL.fullmatch(queue_url):
        raise SettingsError(f"RETRY_QUEUE_URL={queue_url!r} is not an SQS queue URL")
    regions = _listed(environ, "SWEEP_REGIONS")
    own_region = environ.get("AWS_REGION", "").strip()
    if own_region and own_region not in regions:
        regions.insert(0, own_region)
    bad_regions = [r for r in regions if not REGION.fullmatch(r)]
    if bad_regions:
        raise SettingsError(f"SWEEP_REGIONS has entries that are not region names: {bad_regions}")
    return {
        "retry_queue_url": queue_url,
        "sweep_regions": tuple(regions),
        "sweep_max_hosts": _number(environ, "SWEEP_MAX_HOSTS", 50, 1, 1000),
    }


@cache
def load_settings() -> Settings:
    """The settings of this Lambda container, parsed on first use."""
    return Settings.from_environ(os.environ)

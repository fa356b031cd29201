"""Where a registered revision stands, and what the rewrite flow does about it (pure). Its tags decide first; when
they ask for a mount it lacks, its family's latest ACTIVE revision decides (`source_standing`). The event handler
and repair both ask `standing_from_tags` and `standing_in_family`; `next_step` is the handler's answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from chalicelib.mount.spec import MountConfigError
from chalicelib.task_definitions.rewrite import (
    SOURCE_TAG,
    TaskMount,
    is_rewrite_of,
    mounts_file_system,
    source_standing,
    task_mount_from_tags,
)

# What the tags alone decide (besides FAMILY: the family's latest decides, `standing_in_family`).
OURS = "ours"  # the app's own rewrite: never rewritten again
INVALID = "invalid"  # a tag fails validation
UNTAGGED = "untagged"  # no file system tag
MOUNTS = "mounts"  # already mounts the file system
FAMILY = "family"
# The family has no ACTIVE revision (a tagged revision deregistered since, with none left).
NO_ACTIVE = "no-active"


@dataclass(frozen=True)
class RevisionStanding:
    """`standing`: one of the above, or a verdict of `standing_in_family` ("latest", "rewritten", "in-flight",
    "superseded", "rewritten-earlier", "forged"), against `latest_arn`, the family's latest ACTIVE revision."""

    standing: str
    mount: TaskMount | None = None
    latest_arn: str | None = None
    invalid: MountConfigError | None = None


def standing_from_tags(
    tags: Mapping[str, str], definition: Mapping[str, Any], roots: tuple[str, ...]
) -> RevisionStanding:
    """What the revision's tags decide; FAMILY when they ask for a mount the revision lacks."""
    if SOURCE_TAG in tags:
        return RevisionStanding(OURS)
    try:
        mount = task_mount_from_tags(tags, definition, roots)
    except MountConfigError as exc:
        return RevisionStanding(INVALID, invalid=exc)
    if mount is None:
        return RevisionStanding(UNTAGGED)
    if mounts_file_system(definition, mount):
        return RevisionStanding(MOUNTS, mount)
    return RevisionStanding(FAMILY, mount)


def standing_in_family(
    definition: Mapping[str, Any],
    tags: Mapping[str, str],
    mount: TaskMount,
    latest_definition: Mapping[str, Any],
    latest_tags: Mapping[str, str],
    input_fields: Iterable[str],
) -> str:
    """Where the revision stands against its family's latest ACTIVE revision (`source_standing`). A latest revision
    whose tag names this one as its source is "rewritten" only if it is what the rewrite would register
    (`is_rewrite_of`): anyone who may register task definitions can write that tag, and the follow-ups move
    services to the rewrite. Otherwise it is "forged"; "rewritten-earlier" when it is the rewrite an earlier
    release made (legacy constraint): never rewritten again, and no service moved to it."""
    verdict = source_standing(definition["taskDefinitionArn"], latest_definition["taskDefinitionArn"], latest_tags)
    if verdict != "rewritten":
        return verdict
    if not is_rewrite_of(latest_definition, latest_tags, definition, tags, mount, input_fields):
        return "forged"
    if mount.mode == "host" and mount.legacy_placement_constraint in (
        latest_definition.get("placementConstraints") or []
    ):
        return "rewritten-earlier"
    return verdict


def family_standing(verdict: tuple[str, str] | None, mount: TaskMount) -> RevisionStanding:
    """A RevisionStanding from `TaskDefinitionFlow.standing`'s answer (None: the family has no ACTIVE revision)."""
    if verdict is None:
        return RevisionStanding(NO_ACTIVE, mount)
    return RevisionStanding(verdict[0], mount, latest_arn=verdict[1])


class Step(Enum):
    IGNORE = "ignore"  # nothing to register: the outcome says why
    # The family's latest is its rewrite already (a repeated delivery, or the retry of one that died after
    # registering): finish the follow-ups it may have left (update services, deregister the source).
    FINISH = "finish"
    # The family's latest is the rewrite of an older revision, about to be undone: decided when delivered again.
    RETRY = "retry"
    REGISTER = "register"  # the revision is its family's latest: register the next revision with the mount


@dataclass(frozen=True)
class NextStep:
    step: Step
    outcome: str = ""  # the flow's answer (IGNORE), or the reason it is retried (RETRY)
    # What the flow logs (level, message, fields) and the TaskDefinitionsRejected Reason it counts.
    log: tuple[str, str, dict[str, Any]] | None = None
    rejected: str | None = None


def next_step(found: RevisionStanding) -> NextStep:
    """What the event handler does with a registered revision: only its family's latest is ever rewritten, so the
    app never makes an older definition the family's latest."""
    latest = found.latest_arn
    if found.standing == OURS:
        return NextStep(Step.IGNORE, "ignored: a revision efs-automount registered")
    if found.standing == INVALID and found.invalid is not None:
        exc = found.invalid
        log = (
            "error",
            "task definition tag is invalid; no revision registered",
            {"tag": exc.tag, "reason": exc.reason},
        )
        return NextStep(Step.IGNORE, f"rejected: {exc}", log, rejected="invalid-tag")
    if found.standing == UNTAGGED:
        return NextStep(Step.IGNORE, "ignored: not tagged for EFS")
    if found.standing == MOUNTS and found.mount is not None:
        return NextStep(Step.IGNORE, f"ignored: already mounts {found.mount.file_system_id}")
    if found.standing == NO_ACTIVE:
        log = ("warning", "the family has no active revision; no revision registered", {})
        return NextStep(Step.IGNORE, "ignored: the family has no active revision", log)
    if found.standing == "rewritten":
        return NextStep(Step.FINISH)
    if found.standing == "rewritten-earlier":
        # Done, never rewritten again; but its constraint ignores the host path: no service is moved to it.
        message = (
            "the family's latest is an earlier release's rewrite (its constraint ignores the host path); "
            "no follow-ups: register the source again"
        )
        outcome = f"ignored: already rewritten as {latest} by an earlier release; services are not moved to it"
        return NextStep(Step.IGNORE, outcome, ("warning", message, {"latest": latest}))
    if found.standing == "in-flight":
        # Lambda delivers the event again (1 and 2 minutes later): by then the older rewrite is gone.
        return NextStep(
            Step.RETRY, f"{latest} (the rewrite of an older revision) is briefly the family's latest; retried"
        )
    if found.standing == "forged":
        message = "the family's latest revision names this one as its source but is not its rewrite; no follow-ups"
        outcome = f"ignored: {latest} is tagged as its rewrite but forged; repair reports it"
        return NextStep(Step.IGNORE, outcome, ("error", message, {"latest": latest}), rejected="forged-rewrite")
    if found.standing == "superseded":
        message = "task definition superseded by a newer revision of its family; not rewritten, repair reports it"
        log = ("warning", message, {"superseded_by": latest})
        return NextStep(Step.IGNORE, f"ignored: superseded by {latest}", log, rejected="superseded")
    if found.standing == "latest":
        return NextStep(Step.REGISTER)
    raise ValueError(f"no step follows from the standing {found.standing!r}")

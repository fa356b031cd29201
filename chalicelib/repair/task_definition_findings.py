"""What is wrong with a revision tagged for EFS that services of the cluster run, and which fix follows (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from chalicelib.mount.attribute import legacy_placement_expression


class TaskDefinitionFix(Enum):
    NOTHING = "nothing"
    REGISTER = "register"
    UPDATE_SERVICES = "update services"


@dataclass(frozen=True)
class TaskDefinitionFindings:
    problems: tuple[str, ...]
    fix: TaskDefinitionFix


def task_definition_findings(
    services: list[str],
    mounts_file_system: bool,
    standing: str | None,
    latest_arn: str | None,
    update_services: bool,
) -> TaskDefinitionFindings:
    """What is wrong with a revision tagged for EFS that services of the cluster run, and the fix.

    `standing` and `latest_arn` are the task definition flow's own verdict (`TaskDefinitionFlow.standing`): None
    when the family has no ACTIVE revision, else "latest", "rewritten" (the latest is its rewrite), "in-flight"
    (the latest is the rewrite of an older revision, for the moment a release takes to overtake it), "superseded",
    "rewritten-earlier" (the latest is an earlier release's rewrite, with the constraint that ignores the path),
    or "forged" (the latest carries the source tag naming it but is not the rewrite `is_rewrite_of` rebuilds).
    """
    if mounts_file_system:
        return TaskDefinitionFindings((), TaskDefinitionFix.NOTHING)
    if standing is None:
        return TaskDefinitionFindings(("its family has no ACTIVE revision: not rewritten",), TaskDefinitionFix.NOTHING)
    running = f"service{'s' if len(services) > 1 else ''} {', '.join(sorted(services))}"
    if standing == "rewritten":
        problem = f"{running} still run{'' if len(services) > 1 else 's'} it, not its rewrite {latest_arn}"
        if update_services:
            return TaskDefinitionFindings((problem,), TaskDefinitionFix.UPDATE_SERVICES)
        advice = "UPDATE_SERVICES is off: update the service to the rewrite, or turn the setting on"
        return TaskDefinitionFindings((problem, advice), TaskDefinitionFix.NOTHING)
    if standing == "rewritten-earlier":
        problem = (
            f"{running} still run{'' if len(services) > 1 else 's'} it; its rewrite {latest_arn} is an earlier "
            "release's, whose constraint ignores the host path: no service is moved to it; register the source "
            "again (same tags)"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    if standing == "forged":
        problem = (
            f"the family's latest {latest_arn} names it in efs-automount:source but is not the app's rewrite of it: "
            "no service is moved to it; check who registered it"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    if standing == "superseded":
        problem = (
            f"superseded by {latest_arn}, which is not its rewrite: not rewritten, "
            "because the app never makes an older definition the family's latest"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    if standing == "in-flight":
        problem = (
            f"{latest_arn}, the rewrite of an older revision, is the family's latest for the moment: run repair again"
        )
        return TaskDefinitionFindings((problem,), TaskDefinitionFix.NOTHING)
    problem = "tagged for EFS but never rewritten (its RegisterTaskDefinition event was missed)"
    return TaskDefinitionFindings((problem,), TaskDefinitionFix.REGISTER)


def legacy_constraint_problem(definition: dict[str, Any], file_system_id: str) -> str | None:
    """The problem with a revision whose placement constraint is the one releases before the path-id added
    (`attribute:efs-automount.<fs> exists`): it lets tasks onto hosts mounted at any path, and hosts mounted from
    now on carry only the attribute named after their path, so its tasks find ever fewer hosts. It is a rewrite
    already, never rewritten again: the user registers its source anew. None for any other revision."""
    expression = legacy_placement_expression(file_system_id)
    if not any(c.get("expression") == expression for c in definition.get("placementConstraints") or []):
        return None
    return (
        f"its placement constraint {expression} is an earlier release's: it ignores the host path, and only hosts "
        "mounted before the upgrade carry that attribute; register its source again (same tags) for a rewrite that "
        "asks for the mount at its host path"
    )

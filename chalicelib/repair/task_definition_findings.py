"""What is wrong with a revision tagged for EFS that services of the cluster run, and what repair does about it
(pure). Where the revision stands is the rewrite flow's own verdict (`task_definitions.standing`), so that repair,
dry run or not, classifies a revision as the event handler does."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from chalicelib.mount.attribute import legacy_placement_expression
from chalicelib.mount.spec import FILE_SYSTEM_TAG
from chalicelib.repair.findings import Act, Plan
from chalicelib.task_definitions.standing import FAMILY, INVALID, MOUNTS, NO_ACTIVE, OURS, UNTAGGED, RevisionStanding


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


def revision_findings(
    services: list[str],
    definition: dict[str, Any],
    tags: dict[str, str],
    found: RevisionStanding,
    update_services: bool,
) -> TaskDefinitionFindings | None:
    """What is wrong with a revision the services run, from where it stands (`found`: `standing_from_tags`, then,
    when the family decides, `TaskDefinitionFlow.standing`'s verdict). None when it is not tagged for EFS: it is
    left out of the report."""
    if FILE_SYSTEM_TAG not in tags or found.standing == UNTAGGED:
        return None
    legacy = legacy_constraint_problem(definition, tags[FILE_SYSTEM_TAG])
    problems = (legacy,) if legacy is not None else ()
    if found.standing == OURS:
        return TaskDefinitionFindings(problems, TaskDefinitionFix.NOTHING)  # a revision the app registered
    if found.standing == INVALID:
        invalid = f"tag is invalid, so it is never rewritten: {found.invalid}"
        return TaskDefinitionFindings((*problems, invalid), TaskDefinitionFix.NOTHING)
    if found.standing == FAMILY:
        raise ValueError("the family's latest revision decides: read it first")
    standing = None if found.standing in (MOUNTS, NO_ACTIVE) else found.standing
    findings = task_definition_findings(services, found.standing == MOUNTS, standing, found.latest_arn, update_services)
    return TaskDefinitionFindings((*problems, *findings.problems), findings.fix)


def service_update_plan(service: str, latest_arn: str, dry_run: bool) -> Plan:
    """A service left on the source, moved to its rewrite (the family's latest)."""
    if dry_run:
        return Plan(actions=(f"would update service {service} to {latest_arn}",))
    return Plan(actions=(f"service {service} updated to {latest_arn}",), act=Act.UPDATE_SERVICE)


def register_plan(dry_run: bool) -> Plan:
    """A missed rewrite, registered through the rewrite flow (exactly once, with its follow-ups)."""
    if dry_run:
        return Plan(actions=("would register the next revision with the EFS volume",))
    return Plan(act=Act.REGISTER)


def after_registering(outcome: str) -> Plan:
    """The rewrite flow's answer: registered; refused (an error: a field it cannot carry, a clash); or not rewritten
    after all (decided meanwhile)."""
    if outcome.startswith("registered "):
        return Plan(actions=(outcome,))
    if outcome.startswith("rejected: "):
        return Plan(error=outcome)
    return Plan((f"not rewritten: {outcome}",))

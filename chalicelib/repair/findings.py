"""Repair's report (CONTRACT "The repair function"): its items, errors and summary, and the Plan a decision makes
for an item: what the report says of it and what repair does. Plain data in, plain data out."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Act(Enum):
    """A change repair makes (never in a dry run), each through the handlers' own code."""

    COMPLETE = "complete our lifecycle action CONTINUE"
    DRIVE = "drive the launch step"
    SET_ATTRIBUTE = "set the mount attribute"
    SEND_MOUNT = "send the mount command"
    UPDATE_SERVICE = "update the service"
    REGISTER = "register the next revision"


@dataclass(frozen=True)
class Plan:
    """What the report says of an item and what repair does: `problems` go in before it acts, `actions` once its
    act is done (in a dry run, with no act, what it would do). `error`: an entry for the report's errors."""

    problems: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    act: Act | None = None
    error: str | None = None


def record(item: dict[str, Any], plan: Plan) -> None:
    """What the plan says, in the item's report."""
    item["problems"] += plan.problems
    item["actions"] += plan.actions


def new_report(
    cluster: str | None, auto_scaling_group: str | None, account: str, region: str, dry_run: bool
) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "auto_scaling_group": auto_scaling_group,
        "account": account,
        "region": region,
        "dry_run": dry_run,
        "groups": [],
        "instances": [],
        "lifecycle_actions": [],
        "task_definitions": [],
        "errors": [],
        "stopped": None,
    }


def instance_item(instance_id: str, group_name: str) -> dict[str, Any]:
    """A host in service; its container instance is filled in once ECS reports it."""
    return {
        "instance_id": instance_id,
        "auto_scaling_group": group_name,
        "container_instance": None,
        "problems": [],
        "actions": [],
    }


def lifecycle_item(instance_id: str, group_name: str) -> dict[str, Any]:
    """A host waiting on a launch hook."""
    return {"instance_id": instance_id, "auto_scaling_group": group_name, "problems": [], "actions": []}


def task_definition_item(arn: str, services: list[str]) -> dict[str, Any]:
    """A revision the cluster's services run; its family is taken from the ARN until ECS describes it."""
    return {
        "family": arn.rsplit("/", 1)[-1].rsplit(":", 1)[0],
        "task_definition": arn,
        "services": sorted(services),
        "problems": [],
        "actions": [],
    }


def stopped(where: str) -> dict[str, str]:
    """Why the run stopped before its time ran out, and how to go on."""
    return {
        "where": where,
        "how_to_go_on": "invoke repair again with the same input: what was fixed is now found fine and "
        "skipped quickly; or narrow it with `auto_scaling_group`",
    }


def summarize(report: dict[str, Any]) -> dict[str, int]:
    items = report.get("groups", []) + report["instances"] + report["lifecycle_actions"] + report["task_definitions"]
    return {
        "examined": len(items),
        "with_problems": sum(1 for item in items if item["problems"]),
        "actions": sum(len(item["actions"]) for item in items),
        "errors": len(report["errors"]),
    }

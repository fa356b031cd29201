"""Repair's report: its items, errors and summary (CONTRACT "The repair function"). Plain data in, plain data out."""

from __future__ import annotations

from typing import Any


def summarize(report: dict[str, Any]) -> dict[str, int]:
    items = report.get("groups", []) + report["instances"] + report["lifecycle_actions"] + report["task_definitions"]
    return {
        "examined": len(items),
        "with_problems": sum(1 for item in items if item["problems"]),
        "actions": sum(len(item["actions"]) for item in items),
        "errors": len(report["errors"]),
    }

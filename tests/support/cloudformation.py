"""Reading the CloudFormation templates as CloudFormation would: the member template, its event rules, and
which conditions hold for given parameter values."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import ROOT

MEMBER_TEMPLATE_PATH = ROOT / "deploy" / "member-account.json"
MEMBER_TEMPLATE = json.loads(MEMBER_TEMPLATE_PATH.read_text())


def event_rules(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The template's EventBridge rules by logical id."""
    return {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}


def condition_holds(template: dict[str, Any], condition: Any, values: dict[str, str]) -> bool:
    """Evaluate a CloudFormation condition with the given parameter (and pseudo parameter) values."""

    def value(item: Any) -> Any:
        if isinstance(item, dict) and "Ref" in item:
            return values[item["Ref"]]
        return item

    if isinstance(condition, str):
        return condition_holds(template, template["Conditions"][condition], values)
    ((function, arguments),) = condition.items()
    if function == "Condition":
        return condition_holds(template, arguments, values)
    if function == "Fn::Equals":
        return value(arguments[0]) == value(arguments[1])
    if function == "Fn::Not":
        return not condition_holds(template, arguments[0], values)
    if function == "Fn::Or":
        return any(condition_holds(template, c, values) for c in arguments)
    if function == "Fn::And":
        return all(condition_holds(template, c, values) for c in arguments)
    raise AssertionError(f"cannot evaluate {function}")

"""Operating the packaged app (`make package`): the organization's grant on the app's bus, the alarms an on-call
engineer is paged by, each watching exactly what the code emits, and the dashboard they look at first."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout
from typing import Any

from chalicelib.plumbing import observability
from tests.support.cloudformation import MEMBER_TEMPLATE, condition_holds, event_rules

# Every function app.py declares must be among those tools/build_deploy.py alarms on and trusts.
from tools.build_deploy import FUNCTIONS  # noqa: E402


def _defaults(template: dict[str, Any], **values: str) -> dict[str, str]:
    return {**{p: d.get("Default", "") for p, d in template["Parameters"].items()}, **values}


# The organization's grant


def test_an_organization_id_lets_every_member_account_forward_exactly_what_the_app_acts_on(packaged):
    policy = packaged["Resources"]["OrganizationBusPolicy"]
    assert policy["Type"] == "AWS::Events::EventBusPolicy"
    # Given no OrganizationId, the bus keeps its policy: nothing granted
    assert not condition_holds(packaged, policy["Condition"], _defaults(packaged))
    assert condition_holds(packaged, policy["Condition"], _defaults(packaged, OrganizationId="o-a1b2c3d4e5"))
    properties = policy["Properties"]
    assert properties["EventBusName"] == "default"
    statement = properties["Statement"]
    # Then any account of that organization, and no other, may put events on the default bus
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == ("Allow", "*", "events:PutEvents")
    assert statement["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == {"Ref": "OrganizationId"}
    # But only events shaped like the ones the member template forwards: no other rule of the app's account sees
    # what a member account makes up under another source or detail type.
    patterns = [rule["Properties"]["EventPattern"] for rule in event_rules(MEMBER_TEMPLATE).values()]
    sources = sorted({s for p in patterns for s in p["source"]})
    detail_types = sorted({t for p in patterns for t in p["detail-type"]})
    assert sorted(statement["Condition"]["ForAllValues:StringEquals"]["events:source"]) == sources
    assert sorted(statement["Condition"]["StringEquals"]["events:detail-type"]) == detail_types
    assert re.fullmatch(packaged["Parameters"]["OrganizationId"]["AllowedPattern"], "o-a1b2c3d4e5")
    assert not re.fullmatch(packaged["Parameters"]["OrganizationId"]["AllowedPattern"], "*")


# Alarms


def _emitted(name: str, **dimensions: str) -> tuple[str, str, dict[str, str]]:
    """(namespace, metric, dimensions) of the EMF line the app writes when it counts `name`."""
    out = io.StringIO()
    with redirect_stdout(out):
        observability.count(name, **dimensions)
        if not dimensions:
            observability.metrics.flush_metrics()
    (line,) = [json.loads(text) for text in out.getvalue().splitlines() if '"_aws"' in text]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    (keys,) = directive["Dimensions"]
    return directive["Namespace"], directive["Metrics"][0]["Name"], {key: line[key] for key in keys}


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: r["Properties"] for n, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def _watched(alarm: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
    return alarm["Namespace"], alarm["MetricName"], dimensions


def test_the_app_alarms_fire_on_exactly_the_metrics_the_code_emits(packaged):
    alarms = _alarms(packaged)
    watched = [_watched(a) for a in alarms.values() if "MetricName" in a]
    # A host thrown away, and a member account the app could not reach: each alarm on the metric as written.
    assert _emitted("HooksCompleted", Result="ABANDON") in watched
    assert _emitted("AssumeRoleFailures") in watched
    # Mount failures under every reason, present and future: one Metrics Insights query over the metric's schema.
    namespace, name, dimensions = _emitted("MountsFailed", Reason="timeout")
    (query,) = [q for a in alarms.values() for q in a.get("Metrics", []) if name in q.get("Expression", "")]
    schema = re.fullmatch(r'SELECT SUM\((\w+)\) FROM SCHEMA\("([^"]+)", ([\w, ]+)\)', query["Expression"])
    assert schema, query["Expression"]
    assert (schema[2], schema[1]) == (namespace, name)
    assert sorted(schema[3].split(", ")) == sorted(dimensions)
    for alarm in alarms.values():
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0, alarm["AlarmName"]
        assert alarm["TreatMissingData"] == "notBreaching", alarm["AlarmName"]


def test_a_message_in_the_dead_letter_queue_raises_an_alarm(packaged):
    (alarm,) = [a for a in _alarms(packaged).values() if a.get("Namespace") == "AWS/SQS"]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["RetryDeadLetterQueue", "QueueName"]}}
    ]


def test_every_function_has_an_errors_and_a_throttles_alarm(packaged):
    resources = packaged["Resources"]
    functions = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert sorted(functions) == sorted(FUNCTIONS)
    lambda_alarms = {
        (a["MetricName"], json.dumps(a["Dimensions"][0]["Value"]))
        for a in _alarms(packaged).values()
        if a.get("Namespace") == "AWS/Lambda"
    }
    expected = {
        (metric, json.dumps(resources[f]["Properties"]["FunctionName"]))
        for f in functions
        for metric in ("Errors", "Throttles")
    }
    assert lambda_alarms == expected


def test_alarms_notify_the_topic_only_when_one_is_given(packaged):
    assert packaged["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert not condition_holds(packaged, "HasAlarmTopic", _defaults(packaged))
    assert condition_holds(packaged, "HasAlarmTopic", _defaults(packaged, AlarmTopicArn="arn:aws:sns:us-east-1:1:t"))
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    alarms = _alarms(packaged)
    assert len(alarms) == 5 + 2 * len(FUNCTIONS)
    assert "ConfigurationProblemsAlarm" in alarms  # the hourly checks' ConfigurationProblems, any Rule
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == notify and alarm["OKActions"] == notify, alarm["AlarmName"]
        assert alarm["AlarmDescription"], alarm["AlarmName"]


def test_the_dashboard_shows_the_alarms_and_the_first_metrics_on_call_looks_at(packaged):
    (dashboard,) = [r for r in packaged["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body, variables = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    # The body is JSON once CloudFormation has substituted its variables.
    text = re.sub(r"\$\{[^}]+\}", "x", body)
    widgets = json.loads(text)["widgets"]
    (alarm_widget,) = [w for w in widgets if w["type"] == "alarm"]
    assert len(alarm_widget["properties"]["alarms"]) == len(_alarms(packaged))
    shown = json.dumps([w["properties"].get("metrics", []) for w in widgets])
    for metric in ("MountsFailed", "HooksCompleted", "MountsSucceeded", "RetriesQueued", "AssumeRoleFailures"):
        assert metric in shown, metric
    assert "ApproximateNumberOfMessagesVisible" in shown and "ApproximateAgeOfOldestMessage" in shown
    assert '"Errors"' in shown and '"Throttles"' in shown
    # Every variable the body names is defined for the substitution.
    assert set(re.findall(r"\$\{([^}]+)\}", body)) <= set(variables) | {"AWS::Region", "AWS::StackName"}

"""What the packaged template adds for running the app: the organization's grant on the app's bus, the alarms and
the dashboard (docs/operations.md#alarms). tools/build_deploy.py merges them into deploy/app-resources.json.

The app's own metrics are Powertools EMF lines (chalicelib/plumbing/observability.py): namespace EfsAutomount,
the dimension `service` on every metric, and a metric's own dimension (Result, Reason) beside it when it has one.
"""

from __future__ import annotations

import json
from typing import Any

NAMESPACE = "EfsAutomount"
SERVICE = "efs-automount"
NOTIFY = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
FIVE_MINUTES = 300
# Every MountsFailed series whatever its Reason, today's and tomorrow's: a CloudWatch Metrics Insights query, which an
# alarm takes as its expression. A constant: nothing of it comes from input.
MOUNTS_FAILED_QUERY = f'SELECT SUM(MountsFailed) FROM SCHEMA("{NAMESPACE}", Reason, service)'  # noqa: S608
# Every ConfigurationProblems series whatever its Rule (the hourly checks): the same kind of query.
CONFIGURATION_PROBLEMS_QUERY = f'SELECT SUM(ConfigurationProblems) FROM SCHEMA("{NAMESPACE}", Rule, service)'  # noqa: S608
ONE_HOUR = 3600


def conditions() -> dict[str, Any]:
    """The conditions on the parameters OrganizationId and AlarmTopicArn (tools/stack_parameters.py)."""
    return {
        "HasOrganization": {"Fn::Not": [{"Fn::Equals": [{"Ref": "OrganizationId"}, ""]}]},
        "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]},
    }


def organization_bus_policy(patterns: list[dict[str, Any]]) -> dict[str, Any]:
    """Every account of the organization may put events on the default bus, of the sources and detail types the
    member template forwards only (`patterns`). One statement of the bus policy: the bus's other statements stay."""
    return {
        "OrganizationBusPolicy": {
            "Type": "AWS::Events::EventBusPolicy",
            "Condition": "HasOrganization",
            "Properties": {
                "EventBusName": "default",
                "StatementId": {"Fn::Sub": "${AWS::StackName}-organization"},
                "Statement": {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "events:PutEvents",
                    "Resource": {
                        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
                    },
                    "Condition": {
                        "StringEquals": {
                            "aws:PrincipalOrgID": {"Ref": "OrganizationId"},
                            "events:detail-type": sorted({t for p in patterns for t in p["detail-type"]}),
                        },
                        "ForAllValues:StringEquals": {
                            "events:source": sorted({s for p in patterns for s in p["source"]})
                        },
                    },
                },
            },
        }
    }


def _alarm(name: str, description: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": {"Fn::Sub": f"${{AWS::StackName}}-{name}"},
            "AlarmDescription": description,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "EvaluationPeriods": 1,
            # No data is good news: the metrics are written only when something happens.
            "TreatMissingData": "notBreaching",
            "AlarmActions": NOTIFY,
            "OKActions": NOTIFY,
            **properties,
        },
    }


def _app_metric(metric: str, **dimensions: str) -> dict[str, Any]:
    return {
        "Namespace": NAMESPACE,
        "MetricName": metric,
        "Dimensions": [{"Name": "service", "Value": SERVICE}]
        + [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Statistic": "Sum",
        "Period": FIVE_MINUTES,
    }


def alarms(functions: dict[str, Any]) -> dict[str, Any]:
    """`functions`: logical id -> the function's name as the template writes it."""
    resources = {
        "DeadLetterQueueAlarm": _alarm(
            "dead-letter-queue",
            "Retry messages failed 5 times and were set aside. The sweeper still re-reads every waiting host; "
            "read the messages and the on_retry logs. Runbook: docs/operations.md#dead-letter-queue",
            Namespace="AWS/SQS",
            MetricName="ApproximateNumberOfMessagesVisible",
            Dimensions=[{"Name": "QueueName", "Value": {"Fn::GetAtt": ["RetryDeadLetterQueue", "QueueName"]}}],
            Statistic="Maximum",
            Period=FIVE_MINUTES,
        ),
        "MountsFailedAlarm": _alarm(
            "mounts-failed",
            "Mounting failed for good on a host (any Reason): it was completed with its failure result. "
            "The log line 'mount failed for good' names the host and why. Runbook: docs/operations.md#mounts-failed",
            Metrics=[
                {
                    "Id": "failed",
                    "Expression": MOUNTS_FAILED_QUERY,
                    "Period": FIVE_MINUTES,
                    "ReturnData": True,
                }
            ],
        ),
        "ConfigurationProblemsAlarm": _alarm(
            "configuration-problems",
            "The hourly checks found what will make the next mount of a group fail (dimension Rule: the rule id). "
            "The log line 'configuration problem' names the group and the resource to fix; repair reports the "
            "same in `groups`. Runbook: docs/operations.md#configuration-problems",
            Metrics=[
                {
                    "Id": "problems",
                    "Expression": CONFIGURATION_PROBLEMS_QUERY,
                    "Period": ONE_HOUR,
                    "ReturnData": True,
                }
            ],
        ),
        "HostsAbandonedAlarm": _alarm(
            "hosts-abandoned",
            "The app completed a launch with ABANDON: Auto Scaling terminates the host and launches another, "
            "which may fail the same way. Runbook: docs/operations.md#hosts-abandoned",
            **_app_metric("HooksCompleted", Result="ABANDON"),
        ),
        "AssumeRoleFailuresAlarm": _alarm(
            "assume-role-failures",
            "The app could not assume a member account's role: that account's hosts wait until the hook times out "
            "(runbook: docs/operations.md#assume-role-failures).",
            **_app_metric("AssumeRoleFailures"),
        ),
    }
    for function, name in functions.items():
        dimensions = [{"Name": "FunctionName", "Value": name}]
        resources[f"{function}ErrorsAlarm"] = _alarm(
            f"{function}-errors",
            f"{function} failed in 2 of the last 3 five-minute periods: Lambda retries events, the sweeper "
            "retries hosts, but a lasting error is a bug or a missing permission. "
            "Runbook: docs/operations.md#function-errors",
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Dimensions=dimensions,
            Statistic="Sum",
            Period=FIVE_MINUTES,
            EvaluationPeriods=3,
            DatapointsToAlarm=2,
        )
        resources[f"{function}ThrottlesAlarm"] = _alarm(
            f"{function}-throttles",
            f"Lambda throttled {function}: the account's concurrency is exhausted, and launches wait. "
            "Runbook: docs/operations.md#function-throttles",
            Namespace="AWS/Lambda",
            MetricName="Throttles",
            Dimensions=dimensions,
            Statistic="Sum",
            Period=FIVE_MINUTES,
        )
    return resources


def dashboard(functions: dict[str, Any], alarm_ids: list[str]) -> dict[str, Any]:
    """The dashboard `${AWS::StackName}`: alarms first, then hosts, retries, member accounts, task definitions and
    the functions."""
    variables = {f"{alarm}Arn": {"Fn::GetAtt": [alarm, "Arn"]} for alarm in alarm_ids}
    variables.update({f"{function}Name": name for function, name in functions.items()})
    variables["DeadLetterQueueName"] = {"Fn::GetAtt": ["RetryDeadLetterQueue", "QueueName"]}
    variables["RetryQueueName"] = {"Fn::GetAtt": ["RetryQueue", "QueueName"]}

    def app(metric: str, *dimensions: str) -> list[str]:
        return [NAMESPACE, metric, "service", SERVICE, *dimensions]

    def search(metric: str, dimension: str) -> dict[str, str]:
        schema = f"{{{NAMESPACE},{dimension},service}}"
        return {"expression": f"SEARCH('{schema} MetricName=\"{metric}\"', 'Sum', 300)", "label": metric}

    def graph(title: str, metrics: list[Any], width: int = 8) -> dict[str, Any]:
        return {
            "type": "metric",
            "width": width,
            "height": 6,
            "properties": {
                "title": title,
                "region": "${AWS::Region}",
                "stat": "Sum",
                "period": 300,
                "metrics": metrics,
            },
        }

    widgets = [
        {
            "type": "alarm",
            "width": 24,
            "height": 4,
            "properties": {"title": "efs-automount alarms", "alarms": [f"${{{a}Arn}}" for a in alarm_ids]},
        },
        graph(
            "Hosts: mounts and launch results",
            [
                app("MountCommandsSent"),
                app("MountsSucceeded"),
                [search("MountsFailed", "Reason")],
                app("HooksCompleted", "Result", "CONTINUE"),
                app("HooksCompleted", "Result", "ABANDON"),
            ],
        ),
        graph(
            "Retries: scheduled, queued, set aside",
            [
                [search("RetriesQueued", "Reason")],
                app("HeartbeatsRecorded"),
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    "${RetryQueueName}",
                    {"stat": "Maximum"},
                ],
                ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "${RetryQueueName}", {"stat": "Maximum"}],
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    "${DeadLetterQueueName}",
                    {"stat": "Maximum"},
                ],
                app("SweepErrors"),
            ],
        ),
        graph(
            "Events and member accounts",
            [[search("EventsRejected", "Reason")], app("AssumeRoleFailures")],
        ),
        graph("Configuration problems, by rule (hourly checks)", [[search("ConfigurationProblems", "Rule")]]),
        graph(
            "Task definitions",
            [app("TaskDefinitionsRewritten"), [search("TaskDefinitionsRejected", "Reason")], app("ServicesUpdated")],
        ),
        graph(
            "Functions: errors and throttles",
            [
                ["AWS/Lambda", metric, "FunctionName", f"${{{function}Name}}"]
                for function in functions
                for metric in ("Errors", "Throttles")
            ],
            width=16,
        ),
    ]
    return {
        "OperationsDashboard": {
            "Type": "AWS::CloudWatch::Dashboard",
            "Properties": {
                "DashboardName": {"Fn::Sub": "${AWS::StackName}"},
                "DashboardBody": {"Fn::Sub": [json.dumps({"widgets": widgets}), variables]},
            },
        }
    }


def operations_resources(functions: dict[str, Any], patterns: list[dict[str, Any]]) -> dict[str, Any]:
    alarm_resources = alarms(functions)
    return {
        **organization_bus_policy(patterns),
        **alarm_resources,
        **dashboard(functions, list(alarm_resources)),
    }

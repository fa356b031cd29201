"""The packaged app as CloudFormation creates it (`make package`, the SAM transform, `create-stack`), read back from
the created stack rather than from the template: the functions, their rules, permissions and queue, wired as the code
needs them (issue 18, finding 5: a function that schedules retries but could not send them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.app import CloudWatchEventConfig, ScheduledEventConfig, SQSEventConfig
from moto import mock_aws

from app import app
from simulation import deployed_stack
from simulation import packaged as packaged_settings
from tools.build_deploy import logical_id, retry_senders

REGION = "us-east-1"


def _read_back(session: Any, stack_id: str) -> dict[str, Any]:
    """What the stack created, as AWS reports it: each function's configuration and resource policy, each rule's
    pattern and targets, the retry queue's URL, ARN and policy, the event source mappings."""
    cloudformation, lambda_, events, sqs = (session.client(s) for s in ("cloudformation", "lambda", "events", "sqs"))
    resources = cloudformation.list_stack_resources(StackName=stack_id)["StackResourceSummaries"]
    by_type: dict[str, dict[str, str]] = {}
    for resource in resources:
        by_type.setdefault(resource["ResourceType"], {})[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
    functions = {}
    for logical, name in by_type["AWS::Lambda::Function"].items():
        configuration = lambda_.get_function_configuration(FunctionName=name)
        try:
            policy = json.loads(lambda_.get_policy(FunctionName=name)["Policy"])["Statement"]
        except lambda_.exceptions.ResourceNotFoundException:
            policy = []
        functions[logical] = {
            "arn": configuration["FunctionArn"],
            "role": configuration["Role"],
            "variables": configuration.get("Environment", {}).get("Variables", {}),
            "timeout": configuration["Timeout"],
            "memory": configuration["MemorySize"],
            "permissions": policy,
            "mappings": lambda_.list_event_source_mappings(FunctionName=name)["EventSourceMappings"],
        }
    rules = {}
    for logical, name in by_type["AWS::Events::Rule"].items():
        rule = events.describe_rule(Name=name)
        rules[logical] = {
            "arn": rule["Arn"],
            "pattern": json.loads(rule["EventPattern"]) if "EventPattern" in rule else None,
            "schedule": rule.get("ScheduleExpression"),
            "targets": [t["Arn"] for t in events.list_targets_by_rule(Rule=name)["Targets"]],
        }
    queue_url = by_type["AWS::SQS::Queue"]["RetryQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return {
        "functions": functions,
        "made": {"RetryQueue": queue_url, "IdempotencyTable": by_type["AWS::DynamoDB::Table"]["IdempotencyTable"]},
        "rules": rules,
        "queue": {
            "url": queue_url,
            "arn": attributes["QueueArn"],
            "policy": json.loads(attributes.get("Policy", "{}")),
        },
        "queue_arns": {
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in sqs.list_queues().get("QueueUrls", [])
        },
    }


@pytest.fixture(scope="module")
def deployed(packaged: dict[str, Any]) -> dict[str, Any]:
    """The packaged template created once, with the defaults `aws cloudformation deploy` takes, in a moto of its
    own (the tests' moto is reset for each test)."""
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        return _read_back(session, deployed_stack.create_stack(session, packaged))


def _handlers() -> dict[str, Any]:
    """app.py's event sources by the packaged function's logical id."""
    return {logical_id(source.name): source for source in app.event_sources}


def test_every_function_that_can_schedule_a_retry_has_the_queue_and_may_send_to_it(deployed):
    functions, queue = deployed["functions"], deployed["queue"]
    senders = set(retry_senders())
    assert senders, "no function schedules retries"
    (statement,) = queue["policy"]["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == (
        "Deny",
        "sqs:SendMessage",
        queue["arn"],
    )
    allowed = set(statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
    for name, function in functions.items():
        if name in senders:
            assert function["variables"].get("RETRY_QUEUE_URL") == queue["url"], f"{name} does not know the queue"
            assert function["role"] in allowed, f"the queue's policy denies {name}'s SendMessage"
        else:
            # A function that is given the URL but not allowed would fail every send.
            assert "RETRY_QUEUE_URL" not in function["variables"], name
            assert function["role"] not in allowed, f"{name} may send retries it never schedules"


def test_every_rule_applies_its_handlers_pattern_and_invokes_only_it(deployed):
    functions, rules = deployed["functions"], deployed["rules"]
    targeted: dict[str, list[dict[str, Any]]] = {}
    for rule in rules.values():
        (target,) = rule["targets"]
        (function,) = [name for name, f in functions.items() if f["arn"] == target]
        targeted.setdefault(function, []).append(rule)
    handlers = _handlers()
    for name, source in handlers.items():
        if isinstance(source, CloudWatchEventConfig):
            (rule,) = targeted.pop(name)
            assert rule["pattern"] == source.event_pattern, name
        elif isinstance(source, ScheduledEventConfig):
            (rule,) = targeted.pop(name)
            assert rule["schedule"] == source.schedule_expression.to_string(), name
    assert targeted == {}, "rules no handler of app.py declares"


def test_each_function_may_be_invoked_by_its_own_rule_only(deployed):
    functions, rules = deployed["functions"], deployed["rules"]
    for name, function in functions.items():
        own = sorted(rule["arn"] for rule in rules.values() if rule["targets"] == [function["arn"]])
        sources = []
        for permission in function["permissions"]:
            assert permission["Principal"] == {"Service": "events.amazonaws.com"}, name
            assert permission["Action"] == "lambda:InvokeFunction", name
            sources.append(permission["Condition"]["ArnLike"]["AWS:SourceArn"])
        assert sorted(sources) == own, name


def test_the_retry_queue_feeds_its_subscriber(deployed):
    functions, queue = deployed["functions"], deployed["queue"]
    subscribers = [name for name, source in _handlers().items() if isinstance(source, SQSEventConfig)]
    assert subscribers == ["OnRetry"]
    for name, function in functions.items():
        mappings = function["mappings"]
        if name not in subscribers:
            assert mappings == [], name
            continue
        (mapping,) = mappings
        assert mapping["EventSourceArn"] in deployed["queue_arns"], "the mapping's queue does not exist"
        assert mapping["EventSourceArn"] == queue["arn"]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_created_functions_take_the_configured_settings(deployed):
    config = json.loads((Path(__file__).parent.parent / ".chalice" / "config.json").read_text())
    functions = deployed["functions"]
    assert functions["Repair"]["timeout"] == config["lambda_functions"]["repair"]["lambda_timeout"]
    assert functions["OnLaunch"]["timeout"] == config["lambda_timeout"]
    for function in functions.values():
        for variable, value in config["environment_variables"].items():
            if variable != "POWERTOOLS_LOG_LEVEL":
                assert function["variables"][variable] == value


def test_an_organizations_grant_is_on_the_apps_own_bus_only(packaged):
    # Given the app deployed with OrganizationId (issue 18, finding 7: members of every region forward to its region)
    session = boto3.Session(region_name=REGION)
    deployed_stack.create_stack(session, packaged, {"OrganizationId": "o-a1b2c3d4e5"})
    # Then the default bus of the app's region grants the organization, and no bus of another region does
    (statement,) = json.loads(session.client("events").describe_event_bus()["Policy"])["Statement"]
    account = session.client("sts").get_caller_identity()["Account"]
    assert statement["Resource"] == f"arn:aws:events:{REGION}:{account}:event-bus/default"
    assert statement["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == "o-a1b2c3d4e5"
    assert "Policy" not in boto3.Session(region_name="eu-central-1").client("events").describe_event_bus()


def test_the_simulation_and_bench_run_each_function_with_its_deployed_settings(deployed, packaged):
    # simulation/packaged.py reads the packaged template as the simulation and `make bench` use it; what it reads
    # is what the created stack gives each function, once the resources it refers to are the ones made.
    read = packaged_settings.function_settings(packaged, deployed["made"])
    handlers = {source.name for source in app.event_sources} | {"repair"}
    assert set(read) == handlers
    for name, settings in read.items():
        function = deployed["functions"][logical_id(name)]
        assert settings.environment == function["variables"], name
        assert (settings.timeout_s, settings.memory_mb) == (function["timeout"], function["memory"]), name

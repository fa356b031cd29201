"""The EventBridge events the app acts on: their patterns, and parsing into checked values.

Every field the app later passes to an AWS call is validated here, so no handler
calls AWS with data straight out of an event.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from typing import Any

from chalicelib.plumbing.names import (
    ACCOUNT_ID,
    CLUSTER_ARN,
    CONTAINER_INSTANCE_ARN,
    GROUP_NAME,
    HOOK_NAME,
    INSTANCE_ID,
    REGION,
    TASK_DEFINITION_ARN,
    TASK_DEFINITION_FAMILY,
    UUID,
)

LAUNCH_DETAIL_TYPE = "EC2 Instance-launch Lifecycle Action"
LAUNCH_TRANSITION = "autoscaling:EC2_INSTANCE_LAUNCHING"
TEST_NOTIFICATION = "autoscaling:TEST_NOTIFICATION"
COMMAND_STATUS_DETAIL_TYPE = "EC2 Command Invocation Status-change Notification"
CONTAINER_INSTANCE_DETAIL_TYPE = "ECS Container Instance State Change"
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
# The statuses after which SSM does nothing more with an invocation.
FINAL_COMMAND_STATUSES = ("Success", "Failed", "TimedOut", "Cancelled")


def launch_pattern(hook_name: str) -> dict[str, Any]:
    """Launch actions of our hook; warm-pool launches included, test notifications not."""
    return {
        "source": ["aws.autoscaling"],
        "detail-type": [LAUNCH_DETAIL_TYPE],
        "detail": {"LifecycleHookName": [hook_name], "LifecycleTransition": [LAUNCH_TRANSITION]},
    }


def command_status_pattern(document_name: str) -> dict[str, Any]:
    """Final statuses of invocations of our mount document: the document name marks a command as ours."""
    return {
        "source": ["aws.ssm"],
        "detail-type": [COMMAND_STATUS_DETAIL_TYPE],
        "detail": {"document-name": [document_name], "status": list(FINAL_COMMAND_STATUSES)},
    }


def container_instance_pattern() -> dict[str, Any]:
    """Container instances that are registered and active (registration and re-registration included)."""
    return {
        "source": ["aws.ecs"],
        "detail-type": [CONTAINER_INSTANCE_DETAIL_TYPE],
        "detail": {"status": ["ACTIVE"]},
    }


def task_definition_registered_pattern() -> dict[str, Any]:
    """Successful RegisterTaskDefinition calls recorded by CloudTrail. Tags are read from ECS, not matched
    here: CloudTrail may truncate or omit requestParameters."""
    return {
        "source": ["aws.ecs"],
        "detail-type": [CLOUDTRAIL_DETAIL_TYPE],
        "detail": {
            "eventSource": ["ecs.amazonaws.com"],
            "eventName": ["RegisterTaskDefinition"],
            "errorCode": [{"exists": False}],
        },
    }


class MalformedEvent(ValueError):
    """An event lacks a field the app needs, or a field has a value AWS would never send."""


class NotOurEvent(Exception):
    """A well-formed event that asks nothing of the app (a test notification, say)."""


@dataclass(frozen=True)
class EventOrigin:
    """Where an event happened: the account and region every call for it is made in."""

    account: str
    region: str


@dataclass(frozen=True)
class LaunchAction:
    origin: EventOrigin
    group_name: str
    hook_name: str
    instance_id: str
    token: str
    transition: str
    destination: str
    # When the event happened (epoch seconds), as near to the launch as the app can know it.
    time: float | None = None

    @property
    def into_warm_pool(self) -> bool:
        return self.destination == "WarmPool"


@dataclass(frozen=True)
class CommandStatus:
    origin: EventOrigin
    command_id: str
    instance_id: str
    document_name: str
    status: str


@dataclass(frozen=True)
class ContainerInstanceChange:
    origin: EventOrigin
    cluster_arn: str
    container_instance_arn: str
    # None for hosts that are not EC2 instances (ECS Anywhere): never ours to mount.
    instance_id: str | None
    attributes: dict[str, str | None]


@dataclass(frozen=True)
class TaskDefinitionRegistered:
    origin: EventOrigin
    # The registered revision's ARN, or its family when CloudTrail left the response out.
    reference: str


def _field(data: Any, key: str, pattern: re.Pattern[str], where: str) -> str:
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str):
        raise MalformedEvent(f"{where}{key} is missing or not a string")
    if not pattern.fullmatch(value):
        raise MalformedEvent(f"{where}{key}={value[:80]!r} does not match {pattern.pattern}")
    return value


def _detail(event: Any) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise MalformedEvent("the event is not a JSON object")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("detail is missing or not an object")
    return detail


def _event_time(event: dict[str, Any]) -> float | None:
    value = event.get("time")
    if not isinstance(value, str):
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def event_origin(event: Any) -> EventOrigin:
    if not isinstance(event, dict):
        raise MalformedEvent("the event is not a JSON object")
    return EventOrigin(account=_field(event, "account", ACCOUNT_ID, ""), region=_field(event, "region", REGION, ""))


def parse_launch_action(event: Any) -> LaunchAction:
    detail = _detail(event)
    if TEST_NOTIFICATION in (detail.get("LifecycleTransition"), detail.get("Event")):
        raise NotOurEvent("Auto Scaling test notification")
    destination = detail.get("Destination", "AutoScalingGroup")
    if destination not in ("AutoScalingGroup", "WarmPool"):
        raise MalformedEvent(f"detail.Destination={str(destination)[:40]!r} is neither AutoScalingGroup nor WarmPool")
    transition = detail.get("LifecycleTransition")
    if not isinstance(transition, str) or not transition.startswith("autoscaling:"):
        raise MalformedEvent("detail.LifecycleTransition is missing or not an autoscaling transition")
    return LaunchAction(
        origin=event_origin(event),
        group_name=_field(detail, "AutoScalingGroupName", GROUP_NAME, "detail."),
        hook_name=_field(detail, "LifecycleHookName", HOOK_NAME, "detail."),
        instance_id=_field(detail, "EC2InstanceId", INSTANCE_ID, "detail."),
        token=_field(detail, "LifecycleActionToken", UUID, "detail."),
        transition=transition,
        destination=destination,
        time=_event_time(event),
    )


def parse_command_status(event: Any) -> CommandStatus:
    detail = _detail(event)
    status = detail.get("status")
    if status not in FINAL_COMMAND_STATUSES:
        raise MalformedEvent(f"detail.status={str(status)[:40]!r} is not a final command status")
    document_name = detail.get("document-name")
    if not isinstance(document_name, str):
        raise MalformedEvent("detail.document-name is missing or not a string")
    return CommandStatus(
        origin=event_origin(event),
        command_id=_field(detail, "command-id", UUID, "detail."),
        instance_id=_field(detail, "instance-id", INSTANCE_ID, "detail."),
        document_name=document_name,
        status=status,
    )


def parse_container_instance_change(event: Any) -> ContainerInstanceChange:
    detail = _detail(event)
    raw_attributes = detail.get("attributes", [])
    if not isinstance(raw_attributes, list):
        raise MalformedEvent("detail.attributes is not a list")
    attributes = {
        item["name"]: item.get("value")
        for item in raw_attributes
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    }
    return ContainerInstanceChange(
        origin=event_origin(event),
        cluster_arn=_field(detail, "clusterArn", CLUSTER_ARN, "detail."),
        container_instance_arn=_field(detail, "containerInstanceArn", CONTAINER_INSTANCE_ARN, "detail."),
        instance_id=_field(detail, "ec2InstanceId", INSTANCE_ID, "detail.") if detail.get("ec2InstanceId") else None,
        attributes=attributes,
    )


def parse_task_definition_registered(event: Any) -> TaskDefinitionRegistered:
    detail = _detail(event)
    if detail.get("eventName") != "RegisterTaskDefinition" or detail.get("errorCode"):
        raise NotOurEvent("not a successful RegisterTaskDefinition call")
    origin = event_origin(event)
    response = detail.get("responseElements")
    definition = response.get("taskDefinition") if isinstance(response, dict) else None
    if isinstance(definition, dict) and definition.get("taskDefinitionArn") is not None:
        arn = _field(definition, "taskDefinitionArn", TASK_DEFINITION_ARN, "detail.responseElements.taskDefinition.")
        return TaskDefinitionRegistered(origin, arn)
    request = detail.get("requestParameters")
    family = _field(
        request if isinstance(request, dict) else {}, "family", TASK_DEFINITION_FAMILY, "detail.requestParameters."
    )
    return TaskDefinitionRegistered(origin, family)

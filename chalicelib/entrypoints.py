"""From a raw event to a flow: parse it, check its account, and drop what must be dropped, loudly.

A malformed event or an untrusted account is logged and counted, never raised: retrying
would not change it. Anything else that goes wrong is raised so that Lambda retries.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from chalice.app import CloudWatchEvent, EventSourceHandler

from chalicelib.plumbing.accounts import AssumeRoleFailed, AwsAccess, UntrustedAccount, aws_accounts
from chalicelib.plumbing.events import (
    EventOrigin,
    MalformedEvent,
    NotOurEvent,
    parse_command_status,
    parse_container_instance_change,
    parse_launch_action,
    parse_task_definition_registered,
)
from chalicelib.plumbing.names import ACCOUNT_ID
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import load_settings

if TYPE_CHECKING:
    from chalicelib.launch.flow import LifecycleFlow
    from chalicelib.launch.registration import ContainerInstanceFlow
    from chalicelib.task_definitions.flow import TaskDefinitionFlow

# Each flow is imported by the first handler that needs it: every Lambda function loads all of
# app.py at a cold start, but only its own flow.

Item = TypeVar("Item")


class TolerantCloudWatchEvent(CloudWatchEvent):
    """Chalice's CloudWatchEvent raises KeyError before our code runs when the envelope lacks a field;
    this one keeps whatever came, so the parser can reject it by name, log it and count it."""

    def _extract_attributes(self, event_dict: Any) -> None:
        fields = event_dict if isinstance(event_dict, dict) else {}
        self.version = fields.get("version")
        self.account = fields.get("account")
        self.region = fields.get("region")
        self.detail = fields.get("detail")
        self.detail_type = fields.get("detail-type")
        self.source = fields.get("source")
        self.time = fields.get("time")
        self.event_id = fields.get("id")
        self.resources = fields.get("resources")


def tolerate_malformed_envelopes(app: Any) -> None:
    """Give every EventBridge-driven handler of the app the tolerant event class."""
    for handler in app.handler_map.values():
        if isinstance(handler, EventSourceHandler) and handler.event_class is CloudWatchEvent:
            handler.event_class = TolerantCloudWatchEvent


@cache
def lifecycle_flow() -> LifecycleFlow:
    from chalicelib.launch.flow import LifecycleFlow
    from chalicelib.launch.retry_queue import RetryQueue

    settings = load_settings()
    queue = RetryQueue(settings.retry_queue_url, lambda: aws_accounts().own_client("sqs"))
    return LifecycleFlow(settings, queue)


@cache
def container_instance_flow() -> ContainerInstanceFlow:
    from chalicelib.launch.registration import ContainerInstanceFlow

    # The registration of a waiting host is the moment to send its mount: the launch step's flow.
    return ContainerInstanceFlow(load_settings(), lifecycle_flow())


@cache
def task_definition_flow() -> TaskDefinitionFlow:
    from chalicelib.task_definitions.flow import TaskDefinitionFlow

    return TaskDefinitionFlow(load_settings())


def _handle(
    event: Any,
    parse: Callable[[Any], Item],
    keys: Callable[[Item], dict[str, Any]],
    skip: Callable[[Item], str | None],
    act: Callable[[Item, AwsAccess], str],
) -> dict[str, str]:
    try:
        item = parse(event)
    except MalformedEvent as exc:
        logger.warning("malformed event dropped", reason=str(exc))
        count("EventsRejected", Reason="malformed")
        return {"outcome": f"rejected: {exc}"}
    except NotOurEvent as exc:
        logger.debug("event ignored", reason=str(exc))
        return {"outcome": f"ignored: {exc}"}
    origin: EventOrigin = item.origin  # type: ignore[attr-defined]
    logger.append_keys(account=origin.account, region=origin.region, **keys(item))
    reason = skip(item)
    if reason is not None:
        logger.debug("event ignored", reason=reason)
        return {"outcome": f"ignored: {reason}"}
    try:
        aws = aws_accounts().for_origin(origin)
    except UntrustedAccount as exc:
        logger.warning("event from an untrusted account dropped", reason=str(exc))
        count("EventsRejected", Reason="untrusted-account")
        return {"outcome": f"rejected: {exc}"}
    except AssumeRoleFailed as exc:
        # Raised on purpose: a role that is being set up or a throttled STS may work on Lambda's retry.
        logger.error("cannot act in a trusted account", reason=str(exc))
        count("AssumeRoleFailures")
        raise
    return {"outcome": act(item, aws)}


def handle_launch(event: Any) -> dict[str, str]:
    from chalicelib.launch.flow import launch_skip_reason

    settings = load_settings()
    return _handle(
        event,
        parse_launch_action,
        lambda a: {"instance_id": a.instance_id, "group": a.group_name},
        lambda a: launch_skip_reason(a, settings),
        lifecycle_flow().on_launch,
    )


def handle_command_status(event: Any) -> dict[str, str]:
    from chalicelib.launch.flow import command_skip_reason

    settings = load_settings()
    return _handle(
        event,
        parse_command_status,
        lambda s: {"instance_id": s.instance_id, "command_id": s.command_id},
        lambda s: command_skip_reason(s, settings),
        lifecycle_flow().on_command_status,
    )


def handle_container_instance_change(event: Any) -> dict[str, str]:
    return _handle(
        event,
        parse_container_instance_change,
        lambda c: {"instance_id": c.instance_id, "container_instance": c.container_instance_arn},
        container_instance_flow().skip_reason,
        container_instance_flow().on_change,
    )


def handle_task_definition_registered(event: Any, context: Any = None) -> dict[str, str]:
    flow = task_definition_flow()
    return _handle(
        event,
        parse_task_definition_registered,
        lambda r: {"task_definition": r.reference},
        lambda r: None,
        lambda r, aws: flow.on_registered(r, aws, context),
    )


def handle_retries(event: Any, context: Any = None) -> dict[str, Any]:
    """The retry queue's batch: each message is one host's next step. A message that fails is reported
    back (partial batch response) so SQS delivers it again, and to the dead-letter queue in the end."""
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from chalicelib.launch.retry_queue import RetryMessage

    flow = lifecycle_flow()

    def one(record: Any) -> str:
        return _handle(
            record.body,
            RetryMessage.from_json,
            lambda m: {"instance_id": m.instance_id, "group": m.group_name, "attempt": m.attempt},
            lambda m: None,
            flow.on_retry,
        )["outcome"]

    return process_partial_response(
        event=event, record_handler=one, processor=BatchProcessor(EventType.SQS), context=context
    )


def handle_repair(event: Any, context: Any = None) -> dict[str, Any]:
    """Repair's door: the input checked key by key and the account checked against the trusted ones, both
    before any AWS call; then the same sessions and flows as the event handlers."""
    import os

    from chalicelib.repair.flow import Repair
    from chalicelib.repair.request import RepairInputError, parse_repair_request

    settings = load_settings()
    request = parse_repair_request(event, os.environ.get("AWS_REGION", ""))
    account = request.account or own_account_of(context)
    if account not in settings.trusted_accounts and account != own_account_of(context):
        logger.warning("repair asked for an untrusted account", account=account)
        raise RepairInputError("account", f"{account} is neither this app's account nor in TRUSTED_ACCOUNTS")
    logger.append_keys(account=account, region=request.region, cluster=request.cluster)
    origin = EventOrigin(account, request.region)
    remaining = getattr(context, "get_remaining_time_in_millis", None) or (lambda: 900_000)
    repair = Repair(settings, lifecycle_flow(), task_definition_flow(), remaining)
    try:
        aws = aws_accounts().for_origin(origin)
    except AssumeRoleFailed as exc:
        logger.error("repair cannot act in a trusted account", reason=str(exc))
        count("AssumeRoleFailures")
        raise
    return repair.run(request, aws)


def own_account_of(context: Any) -> str:
    """The app's own account: from the invoked function's ARN when Lambda gives one (no AWS call), else STS."""
    arn = getattr(context, "invoked_function_arn", "") or ""
    parts = arn.split(":")
    if len(parts) >= 5 and ACCOUNT_ID.fullmatch(parts[4]):
        return parts[4]
    return aws_accounts().own_account()


def handle_sweep(event: Any = None) -> dict[str, Any]:
    from chalicelib.launch.sweeper import Sweeper

    report = Sweeper(load_settings(), aws_accounts(), lifecycle_flow()).run()
    logger.info("sweep done", hosts=len(report["hosts"]), errors=len(report["errors"]), truncated=report["truncated"])
    return report


def handle_checks(event: Any = None) -> dict[str, Any]:
    """The hourly configuration checks of every tagged group the app serves (CONTRACT "Configuration checks")."""
    from chalicelib.checks.group_checks import ScheduledChecks

    report = ScheduledChecks(load_settings(), aws_accounts()).run()
    problems = sum(len(group["problems"]) for group in report["groups"])
    logger.info("checks done", groups=len(report["groups"]), problems=problems, errors=len(report["errors"]))
    return report

"""The task definition flow: a revision tagged for EFS is registered; the next revision gets the mount.

Exactly once per source revision, for any history length: the family's latest ACTIVE revision
decides (`source_standing`). The source is rewritten only while it is that latest; the app's
rewrite of it being the latest means it was done; anything else newer means it was superseded, and
rewriting it would roll the family back. With IDEMPOTENCY_TABLE set, Powertools idempotency closes
the race between concurrent duplicate deliveries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import TaskDefinitionRegistered
from chalicelib.plumbing.names import TASK_DEFINITION_ARN
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings
from chalicelib.task_definitions.rewrite import (
    SOURCE_TAG,
    TaskDefinitionClash,
    TaskMount,
    rewrite_task_definition,
    source_standing,
    tags_as_dict,
    unknown_fields,
)
from chalicelib.task_definitions.standing import (
    FAMILY,
    Step,
    family_standing,
    next_step,
    standing_from_tags,
    standing_in_family,
)


class RewriteInFlight(Exception):
    """The family's latest is the app's rewrite of an older revision, about to be undone: decided on retry."""


@cache
def register_input_fields() -> frozenset[str]:
    """The request fields of RegisterTaskDefinition, from botocore's service model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    return frozenset(model.operation_model("RegisterTaskDefinition").input_shape.members)


class TaskDefinitionFlow:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._persistence: Any = None
        self._warned_no_table = False

    def on_registered(self, registered: TaskDefinitionRegistered, aws: AwsAccess, lambda_context: Any = None) -> str:
        ecs = aws.client("ecs")
        described = _describe(ecs, registered.reference)
        if described is None:
            # Deregistered (or never there) by the time the event arrived: nothing to rewrite.
            logger.warning("task definition not found; ignored", reference=registered.reference)
            return "ignored: task definition not found"
        definition, tags = described["taskDefinition"], tags_as_dict(described.get("tags") or [])
        source_arn = definition["taskDefinitionArn"]
        logger.append_keys(task_definition=source_arn)
        found = standing_from_tags(tags, definition, self._settings.mount_roots)
        if found.standing == FAMILY and found.mount is not None:
            found = family_standing(
                self.standing(ecs, registered.reference, definition, tags, found.mount), found.mount
            )
        step = next_step(found)
        if step.log is not None:
            level, message, fields = step.log
            getattr(logger, level)(message, **fields)
        if step.rejected is not None:
            count("TaskDefinitionsRejected", Reason=step.rejected)
        if step.step is Step.FINISH and found.latest_arn is not None:
            return self._finish_rewritten(aws, source_arn, found.latest_arn)
        if step.step is Step.RETRY:
            raise RewriteInFlight(step.outcome)
        if step.step is Step.REGISTER and found.mount is not None:
            return self._rewrite(aws, described, found.mount, lambda_context)
        return step.outcome

    def _rewrite(self, aws: AwsAccess, described: dict[str, Any], mount: TaskMount, lambda_context: Any) -> str:
        """Register the next revision of the family's latest, unless a field would be lost or the mount clashes
        with what the revision has; then its follow-ups."""
        source_arn = described["taskDefinition"]["taskDefinitionArn"]
        unknown = unknown_fields(_raw_body(described), described)
        if unknown:
            logger.error(
                "DescribeTaskDefinition returned fields the shipped botocore does not know; no revision registered",
                unknown_fields=unknown,
            )
            count("TaskDefinitionsRejected", Reason="unknown-field")
            return f"rejected: this botocore does not know {', '.join(unknown)}"
        try:
            request = rewrite_task_definition(
                described["taskDefinition"], described.get("tags") or [], mount, register_input_fields()
            )
        except TaskDefinitionClash as exc:
            logger.error("task definition cannot take the EFS volume; no revision registered", reason=str(exc))
            count("TaskDefinitionsRejected", Reason="clash")
            return f"rejected: {exc}"
        new_arn, registered_here = self._register(aws, request, source_arn, lambda_context)
        if new_arn is None:
            return "ignored: a concurrent delivery is registering it"
        if not registered_here:
            return "ignored: already registered by another delivery"
        undone = self._undo_if_released_meanwhile(aws.client("ecs"), source_arn, new_arn)
        if undone is not None:
            return undone
        logger.info("task definition rewritten", new_task_definition=new_arn, mode=mount.mode)
        count("TaskDefinitionsRewritten")
        self._follow_ups(aws, source_arn, new_arn)
        return f"registered {new_arn}"

    def standing(
        self, ecs: Any, reference: str, definition: dict[str, Any], tags: dict[str, str], mount: TaskMount
    ) -> tuple[str, str] | None:
        """Where the described revision stands in its family (`standing_in_family`) and the family's latest ACTIVE
        revision; None when the family has none. The event handler and repair (dry run or not) both decide by it."""
        source_arn = definition["taskDefinitionArn"]
        if reference == definition["family"]:
            # Described by family name (CloudTrail left the ARN out): it is the latest already.
            return source_standing(source_arn, source_arn, tags), source_arn
        latest = _describe(ecs, definition["family"])
        if latest is None:
            return None
        latest_definition, latest_tags = latest["taskDefinition"], tags_as_dict(latest.get("tags") or [])
        verdict = standing_in_family(definition, tags, mount, latest_definition, latest_tags, register_input_fields())
        return verdict, latest_definition["taskDefinitionArn"]

    def _finish_rewritten(self, aws: AwsAccess, source_arn: str, new_arn: str) -> str:
        """The rewrite is the family's latest: check again for a release it overtook (free when the
        revisions are adjacent), then run the follow-ups, which change only what is not done yet."""
        undone = self._undo_if_released_meanwhile(aws.client("ecs"), source_arn, new_arn)
        if undone is not None:
            return undone
        self._follow_ups(aws, source_arn, new_arn)
        return f"ignored: already rewritten as {new_arn}"

    def _undo_if_released_meanwhile(self, ecs: Any, source_arn: str, new_arn: str) -> str | None:
        overtaken_by = self._released_meanwhile(ecs, source_arn, new_arn)
        if overtaken_by is None:
            return None
        # ECS has no conditional registration: undo, so the release is the family's latest again.
        ecs.deregister_task_definition(taskDefinition=new_arn)
        logger.warning(
            "task definition superseded while its rewrite was registered; the rewrite was deregistered",
            superseded_by=overtaken_by,
            deregistered=new_arn,
        )
        count("TaskDefinitionsRejected", Reason="superseded")
        return f"ignored: superseded by {overtaken_by} while registering; {new_arn.rsplit('/', 1)[1]} deregistered"

    def _released_meanwhile(self, ecs: Any, source_arn: str, new_arn: str) -> str | None:
        """An ACTIVE revision registered between the source and its rewrite that is not a rewrite of
        the same source: a release the rewrite would roll back. No call when the rewrite's revision
        directly follows the source's, as it almost always does."""
        family, source_revision = revision_of(source_arn)
        _, new_revision = revision_of(new_arn)
        if new_revision == source_revision + 1:
            return None
        paginator = ecs.get_paginator("list_task_definitions")
        for page in paginator.paginate(familyPrefix=family, status="ACTIVE", sort="DESC"):
            revisions = [revision_of(arn) + (arn,) for arn in page["taskDefinitionArns"]]
            for arn_family, revision, arn in revisions:
                if arn_family != family or not source_revision < revision < new_revision:
                    continue
                between = _describe(ecs, arn)
                tags = tags_as_dict((between or {}).get("tags") or [])
                if between is not None and tags.get(SOURCE_TAG) != source_arn:
                    return arn
            if any(revision <= source_revision for _, revision, _ in revisions):
                break  # newest first: the rest is older than the source
        return None

    def _register(
        self, aws: AwsAccess, request: dict[str, Any], source_arn: str, lambda_context: Any
    ) -> tuple[str | None, bool]:
        """Register the new revision; returns its ARN (None while another delivery holds the source)
        and whether this call registered it (False when the idempotency record says it was done)."""
        registered: list[str] = []

        def register(source: str) -> str:
            arn = aws.client("ecs").register_task_definition(**request)["taskDefinition"]["taskDefinitionArn"]
            registered.append(arn)
            return arn

        if self._settings.idempotency_table is None:
            if not self._warned_no_table:
                logger.warning(
                    "IDEMPOTENCY_TABLE is not set: concurrent duplicate deliveries may each register a revision"
                )
                self._warned_no_table = True
            return register(source_arn), True
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        try:
            arn = self._idempotent(register, lambda_context)(source=source_arn)
        except IdempotencyAlreadyInProgressError:
            return None, False
        return arn, bool(registered)

    def _idempotent(self, register: Callable[[str], str], lambda_context: Any) -> Callable[..., str]:
        # Imported here: idempotency pulls in DynamoDB code that cold starts should not pay for.
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        if self._persistence is None:
            # The table is in the app's own account, whichever account the task definition is in.
            self._persistence = DynamoDBPersistenceLayer(table_name=self._settings.idempotency_table)
        config = IdempotencyConfig(expires_after_seconds=24 * 3600)
        if lambda_context is not None:
            # A delivery that dies mid-way holds the record only until its Lambda would have timed out.
            config.register_lambda_context(lambda_context)
        decorate = idempotent_function(
            data_keyword_argument="source", persistence_store=self._persistence, config=config
        )
        return decorate(register)

    def _follow_ups(self, aws: AwsAccess, source_arn: str, new_arn: str) -> None:
        ecs = aws.client("ecs")
        if self._settings.update_services:
            for cluster, service in services_running(ecs, source_arn):
                ecs.update_service(cluster=cluster, service=service, taskDefinition=new_arn)
                logger.info("service moved to the rewritten task definition", cluster=cluster, service=service)
                count("ServicesUpdated")
        if self._settings.deregister_source:
            source = _describe(ecs, source_arn)
            # Repeatable: a retry finds the source INACTIVE already (still describable) and leaves it.
            if source is not None and source["taskDefinition"].get("status") == "ACTIVE":
                ecs.deregister_task_definition(taskDefinition=source_arn)
                logger.info("source task definition deregistered")


def revision_of(arn: str) -> tuple[str, int]:
    """(family, revision) of a task definition ARN."""
    family, revision = arn.rsplit("/", 1)[1].rsplit(":", 1)
    return family, int(revision)


def _describe(ecs: Any, reference: str) -> dict[str, Any] | None:
    """DescribeTaskDefinition with tags; None when ECS has no such (describable) revision."""
    try:
        return ecs.describe_task_definition(taskDefinition=reference, include=["TAGS"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ClientException":
            raise
        return None


def _raw_body(described: dict[str, Any]) -> Any:
    body = (described.get("ResponseMetadata") or {}).get("RawBody")
    if body is None:
        # Only a client made outside chalicelib.plumbing.accounts lacks it; without it nothing proves that no
        # field is lost, so the rewrite fails rather than trusting the parse.
        raise RuntimeError("DescribeTaskDefinition's raw body was not kept: use AwsAccess.client('ecs')")
    return json.loads(body)


def services_running(ecs: Any, task_definition_arn: str) -> list[tuple[str, str]]:
    """(cluster ARN, service ARN) of every service in the account and region that runs the revision."""
    if not TASK_DEFINITION_ARN.fullmatch(task_definition_arn):
        raise ValueError(f"{task_definition_arn!r} is not a task definition ARN")
    found = []
    for cluster_page in ecs.get_paginator("list_clusters").paginate():
        for cluster in cluster_page["clusterArns"]:
            for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
                arns = page["serviceArns"]
                for start in range(0, len(arns), 10):
                    described = ecs.describe_services(cluster=cluster, services=arns[start : start + 10])
                    found += [
                        (cluster, service["serviceArn"])
                        for service in described["services"]
                        if service.get("taskDefinition") == task_definition_arn
                    ]
    return found

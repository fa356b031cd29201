"""The task definition flow: a revision tagged for EFS is registered; the next revision gets the mount.

Exactly once per source revision: a revision that mounts the file system (ours included) is
never rewritten, a later revision tagged with `efs-automount:source` = this ARN means it was
already done, and with IDEMPOTENCY_TABLE set, Powertools idempotency closes the race between
concurrent duplicate deliveries.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.accounts import AwsAccess
from chalicelib.aws_names import TASK_DEFINITION_ARN
from chalicelib.events import TaskDefinitionRegistered
from chalicelib.mount_spec import MountConfigError
from chalicelib.observability import count, logger
from chalicelib.settings import Settings
from chalicelib.task_definition import (
    SOURCE_TAG,
    TaskDefinitionClash,
    mounts_file_system,
    rewrite_task_definition,
    tags_as_dict,
    task_mount_from_tags,
)

# How many revisions newer than the source are searched for an earlier rewrite of it.
NEWER_REVISIONS_SEARCHED = 10


@cache
def register_input_fields() -> frozenset[str]:
    """The request fields of RegisterTaskDefinition, from botocore's service model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    return frozenset(model.operation_model("RegisterTaskDefinition").input_shape.members)


def _revision(arn: str) -> tuple[str, int]:
    family_revision = arn.rsplit("/", 1)[1]
    family, revision = family_revision.rsplit(":", 1)
    return family, int(revision)


class TaskDefinitionFlow:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._persistence: Any = None
        self._warned_no_table = False

    def on_registered(self, registered: TaskDefinitionRegistered, aws: AwsAccess, lambda_context: Any = None) -> str:
        ecs = aws.client("ecs")
        try:
            described = ecs.describe_task_definition(taskDefinition=registered.reference, include=["TAGS"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ClientException":
                raise
            # Deregistered (or never there) by the time the event arrived: nothing to rewrite.
            logger.warning("task definition not found; ignored", reference=registered.reference, error=str(exc))
            return "ignored: task definition not found"
        definition, tags = described["taskDefinition"], described.get("tags") or []
        source_arn = definition["taskDefinitionArn"]
        logger.append_keys(task_definition=source_arn)
        tag_map = tags_as_dict(tags)
        if SOURCE_TAG in tag_map:
            return "ignored: a revision efs-automount registered"
        try:
            mount = task_mount_from_tags(tag_map, definition, self._settings.mount_roots)
        except MountConfigError as exc:
            logger.error("task definition tag is invalid; no revision registered", tag=exc.tag, reason=exc.reason)
            count("TaskDefinitionsRejected", Reason="invalid-tag")
            return f"rejected: {exc}"
        if mount is None:
            return "ignored: not tagged for EFS"
        if mounts_file_system(definition, mount):
            return f"ignored: already mounts {mount.file_system_id}"
        earlier = self._earlier_rewrite(ecs, source_arn)
        if earlier is not None:
            return f"ignored: already rewritten as {earlier}"
        try:
            request = rewrite_task_definition(definition, tags, mount, register_input_fields())
        except TaskDefinitionClash as exc:
            logger.error("task definition cannot take the EFS volume; no revision registered", reason=str(exc))
            count("TaskDefinitionsRejected", Reason="clash")
            return f"rejected: {exc}"
        new_arn, registered_here = self._register(aws, request, source_arn, lambda_context)
        if new_arn is None:
            return "ignored: a concurrent delivery is registering it"
        if not registered_here:
            return "ignored: already registered by another delivery"
        logger.info("task definition rewritten", new_task_definition=new_arn, mode=mount.mode)
        count("TaskDefinitionsRewritten")
        self._follow_ups(aws, source_arn, new_arn)
        return f"registered {new_arn}"

    def _earlier_rewrite(self, ecs: Any, source_arn: str) -> str | None:
        """A newer revision of the family that was made from this one, if any."""
        family, source_revision = _revision(source_arn)
        newer = []
        for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, sort="DESC"):
            for arn in page["taskDefinitionArns"]:
                arn_family, revision = _revision(arn)
                if arn_family == family and revision > source_revision:
                    newer.append((revision, arn))
            if len(newer) >= NEWER_REVISIONS_SEARCHED:
                break
        for _, arn in sorted(newer, reverse=True)[:NEWER_REVISIONS_SEARCHED]:
            tags = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"]).get("tags") or []
            if tags_as_dict(tags).get(SOURCE_TAG) == source_arn:
                return arn
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
            ecs.deregister_task_definition(taskDefinition=source_arn)
            logger.info("source task definition deregistered")


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

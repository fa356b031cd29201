"""Repair of the task definitions a cluster's services run: a missed rewrite is registered through the rewrite flow,
and a service left on a source whose rewrite is the family's latest is moved to it when UPDATE_SERVICES is on.
This flow reads and acts; what is wrong and what follows is decided in repair.task_definition_findings."""

from __future__ import annotations

from typing import Any

from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import EventOrigin, TaskDefinitionRegistered
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings
from chalicelib.repair.cluster import ClusterReads
from chalicelib.repair.findings import Act, record, task_definition_item
from chalicelib.repair.request import RepairRequest
from chalicelib.repair.run import OutOfTime, RepairRun
from chalicelib.repair.task_definition_findings import (
    TaskDefinitionFix,
    after_registering,
    register_plan,
    revision_findings,
    service_update_plan,
)
from chalicelib.task_definitions.flow import TaskDefinitionFlow
from chalicelib.task_definitions.standing import FAMILY, family_standing, standing_from_tags


class TaskDefinitionRepair:
    """One run's repair of the revisions a cluster's services run."""

    def __init__(
        self,
        settings: Settings,
        task_definitions: TaskDefinitionFlow,
        aws: AwsAccess,
        request: RepairRequest,
        run: RepairRun,
        reads: ClusterReads,
        cluster_arn: str,
    ) -> None:
        self._settings = settings
        self._task_definitions = task_definitions
        self._aws = aws
        self._request = request
        self._run = run
        self._reads = reads
        self._cluster_arn = cluster_arn

    def repair(self) -> None:
        """Each revision the cluster's services run, one after another; one that is not tagged for EFS is left out
        of the report."""
        run = self._run
        services = run.guarded(
            self._cluster_arn,
            "listing the cluster's services",
            lambda: self._reads.services_by_task_definition(self._cluster_arn),
        )
        for arn, names in sorted((services or {}).items()):
            run.check_time(f"task definition {arn}")
            # Made before acting, so that what was done stays in the report if a later step fails.
            item = task_definition_item(arn, names)
            try:
                examined = self._task_definition(item)
            except OutOfTime:
                run.report["task_definitions"].append(item)  # with what it did before the time ran out
                raise
            except Exception as exc:
                run.error(arn, exc)
                examined = bool(item["actions"])  # keep what was done before the failure
            if examined:
                run.report["task_definitions"].append(item)

    def _task_definition(self, item: dict[str, Any]) -> bool:
        """Fill the item; False when the revision is not tagged for EFS."""
        arn, services = item["task_definition"], item["services"]
        definition, tags = self._reads.task_definition(arn)
        found = standing_from_tags(tags, definition, self._settings.mount_roots)
        if found.standing == FAMILY and found.mount is not None:
            # The flow's own verdict, so that repair (dry run or not) classifies a revision as the handler does.
            verdict = self._task_definitions.standing(self._aws.client("ecs"), arn, definition, tags, found.mount)
            found = family_standing(verdict, found.mount)
        findings = revision_findings(services, definition, tags, found, self._settings.update_services)
        if findings is None:
            return False
        item["family"] = definition["family"]
        item["problems"] += findings.problems
        if findings.fix is TaskDefinitionFix.UPDATE_SERVICES and found.latest_arn is not None:
            for service in services:
                self._run.check_time(f"updating service {service}")
                self._update_service(item, service, found.latest_arn)
        elif findings.fix is TaskDefinitionFix.REGISTER:
            self._register(item)
        return True

    def _update_service(self, item: dict[str, Any], service: str, latest_arn: str) -> None:
        plan = service_update_plan(service, latest_arn, self._request.dry_run)
        if plan.act is Act.UPDATE_SERVICE:
            self._aws.client("ecs").update_service(
                cluster=self._cluster_arn, service=service, taskDefinition=latest_arn
            )
            logger.info("service moved to the rewritten task definition by repair", service=service)
            count("ServicesUpdated")
        item["actions"] += plan.actions

    def _register(self, item: dict[str, Any]) -> None:
        """Through the rewrite flow, as its event would have: exactly once, with its follow-ups."""
        plan = register_plan(self._request.dry_run)
        if plan.act is Act.REGISTER:
            aws = self._aws
            registered = TaskDefinitionRegistered(EventOrigin(aws.account, aws.region), item["task_definition"])
            plan = after_registering(self._task_definitions.on_registered(registered, aws))
        if plan.error is not None:
            self._run.report["errors"].append({"item": item["task_definition"], "error": plan.error})
        record(item, plan)

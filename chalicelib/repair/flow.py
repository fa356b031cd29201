"""Repair: finds what drifted in a cluster's hosts and task definitions and fixes it through the flows the
event handlers use (the launch step, the mount, the attribute, the rewrite), or, in a dry run, says what
it would do. A run finds (repair.cluster reads the cluster, its groups and services), then, item by item,
decides (repair.host_findings, repair.task_definition_findings: pure) and acts or reports (repair.hosts,
repair.task_definitions). Every phase is guarded, and the run stops cleanly before its time runs out (repair.run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.launch.flow import LifecycleFlow
from chalicelib.launch.groups import Group
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.observability import logger
from chalicelib.plumbing.settings import Settings
from chalicelib.repair.cluster import ClusterReads
from chalicelib.repair.findings import new_report, stopped, summarize
from chalicelib.repair.hosts import HostRepair
from chalicelib.repair.request import RepairRequest
from chalicelib.repair.run import OutOfTime, RepairRun
from chalicelib.repair.scope import examined_groups
from chalicelib.repair.task_definitions import TaskDefinitionRepair
from chalicelib.task_definitions.flow import TaskDefinitionFlow


class Repair:
    def __init__(
        self,
        settings: Settings,
        lifecycle: LifecycleFlow,
        task_definitions: TaskDefinitionFlow,
        remaining_millis: Callable[[], int],
    ) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
        self._task_definitions = task_definitions
        self._remaining_millis = remaining_millis

    def run(self, request: RepairRequest, aws: AwsAccess) -> dict[str, Any]:
        report = new_report(request.cluster, request.auto_scaling_group, aws.account, aws.region, request.dry_run)
        run = RepairRun(report, self._remaining_millis)
        try:
            self._examine(aws, request, run, ClusterReads(aws, run, self._settings.mount_document))
        except OutOfTime as exc:
            report["stopped"] = stopped(f"{run.where}: {exc}")
            logger.warning("repair stopped before its time ran out", where=report["stopped"]["where"])
        except Exception as exc:  # every phase is guarded; this keeps the report of what was done regardless
            run.error(request.cluster or request.auto_scaling_group or "", exc, run.where)
        report["summary"] = summarize(report)
        logger.info("repair done", dry_run=request.dry_run, **report["summary"])
        return report

    def _examine(self, aws: AwsAccess, request: RepairRequest, run: RepairRun, reads: ClusterReads) -> None:
        """Each phase guarded: a read that fails (throttled past its retries, a cluster gone) is an error naming
        the phase, and what was done before it stays in the report."""
        cluster_arn = None
        run.where = "discovering the cluster's groups"
        if request.cluster:
            run.check_time("finding the cluster")
            cluster = request.cluster
            cluster_arn = run.guarded(cluster, "finding the cluster", lambda: reads.cluster_arn(cluster))
            if cluster_arn is None:
                return
            run.report["cluster"] = cluster_arn
        run.check_time("discovering the cluster's groups")
        groups = run.guarded(
            cluster_arn or request.auto_scaling_group or "",
            "discovering the groups",
            lambda: self._groups(request, cluster_arn, run, reads),
        )
        run.where = "checking the groups' configuration"
        self._check_groups(aws, groups or [], run, reads)
        run.where = "examining hosts"
        HostRepair(self._settings, self._lifecycle, aws, request, run, reads, cluster_arn).repair(groups or [])
        if cluster_arn is not None:
            run.where = "examining the services' task definitions"
            settings, flow = self._settings, self._task_definitions
            TaskDefinitionRepair(settings, flow, aws, request, run, reads, cluster_arn).repair()

    def _groups(
        self, request: RepairRequest, cluster_arn: str | None, run: RepairRun, reads: ClusterReads
    ) -> list[Group]:
        """The groups to examine: the one asked for, or the cluster's (through its capacity providers and the
        groups of its container instances); only those tagged for EFS."""
        if request.auto_scaling_group is not None or cluster_arn is None:
            # The input check requires one of the two.
            names = {request.auto_scaling_group} if request.auto_scaling_group is not None else set()
        else:
            names = reads.group_names(cluster_arn)
        tagged, errors = examined_groups(request.auto_scaling_group, reads.groups(sorted(names)))
        run.report["errors"] += errors
        return tagged

    def _check_groups(self, aws: AwsAccess, groups: list[Group], run: RepairRun, reads: ClusterReads) -> None:
        """The configuration every mount of each group depends on (CONTRACT "Configuration checks"): reported in
        `groups`, changed never, dry run or not."""
        from chalicelib.checks.group_checks import GroupChecks

        checks = GroupChecks(self._settings)
        for group in groups:
            raw = reads.raw_groups.get(group.name)
            if raw is None:
                continue
            run.check_time(f"checking group {group.name}")
            try:
                found = checks.check(aws, raw)
            except OutOfTime:
                raise
            except Exception as exc:
                run.error(group.name, exc, "checking the group's configuration")
                continue
            run.report["groups"].append(found.as_item())

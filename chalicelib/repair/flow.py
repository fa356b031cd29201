"""Repair: finds what drifted in a cluster's hosts and task definitions and fixes it through the flows the
event handlers use (the launch step, the mount, the attribute, the rewrite), or, in a dry run, says what
it would do. What it knows of a host comes from AWS's own records (ECS's container instances, SSM's mount
commands), never from EC2 tags. Reads are batched to AWS's limits; the decisions are in repair.host_findings and
repair.task_definition_findings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalicelib.container_instances.ecs import set_mount_attributes
from chalicelib.launch.flow import LifecycleFlow, complete_lifecycle_action
from chalicelib.launch.groups import Group
from chalicelib.launch.sweeper import GRACE_SECONDS as SWEEPER_GRACE_SECONDS
from chalicelib.mount.attribute import mount_attribute_name
from chalicelib.mount.commands import agents_online, mount_on_record
from chalicelib.mount.spec import FILE_SYSTEM_TAG, MountConfigError, MountSpec, mount_spec_from_tags
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import EventOrigin, TaskDefinitionRegistered
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.observability import count, logger
from chalicelib.plumbing.settings import Settings
from chalicelib.repair.cluster import ClusterReads, ContainerInstanceView
from chalicelib.repair.findings import summarize
from chalicelib.repair.host_findings import HostFix, MountEvidence, host_findings, mount_command_running
from chalicelib.repair.request import RepairRequest
from chalicelib.repair.run import OutOfTime, RepairRun
from chalicelib.repair.scope import examined_groups
from chalicelib.repair.task_definition_findings import (
    TaskDefinitionFix,
    legacy_constraint_problem,
    task_definition_findings,
)
from chalicelib.task_definitions.flow import TaskDefinitionFlow
from chalicelib.task_definitions.rewrite import (
    SOURCE_TAG,
    mounts_file_system,
    task_mount_from_tags,
)


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
        # Set by each run.
        self._run = RepairRun({}, remaining_millis)
        self._reads: ClusterReads

    def run(self, request: RepairRequest, aws: AwsAccess) -> dict[str, Any]:
        report: dict[str, Any] = {
            "cluster": request.cluster,
            "auto_scaling_group": request.auto_scaling_group,
            "account": aws.account,
            "region": aws.region,
            "dry_run": request.dry_run,
            "groups": [],
            "instances": [],
            "lifecycle_actions": [],
            "task_definitions": [],
            "errors": [],
            "stopped": None,
        }
        self._run = RepairRun(report, self._remaining_millis)
        self._reads = ClusterReads(aws, self._run, self._settings.mount_document)
        try:
            self._examine(aws, request, report)
        except OutOfTime as exc:
            report["stopped"] = {
                "where": f"{self._run.where}: {exc}",
                "how_to_go_on": "invoke repair again with the same input: what was fixed is now found fine and "
                "skipped quickly; or narrow it with `auto_scaling_group`",
            }
            logger.warning("repair stopped before its time ran out", where=report["stopped"]["where"])
        except Exception as exc:  # every phase is guarded; this keeps the report of what was done regardless
            self._run.error(request.cluster or request.auto_scaling_group or "", exc, self._run.where)
        report["summary"] = summarize(report)
        logger.info("repair done", dry_run=request.dry_run, **report["summary"])
        return report

    def _examine(self, aws: AwsAccess, request: RepairRequest, report: dict[str, Any]) -> None:
        """Each phase guarded: a read that fails (throttled past its retries, a cluster gone) is an error naming
        the phase, and what was done before it stays in the report."""
        cluster_arn = None
        self._run.where = "discovering the cluster's groups"
        if request.cluster:
            self._run.check_time("finding the cluster")
            cluster_arn = self._run.guarded(
                request.cluster, "finding the cluster", lambda: self._reads.cluster_arn(request.cluster)
            )
            if cluster_arn is None:
                return
            report["cluster"] = cluster_arn
        self._run.check_time("discovering the cluster's groups")
        groups = self._run.guarded(
            cluster_arn or request.auto_scaling_group or "",
            "discovering the groups",
            lambda: self._groups(request, cluster_arn, report["errors"]),
        )
        self._run.where = "checking the groups' configuration"
        self._check_groups(aws, groups or [], report)
        self._run.where = "examining hosts"
        self._hosts(aws, request, cluster_arn, groups or [], report)
        if cluster_arn is not None:
            self._run.where = "examining the services' task definitions"
            self._services(aws, request, cluster_arn, report)

    def _groups(self, request: RepairRequest, cluster_arn: str | None, errors: list[dict[str, str]]) -> list[Group]:
        """The groups to examine: the one asked for, or the cluster's (through its capacity providers and the
        groups of its container instances); only those tagged for EFS."""
        if request.auto_scaling_group is not None or cluster_arn is None:
            # The input check requires one of the two.
            names = {request.auto_scaling_group} if request.auto_scaling_group is not None else set()
        else:
            names = self._reads.group_names(cluster_arn)
        tagged, not_examined = examined_groups(request.auto_scaling_group, self._reads.groups(sorted(names)))
        errors += not_examined
        return tagged

    def _check_groups(self, aws: AwsAccess, groups: list[Group], report: dict[str, Any]) -> None:
        """The configuration every mount of each group depends on (CONTRACT "Configuration checks"): reported in
        `groups`, changed never, dry run or not."""
        from chalicelib.checks.group_checks import GroupChecks

        checks = GroupChecks(self._settings)
        for group in groups:
            raw = self._reads.raw_groups.get(group.name)
            if raw is None:
                continue
            self._run.check_time(f"checking group {group.name}")
            try:
                found = checks.check(aws, raw)
            except OutOfTime:
                raise
            except Exception as exc:
                self._run.error(group.name, exc, "checking the group's configuration")
                continue
            report["groups"].append(found.as_item())

    def _hosts(
        self,
        aws: AwsAccess,
        request: RepairRequest,
        cluster_arn: str | None,
        groups: list[Group],
        report: dict[str, Any],
    ) -> None:
        in_service: list[tuple[Group, MountSpec, str]] = []
        for group in groups:
            spec: MountSpec | None = None
            try:
                spec = mount_spec_from_tags(group.tags, self._settings.mount_roots)
            except MountConfigError as exc:
                # Its hosts in service get nothing; a waiting host is still driven: the launch step decides it
                # with the failure result, as it refuses the same tag.
                report["errors"].append({"item": group.name, "error": f"group tag is invalid: {exc}"})
            waiting = sorted(i for i, state in group.instance_states.items() if state == "Pending:Wait")
            if waiting and self._run.guarded(
                group.name,
                "reading the group's lifecycle hooks",
                lambda group=group: self._lifecycle.has_our_hook(aws, group.name),
            ):
                for instance_id in waiting:
                    self._run.check_time(f"host {instance_id} waiting in {group.name}")
                    report["lifecycle_actions"].append(
                        self._waiting_host(aws, request, cluster_arn, group, spec, instance_id, report)
                    )
            if spec is not None:
                in_service += [
                    (group, spec, i) for i, state in sorted(group.instance_states.items()) if state == "InService"
                ]
        if not in_service:
            return
        container_instances = self._reads.hosts_container_instances(
            cluster_arn, {instance_id for *_, instance_id in in_service}, request.auto_scaling_group
        )
        pending_mounts: list[tuple[dict[str, Any], Group, MountSpec, str]] = []
        for group, spec, instance_id in in_service:
            self._run.check_time(f"host {instance_id} in {group.name}")
            item = {
                "instance_id": instance_id,
                "auto_scaling_group": group.name,
                "container_instance": None,
                "problems": [],
                "actions": [],
            }
            report["instances"].append(item)
            try:
                view = container_instances.get(instance_id)
                item["container_instance"] = view.arn if view else None
                fix = self._examine_host(aws, request, spec, view, item)
                if fix is HostFix.SEND_MOUNT:
                    pending_mounts.append((item, group, spec, instance_id))
            except Exception as exc:  # one host's trouble never stops the others
                self._run.error(instance_id, exc)
        if pending_mounts:
            self._send_mounts(aws, request, pending_mounts, report)

    def _waiting_host(
        self,
        aws: AwsAccess,
        request: RepairRequest,
        cluster_arn: str | None,
        group: Group,
        spec: MountSpec | None,
        instance_id: str,
        report: dict[str, Any],
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "instance_id": instance_id,
            "auto_scaling_group": group.name,
            "problems": [],
            "actions": [],
        }
        try:
            if self._lifecycle.known_decided(aws, instance_id):
                return item  # our action is decided; another launch hook holds the host
            # The sweeper's reading of when the wait began (Auto Scaling's launch activity), and its grace.
            now = self._lifecycle.clock()
            _, started = self._lifecycle.sweep_deadline(aws, group.name, instance_id, now)
            if started is not None and now - started < SWEEPER_GRACE_SECONDS:
                return item  # its launch event is moments old and acts on it
            waited = f" for {int(now - started)} s" if started is not None else " (since when, AWS does not say)"
            problem = f"waiting on the {self._settings.hook_name} hook{waited}"
            if spec is not None and self._mount_settled(aws, request, cluster_arn, group, instance_id, spec, report):
                # Mounted, and its attribute where ECS says it belongs: all that can be left is completing our
                # action, which is most likely decided already (another hook holds the host). The launch step is
                # not run again: it would set the attribute once more on every run.
                if request.dry_run:
                    item["problems"].append(problem)
                    item["actions"].append("would complete its action CONTINUE, unless it is decided already")
                elif complete_lifecycle_action(
                    aws.client("autoscaling"),
                    self._settings.hook_name,
                    group.name,
                    instance_id,
                    LifecycleResult.CONTINUE,
                ):
                    item["problems"].append(problem)
                    item["actions"].append("launch step: completed CONTINUE (SSM's record proves its mount)")
                return item
            if request.dry_run:
                item["problems"].append(problem)
                item["actions"].append("would drive its launch step (send the mount, complete or decide)")
                return item
            outcome = self._lifecycle.drive(aws, group.name, instance_id, group=group)
            if outcome != "already decided":  # decided meanwhile, or earlier while another hook holds it
                item["problems"].append(problem)
                item["actions"].append(f"launch step: {outcome}")
        except OutOfTime:
            raise  # finding its container instance may read clusters: the run stops cleanly, as between items
        except Exception as exc:
            self._run.error(instance_id, exc)
        return item

    def _mount_settled(
        self,
        aws: AwsAccess,
        request: RepairRequest,
        cluster_arn: str | None,
        group: Group,
        instance_id: str,
        spec: MountSpec,
        report: dict[str, Any],
    ) -> bool:
        """Whether SSM's record proves the waiting host's mount, as the launch step judges it (of this launch,
        the group's whole mount), and ECS shows nothing left for it: its container instance carries the
        attribute, or it has not registered (its registration sets it). A proven mount whose attribute is
        missing is the launch step's to finish: it sets the attribute, then completes."""
        commands = self._reads.mount_commands(instance_id)
        zone = group.instance_zones.get(instance_id, "")
        if not self._lifecycle.proves_launch_mounted(aws, group.name, instance_id, zone, spec, commands):
            return False
        view = self._reads.hosts_container_instances(cluster_arn, {instance_id}, request.auto_scaling_group).get(
            instance_id
        )
        return view is None or view.attributes.get(mount_attribute_name(spec.file_system_id, spec.mount_path)) == (
            spec.mount_path
        )

    def _examine_host(
        self,
        aws: AwsAccess,
        request: RepairRequest,
        spec: MountSpec,
        view: ContainerInstanceView | None,
        item: dict[str, Any],
    ) -> HostFix:
        attribute = mount_attribute_name(spec.file_system_id, spec.mount_path)
        attribute_value = view.attributes.get(attribute) if view else None
        args = (spec.file_system_id, spec.mount_path, view is not None, attribute_value)
        findings = host_findings(*args)
        if findings.fix is HostFix.NEEDS_EVIDENCE:
            findings = host_findings(*args, evidence=self._evidence(aws, item["instance_id"], spec))
        item["problems"] += findings.problems
        if findings.fix is HostFix.SET_ATTRIBUTE and view is not None:  # set only on a registered host
            if request.dry_run:
                item["actions"].append(f"would set the attribute {attribute} to {spec.mount_path}")
            else:
                set_mount_attributes(
                    aws.client("ecs"), view.cluster_arn, view.arn, {spec.file_system_id: spec.mount_path}
                )
                logger.info("mount attribute set by repair", instance_id=item["instance_id"], cluster=view.cluster_arn)
                item["actions"].append(f"attribute {attribute} set to {spec.mount_path}")
        return findings.fix

    def _evidence(self, aws: AwsAccess, instance_id: str, spec: MountSpec) -> MountEvidence:
        """SSM's own record of the group's file system on this host, judged by the rule the registration and
        status steps use (mount_commands.mount_on_record: the newest finished command of our document for it
        succeeded on the host, and asked for exactly the group's whole mount). No call for a one-host command."""
        commands = self._reads.mount_commands(instance_id)
        record = mount_on_record(aws.client("ssm"), instance_id, commands, spec, self._settings.mount_roots)
        if record is None:
            return MountEvidence(None)
        return MountEvidence(record.mount_path, record.difference)

    def _send_mounts(
        self,
        aws: AwsAccess,
        request: RepairRequest,
        pending: list[tuple[dict[str, Any], Group, MountSpec, str]],
        report: dict[str, Any],
    ) -> None:
        self._run.check_time("reading the hosts' SSM agents")
        online = self._run.guarded(
            report["cluster"] or request.auto_scaling_group or "",
            "reading the hosts' SSM agents",
            lambda: agents_online(aws.client("ssm"), [instance_id for *_, instance_id in pending]),
        )
        if online is None:
            return
        for item, group, spec, instance_id in pending:
            self._run.check_time(f"the mount of host {instance_id}")
            if instance_id not in online:
                item["problems"].append("its SSM agent is not online: no mount can be sent now")
                continue
            try:
                commands = self._reads.mount_commands(instance_id)
                if mount_command_running(commands, spec.file_system_id, self._settings.mount_roots):
                    # Sent by an earlier run (or the launch step) and not finished: its status event follows.
                    item["problems"].append("mount command running: its status event sets the attribute")
                    continue
                if request.dry_run:
                    item["actions"].append(f"would send the mount command ({spec.file_system_id} at {spec.mount_path})")
                    continue
                zone = group.instance_zones.get(instance_id, "")
                outcome = self._lifecycle.mount_in_service(aws, instance_id, zone, spec)
                (item["actions"] if outcome.startswith("mount command sent") else item["problems"]).append(outcome)
            except Exception as exc:
                self._run.error(instance_id, exc)

    # --- task definitions --------------------------------------------------------------------

    def _services(self, aws: AwsAccess, request: RepairRequest, cluster_arn: str, report: dict[str, Any]) -> None:
        services = self._run.guarded(
            cluster_arn,
            "listing the cluster's services",
            lambda: self._reads.services_by_task_definition(cluster_arn),
        )
        for arn, names in sorted((services or {}).items()):
            self._run.check_time(f"task definition {arn}")
            item: dict[str, Any] = {
                "family": arn.rsplit("/", 1)[-1].rsplit(":", 1)[0],
                "task_definition": arn,
                "services": sorted(names),
                "problems": [],
                "actions": [],
            }
            try:
                examined = self._task_definition(aws, request, cluster_arn, item, report)
            except OutOfTime:
                report["task_definitions"].append(item)  # with what it did before the time ran out
                raise
            except Exception as exc:
                self._run.error(arn, exc)
                examined = bool(item["actions"])  # keep what was done before the failure
            if examined:
                report["task_definitions"].append(item)

    def _task_definition(
        self,
        aws: AwsAccess,
        request: RepairRequest,
        cluster_arn: str,
        item: dict[str, Any],
        report: dict[str, Any],
    ) -> bool:
        """Fill the item (made before acting, so that what was done stays in the report if a later step fails);
        False when the revision is not tagged for EFS."""
        arn, services = item["task_definition"], item["services"]
        ecs = aws.client("ecs")
        definition, tags = self._reads.task_definition(arn)
        if FILE_SYSTEM_TAG not in tags:
            return False
        item["family"] = definition["family"]
        legacy = legacy_constraint_problem(definition, tags[FILE_SYSTEM_TAG])
        if legacy is not None:
            item["problems"].append(legacy)
        if SOURCE_TAG in tags:
            return True  # a revision the app registered
        try:
            mount = task_mount_from_tags(tags, definition, self._settings.mount_roots)
        except MountConfigError as exc:
            item["problems"].append(f"tag is invalid, so it is never rewritten: {exc}")
            return True
        if mount is None:
            return False  # not tagged for EFS
        mounted = mounts_file_system(definition, mount)
        # The flow's own verdict, so that repair (dry run or not) classifies a revision as the event handler does.
        standing = None if mounted else self._task_definitions.standing(ecs, arn, definition, tags, mount)
        verdict, latest = standing if standing is not None else (None, None)
        findings = task_definition_findings(services, mounted, verdict, latest, self._settings.update_services)
        item["problems"] += findings.problems
        if findings.fix is TaskDefinitionFix.UPDATE_SERVICES:
            for service in services:
                self._run.check_time(f"updating service {service}")
                if request.dry_run:
                    item["actions"].append(f"would update service {service} to {latest}")
                    continue
                ecs.update_service(cluster=cluster_arn, service=service, taskDefinition=latest)
                logger.info("service moved to the rewritten task definition by repair", service=service)
                count("ServicesUpdated")
                item["actions"].append(f"service {service} updated to {latest}")
        elif findings.fix is TaskDefinitionFix.REGISTER:
            if request.dry_run:
                item["actions"].append("would register the next revision with the EFS volume")
            else:
                registered = TaskDefinitionRegistered(EventOrigin(aws.account, aws.region), arn)
                outcome = self._task_definitions.on_registered(registered, aws)
                if outcome.startswith("registered "):
                    item["actions"].append(outcome)
                elif outcome.startswith("rejected: "):
                    report["errors"].append({"item": arn, "error": outcome})
                else:
                    item["problems"].append(f"not rewritten: {outcome}")
        return True

"""Repair of an examined group's hosts: each host waiting on our hook whose flow stalled is driven on by the launch
step, as the sweeper would; each host in service is marked, or sent the mount, on SSM's word. This flow reads
and acts; what is wrong and what follows is decided in repair.host_findings."""

from __future__ import annotations

from typing import Any

from chalicelib.container_instances.ecs import set_mount_attributes
from chalicelib.launch.actions import complete_lifecycle_action
from chalicelib.launch.flow import LifecycleFlow
from chalicelib.launch.groups import Group
from chalicelib.launch.sweeper import GRACE_SECONDS as SWEEPER_GRACE_SECONDS
from chalicelib.mount.attribute import mount_attribute_name
from chalicelib.mount.commands import agents_online, mount_on_record
from chalicelib.mount.spec import MountConfigError, MountSpec, mount_spec_from_tags
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.lifecycle_result import LifecycleResult
from chalicelib.plumbing.observability import logger
from chalicelib.plumbing.settings import Settings
from chalicelib.repair.cluster import ClusterReads, ContainerInstanceView
from chalicelib.repair.findings import Act, instance_item, lifecycle_item, record
from chalicelib.repair.host_findings import (
    HostFix,
    MountEvidence,
    after_completing,
    after_driving,
    after_sending,
    host_findings,
    in_service_plan,
    mount_command_running,
    mount_send_plan,
    settled_in_ecs,
    waiting_host_plan,
    waiting_problem,
)
from chalicelib.repair.request import RepairRequest
from chalicelib.repair.run import OutOfTime, RepairRun
from chalicelib.repair.scope import hosts_in_service, hosts_waiting

# A host in service that needs the mount sent: its report item, group and the group's mount.
PendingMount = tuple[dict[str, Any], Group, MountSpec, str]


def _attribute_value(view: ContainerInstanceView | None, spec: MountSpec) -> str | None:
    """The value of the group's mount attribute on the host's container instance, as ECS reports it."""
    return view.attributes.get(mount_attribute_name(spec.file_system_id, spec.mount_path)) if view else None


class HostRepair:
    """One run's repair of the examined groups' hosts: those waiting on our hook first, group by group, then those
    in service, whose mounts are sent last, once their agents are read (one call for all)."""

    def __init__(
        self,
        settings: Settings,
        lifecycle: LifecycleFlow,
        aws: AwsAccess,
        request: RepairRequest,
        run: RepairRun,
        reads: ClusterReads,
        cluster_arn: str | None,
    ) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
        self._aws = aws
        self._request = request
        self._run = run
        self._reads = reads
        self._cluster_arn = cluster_arn

    def repair(self, groups: list[Group]) -> None:
        in_service: list[tuple[Group, MountSpec, str]] = []
        for group in groups:
            spec = self._group_mount(group)
            self._waiting_hosts(group, spec)
            if spec is not None:
                in_service += [(group, spec, instance_id) for instance_id in hosts_in_service(group)]
        if in_service:
            self._hosts_in_service(in_service)

    def _group_mount(self, group: Group) -> MountSpec | None:
        """The group's mount; None with an error in the report when a tag is invalid. Its hosts in service then get
        nothing; a waiting host is still driven: the launch step decides it with the failure result, as it refuses
        the same tag."""
        try:
            return mount_spec_from_tags(group.tags, self._settings.mount_roots)
        except MountConfigError as exc:
            self._run.report["errors"].append({"item": group.name, "error": f"group tag is invalid: {exc}"})
            return None

    # --- waiting on our hook -------------------------------------------------------------------

    def _waiting_hosts(self, group: Group, spec: MountSpec | None) -> None:
        waiting = hosts_waiting(group)
        if not waiting or not self._run.guarded(
            group.name,
            "reading the group's lifecycle hooks",
            lambda: self._lifecycle.has_our_hook(self._aws, group.name),
        ):
            return
        for instance_id in waiting:
            self._run.check_time(f"host {instance_id} waiting in {group.name}")
            item = lifecycle_item(instance_id, group.name)
            try:
                self._waiting_host(item, group, spec, instance_id)
            except OutOfTime:
                raise  # finding its container instance may read clusters: the run stops cleanly, as between items
            except Exception as exc:
                self._run.error(instance_id, exc)
            self._run.report["lifecycle_actions"].append(item)

    def _waiting_host(self, item: dict[str, Any], group: Group, spec: MountSpec | None, instance_id: str) -> None:
        aws = self._aws
        if self._lifecycle.known_decided(aws, instance_id):
            return  # our action is decided; another launch hook holds the host
        # The sweeper's reading of when the wait began (Auto Scaling's launch activity), and its grace.
        now = self._lifecycle.clock()
        _, started = self._lifecycle.sweep_deadline(aws, group.name, instance_id, now)
        problem = waiting_problem(self._settings.hook_name, now, started, SWEEPER_GRACE_SECONDS)
        if problem is None:
            return
        settled = spec is not None and self._mount_settled(group, instance_id, spec)
        plan = waiting_host_plan(problem, settled, self._request.dry_run)
        if plan.act is Act.COMPLETE:
            hook_name = self._settings.hook_name
            completed = complete_lifecycle_action(
                aws.client("autoscaling"), hook_name, group.name, instance_id, LifecycleResult.CONTINUE
            )
            plan = after_completing(problem, completed)
        elif plan.act is Act.DRIVE:
            plan = after_driving(problem, self._lifecycle.drive(aws, group.name, instance_id, group=group))
        record(item, plan)

    def _mount_settled(self, group: Group, instance_id: str, spec: MountSpec) -> bool:
        """Whether SSM's record proves the waiting host's mount, as the launch step judges it (of this launch,
        the group's whole mount), and ECS shows nothing left for it (`settled_in_ecs`)."""
        commands = self._reads.mount_commands(instance_id)
        zone = group.instance_zones.get(instance_id, "")
        if not self._lifecycle.proves_launch_mounted(self._aws, group.name, instance_id, zone, spec, commands):
            return False
        view = self._container_instances({instance_id}).get(instance_id)
        return settled_in_ecs(view is not None, _attribute_value(view, spec), spec.mount_path)

    # --- in service ----------------------------------------------------------------------------

    def _container_instances(self, wanted: set[str]) -> dict[str, ContainerInstanceView]:
        return self._reads.hosts_container_instances(self._cluster_arn, wanted, self._request.auto_scaling_group)

    def _hosts_in_service(self, hosts: list[tuple[Group, MountSpec, str]]) -> None:
        views = self._container_instances({instance_id for *_, instance_id in hosts})
        pending: list[PendingMount] = []
        for group, spec, instance_id in hosts:
            self._run.check_time(f"host {instance_id} in {group.name}")
            item = instance_item(instance_id, group.name)
            self._run.report["instances"].append(item)
            try:
                view = views.get(instance_id)
                item["container_instance"] = view.arn if view else None
                if self._host_in_service(item, spec, view) is HostFix.SEND_MOUNT:
                    pending.append((item, group, spec, instance_id))
            except Exception as exc:  # one host's trouble never stops the others
                self._run.error(instance_id, exc)
        if pending:
            self._send_mounts(pending)

    def _host_in_service(self, item: dict[str, Any], spec: MountSpec, view: ContainerInstanceView | None) -> HostFix:
        facts = (spec.file_system_id, spec.mount_path, view is not None, _attribute_value(view, spec))
        findings = host_findings(*facts)
        if findings.fix is HostFix.NEEDS_EVIDENCE:
            findings = host_findings(*facts, evidence=self._evidence(item["instance_id"], spec))
        plan = in_service_plan(findings, spec.file_system_id, spec.mount_path, self._request.dry_run)
        item["problems"] += plan.problems
        if plan.act is Act.SET_ATTRIBUTE and view is not None:
            ecs = self._aws.client("ecs")
            set_mount_attributes(ecs, view.cluster_arn, view.arn, {spec.file_system_id: spec.mount_path})
            logger.info("mount attribute set by repair", instance_id=item["instance_id"], cluster=view.cluster_arn)
        item["actions"] += plan.actions
        return findings.fix

    def _evidence(self, instance_id: str, spec: MountSpec) -> MountEvidence:
        """SSM's own record of the group's file system on this host, judged by the rule the registration and
        status steps use (mount_commands.mount_on_record: the newest finished command of our document for it
        succeeded on the host, and asked for exactly the group's whole mount). No call for a one-host command."""
        commands = self._reads.mount_commands(instance_id)
        record = mount_on_record(self._aws.client("ssm"), instance_id, commands, spec, self._settings.mount_roots)
        if record is None:
            return MountEvidence(None)
        return MountEvidence(record.mount_path, record.difference)

    def _send_mounts(self, pending: list[PendingMount]) -> None:
        self._run.check_time("reading the hosts' SSM agents")
        online = self._run.guarded(
            self._run.report["cluster"] or self._request.auto_scaling_group or "",
            "reading the hosts' SSM agents",
            lambda: agents_online(self._aws.client("ssm"), [instance_id for *_, instance_id in pending]),
        )
        if online is None:
            return
        for item, group, spec, instance_id in pending:
            self._run.check_time(f"the mount of host {instance_id}")
            try:
                # Read for the host's evidence already: no call.
                commands = self._reads.mount_commands(instance_id)
                running = mount_command_running(commands, spec.file_system_id, self._settings.mount_roots)
                plan = mount_send_plan(
                    instance_id in online, running, spec.file_system_id, spec.mount_path, self._request.dry_run
                )
                if plan.act is Act.SEND_MOUNT:
                    zone = group.instance_zones.get(instance_id, "")
                    plan = after_sending(self._lifecycle.mount_in_service(self._aws, instance_id, zone, spec))
                record(item, plan)
            except Exception as exc:
                self._run.error(instance_id, exc)

"""What repair reads of a cluster: the cluster, its groups, its hosts' container instances, its services and each
host's mount commands. Batched to AWS's limits, each read at most once a run. What it knows of a host comes from
AWS's own records (ECS's container instances, SSM's mount commands), never from EC2 tags: anyone may write one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.launch.groups import Group
from chalicelib.mount.commands import commands_for
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.repair.run import ClusterNotFound, RepairRun
from chalicelib.repair.scope import auto_scaling_group_name, ec2_capacity_providers
from chalicelib.task_definitions.rewrite import tags_as_dict

# AWS's batch limits.
CONTAINER_INSTANCES_PER_CALL = 100
AUTO_SCALING_INSTANCES_PER_CALL = 50
GROUP_NAMES_PER_CALL = 50
SERVICES_PER_CALL = 10


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class ContainerInstanceView:
    arn: str
    cluster_arn: str
    attributes: dict[str, str | None] = field(default_factory=dict)


class ClusterReads:
    """One run's reads in one account and region, kept for the run: the cluster (with its capacity providers), the
    account's clusters (only with a group named alone), container instances per cluster, each examined group as
    DescribeAutoScalingGroups reported it (what its configuration checks read), and each host's mount commands."""

    def __init__(self, aws: AwsAccess, run: RepairRun, mount_document: str) -> None:
        self._aws = aws
        self._run = run
        self._mount_document = mount_document
        self._cluster: dict[str, Any] = {}
        self._account_clusters: list[str] | None = None
        self._container_instance_views: dict[str, dict[str, ContainerInstanceView]] = {}
        self._unreadable_clusters: set[str] = set()
        self._mount_commands: dict[str, list[dict[str, Any]]] = {}
        self.raw_groups: dict[str, dict[str, Any]] = {}

    def cluster_arn(self, cluster: str) -> str:
        aws = self._aws
        described = aws.client("ecs").describe_clusters(clusters=[cluster])
        found = [c for c in described.get("clusters", []) if c.get("status", "ACTIVE") != "INACTIVE"]
        if not found:
            raise ClusterNotFound(f"cluster {cluster} not found in account {aws.account}, region {aws.region}")
        self._cluster = found[0]
        return found[0]["clusterArn"]

    def group_names(self, cluster_arn: str) -> set[str]:
        """The cluster's groups: those of its capacity providers, and those of its container instances' hosts."""
        names = self._capacity_provider_groups()
        instance_ids = sorted(self.container_instances(cluster_arn))
        autoscaling = self._aws.client("autoscaling")
        for batch in _batches(instance_ids, AUTO_SCALING_INSTANCES_PER_CALL):
            found = autoscaling.describe_auto_scaling_instances(InstanceIds=batch)["AutoScalingInstances"]
            names |= {member["AutoScalingGroupName"] for member in found}
        return names

    def _capacity_provider_groups(self) -> set[str]:
        providers = ec2_capacity_providers(self._cluster)
        if not providers:
            return set()
        described = self._aws.client("ecs").describe_capacity_providers(capacityProviders=providers)
        names = (auto_scaling_group_name(provider) for provider in described.get("capacityProviders", []))
        return {name for name in names if name is not None}

    def groups(self, names: list[str]) -> list[Group]:
        autoscaling = self._aws.client("autoscaling")
        groups = []
        for batch in _batches(names, GROUP_NAMES_PER_CALL):
            pages = autoscaling.get_paginator("describe_auto_scaling_groups").paginate(AutoScalingGroupNames=batch)
            for page in pages:
                for raw in page["AutoScalingGroups"]:
                    self.raw_groups[raw["AutoScalingGroupName"]] = raw
                    instances = raw.get("Instances", [])
                    groups.append(
                        Group(
                            name=raw["AutoScalingGroupName"],
                            tags={tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])},
                            instance_states={i["InstanceId"]: i["LifecycleState"] for i in instances},
                            instance_zones={i["InstanceId"]: i["AvailabilityZone"] for i in instances},
                        )
                    )
        return groups

    def container_instances(self, cluster_arn: str, gone_is_empty: bool = False) -> dict[str, ContainerInstanceView]:
        """The cluster's container instances by EC2 instance id. `gone_is_empty`: a cluster deleted since it was
        listed has none."""
        known = self._container_instance_views.get(cluster_arn)
        if known is not None:
            return known
        ecs = self._aws.client("ecs")
        arns: list[str] = []
        try:
            for page in ecs.get_paginator("list_container_instances").paginate(cluster=cluster_arn):
                arns += page["containerInstanceArns"]
        except ClientError as exc:
            if not gone_is_empty or exc.response.get("Error", {}).get("Code") != "ClusterNotFoundException":
                raise
        found: dict[str, ContainerInstanceView] = {}
        for batch in _batches(arns, CONTAINER_INSTANCES_PER_CALL):
            described = ecs.describe_container_instances(cluster=cluster_arn, containerInstances=batch)
            for item in described["containerInstances"]:
                if item.get("ec2InstanceId"):
                    found[item["ec2InstanceId"]] = ContainerInstanceView(
                        arn=item["containerInstanceArn"],
                        cluster_arn=cluster_arn,
                        attributes={a["name"]: a.get("value") for a in item.get("attributes", [])},
                    )
        self._container_instance_views[cluster_arn] = found
        return found

    def _clusters_of_account(self) -> list[str]:
        """Every cluster of the request's account and region (ListClusters sees no other)."""
        if self._account_clusters is None:
            arns: list[str] = []
            for page in self._aws.client("ecs").get_paginator("list_clusters").paginate():
                arns += page["clusterArns"]
            self._account_clusters = sorted(arns)
        return self._account_clusters

    def hosts_container_instances(
        self, cluster_arn: str | None, wanted: set[str], group_name: str | None
    ) -> dict[str, ContainerInstanceView]:
        """The hosts' container instances, as ECS reports them (their ec2InstanceId): in the request's cluster,
        or, with only a group named (`group_name`), in the clusters of the request's account and region, read one
        cluster after another until every host is found. A host found in none is not registered. A cluster that
        cannot be read is an error in the report, once."""
        run = self._run
        if cluster_arn:
            clusters = [cluster_arn]
        else:
            if self._account_clusters is None:
                run.check_time("listing the account's clusters")
            listed = run.guarded(group_name or "", "listing the account's clusters", self._clusters_of_account)
            if listed is None:
                self._account_clusters = []  # the error is reported once
            clusters = listed or []
        found: dict[str, ContainerInstanceView] = {}
        for cluster in clusters:
            if wanted <= found.keys():
                break
            if cluster in self._unreadable_clusters:
                continue
            if cluster not in self._container_instance_views:
                run.check_time(f"reading the container instances of {cluster}")
            views = run.guarded(
                cluster,
                "reading the cluster's container instances",
                lambda cluster=cluster: self.container_instances(cluster, gone_is_empty=cluster != cluster_arn),
            )
            if views is None:
                self._unreadable_clusters.add(cluster)  # the error is reported once
            for instance_id, view in (views or {}).items():
                if instance_id in wanted:
                    found.setdefault(instance_id, view)
        return found

    def mount_commands(self, instance_id: str) -> list[dict[str, Any]]:
        """Our mount commands sent to the host, oldest first: one ListCommands (a page per 50)."""
        if instance_id not in self._mount_commands:
            self._mount_commands[instance_id] = commands_for(self._aws.client("ssm"), instance_id, self._mount_document)
        return self._mount_commands[instance_id]

    def services_by_task_definition(self, cluster_arn: str) -> dict[str, list[str]]:
        """The names of the cluster's services, by the task definition each runs."""
        ecs = self._aws.client("ecs")
        services: dict[str, list[str]] = {}
        service_arns: list[str] = []
        for page in ecs.get_paginator("list_services").paginate(cluster=cluster_arn):
            service_arns += page["serviceArns"]
        for batch in _batches(service_arns, SERVICES_PER_CALL):
            self._run.check_time("describing the cluster's services")
            for service in ecs.describe_services(cluster=cluster_arn, services=batch)["services"]:
                if service.get("taskDefinition"):
                    services.setdefault(service["taskDefinition"], []).append(service["serviceName"])
        return services

    def task_definition(self, arn: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The revision and its tags (only DescribeTaskDefinition returns them)."""
        described = self._aws.client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
        return described["taskDefinition"], tags_as_dict(described.get("tags") or [])

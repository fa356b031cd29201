"""What efs-automount records on a host (EC2 tags) and the ECS attribute that follows from it.

A confirmed mount is tagged on the instance; the host's container instance, once
known, is tagged too. Whichever of the two comes second sets the attribute
`efs-automount.<file-system-id>`. Each side writes its own tag before it reads the
other's, so that in any interleaving at least one of them sees both. Tags are hints
(anyone with ec2:CreateTags can write them): before the attribute is set, SSM proves
the mount and ECS the container instance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.accounts import AwsAccess
from chalicelib.aws_names import CLUSTER_ARN, CONTAINER_INSTANCE_ARN
from chalicelib.events import ContainerInstanceChange
from chalicelib.groups import group_tags
from chalicelib.mount_commands import proven_mounts
from chalicelib.mount_spec import FILE_SYSTEM_ID, FILE_SYSTEM_TAG, MountSpec
from chalicelib.observability import logger
from chalicelib.settings import Settings
from chalicelib.ttl_cache import TtlCache

MOUNTED_TAG_PREFIX = "efs-automount:mounted:"
CLUSTER_TAG = "efs-automount:ecs-cluster"
CONTAINER_INSTANCE_TAG = "efs-automount:container-instance"
GROUP_NAME_TAG = "aws:autoscaling:groupName"
ATTRIBUTE_PREFIX = "efs-automount."
# The cluster a host names in its mount summary (ECS_CLUSTER of /etc/ecs/ecs.config): a hint, checked with ECS.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")
# Container instance events come often; whether a group is tagged for EFS rarely changes.
GROUP_CACHE_SECONDS = 300


def attribute_name(file_system_id: str) -> str:
    return f"{ATTRIBUTE_PREFIX}{file_system_id}"


@dataclass(frozen=True)
class HostRecord:
    """What the instance's tags say: its group, confirmed mounts, and its container instance."""

    group_name: str | None = None
    mounts: dict[str, str] = field(default_factory=dict)
    cluster_arn: str | None = None
    container_instance_arn: str | None = None


def host_record_from_tags(tags: dict[str, str]) -> HostRecord:
    mounts = {
        key.removeprefix(MOUNTED_TAG_PREFIX): value
        for key, value in tags.items()
        if key.startswith(MOUNTED_TAG_PREFIX) and FILE_SYSTEM_ID.fullmatch(key.removeprefix(MOUNTED_TAG_PREFIX))
    }
    cluster = tags.get(CLUSTER_TAG)
    container_instance = tags.get(CONTAINER_INSTANCE_TAG)
    known = bool(cluster and CLUSTER_ARN.fullmatch(cluster) and container_instance)
    return HostRecord(
        group_name=tags.get(GROUP_NAME_TAG),
        mounts=mounts,
        cluster_arn=cluster if known else None,
        container_instance_arn=container_instance
        if known and CONTAINER_INSTANCE_ARN.fullmatch(container_instance)
        else None,
    )


def read_host_record(ec2: Any, instance_id: str) -> HostRecord:
    tags: dict[str, str] = {}
    for page in ec2.get_paginator("describe_tags").paginate(Filters=[{"Name": "resource-id", "Values": [instance_id]}]):
        tags.update({tag["Key"]: tag["Value"] for tag in page["Tags"]})
    return host_record_from_tags(tags)


def record_mount(ec2: Any, instance_id: str, spec: MountSpec) -> None:
    ec2.create_tags(
        Resources=[instance_id], Tags=[{"Key": f"{MOUNTED_TAG_PREFIX}{spec.file_system_id}", "Value": spec.mount_path}]
    )


def record_container_instance(ec2: Any, instance_id: str, cluster_arn: str, container_instance_arn: str) -> None:
    ec2.create_tags(
        Resources=[instance_id],
        Tags=[
            {"Key": CLUSTER_TAG, "Value": cluster_arn},
            {"Key": CONTAINER_INSTANCE_TAG, "Value": container_instance_arn},
        ],
    )


def set_mount_attributes(ecs: Any, cluster_arn: str, container_instance_arn: str, mounts: dict[str, str]) -> None:
    # With a full ARN as targetId, ECS needs no targetType.
    ecs.put_attributes(
        cluster=cluster_arn,
        attributes=[
            {"name": attribute_name(fs), "value": path, "targetId": container_instance_arn}
            for fs, path in sorted(mounts.items())
        ],
    )


def trusted_container_instance(described: list[dict[str, Any]], instance_id: str) -> str | None:
    """Of the container instances ECS described, the one ECS reports on the host (its ec2InstanceId); None
    when there is none. Whatever named them (a tag, an event) is only a hint."""
    for container_instance in described:
        if container_instance.get("ec2InstanceId") == instance_id and CONTAINER_INSTANCE_ARN.fullmatch(
            container_instance.get("containerInstanceArn", "")
        ):
            return container_instance["containerInstanceArn"]
    return None


def _describe_container_instances(ecs: Any, cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    try:
        return ecs.describe_container_instances(cluster=cluster, containerInstances=arns).get("containerInstances", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ClusterNotFoundException", "ClientException"):
            return []
        raise


def is_hosts_container_instance(ecs: Any, cluster: str, container_instance_arn: str, instance_id: str) -> bool:
    """Whether ECS reports the container instance as running on the host: one DescribeContainerInstances."""
    described = _describe_container_instances(ecs, cluster, [container_instance_arn])
    return trusted_container_instance(described, instance_id) == container_instance_arn


def find_container_instance(ecs: Any, cluster: str, instance_id: str) -> str | None:
    """The host's container instance in the cluster, as ECS reports it, or None when it has not registered
    there. Only a container instance whose ec2InstanceId ECS reports equal to the host is believed."""
    try:
        arns = ecs.list_container_instances(cluster=cluster, filter=f"ec2InstanceId == {instance_id}")[
            "containerInstanceArns"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ClusterNotFoundException", "ClientException"):
            return None
        raise
    if not arns:
        return None
    return trusted_container_instance(_describe_container_instances(ecs, cluster, arns[:100]), instance_id)


class ContainerInstanceFlow:
    """Sets the mount attribute on container instances of mounted hosts when they register.

    The host's tags are hints: the attribute is set only for a mount SSM's record proves, and only on a
    container instance ECS reports on that host. The event may come from anyone allowed to invoke the
    function directly, not only from ECS through EventBridge."""

    # Bounds the memory of a long-lived container; forgetting only costs a lookup.
    MAX_REMEMBERED = 10_000

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._group_tags: TtlCache[dict[str, str]] = TtlCache(GROUP_CACHE_SECONDS)
        # Container instances needing nothing more from this flow: the status flow takes it from there.
        self._settled: set[str] = set()

    def skip_reason(self, change: ContainerInstanceChange) -> str | None:
        """Why a state change needs nothing from us, decided without any AWS call."""
        if change.instance_id is None:
            return "not an EC2 instance"
        if any(name.startswith(ATTRIBUTE_PREFIX) for name in change.attributes):
            return "attribute already set"
        if change.container_instance_arn in self._settled:
            return "already recorded"
        return None

    def on_change(self, change: ContainerInstanceChange, aws: AwsAccess) -> str:
        assert change.instance_id is not None, "skip_reason lets no instance-less change through"
        ec2 = aws.client("ec2")
        record = read_host_record(ec2, change.instance_id)
        proven, unproven = self._proven(aws, change.instance_id, record)
        if not proven and record.container_instance_arn != change.container_instance_arn:
            if not record.mounts and not self._group_wants_efs(record, aws):
                self._settle(change.container_instance_arn)
                return "ignored: host is not in a group tagged for EFS"
            record_container_instance(ec2, change.instance_id, change.cluster_arn, change.container_instance_arn)
            # The mount may have been confirmed since the first read: read again after writing.
            record = read_host_record(ec2, change.instance_id)
            proven, unproven = self._proven(aws, change.instance_id, record)
        for file_system_id, path in unproven.items():
            logger.warning(
                "mounted tag not backed by a successful mount command in SSM; no attribute from it",
                tag=f"{MOUNTED_TAG_PREFIX}{file_system_id}",
                mount_path=path,
            )
        if not proven:
            self._settle(change.container_instance_arn)
            logger.info("container instance recorded; the attribute follows the mount", cluster=change.cluster_arn)
            return "recorded, waiting for the mount"
        ecs = aws.client("ecs")
        if not is_hosts_container_instance(ecs, change.cluster_arn, change.container_instance_arn, change.instance_id):
            logger.warning("ECS does not report this container instance on the host; no attribute set")
            return "ignored: container instance is not the host's"
        set_mount_attributes(ecs, change.cluster_arn, change.container_instance_arn, proven)
        logger.info("mount attribute set on registration", mounts=proven, cluster=change.cluster_arn)
        return "attribute set"

    def _proven(self, aws: AwsAccess, instance_id: str, record: HostRecord) -> tuple[dict[str, str], dict[str, str]]:
        """The host's tagged mounts that SSM's record proves, and the rest; no call when none is tagged."""
        return proven_mounts(
            aws.client("ssm"), instance_id, self._settings.mount_document, self._settings.mount_roots, record.mounts
        )

    def _group_wants_efs(self, record: HostRecord, aws: AwsAccess) -> bool:
        if record.group_name is None:
            return False
        name = record.group_name
        # Tags only: DescribeAutoScalingGroups would list every instance of a large group.
        tags = self._group_tags.get(
            (aws.account, aws.region, name), lambda: group_tags(aws.client("autoscaling"), name)
        )
        return FILE_SYSTEM_TAG in tags

    def _settle(self, container_instance_arn: str) -> None:
        if len(self._settled) >= self.MAX_REMEMBERED:
            self._settled.clear()
        self._settled.add(container_instance_arn)

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
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.accounts import AwsAccess
from chalicelib.aws_names import CLUSTER_ARN, CONTAINER_INSTANCE_ARN
from chalicelib.events import ContainerInstanceChange
from chalicelib.groups import describe_member
from chalicelib.mount_commands import mounts_on_record
from chalicelib.mount_spec import FILE_SYSTEM_ID, MountSpec
from chalicelib.observability import logger
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.lifecycle import LifecycleFlow

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
    there: one ListContainerInstances whose filter ECS evaluates on each container instance's own
    `ec2InstanceId` (cluster query language), so the answer is ECS's, not a tag's or an event's."""
    try:
        arns = ecs.list_container_instances(cluster=cluster, filter=f"ec2InstanceId == {instance_id}")[
            "containerInstanceArns"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("ClusterNotFoundException", "ClientException"):
            return None
        raise
    # One host registers once per cluster; more than one answer is not what was asked for.
    if len(arns) != 1 or not CONTAINER_INSTANCE_ARN.fullmatch(arns[0]):
        return None
    return str(arns[0])


class ContainerInstanceFlow:
    """A container instance registered (or changed): the moment to act on its host.

    A host waiting on our hook gets its mount now: ECS registers a host at about the time its SSM agent comes
    online (README: "Performance"). A host already mounted gets the attribute, for the mounts SSM's record
    proves, on the container instance only when ECS reports it on that host. The event may come from anyone
    allowed to invoke the function directly, not only from ECS through EventBridge: it names, AWS confirms."""

    # Bounds the memory of a long-lived container; forgetting only costs a lookup.
    MAX_REMEMBERED = 10_000

    def __init__(self, settings: Settings, lifecycle: LifecycleFlow | None = None) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
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
        self._settle(change.container_instance_arn)
        member = describe_member(aws.client("autoscaling"), change.instance_id)
        if member is not None and member.lifecycle_state == "Pending:Wait" and self._lifecycle is not None:
            return self._lifecycle.drive(
                aws,
                member.group_name,
                change.instance_id,
                member=member,
                container_instance=(change.cluster_arn, change.container_instance_arn),
            )
        mounts = mounts_on_record(
            aws.client("ssm"), change.instance_id, self._settings.mount_document, self._settings.mount_roots
        )
        if not mounts:
            logger.info("no mount on SSM's record for the host; the mount's status step sets the attribute")
            return "no mount yet: the attribute follows the mount"
        ecs = aws.client("ecs")
        if not is_hosts_container_instance(ecs, change.cluster_arn, change.container_instance_arn, change.instance_id):
            logger.warning("ECS does not report this container instance on the host; no attribute set")
            return "ignored: container instance is not the host's"
        set_mount_attributes(ecs, change.cluster_arn, change.container_instance_arn, mounts)
        logger.info("mount attribute set on registration", mounts=mounts, cluster=change.cluster_arn)
        return "attribute set"

    def _settle(self, container_instance_arn: str) -> None:
        if len(self._settled) >= self.MAX_REMEMBERED:
            self._settled.clear()
        self._settled.add(container_instance_arn)

"""A host's container instance as ECS reports it, and the mount attributes set on it.

Each is found or written only on ECS's word that the container instance runs on the host: an event or a
mount summary only names where to look.
"""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.mount.attribute import mount_attribute_name
from chalicelib.plumbing.names import CONTAINER_INSTANCE_ARN

# The cluster a host names in its mount summary (ECS_CLUSTER of /etc/ecs/ecs.config): a hint, checked with ECS.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


def set_mount_attributes(ecs: Any, cluster_arn: str, container_instance_arn: str, mounts: dict[str, str]) -> None:
    """Mark the container instance for each mount (file system -> path). An attribute of an earlier release
    (`efs-automount.<fs>`) is left in place: revisions rewritten then still ask for it (docs/pipelines.md)."""
    # With a full ARN as targetId, ECS needs no targetType.
    ecs.put_attributes(
        cluster=cluster_arn,
        attributes=[
            {"name": mount_attribute_name(fs, path), "value": path, "targetId": container_instance_arn}
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

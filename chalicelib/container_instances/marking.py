"""Marking a mounted host: the mount attribute set on its container instance, found where ECS reports it.

The cluster to look in is a hint (the cluster this container last found the group's hosts in, or the one the
host's mount summary names); ECS's word that the container instance runs on the host decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.container_instances.ecs import (
    CLUSTER_NAME,
    find_container_instance,
    is_hosts_container_instance,
    set_mount_attributes,
)
from chalicelib.mount.script_result import parse_summary
from chalicelib.mount.spec import MountSpec
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.memory import BoundedMemory
from chalicelib.plumbing.observability import logger

# Clusters asked for a host's container instance when nothing names its cluster.
MAX_CLUSTERS_SEARCHED = 20


class MountMarks:
    """Sets the mount attribute on a host's container instance once SSM confirmed its mount."""

    def __init__(self) -> None:
        # The cluster this container last found each group's hosts registered in (a hint ECS confirms).
        self._clusters: BoundedMemory[tuple[str, str, str], str] = BoundedMemory()

    def mark(
        self,
        aws: AwsAccess,
        instance_id: str,
        spec: MountSpec,
        command: dict[str, Any],
        group_name: str | None,
        container_instance: tuple[str, str] | None = None,
    ) -> None:
        """A mount SSM confirmed: set the attribute on the host's container instance when it is registered.
        Not registered yet: its registration's step sets it, on the same proof (launch/registration.py).
        `container_instance`: (cluster, ARN) an event named, a hint ECS must confirm."""
        ecs = aws.client("ecs")
        found = None
        if container_instance is not None:
            cluster, arn = container_instance
            found = (cluster, arn) if is_hosts_container_instance(ecs, cluster, arn, instance_id) else None
        if found is None:
            found = self._find(aws, instance_id, command, group_name)
        if found is None:
            logger.info("host has no container instance yet; its registration sets the attribute")
            return
        cluster, arn = found
        set_mount_attributes(ecs, cluster, arn, {spec.file_system_id: spec.mount_path})
        logger.info("mount attribute set", cluster=cluster)

    def _find(
        self, aws: AwsAccess, instance_id: str, command: dict[str, Any], group_name: str | None
    ) -> tuple[str, str] | None:
        """The host's container instance as ECS reports it, in the cluster this container last found the group's
        hosts in (a hint: most groups feed one cluster), else in the cluster the host's mount summary names
        (a hint, one GetCommandInvocation). The registration event may be lost: ECS is asked either way."""
        ecs = aws.client("ecs")
        group_key = (aws.account, aws.region, group_name or "")
        tried: set[str] = set()

        def candidates() -> Iterator[str | None]:
            yield self._clusters.get(group_key)
            named = _cluster_named_by_host(aws, instance_id, command)
            yield named
            if named is None and not self._clusters.get(group_key):
                # Nothing names the host's cluster (its ECS_CLUSTER is not set in ecs.config): every cluster here.
                for page in ecs.get_paginator("list_clusters").paginate():
                    yield from page.get("clusterArns", [])

        for cluster in candidates():
            name = (cluster or "").rsplit("/", 1)[-1]
            if not name or name in tried or len(tried) >= MAX_CLUSTERS_SEARCHED:
                continue
            tried.add(name)
            arn = find_container_instance(ecs, cluster, instance_id)
            if arn is not None:
                if group_name:
                    self._clusters.remember(group_key, cluster)
                return cluster, arn
        return None


def _cluster_named_by_host(aws: AwsAccess, instance_id: str, command: dict[str, Any]) -> str | None:
    """The cluster the host joined, from its mount summary (a hint: ECS confirms); None when it has none."""
    try:
        invocation = aws.client("ssm").get_command_invocation(CommandId=command["CommandId"], InstanceId=instance_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") not in ("InvocationDoesNotExist", "InvalidCommandId"):
            raise
        return None
    cluster = parse_summary(invocation.get("StandardOutputContent", "")).get("ecs_cluster")
    if cluster == "":
        return None  # no ECS configuration on the host: not an ECS host
    if not isinstance(cluster, str) or not CLUSTER_NAME.fullmatch(cluster):
        logger.info("mount summary names no valid ECS cluster; the registration event sets the attribute")
        return None
    return cluster

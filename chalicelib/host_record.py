"""The mount attribute (`efs-automount.<file-system-id>.<path-id>`, chalicelib.mount_attribute) on a mounted
host's container instance.

Two steps can set it, on the same proof (SSM's record of a successful mount of exactly what the host's group
asks now; ECS's word that the container instance runs on the host): the mount's status step, which asks ECS
for the host's container instance, and the registration's step, which asks SSM for the host's mount. Each
reads the other's side after its own has happened (the mount confirmed, the container instance registered),
so in any order at least one of them sees both. Nothing is written on the host itself.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.accounts import AwsAccess
from chalicelib.aws_names import CONTAINER_INSTANCE_ARN
from chalicelib.events import ContainerInstanceChange
from chalicelib.groups import describe_member
from chalicelib.mount_attribute import MOUNT_ATTRIBUTE_NAME, mount_attribute_name
from chalicelib.mount_commands import commands_for, mount_on_record
from chalicelib.observability import logger
from chalicelib.settings import Settings

if TYPE_CHECKING:
    from chalicelib.lifecycle import LifecycleFlow

# The cluster a host names in its mount summary (ECS_CLUSTER of /etc/ecs/ecs.config): a hint, checked with ECS.
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,255}")


def set_mount_attributes(ecs: Any, cluster_arn: str, container_instance_arn: str, mounts: dict[str, str]) -> None:
    """Mark the container instance for each mount (file system -> path). An attribute of an earlier release
    (`efs-automount.<fs>`) is left in place: revisions rewritten then still ask for it (README: "Task definitions")."""
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


class ContainerInstanceFlow:
    """A container instance registered (or changed): the moment to act on its host.

    A host waiting on our hook gets its mount now: ECS registers a host at about the time its SSM agent comes
    online (README: "Performance"). A host already mounted gets the attribute when SSM's record proves exactly
    the mount its group asks for now (mount_commands.mount_on_record), on the container instance only when ECS
    reports it on that host; a host in no group gets none. The event may come from anyone allowed to invoke the
    function directly, not only from ECS through EventBridge: it names, AWS confirms."""

    # Bounds the memory of a long-lived container; forgetting only costs a lookup.
    MAX_REMEMBERED = 10_000

    def __init__(self, settings: Settings, lifecycle: LifecycleFlow) -> None:
        self._settings = settings
        self._lifecycle = lifecycle
        # Container instances needing nothing more from this flow: the status flow takes it from there.
        self._settled: set[str] = set()

    def skip_reason(self, change: ContainerInstanceChange) -> str | None:
        """Why a state change needs nothing from us, decided without any AWS call."""
        if change.instance_id is None:
            return "not an EC2 instance"
        # Only this release's attribute: a host carrying only an earlier release's `efs-automount.<fs>` is
        # looked at once, and gets the attribute named after its path when SSM's record proves the mount.
        if any(MOUNT_ATTRIBUTE_NAME.fullmatch(name) for name in change.attributes):
            return "attribute already set"
        if change.container_instance_arn in self._settled:
            return "already recorded"
        return None

    def on_change(self, change: ContainerInstanceChange, aws: AwsAccess) -> str:
        outcome = self._act(change, aws)
        # Settled only once handled: Lambda's retry of a failed attempt must not be skipped.
        self._settle(change.container_instance_arn)
        return outcome

    def _act(self, change: ContainerInstanceChange, aws: AwsAccess) -> str:
        assert change.instance_id is not None, "skip_reason lets no instance-less change through"
        member = describe_member(aws.client("autoscaling"), change.instance_id)
        if member is not None and member.lifecycle_state == "Pending:Wait":
            if not self._lifecycle.agent_online(aws, change.instance_id):
                # Registered before its SSM agent came online: nothing can be sent yet. A look in a few seconds,
                # one agent check each, instead of the whole step (README: "Performance").
                return self._lifecycle.wait_for_agent(aws, member.group_name, change.instance_id)
            return self._lifecycle.drive(
                aws,
                member.group_name,
                change.instance_id,
                member=member,
                container_instance=(change.cluster_arn, change.container_instance_arn),
                agent_online=True,
            )
        if member is None:
            # No group asks for a mount, so none counts as confirmed (contract: "exactly what the group asks now").
            logger.info("host is in no Auto Scaling group; no attribute set")
            return "ignored: host is in no Auto Scaling group"
        spec = self._lifecycle.group_mount_spec(aws, member.group_name)
        if spec is None:
            return "ignored: its group asks for no mount"
        # SSM's record proves a mount whether or not the host's agent is online now.
        ssm = aws.client("ssm")
        commands = commands_for(ssm, change.instance_id, self._settings.mount_document)
        record = mount_on_record(ssm, change.instance_id, commands, spec, self._settings.mount_roots)
        if record is None:
            logger.info("no mount on SSM's record for the host; the mount's status step sets the attribute")
            return "no mount yet: the attribute follows the mount"
        if record.difference is not None:
            logger.warning(
                "the host's mount is not the one its group asks for; no attribute set", differs=record.difference
            )
            return f"not marked: mounted otherwise ({record.difference})"
        ecs = aws.client("ecs")
        if not is_hosts_container_instance(ecs, change.cluster_arn, change.container_instance_arn, change.instance_id):
            logger.warning("ECS does not report this container instance on the host; no attribute set")
            return "ignored: container instance is not the host's"
        set_mount_attributes(
            ecs, change.cluster_arn, change.container_instance_arn, {spec.file_system_id: spec.mount_path}
        )
        logger.info("mount attribute set on registration", mount_path=spec.mount_path, cluster=change.cluster_arn)
        return "attribute set"

    def _settle(self, container_instance_arn: str) -> None:
        if len(self._settled) >= self.MAX_REMEMBERED:
            self._settled.clear()
        self._settled.add(container_instance_arn)

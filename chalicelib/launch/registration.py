"""The mount attribute (`efs-automount.<file-system-id>.<path-id>`, chalicelib.mount.attribute) on a mounted
host's container instance.

Two steps can set it, on the same proof (SSM's record of a successful mount of exactly what the host's group
asks now; ECS's word that the container instance runs on the host): the mount's status step, which asks ECS
for the host's container instance, and the registration's step, which asks SSM for the host's mount. Each
reads the other's side after its own has happened (the mount confirmed, the container instance registered),
so in any order at least one of them sees both. Nothing is written on the host itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.container_instances.ecs import (
    is_hosts_container_instance,
    set_mount_attributes,
)
from chalicelib.launch.groups import describe_member
from chalicelib.mount.attribute import MOUNT_ATTRIBUTE_NAME
from chalicelib.mount.commands import commands_for, mount_on_record
from chalicelib.plumbing.accounts import AwsAccess
from chalicelib.plumbing.events import ContainerInstanceChange
from chalicelib.plumbing.observability import logger
from chalicelib.plumbing.settings import Settings

if TYPE_CHECKING:
    from chalicelib.launch.flow import LifecycleFlow


class ContainerInstanceFlow:
    """A container instance registered (or changed): the moment to act on its host.

    A host waiting on our hook gets its mount now: ECS registers a host at about the time its SSM agent comes
    online (docs/performance.md). A host already mounted gets the attribute when SSM's record proves exactly
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
                # one agent check each, instead of the whole step (docs/performance.md).
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

"""The drift repair finds: hosts never mounted, mounted hosts whose record was lost, task definitions whose
event never came; Lambda's context as repair gets it; and the reads of its report."""

from __future__ import annotations

from typing import Any

from chalice.local import LambdaContext

from simulation import hosts, moto_gaps
from simulation.landscape import Landscape, register_container_instance, scale_out
from tests.conftest import OWN_ACCOUNT, Lambda, deliver_outbox, reset_app_caches
from tests.support.launch import tag_group

FS_TAG = "efs-automount:file-system-id"
# Read-only operations: a dry run makes no call outside this list.
READ_PREFIXES = ("Describe", "List", "Get")
# What the app's flows once wrote on a host (issue 13 removes them): repair must need none of them.
HOST_RECORD_TAGS = ("efs-automount:ecs-cluster", "efs-automount:container-instance")


class RepairContext(LambdaContext):
    """Lambda's context for repair: its real timeout (chalice's test client gives every function 3 s)."""

    remaining_millis: int | None = None

    def __init__(self, function_name: str, memory_size: int, **_: object) -> None:
        super().__init__(function_name, memory_size, max_runtime_ms=900_000)
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{OWN_ACCOUNT}:function:efs-automount-dev-{function_name}"

    def get_remaining_time_in_millis(self) -> int:
        if RepairContext.remaining_millis is not None:
            return RepairContext.remaining_millis
        return super().get_remaining_time_in_millis()


def without_host_record(land: Landscape, instance_ids: list[str]) -> None:
    """The hosts carry none of the EC2 tags the app once wrote: the evidence is SSM's and ECS's alone."""
    ec2 = land.client("ec2")
    keys = [*HOST_RECORD_TAGS, f"efs-automount:mounted:{land.file_system_id}"]
    ec2.delete_tags(Resources=list(instance_ids), Tags=[{"Key": key} for key in keys])


def mounted_hosts(land: Landscape, bus: Any, count: int) -> dict[str, str]:
    """Hosts launched, registered and mounted through the app's normal flow: SSM holds the successful mount,
    ECS the container instance (with its attribute), and no EC2 tag says anything. Instance id -> container
    instance."""
    instance_ids = scale_out(land, count)
    hosts.boot_agents(land, instance_ids)
    deliver_outbox(bus)
    container_instances = {i: register_container_instance(land, i) for i in instance_ids}
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    without_host_record(land, instance_ids)
    return container_instances


def host_in_service_before_the_tag(land: Landscape, bus: Any) -> tuple[str, str]:
    """The group had no file system tag when this host launched: let in, never mounted. Returns the host and its
    container instance."""
    land.client("autoscaling").delete_tags(
        Tags=[{"ResourceId": land.group_name, "ResourceType": "auto-scaling-group", "Key": FS_TAG}]
    )
    reset_app_caches()  # a minute later: the app's cached group tags have expired
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    tag_group(land, FS_TAG, land.file_system_id)
    reset_app_caches()
    return instance_id, container_instance


def task_definition_registered_while_down(land: Landscape, family: str = "reports", service: str = "reports") -> str:
    """A revision tagged for the landscape's file system, run by a service, whose registration event never reached
    the app. Returns its ARN."""
    ecs = land.client("ecs")
    arn = ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:1", "memory": 256}],
        tags=[{"key": FS_TAG, "value": land.file_system_id}],
    )["taskDefinition"]["taskDefinitionArn"]
    moto_gaps.WORLD.drain()  # the CloudTrail event never reached the app
    ecs.create_service(cluster=land.cluster_name, serviceName=service, taskDefinition=arn, desiredCount=0)
    return arn


def by_instance(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's host items by instance id."""
    return {item["instance_id"]: item for item in report["instances"]}


def changes(lambda_: Lambda) -> list[str]:
    """The operations the Lambda made that are not reads."""
    return [op for op in lambda_.operations() if not op.split(":", 1)[1].startswith(READ_PREFIXES)]

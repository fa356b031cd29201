"""`make demo`'s last scene: drift that events cannot fix, found by a repair dry run, fixed by repair, and a
second repair that finds nothing.

Three kinds of drift: a host put in service before its group was tagged, a task definition registered
while the app was down (its CloudTrail event lost), and an attribute lost when a host's container
instance registered again while the app was down.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from typing import Any

FS_TAG = "efs-automount:file-system-id"


def _repair_invoker(app: Any, account: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Invoke repair as Lambda does, with its deployed 900 s timeout (chalice's local context gives 3 s)."""
    from chalice.local import LambdaContext

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext("repair", memory_size=512, max_runtime_ms=900_000)
        context.invoked_function_arn = f"arn:aws:lambda:us-east-1:{account}:function:efs-automount-dev-repair"
        with contextlib.redirect_stdout(io.StringIO()):  # EMF metrics, filed with the logs by Lambda
            return app.handler_map["repair"](payload, context)

    return invoke


def _forget_app_caches() -> None:
    """The app was redeployed: its containers start cold (settings, cached group tags)."""
    from chalicelib import entrypoints
    from chalicelib.plumbing import accounts, settings

    settings.load_settings.cache_clear()
    accounts.aws_accounts.cache_clear()
    for flow in (entrypoints.lifecycle_flow, entrypoints.container_instance_flow, entrypoints.task_definition_flow):
        flow.cache_clear()


def _group_tag(autoscaling: Any, group_name: str, value: str | None) -> None:
    tag = {"ResourceId": group_name, "ResourceType": "auto-scaling-group", "Key": FS_TAG}
    if value is None:
        autoscaling.delete_tags(Tags=[tag])
    else:
        autoscaling.create_or_update_tags(Tags=[{**tag, "Value": value, "PropagateAtLaunch": False}])


def repair_scene(
    app: Any,
    land: Any,
    registered: dict[str, str],
    deliver: Callable[[list[dict[str, Any]]], None],
    timeline: Callable[[str, str], None],
    agents: Any,
) -> tuple[list[str], dict[str, Any]]:
    """Make the drift, then dry run, repair, and repair again; returns the printed reports and the last one."""
    from simulation import hosts, moto_gaps
    from simulation.landscape import register_container_instance, scale_out
    from tools.repair import render_table

    autoscaling, ecs = land.client("autoscaling"), land.client("ecs")

    _group_tag(autoscaling, land.group_name, None)
    _forget_app_caches()
    timeline("platform team", f"removed the group's {FS_TAG} tag for a while")
    (untagged,) = scale_out(land, 1)
    hosts.boot_agents(land, [untagged])
    deliver(moto_gaps.WORLD.drain())
    registered[untagged] = register_container_instance(land, untagged)
    deliver(moto_gaps.WORLD.drain())
    _group_tag(autoscaling, land.group_name, land.file_system_id)
    timeline("platform team", f"tagged the group again: {untagged} is in service, never mounted")

    timeline("platform team", "the app is down (a bad deploy) for a few minutes; meanwhile:")
    source = ecs.register_task_definition(
        family="reports",
        containerDefinitions=[{"name": "app", "image": "public.ecr.aws/app/reports:1", "memory": 256}],
        tags=[{"key": FS_TAG, "value": land.file_system_id}],
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=land.cluster_name, serviceName="reports", taskDefinition=source, desiredCount=0)
    moto_gaps.WORLD.drain()
    timeline("pipeline", "registered reports:1 tagged for EFS and created service reports: the event is lost")
    mounted = next(i for i, arn in registered.items() if i != untagged and _has_attribute(land, arn))
    ecs.deregister_container_instance(cluster=land.cluster_name, containerInstance=registered[mounted], force=True)
    registered[mounted] = register_container_instance(land, mounted)
    moto_gaps.WORLD.drain()
    timeline("ECS agent", f"{mounted} registered again (a new container instance has no attributes): event lost")

    # The app is back. UPDATE_SERVICES moves the service to the rewrite, so the second run finds nothing.
    os.environ["UPDATE_SERVICES"] = "true"
    _forget_app_caches()
    invoke = _repair_invoker(app, land.account)
    printed = []
    for title, payload in (
        ("make repair CLUSTER=apps DRY_RUN=1", {"cluster": land.cluster_name, "dry_run": True}),
        ("make repair CLUSTER=apps", {"cluster": land.cluster_name}),
    ):
        report = invoke(payload)
        summary = report["summary"]
        timeline("operator", f"{title}: {summary['with_problems']} problem(s), {summary['actions']} action(s)")
        printed += [f"$ {title}", *(f"  {line}" for line in render_table(report).splitlines()), ""]
    for command, instance_id, status in agents.answer():
        timeline("SSM agent", f"{instance_id}: repair's mount command {command[:8]} finished: {status}")
    deliver(moto_gaps.WORLD.drain())
    last = invoke({"cluster": land.cluster_name})
    timeline("operator", f"make repair CLUSTER=apps again: {last['summary']['with_problems']} problem(s)")
    printed += ["$ make repair CLUSTER=apps", *(f"  {line}" for line in render_table(last).splitlines())]
    os.environ.pop("UPDATE_SERVICES", None)
    return printed, last


def _has_attribute(land: Any, container_instance_arn: str) -> bool:
    from simulation.landscape import mount_attribute

    return mount_attribute(land, container_instance_arn) is not None

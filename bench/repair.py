"""Repair at scale: a drifted cluster of many hosts and services, its dry run, the repair and the second run,
each metered and projected against the function's timeout."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from bench.deployed import deployed_settings, function_environment, patched_env, stack_resources
from bench.meter import ASSUMED_AWS_CALL_SECONDS, METER, Meter, fresh_app, invoker
from bench.report import progress


def repair_at_scale(host_count: int, service_count: int) -> dict[str, Any]:
    """A cluster of `host_count` hosts in service and `service_count` services, a few of each drifted: the
    dry run, the repair, and the second run after the mounts' status events, each metered."""
    from moto import mock_aws

    meter = METER
    # With UPDATE_SERVICES the service of a missed rewrite moves to it, so the second run finds nothing at all.
    with mock_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import hosts, moto_gaps
        from simulation.eventbus import EventBus

        app = fresh_app()
        from simulation.landscape import build_landscape, register_container_instance, scale_out

        moto_gaps.install()
        moto_gaps.WORLD.reset()
        land = build_landscape(boto3.Session(region_name="us-east-1"))
        drift = drifted_cluster(
            land, host_count, service_count, hosts, moto_gaps, register_container_instance, scale_out
        )
        # The stack deployed with UpdateServices=true (its parameter; the function's setting follows it).
        settings = deployed_settings("repair", {**stack_resources(land.client), "UpdateServices": "true"})
        deployed.enter_context(patched_env(function_environment(settings)))
        invoke = invoker(app, meter, settings)
        runs: dict[str, Any] = {}
        for name, payload in (
            ("dry_run", {"cluster": land.cluster_name, "dry_run": True}),
            ("repair", {"cluster": land.cluster_name}),
        ):
            meter.reset()
            invoke.seconds = 0.0  # type: ignore[attr-defined]
            report = invoke("repair", payload)
            runs[name] = run_figures(report, meter, invoke.seconds)  # type: ignore[attr-defined]
        hosts.answer(land, "Success")
        # The status events settle the hosts (not measured): in this process, with repair's cached settings.
        bus = EventBus(app, invoker(app, Meter(), settings))
        for event in moto_gaps.WORLD.drain():
            bus.deliver(event)
        meter.reset()
        invoke.seconds = 0.0  # type: ignore[attr-defined]
        runs["second_run"] = run_figures(invoke("repair", {"cluster": land.cluster_name}), meter, invoke.seconds)  # type: ignore[attr-defined]
    slowest = max(runs.values(), key=lambda r: r["projected_seconds"])
    return {
        "hosts": host_count,
        "services": service_count,
        "drift": drift,
        **runs,
        "timeout_seconds": settings.timeout_s,
        "fits_in_one_invocation": slowest["projected_seconds"] < settings.timeout_s,
        "note": f"projected = own time + AWS calls x {ASSUMED_AWS_CALL_SECONDS} s (calls are sequential)",
    }


def drifted_cluster(
    land: Any, host_count: int, service_count: int, hosts: Any, moto_gaps: Any, register: Any, scale_out: Any
) -> dict[str, int]:
    """Hosts put in service (no hook) and registered, most mounted (SSM holds each one's successful mount
    command, as the launch step leaves it) with the attribute set; 2% never mounted, 1% with the attribute lost.
    No host carries an EC2 tag: repair reads none. Services mostly on plain or rewritten revisions, 2.5% on a
    tagged revision that was never rewritten."""
    from chalicelib.mount.attribute import mount_attribute_name

    autoscaling, ecs, ssm = (land.client(s) for s in ("autoscaling", "ecs", "ssm"))
    hook = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=land.group_name)["LifecycleHooks"][0]
    autoscaling.delete_lifecycle_hook(LifecycleHookName=land.hook_name, AutoScalingGroupName=land.group_name)
    instance_ids = scale_out(land, host_count)
    hosts.boot_agents(land, instance_ids)
    # The app (and its hook) installed once the hosts were running: the group is set up as the README asks.
    autoscaling.put_lifecycle_hook(
        **{k: hook[k] for k in ("LifecycleHookName", "AutoScalingGroupName", "LifecycleTransition", "DefaultResult")},
        HeartbeatTimeout=hook["HeartbeatTimeout"],
    )
    container_instances = {i: register(land, i) for i in instance_ids}
    never = max(1, host_count // 50)
    lost = max(1, host_count // 100)
    fs, path = land.file_system_id, f"/mnt/efs/{land.file_system_id}"
    parameters = {"FileSystemId": [fs], "MountPath": [path], "Region": [land.region]}
    for index, instance_id in progress(
        enumerate(instance_ids[never:]), "repair: drifting the cluster", total=len(instance_ids) - never
    ):
        command = ssm.send_command(DocumentName="efs-automount-mount", InstanceIds=[instance_id], Parameters=parameters)
        moto_gaps.finish_invocation(
            land.account, land.region, command["Command"]["CommandId"], instance_id, "Success", emit=False
        )
        if index < lost:
            continue
        ecs.put_attributes(
            cluster=land.cluster_arn,
            attributes=[
                {"name": mount_attribute_name(fs, path), "value": path, "targetId": container_instances[instance_id]}
            ],
        )
    missed = max(1, service_count // 40)
    rewritten = service_count // 10
    container = [{"name": "app", "image": "public.ecr.aws/app/app:1", "memory": 256}]
    for index in range(service_count):
        tags = [{"key": "efs-automount:file-system-id", "value": fs}] if index < missed + rewritten else []
        if missed <= index < missed + rewritten:
            tags.append(
                {"key": "efs-automount:source", "value": f"arn:aws:ecs:us-east-1:{land.account}:task-definition/x:1"}
            )
        arn = ecs.register_task_definition(family=f"svc-{index}", containerDefinitions=container, tags=tags)
        ecs.create_service(
            cluster=land.cluster_name,
            serviceName=f"svc-{index}",
            taskDefinition=arn["taskDefinition"]["taskDefinitionArn"],
            desiredCount=0,
        )
    moto_gaps.WORLD.drain()
    return {"never_mounted": never, "attribute_lost": lost, "missed_rewrites": missed}


def run_figures(report: dict[str, Any], meter: Meter, handler_seconds: float) -> dict[str, Any]:
    by_operation: dict[str, int] = {}
    for call in meter.calls:
        by_operation[call] = by_operation.get(call, 0) + 1
    own = handler_seconds - meter.aws_seconds
    return {
        "summary": report["summary"],
        "stopped": report["stopped"],
        "aws_calls": len(meter.calls),
        "aws_calls_by_operation": dict(sorted(by_operation.items())),
        "seconds_local": round(handler_seconds, 2),
        "own_seconds": round(own, 2),
        "projected_seconds": round(own + len(meter.calls) * ASSUMED_AWS_CALL_SECONDS, 1),
        "report_kib": round(len(json.dumps(report)) / 1024, 1),
    }

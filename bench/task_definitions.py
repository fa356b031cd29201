"""Task definition rewrites: tagged registrations, every event delivered twice, exactly one revision added each."""

from __future__ import annotations

import contextlib
from typing import Any

from bench.deployed import deployed_settings, function_environment, patched_env, stack_resources
from bench.meter import METER, fresh_app, invoker
from bench.report import progress


def task_definitions(count: int) -> dict[str, Any]:
    from moto import mock_aws

    meter = METER
    with mock_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import moto_gaps

        app = fresh_app()
        moto_gaps.install()
        moto_gaps.WORLD.reset()
        ecs = boto3.client("ecs", region_name="us-east-1")
        made = stack_resources(lambda service: boto3.client(service, region_name="us-east-1"))
        settings = deployed_settings("on_task_definition", made)
        deployed.enter_context(patched_env(function_environment(settings)))
        invoke = invoker(app, meter, settings)
        containers = [{"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256}]
        tags = [{"key": "efs-automount:file-system-id", "value": "fs-0123456789abcdef0"}]
        for index in progress(range(count), "task definitions: registering"):
            ecs.register_task_definition(family=f"app-{index}", containerDefinitions=containers, tags=tags)
        registrations = moto_gaps.WORLD.drain()
        meter.reset()
        for event in progress(registrations, "task definitions: rewrites"):
            invoke("on_task_definition", event)
        first_pass_calls, first_pass_aws = len(meter.calls), meter.aws_seconds
        first_pass_seconds = invoke.seconds  # type: ignore[attr-defined]
        # The app's own registrations come back, and EventBridge delivers every event a second time.
        for event in progress(moto_gaps.WORLD.drain() + registrations, "task definitions: deliveries again"):
            invoke("on_task_definition", event)
        moto_gaps.WORLD.drain()
        revisions = sum(
            len(ecs.list_task_definitions(familyPrefix=f"app-{i}")["taskDefinitionArns"]) for i in range(count)
        )
    return {
        "registrations": count,
        "revisions_added": revisions - count,
        "aws_calls_per_rewrite": round(first_pass_calls / count, 2),
        "own_ms_per_rewrite": round((first_pass_seconds - first_pass_aws) / count * 1000, 2),
        "aws_calls_all_deliveries": len(meter.calls),
    }

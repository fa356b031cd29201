"""`make bench`: what efs-automount costs per host, per burst and per cold start.

Figures that depend on this machine's speed are reported as ratios measured in one run.
Writes build/bench.json, files the app's own log and metric lines in build/bench.log, shows progress
while it measures, and ends with one table. Benchmarks are not tests: nothing here asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "build" / "bench.json"
PICTURE = "scale-out.png"
LOG = ROOT / "build" / "bench.log"
T = TypeVar("T")

# Where the app's JSON log lines go (its EMF metrics print to stdout, which the steps send to the same file).
APP_LOG: list[IO[str]] = []


def progress(items: Iterable[T], what: str, total: int | None = None) -> Iterator[T]:
    """A progress bar on the terminal (stderr) for one long part; none when stderr is not a terminal."""
    return iter(tqdm(items, desc=f"  {what}", total=total, leave=False, unit="", dynamic_ncols=True, disable=None))


# Each function runs with the settings its packaged template gives it (simulation/packaged.py), so the figures are
# of the configuration that is deployed: built once per run, as `make package` builds it.
PACKAGED: dict[str, Any] = {}
# What the stack names its idempotency table (the queue is named in the template: efs-automount-retries).
TABLE_NAME = "efs-automount-idempotency-efs-automount"


def packaged_sam() -> dict[str, Any]:
    from simulation.packaged import build_package

    if "sam" not in PACKAGED:
        with tempfile.TemporaryDirectory() as tmp:
            PACKAGED["sam"] = json.loads(build_package(ROOT, Path(tmp) / "package").read_text())
    return PACKAGED["sam"]


def deployed_settings(function: str, made: dict[str, str], *alike: str) -> Any:
    """`function`'s packaged settings, what they refer to (resources, parameters) taken from `made`. A step that
    invokes other handlers too (`alike`) runs them with the same settings, as one process caches one set: only
    when the template gives them the same (Lambda gives each function its own)."""
    from simulation.packaged import function_settings

    functions = function_settings(packaged_sam(), made)
    for other in alike:
        if functions[other].environment != functions[function].environment:
            raise RuntimeError(f"{other} is deployed with other settings than {function}: measure them apart")
    return functions[function]


def packaged_settings_described() -> dict[str, Any]:
    """Each packaged function's timeout, memory and the names of its environment variables."""
    from simulation.packaged import function_settings

    functions = function_settings(packaged_sam(), {"RetryQueue": "", "IdempotencyTable": ""})
    return {
        name: {"timeout_s": f.timeout_s, "memory_mb": f.memory_mb, "environment": sorted(f.environment)}
        for name, f in sorted(functions.items())
    }


def function_environment(settings: Any) -> dict[str, str]:
    """The function's environment; its logs kept to warnings (they are filed, not read)."""
    return {**settings.environment, "POWERTOOLS_LOG_LEVEL": "WARNING"}


def stack_resources(client: Callable[[str], Any]) -> dict[str, str]:
    """What the packaged stack makes that the functions' settings refer to, made here as the stack makes them: the
    retry queue (with its dead-letter queue) and the idempotency table."""
    sqs, dynamodb = client("sqs"), client("dynamodb")
    dlq = sqs.create_queue(QueueName="efs-automount-retries-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    queue = sqs.create_queue(
        QueueName="efs-automount-retries", Attributes={"VisibilityTimeout": "360", "RedrivePolicy": redrive}
    )["QueueUrl"]
    dynamodb.create_table(
        TableName=TABLE_NAME,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    return {"RetryQueue": queue, "IdempotencyTable": TABLE_NAME}


def import_environment() -> dict[str, str]:
    """The environment the app is imported with in a cold start: a function's that subscribes nothing (on_launch)."""
    from simulation.packaged import PACKAGE_QUEUE_URL

    made = {"RetryQueue": PACKAGE_QUEUE_URL, "IdempotencyTable": TABLE_NAME}
    return function_environment(deployed_settings("on_launch", made))


# --- metering -------------------------------------------------------------------------------


class Meter:
    """Counts the AWS calls made through botocore while on, and the time spent inside them."""

    def __init__(self) -> None:
        self.on = False
        self.calls: list[str] = []
        self.aws_seconds = 0.0

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        meter = self

        def metered(client: Any, operation: str, params: dict[str, Any]) -> Any:
            if not meter.on:
                return original(client, operation, params)
            started = time.perf_counter()
            try:
                return original(client, operation, params)
            finally:
                meter.aws_seconds += time.perf_counter() - started
                meter.calls.append(f"{client.meta.service_model.signing_name}:{operation}")

        BaseClient._make_api_call = metered  # type: ignore[method-assign]

    @contextmanager
    def measuring(self) -> Iterator[None]:
        self.on = True
        try:
            yield
        finally:
            self.on = False

    def reset(self) -> None:
        self.calls.clear()
        self.aws_seconds = 0.0


METER = Meter()


def fresh_app() -> Any:
    """The app as a new Lambda container would have it: no cached settings, clients or flows."""
    from app import app
    from chalicelib import entrypoints
    from chalicelib.plumbing import accounts, settings
    from chalicelib.plumbing.observability import logger

    if APP_LOG:
        logger.registered_handler.setStream(APP_LOG[0])
    settings.load_settings.cache_clear()
    accounts.aws_accounts.cache_clear()
    for flow in (entrypoints.lifecycle_flow, entrypoints.container_instance_flow, entrypoints.task_definition_flow):
        flow.cache_clear()
    METER.reset()
    return app


class Context:
    """What Lambda passes as the context (enough for Powertools): the function's packaged memory and timeout."""

    aws_request_id = "bench"

    def __init__(self, name: str, settings: Any) -> None:
        self.function_name = f"efs-automount-{name}"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.memory_limit_in_mb = settings.memory_mb
        self.timeout_ms = settings.timeout_s * 1000

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def invoker(app: Any, meter: Meter, settings: Any) -> Callable[[str, dict[str, Any]], Any]:
    """Call a handler as Lambda does, with the step's function settings; returns (result, handler seconds)."""

    def invoke(name: str, event: dict[str, Any]) -> Any:
        with meter.measuring():
            started = time.perf_counter()
            result = app.handler_map[name](json.loads(json.dumps(event)), Context(name, settings))
            invoke.seconds += time.perf_counter() - started
        return result

    invoke.seconds = 0.0  # type: ignore[attr-defined]
    return invoke


# --- 1. cold start --------------------------------------------------------------------------

IMPORT_TIMER = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def cold_start(runs: int) -> dict[str, Any]:
    env = {**os.environ, **import_environment(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}

    def once(module: str) -> float:
        code = IMPORT_TIMER.format(module=module)
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip())

    pairs = []
    for index in progress(range(runs), "cold start: paired imports"):
        # Alternate which goes first, so neither always meets a warmer file cache.
        if index % 2:
            app_seconds, boto_seconds = once("app"), once("boto3")
        else:
            boto_seconds, app_seconds = once("boto3"), once("app")
        pairs.append((boto_seconds, app_seconds))
    ratios = [app / boto for boto, app in pairs]
    return {
        "runs": runs,
        "import_boto3_ms_median": round(statistics.median(b for b, _ in pairs) * 1000, 1),
        "import_app_ms_median": round(statistics.median(a for _, a in pairs) * 1000, 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "target_ratio": 1.25,
    }


# --- 2 and 3. per host, steady state; Lambda time vs polling ---------------------------------


def per_host(hosts_measured: int, command_seconds: float) -> dict[str, Any]:
    from moto import mock_aws

    meter = METER
    with mock_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import hosts, moto_gaps

        app = fresh_app()
        from simulation.landscape import build_landscape, register_container_instance, scale_out

        moto_gaps.install()
        land = build_landscape(boto3.Session(region_name="us-east-1"))
        made = stack_resources(land.client)
        settings = deployed_settings("on_launch", made, "on_command_status", "on_container_instance")
        deployed.enter_context(patched_env(function_environment(settings)))
        invoke = invoker(app, meter, settings)
        handler_for = {
            "EC2 Instance-launch Lifecycle Action": "on_launch",
            "EC2 Command Invocation Status-change Notification": "on_command_status",
            "ECS Container Instance State Change": "on_container_instance",
        }

        def one_host() -> str:
            (instance_id,) = scale_out(land, 1)
            hosts.boot_agents(land, [instance_id])
            for event in moto_gaps.WORLD.drain():
                invoke(handler_for[event["detail-type"]], event)
            register_container_instance(land, instance_id)
            for event in moto_gaps.WORLD.drain():
                invoke(handler_for[event["detail-type"]], event)
            hosts.answer(land, "Success", instance_ids=[instance_id])
            for event in moto_gaps.WORLD.drain():
                invoke(handler_for[event["detail-type"]], event)
            return instance_id

        for _ in range(3):  # warm: clients made, caches filled, settings parsed
            one_host()
        meter.reset()
        invoke.seconds = 0.0  # type: ignore[attr-defined]
        decided = [one_host() for _ in progress(range(hosts_measured), "per host: hosts")]
        calls_per_host = len(meter.calls) / hosts_measured
        handler_seconds = invoke.seconds / hosts_measured  # type: ignore[attr-defined]
        own_seconds = (invoke.seconds - meter.aws_seconds) / hosts_measured  # type: ignore[attr-defined]
        breakdown: dict[str, float] = {}
        for call in meter.calls:
            breakdown[call] = breakdown.get(call, 0) + 1 / hosts_measured
        continued = sum(moto_gaps.decided_result(land.account, land.region, i) == "CONTINUE" for i in decided)
    polling_seconds = command_seconds + handler_seconds
    return {
        "per_host": {
            "hosts": hosts_measured,
            "continued": continued,
            "aws_calls": round(calls_per_host, 2),
            "aws_calls_by_operation": {k: round(v, 2) for k, v in sorted(breakdown.items())},
            "own_ms": round(own_seconds * 1000, 2),
            "handler_ms_incl_aws": round(handler_seconds * 1000, 2),
            "target_calls": 6,
            "target_own_ms": 5,
        },
        "lambda_time_vs_polling": {
            "mount_command_seconds": command_seconds,
            "event_driven_billed_seconds": round(handler_seconds, 4),
            "polling_billed_seconds": round(polling_seconds, 4),
            "ratio_polling_to_event_driven": round(polling_seconds / handler_seconds, 1),
            "note": "billed time of a flow that sleeps until the command ends is the command's "
            "duration plus the same work; AWS latency here is local moto's, lower than real AWS",
        },
    }


# --- 4. burst --------------------------------------------------------------------------------


def burst(host_count: int, throttle_share: float) -> dict[str, Any]:
    from simulation.demo import local_aws
    from simulation.throttling import throttle_everything

    meter = METER
    with local_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import moto_gaps

        app = fresh_app()
        from simulation.eventbus import EventBus
        from simulation.landscape import build_landscape, scale_out

        land = build_landscape(boto3.Session(region_name="us-east-1"))
        made = stack_resources(land.client)
        settings = deployed_settings("on_launch", made, "on_command_status", "on_container_instance")
        deployed.enter_context(patched_env(function_environment(settings)))
        invoke = invoker(app, meter, settings)
        bus = EventBus(app, invoke)
        throttler = throttle_everything(throttle_share)
        started = time.perf_counter()
        instance_ids = scale_out(land, host_count)
        for instance_id in instance_ids:
            moto_gaps.register_agent(land.account, land.region, instance_id)
        for event in progress(moto_gaps.WORLD.drain(), "burst: launch events"):
            bus.deliver(event)
        answer_all(land)
        for event in progress(moto_gaps.WORLD.drain(), "burst: status events"):
            bus.deliver(event)
        elapsed = time.perf_counter() - started
        throttler.share = 0.0
        completions = [c for c in moto_gaps.WORLD.completions if c[2] in set(instance_ids)]
        decided = {c[2] for c in completions}
        commands = land.client("ssm").list_commands()["Commands"]
        per_host_commands: dict[str, int] = {}
        for command in commands:
            for instance_id in command["InstanceIds"]:
                per_host_commands[instance_id] = per_host_commands.get(instance_id, 0) + 1
        continued = sum(1 for c in completions if c[3] == "CONTINUE")
    return {
        "hosts": host_count,
        "throttled_share": throttle_share,
        "throttled_requests": throttler.throttled,
        "continued": continued,
        "undecided": host_count - len(decided),
        "duplicate_decisions": len(completions) - len(decided),
        "duplicate_commands": sum(n - 1 for n in per_host_commands.values()),
        "aws_calls": len(meter.calls),
        "seconds": round(elapsed, 1),
        "hosts_per_second": round(host_count / elapsed, 1),
        "note": "one process, handlers run one after another against the moto server of `make demo`; "
        "botocore's retry backoff is made instant so throttling costs calls, not sleep",
    }


def answer_all(land: Any) -> None:
    """Every host's agent finishes its mount command successfully (straight in moto, for speed)."""
    from moto.ssm.models import ssm_backends

    from simulation import moto_gaps

    backend = ssm_backends[land.account][land.region]
    for command in list(backend._commands):
        for invocation in command.invocations:
            if invocation["Status"] == "InProgress":
                moto_gaps.finish_invocation(
                    land.account, land.region, command.command_id, invocation["InstanceId"], "Success"
                )


# --- 5. task definition rewrite --------------------------------------------------------------


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


# --- 6. repair at scale --------------------------------------------------------------------------

# Assumed latency of one AWS API call from Lambda in the same region, for the projection to real AWS.
ASSUMED_AWS_CALL_SECONDS = 0.05


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


# Lambda's price per GB-second (x86, us-east-1) and per request, for the monthly cost of the hourly checks.
LAMBDA_GB_SECOND_USD = 0.0000166667
LAMBDA_REQUEST_USD = 0.0000002
RUNS_PER_MONTH = 24 * 30


def checks_at_scale(group_count: int, account_count: int) -> dict[str, Any]:
    """The hourly configuration checks over `group_count` tagged groups spread over `account_count` accounts (the
    app's own and trusted members, each with its file system and mount document): AWS calls per group, and the
    run projected against its function's timeout, with its monthly cost."""
    from moto import mock_aws

    meter = METER
    with mock_aws(), patched_env({}), contextlib.ExitStack() as deployed:
        import boto3

        from simulation import moto_gaps

        app = fresh_app()
        from simulation.landscape import build_landscape, create_member_role, session_in_account

        moto_gaps.install()
        moto_gaps.WORLD.reset()
        own = boto3.Session(region_name="us-east-1")
        own_account = own.client("sts").get_caller_identity()["Account"]
        members = [f"2109876543{index:02d}" for index in range(1, account_count)]
        for index, account in enumerate([own_account, *members]):
            session = own if account == own_account else session_in_account(account)
            if account != own_account:
                create_member_role(session, own_account)
            groups = group_count // account_count + (1 if index < group_count % account_count else 0)
            land = build_landscape(session, group_name=f"hosts-{index}-0")
            _more_groups(land, groups - 1, index)
        settings = deployed_settings("checks", stack_resources(own.client))
        deployed.enter_context(patched_env({**function_environment(settings), "TRUSTED_ACCOUNTS": ",".join(members)}))
        invoke = invoker(app, meter, settings)
        meter.reset()
        report = invoke("checks", {"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}})
        calls = len(meter.calls)
        by_operation: dict[str, int] = {}
        for call in meter.calls:
            by_operation[call] = by_operation.get(call, 0) + 1
    own = invoke.seconds - meter.aws_seconds  # type: ignore[attr-defined]
    projected = own + calls * ASSUMED_AWS_CALL_SECONDS
    gb_seconds = settings.memory_mb / 1024 * projected
    return {
        "groups": group_count,
        "accounts": account_count,
        "groups_checked": len(report["groups"]),
        "problems": sum(len(g["problems"]) for g in report["groups"]),
        "errors": report["errors"],
        "aws_calls": calls,
        "aws_calls_per_group": round(calls / max(group_count, 1), 1),
        "aws_calls_by_operation": dict(sorted(by_operation.items())),
        "projected_seconds": round(projected, 1),
        "timeout_seconds": settings.timeout_s,
        "monthly_usd": round(RUNS_PER_MONTH * (gb_seconds * LAMBDA_GB_SECOND_USD + LAMBDA_REQUEST_USD), 4),
        "note": f"projected = own time + AWS calls x {ASSUMED_AWS_CALL_SECONDS} s; cost: Lambda only, 720 runs a month",
    }


def _more_groups(land: Any, count: int, index: int) -> None:
    """`count` more groups like the landscape's (its launch template, subnets, tags and hook)."""
    autoscaling = land.client("autoscaling")
    (first,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"]
    for number in range(1, count + 1):
        name = f"hosts-{index}-{number}"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": first["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            MinSize=0,
            MaxSize=10,
            DesiredCapacity=0,
            VPCZoneIdentifier=first["VPCZoneIdentifier"],
            Tags=[{**tag, "ResourceId": name} for tag in first["Tags"]],
        )
        autoscaling.put_lifecycle_hook(
            LifecycleHookName=land.hook_name,
            AutoScalingGroupName=name,
            LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
            HeartbeatTimeout=900,
            DefaultResult="ABANDON",
        )


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


# --- 7. package: size, and cold start as Lambda would load it --------------------------------

# What a project needs for `chalice package` (tests, simulation and tooling are never packaged).
PACKAGED_PARTS = ("app.py", "chalicelib", ".chalice", "deploy", "requirements.txt")
SHIPPED_SDK = ("boto3", "botocore")
UNPACK_TIMER = (
    "import sys, time, zipfile; t = time.perf_counter(); "
    "zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2]); print(time.perf_counter() - t)"
)
PACKAGED_IMPORT_TIMER = (
    "import sys, time; t = time.perf_counter(); import app; elapsed = time.perf_counter() - t; "
    "import botocore; print(elapsed, botocore.__file__)"
)


def build_package(project: Path, out: Path) -> Path:
    chalice = Path(sys.executable).parent / "chalice"
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETRY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/efs-automount-retries",
    }
    command = [str(chalice), "package", "--stage", "prod", "--merge-template", "deploy/app-resources.json", str(out)]
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    return out / "deployment.zip"


def project_without_sdk(work: Path) -> Path:
    """A copy of the project whose requirements.txt leaves boto3 and botocore to the Lambda runtime."""
    import shutil

    project = work / "project-without-sdk"
    for part in PACKAGED_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("deployments", "__pycache__"))
        else:
            (project / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, project / part)
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    kept = [line for line in lines if line.split("==")[0].strip().lower() not in SHIPPED_SDK]
    (project / "requirements.txt").write_text("\n".join(kept) + "\n")
    return project


def package(runs: int) -> dict[str, Any]:
    """The package as shipped (boto3 and botocore pinned in it) against one that takes them from the
    runtime: size, the time to unpack it (Lambda unpacks the code on a cold start), and importing the
    app from the unpacked package in a fresh interpreter, the package first on the path as in Lambda.
    Without the SDK in the package, the venv's boto3 stands in for the runtime's."""
    env = {**os.environ, **import_environment(), "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        zips = {
            "shipped": build_package(ROOT, work / "shipped"),
            "without_sdk": build_package(project_without_sdk(work), work / "without-sdk"),
        }

        def timed(code: str, *args: str, cwd: Path) -> list[str]:
            run_env = {**env, "PYTHONPATH": str(cwd)}
            out = subprocess.run(
                [sys.executable, "-c", code, *args], cwd=cwd, env=run_env, capture_output=True, text=True, check=True
            )
            return out.stdout.split()

        unpack: dict[str, list[float]] = {name: [] for name in zips}
        imports: dict[str, list[float]] = {name: [] for name in zips}
        precompiled: list[float] = []
        botocore_from: dict[str, str] = {}
        for index in progress(range(runs), "package: unpack and import"):
            # Alternate which goes first, so neither always meets a warmer file cache.
            for name in sorted(zips, reverse=bool(index % 2)):
                target = work / f"unpacked-{name}-{index}"
                unpack[name].append(float(timed(UNPACK_TIMER, str(zips[name]), str(target), cwd=work)[0]))
                seconds, botocore_file = timed(PACKAGED_IMPORT_TIMER, cwd=target)
                imports[name].append(float(seconds))
                botocore_from[name] = "package" if botocore_file.startswith(str(target)) else "runtime"
            # The package holds no .pyc and Lambda's /var/task is read-only, so each cold start compiles
            # what it imports; the runtime's own boto3 comes compiled. What compiling at package time
            # would save:
            target = work / f"unpacked-precompiled-{index}"
            zipfile.ZipFile(zips["shipped"]).extractall(target)
            subprocess.run(
                [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(target)],
                check=True,
                capture_output=True,
            )
            precompiled.append(float(timed(PACKAGED_IMPORT_TIMER, cwd=target)[0]))
        sizes = {name: path.stat().st_size for name, path in zips.items()}
        files = {name: len(zipfile.ZipFile(path).namelist()) for name, path in zips.items()}

    def median_ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    return {
        "deployment_zip_kib": round(sizes["shipped"] / 1024, 1),
        "without_sdk_zip_kib": round(sizes["without_sdk"] / 1024, 1),
        "zip_ratio": round(sizes["shipped"] / sizes["without_sdk"], 1),
        "files": files,
        "botocore_loaded_from": botocore_from,
        "runs": runs,
        "unpack_ms_median": {name: median_ms(values) for name, values in unpack.items()},
        "import_app_ms_median": {name: median_ms(values) for name, values in imports.items()}
        | {"shipped_precompiled": median_ms(precompiled)},
        "import_ratio_shipped_to_without_sdk": round(
            statistics.median(s / w for s, w in zip(imports["shipped"], imports["without_sdk"], strict=True)), 3
        ),
        "cold_ratio_shipped_to_without_sdk": round(
            statistics.median(
                (us + s) / (uw + w)
                for us, s, uw, w in zip(
                    unpack["shipped"], imports["shipped"], unpack["without_sdk"], imports["without_sdk"], strict=True
                )
            ),
            3,
        ),
        "note": "unpacking stands in for Lambda fetching and unpacking the code, which grows with the "
        "package; importing from the unpacked package is what the init phase pays",
    }


# --- 8. scale-out in simulated time: today's design beside the working tree's ----------------------------

# The app as it was before issue 13 ("today's design"), exported from git for the comparison.
TODAY_COMMIT = "05934d3"
TODAY_PARTS = ("app.py", "chalicelib", ".chalice", "deploy", "requirements.txt")
SCALE_OUT_GOALS = {
    "added_latency_p50_s": 2,
    "added_latency_p95_s": 10,
    "aws_calls_per_host": 8,
    "single_host_aws_calls": 12,
}
SCALE_OUT_KEYS = (
    "added_latency_p50_s",
    "added_latency_p95_s",
    "aws_calls_per_host",
    "single_host_aws_calls",
    "single_host_aws_calls_cold",
    "launch_to_in_service_p50_s",
    "launch_to_in_service_p95_s",
    "floor_p50_s",
    "floor_p95_s",
    "over_floor_p50_s",
    "over_floor_p95_s",
    "aws_calls_per_host_by_operation",
    "aws_calls_per_host_by_handler",
    "throttled_requests",
    "continued",
    "undecided",
    "timed_out",
    "duplicate_commands",
    "duplicate_decisions",
    "commands_before_agent_online",
    "simulated_seconds",
    "wall_seconds",
    "single_host",
    "function_settings",
)


def export_today(target: Path) -> str | None:
    """The app of TODAY_COMMIT in `target`; the reason when it cannot be had (no git, no history)."""
    import io
    import shutil
    import tarfile

    git = shutil.which("git")
    if git is None:
        return "git is not installed"
    found = subprocess.run(
        [git, "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{TODAY_COMMIT}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if found.returncode != 0:
        return f"commit {TODAY_COMMIT} is not in this checkout's history (a tarball, or a shallow clone)"
    archive = subprocess.run([git, "-C", str(ROOT), "archive", TODAY_COMMIT, *TODAY_PARTS], capture_output=True)
    if archive.returncode != 0:
        return f"git archive {TODAY_COMMIT} failed: {archive.stderr.decode(errors='replace').strip()}"
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return None


def scale_out(hosts: int, throttle_share: float, seed: int, picture: Path | None) -> dict[str, Any]:
    """A burst of `hosts` in simulated time (simulation/scale_out/), for the working tree's app and for the app
    before issue 13, each in its own process, with the same seed and model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        skipped = export_today(work / "today")
        runs = {"new": None} if skipped else {"new": None, "today": work / "today"}
        processes = {}
        for name, app_dir in runs.items():
            command = [sys.executable, "-m", "simulation.scale_out", "--hosts", str(hosts)]
            command += ["--throttle", str(throttle_share), "--seed", str(seed)]
            command += ["--out", str(work / f"{name}.json"), "--records", str(work / f"{name}-hosts.json")]
            if app_dir is not None:
                command += ["--app", str(app_dir)]
            # The two run side by side (a core each); their figures are in simulated time.
            processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        for name, process in progress(processes.items(), "scale-out: simulating", total=len(processes)):
            out, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"scale-out ({name}) failed: {err[-3000:]}")
        figures = {name: json.loads((work / f"{name}.json").read_text()) for name in processes}
        records = {name: json.loads((work / f"{name}-hosts.json").read_text()) for name in processes}
    new = figures["new"]
    result: dict[str, Any] = {key: new.get(key) for key in SCALE_OUT_KEYS}
    result["hosts"], result["throttled_share"], result["seed"] = hosts, throttle_share, seed
    if "today" in figures:
        result["today"] = {key: figures["today"].get(key) for key in SCALE_OUT_KEYS}
        result["today"]["commit"] = TODAY_COMMIT
    else:
        result["today"] = {"skipped": skipped}
    result["model"] = new["model"]
    result["lambda_environments"] = new["lambda_environments"]
    result["goals"] = dict(SCALE_OUT_GOALS)
    result["note"] = new["note"]
    if picture is not None:
        draw_scale_out(records, result, picture)
        result["picture"] = str(picture)
    return result


def draw_scale_out(records: dict[str, list[dict[str, Any]]], figures: dict[str, Any], path: Path) -> None:
    """ECDFs of launch-to-in-service per host, today's design beside the new one, and the physical floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def ecdf(values: list[float]) -> tuple[list[float], list[float]]:
        ordered = sorted(values)
        return ordered, [(i + 1) / len(ordered) for i in range(len(ordered))]

    def in_service(hosts: list[dict[str, Any]]) -> list[float]:
        return [h["completed"] - h["launch"] for h in hosts if h["result"] == "CONTINUE"]

    figure, axes = plt.subplots(figsize=(9, 5.5), dpi=110)
    base = records["new"]
    floor = [h["agent_online"] + h["mount_s"] - h["launch"] for h in base if h["agent_online"] is not None]
    axes.step(
        *ecdf(floor), where="post", color="0.35", linestyle="--", label="physical floor: SSM agent online + mount"
    )
    if "today" in records:
        today = in_service(records["today"])
        axes.step(
            *ecdf(today), where="post", color="tab:red", linewidth=3.5, alpha=0.5, label=f"today ({TODAY_COMMIT})"
        )
    axes.step(*ecdf(in_service(base)), where="post", color="tab:blue", linewidth=1.5, label="this working tree")
    model = figures["model"]
    axes.set_xlabel("launch to in service (CompleteLifecycleAction CONTINUE), simulated seconds")
    axes.set_ylabel("share of hosts")
    # The long tail (agents that come online after many minutes) would squeeze the rest: cut at the 99th percentile.
    shown = sorted(floor + in_service(base) + (today if "today" in records else []))
    axes.set_xlim(0, shown[int(0.99 * (len(shown) - 1))] * 1.1 if shown else None)
    axes.text(0.99, 0.3, "x axis cut at the 99th percentile", transform=axes.transAxes, ha="right", fontsize=8)
    axes.set_ylim(0, 1.01)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(
        f"{figures['hosts']:,} hosts scaled out, {figures['throttled_share']:.0%} of AWS calls throttled: "
        "launch to in service per host\n"
        f"SSM agent online {model['agent_min_s']:g} s + lognormal(median {model['agent_median_s']:g} s, "
        f"sigma {model['agent_sigma']:g}) after launch; ECS registers at agent online + "
        f"N({model['ecs_delta_mean_s']:g} s, sd {model['ecs_delta_sd_s']:g} s); mount {model['mount_min_s']:g}-"
        f"{model['mount_max_s']:g} s",
        fontsize=8.5,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


# --- running ----------------------------------------------------------------------------------


@contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def table(results: dict[str, Any]) -> str:
    """One table of the figures of the parts that ran."""

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    rows = [("figure", "result", "note")]
    if "cold_start" in results:
        cold = results["cold_start"]
        rows.append(
            (
                "cold start: import app / import boto3",
                f"{cold['ratio_median']}x",
                f"<= 1.25x {verdict(cold['ratio_median'] <= 1.25)}",
            )
        )
    if "per_host" in results:
        host, polling = results["per_host"]["per_host"], results["per_host"]["lambda_time_vs_polling"]
        rows += [
            ("per host: AWS calls", f"{host['aws_calls']}", f"<= 6 {verdict(host['aws_calls'] <= 6)}"),
            ("per host: own time", f"{host['own_ms']} ms", f"<= 5 ms {verdict(host['own_ms'] <= 5)}"),
            ("Lambda time, polling / event-driven", f"{polling['ratio_polling_to_event_driven']}x", "higher is better"),
        ]
    if "burst" in results:
        burst_ = results["burst"]
        rows += [
            ("burst: decided CONTINUE", f"{burst_['continued']} / {burst_['hosts']}", "all"),
            (
                "burst: duplicate commands / decisions",
                f"{burst_['duplicate_commands']} / {burst_['duplicate_decisions']}",
                "0 / 0",
            ),
            ("burst: AWS calls, throttled", f"{burst_['aws_calls']}, {burst_['throttled_requests']}", ""),
            ("burst: hosts per second", f"{burst_['hosts_per_second']}", "this machine"),
        ]
    if "task_definitions" in results:
        tds = results["task_definitions"]
        rows += [
            ("task definitions: revisions added", f"{tds['revisions_added']} / {tds['registrations']}", "exactly"),
            (
                "task definitions: calls, own time",
                f"{tds['aws_calls_per_rewrite']}, {tds['own_ms_per_rewrite']} ms",
                "per rewrite",
            ),
        ]
    if "repair" in results:
        rows += repair_rows(results["repair"])
    if "checks" in results:
        checks = results["checks"]
        rows += [
            (
                f"checks: {checks['groups']} groups, {checks['accounts']} accounts: calls per group",
                f"{checks['aws_calls_per_group']}",
                f"{checks['aws_calls']} calls, {checks['problems']} problems",
            ),
            (
                "checks: hourly run, projected",
                f"{checks['projected_seconds']} s",
                f"timeout {checks['timeout_seconds']} s; ~${checks['monthly_usd']} a month",
            ),
        ]
    if "package" in results:
        pkg = results["package"]
        rows += [
            (
                "package: deployment.zip, shipped / without SDK",
                f"{pkg['deployment_zip_kib']} / {pkg['without_sdk_zip_kib']} KiB",
                f"{pkg['zip_ratio']}x",
            ),
            (
                "package: unpack + import app, shipped / without SDK",
                f"{pkg['cold_ratio_shipped_to_without_sdk']}x",
                f"import alone {pkg['import_ratio_shipped_to_without_sdk']}x",
            ),
        ]
    if "scale_out" in results:
        rows += scale_out_rows(results["scale_out"])
    width = max(len(r[0]) for r in rows)
    lines = [f"  {name:<{width}}  {value:>16}  {note}" for name, value, note in rows]
    lines.insert(1, f"  {'-' * width}  {'-' * 16}  {'-' * max(len(r[2]) for r in rows)}")
    return "\n".join(lines)


def scale_out_rows(figures: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The scale-out's figures, the new design's with today's beside them (simulated seconds)."""
    today = figures["today"]
    size = f"scale-out {figures['hosts']}"

    def beside(key: str) -> str:
        return "today: skipped" if "skipped" in today else f"today {today.get(key)}"

    def goal(key: str) -> str:
        value, limit = figures.get(key), figures["goals"][key]
        return f"<= {limit} {verdict(value is not None and value <= limit)}; {beside(key)}"

    def verdict(ok: bool) -> str:
        return "meets" if ok else "MISSES"

    return [
        (f"{size}: added latency p50, s", f"{figures['added_latency_p50_s']}", goal("added_latency_p50_s")),
        (f"{size}: added latency p95, s", f"{figures['added_latency_p95_s']}", goal("added_latency_p95_s")),
        (f"{size}: AWS calls per host", f"{figures['aws_calls_per_host']}", goal("aws_calls_per_host")),
        (
            "scale-out: one host alone, calls (warm)",
            f"{figures['single_host_aws_calls']}",
            goal("single_host_aws_calls"),
        ),
        (
            "scale-out: one host alone, calls (cold)",
            f"{figures['single_host_aws_calls_cold']}",
            beside("single_host_aws_calls_cold"),
        ),
        (
            f"{size}: launch to in service p50 / p95, s",
            f"{figures['launch_to_in_service_p50_s']} / {figures['launch_to_in_service_p95_s']}",
            f"floor {figures['floor_p50_s']} / {figures['floor_p95_s']}; "
            + (
                "today: skipped"
                if "skipped" in today
                else f"today {today['launch_to_in_service_p50_s']} / {today['launch_to_in_service_p95_s']}"
            ),
        ),
        (
            f"{size}: CONTINUE / timed out / dup. commands / dup. decisions",
            f"{figures['continued']} / {figures['timed_out']} / {figures['duplicate_commands']} / "
            f"{figures['duplicate_decisions']}",
            f"all / 0 / 0 / 0; simulated, {figures['throttled_share']:.0%} throttled",
        ),
    ]


def repair_rows(repair: dict[str, Any]) -> list[tuple[str, str, str]]:
    size = f"{repair['hosts']} hosts, {repair['services']} services"
    rows = []
    for name in ("dry_run", "repair", "second_run"):
        run = repair[name]
        rows.append(
            (
                f"repair, {size}: {name.replace('_', ' ')}",
                f"{run['aws_calls']} calls, {run['seconds_local']} s",
                f"~{run['projected_seconds']} s on AWS; timeout 900 s",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--hosts", type=int, default=30, help="hosts measured per host (steady state)")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--task-definitions", type=int, default=500)
    parser.add_argument("--repair-hosts", type=int, default=1000)
    parser.add_argument("--repair-services", type=int, default=200)
    parser.add_argument("--scale-out-hosts", type=int, default=1000, help="hosts of the simulated scale-out")
    parser.add_argument("--check-groups", type=int, default=100, help="groups of the hourly checks (3 accounts)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the figures go (JSON)")
    parser.add_argument("--log", type=Path, default=LOG, help="where the app's log and metric lines go")
    parser.add_argument(
        "--only", default=None, help="run one part (e.g. scale_out); the others' figures in --out are kept"
    )
    args = parser.parse_args(argv)
    METER.install()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    log = args.log.open("w")
    APP_LOG[:] = [log]
    results: dict[str, Any] = {}
    steps = [
        ("cold_start", lambda: cold_start(args.cold_runs)),
        ("per_host", lambda: per_host(args.hosts, command_seconds=20.0)),
        ("task_definitions", lambda: task_definitions(args.task_definitions)),
        ("burst", lambda: burst(args.burst, throttle_share=0.2)),
        ("repair", lambda: repair_at_scale(args.repair_hosts, args.repair_services)),
        ("checks", lambda: checks_at_scale(args.check_groups, account_count=3)),
        ("package", lambda: package(args.cold_runs)),
        ("scale_out", lambda: scale_out(args.scale_out_hosts, 0.2, seed=13, picture=args.out.parent / PICTURE)),
    ]
    if args.only is not None:
        steps = [step for step in steps if step[0] == args.only]
        if not steps:
            parser.error(f"--only: no part named {args.only!r}")
        if args.out.exists():
            results.update(json.loads(args.out.read_text()))
    print(
        f"efs-automount bench: {len(steps)} parts, a few minutes; progress below, figures at the end", file=sys.stderr
    )
    for number, (name, step) in enumerate(steps, start=1):
        started = time.perf_counter()
        # The handlers' EMF metrics print to stdout, as in Lambda: filed with the logs, off the terminal.
        with contextlib.redirect_stdout(log):
            results[name] = step()
        log.flush()
        print(f"  [{number}/{len(steps)}] {name} measured in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    log.close()
    if PACKAGED:
        # What was measured: each function as the packaged template deploys it.
        results["function_settings"] = packaged_settings_described()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if "scale_out" in dict(steps) and args.out.resolve() == OUT.resolve() and (args.out.parent / PICTURE).exists():
        # The README shows the picture of a full `make bench`.
        import shutil

        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(args.out.parent / PICTURE, ROOT / "docs" / PICTURE)
        print(f"  picture: {args.out.parent / PICTURE}, copied to docs/{PICTURE}", file=sys.stderr)
    print(table(results))
    print(f"\n  figures: {args.out}; the app's log and metric lines: {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

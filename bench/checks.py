"""The hourly configuration checks at scale: many tagged groups over several accounts, the AWS calls per group,
the run projected against its timeout, and its monthly cost."""

from __future__ import annotations

import contextlib
from typing import Any

from bench.deployed import deployed_settings, function_environment, patched_env, stack_resources
from bench.meter import ASSUMED_AWS_CALL_SECONDS, METER, fresh_app, invoker

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

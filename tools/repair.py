"""`make repair CLUSTER=web DRY_RUN=1`: invoke the deployed repair function with your own credentials and
print its report as a table (or the JSON with --json).

Exit code, as `terraform plan -detailed-exitcode`: 0 nothing to do, 2 problems found (or fixed),
1 errors (the invocation failed, an item failed, or repair stopped before it finished).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, NoRegionError

NOTHING_TO_DO, ERRORS, PROBLEMS = 0, 1, 2
# Repair may run up to its 900 s timeout; a retried invoke would run it twice, so there is one attempt.
READ_TIMEOUT_SECONDS = 960


class RepairFailed(Exception):
    """The function raised (bad input, an untrusted account, a role that cannot be assumed), or was not found."""


def lambda_invoker(function_name: str, session: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    from botocore.config import Config

    config = Config(read_timeout=READ_TIMEOUT_SECONDS, retries={"total_max_attempts": 1})
    client = session.client("lambda", config=config)

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        response = client.invoke(FunctionName=function_name, Payload=json.dumps(payload).encode())
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            error = body if isinstance(body, dict) else {}
            raise RepairFailed(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', body)}")
        return body

    return invoke


DEFAULT_STACK = "efs-automount"  # make deploy's (tools/deploy_choices.py)
# The packaged template's repair function (`chalice package` names resources after the app's functions).
REPAIR_LOGICAL_ID = "Repair"


def stack_function(stack: str, session: Any) -> str:
    """The repair function of a packaged deployment: the physical id of the stack's resource Repair (its name is
    `<stack>-repair`, but the stack says so itself)."""
    from botocore.exceptions import ClientError

    cloudformation = session.client("cloudformation")
    try:
        resource = cloudformation.describe_stack_resource(StackName=stack, LogicalResourceId=REPAIR_LOGICAL_ID)
    except ClientError as exc:
        raise RepairFailed(f"no function {REPAIR_LOGICAL_ID} in stack {stack}: {exc}") from exc
    return resource["StackResourceDetail"]["PhysicalResourceId"]


def remembered_deployment() -> dict[str, str]:
    """Where `make deploy` put the app, as deploy.env remembers it: STACK, REGION and PROFILE (those it names)."""
    from tools import deploy_choices

    remembered = deploy_choices.read_remembered()
    return {key: remembered[key] for key in ("STACK", "REGION", "PROFILE") if remembered.get(key)}


def exit_code(report: dict[str, Any]) -> int:
    summary = report["summary"]
    if summary["errors"] or report.get("stopped"):
        return ERRORS
    return PROBLEMS if summary["with_problems"] else NOTHING_TO_DO


def render_table(report: dict[str, Any]) -> str:
    """The items with something to say, one line per problem (!) and action (->), then the summary."""
    mode = "dry run: nothing was changed" if report["dry_run"] else "repair"
    scope = report.get("cluster") or report.get("auto_scaling_group")
    lines = [f"{mode} of {scope} in account {report['account']}, {report['region']}", ""]
    rows: list[tuple[str, str, str, str]] = []
    # The groups' configuration first: what makes the next mount fail is what to fix first.
    kinds = (
        ("groups", "group"),
        ("instances", "host"),
        ("lifecycle_actions", "waiting host"),
        ("task_definitions", "task definition"),
    )
    for key, kind in kinds:
        for item in report.get(key, []):  # a function of an earlier release reports no groups
            if key == "groups":
                name, where = item["auto_scaling_group"], item.get("file_system_id") or ""
            else:
                name = item.get("instance_id") or item.get("task_definition", "").rsplit("/", 1)[-1]
                where = item.get("auto_scaling_group") or ", ".join(item.get("services", []))
            notes = [f"! {p}" for p in item["problems"]] + [f"-> {a}" for a in item["actions"]]
            for index, note in enumerate(notes):
                rows.append((kind, name, where, note) if index == 0 else ("", "", "", note))
    rows += [("error", error["item"].rsplit("/", 1)[-1], "", f"! {error['error']}") for error in report["errors"]]
    if rows:
        headers = ("kind", "item", "group / services", "problem (!) or action (->)")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:3])]
        lines.append("  ".join(h.ljust(w) for h, w in zip(headers, [*widths, 0], strict=True)).rstrip())
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, [*widths, 0], strict=True)).rstrip() for row in rows]
    else:
        lines.append("nothing to repair")
    summary = report["summary"]
    lines += [
        "",
        f"examined {summary['examined']}, with problems {summary['with_problems']}, "
        f"actions {summary['actions']}, errors {summary['errors']}",
    ]
    if report.get("stopped"):
        lines += [f"STOPPED {report['stopped']['where']}", f"to go on: {report['stopped']['how_to_go_on']}"]
    return "\n".join(lines)


def main(
    argv: list[str] | None = None,
    invoke: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    out: Callable[[str], None] = print,
    remembered: dict[str, str] | None = None,
) -> int:
    """What the command line does not say comes from `remembered` (default: deploy.env, `remembered_deployment`):
    the app's stack (else make deploy's default), unless a function or a stage is named; its region; the app
    account's profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", help="ECS cluster name or ARN")
    parser.add_argument("--auto-scaling-group", help="limit to one Auto Scaling group")
    parser.add_argument("--account", help="the trusted account the cluster lives in (default: the app's)")
    parser.add_argument("--region", help="the region the cluster lives in (default: the function's)")
    parser.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    parser.add_argument("--json", action="store_true", help="print the report's JSON")
    deployed = parser.add_mutually_exclusive_group()
    deployed.add_argument(
        "--stack",
        help="the app's stack (make deploy): its function Repair (default: deploy.env's STACK, else efs-automount)",
    )
    deployed.add_argument("--function-name", help="the repair function's name")
    parser.add_argument(
        "--stage",
        help="`chalice deploy`'s stage, without --stack or --function-name: efs-automount-<stage>-repair",
    )
    parser.add_argument(
        "--function-region", help="where the app is deployed (default: deploy.env's REGION, else your AWS region)"
    )
    parser.add_argument("--profile", help="the AWS CLI profile of the app's account (default: deploy.env's PROFILE)")
    args = parser.parse_args(argv)
    remembered = remembered_deployment() if remembered is None else remembered
    stack = args.stack
    if not (stack or args.function_name or args.stage):
        stack = remembered.get("STACK") or DEFAULT_STACK
    payload: dict[str, Any] = {"dry_run": args.dry_run}
    for key in ("cluster", "auto_scaling_group", "account", "region"):
        if getattr(args, key) is not None:
            payload[key] = getattr(args, key)
    try:
        if invoke is None:
            import boto3

            session = boto3.Session(
                profile_name=args.profile or remembered.get("PROFILE"),
                region_name=args.function_region or remembered.get("REGION"),
            )
            function = args.function_name or f"efs-automount-{args.stage}-repair"
            if stack:
                function = stack_function(stack, session)
            invoke = lambda_invoker(function, session)
        report = invoke(payload)
    except NoRegionError:
        out(
            "repair failed: no region for the app: deploy.env names none (make deploy writes it there); "
            "set AWS_DEFAULT_REGION to the app's region"
        )
        return ERRORS
    except (RepairFailed, BotoCoreError) as exc:  # BotoCoreError: no such profile, no credentials
        out(f"repair failed: {exc}")
        return ERRORS
    out(json.dumps(report, indent=2) if args.json else render_table(report))
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())

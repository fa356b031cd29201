"""`make demo`: efs-automount's main job on an embedded local AWS.

A moto server on 127.0.0.1 (with simulation/moto_gaps.py filling what moto lacks) stands
in for AWS; the app's handlers run in this process as Lambda would run them, their boto3
clients pointed at the server; events are routed by the app's own EventBridge patterns;
the hosts' SSM and ECS agents are simulated. Where it can (root with `unshare`), each SSM agent runs
the mount document's script for real in a private mount namespace, a tmpfs standing in for NFS.
One host's SSM agent comes online late, so its launch waits on the retry queue (SQS, with a delay)
until the agent is online.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LOG_FILE = ROOT / "build" / "demo-logs.jsonl"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_aws() -> Iterator[str]:
    """A moto server on 127.0.0.1 for the length of the demo; every boto3 client in this process uses it."""
    from moto.server import ThreadedMotoServer

    from simulation import moto_gaps

    moto_gaps.install()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="demo",
        AWS_SECRET_ACCESS_KEY="demo",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
    )
    os.environ.pop("AWS_PROFILE", None)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# The longest actor, "Lambda on_container_instance": every message starts in the same column.
ACTOR_WIDTH = 28
CLOCK = "on a simulated clock: this run's own seconds, plus the waits it skips instead of sleeping (SQS delays)"


class Timeline:
    """The demo's clock: real time since the start, plus every wait the demo skips (a retry message's delay)."""

    def __init__(self, out: Callable[[str], None]) -> None:
        self._out = out
        self._start = time.monotonic()
        self._skipped = 0.0

    def skip(self, seconds: float) -> None:
        self._skipped += seconds

    def __call__(self, actor: str, message: str) -> None:
        now = time.monotonic() - self._start + self._skipped
        self._out(f"  {now:6.2f}s  {actor:<{ACTOR_WIDTH}} {message}")


def run(
    hosts_count: int, failures: int, agents_dir: Path, out: Callable[[str], None] = print
) -> tuple[list[dict[str, str]], list[str], list[str], list[str], dict[str, Any]]:
    import boto3
    from chalice.test import Client

    from chalicelib.plumbing.observability import logger
    from simulation import hosts, moto_gaps
    from simulation.eventbus import EventBus
    from simulation.landscape import (
        build_landscape,
        lifecycle_state,
        register_container_instance,
        scale_out,
    )
    from simulation.queues import create_retry_queue

    land = build_landscape(boto3.Session(region_name="us-east-1"))
    queue_url = create_retry_queue(land)
    # As deployed with a retry queue: the app subscribes to it when it is imported.
    os.environ["RETRY_QUEUE_URL"] = queue_url
    from app import app

    LOG_FILE.parent.mkdir(exist_ok=True)
    log = LOG_FILE.open("w")
    logger.registered_handler.setStream(log)
    lambda_client = Client(app, stage_name="dev", project_dir=str(ROOT))
    timeline = Timeline(out)
    agents = hosts.ScriptAgents(land, agents_dir)

    def invoke(name: str, event: dict[str, Any]) -> Any:
        # EMF metrics print to stdout, as in Lambda; the demo files them with the logs.
        with contextlib.redirect_stdout(io.StringIO()) as emf:
            try:
                return lambda_client.lambda_.invoke(name, event).payload
            finally:
                log.write(emf.getvalue())

    bus = EventBus(app, invoke)
    timeline("platform team", f"group {land.group_name} tagged efs-automount:file-system-id={land.file_system_id}")
    timeline("platform team", f"hook {land.hook_name} (DefaultResult ABANDON), cluster {land.cluster_name}")

    instance_ids = scale_out(land, hosts_count)
    timeline("Auto Scaling", f"scale out by {hosts_count}: {', '.join(instance_ids)} wait in Pending:Wait")
    late = instance_ids[-1] if hosts_count > 1 else None
    hosts.boot_agents(land, [i for i in instance_ids if i != late])
    timeline(
        "hosts",
        f"SSM agents online on {len(instance_ids) - (1 if late else 0)} host(s)"
        + (f"; {late} is late" if late else ""),
    )

    commands: dict[str, str] = {}

    def deliver(events: list[dict[str, Any]]) -> None:
        for event in events:
            for name in bus.targets(event):
                detail = event["detail"]
                registered = (detail.get("responseElements") or {}).get("taskDefinition") or {}
                instance = (
                    detail.get("EC2InstanceId")
                    or detail.get("instance-id")
                    or detail.get("ec2InstanceId")
                    or registered.get("taskDefinitionArn", "").rsplit("/", 1)[-1]
                )
                outcome = invoke(name, event)["outcome"]
                if outcome.startswith("mount command sent: "):
                    commands[instance] = outcome.removeprefix("mount command sent: ")
                timeline(f"Lambda {name}", f"{instance}: {outcome}")

    deliver(moto_gaps.WORLD.drain())

    registered: dict[str, str] = {}
    for instance_id in instance_ids[: (hosts_count + 1) // 2]:
        registered[instance_id] = register_container_instance(land, instance_id)
        timeline("ECS agent", f"{instance_id} registered in {land.cluster_name} before its mount is confirmed")
    deliver(moto_gaps.WORLD.drain())

    if late:
        # The ECS agent registers at about the time the SSM agent comes online: that event sends the mount.
        hosts.boot_agents(land, [late])
        timeline("hosts", f"SSM agent online on {late}")
        registered[late] = register_container_instance(land, late)
        timeline("ECS agent", f"{late} registered in {land.cluster_name}: the moment its mount is sent")
        deliver(moto_gaps.WORLD.drain())

    # A failing host's script finds someone else's data at the mount path: exit 3, permanent.
    failing = instance_ids[:failures]
    for instance_id in instance_ids:
        for _, _, status in agents.answer([instance_id], occupied=failing):
            code = agents.summaries[instance_id][0]
            timeline("SSM agent", f"{instance_id}: mount script finished: {status} (exit {code})")
        deliver(moto_gaps.WORLD.drain())

    for instance_id in instance_ids:
        if instance_id not in registered and lifecycle_state(land, instance_id) == "InService":
            registered[instance_id] = register_container_instance(land, instance_id)
            timeline("ECS agent", f"{instance_id} registered in {land.cluster_name} after its mount")
    deliver(moto_gaps.WORLD.drain())
    task_definition_lines = demo_task_definition(land, deliver, timeline)
    rows = result_rows(land, instance_ids, commands, registered)
    from simulation.demo_checks import checks_scene
    from simulation.demo_repair import _repair_invoker, repair_scene

    repair_lines, last_repair = repair_scene(app, land, registered, deliver, timeline, agents)
    checks_lines, next_host_mounted = checks_scene(land, _repair_invoker(app, land.account), deliver, timeline, agents)
    log.close()
    return rows, host_lines(agents), task_definition_lines, repair_lines, last_repair, checks_lines, next_host_mounted


def host_lines(agents: Any) -> list[str]:
    """Each host's mount script summary, as SSM returned it to the app."""
    if agents.simulated:
        title = [
            f"  The mount is simulated: host/mount-efs.sh did not run here ({agents.simulated}).",
            "  Run as root with unshare to see it run. The simulated agents' summaries:",
        ]
    else:
        title = [
            "  host/mount-efs.sh ran for real on each host, as the mount document runs it, in a private mount",
            "  namespace where a tmpfs stands in for NFS. Its own summary, as SSM returned it to the app:",
        ]
    width = max(len(host) for host in agents.summaries)
    lines = list(title)
    lines += [f"  {host:<{width}}  exit {code:<3} {summary}" for host, (code, summary) in agents.summaries.items()]
    return lines


def result_rows(
    land: Any, instance_ids: list[str], commands: dict[str, str], registered: dict[str, str]
) -> list[dict[str, str]]:
    from simulation import moto_gaps
    from simulation.landscape import lifecycle_state, mount_attribute

    rows = []
    for instance_id in instance_ids:
        container_instance = registered.get(instance_id)
        rows.append(
            {
                "host": instance_id,
                "command": commands.get(instance_id, "-")[:8],
                "status": land.client("ssm").list_command_invocations(CommandId=commands[instance_id])[
                    "CommandInvocations"
                ][0]["Status"]
                if instance_id in commands
                else "-",
                "attribute": (mount_attribute(land, container_instance) or "-")
                if container_instance
                else "(not registered)",
                "lifecycle result": moto_gaps.decided_result(land.account, land.region, instance_id) or "undecided",
                "state": lifecycle_state(land, instance_id),
            }
        )
    return rows


def demo_task_definition(land: Any, deliver: Callable[[list[dict[str, Any]]], None], timeline: Timeline) -> list[str]:
    """Register a task definition tagged for EFS; return what the app's revision changed."""
    from simulation import moto_gaps

    ecs = land.client("ecs")
    source = ecs.register_task_definition(
        family="uploads",
        containerDefinitions=[
            {"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256},
            {"name": "thumbnailer", "image": "public.ecr.aws/app/thumbnailer:2", "memory": 512},
        ],
        tags=[
            {"key": "efs-automount:file-system-id", "value": land.file_system_id},
            {"key": "efs-automount:container-path", "value": "/srv/uploads"},
            {"key": "team", "value": "media"},
        ],
    )["taskDefinition"]
    timeline("platform team", "registered task definition uploads:1 tagged efs-automount:file-system-id")
    (registration,) = moto_gaps.WORLD.drain()
    deliver([registration])
    # The app's own registration comes back through CloudTrail, and EventBridge may deliver twice.
    deliver(moto_gaps.WORLD.drain() + [registration])
    arns = ecs.list_task_definitions(familyPrefix="uploads")["taskDefinitionArns"]
    latest = max(arns, key=lambda arn: int(arn.rsplit(":", 1)[1]))
    new = ecs.describe_task_definition(taskDefinition=latest, include=["TAGS"])
    after = new["taskDefinition"]
    before_name, after_name = f"{source['family']}:{source['revision']}", f"{after['family']}:{after['revision']}"
    lines = [f"  {before_name} -> {after_name} ({len(arns)} revisions)"]
    lines += [f"  + volume      {json.dumps(v)}" for v in after.get("volumes", [])]
    for container in after["containerDefinitions"]:
        lines += [f"  + mount point {container['name']}: {json.dumps(p)}" for p in container.get("mountPoints", [])]
    lines += [f"  + placement   {json.dumps(c)}" for c in after.get("placementConstraints", [])]
    source_tags = [t for t in new.get("tags", []) if t["key"] == "efs-automount:source"]
    lines += [f"  + tag         {t['key']}={t['value']}" for t in source_tags]
    return lines


def print_table(rows: list[dict[str, str]], out: Callable[[str], None] = print) -> None:
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    out("  " + "  ".join(h.ljust(widths[h]) for h in headers))
    out("  " + "  ".join("-" * widths[h] for h in headers))
    for row in rows:
        out("  " + "  ".join(row[h].ljust(widths[h]) for h in headers))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3, help="hosts to scale out by (default 3)")
    parser.add_argument(
        "--fail",
        type=int,
        default=0,
        help="how many hosts' mounts fail: the first FAIL hosts find someone else's data at the mount path, "
        "the script refuses it (exit 3, permanent) and the app abandons the host (default 0)",
    )
    args = parser.parse_args(argv)
    if args.hosts < 1 or not 0 <= args.fail <= args.hosts:
        parser.error("--hosts must be at least 1 and --fail between 0 and --hosts")
    sys.path.insert(0, str(ROOT))
    with local_aws() as endpoint, tempfile.TemporaryDirectory(prefix="efs-automount-hosts-") as agents_dir:
        print(f"efs-automount demo: local AWS at {endpoint}\n")
        print(f"Timeline, {CLOCK}")
        rows, hosts_lines, task_definition_lines, repair_lines, last_repair, checks_lines, next_host_mounted = run(
            args.hosts, args.fail, Path(agents_dir)
        )
    print("\nResult")
    print_table(rows)
    print("\nHosts")
    print("\n".join(hosts_lines))
    print("\nTask definition")
    print("\n".join(task_definition_lines))
    print("\nRepair")
    print("\n".join(repair_lines))
    print("\nConfiguration checks")
    print("\n".join(checks_lines))
    print(f"\nThe app's JSON logs and EMF metrics: {LOG_FILE.relative_to(ROOT)}")
    if "(2 revisions)" not in task_definition_lines[0]:
        print("demo FAILED: the tagged task definition did not get exactly one new revision")
        return 1
    undecided = [r["host"] for r in rows if r["lifecycle result"] == "undecided"]
    expected = {r["host"]: "ABANDON" for r in rows[: args.fail]}
    wrong = [r["host"] for r in rows if r["lifecycle result"] != expected.get(r["host"], "CONTINUE")]
    if undecided or wrong:
        print(f"demo FAILED: undecided {undecided}, wrong result {wrong}")
        return 1
    if last_repair["summary"] != {
        "examined": last_repair["summary"]["examined"],
        "with_problems": 0,
        "actions": 0,
        "errors": 0,
    }:
        print("demo FAILED: the second repair still found something")
        return 1
    if not next_host_mounted:
        print("demo FAILED: after the security group was fixed, the next host was not mounted")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

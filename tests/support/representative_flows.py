"""A fixed set of flows that together take every path on which the app calls AWS: a launch with its mount, a
mount failing for good, a hung mount past the budget, a trusted account's host, the warm pool's sweeps, the hourly
checks, a repair dry run and a repair, and task definition rewrites with every option on. The IAM policy is
judged against what they call, whichever other tests run with them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.ecs.exceptions import EcsClientException
from moto.ecs.models import EC2ContainerServiceBackend

from app import app
from simulation import hosts, moto_gaps
from simulation.eventbus import EventBus
from simulation.landscape import (
    Landscape,
    build_landscape,
    create_member_role,
    lifecycle_state,
    mount_attribute,
    register_container_instance,
    scale_out,
    session_in_account,
)
from tests.conftest import (
    OWN_ACCOUNT,
    SCHEDULED_EVENT,
    Clock,
    Lambda,
    deliver_outbox,
    fresh_aws,
    install_clock,
    make_lambda,
    recording_by_handler,
)
from tests.support.groups import group_with_launch_configuration
from tests.support.launch import ACCESS_POINT, launched_in_service, mount_commands, sweep_for, tag_group
from tests.support.repair import (
    FS_TAG,
    RepairContext,
    host_in_service_before_the_tag,
    mounted_hosts,
    task_definition_registered_while_down,
)
from tests.support.retry_queue import Queued

MEMBER = "210987654321"
IDEMPOTENCY_TABLE = "efs-automount-idempotency"


@dataclass
class Scene:
    """What one flow works with: a directory of its own (for the stage's settings), the clock the app and the
    simulated AWS share, and a monkeypatch undone when the flow ends."""

    directory: Path
    clock: Clock
    monkeypatch: pytest.MonkeyPatch

    def lambda_(self, **env: str) -> Lambda:
        return make_lambda(self.directory, **env)

    def landscape(self, session: boto3.Session | None = None) -> Landscape:
        return build_landscape(session or boto3.Session(region_name="us-east-1"))


def launch_registered_before_its_agent(scene: Scene) -> None:
    """The common launch, with a retry queue: ECS registers the host before its SSM agent is online, the queue
    looks again until it is, the mount is sent and succeeds; the host goes in service, its container instance
    gets the attribute."""
    land = scene.landscape()
    queued = Queued(scene.directory, land)
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(queued.bus)
    queued.deliver_retries(scene.clock)
    hosts.boot_agents(land, [instance_id])
    for _ in range(10):
        if not queued.deliver_retries(scene.clock):
            break
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)
    assert lifecycle_state(land, instance_id) == "InService"
    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"


def mount_failing_for_good(scene: Scene) -> None:
    """The host refuses the mount for good: it is abandoned, and the log names the group's configuration
    problems (the checks' reads)."""
    land = scene.landscape()
    bus = EventBus(app, scene.lambda_().invoke)
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Failed", response_code=3)
    deliver_outbox(bus)
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON"


def hung_mount_past_the_budget(scene: Scene) -> None:
    """The agent comes online late and the mount then hangs: the sweeper heartbeats the host while it waits,
    decides it at the budget and cancels the hung command."""
    land = scene.landscape()
    lambda_ = scene.lambda_()
    bus = EventBus(app, lambda_.invoke)
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(bus)
    sweep_for(lambda_, scene.clock, 1680)
    hosts.boot_agents(land, [instance_id])
    sweep_for(lambda_, scene.clock, 360)
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON"
    (command,) = mount_commands(land, instance_id)
    assert command["Status"] in ("Cancelled", "Cancelling")


def host_of_a_trusted_account(scene: Scene) -> None:
    """A host of a trusted account, mounted through the member role."""
    session = session_in_account(MEMBER)
    create_member_role(session, OWN_ACCOUNT, external_id="shared-secret")
    land = scene.landscape(session)
    bus = EventBus(app, scene.lambda_(TRUSTED_ACCOUNTS=MEMBER, EXTERNAL_ID="shared-secret").invoke)
    launched_in_service(land, bus)


def lost_warm_pool_entry_made_up_by_the_sweeper(scene: Scene) -> None:
    """A host waits on its way into the warm pool and its launch event is lost: the sweeper finds it there."""
    land = scene.landscape()
    lambda_ = scene.lambda_()
    (instance_id,) = scale_out(land, 1)
    moto_gaps.enter_warm_pool(land.account, land.region, instance_id)
    moto_gaps.WORLD.drain()
    sweep_for(lambda_, scene.clock, 1200)
    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "CONTINUE"


def hourly_checks(scene: Scene) -> None:
    """The hourly checks over a group confined to an access point and a group with a launch configuration."""
    land = scene.landscape()
    tag_group(land, "efs-automount:access-point-id", ACCESS_POINT)
    group_with_launch_configuration(land, "with-lc")
    report = scene.lambda_().invoke("checks", SCHEDULED_EVENT)
    assert {group["auto_scaling_group"] for group in report["groups"]} == {land.group_name, "with-lc"}


def repair_dry_run_then_repair(scene: Scene) -> None:
    """Repair of a cluster whose group is its capacity provider: a host never mounted, mounted hosts whose
    records were lost, a tagged revision whose event never came; a dry run, then the repair."""
    RepairContext.remaining_millis = None
    scene.monkeypatch.setattr("chalice.test.LambdaContext", RepairContext)
    land = scene.landscape()
    lambda_ = scene.lambda_(UPDATE_SERVICES="true")
    bus = EventBus(app, lambda_.invoke)
    mounted_hosts(land, bus, 1)
    never, _ = host_in_service_before_the_tag(land, bus)
    task_definition_registered_while_down(land)
    (group,) = land.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])[
        "AutoScalingGroups"
    ]
    ecs = land.client("ecs")
    ecs.create_capacity_provider(
        name="ecs-hosts", autoScalingGroupProvider={"autoScalingGroupArn": group["AutoScalingGroupARN"]}
    )
    ecs.put_cluster_capacity_providers(
        cluster=land.cluster_name, capacityProviders=["ecs-hosts"], defaultCapacityProviderStrategy=[]
    )
    lambda_.invoke("repair", {"cluster": land.cluster_name, "dry_run": True})
    report = lambda_.invoke("repair", {"cluster": land.cluster_name})
    assert report["errors"] == [], report["errors"]
    assert [item["instance_id"] for item in report["instances"] if item["actions"]] == [never]
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert lambda_.invoke("repair", {"auto_scaling_group": land.group_name})["summary"]["with_problems"] == 0


def task_definition_rewrites_with_every_option(scene: Scene) -> None:
    """Rewrites with UPDATE_SERVICES, DEREGISTER_SOURCE and an idempotency table: a source a service runs; a source
    with a revision registered and deregistered after it; a registration ECS refuses once, retried by Lambda."""
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName=IDEMPOTENCY_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    lambda_ = scene.lambda_(UPDATE_SERVICES="true", DEREGISTER_SOURCE="true", IDEMPOTENCY_TABLE=IDEMPOTENCY_TABLE)
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="apps")

    def release(family: str, tags: dict[str, str]) -> tuple[str, dict]:
        moto_gaps.WORLD.drain()  # the events of the app's own registrations: nothing to follow here
        arn = ecs.register_task_definition(
            family=family,
            containerDefinitions=[{"name": "web", "image": f"{family}:1", "memory": 256}],
            tags=[{"key": k, "value": v} for k, v in tags.items()],
        )["taskDefinition"]["taskDefinitionArn"]
        (event,) = moto_gaps.WORLD.drain()
        return arn, event

    tagged = {FS_TAG: "fs-0123456789abcdef0"}
    source, event = release("uploads", tagged)
    ecs.create_service(cluster="apps", serviceName="uploads", taskDefinition=source, desiredCount=0)
    assert lambda_.invoke("on_task_definition", event)["outcome"].startswith("registered")
    (service,) = ecs.describe_services(cluster="apps", services=["uploads"])["services"]
    assert service["taskDefinition"] != source

    _, event = release("reports", tagged)
    trial, _ = release("reports", {"team": "media"})
    ecs.deregister_task_definition(taskDefinition=trial)
    assert lambda_.invoke("on_task_definition", event)["outcome"].startswith("registered")

    _, event = release("billing", tagged)
    register = EC2ContainerServiceBackend.register_task_definition
    refused = []

    def refuse_once(self, *args, **kwargs):
        if not refused:
            refused.append(True)
            raise EcsClientException("Too many concurrent attempts to create a new revision of the specified family.")
        return register(self, *args, **kwargs)

    scene.monkeypatch.setattr(EC2ContainerServiceBackend, "register_task_definition", refuse_once)
    with pytest.raises(Exception, match="Too many concurrent attempts"):
        lambda_.invoke("on_task_definition", event)
    assert lambda_.invoke("on_task_definition", event)["outcome"].startswith("registered")
    assert refused


FLOWS: tuple[Callable[[Scene], None], ...] = (
    launch_registered_before_its_agent,
    mount_failing_for_good,
    hung_mount_past_the_budget,
    host_of_a_trusted_account,
    lost_warm_pool_entry_made_up_by_the_sweeper,
    hourly_checks,
    repair_dry_run_then_repair,
    task_definition_rewrites_with_every_option,
)


def run_representative_flows(directory: Path) -> dict[str, set[str]]:
    """Run every flow, each in a simulated AWS of its own; the operations each handler made in them."""
    with recording_by_handler() as recorded:
        for flow in FLOWS:
            with fresh_aws(), pytest.MonkeyPatch.context() as monkeypatch:
                scene = Scene(directory / flow.__name__, install_clock(monkeypatch), monkeypatch)
                scene.directory.mkdir()
                flow(scene)
    return recorded

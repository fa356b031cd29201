"""Scenes of the launch flow that several test files set up the same way, and the reads that judge them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from simulation import hosts, moto_gaps
from simulation.landscape import Landscape, lifecycle_state, scale_out
from simulation.queues import sqs_event
from tests.conftest import SCHEDULED_EVENT, Clock, Lambda, deliver_outbox

ACCESS_POINT = "fsap-0123456789abcdef0"


def mount_commands(land: Landscape, instance_id: str) -> list[dict[str, Any]]:
    """Every command SSM holds for the host, whoever sent it."""
    return land.client("ssm").list_commands(InstanceId=instance_id)["Commands"]


def tag_group(land: Landscape, key: str, value: str) -> None:
    """The operator sets one tag on the landscape's group."""
    land.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
        ]
    )


def sweep_for(lambda_: Lambda, clock: Clock, seconds: float, step: float = 60) -> None:
    """The sweeper's scheduled runs over `seconds`, one every `step`, lifecycle actions expiring as they go."""
    for _ in range(int(seconds // step)):
        clock.advance(step)
        moto_gaps.expire_actions()
        lambda_.invoke("sweeper", SCHEDULED_EVENT)


def retry_message(land: Landscape, instance_id: str, **fields: Any) -> dict[str, Any]:
    """A message on the retry queue, as anyone allowed to send to it could write it."""
    body = {
        "account": land.account,
        "region": land.region,
        "group_name": land.group_name,
        "instance_id": instance_id,
        "attempt": 1,
        "started_at": 0,
        "heartbeat_at": 0,
    }
    body.update(fields)
    return sqs_event([{"messageId": "forged", "receiptHandle": "forged", "body": json.dumps(body)}])


def relaunch_from_warm_pool(land: Landscape, instance_id: str) -> None:
    """The host went back to the warm pool on scale-in (ReuseOnScaleIn) and is launched from it again:
    a new launch action of our hook, a new "from warm pool" activity, a new launch event."""
    backend = moto_gaps.asg_models.autoscaling_backends[land.account][land.region]
    group = backend.autoscaling_groups[land.group_name]
    state = next(s for s in group.instance_states if s.instance.id == instance_id)
    state.lifecycle_state = "Pending:Wait"
    now = moto_gaps.WORLD.clock()
    moto_gaps._record_activity(
        backend, land.group_name, f"Launching a new EC2 instance from warm pool: {instance_id}", now
    )
    action = moto_gaps.PendingAction(
        str(uuid.uuid4()),
        land.hook_name,
        land.group_name,
        instance_id,
        started_at=now,
        heartbeat_at=now,
        heartbeat_timeout=900,
    )
    moto_gaps.WORLD.actions[(land.account, land.region, instance_id)] = action
    moto_gaps.WORLD.decided.pop((land.account, land.region, instance_id), None)
    moto_gaps.WORLD.emit(
        land.account,
        land.region,
        "aws.autoscaling",
        "EC2 Instance-launch Lifecycle Action",
        {
            "Origin": "WarmPool",
            "Destination": "AutoScalingGroup",
            "LifecycleActionToken": action.token,
            "AutoScalingGroupName": land.group_name,
            "LifecycleHookName": land.hook_name,
            "EC2InstanceId": instance_id,
            "LifecycleTransition": moto_gaps.LAUNCHING,
        },
        [],
    )


def launched_in_service(land: Landscape, bus: Any) -> str:
    """One host launched through the app: its agent online, its mount sent and succeeded, in service. Returns it."""
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert lifecycle_state(land, instance_id) == "InService"
    return instance_id


def in_service_then_confined_to_an_access_point(land: Landscape, bus: Any) -> str:
    """A host mounted through the app (the whole file system: the group had no access point) and in service;
    then the group is tagged with an access point (ACCESS_POINT). Returns the host."""
    instance_id = launched_in_service(land, bus)
    tag_group(land, "efs-automount:access-point-id", ACCESS_POINT)
    return instance_id

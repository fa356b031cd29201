"""Pure: events parse into checked values; anything AWS would never send is refused by name."""

from __future__ import annotations

import pytest

from chalicelib.plumbing.events import (
    MalformedEvent,
    NotOurEvent,
    parse_command_status,
    parse_container_instance_change,
    parse_launch_action,
)
from tests.conftest import load_event


def test_launch_action_is_read_from_the_documented_shape():
    action = parse_launch_action(load_event("launch-lifecycle-action"))
    assert (action.origin.account, action.origin.region) == ("123456789012", "us-east-1")
    assert (action.group_name, action.hook_name, action.instance_id) == (
        "ecs-hosts",
        "efs-automount",
        "i-1234567890abcdef0",
    )
    assert not action.into_warm_pool
    assert parse_launch_action(load_event("warm-pool-launch")).into_warm_pool


def test_a_launch_is_read_with_or_without_the_warm_pool_fields():
    # AWS's EventBridge samples of a launch lifecycle action: without Origin and Destination (Auto Scaling event
    # reference, and events of groups before warm pools), and with them (warm pool example events: a new instance
    # launched straight into a group that has a warm pool). Both are a launch into the group.
    plain = load_event("launch-lifecycle-action")
    assert not {"Origin", "Destination"} & set(plain["detail"])
    warm_pool_group = load_event("launch-lifecycle-action-warm-pool")
    assert (warm_pool_group["detail"]["Origin"], warm_pool_group["detail"]["Destination"]) == (
        "EC2",
        "AutoScalingGroup",
    )
    for event in (plain, warm_pool_group):
        action = parse_launch_action(event)
        assert not action.into_warm_pool
        assert (action.group_name, action.instance_id) == ("ecs-hosts", "i-1234567890abcdef0")


def test_test_notification_is_not_ours():
    with pytest.raises(NotOurEvent):
        parse_launch_action(load_event("test-notification"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"EC2InstanceId": "i-123; reboot"}, "EC2InstanceId"),
        ({"EC2InstanceId": None}, "EC2InstanceId"),
        ({"LifecycleActionToken": "not-a-token"}, "LifecycleActionToken"),
        ({"AutoScalingGroupName": "x" * 256}, "AutoScalingGroupName"),
        ({"AutoScalingGroupName": "evil\ngroup"}, "AutoScalingGroupName"),
        ({"Destination": "Elsewhere"}, "Destination"),
    ],
)
def test_malformed_launch_detail_is_refused_naming_the_field(change, field):
    with pytest.raises(MalformedEvent, match=field):
        parse_launch_action(load_event("launch-lifecycle-action", **change))


@pytest.mark.parametrize(
    ("top", "field"),
    [({"account": "12345"}, "account"), ({"region": "mars-1"}, "region"), ({"detail": "x"}, "detail")],
)
def test_malformed_envelope_is_refused_naming_the_field(top, field):
    event = load_event("command-status-success") | top
    with pytest.raises(MalformedEvent, match=field):
        parse_command_status(event)


def test_command_status_and_container_change_are_read():
    status = parse_command_status(load_event("command-status-failed"))
    assert (status.status, status.document_name) == ("Failed", "efs-automount-mount")
    change = parse_container_instance_change(load_event("container-instance-registered"))
    assert change.instance_id == "i-1234567890abcdef0"
    assert change.attributes["ecs.os-type"] == "linux"
    assert change.cluster_arn.endswith(":cluster/apps")


def test_non_final_command_status_is_refused():
    with pytest.raises(MalformedEvent, match="status"):
        parse_command_status(load_event("command-status-in-progress"))

"""The sweeper within its Lambda timeout (60 s): however many accounts, regions and warm-pool groups it serves,
a run ends in time, driving the hosts it found, and the places it could not list come first in later runs.

The second review's suspicion (issue 18): a run lists every group of every place (a DescribeWarmPool per
warm-pool group, uncached) before it drives any host; with enough of them Lambda ends the run and no host is
driven, on every run."""

from __future__ import annotations

import boto3
import pytest
from botocore.client import BaseClient

from chalicelib.launch import sweeper
from simulation import hosts, moto_gaps
from simulation.landscape import AMI_ID, scale_out
from tests.conftest import SCHEDULED_EVENT, make_lambda
from tests.support.launch import mount_commands


class LambdaTimeout(BaseException):
    """Lambda ends the run: nothing in the app can catch it."""


SECONDS_PER_CALL = 1.0  # a slow day: every AWS call of the run takes a second
LAMBDA_TIMEOUT = 60


def _warm_pool_groups(region: str, count: int) -> None:
    """`count` groups with our hook and a warm pool, none of whose hosts waits: each costs a run a look."""
    ec2 = boto3.client("ec2", region_name=region)
    autoscaling = boto3.client("autoscaling", region_name=region)
    template = ec2.create_launch_template(
        LaunchTemplateName="pool", LaunchTemplateData={"ImageId": AMI_ID, "InstanceType": "t3.medium"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    zone = f"{region}a"
    for index in range(count):
        name = f"pool-{index:02d}"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": template, "Version": "$Latest"},
            MinSize=0,
            MaxSize=1,
            DesiredCapacity=0,
            AvailabilityZones=[zone],
        )
        autoscaling.put_warm_pool(AutoScalingGroupName=name, MinSize=0)
        autoscaling.put_lifecycle_hook(
            LifecycleHookName="efs-automount",
            AutoScalingGroupName=name,
            LifecycleTransition=moto_gaps.LAUNCHING,
            HeartbeatTimeout=900,
            DefaultResult="ABANDON",
        )


class SlowCalls:
    """The run's time as the slow day makes it: `made` calls so far (None: no run timed, the test's own set-up),
    and how often the sweeper read its time."""

    def __init__(self) -> None:
        self.made: int | None = None
        self.time_reads = 0

    def elapsed(self, start: float) -> float:
        self.time_reads += 1
        return (self.made or 0) * SECONDS_PER_CALL


@pytest.fixture
def slow_calls(monkeypatch):
    """Each AWS call the app makes takes SECONDS_PER_CALL of the run's time; past LAMBDA_TIMEOUT, Lambda ends it."""
    slow = SlowCalls()
    original = BaseClient._make_api_call

    def make_api_call(self, operation_name, api_params):
        if slow.made is None:
            return original(self, operation_name, api_params)
        slow.made += 1
        if slow.made * SECONDS_PER_CALL > LAMBDA_TIMEOUT:
            raise LambdaTimeout(f"Task timed out after {LAMBDA_TIMEOUT}.00 seconds")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", make_api_call)
    monkeypatch.setattr(sweeper, "elapsed_since", slow.elapsed)
    return slow


@pytest.mark.parametrize("first_minute", ["even", "odd"])
def test_a_sweep_of_many_warm_pool_groups_still_drives_a_waiting_host(tmp_path, land, clock, slow_calls, first_minute):
    # Given the app serves two regions, one of them with 80 warm-pool groups under its hook,
    _warm_pool_groups("us-west-2", 80)
    lambda_ = make_lambda(tmp_path, SWEEP_REGIONS="us-east-1,us-west-2")
    # and a host waits in the other whose launch event was lost, its SSM agent online,
    (instance_id,) = scale_out(land, 1)
    moto_gaps.WORLD.drain()
    hosts.boot_agents(land, [instance_id])
    # for longer than the sweeper leaves a host to its launch event.
    clock.advance(sweeper.GRACE_SECONDS)

    # When the sweeper runs twice, a minute apart (EventBridge's rate(1 minute): each one second into its minute;
    # a run begins its listing at the place the minute's number picks, and the test takes both, whatever the
    # wall clock when it runs),
    minute = int(clock() // 60) + 1
    minute += (minute % 2 == 0) != (first_minute == "even")
    clock.advance(minute * 60 + 1 - clock())
    reports, calls = [], []
    for run in range(2):
        clock.advance(60 * run)
        slow_calls.made = 0
        reports.append(lambda_.invoke("sweeper", SCHEDULED_EVENT))
        calls.append(slow_calls.made)
        slow_calls.made = None

    # then each run ends within its timeout, and the host's mount is sent.
    assert all(r.get("truncated") for r in reports), reports
    assert mount_commands(land, instance_id), f"no mount sent: {reports}"
    # (the slow day was the one the runs had: their calls were counted and the sweeper went by that time)
    assert all(calls) and slow_calls.time_reads > 0, (calls, slow_calls.time_reads)

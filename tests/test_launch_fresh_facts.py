"""A host is decided only on facts of this moment: a cached tag, a cached mount-target list or a start read before a
fresh one never decides it, and a failing read does not stop its heartbeat (found by the review of the redesign)."""

from __future__ import annotations

import boto3
from botocore.exceptions import ClientError

from chalicelib.launch.facts import HostFacts
from chalicelib.launch.groups import Group, Hook
from chalicelib.plumbing.memory import HostMemory
from simulation import hosts, moto_gaps
from simulation.landscape import build_landscape, scale_out
from tests.conftest import SCHEDULED_EVENT, deliver_outbox
from tests.support.launch import mount_commands
from tests.support.launch import tag_group as _tag


# (a), pre-existing: "no file-system tag" lets a host in unmounted on the 60 s tag cache, never re-read.
def test_a_host_is_not_let_in_unmounted_on_a_cached_tag_that_asked_no_mount(bus, lambda_, clock):
    land = build_landscape(boto3.Session(region_name="us-east-1"), group_tags={})
    (first,) = scale_out(land, 1)
    deliver_outbox(bus)
    assert moto_gaps.decided_result(land.account, land.region, first) == "CONTINUE"  # right: the group asked none

    _tag(land, "efs-automount:file-system-id", land.file_system_id)  # the operator turns the mount on
    clock.advance(20)
    (second,) = scale_out(land, 1)
    hosts.boot_agents(land, [second])
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert not (
        moto_gaps.decided_result(land.account, land.region, second) == "CONTINUE" and not mount_commands(land, second)
    ), f"let in unmounted 20 s after its group asked for a mount, on the cached tags: {outcomes}"


# (b), pre-existing: "no mount target in the zone" throws a host away on the 60 s mount-target cache.
def test_a_host_is_not_thrown_away_on_a_cached_mount_target_list(land, bus, clock):
    efs, ec2 = land.client("efs"), land.client("ec2")
    (first,) = scale_out(land, 1)
    (member,) = land.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[first])["AutoScalingInstances"]
    zone = member["AvailabilityZone"]
    subnet = next(
        s["SubnetId"]
        for s in ec2.describe_subnets(SubnetIds=land.subnet_ids)["Subnets"]
        if s["AvailabilityZone"] == zone
    )
    for target in efs.describe_mount_targets(FileSystemId=land.file_system_id)["MountTargets"]:
        if target["SubnetId"] == subnet:
            efs.delete_mount_target(MountTargetId=target["MountTargetId"])  # the zone has no mount target yet
    hosts.boot_agents(land, [first])
    deliver_outbox(bus)
    assert moto_gaps.decided_result(land.account, land.region, first) == "ABANDON"  # right, then

    efs.create_mount_target(
        FileSystemId=land.file_system_id, SubnetId=subnet, SecurityGroups=[land.mount_target_security_group_id]
    )  # the operator adds the zone's mount target (moto: available at once)
    clock.advance(20)
    (second,) = scale_out(land, 1)
    hosts.boot_agents(land, [second])
    outcomes = [o for _, o in deliver_outbox(bus)]

    assert moto_gaps.decided_result(land.account, land.region, second) != "ABANDON", (
        f"thrown away on a 20 s old mount-target list; its zone's mount target exists now: {outcomes}"
    )


# (d), pre-existing, half fixed by the redesign: on the record path (sweeper, retries, status events) the EFS
# reads come before the heartbeat, so an EFS control-plane error lets the hook time out into its default result.
def test_an_efs_error_does_not_stop_the_heartbeat(land, bus, lambda_, clock, monkeypatch, short_hook):  # noqa: F811
    instance_id = short_hook()
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)  # the mount command is sent; the host is slow to answer
    assert mount_commands(land, instance_id)

    def unavailable(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "EFS"}}, "DescribeMountTargets")

    monkeypatch.setattr("chalicelib.launch.reads.describe_mount_targets", unavailable)
    expired = []
    for _ in range(4):
        clock.advance(40)
        expired += moto_gaps.expire_actions()
        lambda_.invoke("sweeper", SCHEDULED_EVENT)
    assert expired == [], "the hook timed out while the sweeper looked at the host every run"


# Redesign-specific (low): started(read_after=X) is memoized before started(fresh=True) and returned stale after
# it. The old code's second call went to LaunchWaits again and got the fresh start. Effect seen in a differential
# run: an extra RecordLifecycleActionHeartbeat (and a spurious over-budget pre-check) on the status step of a host
# relaunched from a warm pool; no decision changes because the stale start is never later than the fresh one.
def test_the_start_read_after_a_fresh_read_is_the_fresh_one():
    class Waits:
        start = 1000.0

        def first_sight(self, key, now):
            pass

        def started(self, aws, group_name, instance_id, hook, fresh=False, read_after=None):
            if fresh:
                self.start = 5000.0  # AWS reports a newer launch (a warm pool relaunched the host)
            return self.start

    class Reads:
        def hook(self, aws, group_name):
            return Hook(300, 30000)

    class Aws:
        account, region = "111111111111", "us-east-1"

    iid = "i-0123456789abcdef0"
    group = Group("g", {}, {iid: "us-east-1a"}, {iid: "Pending:Wait"})
    facts = HostFacts(Aws(), Reads(), Waits(), HostMemory(), "doc", lambda: 6000.0, "g", iid, group=group)
    assert facts.started(read_after=900.0) == 1000.0
    assert facts.started(fresh=True) == 5000.0
    assert facts.started(read_after=900.0) == 5000.0, "the launch's start read after a fresh read is stale"

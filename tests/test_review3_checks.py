"""Adversarial review of the configuration checks (issue 19): each test reproduces one finding and fails on the
code as it landed. See the review report for severity and the suggested fix."""

from __future__ import annotations

import json

import pytest

from chalicelib.checks import group_checks
from chalicelib.checks.configuration import check_file_system_policy
from chalicelib.checks.findings import Findings
from chalicelib.mount.spec import MountSpec
from chalicelib.plumbing.accounts import AwsAccess
from simulation import hosts
from simulation.landscape import scale_out
from tests.conftest import SCHEDULED_EVENT, deliver_outbox, make_lambda
from tests.support.network import SSH, replace_ingress

MOUNT_AND_WRITE = ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]


# --- 1. file-system-policy: a TLS demand written as an Allow is reported though the mount uses TLS ----------------


def test_an_allow_only_over_tls_policy_is_no_problem_for_hosts_whose_helper_mounts_with_tls(land):
    """The policy allows every client through a mount target over TLS only (Allow + Bool aws:SecureTransport true,
    a common way to demand TLS). The app's mount script mounts with efs-utils, always with `tls`, whenever
    amazon-efs-utils is installed or installable (Amazon Linux 2/2023, the ECS-optimized AMIs): on such hosts the
    mount works. Whether a host falls back to plain NFS is exactly what the check cannot see (MountRequest.tls_cases
    says "either way (the host's helper decides)"), so the promise asks for not_sure, not a problem."""
    land.client("efs").put_file_system_policy(
        FileSystemId=land.file_system_id,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": "*"},
                        "Action": MOUNT_AND_WRITE,
                        "Condition": {"Bool": {"aws:SecureTransport": "true"}},
                    }
                ],
            }
        ),
    )
    findings = Findings()
    check_file_system_policy(
        AwsAccess(land.account, land.region, land.session),
        MountSpec(land.file_system_id, f"/mnt/efs/{land.file_system_id}"),
        None,
        findings,
    )

    assert findings.problems == [], findings.problems


# --- 2. the hourly run: the listing of accounts and regions is never timed -----------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_the_hourly_run_ends_within_its_timeout_however_many_places_it_lists(land, tmp_path, monkeypatch):
    """Every account and region costs an AssumeRole and a DescribeAutoScalingGroups listing before any deadline is
    looked at (CHECKING_SECONDS is compared only before a group). With many places (here 14 regions at 25 s each,
    standing for e.g. 60 accounts x 6 regions at ~0.7 s, or one slow place retried by the standard retry mode) the run
    goes on listing past the function's 300 s timeout and is killed: the sweeper has LISTING_SECONDS for exactly
    this; the checks do not."""
    fake = FakeMonotonic()
    monkeypatch.setattr(group_checks.time, "monotonic", fake)
    listed = group_checks.tagged_groups
    listings = []

    def slow_listing(aws, names=None):
        listings.append(aws.region)
        fake.now += 25
        return listed(aws, names)

    monkeypatch.setattr(group_checks, "tagged_groups", slow_listing)
    regions = [
        "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1",
        "eu-north-1", "ap-south-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-2",
    ]  # fmt: skip
    lambda_ = make_lambda(tmp_path, SWEEP_REGIONS=",".join(regions))
    start = fake.now

    report = lambda_.invoke("checks", SCHEDULED_EVENT)

    elapsed = fake.now - start
    assert elapsed <= 300 or report["truncated"], f"ran {elapsed:.0f} s of a 300 s function, not truncated"
    assert listings and fake.reads, "the slow listing or the run's clock was never used"


# --- 3. a mount failing for good waits for the checks before the host is decided -----------------------------------


class LambdaTimedOut(BaseException):
    """What Lambda does to an invocation past its timeout: it ends, whatever code runs (no except clause helps)."""


def test_a_mount_failing_for_good_is_decided_even_when_the_checks_overrun_the_function(land, bus, lambda_, monkeypatch):
    """The lifecycle functions have 60 s. `_problems_now` runs a whole group check (hook, file system, subnets,
    mount targets and their groups, launch template, instances, security groups, policy, document, agents: a dozen
    reads, each up to 6 attempts with a 30 s read timeout) as an argument of the log line, before
    CompleteLifecycleAction. When those reads overrun the function, the host is not decided: the promise is that
    a mount failing for good still decides the host even when the checks fail."""
    replace_ingress(land, {**SSH, "UserIdGroupPairs": [{"GroupId": land.host_security_group_id}]})
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)

    overruns = []

    def overrun(self, aws, raw_group):
        overruns.append(raw_group["AutoScalingGroupName"])
        raise LambdaTimedOut("the checks' reads outlived the function's 60 s")

    monkeypatch.setattr(group_checks.GroupChecks, "check", overrun)
    hosts.answer(land, "Failed", response_code=3)
    with pytest.raises(LambdaTimedOut):
        deliver_outbox(bus)

    completions = [op for op in lambda_.operations() if op == "autoscaling:CompleteLifecycleAction"]
    assert completions, "the host failed for good but was never decided: the checks ran first"
    assert overruns, "the checks never ran"

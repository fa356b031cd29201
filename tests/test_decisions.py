"""Pure: which lifecycle result follows from which status; what is none of our business; the host record."""

from __future__ import annotations

import datetime
import json

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chalicelib.container_instances.ecs import trusted_container_instance
from chalicelib.launch.attempts import launch_attempts, send_rounds
from chalicelib.launch.budget import (
    SweepEntry,
    deadline,
    heartbeat_due,
    implausible_time,
    launch_starts,
    over_budget,
    sweep_order,
    wait_budget,
)
from chalicelib.launch.decision import enters_warm_pool, retry_after_failure
from chalicelib.launch.flow import command_skip_reason, launch_skip_reason
from chalicelib.launch.groups import Hook
from chalicelib.launch.retry_queue import RetryMessage
from chalicelib.mount.commands import (
    latest_finished,
    launch_comment,
    mount_difference,
    spec_from_parameters,
)
from chalicelib.mount.script_result import script_result_from_invocation
from chalicelib.mount.spec import MountSpec, mount_command_parameters
from chalicelib.plumbing.events import MalformedEvent, parse_command_status, parse_launch_action
from chalicelib.plumbing.settings import Settings
from chalicelib.task_definitions.rewrite import source_standing
from tests.conftest import load_event


@pytest.mark.parametrize(
    ("invocation", "failed_attempts", "retry"),
    [
        ({"Status": "Failed", "ResponseCode": 75}, 1, True),
        ({"Status": "Failed", "ResponseCode": 75}, 3, False),  # attempts used up
        ({"Status": "TimedOut", "ResponseCode": -1}, 2, True),
        ({"Status": "Failed", "ResponseCode": 3}, 1, False),  # permanent: never retried
        ({"Status": "Cancelled"}, 1, True),
    ],
)
def test_a_failed_mount_is_retried_only_when_transient_with_attempts_left(invocation, failed_attempts, retry):
    assert retry_after_failure(script_result_from_invocation(invocation), failed_attempts, 3) is retry


def test_heartbeats_fall_due_at_half_the_heartbeat_timeout():
    hook = Hook(heartbeat_timeout=900, global_timeout=90000)
    assert not heartbeat_due(now=1449, last_heartbeat_at=1000, hook=hook)
    assert heartbeat_due(now=1450, last_heartbeat_at=1000, hook=hook)
    # Nothing AWS reports says when the wait began or was last heartbeated: heartbeat now
    assert heartbeat_due(now=1000, last_heartbeat_at=None, hook=hook)


def test_the_wait_budget_stays_short_of_the_global_timeout():
    assert wait_budget(Hook(900, 90000), max_wait_seconds=1800) == 1800
    # A 30 s heartbeat gives a 3000 s global timeout: give up 300 s before it
    assert wait_budget(Hook(30, 3000), max_wait_seconds=7200) == 2700


def test_our_hook_and_document_are_our_business():
    settings = Settings()
    assert launch_skip_reason(parse_launch_action(load_event("launch-lifecycle-action")), settings) is None
    assert command_skip_reason(parse_command_status(load_event("command-status-success")), settings) is None


def test_another_hook_name_setting_changes_what_is_ours():
    action = parse_launch_action(load_event("launch-lifecycle-action"))
    assert "is not ours" in launch_skip_reason(action, Settings(hook_name="mount-hook"))


def at(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def test_the_wait_starts_at_the_newest_launch_activity_never_at_the_warm_pool_launch():
    activities = [  # newest first, as DescribeScalingActivities lists them
        {"Description": "Launching a new EC2 instance from warm pool: i-0123456789abcdef0", "StartTime": at(5000)},
        {"Description": "Launching a new EC2 instance: i-0fedcba9876543210", "StartTime": at(4000)},
        {"Description": "Launching a new EC2 instance into warm pool: i-0123456789abcdef0", "StartTime": at(100)},
        {"Description": "Terminating EC2 instance: i-0aaaaaaaaaaaaaaaa", "StartTime": at(50)},
        {"Description": "Launching a new EC2 instance: i-0123456789abcdef0 and more", "StartTime": at(10)},
    ]
    assert launch_starts(activities) == {"i-0123456789abcdef0": 5000, "i-0fedcba9876543210": 4000}


@pytest.mark.parametrize(
    ("moment", "implausible"),
    [
        (10_000 - 365 * 86400, True),  # a launch event replayed from an archive a year later
        (10_000 + 86400, True),  # a clock a day ahead
        (10_000 + 60, False),  # clocks disagree a little
        (10_000 - 3000, False),
    ],
)
def test_a_start_of_the_wait_must_be_plausible(moment, implausible):
    assert (implausible_time(moment, now=10_000, max_age=6000) is not None) is implausible


def test_given_a_time_exactly_at_a_limit_when_judged_then_it_is_still_plausible():
    # Clocks may disagree by CLOCK_SKEW_SECONDS (300 s), and a wait may last max_age: both limits included
    assert implausible_time(10_300, now=10_000, max_age=6000) is None
    assert implausible_time(4_000, now=10_000, max_age=6000) is None
    assert implausible_time(10_301, now=10_000, max_age=6000) is not None
    assert implausible_time(3_999, now=10_000, max_age=6000) is not None


def test_given_an_implausible_start_when_judged_then_the_reason_says_how_far_off_it_is():
    assert implausible_time(10_000 + 86400, now=10_000, max_age=6000) == "86400 s in the future"
    assert implausible_time(1_000, now=10_000, max_age=6000) == "9000 s ago, longer than a wait can last (6000 s)"


def test_an_unknown_start_never_spends_the_budget():
    assert not over_budget(now=10**9, started=None, budget=1800)
    assert over_budget(now=2000, started=100, budget=1800)
    assert not over_budget(now=1900, started=100, budget=1800)


def test_a_hosts_deadline_is_its_next_heartbeat_or_its_budget_whichever_comes_first():
    hook = Hook(heartbeat_timeout=900, global_timeout=90000)
    assert deadline(now=500, started=0, last_heartbeat_at=None, hook=hook, budget=1800) == 900
    assert deadline(now=1500, started=0, last_heartbeat_at=1200, hook=hook, budget=1800) == 1800
    assert deadline(now=7, started=None, last_heartbeat_at=None, hook=hook, budget=1800) == 7
    # The wait's start unknown, its last heartbeat known: due before that heartbeat times out
    assert deadline(now=1500, started=None, last_heartbeat_at=1200, hook=hook, budget=1800) == 2100


def test_the_sweeper_takes_urgent_hosts_first_then_the_one_looked_at_longest_ago():
    now = 1000
    entries = [
        SweepEntry(("a", "r", "i-1"), deadline=now + 800, looked_at=990),
        SweepEntry(("a", "r", "i-2"), deadline=now + 800, looked_at=None),
        SweepEntry(("a", "r", "i-3"), deadline=now + 100, looked_at=999),  # urgent
        SweepEntry(("a", "r", "i-4"), deadline=now + 700, looked_at=500),
        SweepEntry(("a", "r", "i-5"), deadline=now + 50, looked_at=999),  # most urgent
    ]
    assert [e.key[2] for e in sweep_order(entries, now)] == ["i-5", "i-3", "i-2", "i-4", "i-1"]


def test_given_a_deadline_exactly_two_runs_away_when_swept_then_the_host_is_urgent_and_taken_once():
    now = 1000
    entries = [
        SweepEntry(("a", "r", "i-1"), deadline=now + 181, looked_at=None),  # not urgent: looked at never, first
        SweepEntry(("a", "r", "i-2"), deadline=now + 180, looked_at=999),  # urgent, just
    ]
    assert [e.key[2] for e in sweep_order(entries, now)] == ["i-2", "i-1"]


def test_a_retry_message_carries_no_time_and_an_old_ones_times_are_ignored():
    body = {
        "account": "123456789012",
        "region": "us-east-1",
        "group_name": "ecs-hosts",
        "instance_id": "i-0123456789abcdef0",
        "attempt": 2,
        "started_at": 0,
        "heartbeat_at": 0,
    }
    message = RetryMessage.from_json(json.dumps(body))
    assert message.attempt == 2
    assert "started_at" not in json.loads(message.to_json())
    with pytest.raises(MalformedEvent, match="attempt"):
        RetryMessage.from_json(json.dumps({**body, "attempt": 10**9}))


# --- What AWS reports decides, not events or tags (issue 10 follow-up) ------------------------

FS = "fs-0123456789abcdef0"
HOST = "i-0123456789abcdef0"
ROOTS = ("/mnt/efs",)


def mount_command(status: str, path: str, minute: int, file_system_id: str = FS) -> dict:
    return {
        "CommandId": f"command-{minute}",
        "Status": status,
        "InstanceIds": [HOST],
        "Parameters": {"FileSystemId": [file_system_id], "MountPath": [path]},
        "RequestedDateTime": at(minute * 60),
    }


@pytest.mark.parametrize(
    ("state", "warm_pool"),
    [
        ("Warmed:Pending:Wait", True),
        ("Pending:Wait", False),  # launching into the group: mounted before it may go on
        ("InService", False),
        ("Warmed:Stopped", False),
    ],
)
def test_only_the_warm_pool_wait_aws_reports_lets_a_host_go_on_unmounted(state, warm_pool):
    assert enters_warm_pool(state) is warm_pool


def test_the_newest_finished_command_per_file_system_is_what_ssm_says():
    other = "fs-0fedcba9876543210"
    commands = [
        mount_command("Success", "/mnt/efs/a", 1),
        mount_command("Failed", "/mnt/efs/a", 2),
        mount_command("InProgress", "/mnt/efs/a", 3),  # left to its own status event
        mount_command("Success", "/mnt/efs/b", 4, other),
    ]

    latest = latest_finished(commands)

    assert {fs: (c["Status"], c["Parameters"]["MountPath"][0]) for fs, c in latest.items()} == {
        FS: ("Failed", "/mnt/efs/a"),
        other: ("Success", "/mnt/efs/b"),
    }
    # Whatever else the newest asked for: whether it is the group's mount is mount_difference's to say
    odd = {**mount_command("Success", "/etc", 5), "Parameters": {"FileSystemId": [FS], "MountPath": ["/etc"]}}
    assert latest_finished([*commands, odd])[FS] is odd


ASKED = MountSpec(FS, "/mnt/efs/a", "fsap-0123456789abcdef0")


@pytest.mark.parametrize(
    ("parameters", "difference"),
    [
        ({"AccessPointId": ["fsap-0123456789abcdef0"], "ReadOnly": ["false"]}, None),
        ({"AccessPointId": [""]}, "without the group's access point fsap-0123456789abcdef0"),
        ({}, "without the group's access point fsap-0123456789abcdef0"),  # omitted: the document's default, none
        (
            {"AccessPointId": ["fsap-0fedcba9876543210"]},
            "through access point fsap-0fedcba9876543210, not the group's fsap-0123456789abcdef0",
        ),
        ({"AccessPointId": ["fsap-0123456789abcdef0"], "ReadOnly": ["true"]}, "read-only"),
        ({"AccessPointId": ["fsap-0123456789abcdef0"], "MountPath": ["/mnt/efs/b"]}, "at /mnt/efs/b, not /mnt/efs/a"),
        (
            {"AccessPointId": ["fsap-0123456789abcdef0"], "MountPath": ["/etc/x"]},
            "with parameters the app does not send",
        ),
    ],
)
def test_a_host_carries_the_groups_mount_only_when_it_is_the_whole_mount_the_group_asks_now(parameters, difference):
    # One rule for the launch, registration and status steps and repair: file system, path, access point, read-write
    command = {"FileSystemId": [FS], "MountPath": ["/mnt/efs/a"], **parameters}
    assert mount_difference(command, ASKED, ROOTS) == difference


def test_a_mount_through_an_access_point_is_not_the_mount_of_a_group_that_asks_for_none():
    command = {"FileSystemId": [FS], "MountPath": ["/mnt/efs/a"], "AccessPointId": ["fsap-0123456789abcdef0"]}
    assert (
        mount_difference(command, MountSpec(FS, "/mnt/efs/a"), ROOTS)
        == "through access point fsap-0123456789abcdef0, where the group asks for none"
    )


def test_given_a_commands_parameters_when_read_back_then_only_a_read_write_mount_under_the_deployed_roots_is_one():
    roots = ("/opt/shared",)
    parameters = {"FileSystemId": [FS], "MountPath": ["/opt/shared/x"], "AccessPointId": [""]}
    assert spec_from_parameters(parameters, roots) == MountSpec(FS, "/opt/shared/x")
    assert spec_from_parameters({**parameters, "ReadOnly": ["false"]}, roots) == MountSpec(FS, "/opt/shared/x")
    assert spec_from_parameters({**parameters, "ReadOnly": ["true"]}, roots) is None  # the app never mounts read-only
    assert spec_from_parameters({**parameters, "MountPath": ["/mnt/efs/x"]}, roots) is None


def test_the_container_instance_trusted_is_the_one_ecs_reports_on_the_host():
    ours = "arn:aws:ecs:us-east-1:123456789012:container-instance/apps/0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    theirs = "arn:aws:ecs:us-east-1:123456789012:container-instance/apps/1f1e2d3c4b5a69788796a5b4c3d2e1f0"
    described = [
        {"containerInstanceArn": theirs, "ec2InstanceId": "i-0fedcba9876543210"},
        {"containerInstanceArn": ours, "ec2InstanceId": HOST},
    ]

    assert trusted_container_instance(described, HOST) == ours
    assert trusted_container_instance(described[:1], HOST) is None
    assert trusted_container_instance([], HOST) is None


def _command(at: float, fs: str = "fs-0123456789abcdef0", path: str = "/mnt/efs/data") -> dict:
    return {
        "CommandId": f"c{at}",
        "RequestedDateTime": datetime.datetime.fromtimestamp(at, datetime.UTC),
        "Parameters": {"FileSystemId": [fs], "MountPath": [path]},
    }


def test_commands_sent_by_overlapping_steps_are_one_attempt_and_backed_off_rounds_are_not():
    # three steps overlapping within a second, then the backed-off retry 20 s later
    rounds = send_rounds([_command(100.0), _command(100.4), _command(101.0), _command(121.0)])
    assert [len(r) for r in rounds] == [3, 1]


def test_given_two_sends_exactly_a_round_apart_when_grouped_then_they_are_two_attempts():
    # ROUND_SECONDS (9 s): commands closer than that to a round's first are that round; at 9 s a new one begins
    assert [len(r) for r in send_rounds([_command(100.0), _command(108.9), _command(109.0)])] == [2, 1]


APP_PARAMETERS = mount_command_parameters(MountSpec("fs-0123456789abcdef0", "/mnt/efs/data"), "us-east-1", "10.0.0.5")


def _sent(at: float, parameters: dict | None = None, version: str | None = "$DEFAULT") -> dict:
    command = {**_command(at), "Parameters": APP_PARAMETERS if parameters is None else parameters}
    return command if version is None else {**command, "DocumentVersion": version}


def test_only_the_apps_own_commands_of_this_launch_count():
    earlier_launch, this_one, unnamed_version = _sent(50.0), _sent(220.0), _sent(230.0, version="")
    commands = [earlier_launch, this_one, unnamed_version, _sent(240.0, version=None)]
    assert launch_attempts(commands, 100.0, APP_PARAMETERS) == commands[1:]
    assert launch_attempts(commands, 100.0, None) == []  # the app would send nothing now: nothing is its attempt


def test_given_a_command_sent_at_the_very_moment_the_launch_began_when_judged_then_it_is_this_launchs_attempt():
    assert launch_attempts([_sent(100.0)], 100.0, APP_PARAMETERS) == [_sent(100.0)]


@given(
    name=st.sampled_from(sorted(APP_PARAMETERS) + ["DnsWaitSeconds", "Unknown"]),
    value=st.one_of(st.none(), st.lists(st.text(max_size=20), max_size=2)),
)
def test_a_command_differing_from_the_apps_in_any_parameter_is_not_its_attempt(name, value):
    changed = {k: v for k, v in APP_PARAMETERS.items() if k != name}
    if value is not None:
        changed[name] = value
    assume(changed != APP_PARAMETERS)
    assert launch_attempts([_sent(200.0, changed)], 100.0, APP_PARAMETERS) == []


@pytest.mark.parametrize("version", ["$LATEST", "1", "2", "$default"])
def test_a_command_naming_a_document_version_is_not_the_apps_attempt(version):
    assert launch_attempts([_sent(200.0, version=version)], 100.0, APP_PARAMETERS) == []


def test_a_release_behind_the_rewrite_of_an_older_revision_is_in_flight_not_superseded():
    arn = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:{}".format
    rewrite_of_v1 = {"efs-automount:source": arn(1)}
    assert source_standing(arn(2), arn(3), rewrite_of_v1) == "in-flight"
    assert source_standing(arn(1), arn(3), rewrite_of_v1) == "rewritten"
    assert source_standing(arn(2), arn(4), {"efs-automount:source": arn(3)}) == "superseded"  # a newer one's


def test_a_launch_comment_names_the_group_only_when_the_name_fits_ssms_100_characters():
    assert launch_comment("g" * 75) == "efs-automount: launch in " + "g" * 75
    assert launch_comment("g" * 76) == "efs-automount: launch"


def test_a_command_without_the_groups_access_point_or_read_only_is_not_the_groups_mount():
    spec = MountSpec("fs-0123456789abcdef0", "/mnt/efs/data", "fsap-0123456789abcdef0")
    ours = mount_command_parameters(spec, "us-east-1", "10.0.0.5")
    command = _sent(200.0, ours)
    assert launch_attempts([command], 100.0, ours) == [command]
    for changed in ({"AccessPointId": [""]}, {"ReadOnly": ["true"]}):
        other = {**command, "Parameters": {**ours, **changed}}
        assert launch_attempts([other], 100.0, ours) == [], changed


def test_a_launch_comment_names_only_a_group_whose_name_is_ascii():
    # SSM's 100-character limit may count bytes or UTF-16 units: a non-ASCII name is never put in a comment
    for name in ("gröup", "群組", "hosts-\U0001f680"):
        assert launch_comment(name) == "efs-automount: launch"
    assert launch_comment("ecs-hosts") == "efs-automount: launch in ecs-hosts"

"""The failure matrix: whatever AWS and Lambda do, every host ends with the right decision, once,
and no lifecycle action is left to time out into the hook's default."""

from __future__ import annotations

import datetime
import json

import boto3
import pytest

from chalicelib import entrypoints
from chalicelib.accounts import AssumeRoleFailed
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
from simulation.queues import create_retry_queue, sqs_event, take_messages
from tests.conftest import OWN_ACCOUNT, SCHEDULED_EVENT, deliver_outbox, make_lambda, metric_names

MEMBER = "210987654321"


def assert_decided(land: Landscape, expected: dict[str, str]) -> None:
    """Each host decided as expected, by the app: none left waiting, none decided by the hook's timeout."""
    assert moto_gaps.WORLD.timed_out == []
    for instance_id, result in expected.items():
        assert moto_gaps.decided_result(land.account, land.region, instance_id) == result, instance_id
        assert moto_gaps.pending_action(land.account, land.region, instance_id) is None, instance_id


def mount_commands(land: Landscape, instance_id: str) -> list[dict]:
    return land.client("ssm").list_commands(InstanceId=instance_id)["Commands"]


@pytest.fixture
def queued(tmp_path, land):
    """The app with a retry queue, and a way to let its messages come back."""
    url = create_retry_queue(land)
    lambda_ = make_lambda(tmp_path, RETRY_QUEUE_URL=url)
    from app import app

    class Queued:
        def __init__(self) -> None:
            self.lambda_ = lambda_
            self.bus = EventBus(app, lambda_.invoke)
            self.url = url

        def deliver_retries(self, clock) -> list[int]:
            """Let time pass to the latest message's delay, deliver them all; returns their delays."""
            taken = take_messages(land, url)
            if taken:
                clock.advance(max(delay for delay, _ in taken))
                moto_gaps.expire_actions()
                response = lambda_.invoke("on_retry", sqs_event([record for _, record in taken]))
                assert response == {"batchItemFailures": []}
            return [delay for delay, _ in taken]

    return Queued()


def test_agent_late_for_k_retries_backs_off_then_mounts(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    assert deliver_outbox(queued.bus)[0][1]["outcome"] == "waiting: agent, retry in 10s"

    delays = []
    for _ in range(3):  # K = 3 more retries while the agent is still not online
        delays += queued.deliver_retries(clock)
    hosts.boot_agents(land, [instance_id])
    delays += queued.deliver_retries(clock)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert delays == [10, 20, 40, 60]
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_waiting_host_is_heartbeated_and_given_up_before_the_global_timeout(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)

    # The hook's heartbeat timeout is 900 s: a heartbeat is due every 450 s of waiting. The host is
    # looked at every few minutes at most (the queue's delays are shorter), so one always comes in time.
    for _ in range(40):
        if moto_gaps.pending_action(land.account, land.region, instance_id) is None:
            break
        clock.advance(200)
        queued.deliver_retries(clock)

    assert moto_gaps.decided_result(land.account, land.region, instance_id) == "ABANDON"
    assert clock.offset > 1800  # MAX_WAIT_SECONDS
    assert mount_commands(land, instance_id) == []
    assert moto_gaps.WORLD.decided  # decided by us, not by a timeout


def test_heartbeats_are_recorded_while_waiting(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)
    action = moto_gaps.pending_action(land.account, land.region, instance_id)

    clock.advance(460)
    queued.deliver_retries(clock)

    assert action.heartbeats == 1
    assert "autoscaling:RecordLifecycleActionHeartbeat" in queued.lambda_.operations()


def test_thirty_percent_of_aws_calls_throttled(land, bus, throttled):
    instance_ids = scale_out(land, 3)
    hosts.boot_agents(land, instance_ids)
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert throttled.throttled > 5
    assert all(len(mount_commands(land, i)) == 1 for i in instance_ids)
    assert_decided(land, dict.fromkeys(instance_ids, "CONTINUE"))


def test_crash_after_send_command_neither_mounts_twice_nor_decides_twice(land, lambda_, monkeypatch):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()

    # Lambda dies right after SendCommand returned, before anything else happened
    from chalicelib import lifecycle

    def crash(message, **keys):
        if message == "mount command sent":
            raise RuntimeError("Lambda crashed")

    with monkeypatch.context() as patch:
        patch.setattr(lifecycle.logger, "info", crash)
        with pytest.raises(RuntimeError):
            lambda_.invoke("on_launch", launch)

    # Lambda's retry delivers the launch event again
    assert lambda_.invoke("on_launch", launch) == {"outcome": "waiting: mount command running"}
    hosts.answer(land, "Success")
    (status,) = moto_gaps.WORLD.drain()
    assert lambda_.invoke("on_command_status", status) == {"outcome": "completed CONTINUE"}

    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_lost_status_event_is_picked_up_by_the_sweeper(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success", emit=False)
    clock.advance(120)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["hosts"] == {instance_id: "completed CONTINUE"}
    assert_decided(land, {instance_id: "CONTINUE"})


def test_status_event_delivered_three_times_decides_once(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    (status,) = moto_gaps.WORLD.drain()

    outcomes = [bus.deliver(status)[0][1]["outcome"] for _ in range(3)]

    assert outcomes == ["completed CONTINUE", "already decided", "already decided"]
    assert_decided(land, {instance_id: "CONTINUE"})


def test_events_out_of_order_still_decide_once(land, bus, lambda_):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()
    # The status of a command arrives before the launch event that would have sent it: nothing to confirm
    early = {
        **launch,
        "source": "aws.ssm",
        "detail-type": "EC2 Command Invocation Status-change Notification",
        "detail": {
            "command-id": "11111111-2222-4333-8444-555555555555",
            "document-name": "efs-automount-mount",
            "instance-id": instance_id,
            "status": "Success",
        },
    }
    assert lambda_.invoke("on_command_status", early) == {"outcome": "ignored: command not found"}
    lambda_.invoke("on_launch", launch)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    # A late, repeated launch event after the decision changes nothing
    assert lambda_.invoke("on_launch", launch) == {"outcome": "done: host is InService"}
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_host_terminated_mid_flight_ends_quietly(land, queued, clock, app_logs):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)  # waiting for its agent; a retry message is queued
    land.client("autoscaling").terminate_instance_in_auto_scaling_group(
        InstanceId=instance_id, ShouldDecrementDesiredCapacity=True
    )

    queued.deliver_retries(clock)

    assert take_messages(land, queued.url) == []
    assert not app_logs("ERROR")
    assert any(line["message"] == "host is no longer in its group; its flow ends here" for line in app_logs())


def test_assume_role_denied_is_an_error_and_decides_nothing(tmp_path, app_logs, capsys, clock):
    member = build_landscape(session_in_account(MEMBER))
    create_member_role(member.session, OWN_ACCOUNT, external_id="right")
    own = build_landscape(boto3.Session(region_name="us-east-1"), group_name="own-hosts")
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER, EXTERNAL_ID="wrong")
    (member_host,) = scale_out(member, 1)
    (own_host,) = scale_out(own, 1)
    hosts.boot_agents(own, [own_host])
    events = moto_gaps.WORLD.drain()
    member_launch = next(e for e in events if e["account"] == MEMBER)

    with pytest.raises(AssumeRoleFailed):
        lambda_.invoke("on_launch", member_launch)
    clock.advance(120)
    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert lifecycle_state(member, member_host) == "Pending:Wait"
    assert moto_gaps.decided_result(MEMBER, "us-east-1", member_host) is None
    assert report["hosts"][own_host].startswith("mount command sent")
    assert any(f"arn:aws:iam::{MEMBER}:role/efs-automount-member" in e for e in report["errors"])
    assert "AssumeRoleFailures" in metric_names(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("status", "code", "attempts", "result"),
    [
        ("Failed", 75, 3, "ABANDON"),  # transient: tried MOUNT_ATTEMPTS times, then the failure result
        ("TimedOut", -1, 3, "ABANDON"),  # SSM timed out: transient
        ("Cancelled", -1, 3, "ABANDON"),
        ("Failed", 3, 1, "ABANDON"),  # permanent: decided at once
        ("Failed", 2, 1, "ABANDON"),
    ],
)
def test_failed_commands_retry_when_transient_and_decide_at_once_when_permanent(
    land, queued, clock, status, code, attempts, result
):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)

    for _ in range(10):
        if moto_gaps.pending_action(land.account, land.region, instance_id) is None:
            break
        hosts.answer(land, status, response_code=code)
        deliver_outbox(queued.bus)
        queued.deliver_retries(clock)

    assert len(mount_commands(land, instance_id)) == attempts
    assert_decided(land, {instance_id: result})


def test_transient_failure_then_success_lets_the_host_in(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)

    hosts.answer(land, "Failed", response_code=75)
    assert deliver_outbox(queued.bus)[0][1]["outcome"].startswith("waiting: mount retry, retry in")
    assert queued.deliver_retries(clock)  # the second attempt is sent
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert len(mount_commands(land, instance_id)) == 2
    assert_decided(land, {instance_id: "CONTINUE"})


def test_without_a_queue_the_sweeper_carries_the_retries(land, bus, lambda_, clock, app_logs):
    (instance_id,) = scale_out(land, 1)
    assert deliver_outbox(bus)[0][1]["outcome"] == "waiting: agent, the sweeper retries"
    hosts.boot_agents(land, [instance_id])
    clock.advance(61)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert report["hosts"][instance_id].startswith("mount command sent")
    assert_decided(land, {instance_id: "CONTINUE"})
    (warning,) = [w for w in app_logs("WARNING") if "RETRY_QUEUE_URL" in w["message"]]
    assert "sweeper" in warning["message"]


def test_sweeper_leaves_hosts_launched_moments_ago_to_their_event(land, bus, lambda_):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["hosts"] == {instance_id: "skipped: launched moments ago"}
    assert mount_commands(land, instance_id) == []


def test_sweeper_drives_at_most_its_budget_per_run(tmp_path, land, clock):
    lambda_ = make_lambda(tmp_path, SWEEP_MAX_HOSTS="2")
    instance_ids = scale_out(land, 3)
    clock.advance(120)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["truncated"] is True
    assert len(report["hosts"]) == 2
    assert set(report["hosts"]) < set(instance_ids)


def test_sweeper_leaves_groups_without_our_hook_alone(lambda_, clock):
    other = build_landscape(boto3.Session(region_name="us-east-1"), hook_name="someone-elses-hook")
    (instance_id,) = scale_out(other, 1)
    hosts.boot_agents(other, [instance_id])
    clock.advance(120)

    report = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert report["hosts"] == {}
    assert lifecycle_state(other, instance_id) == "Pending:Wait"
    assert mount_commands(other, instance_id) == []


# --- Decisions rest on what AWS says now (issue 10) -------------------------------------------


def at(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_message(land: Landscape, instance_id: str, **fields) -> dict:
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


def test_replayed_launch_event_a_year_old_mounts_the_host(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    (launch,) = moto_gaps.WORLD.drain()
    launch["time"] = at(clock() - 365 * 86400)  # replayed from an EventBridge archive

    outcome = lambda_.invoke("on_launch", launch)["outcome"]
    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert outcome.startswith("mount command sent")
    assert_decided(land, {instance_id: "CONTINUE"})


def test_launch_event_from_a_skewed_clock_is_ignored_and_the_budget_still_holds(land, queued, clock, app_logs):
    (instance_id,) = scale_out(land, 1)  # its agent never comes online
    (launch,) = moto_gaps.WORLD.drain()
    launch["time"] = at(clock() + 86400)
    queued.lambda_.invoke("on_launch", launch)

    for _ in range(60):
        if moto_gaps.pending_action(land.account, land.region, instance_id) is None:
            break
        queued.deliver_retries(clock)

    assert_decided(land, {instance_id: "ABANDON"})
    assert 1800 < clock.offset < 1800 + 120  # MAX_WAIT_SECONDS from the launch Auto Scaling reports
    assert any("implausible" in line["message"] for line in app_logs("WARNING"))


def test_warm_pool_host_started_two_days_ago_retries_a_transient_failure(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    moto_gaps.leave_warm_pool(land.account, land.region, instance_id, warmed_at=clock() - 2 * 86400)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)

    hosts.answer(land, "Failed", response_code=75)
    deliver_outbox(queued.bus)
    queued.deliver_retries(clock)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert len(mount_commands(land, instance_id)) == 2
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_retry_message_started_at_zero_decides_nothing(land, queued, clock):
    (instance_id,) = scale_out(land, 1)  # agent not online yet: the host waits
    deliver_outbox(queued.bus)
    take_messages(land, queued.url)  # only the forged message is left to move it

    outcome = queued.lambda_.invoke("on_retry", retry_message(land, instance_id))
    hosts.boot_agents(land, [instance_id])
    queued.deliver_retries(clock)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert outcome == {"batchItemFailures": []}
    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_retry_message_naming_another_group_goes_by_the_group_aws_reports(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    deliver_outbox(queued.bus)
    take_messages(land, queued.url)
    hosts.boot_agents(land, [instance_id])

    queued.lambda_.invoke("on_retry", retry_message(land, instance_id, group_name="another-group"))
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    assert len(mount_commands(land, instance_id)) == 1
    assert_decided(land, {instance_id: "CONTINUE"})


def test_forged_retry_message_for_a_host_of_a_group_without_our_hook_touches_nothing(land, queued, clock):
    other = build_landscape(
        land.session,
        hook_name="someone-elses-hook",
        group_name="other-hosts",
        group_tags={"efs-automount:file-system-id": land.file_system_id},
        with_file_system=False,
        with_document=False,
    )
    (instance_id,) = scale_out(other, 1)
    hosts.boot_agents(other, [instance_id])
    moto_gaps.WORLD.drain()

    # named with our group's name: the host's own group (per AWS) is the one that counts
    queued.lambda_.invoke("on_retry", retry_message(land, instance_id))

    action = moto_gaps.pending_action(other.account, other.region, instance_id)
    assert lifecycle_state(other, instance_id) == "Pending:Wait"
    assert action is not None and action.heartbeats == 0
    assert mount_commands(other, instance_id) == []
    assert moto_gaps.WORLD.completions == []


def test_forged_retry_message_for_a_host_not_waiting_changes_nothing(land, queued, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(queued.bus)
    hosts.answer(land, "Success")
    deliver_outbox(queued.bus)

    queued.lambda_.invoke("on_retry", retry_message(land, instance_id))

    assert lifecycle_state(land, instance_id) == "InService"
    assert moto_gaps.WORLD.completions == [(land.account, land.region, instance_id, "CONTINUE")]


def test_lost_registration_event_still_gets_the_host_its_attribute(land, bus):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    container_instance = register_container_instance(land, instance_id)
    lost = moto_gaps.WORLD.drain()  # the ECS event never reaches the app
    assert [e["detail-type"] for e in lost] == ["ECS Container Instance State Change"]

    hosts.answer(land, "Success")
    deliver_outbox(bus)

    assert mount_attribute(land, container_instance) == f"/mnt/efs/{land.file_system_id}"
    assert_decided(land, {instance_id: "CONTINUE"})


def test_sixty_stuck_hosts_do_not_starve_a_healthy_one(tmp_path, land, clock):
    lambda_ = make_lambda(tmp_path, SWEEP_MAX_HOSTS="50")
    from app import app

    bus = EventBus(app, lambda_.invoke)
    instance_ids = scale_out(land, 61)
    healthy = instance_ids[-1]  # last in any order by instance id
    deliver_outbox(bus)  # no agent online: every host waits for the sweeper
    hosts.boot_agents(land, [healthy])

    for _ in range(40):  # the sweeper runs every minute
        if not moto_gaps.WORLD.actions:
            break
        clock.advance(60)
        moto_gaps.expire_actions()
        lambda_.invoke("sweeper", SCHEDULED_EVENT)
        hosts.answer(land, "Success")
        deliver_outbox(bus)

    assert_decided(land, {healthy: "CONTINUE", **dict.fromkeys(instance_ids[:-1], "ABANDON")})


def test_a_host_held_by_another_hook_costs_nothing_after_the_first_look(land, bus, lambda_, clock):
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    moto_gaps.hold_by_another_hook(land.account, land.region, instance_id)
    clock.advance(120)
    entrypoints.lifecycle_flow.cache_clear()  # the sweeper runs in a container of its own

    first = lambda_.invoke("sweeper", SCHEDULED_EVENT)
    lambda_.calls.clear()
    second = lambda_.invoke("sweeper", SCHEDULED_EVENT)

    assert first["hosts"] == {instance_id: "already decided"}
    assert instance_id not in second["hosts"]
    assert "ssm:ListCommands" not in lambda_.operations()
    assert "autoscaling:DescribeAutoScalingInstances" not in lambda_.operations()

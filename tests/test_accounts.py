"""Events from other accounts: acted on in trusted accounts through the member role, dropped otherwise."""

from __future__ import annotations

import pytest

from chalicelib.plumbing.accounts import AssumeRoleFailed, AwsAccounts
from chalicelib.plumbing.events import EventOrigin
from chalicelib.plumbing.settings import Settings
from simulation import hosts, moto_gaps
from simulation.eventbus import EventBus
from simulation.landscape import build_landscape, create_member_role, lifecycle_state, scale_out, session_in_account
from tests.conftest import OWN_ACCOUNT, deliver_outbox, load_event, make_lambda, metric_names

MEMBER = "210987654321"
STRANGER = "111122223333"


def _member_landscape(external_id=""):
    session = session_in_account(MEMBER)
    create_member_role(session, OWN_ACCOUNT, external_id)
    return build_landscape(session)


def _bus(tmp_path, **env):
    from app import app

    lambda_ = make_lambda(tmp_path, **env)
    return lambda_, EventBus(app, lambda_.invoke)


def test_trusted_account_host_is_mounted_through_the_member_role(tmp_path):
    land = _member_landscape(external_id="shared-secret-1")
    lambda_, bus = _bus(tmp_path, TRUSTED_ACCOUNTS=f"{MEMBER}", EXTERNAL_ID="shared-secret-1")
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    results = deliver_outbox(bus)
    assert results[0][1]["outcome"].startswith("mount command sent")
    hosts.answer(land, "Success")
    assert deliver_outbox(bus) == [("on_command_status", {"outcome": "completed CONTINUE"})]

    assert land.account == MEMBER
    assert lifecycle_state(land, instance_id) == "InService"
    assert lambda_.operations().count("sts:AssumeRole") == 1


def test_wrong_external_id_is_a_clear_error_and_decides_nothing(tmp_path, app_logs):
    land = _member_landscape(external_id="shared-secret-1")
    _, bus = _bus(tmp_path, TRUSTED_ACCOUNTS=MEMBER, EXTERNAL_ID="not-the-secret")
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    with pytest.raises(AssumeRoleFailed):
        deliver_outbox(bus)

    (error,) = app_logs("ERROR")
    assert f"arn:aws:iam::{MEMBER}:role/efs-automount-member" in error["reason"]
    assert lifecycle_state(land, instance_id) == "Pending:Wait"


def test_untrusted_account_event_is_dropped_with_a_warning_and_a_metric(tmp_path, app_logs, capsys):
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER)
    lambda_.invoke("on_container_instance", load_event("container-instance-registered"))  # warm: knows its account
    lambda_.calls.clear()
    event = load_event("launch-lifecycle-action")
    event["account"] = STRANGER

    result = lambda_.invoke("on_launch", event)

    assert result["outcome"].startswith(f"rejected: account {STRANGER} is not trusted")
    assert lambda_.operations() == []
    (warning,) = [line for line in app_logs("WARNING") if line["message"].startswith("event from an untrusted")]
    assert warning["account"] == STRANGER
    assert "EventsRejected" in metric_names(capsys.readouterr().out)


def test_role_arn_comes_from_the_event_account_never_the_event_body(tmp_path):
    land = _member_landscape()
    lambda_, bus = _bus(tmp_path, TRUSTED_ACCOUNTS=MEMBER)
    scale_out(land, 1)
    (event,) = moto_gaps.WORLD.drain()
    event["detail"]["RoleArn"] = f"arn:aws:iam::{STRANGER}:role/admin"
    event["resources"] = [f"arn:aws:autoscaling:us-east-1:{STRANGER}:autoScalingGroup:x:autoScalingGroupName/y"]

    outcome = lambda_.invoke("on_launch", event)["outcome"]

    assert outcome == "waiting: SSM agent not online yet"  # no agent is online; what matters is where it looked
    (assumed,) = moto_gaps.sts_models.sts_backends[MEMBER]["aws"].assumed_roles
    assert assumed.role_arn == f"arn:aws:iam::{MEMBER}:role/efs-automount-member"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_member_credentials_are_reused_until_shortly_before_they_expire():
    create_member_role(session_in_account(MEMBER), OWN_ACCOUNT)
    clock = Clock()
    accounts = AwsAccounts(Settings(trusted_accounts=frozenset({MEMBER})), clock=clock)
    origin = EventOrigin(MEMBER, "us-east-1")
    first = accounts.for_origin(origin)
    clock.now = first.expires_at - 600

    assert accounts.for_origin(origin) is first
    assert accounts.for_origin(EventOrigin(MEMBER, "eu-west-1")).session is first.session

    clock.now = first.expires_at - 60
    assert accounts.for_origin(origin).session is not first.session
    assert len(moto_gaps.sts_models.sts_backends[MEMBER]["aws"].assumed_roles) == 2

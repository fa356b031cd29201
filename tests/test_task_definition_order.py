"""Failure matrix rows of the task definition rewrite (issue 10, findings 3 to 5): events late,
replayed or out of order never make an older definition the family's latest, a repeated delivery adds
nothing however long the family's history, and a field this botocore does not know is never dropped.

Each row asserts what a user would see: the family's latest revision and the revisions added."""

from __future__ import annotations

import json

import boto3
import pytest
from moto.core.botocore_stubber import BotocoreStubber

from simulation import moto_gaps
from tests.conftest import make_lambda, metric_names

FS = "fs-0123456789abcdef0"
TAGGED = {"efs-automount:file-system-id": FS}


def _ecs():
    return boto3.client("ecs", region_name="us-east-1")


def _release(image: str, tags=TAGGED, family="uploads") -> tuple[str, dict]:
    """The user's pipeline registers a revision; returns its ARN and its registration event."""
    arn = _ecs().register_task_definition(
        family=family,
        containerDefinitions=[{"name": "web", "image": image, "memory": 256}],
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )["taskDefinition"]["taskDefinitionArn"]
    (event,) = moto_gaps.WORLD.drain()
    return arn, event


def _latest(family="uploads") -> tuple[dict, dict[str, str]]:
    """What deploying by family name runs: the family's latest ACTIVE revision, and its tags."""
    described = _ecs().describe_task_definition(taskDefinition=family, include=["TAGS"])
    return described["taskDefinition"], {t["key"]: t["value"] for t in described.get("tags") or []}


def _revision_count(family="uploads") -> int:
    """Every revision of the family, deregistered ones included."""
    return sum(
        len(_ecs().list_task_definitions(familyPrefix=family, status=status)["taskDefinitionArns"])
        for status in ("ACTIVE", "INACTIVE")
    )


def _deliver(lambda_, event) -> str:
    """Deliver one registration event, then the events of whatever the app registered in turn."""
    outcome = lambda_.invoke("on_task_definition", event)["outcome"]
    for follow_up in moto_gaps.WORLD.drain():
        lambda_.invoke("on_task_definition", follow_up)
    return outcome


def test_v2s_event_before_v1s_keeps_v2_the_familys_latest(lambda_, app_logs, capsys):
    # Given v1 and v2 registered, both tagged, and v2's event handled first
    v1, v1_event = _release("app:1")
    v2, v2_event = _release("app:2")
    assert _deliver(lambda_, v2_event).startswith("registered")
    rewrite_of_v2, _ = _latest()

    # When v1's event arrives late (or is replayed)
    outcome = _deliver(lambda_, v1_event)

    # Then v1 is not rewritten: deploying by family name still runs v2's image, with the mount
    latest, tags = _latest()
    assert latest["taskDefinitionArn"] == rewrite_of_v2["taskDefinitionArn"]
    assert latest["containerDefinitions"][0]["image"] == "app:2"
    assert tags["efs-automount:source"] == v2
    assert _revision_count() == 3
    assert outcome == f"ignored: superseded by {rewrite_of_v2['taskDefinitionArn']}"
    (warning,) = [line for line in app_logs("WARNING") if "superseded" in line["message"]]
    assert warning["task_definition"] == v1
    assert "TaskDefinitionsRejected" in metric_names(capsys.readouterr().out)


def test_a_users_untagged_newer_revision_also_supersedes_the_source(lambda_):
    # Given v1 tagged, then v2 registered without the tag (the team stopped using EFS)
    _, v1_event = _release("app:1")
    v2, _ = _release("app:2", tags={"team": "media"})

    # When v1's event arrives late
    outcome = _deliver(lambda_, v1_event)

    # Then nothing is registered: the family keeps deploying v2
    assert _revision_count() == 2
    assert _latest()[0]["taskDefinitionArn"] == v2
    assert outcome.startswith("ignored: superseded by")


def test_a_replay_after_12_releases_adds_no_revision(lambda_):
    # Given v1 rewritten, then 12 releases, each tagged and each rewritten (25 revisions)
    _, v1_event = _release("app:1")
    _deliver(lambda_, v1_event)
    for release in range(2, 14):
        _, event = _release(f"app:{release}")
        _deliver(lambda_, event)
    assert _revision_count() == 26
    latest_before, _ = _latest()

    # When v1's event is replayed from an archive
    outcome = _deliver(lambda_, v1_event)

    # Then nothing is added and the family still deploys release 13's rewrite
    assert _revision_count() == 26
    latest, tags = _latest()
    assert latest["taskDefinitionArn"] == latest_before["taskDefinitionArn"]
    assert latest["containerDefinitions"][0]["image"] == "app:13"
    assert outcome.startswith("ignored: superseded by")


def test_a_replay_after_many_deregistered_revisions_adds_no_revision(lambda_):
    # Given v1 rewritten as v2, then 12 revisions registered and deregistered again (history of 14)
    v1, v1_event = _release("app:1")
    _deliver(lambda_, v1_event)
    ecs = _ecs()
    for release in range(12):
        arn, _ = _release(f"trial:{release}", tags={"team": "media"})
        ecs.deregister_task_definition(taskDefinition=arn)

    # When v1's event is replayed
    outcome = _deliver(lambda_, v1_event)

    # Then the rewrite, still the family's latest active revision, is recognised: nothing added
    assert _revision_count() == 14
    latest, tags = _latest()
    assert outcome == f"ignored: already rewritten as {latest['taskDefinitionArn']}"
    assert tags["efs-automount:source"] == v1
    assert len(ecs.list_task_definitions(familyPrefix="uploads", status="ACTIVE")["taskDefinitionArns"]) == 2


def test_a_replay_after_the_source_was_deregistered_adds_no_revision(tmp_path):
    lambda_ = make_lambda(tmp_path, DEREGISTER_SOURCE="true")
    v1, v1_event = _release("app:1")
    _deliver(lambda_, v1_event)

    outcome = _deliver(lambda_, v1_event)

    latest, tags = _latest()
    assert outcome in (
        f"ignored: already rewritten as {latest['taskDefinitionArn']}",
        # AWS describes an INACTIVE revision only while a task or service references it
        "ignored: task definition not found",
    )
    assert tags["efs-automount:source"] == v1
    assert _revision_count() == 2


def test_a_family_whose_name_extends_anothers_does_not_supersede_it(lambda_):
    # Given uploads:1 tagged, then a revision of the family uploads-worker registered after it
    _, event = _release("app:1")
    _release("worker:1", family="uploads-worker")

    outcome = _deliver(lambda_, event)

    assert outcome == "registered arn:aws:ecs:us-east-1:123456789012:task-definition/uploads:2"
    assert _latest()[1]["efs-automount:source"].endswith("task-definition/uploads:1")
    assert _revision_count("uploads-worker") == 1


class AddedFields(dict):
    """Fields ECS adds to its DescribeTaskDefinition answers (containerDefinitions: to the first container's), and
    how many answers carried them."""

    served = 0


@pytest.fixture
def aws_adds_a_field(monkeypatch):
    """ECS answers DescribeTaskDefinition with a field newer than the shipped botocore's model."""
    original = BotocoreStubber.process_request
    added = AddedFields()

    def process_request(self, request):
        response = original(self, request)
        target = (request.headers.get("X-Amz-Target") or b"").decode() if request.headers else ""
        if response is None or not target.endswith("DescribeTaskDefinition") or not added:
            return response
        status, headers, body = response
        added.served += 1
        document = json.loads(body)
        if "containerDefinitions" in added:
            document["taskDefinition"]["containerDefinitions"][0].update(added["containerDefinitions"])
        else:
            document["taskDefinition"].update(added)
        return status, headers, json.dumps(document)

    monkeypatch.setattr(BotocoreStubber, "process_request", process_request)
    return added


def test_an_unknown_field_in_the_raw_response_refuses_the_rewrite_and_names_it(
    lambda_, aws_adds_a_field, app_logs, capsys
):
    aws_adds_a_field["containerDefinitions"] = {"gpuSharing": {"mode": "TIME_SLICED"}}
    source, event = _release("app:1")

    outcome = _deliver(lambda_, event)

    # Nothing registered: the family still deploys the source, and the log names the field
    assert outcome == "rejected: this botocore does not know taskDefinition.containerDefinitions[0].gpuSharing"
    assert _revision_count() == 1
    assert _latest()[0]["taskDefinitionArn"] == source
    (error,) = app_logs("ERROR")
    assert error["unknown_fields"] == ["taskDefinition.containerDefinitions[0].gpuSharing"]
    assert "TaskDefinitionsRejected" in metric_names(capsys.readouterr().out)
    assert aws_adds_a_field.served


def test_an_unknown_top_level_field_is_named_too(lambda_, aws_adds_a_field):
    aws_adds_a_field["restartPolicyDefaults"] = {"enabled": True}
    _, event = _release("app:1")

    assert _deliver(lambda_, event) == "rejected: this botocore does not know taskDefinition.restartPolicyDefaults"
    assert _revision_count() == 1
    assert aws_adds_a_field.served


def test_known_fields_and_nulls_in_the_raw_response_are_not_refused(lambda_, aws_adds_a_field):
    # dockerLabels is a map (its keys are the user's), and a null is parsed as absent
    aws_adds_a_field["containerDefinitions"] = {"dockerLabels": {"anyKey": "x"}, "hostname": None}
    _, event = _release("app:1")

    assert _deliver(lambda_, event).startswith("registered")
    assert _revision_count() == 2
    assert aws_adds_a_field.served, "no answer carried the fields: nothing was tried"


def _pipeline_registers_v2_first(monkeypatch) -> list[str]:
    """The user's pipeline registers v2 (untagged) in the milliseconds before the app's rewrite lands; the
    ARNs of the releases it made."""
    from moto.ecs.models import EC2ContainerServiceBackend

    register = EC2ContainerServiceBackend.register_task_definition
    releases: list[str] = []

    def pipeline_first(self, family, container_definitions, **kwargs):
        if not releases and any(tag["key"] == "efs-automount:source" for tag in kwargs.get("tags") or []):
            release = [{"name": "web", "image": "app:2", "memory": 256}]
            releases.append(register(self, family, release, tags=[{"key": "team", "value": "media"}]).arn)
        return register(self, family, container_definitions, **kwargs)

    monkeypatch.setattr(EC2ContainerServiceBackend, "register_task_definition", pipeline_first)
    return releases


def test_a_release_registered_while_the_app_registers_stays_the_familys_latest(lambda_, monkeypatch, app_logs):
    # Given v1 tagged, and the user's pipeline registering v2 just before the app's rewrite of v1 lands

    _, v1_event = _release("app:1")
    releases = _pipeline_registers_v2_first(monkeypatch)

    outcome = lambda_.invoke("on_task_definition", v1_event)["outcome"]

    # Then the app's rewrite of v1 does not stay in front of v2: the family deploys v2
    latest, _ = _latest()
    assert latest["taskDefinitionArn"] == releases[0]
    assert latest["containerDefinitions"][0]["image"] == "app:2"
    assert outcome == f"ignored: superseded by {releases[0]} while registering; uploads:3 deregistered"
    assert any("superseded" in line["message"] for line in app_logs("WARNING"))


def test_deregistered_revisions_between_the_source_and_its_rewrite_cost_nothing(lambda_):
    # Given v2 and v3 registered and deregistered again, so v1 is the latest active revision
    ecs = _ecs()
    v1, v1_event = _release("app:1")
    for image in ("trial:2", "trial:3"):
        ecs.deregister_task_definition(taskDefinition=_release(image, tags={"team": "media"})[0])

    outcome = _deliver(lambda_, v1_event)

    assert outcome == "registered arn:aws:ecs:us-east-1:123456789012:task-definition/uploads:4"
    latest, tags = _latest()
    assert tags["efs-automount:source"] == v1
    assert latest["containerDefinitions"][0]["image"] == "app:1"


# --- The second adversarial review of issue 10 (findings 5, 6) ---


# Adversarial: Lambda dies between RegisterTaskDefinition and the check for a release that landed
# meanwhile. Lambda's retry then finds the app's rewrite as the family's latest ("rewritten") and stops:
# the family is left rolled back to the older definition.


def test_a_crash_after_register_does_not_leave_the_family_rolled_back(lambda_, monkeypatch):
    from chalicelib.task_definitions import flow as task_definition_flow

    _, v1_event = _release("app:1")
    releases = _pipeline_registers_v2_first(monkeypatch)

    # Lambda dies (timeout, OOM, throttled ListTaskDefinitions beyond retries) right after the registration
    original = task_definition_flow.TaskDefinitionFlow._released_meanwhile
    crashed = []

    def crash_once(self, *args, **kwargs):
        if not crashed:
            crashed.append(True)
            raise RuntimeError("Lambda crashed after RegisterTaskDefinition")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(task_definition_flow.TaskDefinitionFlow, "_released_meanwhile", crash_once)
    with pytest.raises(RuntimeError):
        lambda_.invoke("on_task_definition", v1_event)

    # Lambda's async retry delivers the same event again
    retry_outcome = lambda_.invoke("on_task_definition", v1_event)["outcome"]

    latest, tags = _latest()
    # The user's release v2 must be what the family deploys; instead the rewrite of v1 (image app:1) is.
    assert latest["containerDefinitions"][0]["image"] == "app:2", (retry_outcome, latest["taskDefinitionArn"], tags)
    assert releases and crashed, "the release or the crash never happened"


def test_a_crash_during_the_follow_ups_does_not_leave_services_on_the_source(tmp_path, monkeypatch):
    import boto3
    from moto.ecs.models import EC2ContainerServiceBackend

    from tests.conftest import make_lambda

    lambda_ = make_lambda(tmp_path, UPDATE_SERVICES="true")
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="apps")
    v1, v1_event = _release("app:1")
    for name in ("web-a", "web-b"):
        ecs.create_service(cluster="apps", serviceName=name, taskDefinition=v1, desiredCount=1)

    update = EC2ContainerServiceBackend.update_service
    failed = []

    def throttled_once(self, *args, **kwargs):
        if not failed:  # UpdateService throttled past botocore's 6 attempts, or Lambda times out here
            failed.append(True)
            raise RuntimeError("Lambda timed out while updating services")
        return update(self, *args, **kwargs)

    monkeypatch.setattr(EC2ContainerServiceBackend, "update_service", throttled_once)
    with pytest.raises(RuntimeError):
        lambda_.invoke("on_task_definition", v1_event)
    retry_outcome = lambda_.invoke("on_task_definition", v1_event)["outcome"]  # Lambda's async retry

    services = ecs.describe_services(cluster="apps", services=["web-a", "web-b"])["services"]
    assert all(s["taskDefinition"] != v1 for s in services), (
        retry_outcome,
        {s["serviceName"]: s["taskDefinition"] for s in services},
    )
    assert failed, "no service update ever failed"


# Adversarial: the user's pipeline registers a *tagged* v2 while the app rewrites v1. The app's
# rewrite of v1 (v3) lands after v2 and is the family's latest until the app deregisters it. v2's own
# event, handled in that window by a concurrent invocation, sees v3 as the latest and counts v2 as
# "superseded". Then v3 is deregistered: the family deploys v2, tagged for EFS, without the mount, and
# nothing will ever rewrite it.


def test_a_tagged_release_racing_the_rewrite_is_deployed_with_the_mount(lambda_, monkeypatch):
    from moto.ecs.models import EC2ContainerServiceBackend

    _, v1_event = _release("app:1")
    register = EC2ContainerServiceBackend.register_task_definition
    deregister = EC2ContainerServiceBackend.deregister_task_definition
    v2_events: list[dict] = []

    def pipeline_first(self, family, container_definitions, **kwargs):
        if not v2_events and any(tag["key"] == "efs-automount:source" for tag in kwargs.get("tags") or []):
            release = [{"name": "web", "image": "app:2", "memory": 256}]
            register(self, family, release, tags=[{"key": k, "value": v} for k, v in TAGGED.items()])
            v2_events.extend(moto_gaps.WORLD.drain())
        return register(self, family, container_definitions, **kwargs)

    outcomes = []

    def v2_event_handled_concurrently(self, task_definition_str):
        # CloudTrail delivers v2's event at about the same time; another invocation handles it now
        if v2_events and not outcomes:
            try:
                outcomes.append(lambda_.invoke("on_task_definition", v2_events[0])["outcome"])
            except Exception as exc:  # noqa: BLE001 - Lambda records the error and delivers the event again
                outcomes.append(f"failed, retried: {exc}")
        return deregister(self, task_definition_str)

    monkeypatch.setattr(EC2ContainerServiceBackend, "register_task_definition", pipeline_first)
    monkeypatch.setattr(EC2ContainerServiceBackend, "deregister_task_definition", v2_event_handled_concurrently)

    v1_outcome = lambda_.invoke("on_task_definition", v1_event)["outcome"]
    for event in moto_gaps.WORLD.drain():
        lambda_.invoke("on_task_definition", event)
    if outcomes and outcomes[0].startswith("failed, retried"):
        outcomes.append(lambda_.invoke("on_task_definition", v2_events[0])["outcome"])  # Lambda's retry

    latest, tags = _latest()
    assert latest["containerDefinitions"][0]["image"] == "app:2"
    # v2 is tagged for EFS: what the family deploys must mount it
    assert any(v.get("name") == f"efs-{TAGGED['efs-automount:file-system-id']}" for v in latest.get("volumes") or []), (
        f"family deploys {latest['taskDefinitionArn']} without the mount; v1: {v1_outcome!r}; v2: {outcomes!r}"
    )
    assert v2_events and outcomes, "the tagged release never raced the rewrite"


# Review of repair: a revision that only *claims* to be the rewrite (efs-automount:source naming the source) must
# not be followed. The event handler's retry finishes the follow-ups of "its" rewrite: given a forged one, it would
# move every service on the source to whatever the forger registered.


def test_a_forged_rewrite_is_never_followed_by_the_event_handler(tmp_path):
    lambda_ = make_lambda(tmp_path, UPDATE_SERVICES="true")
    ecs = _ecs()
    ecs.create_cluster(clusterName="apps")
    v1, v1_event = _release("app:1")
    ecs.create_service(cluster="apps", serviceName="web", taskDefinition=v1, desiredCount=1)
    # Someone allowed to register task definitions in the family, and nothing else, forges the rewrite of v1.
    forged, _ = _release("attacker:latest", tags={"efs-automount:source": v1})

    outcome = _deliver(lambda_, v1_event)

    (service,) = ecs.describe_services(cluster="apps", services=["web"])["services"]
    assert service["taskDefinition"] == v1, outcome
    assert _latest()[0]["taskDefinitionArn"] == forged  # nothing registered over it either: it is reported
    assert "forged" in outcome

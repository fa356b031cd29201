"""Task definitions tagged for EFS, through the handler over moto: rewritten once, and only once."""

from __future__ import annotations

import boto3
import pytest

from chalicelib.task_definitions.flow import TaskDefinitionFlow
from simulation import moto_gaps
from simulation.eventbus import EventBus
from simulation.landscape import create_member_role, session_in_account
from tests.conftest import OWN_ACCOUNT, deliver_outbox, load_event, make_lambda
from tests.support.launch import tag_group

FS = "fs-0123456789abcdef0"
MEMBER = "210987654321"
SOURCE = "arn:aws:ecs:us-east-1:123456789012:task-definition/uploads:1"


def _ecs(session=None):
    return (session or boto3.Session(region_name="us-east-1")).client("ecs", region_name="us-east-1")


def _register(ecs, tags, family="uploads", **fields):
    containers = fields.pop(
        "containerDefinitions",
        [
            {"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256},
            {"name": "worker", "image": "public.ecr.aws/app/worker:2", "memory": 512},
        ],
    )
    return ecs.register_task_definition(
        family=family,
        containerDefinitions=containers,
        tags=[{"key": k, "value": v} for k, v in tags.items()],
        **fields,
    )["taskDefinition"]["taskDefinitionArn"]


def _revisions(ecs, family="uploads"):
    return ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]


def _describe(ecs, arn):
    return ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])


def test_tagged_revision_gets_the_next_revision_with_the_efs_volume(bus):
    ecs = _ecs()
    source = _register(ecs, {"efs-automount:file-system-id": FS, "team": "media"})

    results = deliver_outbox(bus)

    # The app's own registration comes back as an event too, and adds nothing
    assert [r["outcome"].split(" ")[0] for _, r in results] == ["registered", "ignored:"]
    assert results[1][1]["outcome"] == "ignored: a revision efs-automount registered"
    (_, new_arn) = sorted(_revisions(ecs))
    described = _describe(ecs, new_arn)
    definition = described["taskDefinition"]
    assert definition["volumes"] == [{"name": f"efs-{FS}", "host": {"sourcePath": f"/mnt/efs/{FS}"}}]
    for container in definition["containerDefinitions"]:
        assert container["mountPoints"] == [
            {"sourceVolume": f"efs-{FS}", "containerPath": "/mnt/efs", "readOnly": False}
        ]
    # The mount attribute named after the host path: the first 12 hex digits of sha256("/mnt/efs/" + FS)
    assert definition["placementConstraints"] == [
        {"type": "memberOf", "expression": f"attribute:efs-automount.{FS}.54d5475e1e65 exists"}
    ]
    tags = {t["key"]: t["value"] for t in described["tags"]}
    assert tags == {"efs-automount:file-system-id": FS, "team": "media", "efs-automount:source": source}


def test_repeated_delivery_adds_no_revision(bus, lambda_):
    ecs = _ecs()
    _register(ecs, {"efs-automount:file-system-id": FS})
    (event, *_) = moto_gaps.WORLD.drain()

    first = lambda_.invoke("on_task_definition", event)
    second = lambda_.invoke("on_task_definition", event)

    assert first["outcome"].startswith("registered")
    assert second["outcome"].startswith(
        "ignored: already rewritten as arn:aws:ecs:us-east-1:123456789012:task-definition/uploads:2"
    )
    assert len(_revisions(ecs)) == 2


def test_a_source_rewritten_by_an_earlier_release_is_not_rewritten_again(bus, lambda_):
    from chalicelib.task_definitions.flow import register_input_fields
    from chalicelib.task_definitions.rewrite import rewrite_task_definition, tags_as_dict, task_mount_from_tags

    # Given a source an earlier release rewrote, when the constraint did not name the path
    ecs = _ecs()
    source = _register(ecs, {"efs-automount:file-system-id": FS})
    (event, *_) = moto_gaps.WORLD.drain()
    described = _describe(ecs, source)
    definition, tags = described["taskDefinition"], described["tags"]
    request = rewrite_task_definition(
        definition, tags, task_mount_from_tags(tags_as_dict(tags), definition), register_input_fields()
    )
    request["placementConstraints"] = [{"type": "memberOf", "expression": f"attribute:efs-automount.{FS} exists"}]
    ecs.register_task_definition(**request)
    moto_gaps.WORLD.drain()

    # When its event comes again (a repeated delivery, or repair)
    outcome = lambda_.invoke("on_task_definition", event)

    # Then that revision counts as its rewrite: no second one, and no forgery reported (nor anyone moved to it)
    assert outcome == {
        "outcome": "ignored: already rewritten as arn:aws:ecs:us-east-1:123456789012:task-definition/uploads:2"
        " by an earlier release; services are not moved to it"
    }
    assert len(_revisions(ecs)) == 2


def test_untagged_revision_is_left_alone(bus):
    ecs = _ecs()
    _register(ecs, {"team": "media"})

    assert deliver_outbox(bus) == [("on_task_definition", {"outcome": "ignored: not tagged for EFS"})]
    assert len(_revisions(ecs)) == 1


def test_invalid_tag_registers_nothing_and_names_the_tag(bus, app_logs):
    _register(_ecs(), {"efs-automount:file-system-id": FS, "efs-automount:mode": "bind"})

    ((_, result),) = deliver_outbox(bus)

    assert result["outcome"].startswith("rejected: tag efs-automount:mode")
    (error,) = app_logs("ERROR")
    assert error["tag"] == "efs-automount:mode"
    assert len(_revisions(_ecs())) == 1


def test_unknown_container_registers_nothing(bus, app_logs):
    _register(_ecs(), {"efs-automount:file-system-id": FS, "efs-automount:containers": "web,db"})

    ((_, result),) = deliver_outbox(bus)

    assert result["outcome"] == "rejected: efs-automount:containers names containers the task definition lacks: ['db']"
    assert len(_revisions(_ecs())) == 1


def test_revision_that_already_mounts_the_file_system_is_not_rewritten(bus):
    _register(
        _ecs(),
        {"efs-automount:file-system-id": FS},
        volumes=[{"name": "shared", "efsVolumeConfiguration": {"fileSystemId": FS}}],
    )

    assert deliver_outbox(bus) == [("on_task_definition", {"outcome": f"ignored: already mounts {FS}"})]


def test_fargate_revision_gets_a_native_efs_volume_with_tls(bus):
    ecs = _ecs()
    _register(
        ecs,
        {"efs-automount:file-system-id": FS, "efs-automount:access-point-id": "fsap-0123456789abcdef0"},
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
    )
    deliver_outbox(bus)

    definition = _describe(ecs, sorted(_revisions(ecs))[-1])["taskDefinition"]
    # (moto fills in rootDirectory "/", as ECS does)
    assert definition["volumes"][0]["efsVolumeConfiguration"] | {"rootDirectory": "/"} == {
        "rootDirectory": "/",
        "fileSystemId": FS,
        "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0", "iam": "ENABLED"},
    }
    assert definition.get("placementConstraints", []) == []


def test_truncated_event_uses_the_familys_latest_revision(lambda_):
    _register(_ecs(), {"efs-automount:file-system-id": FS})
    moto_gaps.WORLD.drain()

    result = lambda_.invoke("on_task_definition", load_event("task-definition-registered-truncated"))

    assert result["outcome"] == "registered arn:aws:ecs:us-east-1:123456789012:task-definition/uploads:2"


def test_without_idempotency_table_a_warning_is_logged_once(bus, app_logs):
    _register(_ecs(), {"efs-automount:file-system-id": FS})
    _register(_ecs(), {"efs-automount:file-system-id": FS}, family="reports")

    deliver_outbox(bus)

    warnings = [w for w in app_logs("WARNING") if "IDEMPOTENCY_TABLE" in w["message"]]
    assert len(warnings) == 1


def _create_idempotency_table():
    boto3.client("dynamodb", region_name="us-east-1").create_table(
        TableName="efs-automount-idempotency",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _race(monkeypatch) -> list[str]:
    """Both deliveries see the source as the family's latest before either registers; returns the references
    each delivery asked about."""
    asked: list[str] = []

    def standing(self, ecs, reference, *rest):
        asked.append(reference)
        return "latest", SOURCE

    monkeypatch.setattr(TaskDefinitionFlow, "standing", standing)
    return asked


def test_concurrent_duplicates_without_a_table_can_register_twice(tmp_path, monkeypatch):
    lambda_ = make_lambda(tmp_path)
    _register(_ecs(), {"efs-automount:file-system-id": FS})
    (event, *_) = moto_gaps.WORLD.drain()
    raced = _race(monkeypatch)

    lambda_.invoke("on_task_definition", event)
    lambda_.invoke("on_task_definition", event)

    assert len(_revisions(_ecs())) == 3
    assert len(raced) == 2, "the deliveries did not both see the source as the latest"


def test_concurrent_duplicates_with_an_idempotency_table_register_once(tmp_path, monkeypatch):
    _create_idempotency_table()
    lambda_ = make_lambda(tmp_path, IDEMPOTENCY_TABLE="efs-automount-idempotency")
    _register(_ecs(), {"efs-automount:file-system-id": FS})
    (event, *_) = moto_gaps.WORLD.drain()
    raced = _race(monkeypatch)

    first = lambda_.invoke("on_task_definition", event)
    second = lambda_.invoke("on_task_definition", event)

    assert first["outcome"].startswith("registered")
    assert second["outcome"] == "ignored: already registered by another delivery"
    assert len(_revisions(_ecs())) == 2
    assert len(raced) == 2, "the deliveries did not both see the source as the latest"


def test_opt_in_follow_ups_move_services_and_deregister_the_source(tmp_path):
    lambda_ = make_lambda(tmp_path, UPDATE_SERVICES="true", DEREGISTER_SOURCE="true")
    ecs = _ecs()
    ecs.create_cluster(clusterName="apps")
    source = _register(ecs, {"efs-automount:file-system-id": FS})
    ecs.create_service(cluster="apps", serviceName="uploads", taskDefinition=source, desiredCount=0)
    ecs.create_service(cluster="apps", serviceName="other", taskDefinition=source.replace("uploads:1", "uploads:1"))
    (event, *_) = moto_gaps.WORLD.drain()

    result = lambda_.invoke("on_task_definition", event)

    new_arn = result["outcome"].removeprefix("registered ")
    services = ecs.describe_services(cluster="apps", services=["uploads", "other"])["services"]
    assert {s["taskDefinition"] for s in services} == {new_arn}
    assert _describe(ecs, source)["taskDefinition"]["status"] == "INACTIVE"


def test_follow_ups_are_off_by_default(bus):
    ecs = _ecs()
    ecs.create_cluster(clusterName="apps")
    source = _register(ecs, {"efs-automount:file-system-id": FS})
    ecs.create_service(cluster="apps", serviceName="uploads", taskDefinition=source, desiredCount=0)

    deliver_outbox(bus)

    (service,) = ecs.describe_services(cluster="apps", services=["uploads"])["services"]
    assert service["taskDefinition"] == source
    assert _describe(ecs, source)["taskDefinition"]["status"] == "ACTIVE"


def test_trusted_accounts_task_definition_is_rewritten_there(tmp_path):
    session = session_in_account(MEMBER)
    create_member_role(session, OWN_ACCOUNT)
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER)
    from app import app

    bus = EventBus(app, lambda_.invoke)
    _register(_ecs(session), {"efs-automount:file-system-id": FS})

    results = deliver_outbox(bus)

    assert results[0][1]["outcome"] == f"registered arn:aws:ecs:us-east-1:{MEMBER}:task-definition/uploads:2"
    assert len(_revisions(_ecs(session))) == 2
    assert _revisions(_ecs()) == []


def test_event_without_arn_and_with_a_bad_family_is_rejected(lambda_):
    event = load_event("task-definition-registered-truncated")
    event["detail"]["requestParameters"] = {"family": "bad family!"}

    assert lambda_.invoke("on_task_definition", event)["outcome"].startswith(
        "rejected: detail.requestParameters.family"
    )


def test_a_failed_registration_releases_the_idempotency_record_for_the_retry(tmp_path, monkeypatch):
    from chalicelib.task_definitions import flow as task_definition_flow

    _create_idempotency_table()
    lambda_ = make_lambda(tmp_path, IDEMPOTENCY_TABLE="efs-automount-idempotency")
    _register(_ecs(), {"efs-automount:file-system-id": FS})
    (event, *_) = moto_gaps.WORLD.drain()
    rewrite = task_definition_flow.rewrite_task_definition
    broken = []

    def broken_rewrite(*args):
        broken.append(args)
        return {"family": "uploads"}

    monkeypatch.setattr(task_definition_flow, "rewrite_task_definition", broken_rewrite)

    with pytest.raises(Exception, match="containerDefinitions"):
        lambda_.invoke("on_task_definition", event)
    assert broken, "the registration never failed"

    monkeypatch.setattr(task_definition_flow, "rewrite_task_definition", rewrite)
    assert lambda_.invoke("on_task_definition", event)["outcome"].startswith("registered")


# --- placement follows the mount path (issue 18, finding 3) -------------------------------------


def _rewrite_of(land, bus, family, tags):
    ecs = land.client("ecs")
    ecs.register_task_definition(
        family=family,
        containerDefinitions=[{"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256}],
        tags=[{"key": k, "value": v} for k, v in tags.items()],
    )
    deliver_outbox(bus)
    return ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]


def test_placement_constraint_lets_host_mode_tasks_onto_hosts_mounted_at_another_path(land, bus):
    from simulation import hosts
    from simulation.landscape import lifecycle_state, placeable_on, register_container_instance, scale_out

    # Given a group that mounts its file system at a path of its choosing (a documented tag), and a host of it
    # mounted there and registered
    tag_group(land, "efs-automount:mount-path", "/data/shared")
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    container_instance = register_container_instance(land, instance_id)
    deliver_outbox(bus)
    hosts.answer(land, "Success")
    deliver_outbox(bus)
    assert lifecycle_state(land, instance_id) == "InService"

    # When one task definition is tagged for the file system at the group's path, another with the default path
    fs = land.file_system_id
    at_group_path = _rewrite_of(
        land, bus, "reports", {"efs-automount:file-system-id": fs, "efs-automount:host-path": "/data/shared"}
    )
    at_default_path = _rewrite_of(land, bus, "uploads", {"efs-automount:file-system-id": fs})
    (volume,) = at_default_path["volumes"]
    assert volume["host"]["sourcePath"] == f"/mnt/efs/{fs}"

    # Then ECS places the first's tasks on the host, and never the second's, which would bind-mount a plain
    # directory Docker creates on the root disk (writes lost with the host)
    assert placeable_on(land, at_group_path["taskDefinitionArn"]) == {container_instance}
    assert placeable_on(land, at_default_path["taskDefinitionArn"]) == set(), (
        f"tasks bind-mounting /mnt/efs/{fs} may run on a host whose mount is at /data/shared: "
        f"{at_default_path['placementConstraints']}"
    )

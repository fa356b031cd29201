"""Pure: the task definition rewrite, property-tested over generated task definitions. No AWS."""

from __future__ import annotations

import botocore.session
import pytest
from botocore.validate import ParamValidator
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.mount.spec import MountConfigError
from chalicelib.task_definitions.flow import register_input_fields
from chalicelib.task_definitions.rewrite import (
    SOURCE_TAG,
    TaskDefinitionClash,
    TaskMount,
    default_mode,
    is_rewrite_of,
    mounts_file_system,
    rewrite_task_definition,
    same_path,
    source_standing,
    task_mount_from_tags,
    unknown_fields,
)
from tests.support.task_definitions import FS, registered, task_definitions

INPUT = register_input_fields()
SHAPE = botocore.session.get_session().get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
OUTPUT_ONLY = {"taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities", "registeredAt"}
EFS_FIELDS = {"volumes", "containerDefinitions", "placementConstraints", "tags"}


def _mount(definition, tags):
    return task_mount_from_tags({t["key"]: t["value"] for t in tags}, definition)


@given(task_definitions())
def test_rewrite_adds_only_the_efs_volume_mount_points_constraint_and_source_tag(generated):
    definition, tags = generated
    mount = _mount(definition, tags)

    request = rewrite_task_definition(definition, tags, mount, INPUT)

    for key in set(request) - EFS_FIELDS:
        assert request[key] == definition[key], key
    assert not OUTPUT_ONLY & set(request)
    assert request["volumes"][:-1] == definition["volumes"]
    assert request["volumes"][-1]["name"] == f"efs-{FS}"
    for before, after in zip(definition["containerDefinitions"], request["containerDefinitions"], strict=True):
        assert {k: v for k, v in after.items() if k != "mountPoints"} == {
            k: v for k, v in before.items() if k != "mountPoints"
        }
        assert after["mountPoints"] == [
            *before.get("mountPoints", []),
            {"sourceVolume": f"efs-{FS}", "containerPath": "/mnt/efs", "readOnly": False},
        ]
    if mount.mode == "host":
        assert request["placementConstraints"] == [*definition["placementConstraints"], mount.placement_constraint]
    else:
        assert request["placementConstraints"] == definition["placementConstraints"]
        assert request["volumes"][-1]["efsVolumeConfiguration"]["transitEncryption"] == "ENABLED"
    assert request["tags"] == [*tags, {"key": SOURCE_TAG, "value": definition["taskDefinitionArn"]}]


@given(task_definitions())
def test_rewritten_revision_is_never_rewritten_again(generated):
    definition, tags = generated
    mount = _mount(definition, tags)
    request = rewrite_task_definition(definition, tags, mount, INPUT)
    registered = request | {"taskDefinitionArn": definition["taskDefinitionArn"][:-1] + "4", "revision": 4}

    assert not mounts_file_system(definition, mount)
    assert mounts_file_system(registered, mount)
    with pytest.raises(TaskDefinitionClash):
        rewrite_task_definition(registered, request["tags"], mount, INPUT)


@given(task_definitions())
def test_the_apps_own_rewrite_is_recognized_as_the_rewrite_of_its_source(generated):
    definition, tags = generated
    mount = _mount(definition, tags)
    candidate, candidate_tags = registered(rewrite_task_definition(definition, tags, mount, INPUT), definition)

    assert is_rewrite_of(candidate, candidate_tags, definition, {t["key"]: t["value"] for t in tags}, mount, INPUT)


@given(task_definitions())
def test_a_rewrite_made_before_the_constraint_named_the_path_is_still_the_rewrite_of_its_source(generated):
    # An earlier release constrained on `attribute:efs-automount.<fs> exists`: that revision is done, so the
    # source's events add no revision, and repair reports no forgery
    definition, tags = generated
    mount = _mount(definition, tags)
    request = rewrite_task_definition(definition, tags, mount, INPUT)
    if mount.mode == "host":
        request["placementConstraints"][-1] = {"type": "memberOf", "expression": f"attribute:efs-automount.{FS} exists"}
    candidate, candidate_tags = registered(request, definition)

    assert is_rewrite_of(candidate, candidate_tags, definition, {t["key"]: t["value"] for t in tags}, mount, INPUT)


@given(
    task_definitions(), st.sampled_from(["image", "volume", "mount point", "extra tag", "other source", "constraint"])
)
def test_a_revision_that_only_carries_the_source_tag_is_not_its_rewrite(generated, forgery):
    # Given someone who may register revisions in the family registers one tagged efs-automount:source=<source>
    # When it differs from the app's rewrite in anything, Then it is not the rewrite (no service is moved to it).
    definition, tags = generated
    mount = _mount(definition, tags)
    request = rewrite_task_definition(definition, tags, mount, INPUT)
    if forgery == "image":
        request["containerDefinitions"][0]["image"] = "attacker.example/evil:latest"
    elif forgery == "volume":
        request["volumes"] = request["volumes"][:-1]
    elif forgery == "mount point":
        request["containerDefinitions"][0]["mountPoints"][-1]["containerPath"] = "/etc"
    elif forgery == "constraint":
        request["placementConstraints"] = [*definition["placementConstraints"], {"type": "distinctInstance"}]
    elif forgery == "extra tag":
        request["tags"].append({"key": "owner", "value": "attacker"})
    else:
        request["tags"][-1]["value"] = definition["taskDefinitionArn"][:-1] + "2"
    candidate, candidate_tags = registered(request, definition)

    assert not is_rewrite_of(candidate, candidate_tags, definition, {t["key"]: t["value"] for t in tags}, mount, INPUT)


@given(task_definitions())
def test_rewrite_passes_botocore_validation_for_register_task_definition(generated):
    definition, tags = generated

    request = rewrite_task_definition(definition, tags, _mount(definition, tags), INPUT)

    report = ParamValidator().validate(request, SHAPE)
    assert not report.has_errors(), report.generate_report()


def _definition(**fields):
    base = {
        "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1",
        "family": "web",
        "containerDefinitions": [{"name": "web", "image": "nginx"}, {"name": "sidecar", "image": "envoy"}],
    }
    return base | fields


TAGS = [{"key": "efs-automount:file-system-id", "value": FS}]
TAKEN = "/mnt/efs"


def test_only_the_named_containers_get_the_mount_point():
    mount = TaskMount(FS, containers=("web",), host_path=f"/mnt/efs/{FS}", read_only=True)
    request = rewrite_task_definition(_definition(), TAGS, mount, INPUT)
    web, sidecar = request["containerDefinitions"]
    assert web["mountPoints"] == [{"sourceVolume": f"efs-{FS}", "containerPath": "/mnt/efs", "readOnly": True}]
    assert "mountPoints" not in sidecar


@pytest.mark.parametrize(
    ("fields", "mount", "message"),
    [
        ({}, TaskMount(FS, containers=("db",)), "lacks: ['db']"),
        ({"volumes": [{"name": f"efs-{FS}", "host": {"sourcePath": "/elsewhere"}}]}, TaskMount(FS), "already exists"),
        (
            {
                "containerDefinitions": [
                    {"name": "web", "mountPoints": [{"sourceVolume": "v", "containerPath": "/mnt/efs"}]}
                ]
            },
            TaskMount(FS),
            "already mounts v at /mnt/efs",
        ),
        (
            {"placementConstraints": [{"type": "memberOf", "expression": f"attribute:a{i} exists"} for i in range(10)]},
            TaskMount(FS),
            "10 placement constraints",
        ),
    ],
)
def test_a_clash_is_named_and_nothing_is_built(fields, mount, message):
    with pytest.raises(TaskDefinitionClash, match=message.replace("[", r"\[").replace("]", r"\]")):
        rewrite_task_definition(_definition(**fields), TAGS, mount, INPUT)


@pytest.mark.parametrize(
    ("existing", "asked"),
    [
        ("/data/", "/data"),
        ("/data", "/data/"),
        ("/data//", "/data"),
        ("/srv/./data", "/srv/data"),
        ("/a/../data", "/data"),
    ],
)
def test_a_mount_point_at_the_same_path_written_differently_is_a_clash(existing, asked):
    # Given a container that already mounts a volume at `existing`; ECS would mount both at one directory
    fields = {
        "containerDefinitions": [{"name": "web", "mountPoints": [{"sourceVolume": "v", "containerPath": existing}]}]
    }

    with pytest.raises(TaskDefinitionClash, match="already mounts v at"):
        rewrite_task_definition(_definition(**fields), TAGS, TaskMount(FS, container_path=asked), INPUT)


def test_a_mount_point_below_or_beside_the_path_is_not_a_clash():
    points = [{"sourceVolume": "v", "containerPath": "/data/cache"}, {"sourceVolume": "w", "containerPath": "/data2"}]
    fields = {"containerDefinitions": [{"name": "web", "mountPoints": points}]}

    request = rewrite_task_definition(_definition(**fields), TAGS, TaskMount(FS, container_path="/data"), INPUT)

    assert request["containerDefinitions"][0]["mountPoints"][-1]["containerPath"] == "/data"


def test_a_host_path_written_with_a_trailing_slash_already_mounts_the_file_system():
    definition = _definition(volumes=[{"name": "shared", "host": {"sourcePath": f"/mnt/efs/{FS}/"}}])

    assert mounts_file_system(definition, TaskMount(FS, host_path=f"/mnt/efs/{FS}"))


def test_too_many_tags_is_a_clash():
    tags = TAGS + [{"key": f"k{i}", "value": "v"} for i in range(49)]
    with pytest.raises(TaskDefinitionClash, match="50 tags"):
        rewrite_task_definition(_definition(), tags, TaskMount(FS), INPUT)


def test_native_mode_with_an_access_point_uses_iam_and_tls():
    mount = TaskMount(FS, mode="native", access_point_id="fsap-0123456789abcdef0")
    volume = rewrite_task_definition(_definition(), TAGS, mount, INPUT)["volumes"][-1]
    assert volume["efsVolumeConfiguration"] == {
        "fileSystemId": FS,
        "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": "fsap-0123456789abcdef0", "iam": "ENABLED"},
    }


@pytest.mark.parametrize(
    ("definition", "mode"),
    [
        ({}, "host"),
        ({"requiresCompatibilities": ["EC2"]}, "host"),
        ({"requiresCompatibilities": ["FARGATE"]}, "native"),
        ({"compatibilities": ["FARGATE"]}, "native"),
        ({"compatibilities": ["EC2", "FARGATE"]}, "host"),
    ],
)
def test_mode_defaults_follow_the_contract(definition, mode):
    assert default_mode(definition) == mode


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("efs-automount:container-path", "relative"),
        ("efs-automount:container-path", "/a/../b"),
        ("efs-automount:containers", "web;rm"),
        ("efs-automount:read-only", "yes"),
        ("efs-automount:mode", "bind"),
        ("efs-automount:host-path", "/etc"),
        ("efs-automount:access-point-id", "fsap-1"),
    ],
)
def test_invalid_task_definition_tags_are_named(tag, value):
    with pytest.raises(MountConfigError) as raised:
        task_mount_from_tags({"efs-automount:file-system-id": FS, tag: value}, {})
    assert raised.value.tag == tag


SOURCE = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"


@pytest.mark.parametrize(
    ("latest_arn", "latest_tags", "standing"),
    [
        (SOURCE, {"efs-automount:file-system-id": FS}, "latest"),
        (SOURCE.replace(":1", ":2"), {SOURCE_TAG: SOURCE}, "rewritten"),
        (SOURCE.replace(":1", ":3"), {SOURCE_TAG: SOURCE.replace(":1", ":2")}, "superseded"),
        (SOURCE.replace(":1", ":2"), {"efs-automount:file-system-id": FS}, "superseded"),
        (SOURCE.replace(":1", ":2"), {}, "superseded"),
        (SOURCE.replace(":1", ":2"), {SOURCE_TAG: "not-an-arn"}, "superseded"),  # anyone may write the tag
        # this very revision under another account's ARN: no older source of the family, so nothing in flight
        (SOURCE.replace(":1", ":2"), {SOURCE_TAG: SOURCE.replace("123456789012", "999999999999")}, "superseded"),
    ],
)
def test_the_familys_latest_revision_decides_where_the_source_stands(latest_arn, latest_tags, standing):
    assert source_standing(SOURCE, latest_arn, latest_tags) == standing


def test_unknown_fields_names_every_key_the_parse_dropped_and_nothing_else():
    raw = {
        "taskDefinition": {
            "family": "web",
            "containerDefinitions": [
                {"name": "a", "dockerLabels": {"x": "1"}, "olderThing": 1},
                {"name": "b", "newThing": 1},
            ],
            "hostname": None,
            "futureField": {"on": True},
        },
        "tags": [],
    }
    parsed = {
        "taskDefinition": {
            "family": "web",
            "containerDefinitions": [{"name": "a", "dockerLabels": {"x": "1"}}, {"name": "b"}],
        },
        "tags": [],
        "ResponseMetadata": {},
    }

    assert unknown_fields(raw, parsed) == [
        "taskDefinition.containerDefinitions[0].olderThing",
        "taskDefinition.containerDefinitions[1].newThing",
        "taskDefinition.futureField",
    ]


# --- the tags read whole, the rewrite's edges ---------------------------------------------------------------------


def test_given_only_the_file_system_tag_when_read_then_the_mount_takes_the_contracts_defaults():
    assert task_mount_from_tags({"efs-automount:file-system-id": FS}, {}) == TaskMount(
        FS, "/mnt/efs", None, False, "host", f"/mnt/efs/{FS}", None
    )


def test_given_every_task_definition_tag_when_read_then_the_mount_carries_each():
    tags = {
        "efs-automount:file-system-id": FS,
        "efs-automount:container-path": "/data",
        "efs-automount:containers": " web, worker ,",
        "efs-automount:read-only": "true",
        "efs-automount:mode": "native",
        "efs-automount:host-path": "/srv/shared",
        "efs-automount:access-point-id": "fsap-0123456789abcdef0",
    }
    assert task_mount_from_tags(tags, {}) == TaskMount(
        FS, "/data", ("web", "worker"), True, "native", "/srv/shared", "fsap-0123456789abcdef0"
    )


@pytest.mark.parametrize(
    ("tag", "value", "reason"),
    [
        ("efs-automount:container-path", "x" * 100, f"{'x' * 80!r} is not an absolute path without '..'"),
        ("efs-automount:containers", "a b,c!,d?,e*", "['a b', 'c!', 'd?'] are not container names"),
        ("efs-automount:containers", ", ,", "[] are not container names"),
        ("efs-automount:read-only", "y" * 30, f"{'y' * 20!r} is neither true nor false"),
        ("efs-automount:mode", "m" * 30, f"{'m' * 20!r} is neither host nor native"),
    ],
)
def test_given_a_bad_task_definition_tag_when_read_then_the_reason_quotes_a_bounded_part_of_it(tag, value, reason):
    with pytest.raises(MountConfigError) as raised:
        task_mount_from_tags({"efs-automount:file-system-id": FS, tag: value}, {})
    assert raised.value.reason == reason


@pytest.mark.parametrize(
    ("first", "second"), [("/data", "///data"), ("//data", "/data"), ("/data//", "/data"), ("data", "./data")]
)
def test_given_one_directory_written_two_ways_when_compared_then_it_is_the_same_path(first, second):
    assert same_path(first, second) and same_path(second, first)


@pytest.mark.parametrize(("first", "second"), [("/Xdata", "/data"), ("data", "/data"), ("/data/x", "/data")])
def test_given_two_directories_when_compared_then_they_are_not_the_same_path(first, second):
    assert not same_path(first, second) and not same_path(second, first)


def test_given_a_host_mode_mount_when_rewritten_then_its_volume_is_the_host_path():
    mount = TaskMount(FS, host_path=f"/mnt/efs/{FS}")
    volume = rewrite_task_definition(_definition(), TAGS, mount, INPUT)["volumes"][-1]
    assert volume == {"name": f"efs-{FS}", "host": {"sourcePath": f"/mnt/efs/{FS}"}}


def test_given_a_named_container_after_one_not_named_when_rewritten_then_it_gets_the_mount_point():
    request = rewrite_task_definition(_definition(), TAGS, TaskMount(FS, containers=("sidecar",)), INPUT)
    web, sidecar = request["containerDefinitions"]
    assert "mountPoints" not in web
    assert sidecar["mountPoints"] == [{"sourceVolume": f"efs-{FS}", "containerPath": "/mnt/efs", "readOnly": False}]


def test_given_a_mount_point_without_a_container_path_when_rewritten_then_it_clashes_with_nothing():
    fields = {"containerDefinitions": [{"name": "web", "mountPoints": [{"sourceVolume": "v"}]}]}
    request = rewrite_task_definition(_definition(**fields), TAGS, TaskMount(FS), INPUT)
    assert request["containerDefinitions"][0]["mountPoints"][-1]["containerPath"] == "/mnt/efs"


def test_given_a_container_already_using_the_path_when_rewritten_then_the_clash_names_it_and_its_volume():
    fields = {"containerDefinitions": [{"name": "web", "mountPoints": [{"sourceVolume": "v", "containerPath": TAKEN}]}]}
    with pytest.raises(TaskDefinitionClash) as raised:
        rewrite_task_definition(_definition(**fields), TAGS, TaskMount(FS), INPUT)
    assert str(raised.value) == "container web already mounts v at /mnt/efs"


def test_given_room_for_exactly_the_source_tag_when_rewritten_then_it_is_added():
    tags = TAGS + [{"key": f"k{i}", "value": "v"} for i in range(48)]  # 49, and the source tag makes ECS's 50
    request = rewrite_task_definition(_definition(), tags, TaskMount(FS), INPUT)
    assert len(request["tags"]) == 50


def test_given_tags_aws_added_to_the_rewrite_when_judged_then_it_is_still_the_rewrite_of_its_source():
    definition = _definition()
    mount = TaskMount(FS, host_path=f"/mnt/efs/{FS}")
    candidate, candidate_tags = registered(rewrite_task_definition(definition, TAGS, mount, INPUT), definition)
    candidate_tags["aws:cloudformation:stack-name"] = "web"  # CloudFormation's own tag: no user can set aws:
    assert is_rewrite_of(candidate, candidate_tags, definition, {"efs-automount:file-system-id": FS}, mount, INPUT)


def test_given_a_source_the_app_cannot_rewrite_when_a_candidate_is_judged_then_it_is_no_rewrite_of_it():
    source = _definition(volumes=[{"name": f"efs-{FS}", "host": {"sourcePath": "/elsewhere"}}])  # a clash
    candidate = {**source, "taskDefinitionArn": source["taskDefinitionArn"][:-1] + "2"}
    candidate_tags = {SOURCE_TAG: source["taskDefinitionArn"]}
    assert not is_rewrite_of(candidate, candidate_tags, source, {}, TaskMount(FS), INPUT)

"""Mount paths (issue 9, finding 3): one allowlist, MOUNT_ROOTS, and the Lambda, the mount document's
allowedPattern and the host script agree on every path."""

from __future__ import annotations

import json
import re
import subprocess

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import app
from chalicelib.mount.spec import (
    DEFAULT_MOUNT_ROOTS,
    MountConfigError,
    mount_path_pattern,
    mount_spec_from_tags,
    validate_mount_path,
)
from chalicelib.plumbing.settings import Settings, SettingsError
from chalicelib.task_definitions.rewrite import HOST_PATH_TAG, task_mount_from_tags
from simulation import hosts
from simulation.eventbus import EventBus
from simulation.landscape import build_landscape, lifecycle_state, scale_out
from tests.conftest import ROOT, deliver_outbox, make_lambda
from tests.support.mount_paths import SYSTEM_DIRECTORIES
from tools import build_deploy

FS = "fs-0123456789abcdef0"
DOCUMENT = json.loads((ROOT / "deploy" / "mount-document.json").read_text())
SCRIPT_TEXT = "\n".join(DOCUMENT["mainSteps"][0]["inputs"]["runCommand"][len(DOCUMENT["parameters"]) + 1 :])


def lambda_accepts(path: str, roots: tuple[str, ...] = DEFAULT_MOUNT_ROOTS) -> bool:
    try:
        validate_mount_path(path, "efs-automount:mount-path", roots)
    except MountConfigError:
        return False
    return True


def pattern_accepts(path: str, pattern: str | None = None) -> bool:
    return re.fullmatch(pattern or DOCUMENT["parameters"]["MountPath"]["allowedPattern"], path) is not None


def script_accepts(paths: list[str], script: str = SCRIPT_TEXT) -> list[bool]:
    """The host script's own check of each path, sourced (not run) in one bash."""
    driver = (
        'source /dev/stdin <<<"$SCRIPT"\n'
        'for path in "$@"; do (mount_path=$path; check_mount_path) >/dev/null 2>&1 && echo 1 || echo 0; done\n'
    )
    result = subprocess.run(
        ["bash", "-c", driver, "check", *paths],
        env={"PATH": "/usr/bin:/bin", "SCRIPT": script},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [line == "1" for line in result.stdout.split()]


components = st.one_of(
    st.sampled_from(["efs", "data", ".hidden", "x.", "a..b", ".", "..", "", "fs-0123456789abcdef0", "a" * 60]),
    st.text(alphabet="ab._-/ $\n", min_size=1, max_size=10),
)
roots = st.sampled_from(["/mnt", "/srv", "/data", "/efs", "/media", "/etc", "/mntx", "/", "", "/var/lib", "mnt"])
paths = st.one_of(
    st.builds(
        lambda root, parts, tail: root + "".join("/" + part for part in parts) + tail,
        roots,
        st.lists(components, max_size=5),
        st.sampled_from(["", "", "/", "//", "/."]),
    ),
    st.sampled_from(SYSTEM_DIRECTORIES + ["/mnt", "/mnt/efs", "/srv/a/b", "/mnt/" + "a" * 123, "/mnt/" + "a" * 124]),
    # an environment holds no NUL, and no lone surrogate (not encodable as an argument)
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=140),
)


@settings(max_examples=60)
@given(st.lists(paths, min_size=1, max_size=25))
def test_lambda_pattern_and_script_agree_on_every_path(batch):
    script = script_accepts(batch)
    for path, on_host in zip(batch, script, strict=True):
        in_lambda = lambda_accepts(path)
        assert on_host == in_lambda, path
        if len(path) <= 128:
            # The pattern cannot count characters; the Lambda and the script do.
            assert pattern_accepts(path) == in_lambda, path
        if in_lambda:
            assert any(path.startswith(root + "/") for root in DEFAULT_MOUNT_ROOTS)


@pytest.mark.parametrize("path", SYSTEM_DIRECTORIES)
def test_the_issues_system_directories_are_refused_everywhere(path):
    assert not lambda_accepts(path)
    assert not pattern_accepts(path)
    assert script_accepts([path]) == [False]


def test_a_refused_path_names_the_tag_and_the_roots():
    with pytest.raises(MountConfigError) as raised:
        mount_spec_from_tags({"efs-automount:file-system-id": FS, "efs-automount:mount-path": "/etc/cron.d"})
    assert raised.value.tag == "efs-automount:mount-path"
    assert "MOUNT_ROOTS (/mnt, /srv, /data, /efs, /media)" in str(raised.value)


def test_a_root_itself_is_not_a_mount_path_but_anything_strictly_under_it_is():
    assert not lambda_accepts("/mnt")
    assert lambda_accepts("/mnt/x")
    assert not lambda_accepts("/mntx/y")


@pytest.mark.parametrize("path", [*SYSTEM_DIRECTORIES, "/mnt", "/tmp/x"])  # noqa: S108 (a path refused, never used)
def test_the_task_definition_host_path_follows_the_same_rule(path):
    with pytest.raises(MountConfigError) as raised:
        task_mount_from_tags({"efs-automount:file-system-id": FS, HOST_PATH_TAG: path}, {})
    assert raised.value.tag == HOST_PATH_TAG
    assert "MOUNT_ROOTS" in raised.value.reason


def test_the_task_definition_host_path_uses_the_deployed_roots():
    tags = {"efs-automount:file-system-id": FS, HOST_PATH_TAG: "/opt/shared/x"}
    assert task_mount_from_tags(tags, {}, ("/opt/shared",)).host_path == "/opt/shared/x"
    with pytest.raises(MountConfigError):
        task_mount_from_tags(tags, {})


# --- MOUNT_ROOTS: a deploy-time setting ----------------------------------------------------------


def test_mount_roots_default_to_the_contract():
    assert Settings.from_environ({}).mount_roots == ("/mnt", "/srv", "/data", "/efs", "/media")
    assert Settings.from_environ({"MOUNT_ROOTS": " /opt/shared , /srv,"}).mount_roots == ("/opt/shared", "/srv")


@pytest.mark.parametrize(
    "value", ["/", "mnt", "/mnt/", "/mnt//efs", "/mnt/../etc", "/mnt/./x", "/a b", "/mnt,/", "/$x"]
)
def test_a_bad_mount_root_fails_naming_the_variable(value):
    with pytest.raises(SettingsError, match="MOUNT_ROOTS"):
        Settings.from_environ({"MOUNT_ROOTS": value})


@settings(max_examples=30)
@given(
    st.lists(st.sampled_from(["/opt/shared", "/srv", "/data/team.a", "/var/lib/app-data"]), min_size=1, max_size=3),
    st.lists(paths, min_size=1, max_size=15),
)
def test_other_roots_baked_into_the_document_agree_with_the_lambda(chosen, batch):
    chosen_roots = tuple(dict.fromkeys(chosen))
    script = script_accepts(batch, build_deploy.script_for_roots(chosen_roots))
    for path, on_host in zip(batch, script, strict=True):
        in_lambda = lambda_accepts(path, chosen_roots)
        assert on_host == in_lambda, path
        if len(path) <= 128:
            assert pattern_accepts(path, mount_path_pattern(chosen_roots)) == in_lambda, path


def test_the_document_is_built_from_the_configs_mount_roots():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    configured = tuple(config["environment_variables"]["MOUNT_ROOTS"].split(","))
    assert build_deploy.mount_roots(config) == configured
    assert DOCUMENT["parameters"]["MountPath"]["allowedPattern"] == mount_path_pattern(configured)
    assert f"readonly MOUNT_ROOTS={','.join(configured)}" in SCRIPT_TEXT.splitlines()


def test_a_stage_that_overrides_mount_roots_differently_is_refused():
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["prod"]["environment_variables"]["MOUNT_ROOTS"] = "/opt"
    with pytest.raises(SystemExit, match="MOUNT_ROOTS"):
        build_deploy.mount_roots(config)


def test_a_group_path_under_the_deployed_roots_is_sent(tmp_path, aws):
    # Given an app deployed with MOUNT_ROOTS=/opt/shared (its document built with those roots),
    # and a group asking for a path there
    land = build_landscape(boto3.Session(region_name="us-east-1"), with_document=False)
    land.client("ssm").create_document(
        Name="efs-automount-mount",
        Content=json.dumps(build_deploy.mount_document(("/opt/shared",))),
        DocumentType="Command",
        DocumentFormat="JSON",
    )
    land.client("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": land.group_name,
                "ResourceType": "auto-scaling-group",
                "Key": "efs-automount:mount-path",
                "Value": "/opt/shared/x",
                "PropagateAtLaunch": False,
            }
        ]
    )
    lambda_ = make_lambda(tmp_path, MOUNT_ROOTS="/opt/shared")
    bus = EventBus(app, lambda_.invoke)
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])

    deliver_outbox(bus)

    (command,) = land.client("ssm").list_commands()["Commands"]
    assert command["Parameters"]["MountPath"] == ["/opt/shared/x"]

    # And when the host reports the mount, the status step reads the same path back and lets it in
    hosts.answer(land, "Success")
    assert ("on_command_status", {"outcome": "completed CONTINUE"}) in deliver_outbox(bus)
    assert lifecycle_state(land, instance_id) == "InService"

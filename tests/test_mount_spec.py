"""Pure: group tags -> what to mount -> the SSM parameters sent. No AWS."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.mount.spec import (
    DEFAULT_MOUNT_ROOTS,
    MountConfigError,
    MountSpec,
    failure_result_from_tags,
    mount_command_parameters,
    mount_path_pattern,
    mount_spec_from_tags,
)
from chalicelib.plumbing.lifecycle_result import LifecycleResult

FS = "fs-0123456789abcdef0"
SHELL_SPECIALS = set("'\"`$;&|<>(){}[]*?!~#\\ \t\n\r=%^,:@")


def test_defaults_mount_the_file_system_under_mnt_efs():
    assert mount_spec_from_tags({"efs-automount:file-system-id": FS}) == MountSpec(FS, f"/mnt/efs/{FS}")


def test_group_without_the_tag_asks_for_nothing():
    assert mount_spec_from_tags({"Name": "ecs-hosts"}) is None


def test_all_tags_are_read():
    spec = mount_spec_from_tags(
        {
            "efs-automount:file-system-id": "fs-12345678",
            "efs-automount:mount-path": "/data/shared_files-1.0",
            "efs-automount:access-point-id": "fsap-0123456789abcdef0",
        }
    )
    assert spec == MountSpec("fs-12345678", "/data/shared_files-1.0", "fsap-0123456789abcdef0")


@pytest.mark.parametrize(
    ("tags", "tag", "reason"),
    [
        ({"efs-automount:file-system-id": "fs-123"}, "efs-automount:file-system-id", "8 or 17 hex"),
        ({"efs-automount:file-system-id": "FS-12345678"}, "efs-automount:file-system-id", "8 or 17 hex"),
        ({"efs-automount:file-system-id": f"{FS}\n"}, "efs-automount:file-system-id", "8 or 17 hex"),
        ({"efs-automount:mount-path": "relative/path"}, "efs-automount:mount-path", "absolute"),
        ({"efs-automount:mount-path": "/a b"}, "efs-automount:mount-path", "absolute"),
        ({"efs-automount:mount-path": "/data/../etc"}, "efs-automount:mount-path", ".."),
        ({"efs-automount:mount-path": "/data//x"}, "efs-automount:mount-path", "normal form"),
        ({"efs-automount:mount-path": "/data/"}, "efs-automount:mount-path", "normal form"),
        ({"efs-automount:mount-path": "/data/./x"}, "efs-automount:mount-path", "'.' component"),
        ({"efs-automount:mount-path": "/var/lib/docker"}, "efs-automount:mount-path", "MOUNT_ROOTS"),
        ({"efs-automount:mount-path": "/" + "a" * 128}, "efs-automount:mount-path", "128"),
        ({"efs-automount:access-point-id": "fsap-123"}, "efs-automount:access-point-id", "17 hex"),
    ],
)
def test_invalid_tag_is_named_with_the_reason(tags, tag, reason):
    with pytest.raises(MountConfigError) as raised:
        mount_spec_from_tags({"efs-automount:file-system-id": FS} | tags)
    assert raised.value.tag == tag
    assert reason in str(raised.value)


def test_failure_result_comes_from_the_tag_or_the_setting():
    assert failure_result_from_tags({}, LifecycleResult.ABANDON) is LifecycleResult.ABANDON
    tags = {"efs-automount:on-failure": "CONTINUE"}
    assert failure_result_from_tags(tags, LifecycleResult.ABANDON) is LifecycleResult.CONTINUE
    with pytest.raises(MountConfigError, match="efs-automount:on-failure"):
        failure_result_from_tags({"efs-automount:on-failure": "continue"}, LifecycleResult.ABANDON)


def test_given_an_unknown_failure_result_when_read_then_the_refusal_quotes_at_most_80_characters_of_it():
    with pytest.raises(MountConfigError) as raised:
        failure_result_from_tags({"efs-automount:on-failure": "continue"}, LifecycleResult.ABANDON)
    assert raised.value.reason == "'continue' is neither ABANDON nor CONTINUE"
    with pytest.raises(MountConfigError) as raised:
        failure_result_from_tags({"efs-automount:on-failure": "X" * 200}, LifecycleResult.ABANDON)
    assert raised.value.reason == f"{'X' * 80!r} is neither ABANDON nor CONTINUE"


@pytest.mark.parametrize(
    ("tag", "reason"),
    [
        ("efs-automount:file-system-id", "is not fs- followed by 8 or 17 hex digits"),
        ("efs-automount:access-point-id", "is not fsap- followed by 17 hex digits"),
        ("efs-automount:mount-path", "is not an absolute path of [A-Za-z0-9._/-] up to 128 characters"),
    ],
)
def test_given_a_very_long_bad_tag_value_when_refused_then_the_reason_quotes_its_first_80_characters(tag, reason):
    with pytest.raises(MountConfigError) as raised:
        mount_spec_from_tags({"efs-automount:file-system-id": FS} | {tag: "@" * 200})
    assert raised.value.reason == f"{'@' * 80!r} {reason}"


def test_given_a_path_of_slashes_only_when_refused_then_the_reason_gives_its_normal_form():
    with pytest.raises(MountConfigError) as raised:
        mount_spec_from_tags({"efs-automount:file-system-id": FS, "efs-automount:mount-path": "//"})
    assert raised.value.reason == "'//' is not in normal form; write '/'"


@pytest.mark.parametrize("path", ["/mnt/X", "/srv/a.b/c-d_e", "/efs/XX/y"])
def test_given_a_path_in_normal_form_under_a_root_when_read_then_it_is_taken_as_written(path):
    tags = {"efs-automount:file-system-id": FS, "efs-automount:mount-path": path}
    assert mount_spec_from_tags(tags) == MountSpec(FS, path)


def test_given_roots_other_than_the_defaults_when_a_groups_tags_are_read_then_its_path_is_judged_by_them():
    roots = ("/opt/shared",)
    tags = {"efs-automount:file-system-id": FS, "efs-automount:mount-path": "/opt/shared/x"}
    assert mount_spec_from_tags(tags, roots) == MountSpec(FS, "/opt/shared/x")
    with pytest.raises(MountConfigError, match="/opt/shared"):
        mount_spec_from_tags({"efs-automount:file-system-id": FS}, roots)  # the default path lies under /mnt


def test_given_a_root_with_a_dot_when_the_documents_pattern_is_built_then_the_dot_matches_only_a_dot():
    pattern = mount_path_pattern(("/data/team.a",))
    assert re.fullmatch(pattern, "/data/team.a/x")
    assert not re.fullmatch(pattern, "/data/teamxa/x")


def test_parameters_carry_the_file_system_and_path_verbatim():
    parameters = mount_command_parameters(MountSpec(FS, "/data/shared"), "eu-west-1", "10.0.1.25")
    assert parameters == {
        "FileSystemId": [FS],
        "MountPath": ["/data/shared"],
        "Region": ["eu-west-1"],
        "AccessPointId": [""],
        "MountTargetIp": ["10.0.1.25"],
        "ReadOnly": ["false"],
        "RequireTls": ["false"],
    }


def test_an_access_point_or_a_tls_policy_requires_tls():
    with_access_point = MountSpec(FS, "/data", "fsap-0123456789abcdef0")
    assert mount_command_parameters(with_access_point, "us-east-1", "10.0.0.1")["RequireTls"] == ["true"]
    assert mount_command_parameters(MountSpec(FS, "/data"), "us-east-1", "10.0.0.1", True)["RequireTls"] == ["true"]


@pytest.mark.parametrize(
    ("region", "ip"), [("eu-west-1\n", "10.0.0.1"), ("eu-west-1", "10.0.0.1; id"), ("x", "1.2.3.4")]
)
def test_parameters_refuse_a_bad_region_or_ip(region, ip):
    with pytest.raises(ValueError):
        mount_command_parameters(MountSpec(FS, "/data"), region, ip)


def test_given_a_bad_region_or_ip_when_refused_then_the_error_names_which_quoting_at_most_40_characters():
    with pytest.raises(ValueError) as raised:
        mount_command_parameters(MountSpec(FS, "/data"), "x" * 60, "10.0.0.1")
    assert str(raised.value) == f"region {'x' * 40!r} is not an AWS region name"
    with pytest.raises(ValueError) as raised:
        mount_command_parameters(MountSpec(FS, "/data"), "us-east-1", "1" * 60)
    assert str(raised.value) == f"mount target IP {'1' * 40!r} is not an IPv4 address"


@given(
    st.dictionaries(
        st.sampled_from(
            ["efs-automount:file-system-id", "efs-automount:mount-path", "efs-automount:access-point-id", "other"]
        ),
        st.text(max_size=140) | st.sampled_from([FS, "/mnt/efs/x", "fsap-0123456789abcdef0", "/data/$(id)"]),
    )
)
def test_no_tag_value_reaches_the_host_with_a_shell_special_character(tags):
    # Given any tag values at all, either the group is refused, or what is sent is inert text
    try:
        spec = mount_spec_from_tags(tags)
    except MountConfigError:
        return
    if spec is None:
        return
    for values in mount_command_parameters(spec, "us-east-1", "10.0.0.17").values():
        assert not SHELL_SPECIALS & set(values[0])
    assert any(spec.mount_path.startswith(root + "/") for root in DEFAULT_MOUNT_ROOTS)
    assert ".." not in spec.mount_path

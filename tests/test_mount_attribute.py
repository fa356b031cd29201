"""Pure: the mount attribute's name, one for the hosts that carry it and the task definitions that ask for it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.mount.attribute import MOUNT_ATTRIBUTE_NAME, legacy_attribute_name, mount_attribute_name
from chalicelib.mount.spec import MOUNT_PATH
from chalicelib.task_definitions.rewrite import task_mount_from_tags

# ECS: 1 to 128 letters, digits, hyphens, underscores, forward and back slashes, periods
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Attribute.html)
ECS_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_/\\.-]{1,128}")
file_systems = st.from_regex(r"fs-(?:[0-9a-f]{8}|[0-9a-f]{17})", fullmatch=True)


def test_the_name_holds_the_file_system_and_the_first_12_hex_digits_of_the_paths_sha256():
    # printf %s /data/shared | sha256sum
    assert (
        mount_attribute_name("fs-0123456789abcdef0", "/data/shared")
        == "efs-automount.fs-0123456789abcdef0.c4db6b731db6"
    )


@given(file_systems, st.from_regex(MOUNT_PATH, fullmatch=True))
def test_every_name_is_one_ecs_allows_and_no_two_paths_share_it(file_system_id, path):
    name = mount_attribute_name(file_system_id, path)
    assert ECS_ATTRIBUTE_NAME.fullmatch(name)
    assert MOUNT_ATTRIBUTE_NAME.fullmatch(name)
    assert mount_attribute_name(file_system_id, path + "x") != name


def test_an_earlier_releases_attribute_is_not_taken_for_this_one():
    assert not MOUNT_ATTRIBUTE_NAME.fullmatch(legacy_attribute_name("fs-0123456789abcdef0"))


def test_a_host_mode_task_asks_for_the_attribute_of_its_host_path():
    mount = task_mount_from_tags(
        {"efs-automount:file-system-id": "fs-0123456789abcdef0", "efs-automount:host-path": "/data/shared"}, {}
    )
    assert mount.placement_constraint == {
        "type": "memberOf",
        "expression": "attribute:efs-automount.fs-0123456789abcdef0.c4db6b731db6 exists",
    }

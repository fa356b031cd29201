"""Pure: where a registered revision stands, and what the rewrite flow does about it. No AWS."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.mount.spec import DEFAULT_MOUNT_ROOTS, MountConfigError
from chalicelib.task_definitions.flow import register_input_fields
from chalicelib.task_definitions.rewrite import SOURCE_TAG, TaskMount, rewrite_task_definition, task_mount_from_tags
from chalicelib.task_definitions.standing import (
    FAMILY,
    INVALID,
    MOUNTS,
    NO_ACTIVE,
    OURS,
    UNTAGGED,
    RevisionStanding,
    Step,
    family_standing,
    next_step,
    standing_from_tags,
    standing_in_family,
)
from tests.support.task_definitions import FS, registered, task_definitions

INPUT = register_input_fields()
LATEST = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:4"
MOUNT = TaskMount(FS, host_path=f"/mnt/efs/{FS}")
FAMILY_VERDICTS = ["latest", "rewritten", "in-flight", "superseded", "rewritten-earlier", "forged"]
STANDINGS = [
    RevisionStanding(OURS),
    RevisionStanding(INVALID, invalid=MountConfigError("efs-automount:mode", "'fast' is neither host nor native")),
    RevisionStanding(UNTAGGED),
    RevisionStanding(MOUNTS, MOUNT),
    RevisionStanding(NO_ACTIVE, MOUNT),
    *(RevisionStanding(verdict, MOUNT, LATEST) for verdict in FAMILY_VERDICTS),
]


def _tags(tags):
    return {t["key"]: t["value"] for t in tags}


@given(task_definitions(), st.dictionaries(st.sampled_from(["efs-automount:mode", "team"]), st.text(max_size=8)))
def test_the_apps_own_revision_is_never_rewritten_whatever_its_other_tags(generated, others):
    definition, tags = generated
    found = standing_from_tags(_tags(tags) | others | {SOURCE_TAG: "anything"}, definition, DEFAULT_MOUNT_ROOTS)
    assert found.standing == OURS
    assert next_step(found).step is Step.IGNORE


@given(task_definitions())
def test_a_tagged_revision_without_the_mount_is_decided_by_its_family_and_its_rewrite_by_its_tags(generated):
    definition, tags = generated
    found = standing_from_tags(_tags(tags), definition, DEFAULT_MOUNT_ROOTS)
    assert found.standing == FAMILY
    assert found.mount == task_mount_from_tags(_tags(tags), definition)
    # The rewrite carries the source tag, and mounts the file system even without it
    request = rewrite_task_definition(definition, tags, found.mount, INPUT)
    rewrite, rewrite_tags = registered(request, definition)
    assert standing_from_tags(rewrite_tags, rewrite, DEFAULT_MOUNT_ROOTS).standing == OURS
    del rewrite_tags[SOURCE_TAG]
    assert standing_from_tags(rewrite_tags, rewrite, DEFAULT_MOUNT_ROOTS).standing == MOUNTS


def test_tags_that_ask_for_nothing_or_fail_validation_are_said_so():
    assert standing_from_tags({"team": "web"}, {}, DEFAULT_MOUNT_ROOTS).standing == UNTAGGED
    found = standing_from_tags({"efs-automount:file-system-id": "fs-nope"}, {}, DEFAULT_MOUNT_ROOTS)
    assert (found.standing, found.invalid.tag) == (INVALID, "efs-automount:file-system-id")


@given(task_definitions())
def test_the_familys_latest_decides_and_only_the_apps_real_rewrite_counts_as_done(generated):
    definition, tags = generated
    source_tags = _tags(tags)
    mount = task_mount_from_tags(source_tags, definition)
    request = rewrite_task_definition(definition, tags, mount, INPUT)
    rewrite, rewrite_tags = registered(request, definition)

    def standing(latest, latest_tags):
        return standing_in_family(definition, source_tags, mount, latest, latest_tags, INPUT)

    assert standing(definition, source_tags) == "latest"
    assert standing(rewrite, rewrite_tags) == "rewritten"
    # Given a revision that names the source in its tag but is not its rewrite, Then it is forged
    forged = rewrite | {"containerDefinitions": [{**rewrite["containerDefinitions"][0], "image": "evil:latest"}]}
    assert standing(forged, rewrite_tags) == "forged"
    # A user's newer revision, tagged or not
    newer = definition | {"taskDefinitionArn": rewrite["taskDefinitionArn"]}
    assert standing(newer, source_tags) == "superseded"
    if mount.mode == "host":
        legacy = [*definition["placementConstraints"], mount.legacy_placement_constraint]
        earlier, _ = registered(request | {"placementConstraints": legacy}, definition)
        assert standing(earlier, rewrite_tags) == "rewritten-earlier"


@pytest.mark.parametrize("found", STANDINGS, ids=lambda found: found.standing)
def test_only_the_familys_latest_is_ever_rewritten(found):
    # The app never makes an older definition the family's latest
    step = next_step(found)
    assert (step.step is Step.REGISTER) is (found.standing == "latest")
    assert (step.step is Step.FINISH) is (found.standing == "rewritten")  # its follow-ups: update services
    assert (step.step is Step.RETRY) is (found.standing == "in-flight")
    if step.step is Step.IGNORE:
        assert step.outcome.startswith(("ignored: ", "rejected: "))
    # Every refusal is counted (TaskDefinitionsRejected) and logged as an error
    if step.outcome.startswith("rejected: "):
        assert step.rejected == "invalid-tag"
        assert step.log[0] == "error"


def test_what_is_logged_and_counted_names_the_latest_revision():
    superseded = next_step(RevisionStanding("superseded", MOUNT, LATEST))
    assert superseded.log == (
        "warning",
        "task definition superseded by a newer revision of its family; not rewritten, repair reports it",
        {"superseded_by": LATEST},
    )
    assert (superseded.outcome, superseded.rejected) == (f"ignored: superseded by {LATEST}", "superseded")
    forged = next_step(RevisionStanding("forged", MOUNT, LATEST))
    assert (forged.log[0], forged.log[2], forged.rejected) == ("error", {"latest": LATEST}, "forged-rewrite")


def test_the_flows_answer_reads_into_a_standing():
    assert family_standing(None, MOUNT) == RevisionStanding(NO_ACTIVE, MOUNT)
    assert family_standing(("superseded", LATEST), MOUNT) == RevisionStanding("superseded", MOUNT, LATEST)
    with pytest.raises(ValueError, match="family"):
        next_step(RevisionStanding(FAMILY, MOUNT))  # the family's latest must be read first

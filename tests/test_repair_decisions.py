"""Pure: what repair decides for each item it finds, dry run or not, and what its report says. No AWS.

The flows (repair.hosts, repair.task_definitions) only read, ask these functions and act on their Plan; so what a
dry run may do, and on what evidence a host is marked, is proven here for every combination of facts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.launch.groups import Group
from chalicelib.mount.spec import MountConfigError
from chalicelib.repair.findings import (
    Act,
    Plan,
    instance_item,
    lifecycle_item,
    new_report,
    stopped,
    summarize,
    task_definition_item,
)
from chalicelib.repair.host_findings import (
    HostFix,
    MountEvidence,
    after_completing,
    after_driving,
    after_sending,
    host_findings,
    in_service_plan,
    mount_send_plan,
    settled_in_ecs,
    waiting_host_plan,
    waiting_problem,
)
from chalicelib.repair.scope import (
    auto_scaling_group_name,
    ec2_capacity_providers,
    examined_groups,
    hosts_in_service,
    hosts_waiting,
)
from chalicelib.repair.task_definition_findings import (
    TaskDefinitionFix,
    after_registering,
    register_plan,
    revision_findings,
    service_update_plan,
)
from chalicelib.task_definitions.rewrite import SOURCE_TAG, TaskMount
from chalicelib.task_definitions.standing import FAMILY, INVALID, MOUNTS, NO_ACTIVE, OURS, UNTAGGED, RevisionStanding

FS, PATH = "fs-0123456789abcdef0", "/mnt/efs/fs-0123456789abcdef0"
ATTRIBUTE = f"efs-automount.{FS}.54d5475e1e65"
SOURCE = "arn:aws:ecs:eu-west-1:123456789012:task-definition/reports:1"
LATEST = "arn:aws:ecs:eu-west-1:123456789012:task-definition/reports:2"
GRACE = 60.0

attribute_values = st.sampled_from([None, PATH, "/mnt/old"])
evidences = st.none() | st.builds(
    MountEvidence,
    proven_path=st.sampled_from([None, PATH, "/mnt/old"]),
    difference=st.sampled_from([None, "without the group's access point fsap-0123456789abcdef0", "read-only"]),
)
problems = st.sampled_from(["waiting on the efs-automount hook for 300 s", "waiting on the efs-automount hook"])


def _findings(registered, attribute_value, evidence):
    return host_findings(FS, PATH, registered, attribute_value, evidence)


def _acted_plans(dry_run, registered, attribute_value, evidence, online, running, problem, settled):
    """Every plan repair may make for a host, from the same facts."""
    findings = _findings(registered, attribute_value, evidence)
    return [
        in_service_plan(findings, FS, PATH, dry_run),
        mount_send_plan(online, running, FS, PATH, dry_run),
        waiting_host_plan(problem, settled, dry_run),
    ]


# registered, attribute value, SSM's record, agent online, a mount running, the waiting host's problem, and whether
# SSM proves its launch's mount with nothing left in ECS
host_facts = st.tuples(
    st.booleans(), attribute_values, evidences, st.booleans(), st.booleans(), problems, st.booleans()
)


# --- a dry run ---------------------------------------------------------------------------------


@given(host_facts)
def test_a_dry_run_never_acts_on_a_host(facts):
    assert all(plan.act is None for plan in _acted_plans(True, *facts))


@given(host_facts)
def test_a_dry_run_says_what_repair_would_do_where_a_repair_acts(facts):
    for dry, real in zip(_acted_plans(True, *facts), _acted_plans(False, *facts), strict=True):
        if real.act is not None:
            assert dry.actions and all(action.startswith("would ") for action in dry.actions)
        else:
            assert dry == real  # nothing to do: both report the same, and neither acts
    # The problems of a waiting host are reported once the act did something; a dry run reports them at once
    *_, problem, settled = facts
    assert waiting_host_plan(problem, settled, True).problems == (problem,)


@given(st.sampled_from(["web", "reports"]), st.booleans())
def test_a_dry_run_never_moves_a_service_nor_registers_a_revision(service, dry_run):
    for plan in (service_update_plan(service, LATEST, dry_run), register_plan(dry_run)):
        assert (plan.act is None) is dry_run
        if dry_run:
            assert all(action.startswith("would ") for action in plan.actions)


# --- marking and mounting ------------------------------------------------------------------------


@given(st.booleans(), attribute_values, evidences, st.booleans())
def test_a_host_is_marked_only_on_ssms_proof_of_exactly_the_groups_mount(registered, attribute_value, evidence, dry):
    findings = _findings(registered, attribute_value, evidence)
    plan = in_service_plan(findings, FS, PATH, dry)
    if findings.fix is HostFix.SET_ATTRIBUTE:
        assert registered and evidence is not None
        assert (evidence.proven_path, evidence.difference) == (PATH, None)
    assert (plan.act is Act.SET_ATTRIBUTE) is (findings.fix is HostFix.SET_ATTRIBUTE and not dry)
    assert plan.problems == findings.problems


@given(st.booleans(), attribute_values)
def test_without_ssms_record_a_host_is_left_as_it_is_or_its_record_is_read_first(registered, attribute_value):
    # ECS's word alone never marks a host nor sends a mount
    assert _findings(registered, attribute_value, None).fix in (HostFix.NOTHING, HostFix.NEEDS_EVIDENCE)


@given(st.booleans(), st.booleans(), st.booleans())
def test_a_mount_is_sent_only_through_an_online_agent_and_never_while_one_runs(online, running, dry_run):
    plan = mount_send_plan(online, running, FS, PATH, dry_run)
    assert (plan.act is Act.SEND_MOUNT) is (online and not running and not dry_run)
    if not online:
        assert plan.problems == ("its SSM agent is not online: no mount can be sent now",)
    elif running:
        assert plan.problems == ("mount command running: its status event sets the attribute",)


def test_what_the_launch_step_answers_to_a_mount_sent_is_an_action_or_a_problem():
    assert after_sending("mount command sent: 6d3f") == Plan(actions=("mount command sent: 6d3f",))
    assert after_sending("not sent: no mount target in eu-west-1b") == Plan(
        ("not sent: no mount target in eu-west-1b",)
    )


def test_a_set_attribute_is_reported_with_its_name_and_value():
    findings = _findings(True, None, MountEvidence(PATH))
    assert in_service_plan(findings, FS, PATH, False).actions == (f"attribute {ATTRIBUTE} set to {PATH}",)
    assert in_service_plan(findings, FS, PATH, True).actions == (f"would set the attribute {ATTRIBUTE} to {PATH}",)


# --- waiting on our hook ---------------------------------------------------------------------------


@given(st.floats(0, 10_000), st.none() | st.floats(0, 10_000))
def test_a_waiting_host_is_left_to_its_launch_event_during_the_sweepers_grace(now, started):
    problem = waiting_problem("efs-automount", now, started, GRACE)
    assert (problem is None) is (started is not None and now - started < GRACE)
    if problem is not None:
        assert problem.startswith("waiting on the efs-automount hook")
    if started is None:
        assert problem == "waiting on the efs-automount hook (since when, AWS does not say)"


@given(problems, st.booleans())
def test_a_proven_launch_mount_is_only_completed_and_anything_else_is_the_launch_steps(problem, settled):
    assert waiting_host_plan(problem, settled, False).act is (Act.COMPLETE if settled else Act.DRIVE)


@pytest.mark.parametrize(
    ("registered", "attribute_value", "settled"),
    [(False, None, True), (True, PATH, True), (True, None, False), (True, "/mnt/old", False)],
)
def test_ecs_shows_nothing_left_when_the_attribute_is_there_or_the_host_not_registered(
    registered, attribute_value, settled
):
    assert settled_in_ecs(registered, attribute_value, PATH) is settled


@given(problems)
def test_a_waiting_host_decided_meanwhile_reports_nothing(problem):
    assert after_completing(problem, completed=False) == Plan()
    assert after_driving(problem, "already decided") == Plan()
    assert after_completing(problem, completed=True) == Plan(
        (problem,), ("launch step: completed CONTINUE (SSM's record proves its mount)",)
    )
    assert after_driving(problem, "completed CONTINUE") == Plan((problem,), ("launch step: completed CONTINUE",))


# --- task definitions --------------------------------------------------------------------------------

TAGS = {"efs-automount:file-system-id": FS}
MOUNT = TaskMount(FS, host_path=PATH)
LEGACY = {"placementConstraints": [{"type": "memberOf", "expression": f"attribute:efs-automount.{FS} exists"}]}
standings = st.sampled_from(
    [
        RevisionStanding(OURS),
        RevisionStanding(INVALID, invalid=MountConfigError("efs-automount:mode", "'fast' is neither host nor native")),
        RevisionStanding(MOUNTS, MOUNT),
        RevisionStanding(NO_ACTIVE, MOUNT),
        *(
            RevisionStanding(verdict, MOUNT, LATEST)
            for verdict in ["latest", "rewritten", "in-flight", "superseded", "rewritten-earlier", "forged"]
        ),
    ]
)


@given(standings, st.booleans(), st.sampled_from([{}, LEGACY]))
def test_repair_registers_only_the_familys_latest_and_moves_services_only_to_its_real_rewrite(found, update, extra):
    findings = revision_findings(["reports"], {"family": "reports", **extra}, TAGS, found, update)
    assert (findings.fix is TaskDefinitionFix.REGISTER) is (found.standing == "latest")
    assert (findings.fix is TaskDefinitionFix.UPDATE_SERVICES) is (found.standing == "rewritten" and update)
    # An earlier release's constraint is reported first, whatever the standing
    legacy = [problem for problem in findings.problems if problem.startswith("its placement constraint")]
    assert legacy == (list(findings.problems[:1]) if extra else [])
    # A fix always comes with the problem it fixes
    assert findings.problems or findings.fix is TaskDefinitionFix.NOTHING


def test_a_revision_not_tagged_for_efs_is_left_out_of_the_report():
    assert revision_findings(["web"], {}, {}, RevisionStanding(UNTAGGED), True) is None
    assert revision_findings(["web"], {}, {SOURCE_TAG: SOURCE}, RevisionStanding(OURS), True) is None
    with pytest.raises(ValueError, match="read it first"):
        revision_findings(["web"], {}, TAGS, RevisionStanding(FAMILY, MOUNT), True)


def test_the_apps_own_rewrite_and_an_invalid_tag_are_reported_never_fixed():
    ours = revision_findings(["web"], LEGACY, TAGS | {SOURCE_TAG: SOURCE}, RevisionStanding(OURS), True)
    assert ours.fix is TaskDefinitionFix.NOTHING
    assert ours.problems[0].startswith(f"its placement constraint attribute:efs-automount.{FS} exists")
    invalid = MountConfigError("efs-automount:host-path", "'/etc' is not under MOUNT_ROOTS")
    found = revision_findings(["web"], {}, TAGS, RevisionStanding(INVALID, invalid=invalid), True)
    assert found.problems == (f"tag is invalid, so it is never rewritten: {invalid}",)


@pytest.mark.parametrize(
    ("outcome", "plan"),
    [
        (f"registered {LATEST}", Plan(actions=(f"registered {LATEST}",))),
        (
            "rejected: this botocore does not know runtimePlatform2",
            Plan(error="rejected: this botocore does not know runtimePlatform2"),
        ),
        (f"ignored: superseded by {LATEST}", Plan((f"not rewritten: ignored: superseded by {LATEST}",))),
    ],
)
def test_what_the_rewrite_flow_answers_is_an_action_an_error_or_a_problem(outcome, plan):
    assert after_registering(outcome) == plan


# --- scope and the report ------------------------------------------------------------------------------


def _group(name, tags, states):
    return Group(name=name, tags=tags, instance_states=states, instance_zones={})


def test_only_groups_tagged_for_efs_are_examined_and_a_group_asked_for_by_name_is_accounted_for():
    tagged = _group("ecs-hosts", {"efs-automount:file-system-id": FS}, {})
    plain = _group("other", {}, {})
    assert examined_groups(None, [tagged, plain]) == ([tagged], [])
    assert examined_groups("other", [plain]) == (
        [],
        [{"item": "other", "error": "group has no efs-automount:file-system-id tag"}],
    )
    assert examined_groups("gone", []) == ([], [{"item": "gone", "error": "Auto Scaling group not found"}])


def test_a_groups_hosts_are_taken_by_their_lifecycle_state():
    group = _group("g", {}, {"i-3": "InService", "i-2": "Pending:Wait", "i-1": "InService", "i-4": "Terminating:Wait"})
    assert (hosts_waiting(group), hosts_in_service(group)) == (["i-2"], ["i-1", "i-3"])


def test_the_groups_of_a_clusters_ec2_capacity_providers():
    assert ec2_capacity_providers({"capacityProviders": ["FARGATE", "hosts", "FARGATE_SPOT"]}) == ["hosts"]
    arn = "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:uuid:autoScalingGroupName/ecs-hosts"
    assert auto_scaling_group_name({"autoScalingGroupProvider": {"autoScalingGroupArn": arn}}) == "ecs-hosts"
    assert auto_scaling_group_name({"name": "FARGATE"}) is None


def test_the_report_has_the_contracts_keys_and_counts_every_item():
    report = new_report("arn:aws:ecs:eu-west-1:123456789012:cluster/web", None, "123456789012", "eu-west-1", True)
    assert list(report) == [
        "cluster", "auto_scaling_group", "account", "region", "dry_run",
        "groups", "instances", "lifecycle_actions", "task_definitions", "errors", "stopped",
    ]  # fmt: skip
    host = instance_item("i-1", "ecs-hosts") | {"problems": ["never mounted"], "actions": ["would send the mount"]}
    report["instances"].append(host)
    report["lifecycle_actions"].append(lifecycle_item("i-2", "ecs-hosts"))
    report["task_definitions"].append(task_definition_item(SOURCE, ["web", "api"]))
    report["errors"].append({"item": "i-3", "error": "throttled"})
    assert summarize(report) == {"examined": 3, "with_problems": 1, "actions": 1, "errors": 1}
    assert report["task_definitions"][0]["family"] == "reports"
    assert report["task_definitions"][0]["services"] == ["api", "web"]
    assert set(stopped("examining hosts: stopped before host i-9")) == {"where", "how_to_go_on"}

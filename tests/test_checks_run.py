"""Where users see the configuration checks (issue 19): repair's `groups`, the hourly `checks` function and its
metric, and the log line of a mount that fails for good. The rules themselves: test_checks_configuration.py,
test_checks_network.py, test_checks_reach.py."""

from __future__ import annotations

import pytest

from simulation import hosts
from simulation.landscape import build_landscape, create_member_role, scale_out, session_in_account
from tests.conftest import SCHEDULED_EVENT, deliver_outbox, make_lambda, metric_names
from tests.support.groups import group_with_launch_configuration
from tests.support.network import SSH, replace_ingress

MEMBER = "210987654321"
# Repair runs with its real 900 s context.
pytestmark = pytest.mark.usefixtures("repair_context")


def _rules(problems: list[str]) -> list[str]:
    return [p.split(":", 1)[0] for p in problems]


def test_a_group_set_up_as_the_readme_asks_has_no_problem_in_the_hourly_run(land, lambda_, capsys):
    report = lambda_.invoke("checks", SCHEDULED_EVENT)

    assert [(g["auto_scaling_group"], g["problems"]) for g in report["groups"]] == [(land.group_name, [])]
    assert report["errors"] == [] and report["truncated"] is False
    assert "ConfigurationProblems" not in metric_names(capsys.readouterr().out)


def test_the_hourly_run_counts_each_problem_by_rule_and_logs_the_resource_to_fix(land, lambda_, capsys, app_logs):
    # The mount targets' security group admits only SSH from the hosts (a common first setup)
    replace_ingress(land, {**SSH, "UserIdGroupPairs": [{"GroupId": land.host_security_group_id}]})

    report = lambda_.invoke("checks", SCHEDULED_EVENT)

    (group,) = report["groups"]
    assert _rules(group["problems"]) == ["nfs-blocked", "nfs-blocked"]  # one per zone's mount target
    assert land.mount_target_security_group_id in group["problems"][0]
    assert metric_names(capsys.readouterr().out).count("ConfigurationProblems") == 2
    logged = [line for line in app_logs("WARNING") if line["message"] == "configuration problem"]
    assert [line["rule"] for line in logged] == ["nfs-blocked", "nfs-blocked"]
    assert {line["group"] for line in logged} == {land.group_name}


def test_the_hourly_run_checks_a_group_with_a_launch_configuration(land, lambda_):
    group_with_launch_configuration(land, "with-lc")

    report = lambda_.invoke("checks", SCHEDULED_EVENT)

    problems = {g["auto_scaling_group"]: g["problems"] for g in report["groups"]}
    assert problems[land.group_name] == []
    # Its hosts reach the mount targets (the hosts' group is admitted); it has no hook of ours.
    assert _rules(problems["with-lc"]) == ["hook-missing"]
    assert "autoscaling:DescribeLaunchConfigurations" in lambda_.operations()


def test_the_hourly_run_checks_a_trusted_account_through_its_member_role(tmp_path):
    session = session_in_account(MEMBER)
    create_member_role(session, "123456789012")
    member = build_landscape(session)
    replace_ingress(member, {**SSH, "UserIdGroupPairs": [{"GroupId": member.host_security_group_id}]})
    lambda_ = make_lambda(tmp_path, TRUSTED_ACCOUNTS=MEMBER)

    report = lambda_.invoke("checks", SCHEDULED_EVENT)

    (group,) = [g for g in report["groups"] if g["account"] == MEMBER]
    assert _rules(group["problems"]) == ["nfs-blocked", "nfs-blocked"]
    assert "sts:AssumeRole" in lambda_.operations()


def test_repair_reports_the_groups_problems_first_and_counts_them(land, lambda_):
    replace_ingress(land, {**SSH, "UserIdGroupPairs": [{"GroupId": land.host_security_group_id}]})

    report = lambda_.invoke("repair", {"auto_scaling_group": land.group_name, "dry_run": True})

    (group,) = report["groups"]
    assert group["auto_scaling_group"] == land.group_name and group["file_system_id"] == land.file_system_id
    assert _rules(group["problems"]) == ["nfs-blocked", "nfs-blocked"] and group["actions"] == []
    assert report["summary"]["with_problems"] == 1


@pytest.mark.parametrize("answer", [("Failed", 3)], ids=["permanent"])
def test_a_mount_failing_for_good_names_the_groups_current_problems(land, bus, lambda_, app_logs, answer):
    replace_ingress(land, {**SSH, "UserIdGroupPairs": [{"GroupId": land.host_security_group_id}]})
    (instance_id,) = scale_out(land, 1)
    hosts.boot_agents(land, [instance_id])
    deliver_outbox(bus)
    status, code = answer
    hosts.answer(land, status, response_code=code)
    deliver_outbox(bus)

    (failed,) = [line for line in app_logs("ERROR") if line["message"] == "mount failed for good"]
    assert _rules(failed["configuration_problems"]) == ["nfs-blocked", "nfs-blocked"]


def test_groups_of_one_file_system_read_it_once_per_run(land, lambda_):
    # Given three groups of the landscape's file system (the landscape's and two more alike)
    autoscaling = land.client("autoscaling")
    (first,) = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"]
    for name in ("ecs-hosts-b", "ecs-hosts-c"):
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateId": first["LaunchTemplate"]["LaunchTemplateId"], "Version": "$Latest"},
            MinSize=0,
            MaxSize=1,
            VPCZoneIdentifier=first["VPCZoneIdentifier"],
            Tags=[{**tag, "ResourceId": name} for tag in first["Tags"]],
        )

    report = lambda_.invoke("checks", SCHEDULED_EVENT)

    assert len(report["groups"]) == 3
    operations = lambda_.operations()
    for read in (
        "elasticfilesystem:DescribeFileSystems",
        "elasticfilesystem:DescribeFileSystemPolicy",
        "elasticfilesystem:DescribeMountTargets",
    ):
        assert operations.count(read) == 1, (read, operations.count(read))
    assert operations.count("autoscaling:DescribeLifecycleHooks") == 3  # per group: each has its own hook


def test_a_runs_reads_keep_lasting_answers_and_errors_but_not_throttling():
    from botocore.exceptions import ClientError

    from chalicelib.checks.run_reads import _Answers

    answers, calls = _Answers(), []

    def failing(code):
        def read():
            calls.append(code)
            raise ClientError({"Error": {"Code": code, "Message": code}}, "DescribeFileSystemPolicy")

        return read

    for _ in range(2):
        with pytest.raises(ClientError):
            answers.answer("describe_file_system_policy", {"FileSystemId": "fs-1"}, failing("PolicyNotFound"))
        with pytest.raises(ClientError):
            answers.answer("describe_file_system_policy", {"FileSystemId": "fs-2"}, failing("ThrottlingException"))
        assert answers.answer("describe_file_systems", {"FileSystemId": "fs-1"}, lambda: calls.append("ok") or 1) == 1
    assert calls == ["PolicyNotFound", "ThrottlingException", "ok", "ThrottlingException"]

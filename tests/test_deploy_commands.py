"""`make deploy`, `make deploy-members`, `make uninstall` and `make stop` / `make start` (tools/deploy.py) against a
local AWS: moto in this process, and a moto server on the loopback for the AWS CLI that `make deploy` runs.

What this local AWS cannot check: CloudFormation's own AWS::Serverless transform (translated here with
aws-sam-translator), the capabilities it demands, its parameter constraints (checked here by the tool and cfn-lint)
and its update and rollback behaviour; IAM (every call is allowed); Organizations' trusted access, delegated
administrators (CALL_AS), a StackSet's AccountFilterType, automatic deployment and its operations' timing; member
events crossing accounts and regions; whether a changed DefaultResult applies to hosts already waiting; what a
reserved concurrency of 0 does to events Lambda has queued.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudformation.responses import CloudFormationResponse
from moto.server import ThreadedMotoServer

from chalicelib import __version__
from simulation import deployed_stack
from simulation.landscape import build_landscape, lifecycle_state, scale_out, session_in_account
from tests.conftest import OWN_ACCOUNT, ROOT, deliver_outbox
from tests.support.make import outside_make
from tools import app_hooks, deploy, deploy_choices

REGION = "us-east-1"
AWS_CLI = ROOT / ".venv-deploy" / "bin" / "aws"
BUCKET = "my-artifacts"


@pytest.fixture(autouse=True)
def choices_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """deploy.env and the stop's record in this test's own directory; StackSet operations looked at without pause."""
    monkeypatch.setattr(deploy_choices, "CHOICES_FILE", tmp_path / "deploy.env")
    monkeypatch.setattr(deploy, "STOPPED_HOOKS", tmp_path / "deploy-stopped.json")
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0)
    for variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path / "deploy.env"


def _remembered(path: Path) -> dict[str, str]:
    return deploy_choices.read_remembered(path)


# --- the choices (pure) --------------------------------------------------------------------------------------------


def test_a_choice_comes_from_the_command_line_then_deploy_env_then_the_running_stack_then_the_default():
    defaults = {**deploy_choices.place_defaults(), **deploy_choices.setting_defaults(("/mnt",))}
    resolved = deploy_choices.resolve(
        given={"ON_FAILURE": "CONTINUE"},
        remembered={"ON_FAILURE": "ABANDON", "TRUSTED_ACCOUNTS": "111122223333"},
        deployed={"TRUSTED_ACCOUNTS": "210987654321", "EXTERNAL_ID": "running-id"},
        defaults=defaults,
    )
    assert (resolved["ON_FAILURE"], resolved["TRUSTED_ACCOUNTS"], resolved["EXTERNAL_ID"]) == (
        "CONTINUE",
        "111122223333",
        "running-id",
    )
    assert (resolved["MOUNT_ROOTS"], resolved["STACK"]) == ("/mnt", "efs-automount")


def test_the_command_line_takes_known_variables_only_and_deploy_env_round_trips(tmp_path):
    with pytest.raises(deploy_choices.ChoiceError, match="unknown variable TRUSTED_ACCOUNT;"):
        deploy_choices.parse_given(["TRUSTED_ACCOUNT=111122223333"])
    with pytest.raises(deploy_choices.ChoiceError, match="'BUCKET' is not VARIABLE=value"):
        deploy_choices.parse_given(["BUCKET"])
    choices = {**deploy_choices.place_defaults(), **deploy_choices.setting_defaults(("/mnt", "/data"))}
    choices.update(BUCKET="my-artifacts", REGION="eu-west-1", EXTERNAL_ID="a=b,c")
    deploy_choices.write_remembered(choices, tmp_path / "deploy.env")
    remembered = deploy_choices.read_remembered(tmp_path / "deploy.env")
    assert remembered == {k: v for k, v in choices.items() if v or k in deploy_choices.SETTINGS}
    assert deploy_choices.changes({"EXTERNAL_ID": ""}, choices) == ["EXTERNAL_ID: '' -> 'a=b,c'"]


# --- make deploy ---------------------------------------------------------------------------------------------------


def test_make_deploy_passes_on_only_the_variables_given_on_its_command_line():
    command = subprocess.run(
        ["make", "-n", "deploy", "BUCKET=my-artifacts", "TRUSTED_ACCOUNTS=111122223333,210987654321", "EXTERNAL_ID="],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**outside_make(), "REGIONS": "from-the-environment"},
    ).stdout.splitlines()[-1]
    assert command.split()[:5] == [".venv/bin/python", "-m", "tools.deploy", "deploy", "--aws"]
    passed = command.split()[6:]
    assert passed == ["'BUCKET=my-artifacts'", "'TRUSTED_ACCOUNTS=111122223333,210987654321'", "'EXTERNAL_ID='"]


def test_the_makefile_passes_every_choice_the_tool_knows():
    listed = subprocess.run(
        ["make", "-s", "--eval=deploy-variables: ; @echo $(DEPLOY_VARIABLES)", "deploy-variables"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=outside_make(),
    ).stdout.split()
    assert sorted(listed) == sorted(deploy_choices.KNOWN)


def test_a_missing_bucket_fails_before_anything_is_built_or_asked(monkeypatch):
    # Given no deploy.env and no BUCKET
    monkeypatch.setattr(deploy, "read_stack", _no_aws_call)
    monkeypatch.setattr(deploy, "build_package", _no_aws_call)
    # Then the message names what is missing, and nothing was remembered
    with pytest.raises(deploy.DeployError, match=r"BUCKET is missing: an S3 bucket in REGION for the package"):
        deploy.deploy({}, str(AWS_CLI))
    assert not deploy_choices.CHOICES_FILE.exists()
    assert deploy.main(["deploy", "STACK=efs automount"]) == 1


def test_the_command_make_runs_reads_its_variables_after_the_cli_option(monkeypatch, capsys):
    # As the Makefile calls it: the command, --aws, then the variables given to make
    monkeypatch.setattr(deploy, "read_stack", _no_aws_call)
    assert deploy.main(["deploy", "--aws", str(AWS_CLI), "BUCKET=my-artifacts", "MAX_WAIT_SECONDS=10"]) == 1
    assert "make deploy: MAX_WAIT_SECONDS='10' is not valid: expected a whole number from 120 to 172800" in (
        capsys.readouterr().err
    )


def _no_aws_call(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("called")


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"MAX_WAIT_SECONDS": "60"}, "MAX_WAIT_SECONDS='60' is not valid: expected a whole number from 120 to 172800"),
        ({"TRUSTED_ACCOUNTS": "root"}, "TRUSTED_ACCOUNTS='root' is not valid"),
        ({"MOUNT_ROOTS": "/mnt,/"}, "MOUNT_ROOTS has entries that are not normalized absolute directories"),
        ({"ON_FAILURE": "RETRY"}, "ON_FAILURE='RETRY' is not valid: expected one of ABANDON, CONTINUE"),
    ],
)
def test_a_setting_the_app_would_refuse_is_refused_before_anything_is_deployed(monkeypatch, given, named):
    monkeypatch.setattr(deploy, "build_package", _no_aws_call)
    with pytest.raises(deploy.DeployError, match=named.replace("(", r"\(").replace(")", r"\)")):
        deploy.deploy({"BUCKET": BUCKET, **given}, str(AWS_CLI))
    assert not deploy_choices.CHOICES_FILE.exists()


def test_a_stack_cloudformation_would_not_update_is_named_with_what_to_do():
    where = {"STACK": "efs-automount", "REGION": "eu-west-1"}
    with pytest.raises(deploy.DeployError, match="delete-stack --region eu-west-1 --stack-name efs-automount"):
        deploy.refuse_unchangeable({"StackStatus": "ROLLBACK_COMPLETE"}, where)
    with pytest.raises(deploy.DeployError, match="UPDATE_IN_PROGRESS: run make deploy again once it has finished"):
        deploy.refuse_unchangeable({"StackStatus": "UPDATE_IN_PROGRESS"}, where)
    deploy.refuse_unchangeable({"StackStatus": "UPDATE_ROLLBACK_COMPLETE"}, where)
    deploy.refuse_unchangeable(None, where)


def test_other_mount_roots_are_built_into_a_copy_and_the_tree_is_left_as_it_is(tmp_path):
    tracked = {p: p.read_bytes() for p in (ROOT / "deploy").glob("*.json")}
    digest = (ROOT / "chalicelib" / "checks" / "document_digest.py").read_text()
    app = deploy.stage_app(("/data", "/srv"), tmp_path / "build")
    # The copy's document refuses paths outside the chosen roots, and its digest is that document's
    document = json.loads((app / "deploy" / "mount-document.json").read_text())
    assert "readonly MOUNT_ROOTS=/data,/srv" in "\n".join(document["mainSteps"][0]["inputs"]["runCommand"])
    from chalicelib.checks.rules import content_digest

    assert content_digest(document) in (app / "chalicelib" / "checks" / "document_digest.py").read_text()
    resources = json.loads((app / "deploy" / "app-resources.json").read_text())
    assert resources["Parameters"]["MountRoots"]["AllowedValues"] == ["/data,/srv"]
    assert json.loads((app / ".chalice" / "config.json").read_text())["environment_variables"]["MOUNT_ROOTS"] == (
        "/data,/srv"
    )
    # And the tree is untouched
    assert {p: p.read_bytes() for p in (ROOT / "deploy").glob("*.json")} == tracked
    assert (ROOT / "chalicelib" / "checks" / "document_digest.py").read_text() == digest


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """A moto server on the loopback, for the AWS CLI; it serves this process's moto (reset by the tests' fixture)."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    # By the name moto reads a template's S3 URL on (path-style, `localhost`): the loopback all the same.
    yield f"http://localhost:{port}"
    server.stop()


@pytest.fixture
def local_aws(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The AWS CLI and boto3 pointed at the local AWS, with no configuration of the machine's; what moto lacks for
    `aws cloudformation deploy` filled in."""
    if not AWS_CLI.exists():
        if os.environ.get("CI"):
            pytest.fail("no AWS CLI in .venv-deploy: make test installs it (requirements-deploy.txt)")
        pytest.skip("no AWS CLI in .venv-deploy: run `make test`, or make .venv-deploy/.installed-* first")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    for name, gap in (
        ("create_change_set", deployed_stack.create_change_set_with_transform),
        ("execute_change_set", deployed_stack.execute_change_set_with_outputs),
    ):
        monkeypatch.setattr(CloudFormationBackend, name, gap(getattr(CloudFormationBackend, name)))
    deployed_stack.install()
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    return moto_server


@pytest.fixture
def small_package(package_dir: Path, tmp_path: Path) -> Path:
    """The packaged template `make package` writes, beside a small zip: what is checked is the configuration, not
    the code (and the AWS CLI uploads it)."""
    package = tmp_path / "package"
    package.mkdir()
    shutil.copy2(package_dir / "sam.json", package / "sam.json")
    with zipfile.ZipFile(package / "deployment.zip", "w") as archive:
        archive.writestr("app.py", "")
    return package


def _variables(stack: str = "efs-automount") -> dict[str, dict[str, str]]:
    session = boto3.Session(region_name=REGION)
    resources = session.client("cloudformation").list_stack_resources(StackName=stack)["StackResourceSummaries"]
    lambda_ = session.client("lambda")
    return {
        r["LogicalResourceId"]: {
            k: str(v)
            for k, v in lambda_.get_function_configuration(FunctionName=r["PhysicalResourceId"])["Environment"][
                "Variables"
            ].items()
        }
        for r in resources
        if r["ResourceType"] == "AWS::Lambda::Function"
    }


def _parameters(stack: str = "efs-automount") -> dict[str, str]:
    (found,) = boto3.client("cloudformation", region_name=REGION).describe_stacks(StackName=stack)["Stacks"]
    return {p["ParameterKey"]: p["ParameterValue"] for p in found["Parameters"]}


def test_make_deploy_deploys_the_package_with_the_aws_cli_and_remembers_the_choices(
    local_aws, small_package, choices_here
):
    # Given a bucket and two settings on the command line
    given = {"BUCKET": BUCKET, "TRUSTED_ACCOUNTS": "111122223333,210987654321", "EXTERNAL_ID": "shared-secret-1"}
    outputs = deploy.deploy(given, str(AWS_CLI), small_package)
    # Then `aws cloudformation package` and `deploy` created the stack, which says its version
    assert outputs["Version"] == __version__
    assert outputs["AppRoleArns"].count(":role/") == len(_variables())
    # And every function runs with the chosen settings, the others at their defaults
    for function, variables in _variables().items():
        assert variables["TRUSTED_ACCOUNTS"] == "111122223333,210987654321", function
        assert variables["EXTERNAL_ID"] == "shared-secret-1", function
        assert (variables["ON_FAILURE"], variables["MAX_WAIT_SECONDS"]) == ("ABANDON", "1800"), function
    # And deploy.env remembers them, with where the app went and its roles
    remembered = _remembered(choices_here)
    assert remembered["TRUSTED_ACCOUNTS"] == "111122223333,210987654321" and remembered["BUCKET"] == BUCKET
    assert (remembered["REGION"], remembered["STACK"]) == (REGION, "efs-automount")
    assert remembered["APP_ROLE_ARNS"] == outputs["AppRoleArns"]

    # When make deploy runs again with one more setting only
    deploy.deploy({"ON_FAILURE": "CONTINUE"}, str(AWS_CLI), small_package)
    # Then that one changes and the remembered ones stay
    parameters = _parameters()
    assert (parameters["OnFailure"], parameters["TrustedAccounts"]) == ("CONTINUE", "111122223333,210987654321")
    assert _variables()["OnLaunch"]["ON_FAILURE"] == "CONTINUE"

    # When deploy.env is lost (another checkout) and only the bucket is given
    choices_here.unlink()
    deploy.deploy({"BUCKET": BUCKET}, str(AWS_CLI), small_package)
    # Then the stack keeps what it runs: no setting falls back to its default
    assert _parameters() == parameters


def test_a_package_built_for_other_mount_roots_is_refused(local_aws, small_package):
    with pytest.raises(deploy.DeployError, match="built for MOUNT_ROOTS=/mnt,/srv,/data,/efs,/media, not /data"):
        deploy.deploy({"BUCKET": BUCKET, "MOUNT_ROOTS": "/data"}, str(AWS_CLI), small_package)


# --- make deploy-members -------------------------------------------------------------------------------------------


def _organization() -> dict[str, Any]:
    """An organization whose management account is the app's (moto's own), with two member accounts in one unit and
    one account elsewhere."""
    organizations = boto3.client("organizations", region_name=REGION)
    organizations.create_organization(FeatureSet="ALL")
    root = organizations.list_roots()["Roots"][0]["Id"]
    unit = organizations.create_organizational_unit(ParentId=root, Name="workloads")["OrganizationalUnit"]["Id"]
    members = []
    for name in ("team-a", "team-b"):
        status = organizations.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
        organizations.move_account(AccountId=status["AccountId"], SourceParentId=root, DestinationParentId=unit)
        members.append(status["AccountId"])
    return {"unit": unit, "members": members}


def _app(settings: dict[str, str] | None = None, packaged: dict[str, Any] | None = None) -> dict[str, str]:
    """The app's stack as make deploy leaves it (created in moto from the packaged template)."""
    session = boto3.Session(region_name=REGION)
    deployed_stack.create_stack(session, packaged, settings or {})
    (stack,) = session.client("cloudformation").describe_stacks(StackName=deployed_stack.STACK_NAME)["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def test_make_deploy_members_rolls_out_the_member_template_with_the_apps_roles_and_external_id(packaged):
    organization = _organization()
    outputs = _app({"ExternalId": "shared-secret-1"}, packaged)
    # When the members are deployed to the unit, in two regions
    rolled = deploy.deploy_members({"OUS": organization["unit"], "REGIONS": "us-east-1,eu-west-1"})
    # Then the StackSet is service-managed, of this version, with the app's roles, region and external id
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    stack_set = cloudformation.describe_stack_set(StackSetName="efs-automount-member")["StackSet"]
    assert stack_set["PermissionModel"] == "SERVICE_MANAGED"
    assert stack_set["Description"].startswith(f"efs-automount {__version__} ")
    parameters = {p["ParameterKey"]: p["ParameterValue"] for p in stack_set["Parameters"]}
    assert parameters["AppRoleArns"] == outputs["AppRoleArns"]
    assert (parameters["ExternalId"], parameters["AppRegion"], parameters["RoleRegion"]) == (
        "shared-secret-1",
        REGION,
        REGION,
    )
    assert json.loads(stack_set["TemplateBody"])["Outputs"]["Version"]["Value"] == __version__
    # And its accounts are the unit's, never the app's own
    assert rolled["targets"] == {
        "OrganizationalUnitIds": [organization["unit"]],
        "Accounts": [OWN_ACCOUNT],
        "AccountFilterType": "DIFFERENCE",
    }
    instances = cloudformation.list_stack_instances(StackSetName="efs-automount-member")["Summaries"]
    assert sorted((i["Account"], i["Region"]) for i in instances) == sorted(
        (account, region) for account in organization["members"] for region in ("us-east-1", "eu-west-1")
    )
    # And a member account has the role the app assumes, trusting the app's roles with the app's external id
    iam = session_in_account(organization["members"][0]).client("iam")
    trust = iam.get_role(RoleName="efs-automount-member")["Role"]["AssumeRolePolicyDocument"]
    (statement,) = (json.loads(trust) if isinstance(trust, str) else trust)["Statement"]
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": "shared-secret-1"}}
    assert sorted(statement["Principal"]["AWS"]) == sorted(outputs["AppRoleArns"].split(","))
    # And the choices are remembered for the next rollout (and for uninstall)
    remembered = _remembered(deploy_choices.CHOICES_FILE)
    assert (remembered["OUS"], remembered["REGIONS"], remembered["ROLE_REGION"]) == (
        organization["unit"],
        "us-east-1,eu-west-1",
        "us-east-1",
    )

    # When it runs again with nothing given, it updates the StackSet in place
    deploy.deploy_members({})
    assert len(cloudformation.list_stack_instances(StackSetName="efs-automount-member")["Summaries"]) == 4


def test_deploy_members_refuses_what_would_break_the_members(packaged):
    organization = _organization()
    _app({}, packaged)
    with pytest.raises(deploy.DeployError, match="ACCOUNTS names the app's own account"):
        deploy.deploy_members({"OUS": organization["unit"], "ACCOUNTS": OWN_ACCOUNT, "REGIONS": REGION})
    with pytest.raises(deploy.DeployError, match="ROLE_REGION=eu-west-1 is not among REGIONS=us-east-1"):
        deploy.deploy_members({"OUS": organization["unit"], "REGIONS": REGION, "ROLE_REGION": "eu-west-1"})
    with pytest.raises(deploy.DeployError, match="EXTERNAL_ID: the members take the app's settings"):
        deploy.deploy_members({"OUS": organization["unit"], "REGIONS": REGION, "EXTERNAL_ID": "other"})
    with pytest.raises(deploy.DeployError, match="OUS is missing"):
        deploy.deploy_members({"REGIONS": REGION})


def test_members_are_not_deployed_beside_an_app_of_another_version(packaged, monkeypatch):
    organization = _organization()
    _app({}, packaged)
    monkeypatch.setattr(deploy, "__version__", "9.9.9")
    with pytest.raises(deploy.DeployError, match=f"runs efs-automount {__version__}, this checkout is 9.9.9"):
        deploy.deploy_members({"OUS": organization["unit"], "REGIONS": REGION})


# --- make uninstall ------------------------------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The AWS operations made, in order."""
    made: list[str] = []
    original = BaseClient._make_api_call

    def record(self: BaseClient, operation: str, parameters: dict[str, Any]) -> Any:
        made.append(operation)
        return original(self, operation, parameters)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    return made


def test_uninstall_refuses_while_a_group_would_abandon_every_host_then_removes_members_before_the_app(
    packaged, calls, monkeypatch, capsys
):
    monkeypatch.setattr(CloudFormationResponse, "delete_stack_instances", deployed_stack.delete_stack_instances_by_unit)
    organization = _organization()
    _app({}, packaged)
    deploy.deploy_members({"OUS": organization["unit"], "REGIONS": REGION})
    land = build_landscape(boto3.Session(region_name=REGION), with_file_system=False, with_document=False)
    # Given a group of the app's account with the app's hook, default result ABANDON
    calls.clear()
    with pytest.raises(deploy.DeployError, match="refusing to uninstall: 1 group"):
        deploy.uninstall({})
    out = capsys.readouterr().out
    # Then it names the group and the commands that make it safe, and removes nothing
    assert "BLOCKS account 123456789012, region us-east-1: group 'ecs-hosts', hook 'efs-automount'" in out
    assert "aws autoscaling delete-lifecycle-hook --region us-east-1 --auto-scaling-group-name ecs-hosts" in out
    assert "--default-result CONTINUE --heartbeat-timeout 900" in out
    assert "make hooks PROFILE=<member profile> REGIONS=us-east-1" in out
    assert not {"DeleteStackInstances", "DeleteStackSet", "DeleteStack"} & set(calls)

    # When the hook lets hosts in without the app (default result CONTINUE)
    boto3.client("autoscaling", region_name=REGION).put_lifecycle_hook(
        AutoScalingGroupName=land.group_name,
        LifecycleHookName=land.hook_name,
        LifecycleTransition=app_hooks.LAUNCHING,
        DefaultResult="CONTINUE",
        HeartbeatTimeout=900,
    )
    deploy.uninstall({})
    # Then the member stacks go, then the StackSet, then the app
    removals = [c for c in calls if c in ("DeleteStackInstances", "DeleteStackSet", "DeleteStack")]
    assert removals == ["DeleteStackInstances", "DeleteStackSet", "DeleteStack"]
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    assert not deploy.stack_set_exists(cloudformation, "efs-automount-member", {})
    assert [s["StackStatus"] for s in cloudformation.list_stacks()["StackSummaries"]] == ["DELETE_COMPLETE"]


def test_uninstall_goes_on_past_an_abandoning_hook_only_when_forced(packaged):
    _app({}, packaged)
    build_landscape(boto3.Session(region_name=REGION), with_file_system=False, with_document=False)
    deploy.uninstall({"FORCE": "1"})
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    assert [s["StackStatus"] for s in cloudformation.list_stacks()["StackSummaries"]] == ["DELETE_COMPLETE"]


# --- make stop / make start ----------------------------------------------------------------------------------------


def _app_switches() -> dict[str, Any]:
    session = boto3.Session(region_name=REGION)
    resources = session.client("cloudformation").list_stack_resources(StackName=deployed_stack.STACK_NAME)[
        "StackResourceSummaries"
    ]
    events, lambda_ = session.client("events"), session.client("lambda")
    by_type: dict[str, list[str]] = {}
    for resource in resources:
        by_type.setdefault(resource["ResourceType"], []).append(resource["PhysicalResourceId"])
    return {
        "rules": {events.describe_rule(Name=r)["State"] for r in by_type["AWS::Events::Rule"]},
        "mappings": {
            lambda_.get_event_source_mapping(UUID=m)["State"] for m in by_type["AWS::Lambda::EventSourceMapping"]
        },
        "held": sorted(
            f.rsplit("-", 1)[1]
            for f in by_type["AWS::Lambda::Function"]
            if lambda_.get_function_concurrency(FunctionName=f).get("ReservedConcurrentExecutions") == 0
        ),
    }


def _hook(land: Any) -> dict[str, Any]:
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    (hook,) = autoscaling.describe_lifecycle_hooks(AutoScalingGroupName=land.group_name)["LifecycleHooks"]
    return hook


def test_stop_lets_no_waiting_host_be_abandoned_and_start_puts_everything_back(packaged):
    _app({}, packaged)
    land = build_landscape(boto3.Session(region_name=REGION), with_file_system=False, with_document=False)
    (waiting,) = scale_out(land, 1)
    assert lifecycle_state(land, waiting) == "Pending:Wait"
    # When the app is stopped
    deploy.stop({})
    # Then it acts on nothing: its rules and retry mapping are off, its functions held (repair still runs by hand)
    switches = _app_switches()
    assert switches["rules"] == {"DISABLED"} and switches["mappings"] == {"Disabled"}
    assert "repair" not in switches["held"] and "on_launch" in switches["held"] and len(switches["held"]) == 7
    # And no host is left to be abandoned: the one waiting is in service, those to come will be at the timeout
    assert lifecycle_state(land, waiting) == "InService"
    assert _hook(land)["DefaultResult"] == "CONTINUE"

    # When it starts again
    deploy.start({})
    # Then it acts again, and the hook throws away what the app does not let in, as before the stop
    switches = _app_switches()
    assert switches["rules"] == {"ENABLED"} and switches["mappings"] == {"Enabled"} and switches["held"] == []
    assert (_hook(land)["DefaultResult"], _hook(land)["HeartbeatTimeout"]) == ("ABANDON", 900)
    assert not deploy.STOPPED_HOOKS.exists()


def test_stop_hooks_leaves_a_hook_that_already_lets_hosts_in_as_it_is(packaged):
    land = build_landscape(boto3.Session(region_name=REGION), with_file_system=False, with_document=False)
    autoscaling = boto3.client("autoscaling", region_name=REGION)
    autoscaling.put_lifecycle_hook(
        AutoScalingGroupName=land.group_name,
        LifecycleHookName=land.hook_name,
        LifecycleTransition=app_hooks.LAUNCHING,
        DefaultResult="CONTINUE",
        HeartbeatTimeout=300,
    )
    deploy.stop_hooks({})
    deploy.start_hooks({})
    assert (_hook(land)["DefaultResult"], _hook(land)["HeartbeatTimeout"]) == ("CONTINUE", 300)


def test_the_uninstall_runbooks_listing_names_the_services_on_revisions_the_app_registered(local_aws, bus):
    # docs/operations.md, Uninstall, step 1: the AWS CLI loop that finds what to move before the app goes.
    ecs = boto3.client("ecs", region_name=REGION)
    file_system = {"efs-automount:file-system-id": "fs-0123456789abcdef0"}

    def register(family: str, tags: dict[str, str]) -> str:
        containers = [{"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "memory": 256}]
        tag_list = [{"key": k, "value": v} for k, v in tags.items()]
        response = ecs.register_task_definition(family=family, containerDefinitions=containers, tags=tag_list)
        return response["taskDefinition"]["taskDefinitionArn"]

    # Given the app's rewrites of a host-mode and a native-mode revision, and a revision of someone's own
    host_source = register("uploads", file_system)
    native_source = register("jobs", {**file_system, "efs-automount:mode": "native"})
    own = register("own", {})
    deliver_outbox(bus)
    host_rewrite, native_rewrite = (f"{arn.rsplit(':', 1)[0]}:2" for arn in (host_source, native_source))
    # And services on each rewrite, on a source and on that own revision, in two clusters
    services = {
        ("web", "uploads"): host_rewrite,
        ("web", "uploads-old"): host_source,
        ("web", "own"): own,
        ("batch", "jobs"): native_rewrite,
    }
    for (cluster, service), revision in services.items():
        ecs.create_cluster(clusterName=cluster)
        ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=revision, desiredCount=0)

    # When the documented listing runs with the AWS CLI
    runbook = (ROOT / "docs" / "operations.md").read_text()
    (block,) = [b for b in re.findall(r"```bash\n(.*?)```", runbook, re.S) if "efs-automount:source" in b]
    env = dict(os.environ, PATH=f"{AWS_CLI.parent}{os.pathsep}{os.environ['PATH']}", AWS_DEFAULT_REGION=REGION)
    listed = subprocess.run(["bash", "-c", textwrap.dedent(block)], env=env, capture_output=True, text=True, check=True)

    # Then it names exactly the services on the app's rewrites, each with its kind and its source
    account = f"arn:aws:ecs:{REGION}:{OWN_ACCOUNT}"
    assert sorted(line.split("\t") for line in listed.stdout.splitlines()) == [
        [f"{account}:service/batch/jobs", native_rewrite, "native", f"rewrite of {native_source}"],
        [f"{account}:service/web/uploads", host_rewrite, "host", f"rewrite of {host_source}"],
    ]

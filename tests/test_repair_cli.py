"""`make repair`'s command line: the deployed function invoked, its report as a table or JSON, and the exit
code (0 nothing to do, 2 problems found or fixed, 1 errors)."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest

from app import app
from chalicelib.repair.request import RepairInputError
from simulation.eventbus import EventBus
from simulation.landscape import build_landscape
from tests.conftest import make_lambda
from tests.support.make import make_dry_run
from tests.support.repair import host_in_service_before_the_tag
from tools import repair as cli

# Repair runs with its real 900 s context.
pytestmark = pytest.mark.usefixtures("repair_context")


def _invoker(lambda_):
    def invoke(payload):
        try:
            return lambda_.invoke("repair", payload)
        except RepairInputError as exc:  # as Lambda reports a function error to the caller
            raise cli.RepairFailed(f"RepairInputError: {exc}") from exc

    return invoke


def _run(argv, invoke):
    lines: list[str] = []
    code = cli.main(argv, invoke=invoke, out=lines.append, remembered={})
    return code, "\n".join(lines)


def test_problems_found_print_as_a_table_and_exit_2_then_0_once_repaired(tmp_path):
    lambda_ = make_lambda(tmp_path)
    bus = EventBus(app, lambda_.invoke)
    land = build_landscape(boto3.Session(region_name="us-east-1"))
    never, _ = host_in_service_before_the_tag(land, bus)

    code, text = _run(["--cluster", land.cluster_name, "--dry-run"], _invoker(lambda_))

    assert code == 2
    assert text.startswith(f"dry run: nothing was changed of {land.cluster_arn}")
    (row,) = [line for line in text.splitlines() if line.startswith("host")]
    assert never in row and "ecs-hosts" in row and "! never mounted" in row
    assert any(line.strip().startswith("-> would send the mount command") for line in text.splitlines())
    assert "examined 2, with problems 1, actions 1, errors 0" in text  # the group (no problem) and the host

    code, text = _run(["--cluster", land.cluster_name, "--json"], _invoker(lambda_))
    assert code == 2
    assert json.loads(text)["instances"][0]["actions"][0].startswith("mount command sent: ")


def test_nothing_to_do_exits_0(tmp_path):
    lambda_ = make_lambda(tmp_path)
    land = build_landscape(boto3.Session(region_name="us-east-1"))

    code, text = _run(["--cluster", land.cluster_name], _invoker(lambda_))

    assert code == 0
    assert "nothing to repair" in text


def test_an_error_exits_1(tmp_path):
    lambda_ = make_lambda(tmp_path)

    code, text = _run(["--cluster", "no-such-cluster"], _invoker(lambda_))
    assert code == 1
    assert "! cluster no-such-cluster not found" in text

    code, text = _run(["--cluster", "web", "--account", "111122223333"], _invoker(lambda_))
    assert code == 1
    assert text.startswith("repair failed: RepairInputError: repair input `account`")


class FakeLambda:
    def __init__(self, payload, function_error=None):
        self.payload, self.function_error, self.requests = payload, function_error, []

    def invoke(self, **request):
        self.requests.append(request)
        response = {"Payload": io.BytesIO(json.dumps(self.payload).encode())}
        if self.function_error:
            response["FunctionError"] = self.function_error
        return response


@pytest.mark.parametrize("function_error", [None, "Unhandled"])
def test_the_deployed_function_is_invoked_by_its_stage_name_once(monkeypatch, function_error):
    payload = {"errorType": "RepairInputError", "errorMessage": "repair input `cluster`: is required"}
    if function_error is None:
        payload = {
            "cluster": None,
            "auto_scaling_group": "g",
            "account": "123456789012",
            "region": "eu-west-1",
            "dry_run": True,
            "instances": [],
            "lifecycle_actions": [],
            "task_definitions": [],
            "errors": [],
            "stopped": None,
            "summary": {"examined": 0, "with_problems": 0, "actions": 0, "errors": 0},
        }
    fake = FakeLambda(payload, function_error)
    made = {}

    def client(session, service, config=None):
        made.update(service=service, region=session.region_name, attempts=config.retries["total_max_attempts"])
        return fake

    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setattr(boto3.Session, "client", client)

    code, text = _run(["--auto-scaling-group", "g", "--dry-run", "--stage", "dev"], None)

    (request,) = fake.requests
    assert request["FunctionName"] == "efs-automount-dev-repair"
    assert json.loads(request["Payload"]) == {"dry_run": True, "auto_scaling_group": "g"}
    assert made == {"service": "lambda", "region": None, "attempts": 1}
    if function_error:
        assert (code, text) == (1, "repair failed: RepairInputError: repair input `cluster`: is required")
    else:
        assert code == 0


@pytest.mark.parametrize(
    ("value", "dry_run"),
    [("1", True), ("true", True), ("0", False), ("false", False), ("no", False), ("", False)],
)
def test_make_repair_dry_run_means_what_it_says(value, dry_run):
    # `make repair DRY_RUN=0` once ran a dry run: make only checked that the variable was set.
    printed = make_dry_run("repair", "CLUSTER=web", f"DRY_RUN={value}").stdout
    assert ("--dry-run" in printed) is dry_run


def test_make_repair_refuses_a_dry_run_value_it_does_not_know():
    done = make_dry_run("repair", "CLUSTER=web", "DRY_RUN=ture", check=False)
    assert done.returncode != 0
    assert "DRY_RUN=ture is neither" in done.stderr
    assert "tools.repair" not in done.stdout


# Review of issue 18, finding 9: `make repair` against either deployment finds the function that was deployed.


def _invoked_function(monkeypatch, argv, remembered=None):
    """The function `python -m tools.repair` would invoke with `argv` (and deploy.env's `remembered` choices), and
    its exit code (with a clean report)."""
    invoked, (code, text) = _invoked(monkeypatch, argv, remembered)
    return (invoked[0][0] if invoked else None), code, text


def _invoked(monkeypatch, argv, remembered=None):
    """Each (function, region, profile) `python -m tools.repair` invoked with `argv`, then its exit code and output."""
    invoked = []
    report = {
        "cluster": "web",
        "account": "123456789012",
        "region": "us-east-1",
        "dry_run": True,
        "instances": [],
        "groups": [],
        "lifecycle_actions": [],
        "task_definitions": [],
        "errors": [],
        "summary": {"examined": 0, "with_problems": 0, "actions": 0, "errors": 0},
    }

    def invoker(function_name, session):
        invoked.append((function_name, session.region_name, session.profile_name))
        return lambda payload: report

    monkeypatch.setattr(cli, "lambda_invoker", invoker)
    lines: list[str] = []
    code = cli.main(argv, out=lines.append, remembered=remembered or {})
    return invoked, (code, "\n".join(lines))


def test_a_packaged_deployment_is_repaired_through_its_stacks_function(monkeypatch, packaged):
    from simulation import deployed_stack

    # Given the packaged app deployed as stack efs-automount (`aws cloudformation deploy`, README)
    session = boto3.Session(region_name="us-east-1")
    deployed_stack.create_stack(session, packaged)

    # When make repair is told the stack
    function, code, text = _invoked_function(monkeypatch, ["--stack", deployed_stack.STACK_NAME, "--cluster", "web"])

    # Then it invokes the stack's repair function, which exists
    assert code == 0, text
    assert function == f"{deployed_stack.STACK_NAME}-repair"
    session.client("lambda").get_function(FunctionName=function)


def test_a_chalice_deployment_is_repaired_through_its_stages_function(monkeypatch):
    # Given `chalice deploy --stage prod`: its functions are named efs-automount-prod-<name>
    session = boto3.Session(region_name="us-east-1")
    role = session.client("iam").create_role(RoleName="efs-automount-prod", AssumeRolePolicyDocument="{}")["Role"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "")
    session.client("lambda").create_function(
        FunctionName="efs-automount-prod-repair",
        Runtime="python3.11",
        Role=role["Arn"],
        Handler="app.repair",
        Code={"ZipFile": code.getvalue()},
    )

    function, code, _ = _invoked_function(monkeypatch, ["--stage", "prod", "--cluster", "web"])

    assert code == 0
    session.client("lambda").get_function(FunctionName=function)
    # Or named outright
    assert _invoked_function(monkeypatch, ["--function-name", "mine", "--cluster", "web"])[0] == "mine"


def test_a_stack_without_the_repair_function_fails_naming_it(monkeypatch):
    function, code, text = _invoked_function(monkeypatch, ["--stack", "no-such-stack", "--cluster", "web"])

    assert (function, code) == (None, 1)
    assert text.startswith("repair failed: no function Repair in stack no-such-stack"), text


def test_make_repair_passes_the_stack_or_the_function_on():
    def printed(*variables):
        return make_dry_run("repair", "CLUSTER=web", *variables).stdout.split()

    assert "--stack efs-automount" in " ".join(printed("STACK=efs-automount"))
    assert "--function-name my-repair" in " ".join(printed("FUNCTION=my-repair"))
    assert "--stage dev" in " ".join(printed("STAGE=dev"))
    assert printed()[-3:] == ["tools.repair", "--cluster", "web"]


# Day one (issue 21): `make deploy` remembers in deploy.env where the app went; `make repair` finds it there.


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    """An AWS CLI config with the profile `apps` (its credentials moto's)."""
    config = tmp_path / "config"
    config.write_text("[profile apps]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


def test_repair_finds_the_app_where_make_deploy_remembers_it(monkeypatch, packaged, profiles):
    from simulation import deployed_stack

    # Given the packaged app deployed by make deploy in eu-west-1, with a profile, while the shell's region is another
    deployed_stack.create_stack(boto3.Session(region_name="eu-west-1"), packaged)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    remembered = {"STACK": deployed_stack.STACK_NAME, "REGION": "eu-west-1", "PROFILE": "apps"}

    # When make repair is told only the cluster
    invoked, (code, text) = _invoked(monkeypatch, ["--cluster", "web"], remembered)

    # Then it invokes the stack's repair function, in the app's region, with the app account's profile
    assert code == 0, text
    assert invoked == [(f"{deployed_stack.STACK_NAME}-repair", "eu-west-1", "apps")]


def test_what_make_repair_is_told_comes_before_what_deploy_env_remembers(monkeypatch, profiles):
    remembered = {"STACK": "efs-automount", "REGION": "eu-west-1", "PROFILE": "apps"}

    assert _invoked_function(monkeypatch, ["--function-name", "mine", "--cluster", "web"], remembered)[0] == "mine"
    assert _invoked_function(monkeypatch, ["--stage", "dev", "--cluster", "web"], remembered)[0] == (
        "efs-automount-dev-repair"
    )
    invoked, _ = _invoked(
        monkeypatch, ["--function-name", "mine", "--function-region", "eu-north-1", "--cluster", "web"], remembered
    )
    assert invoked[0][1] == "eu-north-1"


def test_a_deploy_env_is_read_from_the_checkout(tmp_path, monkeypatch):
    # (the same file make deploy writes: tools/deploy_choices.py)
    from tools import deploy_choices

    choices = tmp_path / "deploy.env"
    deploy_choices.write_remembered({"STACK": "apps-efs", "REGION": "eu-west-1", "PROFILE": "apps"}, choices)
    monkeypatch.setattr(deploy_choices, "CHOICES_FILE", choices)

    assert cli.remembered_deployment() == {"STACK": "apps-efs", "REGION": "eu-west-1", "PROFILE": "apps"}


def test_make_repair_passes_the_profile_on():
    assert make_dry_run("repair", "CLUSTER=web", "PROFILE=apps").stdout.split()[-2:] == ["--profile", "apps"]


def test_a_profile_that_does_not_exist_fails_naming_it(profiles):
    lines: list[str] = []

    code = cli.main(["--cluster", "web", "--profile", "nope"], out=lines.append, remembered={"STACK": "efs-automount"})

    assert (code, lines) == (1, ["repair failed: The config profile (nope) could not be found"])


def test_without_deploy_env_repair_looks_for_make_deploys_default_stack(monkeypatch):
    function, code, text = _invoked_function(monkeypatch, ["--cluster", "web"], remembered={})

    assert (function, code) == (None, 1)
    assert text.startswith("repair failed: no function Repair in stack efs-automount: "), text


def test_without_a_region_for_the_app_repair_says_where_one_comes_from(monkeypatch, tmp_path):
    # A fresh checkout (no deploy.env), a shell with no region and a config file without one
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    lines: list[str] = []

    code = cli.main(["--cluster", "web"], out=lines.append, remembered={})

    assert code == 1
    assert lines == [
        "repair failed: no region for the app: deploy.env names none (make deploy writes it there); "
        "set AWS_DEFAULT_REGION to the app's region"
    ]

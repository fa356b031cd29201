"""Every setting of the app is a parameter of the packaged stack (issue 21), with the app's own default and range:
what the stack accepts, the functions accept, and what reaches them is what was chosen."""

from __future__ import annotations

import ast
import inspect
import json
import re
from typing import Any

import boto3
import pytest
from chalice.app import CloudWatchEventConfig

from app import app
from chalicelib import __version__
from chalicelib.plumbing import settings as settings_module
from chalicelib.plumbing.events import command_status_pattern, launch_pattern
from chalicelib.plumbing.settings import Settings, SettingsError
from simulation import deployed_stack
from tools import build_deploy, stack_parameters
from tools.stack_parameters import PARAMETERS

# Set by the template from what it creates, not chosen.
WIRED = {"IDEMPOTENCY_TABLE", "RETRY_QUEUE_URL"}
# The function's own region, which Lambda sets.
LAMBDA_OWN = {"AWS_REGION"}


def _settings_read() -> set[str]:
    """Every environment variable the settings module reads (Settings.from_environ and the groups it is built
    from), from its code."""
    source = ast.parse(inspect.getsource(settings_module))
    constants = {n.value for n in ast.walk(source) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return {c for c in constants if re.fullmatch(r"[A-Z][A-Z_]{3,}", c)} - {"ABANDON", "CONTINUE"}


def test_every_setting_the_app_reads_is_a_stack_parameter_or_wired_by_the_template():
    read = _settings_read()
    assert {"TRUSTED_ACCOUNTS", "EXTERNAL_ID", "MOUNT_ROOTS", "SWEEP_REGIONS", "MAX_WAIT_SECONDS"} <= read
    parameters = {p.setting for p in PARAMETERS}
    assert read - LAMBDA_OWN - WIRED <= parameters
    assert "POWERTOOLS_LOG_LEVEL" in parameters


def _environ(parameter: stack_parameters.StackParameter, value: str) -> dict[str, str]:
    return {parameter.setting or parameter.variable: value}


@pytest.mark.parametrize("parameter", [p for p in PARAMETERS if p.minimum is not None], ids=lambda p: p.name)
def test_a_numbers_range_is_the_apps(parameter):
    # Given the stack's MinValue and MaxValue, the app takes both ends and refuses one step past either
    assert parameter.refusal(str(parameter.minimum)) is None and parameter.refusal(str(parameter.maximum)) is None
    Settings.from_environ(_environ(parameter, str(parameter.minimum)))
    Settings.from_environ(_environ(parameter, str(parameter.maximum)))
    for outside in (parameter.minimum - 1, parameter.maximum + 1):
        assert parameter.refusal(str(outside))
        with pytest.raises(SettingsError, match=parameter.variable):
            Settings.from_environ(_environ(parameter, str(outside)))
    # And the default is the app's own default
    assert parameter.default in (str(v) for v in vars(Settings()).values())


# For each parameter with a pattern: values both take, values both refuse, and values the template refuses though
# the app would read them (a list written loosely: the stack keeps one spelling). An empty value is the app's "unset".
EXAMPLES = {
    "HookName": (["efs-automount", "platform/efs_1"], ["a b", "x" * 256], [""]),
    "TrustedAccounts": (["", "111122223333", "111122223333,210987654321"], ["1111", "root"], ["111122223333,"]),
    "MemberRoleName": (["efs-automount-member", "a+=,.@_-"], ["a/b", "r" * 65], [""]),
    "ExternalId": (["", "shared-secret-1", "a:b/c@d"], ["x", "a b", "x" * 1225], []),
    "MountDocumentName": (["efs-automount-mount", "a.b_c"], ["ab", "a b", "d" * 129], [""]),
    "SweepRegions": (["", "eu-west-1", "eu-west-1,us-gov-west-1"], ["EU-west-1", "mars"], ["eu-west-1, us-east-1"]),
}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_pattern_takes_what_the_app_takes_and_refuses_what_it_refuses(name):
    parameter = stack_parameters.BY_NAME[name]
    good, bad, loose = EXAMPLES[name]
    for value in [*good, parameter.default]:
        assert parameter.refusal(value) is None, value
        Settings.from_environ(_environ(parameter, value))
    for value in bad:
        assert parameter.refusal(value), value
        with pytest.raises(SettingsError):
            Settings.from_environ(_environ(parameter, value))
    for value in loose:
        assert parameter.refusal(value), value


def test_every_parameter_of_the_package_is_one_of_the_table(packaged):
    assert set(packaged["Parameters"]) == {p.name for p in PARAMETERS}
    assert packaged["Parameters"]["MountRoots"]["AllowedValues"] == [packaged["Parameters"]["MountRoots"]["Default"]]
    for parameter in PARAMETERS:
        declared = packaged["Parameters"][parameter.name]
        assert declared["Default"] == (parameter.default or declared["Default"]), parameter.name


def test_mount_roots_take_only_the_roots_the_package_was_built_for():
    # Given a package built for other roots (make deploy MOUNT_ROOTS=/data,/srv)
    template = build_deploy.app_resources(("/data", "/srv"))
    parameter = template["Parameters"]["MountRoots"]
    # Then the stack takes exactly those roots, and the document it creates is built for them
    assert (parameter["AllowedValues"], parameter["Default"]) == (["/data,/srv"], "/data,/srv")
    script = "\n".join(
        template["Resources"]["MountDocument"]["Properties"]["Content"]["mainSteps"][0]["inputs"]["runCommand"]
    )
    assert "readonly MOUNT_ROOTS=/data,/srv\n" in script + "\n"
    assert (
        build_deploy.member_template(("/data", "/srv"))["Resources"]["MountDocument"]
        == (template["Resources"]["MountDocument"])
    )


def test_the_version_is_in_what_is_deployed(packaged):
    member = build_deploy.member_template()
    assert packaged["Outputs"]["Version"]["Value"] == member["Outputs"]["Version"]["Value"] == __version__
    assert f"efs-automount {__version__}" in packaged["Description"]
    assert f"efs-automount {__version__}" in member["Description"]
    assert build_deploy.mount_document()["description"].startswith(f"efs-automount {__version__}: ")
    for resource in packaged["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Properties"]["Description"].startswith(f"efs-automount {__version__}: ")


def test_the_changelogs_newest_release_is_the_version():
    changelog = (build_deploy.ROOT / "CHANGELOG.md").read_text()
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)
    assert releases and releases[0] == __version__
    assert changelog.index("## [Unreleased]") < changelog.index(f"## [{__version__}]")


# The stack as CloudFormation creates it, with every setting chosen (moto; the template translated offline).
CHOSEN = {
    "HookName": "platform-efs",
    "TrustedAccounts": "111122223333,210987654321",
    "MemberRoleName": "platform-efs-member",
    "ExternalId": "shared-secret-1",
    "OnFailure": "CONTINUE",
    "MountDocumentName": "platform-efs-mount",
    "CommandTimeoutSeconds": "900",
    "MountAttempts": "5",
    "MaxWaitSeconds": "3600",
    "SweepRegions": "eu-central-1,eu-west-1",
    "SweepMaxHosts": "100",
    "UpdateServices": "true",
    "DeregisterSource": "true",
    "LogLevel": "DEBUG",
}


def _stack(session: Any, stack_id: str) -> dict[str, Any]:
    cloudformation, lambda_, events = (session.client(s) for s in ("cloudformation", "lambda", "events"))
    resources = cloudformation.list_stack_resources(StackName=stack_id)["StackResourceSummaries"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    types = {r["LogicalResourceId"]: r["ResourceType"] for r in resources}
    functions = {
        logical: lambda_.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        for logical, name in physical.items()
        if types[logical] == "AWS::Lambda::Function"
    }
    rules = [
        json.loads(events.describe_rule(Name=name)["EventPattern"])
        for logical, name in physical.items()
        if types[logical] == "AWS::Events::Rule" and "EventPattern" in events.describe_rule(Name=name)
    ]
    return {"functions": functions, "rules": rules, "document": physical["MountDocument"]}


def test_the_chosen_settings_reach_every_function_and_the_rules_and_names_follow(packaged):
    session = boto3.Session(region_name="eu-west-1")
    created = _stack(session, deployed_stack.create_stack(session, packaged, CHOSEN))
    by_setting = {p.setting: CHOSEN[p.name] for p in PARAMETERS if p.setting and p.name in CHOSEN}
    for function, variables in created["functions"].items():
        for setting, value in by_setting.items():
            if (
                setting in ("UPDATE_SERVICES", "DEREGISTER_SOURCE")
                and function not in build_deploy.FOLLOW_UPS_FUNCTIONS
            ):
                assert setting not in variables, function
                continue
            assert str(variables[setting]) == value, (function, setting)
        # What the functions are given, the app parses as chosen
        settings = Settings.from_environ({k: str(v) for k, v in variables.items()})
        assert settings.external_id == "shared-secret-1" and settings.max_wait_seconds == 3600
    # The launch rule matches the chosen hook, the status rule the chosen document, which the stack created
    handled = [s.event_pattern for s in app.event_sources if isinstance(s, CloudWatchEventConfig)]
    assert launch_pattern("platform-efs") in created["rules"]
    assert command_status_pattern("platform-efs-mount") in created["rules"]
    assert len(created["rules"]) == len(handled)
    assert created["document"] == "platform-efs-mount"

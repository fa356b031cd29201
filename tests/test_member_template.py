"""The member template (deploy/member-account.json): what a trusted account forwards to the app, and that it deploys
as the documentation shows it, alone or as a StackSet across an organization."""

from __future__ import annotations

import json
import re
from typing import Any

from chalice.app import CloudWatchEventConfig

from app import app
from chalicelib.plumbing.events import command_status_pattern, launch_pattern
from chalicelib.plumbing.settings import DEFAULT_HOOK_NAME, DEFAULT_MOUNT_DOCUMENT
from tests.conftest import documentation
from tests.support.cloudformation import MEMBER_TEMPLATE, MEMBER_TEMPLATE_PATH, condition_holds, event_rules

# CloudFormation takes a template inline (`deploy`, `create-stack-set --template-body`) up to this size; beyond it,
# only from S3 (CloudFormation API reference, TemplateBody: "maximum length of 51,200 bytes").
TEMPLATE_BODY_LIMIT = 51_200


def _canonical(pattern: dict[str, Any]) -> str:
    return json.dumps(pattern, sort_keys=True)


def _resolved(value: Any, parameters: dict[str, str]) -> Any:
    """A template value with each {"Ref": parameter} replaced by the parameter's value."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        return {key: _resolved(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, parameters) for item in value]
    return value


def _defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: parameter.get("Default", "") for name, parameter in template["Parameters"].items()}


def test_every_eventbridge_handlers_pattern_is_forwarded_exactly_by_the_member_template():
    # Given the app's EventBridge handlers, each with the whole filter of its rule
    handled = sorted(
        _canonical(source.event_pattern) for source in app.event_sources if isinstance(source, CloudWatchEventConfig)
    )
    assert len(handled) == 4
    # Then a member account forwards exactly those events, one rule each: nothing the app acts on is left in the
    # member account (a task definition registered there is rewritten too), and nothing else leaves it.
    forwarded = sorted(
        _canonical(_resolved(rule["Properties"]["EventPattern"], _defaults(MEMBER_TEMPLATE)))
        for rule in event_rules(MEMBER_TEMPLATE).values()
    )
    assert forwarded == handled
    # The patterns hold the hook and document names, as the template's parameters (the app's settings) give them:
    # a member stack deployed with the app's names forwards the events of that hook and document.
    names = {**_defaults(MEMBER_TEMPLATE), "HookName": "platform-efs", "MountDocumentName": "platform-efs-mount"}
    forwarded = [_resolved(rule["Properties"]["EventPattern"], names) for rule in event_rules(MEMBER_TEMPLATE).values()]
    assert launch_pattern("platform-efs") in forwarded
    assert command_status_pattern("platform-efs-mount") in forwarded
    for parameter, default in (("HookName", DEFAULT_HOOK_NAME), ("MountDocumentName", DEFAULT_MOUNT_DOCUMENT)):
        assert MEMBER_TEMPLATE["Parameters"][parameter]["Default"] == default


def test_member_rules_deliver_to_the_apps_default_bus_through_a_role_of_their_own():
    # A bus that grants an organization (aws:PrincipalOrgID) accepts events from a rule of a member account only
    # when the rule's target names a role (EventBridge PutPermission: "must specify a RoleArn").
    rules = event_rules(MEMBER_TEMPLATE)
    assert rules
    for name, rule in rules.items():
        (target,) = rule["Properties"]["Targets"]
        bus = target["Arn"]["Fn::Sub"][0]
        assert bus == "arn:${AWS::Partition}:events:${AppRegion}:${AppAccountId}:event-bus/default", name
        assert target["RoleArn"] == {"Fn::GetAtt": ["ForwardRole", "Arn"]}, name
    role = MEMBER_TEMPLATE["Resources"]["ForwardRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    (policy,) = role["Policies"]
    (statement,) = policy["PolicyDocument"]["Statement"]
    # It may put events on the app's bus and nowhere else.
    assert statement["Action"] == "events:PutEvents"
    assert statement["Resource"] == next(iter(rules.values()))["Properties"]["Targets"][0]["Arn"]


def test_the_member_template_fits_an_inline_template_body():
    # The documentation's `aws cloudformation deploy` and `create-stack-set --template-body` send the file as it is.
    assert len(MEMBER_TEMPLATE_PATH.read_bytes()) <= TEMPLATE_BODY_LIMIT


def _created(template: dict[str, Any], values: dict[str, str]) -> set[str]:
    return {
        name
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or condition_holds(template, resource["Condition"], values)
    }


def test_one_stack_set_over_several_regions_creates_the_named_member_role_once_per_account():
    # Given a StackSet with the same parameters for every account, deployed to two regions of each account
    parameters = {p: d.get("Default", "") for p, d in MEMBER_TEMPLATE["Parameters"].items()}
    parameters.update(ExternalId="x", UpdateServices="true", RoleRegion="eu-west-1")
    here = _created(MEMBER_TEMPLATE, {**parameters, "AWS::Region": "eu-west-1"})
    elsewhere = _created(MEMBER_TEMPLATE, {**parameters, "AWS::Region": "us-east-1"})
    # Then IAM's one account-wide role (and its opt-in policies) is made in the chosen region only; the document and
    # the forwarding rules, which are regional, in both.
    role_resources = {"MemberRole", "UpdateServicesPolicy"}
    assert role_resources <= here
    assert not role_resources & elsewhere
    regional = {"MountDocument", "ForwardRole", *event_rules(MEMBER_TEMPLATE)}
    assert regional <= here and regional <= elsewhere
    # And a single stack (no RoleRegion) makes the role where it is deployed, as before.
    parameters["RoleRegion"] = ""
    assert role_resources <= _created(MEMBER_TEMPLATE, {**parameters, "AWS::Region": "us-east-1"})


def test_no_member_template_parameter_differs_between_accounts():
    # A service-managed StackSet deploys one parameter set to every account of the chosen units: every parameter
    # is a property of the app (its roles, region, settings and names), none of one member account.
    assert set(MEMBER_TEMPLATE["Parameters"]) == {
        "AppRoleArns",
        "AppRegion",
        "ExternalId",
        "UpdateServices",
        "DeregisterSource",
        "HookName",
        "MountDocumentName",
        "MemberRoleName",
        "RoleRegion",
    }


def _documented_commands(program: str) -> list[str]:
    """Every command of the bash blocks of the README and docs/ that starts with `program`, its continuation lines
    joined (a block indented under a list item counts as well)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", documentation(), re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split("  #")[0].strip()
            if command.startswith(program):
                commands.append(" ".join(command.split()))
    return commands


def test_the_documented_cloudformation_commands_can_send_their_templates():
    # A template over 51,200 bytes goes through S3 (--s3-bucket / --template-url); the member template goes inline,
    # and names its role (CAPABILITY_NAMED_IAM).
    commands = _documented_commands("aws cloudformation deploy") + _documented_commands(
        "aws cloudformation create-stack-set"
    )
    member = [c for c in commands if "deploy/member-account.json" in c]
    assert len(member) == 2, commands
    for command in commands:
        if command not in member:
            assert "--s3-bucket" in command or "--template-url" in command, command
    for command in member:
        assert "CAPABILITY_NAMED_IAM" in command, command
    (stack_set,) = [c for c in commands if "create-stack-set" in c]
    assert "--permission-model SERVICE_MANAGED" in stack_set
    assert "--auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false" in stack_set
    (instances,) = _documented_commands("aws cloudformation create-stack-instances")
    assert "--deployment-targets OrganizationalUnitIds=" in instances and "--regions " in instances


# Review of issue 18, finding 7: a member stack in any region forwards to the app's bus in the app's region.


def test_member_stacks_in_every_region_forward_to_the_apps_bus_in_the_apps_region():
    import boto3

    app_roles = "arn:aws:iam::111122223333:role/efs-automount-on_launch,arn:aws:iam::111122223333:role/x"
    parameters = {"AppRoleArns": app_roles, "AppRegion": "eu-west-1", "RoleRegion": "eu-west-1"}
    # Given one StackSet over two regions of a member account (the documentation's example)
    targets = {}
    for region in ("eu-west-1", "eu-central-1"):
        session = boto3.Session(region_name=region)
        session.client("cloudformation").create_stack(
            StackName="efs-automount-member",
            TemplateBody=MEMBER_TEMPLATE_PATH.read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        events = session.client("events")
        targets[region] = {
            target["Arn"]
            for rule in events.list_rules()["Rules"]
            for target in events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        }
    # Then every rule of both forwards to the one bus the app reads, its account's default bus in its region
    app_bus = "arn:aws:events:eu-west-1:111122223333:event-bus/default"
    assert targets == {"eu-west-1": {app_bus}, "eu-central-1": {app_bus}}

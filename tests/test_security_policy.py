"""What the app's IAM can be made to do, read from what is deployed: `.chalice/policy.json` (`chalice deploy`),
the packaged template (`make package`) and the member template (deploy/member-account.json).

- No account wildcard in a `SendCommand` document resource: a document of our name shared from another account
  and called by its ARN would otherwise run as root on every host.
- No trust of a whole account: only the app's own execution roles may assume the member role.
- No opt-in permission granted to a deployment that has not opted in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, documentation
from tools.build_deploy import retry_senders

POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
MEMBER = json.loads((ROOT / "deploy" / "member-account.json").read_text())
# Each opt-in action, and the template parameter (= the app setting) that must be on for it to be granted.
OPT_IN = {"ecs:UpdateService": "UpdateServices", "ecs:DeregisterTaskDefinition": "DeregisterSource"}
# The caller's own account as each deployment writes it: a template's ARN names ${AWS::AccountId}, a stage policy
# rendered for an account names it; the static policy.json writes the ARN's account `*` and pins it with the condition
# aws:ResourceAccount = ${aws:PrincipalAccount} (IAM documents no policy variable before an ARN's resource part).
STAGE_ACCOUNT = "123456789012"
OWN_ACCOUNT = {"${AWS::AccountId}", STAGE_ACCOUNT}
PIN = {"aws:ResourceAccount": "${aws:PrincipalAccount}"}


def _pinned(statement: dict[str, Any]) -> bool:
    return (
        statement.get("Condition", {}).get("StringEquals", {}).get("aws:ResourceAccount") == PIN["aws:ResourceAccount"]
    )


def _account(statement: dict[str, Any], resource: Any) -> str:
    """The account a resource of the statement may be in: "${AWS::AccountId}" for the caller's own, however written."""
    account = _arn_fields(resource)[4]
    return "${AWS::AccountId}" if account == "*" and _pinned(statement) else account


def _condition(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement's condition besides the own-account pin."""
    condition = json.loads(json.dumps(statement.get("Condition", {})))
    if _pinned(statement):
        del condition["StringEquals"]["aws:ResourceAccount"]
        if not condition["StringEquals"]:
            del condition["StringEquals"]
    return condition


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str:
    """An ARN as written: a plain string, or the string of an Fn::Sub."""
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    assert isinstance(value, str), f"cannot read {value!r}"
    return value


def _arn_fields(arn: Any) -> list[str]:
    """The colon-separated fields of an ARN, keeping a ${variable} (which may hold a colon) whole."""
    protected = re.sub(r"\$\{[^}]*\}", lambda m: m.group(0).replace(":", "\0"), _text(arn))
    return [field.replace("\0", ":") for field in protected.split(":")]


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(resource name, its CloudFormation condition or None, statement) of every permission policy."""
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [properties["PolicyDocument"]]
        for document in documents:
            for statement in document["Statement"]:
                yield name, resource.get("Condition"), statement


def _deployed_policies(packaged: dict[str, Any]) -> dict[str, list[tuple[str, str | None, dict[str, Any]]]]:
    from tools.build_deploy import stage_policy

    opted_in = stage_policy(["UPDATE_SERVICES", "DEREGISTER_SOURCE"], STAGE_ACCOUNT)["Statement"]
    return {
        ".chalice/policy.json": [("policy.json", None, s) for s in POLICY["Statement"]],
        "stage-policy --account": [("policy-<stage>.json", None, s) for s in opted_in],
        "packaged template": list(_statements(packaged)),
        "member template": list(_statements(MEMBER)),
    }


def test_mount_commands_run_only_our_own_accounts_document(packaged):
    for where, statements in _deployed_policies(packaged).items():
        documents = [
            (statement, _text(resource))
            for _, _, statement in statements
            if "ssm:SendCommand" in _listed(statement["Action"])
            for resource in _listed(statement["Resource"])
            if ":document/" in _text(resource)
        ]
        assert documents, where
        for statement, arn in documents:
            partition, account = _arn_fields(arn)[1], _account(statement, arn)
            assert account in OWN_ACCOUNT, f"{where}: {arn} lets a document shared from another account run"
            if where not in (".chalice/policy.json", "stage-policy --account"):
                assert partition == "${AWS::Partition}", f"{where}: {arn}"


def test_mount_commands_reach_only_auto_scaling_group_members(packaged):
    for where, statements in _deployed_policies(packaged).items():
        for _, _, statement in statements:
            if "ssm:SendCommand" not in _listed(statement["Action"]):
                continue
            instances = [r for r in _listed(statement["Resource"]) if ":document/" not in _text(r)]
            if instances:
                assert [_arn_fields(r)[5] for r in instances] == ["instance/*"], where
                assert all(_account(statement, r) in OWN_ACCOUNT for r in instances), where
                condition = _condition(statement)
                assert condition == {"Null": {"ssm:resourceTag/aws:autoscaling:groupName": "false"}}, where


def _trusted_principals(template: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for statement in resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            for principal in _listed(statement["Principal"].get("AWS", [])):
                yield name, principal


def test_no_role_trusts_a_whole_account(packaged):
    for template in (packaged, MEMBER):
        for name, principal in _trusted_principals(template):
            if isinstance(principal, dict) and "Ref" in principal:
                parameter = template["Parameters"][principal["Ref"]]
                assert parameter["Type"] == "CommaDelimitedList"
                pattern = parameter["AllowedPattern"]
                assert re.fullmatch(pattern, "arn:aws:iam::123456789012:role/efs-automount-prod-on_launch")
                for account in ("arn:aws:iam::123456789012:root", "123456789012", "*"):
                    assert not re.fullmatch(pattern, account), f"{name} may be made to trust {account}"
            else:
                text = _text(principal)
                assert ":role/" in text and not text.endswith(":root"), f"{name} trusts {text}"


def test_member_role_trusts_the_app_roles_with_the_external_id():
    (statement,) = MEMBER["Resources"]["MemberRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Ref": "AppRoleArns"}}
    assert statement["Condition"]["Fn::If"][0] == "HasExternalId"
    assert statement["Condition"]["Fn::If"][1] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}


def test_the_app_template_names_the_roles_the_member_template_must_trust(packaged):
    roles = [name for name, r in packaged["Resources"].items() if r["Type"] == "AWS::IAM::Role"]
    joined = packaged["Outputs"]["AppRoleArns"]["Value"]["Fn::Join"]
    assert joined[0] == ","
    assert sorted(json.dumps(arn) for arn in joined[1]) == sorted(
        json.dumps({"Fn::GetAtt": [role, "Arn"]}) for role in roles
    )


def _is_on(template: dict[str, Any], condition: str | None, parameter: str) -> bool:
    """True when the CloudFormation condition holds exactly when the parameter is "true"."""
    if condition is None:
        return False
    definition = template["Conditions"][condition]
    if definition == {"Fn::Equals": [{"Ref": parameter}, "true"]}:
        return True
    # Or that and more (the member template's: and only in the region that creates the member role).
    return any(_is_on(template, c.get("Condition"), parameter) for c in definition.get("Fn::And", []))


def test_opt_in_permissions_are_granted_only_where_the_feature_is_on(packaged):
    for where, statements in _deployed_policies(packaged).items():
        if where == "stage-policy --account":
            continue  # rendered for a stage that opted in to both (test_a_chalice_deploy_stage_policy_...)
        template = {".chalice/policy.json": {}, "packaged template": packaged, "member template": MEMBER}[where]
        for name, condition, statement in statements:
            for action in set(_listed(statement["Action"])) & set(OPT_IN):
                assert _is_on(template, condition, OPT_IN[action]), f"{where}: {name} grants {action} to everyone"
    granted = {a for _, _, s in _statements(packaged) for a in _listed(s["Action"])}
    assert set(OPT_IN) <= granted, "the packaged template cannot turn the follow-ups on"


def test_opt_in_settings_follow_the_same_parameters_as_their_permissions(packaged):
    variables = packaged["Resources"]["OnTaskDefinition"]["Properties"]["Environment"]["Variables"]
    assert variables["UPDATE_SERVICES"] == {"Ref": "UpdateServices"}
    assert variables["DEREGISTER_SOURCE"] == {"Ref": "DeregisterSource"}
    for template in (packaged, MEMBER):
        for parameter in OPT_IN.values():
            assert template["Parameters"][parameter] == {
                "Type": "String",
                "AllowedValues": ["true", "false"],
                "Default": "false",
                "Description": template["Parameters"][parameter]["Description"],
            }


def test_passed_roles_are_our_own_accounts_and_only_to_ecs_tasks(packaged):
    for where, statements in _deployed_policies(packaged).items():
        passing = [s for _, _, s in statements if "iam:PassRole" in _listed(s["Action"])]
        assert passing, where
        for statement in passing:
            for resource in _listed(statement["Resource"]):
                assert _account(statement, resource) in OWN_ACCOUNT, f"{where}: {resource}"
            assert _condition(statement) == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_a_chalice_deploy_stage_policy_grants_only_the_opt_ins_it_names():
    from tools.build_deploy import stage_policy

    def actions(settings: list[str]) -> set[str]:
        return {a for s in stage_policy(settings)["Statement"] for a in _listed(s["Action"])}

    assert actions([]) == {a for s in POLICY["Statement"] for a in _listed(s["Action"])}
    assert "ecs:UpdateService" in actions(["UPDATE_SERVICES"])
    assert "ecs:DeregisterTaskDefinition" not in actions(["UPDATE_SERVICES"])
    assert "ecs:DeregisterTaskDefinition" in actions(["DEREGISTER_SOURCE"])
    with pytest.raises(SystemExit):
        stage_policy(["UPDATE_EVERYTHING"])


# Review of issue 9: the retry queue, account wildcards, task definition tagging and the functions' logs.
# The functions that schedule retries, and so the only principals that may send to the retry queue (read from the
# code: tests/test_retry_senders.py).
RETRY_SENDERS = retry_senders()


def _queue_policies(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The statements of every AWS::SQS::QueuePolicy, by the logical id of each queue it applies to."""
    policies: dict[str, list[dict[str, Any]]] = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::SQS::QueuePolicy":
            for queue in resource["Properties"]["Queues"]:
                policies.setdefault(queue["Ref"], []).extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return policies


def test_only_the_apps_functions_may_send_to_the_retry_queue(packaged):
    # Given any principal of the app's account with sqs:SendMessage on efs-automount-retries
    # Then the queue's own policy denies it, unless it is one of the app's functions that schedule retries.
    (statement,) = _queue_policies(packaged)["RetryQueue"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == {"Fn::GetAtt": ["RetryQueue", "Arn"]}
    senders = statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    assert senders == [{"Fn::GetAtt": [f"{function}Role", "Arn"]} for function in RETRY_SENDERS]
    # Exactly the functions that learn the queue's URL, so none of them is denied by mistake.
    resources = packaged["Resources"]
    learn_url = [name for name in resources if "RETRY_QUEUE_URL" in _variables(resources[name])]
    assert sorted(learn_url) == sorted(RETRY_SENDERS)


def _variables(resource: dict[str, Any]) -> dict[str, Any]:
    return resource.get("Properties", {}).get("Environment", {}).get("Variables", {})


def test_the_queue_policy_denies_sending_only(packaged):
    # Admins keep managing the queue (attributes, policy, purge, redrive out of the dead-letter queue): only
    # sending is denied, so the policy cannot lock the account out of its own queue.
    assert _queue_policies(packaged)
    for statements in _queue_policies(packaged).values():
        for statement in statements:
            assert statement["Effect"] == "Deny"
            assert _listed(statement["Action"]) == ["sqs:SendMessage"]


def test_a_chalice_deploy_queue_policy_names_the_stage_roles():
    from tools.build_deploy import retry_queue_attributes

    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/efs-automount-retries"
    attributes = retry_queue_attributes(url, "prod")
    assert list(attributes) == ["Policy"]
    policy = json.loads(attributes["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == "arn:aws:sqs:eu-west-1:123456789012:efs-automount-retries"
    assert statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == [
        f"arn:aws:iam::123456789012:role/efs-automount-prod-{name}"
        for name in ("on_launch", "on_command_status", "on_container_instance", "sweeper", "on_retry", "repair")
    ]
    china = retry_queue_attributes("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/efs-automount-retries", "dev")
    assert json.loads(china["Policy"])["Statement"][0]["Resource"].startswith("arn:aws-cn:sqs:cn-north-1:")
    with pytest.raises(SystemExit):
        retry_queue_attributes("https://example.com/123456789012/efs-automount-retries", "prod")


def test_no_write_reaches_another_accounts_resources(packaged):
    # A resource ARN of a write names the caller's own account, never `*`: the member role writes in its own
    # account, the app's roles in theirs. Reads without resource-level permissions stay `*`, and assuming the
    # member role is meant to reach other accounts, and so is forwarding a member's events to the app's bus.
    crosses_accounts = {"sts:AssumeRole", "events:PutEvents"}
    for where, statements in _deployed_policies(packaged).items():
        for name, _, statement in statements:
            if set(_listed(statement["Action"])) <= crosses_accounts:
                continue
            for resource in _listed(statement["Resource"]):
                if _text(resource) == "*":
                    continue
                account = _account(statement, resource)
                assert account in OWN_ACCOUNT, f"{where}: {name} {statement.get('Sid')} reaches account {account!r}"


def test_task_definitions_are_registered_and_tagged_only_in_the_own_account(packaged):
    for where, statements in _deployed_policies(packaged).items():
        for name, _, statement in statements:
            actions = set(_listed(statement["Action"]))
            if actions & {"ecs:RegisterTaskDefinition", "ecs:TagResource"}:
                for resource in _listed(statement["Resource"]):
                    fields = _arn_fields(resource)
                    assert fields[2] == "ecs" and _account(statement, resource) in OWN_ACCOUNT, (
                        f"{where}: {name} {resource}"
                    )
                    assert fields[5] == "task-definition/*", f"{where}: {name} {resource}"
            if "ecs:TagResource" in actions:
                # Tags only as part of the registration: never tagging (or re-tagging) an existing resource.
                assert actions == {"ecs:TagResource"}, where
                assert _condition(statement) == {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}


def test_policy_json_writes_only_to_the_chalice_functions_log_groups():
    (statement,) = [s for s in POLICY["Statement"] if any(a.startswith("logs:") for a in _listed(s["Action"]))]
    assert statement["Resource"] == "arn:*:logs:*:*:log-group:/aws/lambda/efs-automount-*"
    assert statement["Condition"] == {"StringEquals": PIN}


def test_each_packaged_function_writes_only_its_own_log_group(packaged):
    resources = packaged["Resources"]
    functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    assert functions
    for function in functions:
        name = resources[function]["Properties"]["FunctionName"]
        assert name["Fn::Sub"].startswith("${AWS::StackName}-"), function
        role = resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        logs = [
            statement
            for _, _, statement in _statements({"Resources": {role: resources[role]}})
            if any(a.startswith("logs:") for a in _listed(statement["Action"]))
        ]
        (statement,) = logs
        group = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/" + name["Fn::Sub"]
        assert [_text(r) for r in statement["Resource"]] == [group, group + ":*"], function


def test_the_documented_bus_policy_lets_members_forward_exactly_what_the_app_acts_on():
    # A source or detail-type missing from the documented condition would silently drop that kind of event.
    from chalicelib.plumbing.events import (
        command_status_pattern,
        container_instance_pattern,
        launch_pattern,
        task_definition_registered_pattern,
    )

    block = re.search(r"```json\n(\{\n  \"Sid\": \"efs-automount-members\".*?)```", documentation(), re.S)
    assert block, "docs: the member bus policy example is gone"
    condition = json.loads(block.group(1))["Condition"]
    patterns = [launch_pattern("h"), command_status_pattern("d"), container_instance_pattern()]
    patterns.append(task_definition_registered_pattern())
    sources = {s for p in patterns for s in p["source"]}
    detail_types = {t for p in patterns for t in p["detail-type"]}
    assert set(condition["ForAllValues:StringEquals"]["events:source"]) == sources
    assert set(condition["StringEquals"]["events:detail-type"]) == detail_types


def test_repairs_role_can_make_every_read_repair_makes_and_update_services_only_where_opted_in(packaged):
    resources = packaged["Resources"]
    # Repair's own reads, granted unconditionally (a dry run needs them whatever the settings)
    (policy,) = resources["RepairRole"]["Properties"]["Policies"]
    granted = {a for s in policy["PolicyDocument"]["Statement"] for a in _listed(s["Action"])}
    repair_reads = {"ecs:DescribeClusters", "ecs:DescribeCapacityProviders", "ecs:ListServices", "ecs:DescribeServices"}
    assert repair_reads <= granted
    assert not granted & set(OPT_IN)
    # It runs the rewrite flow and moves services: the same settings and opt-in policies as on_task_definition
    for parameter in OPT_IN.values():
        attached = resources[f"{parameter}Policy"]
        assert {"Ref": "RepairRole"} in attached["Properties"]["Roles"]
        assert _is_on(packaged, attached["Condition"], parameter)
    variables = resources["Repair"]["Properties"]["Environment"]["Variables"]
    assert variables["UPDATE_SERVICES"] == {"Ref": "UpdateServices"}
    assert variables["DEREGISTER_SOURCE"] == {"Ref": "DeregisterSource"}
    assert variables["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    # A member account must trust repair's role, or repair cannot reach it
    assert {"Fn::GetAtt": ["RepairRole", "Arn"]} in packaged["Outputs"]["AppRoleArns"]["Value"]["Fn::Join"][1]


# Review of issue 18, finding 8: IAM documents policy variables in an ARN only in its resource part, after the fifth
# colon (IAM User Guide, "IAM JSON policy elements: Resource" and "IAM policy elements: Variables and tags").


def _variables_before_the_resource_part(statements: list[dict[str, Any]]) -> list[str]:
    found = []
    for statement in statements:
        for resource in _listed(statement["Resource"]):
            text = _text(resource)
            if text != "*" and any("${" in field for field in _arn_fields(text)[:5]):
                found.append(f"{statement['Sid']}: {text}")
    return found


def test_no_static_policy_puts_a_policy_variable_before_an_arns_resource_part():
    from tools.build_deploy import stage_policy

    opt_in = json.loads((ROOT / ".chalice" / "policy-opt-in.json").read_text())["Statement"]
    for name, statements in {
        ".chalice/policy.json": POLICY["Statement"],
        ".chalice/policy-opt-in.json": opt_in,
        "stage-policy UPDATE_SERVICES DEREGISTER_SOURCE": stage_policy(["UPDATE_SERVICES", "DEREGISTER_SOURCE"])[
            "Statement"
        ],
    }.items():
        assert _variables_before_the_resource_part(statements) == [], name
    # Where the account is known, it is written into the ARN and no condition key is needed
    rendered = stage_policy(["UPDATE_SERVICES", "DEREGISTER_SOURCE"], STAGE_ACCOUNT)["Statement"]
    assert not [s["Sid"] for s in rendered if _pinned(s)]
    for template in (MEMBER,):
        assert not [s.get("Sid") for _, _, s in _statements(template) if _pinned(s)]
    with pytest.raises(SystemExit):
        stage_policy([], "12345")


def test_the_static_policy_pins_exactly_the_statements_the_templates_give_an_account():
    # A statement that names the caller's own account in a template is the one policy.json pins; every other
    # statement's resources are `*` or meant to cross accounts (assuming member roles).
    from tools.build_deploy import template_policy

    for policy in (POLICY, json.loads((ROOT / ".chalice" / "policy-opt-in.json").read_text())):
        for statement in policy["Statement"]:
            (rendered,) = template_policy([statement])["Statement"]
            accounts = {_arn_fields(r)[4] for r in _listed(rendered["Resource"]) if _text(r) != "*"}
            assert _pinned(statement) == (accounts == {"${AWS::AccountId}"}), statement["Sid"]


def test_no_deployed_send_command_statement_carries_a_global_condition_key(packaged):
    # The Run Command guide: a policy that puts a global condition key (aws:...) on SendCommand must also allow it with
    # aws:ViaAWSService = true (https://docs.aws.amazon.com/systems-manager/latest/userguide/run-command-setting-up.html),
    # a second way in. What is deployed (the templates, and a chalice deploy's stage policy) pins by ARN instead;
    # .chalice/policy.json as it is still pins with aws:ResourceAccount and is never deployed as it is.
    deployed = {k: v for k, v in _deployed_policies(packaged).items() if k != ".chalice/policy.json"}
    keyed = [
        (where, statement["Sid"], key)
        for where, statements in deployed.items()
        for _, _, statement in statements
        if "ssm:SendCommand" in _listed(statement["Action"])
        for operator in statement.get("Condition", {}).values()
        for key in operator
        if key.lower().startswith("aws:")
    ]
    assert keyed == []
    assert sum("ssm:SendCommand" in _listed(s["Action"]) for _, _, s in deployed["stage-policy --account"]) == 2

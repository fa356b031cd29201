"""One command to deploy, one to remove: `make deploy`, `make deploy-members`, `make uninstall`, and the emergency
`make stop` / `make start` (with `make hooks`, `make stop-hooks` and `make start-hooks` for any account's groups).

    python -m tools.deploy deploy [VARIABLE=value ...] --aws .venv-deploy/bin/aws

The app stack is packaged and deployed with the AWS CLI (`aws cloudformation package` and `deploy`), every setting a
stack parameter (tools/stack_parameters.py); the member template goes out as a service-managed StackSet. The choices
are remembered in deploy.env (tools/deploy_choices.py), so that `make deploy` alone deploys the same app again.
Everything runs with your own AWS credentials (PROFILE=, MEMBERS_PROFILE= name CLI profiles).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chalicelib import __version__
from chalicelib.plumbing.settings import Settings, SettingsError
from tools import app_hooks, build_deploy, deploy_choices, stack_parameters
from tools.compile_package import compile_package
from tools.deploy_choices import ChoiceError

ROOT = deploy_choices.ROOT
BUILD = ROOT / "build" / "deploy"
STOPPED_HOOKS = ROOT / "deploy-stopped.json"
# `chalice package` only names the queue on_retry subscribes to from this URL (the Makefile's package target does
# the same); the template gives the functions the real one.
PACKAGE_QUEUE_URL = "https://sqs.{region}.amazonaws.com/000000000000/" + build_deploy.RETRY_QUEUE_NAME
# What the app stack needs: its roles (CAPABILITY_IAM) and its SAM transform (CAPABILITY_AUTO_EXPAND).
APP_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
# The member template names its role (MemberRoleName).
MEMBER_CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
YES = ("1", "true", "yes")
# Seconds between two looks at a StackSet operation (tests make it 0).
POLL_SECONDS = 10.0


class DeployError(Exception):
    """The command cannot go on; the message says why and what to do."""


def say(text: str = "") -> None:
    print(text, flush=True)


# --- sessions and reads ------------------------------------------------------------------------------------------


def session_for(profile: str, region: str | None = None) -> Any:
    import boto3

    return boto3.Session(profile_name=profile or None, region_name=region or None)


def account_of(session: Any) -> str:
    return str(session.client("sts").get_caller_identity()["Account"])


def read_stack(session: Any, stack: str) -> dict[str, Any] | None:
    """The stack as DescribeStacks reports it, or None when there is none of that name."""
    from botocore.exceptions import ClientError

    try:
        (found,) = session.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in exc.response["Error"].get("Message", ""):
            return None
        raise
    return found


def stack_parameters_of(stack: Mapping[str, Any] | None) -> dict[str, str]:
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters", [])}


def stack_outputs_of(stack: Mapping[str, Any] | None) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs", [])}


def resolve_places(given: Mapping[str, str], required: tuple[str, ...]) -> dict[str, str]:
    """Where things go, from the command line, deploy.env and the defaults; REGION falls back to the CLI's own.
    Fails naming every missing or malformed one before any AWS call."""
    choices = deploy_choices.resolve(given, deploy_choices.read_remembered(), {}, deploy_choices.place_defaults())
    if not choices["REGION"]:
        choices["REGION"] = session_for(choices["PROFILE"]).region_name or ""
    problems = deploy_choices.place_refusals(choices, required)
    if problems:
        raise DeployError("\n".join(problems))
    return choices


def resolve_settings(given: Mapping[str, str], places: dict[str, str], deployed: Mapping[str, str]) -> dict[str, str]:
    """Every setting, from the command line, deploy.env, the deployed stack, the default; checked as the stack and the
    functions would check them, MOUNT_ROOTS written as the app reads it."""
    defaults = deploy_choices.setting_defaults(build_deploy.built_roots())
    settings = deploy_choices.resolve(given, deploy_choices.read_remembered(), deployed, defaults)
    choices = {**places, **{v: settings[v] for v in deploy_choices.SETTINGS}}
    try:
        roots = Settings.from_environ({"MOUNT_ROOTS": choices[stack_parameters.MOUNT_ROOTS]}).mount_roots
    except SettingsError as exc:
        raise DeployError(str(exc)) from exc
    choices[stack_parameters.MOUNT_ROOTS] = ",".join(roots)
    problems = stack_parameters.refusals({v: choices[v] for v in deploy_choices.SETTINGS})
    if problems:
        raise DeployError("\n".join(problems))
    return choices


def remember(choices: Mapping[str, str]) -> None:
    deploy_choices.write_remembered({k: v for k, v in choices.items() if k not in deploy_choices.ONCE})


# --- make deploy -------------------------------------------------------------------------------------------------


def stage_app(roots: tuple[str, ...], out: Path) -> Path:
    """A copy of the app (what `chalice package` reads) whose deploy/ and document digest are built for `roots`: the
    tree's own deploy/ is built for .chalice/config.json's roots, and no file of the tree changes."""
    app = out / "app"
    shutil.rmtree(app, ignore_errors=True)
    (app / ".chalice").mkdir(parents=True)
    for name in ("app.py", "requirements.txt"):
        shutil.copy2(ROOT / name, app / name)
    shutil.copytree(ROOT / "chalicelib", app / "chalicelib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("policy.json", "policy-opt-in.json"):
        shutil.copy2(ROOT / ".chalice" / name, app / ".chalice" / name)
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["environment_variables"][stack_parameters.MOUNT_ROOTS] = ",".join(roots)
    for stage in config.get("stages", {}).values():
        stage.get("environment_variables", {}).pop(stack_parameters.MOUNT_ROOTS, None)
    (app / ".chalice" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # Chalice keeps the built dependencies here: shared with the tree's, so they are built once.
    (ROOT / ".chalice" / "deployments").mkdir(exist_ok=True)
    (app / ".chalice" / "deployments").symlink_to(ROOT / ".chalice" / "deployments")
    for path, content in build_deploy.outputs(roots, base=app).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(build_deploy.render(content, path))
    return app


def build_package(roots: tuple[str, ...], region: str, out: Path = BUILD) -> Path:
    """`make package` for these mount roots: `chalice package` of the staged app, precompiled; returns its
    directory."""
    app = stage_app(roots, out)
    package = out / "package"
    shutil.rmtree(package, ignore_errors=True)
    chalice = Path(sys.executable).parent / "chalice"
    env = {**os.environ, "AWS_DEFAULT_REGION": region, "RETRY_QUEUE_URL": PACKAGE_QUEUE_URL.format(region=region)}
    command = [str(chalice), "package", "--stage", "prod", "--merge-template", "deploy/app-resources.json"]
    run([*command, str(package)], cwd=app, env=env)
    compile_package(package)
    return package


def package_roots(package: Path) -> str:
    """The mount roots a package was built for: its MountRoots parameter takes those only."""
    template = json.loads((package / "sam.json").read_text())
    (roots,) = template["Parameters"]["MountRoots"]["AllowedValues"]
    return str(roots)


def run(command: list[str], **kwargs: Any) -> None:
    say("+ " + " ".join(command))
    subprocess.run(command, check=True, **kwargs)


def aws_command(aws: str, choices: Mapping[str, str], profile_variable: str = "PROFILE") -> list[str]:
    command = [aws, "--region", choices["REGION"]]
    return command + (["--profile", choices[profile_variable]] if choices.get(profile_variable) else [])


def refuse_unchangeable(stack: Mapping[str, Any] | None, choices: Mapping[str, str]) -> None:
    """A stack CloudFormation will not update: one whose first creation failed (ROLLBACK_COMPLETE, which can only be
    deleted), or one in the middle of an operation."""
    status = (stack or {}).get("StackStatus", "")
    if status == "ROLLBACK_COMPLETE":
        raise DeployError(
            f"stack {choices['STACK']} failed to create (ROLLBACK_COMPLETE: its events say why) and can only be"
            f" deleted: aws cloudformation delete-stack --region {choices['REGION']} --stack-name {choices['STACK']}"
        )
    if status.endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {choices['STACK']} is {status}: run make deploy again once it has finished")


def deploy(given: Mapping[str, str], aws: str, package: Path | None = None) -> dict[str, str]:
    """`make deploy`: package the app for the chosen settings and deploy it as the stack STACK; returns the stack's
    outputs."""
    places = resolve_places(given, ("STACK", "REGION", "BUCKET"))
    # What the command line got wrong is said before any AWS call; the rest once the running stack is read.
    problems = stack_parameters.refusals({v: given[v] for v in deploy_choices.SETTINGS if v in given})
    if problems:
        raise DeployError("\n".join(problems))
    session = session_for(places["PROFILE"], places["REGION"])
    current = read_stack(session, places["STACK"])
    refuse_unchangeable(current, places)
    deployed = deploy_choices.settings_of_stack(stack_parameters_of(current))
    choices = resolve_settings(given, places, deployed)
    roots = choices[stack_parameters.MOUNT_ROOTS]
    running = stack_outputs_of(current).get("Version", "none") if current else "not deployed"
    say(f"efs-automount {__version__} -> stack {choices['STACK']} in {choices['REGION']} (running now: {running})")
    for line in deploy_choices.changes(deployed, choices) if current else []:
        say(f"  {line}")
    remember(choices)
    if package is None:
        package = build_package(tuple(roots.split(",")), choices["REGION"])
    elif package_roots(package) != roots:
        raise DeployError(f"{package} is built for MOUNT_ROOTS={package_roots(package)}, not {roots}")
    packaged = package / "packaged.json"
    cli = aws_command(aws, choices)
    s3 = ["--s3-bucket", choices["BUCKET"], "--s3-prefix", choices["PREFIX"]]
    template = ["--template-file", str(package / "sam.json"), "--output-template-file", str(packaged), "--use-json"]
    run([*cli, "cloudformation", "package", *template, *s3])
    overrides = [f"{name}={value}" for name, value in deploy_choices.stack_parameter_values(choices).items()]
    stack = ["--template-file", str(packaged), "--stack-name", choices["STACK"], "--capabilities", *APP_CAPABILITIES]
    options = ["--no-fail-on-empty-changeset", "--parameter-overrides", *overrides]
    run([*cli, "cloudformation", "deploy", *stack, *s3, *options])
    outputs = stack_outputs_of(read_stack(session, choices["STACK"]))
    remember({**choices, "APP_ROLE_ARNS": outputs.get("AppRoleArns", "")})
    say(f"deployed: stack {choices['STACK']}, version {outputs.get('Version')}")
    say("next: make deploy-members OUS=... REGIONS=... (other accounts), then check the configuration before the")
    say("first scale-out: make repair GROUP=<group> DRY_RUN=1 (deploy.env names this stack, region and profile)")
    return outputs


# --- make deploy-members -----------------------------------------------------------------------------------------


def app_as_deployed(choices: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The app's settings and roles: read from its stack, or, where these credentials cannot read it (the StackSet is
    run from another account), what the last `make deploy` remembered."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stack = read_stack(session_for(choices["PROFILE"], choices["REGION"]), choices["STACK"])
    except (BotoCoreError, ClientError) as exc:
        say(f"cannot read the app's stack {choices['STACK']} ({exc}): using what deploy.env remembers")
        stack = None
    if stack is not None:
        outputs = stack_outputs_of(stack)
        if outputs.get("Version") != __version__:
            raise DeployError(
                f"the app's stack runs efs-automount {outputs.get('Version')}, this checkout is {__version__}: "
                "deploy the app first (make deploy), so that the members' mount document is the app's"
            )
        return deploy_choices.settings_of_stack(stack_parameters_of(stack)), outputs["AppRoleArns"]
    remembered = deploy_choices.read_remembered()
    roles = choices.get("APP_ROLE_ARNS") or remembered.get("APP_ROLE_ARNS", "")
    if not roles:
        raise DeployError(
            f"APP_ROLE_ARNS is missing: the app's stack {choices['STACK']} is not in {choices['REGION']} for these "
            "credentials and deploy.env remembers no app; deploy the app first, or give APP_ROLE_ARNS= (the "
            "stack's AppRoleArns output) and the app's settings"
        )
    defaults = deploy_choices.setting_defaults(build_deploy.built_roots())
    return {v: remembered.get(v, defaults[v]) for v in deploy_choices.SETTINGS}, roles


def deployment_targets(choices: Mapping[str, str], app_account: str) -> dict[str, Any]:
    """The StackSet's targets: the units' accounts (service-managed StackSets create and delete by unit), only
    ACCOUNTS of them when given, and never the app's own account, which needs no member stack (its events reach the
    app without forwarding, and its document is the app stack's)."""
    units = deploy_choices.split(choices["OUS"])
    accounts = deploy_choices.split(choices["ACCOUNTS"])
    if app_account in accounts:
        raise DeployError(f"ACCOUNTS names the app's own account {app_account}: it needs no member stack")
    if accounts:
        return {"OrganizationalUnitIds": units, "Accounts": accounts, "AccountFilterType": "INTERSECTION"}
    return {"OrganizationalUnitIds": units, "Accounts": [app_account], "AccountFilterType": "DIFFERENCE"}


def member_parameters(settings: Mapping[str, str], roles: str, app_region: str, role_region: str) -> dict[str, str]:
    """The member template's parameters: all of them the app's, the same for every account."""
    names = ("ExternalId", "UpdateServices", "DeregisterSource", "HookName", "MountDocumentName", "MemberRoleName")
    values = {name: settings[stack_parameters.BY_NAME[name].variable] for name in names}
    return {"AppRoleArns": roles, "AppRegion": app_region, **values, "RoleRegion": role_region}


def wait_for_operation(cloudformation: Any, stack_set: str, operation: str, call_as: dict[str, str]) -> None:
    while True:
        status = cloudformation.describe_stack_set_operation(StackSetName=stack_set, OperationId=operation, **call_as)
        state = status["StackSetOperation"]["Status"]
        if state == "SUCCEEDED":
            return
        if state in ("FAILED", "STOPPED"):
            results = cloudformation.list_stack_set_operation_results(
                StackSetName=stack_set, OperationId=operation, **call_as
            ).get("Summaries", [])
            failed = [f"{r.get('Account')} {r.get('Region')}: {r.get('StatusReason')}" for r in results]
            raise DeployError(f"StackSet {stack_set} operation {operation} {state}: " + "; ".join(failed))
        time.sleep(POLL_SECONDS)


def deploy_members(given: Mapping[str, str]) -> dict[str, Any]:
    """`make deploy-members`: the member template as the service-managed StackSet STACK_SET (created or updated),
    then its stack instances in the accounts of OUS (or ACCOUNTS of them) and REGIONS."""
    settings_given = sorted(set(given) & set(deploy_choices.SETTINGS))
    if settings_given:
        raise DeployError(
            f"{', '.join(settings_given)}: the members take the app's settings as its stack runs them; "
            "change them with make deploy, then make deploy-members"
        )
    choices = resolve_places(given, ("STACK", "REGION", "STACK_SET", "OUS", "REGIONS"))
    regions = deploy_choices.split(choices["REGIONS"])
    role_region = choices["ROLE_REGION"] or regions[0]
    if role_region not in regions:
        raise DeployError(
            f"ROLE_REGION={role_region} is not among REGIONS={choices['REGIONS']}: the member role, one per account, "
            "is made in that region; keep it in REGIONS"
        )
    settings, roles = app_as_deployed(choices)
    app_account = roles.split(",")[0].split(":")[4]
    targets = deployment_targets(choices, app_account)
    parameters = member_parameters(settings, roles, choices["REGION"], role_region)
    roots = tuple(settings[stack_parameters.MOUNT_ROOTS].split(","))
    template = build_deploy.render(build_deploy.member_template(roots), build_deploy.DEPLOY / "member-account.json")
    call_as = {"CallAs": choices["CALL_AS"]} if choices["CALL_AS"] != "SELF" else {}
    cloudformation = session_for(choices["MEMBERS_PROFILE"], choices["REGION"]).client("cloudformation")
    stack_set = choices["STACK_SET"]
    common = {
        "StackSetName": stack_set,
        "Description": f"efs-automount {__version__} member accounts of the app in {app_account} {choices['REGION']}",
        "TemplateBody": template,
        "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        "Capabilities": MEMBER_CAPABILITIES,
        **call_as,
    }
    remember({**deploy_choices.read_remembered(), **choices, "ROLE_REGION": role_region})
    if stack_set_exists(cloudformation, stack_set, call_as):
        say(f"updating StackSet {stack_set} (every stack instance it has) to efs-automount {__version__}")
        operation = cloudformation.update_stack_set(**common)["OperationId"]
        wait_for_operation(cloudformation, stack_set, operation, call_as)
    else:
        say(f"creating StackSet {stack_set} (service-managed, automatic deployment to accounts joining the units)")
        cloudformation.create_stack_set(
            **common,
            PermissionModel="SERVICE_MANAGED",
            AutoDeployment={"Enabled": True, "RetainStacksOnAccountRemoval": False},
        )
    say(f"stack instances: {json.dumps(targets)} in {', '.join(regions)}")
    operation = cloudformation.create_stack_instances(
        StackSetName=stack_set, DeploymentTargets=targets, Regions=regions, **call_as
    )["OperationId"]
    wait_for_operation(cloudformation, stack_set, operation, call_as)
    for warning in member_warnings(settings, choices, regions):
        say(f"note: {warning}")
    return {"targets": targets, "regions": regions, "parameters": parameters}


def stack_set_exists(cloudformation: Any, stack_set: str, call_as: dict[str, str]) -> bool:
    try:
        state = cloudformation.describe_stack_set(StackSetName=stack_set, **call_as)["StackSet"]["Status"]
    except cloudformation.exceptions.StackSetNotFoundException:
        return False
    return state != "DELETED"


def member_warnings(settings: Mapping[str, str], choices: Mapping[str, str], regions: list[str]) -> list[str]:
    """What the app must also be told for the members to be served (its settings are deployed by make deploy)."""
    warnings = []
    swept = {choices["REGION"], *deploy_choices.split(settings["SWEEP_REGIONS"])}
    unswept = [r for r in regions if r not in swept]
    if unswept:
        listed = ",".join([*deploy_choices.split(settings["SWEEP_REGIONS"]), *unswept])
        warnings.append(
            f"the app's sweeper and checks do not look in {', '.join(unswept)}: make deploy SWEEP_REGIONS={listed}"
        )
    trusted = set(deploy_choices.split(settings["TRUSTED_ACCOUNTS"]))
    untrusted = [a for a in deploy_choices.split(choices["ACCOUNTS"]) if a not in trusted]
    if untrusted:
        warnings.append(f"the app acts on no event of {', '.join(untrusted)}: add them to TRUSTED_ACCOUNTS")
    elif not choices["ACCOUNTS"]:
        warnings.append("the app acts only on accounts in TRUSTED_ACCOUNTS: list the units' accounts there")
    return warnings


# --- hooks, uninstall, stop and start ----------------------------------------------------------------------------


def hook_regions(choices: Mapping[str, str], settings: Mapping[str, str]) -> list[str]:
    """Where the app's groups may be: its region, the regions it sweeps, and the member regions."""
    regions = [choices["REGION"], *deploy_choices.split(settings["SWEEP_REGIONS"])]
    return list(dict.fromkeys(regions + deploy_choices.split(choices["REGIONS"])))


def app_settings(choices: Mapping[str, str], given: Mapping[str, str]) -> dict[str, str]:
    """The app's settings as its stack runs them (what deploy.env remembers, where the stack is not readable)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        deployed = deploy_choices.settings_of_stack(
            stack_parameters_of(read_stack(session_for(choices["PROFILE"], choices["REGION"]), choices["STACK"]))
        )
    except (BotoCoreError, ClientError):
        deployed = {}
    defaults = deploy_choices.setting_defaults(build_deploy.built_roots())
    settings = deploy_choices.resolve(given, deployed, deploy_choices.read_remembered(), defaults)
    return {v: settings[v] for v in deploy_choices.SETTINGS}


def list_hooks(given: Mapping[str, str]) -> list[app_hooks.AppHook]:
    """`make hooks`: the groups of the account of these credentials with the app's hook (the app's account, or a
    member's with its credentials), in REGION, SWEEP_REGIONS and REGIONS."""
    choices = resolve_places(given, ("REGION",))
    settings = app_settings(choices, given)
    session = session_for(choices["PROFILE"], choices["REGION"])
    regions = hook_regions(choices, settings)
    hooks = app_hooks.find_app_hooks(session, account_of(session), regions, settings["HOOK_NAME"])
    for hook in hooks:
        say(hook.describe())
    if not hooks:
        say(f"no group has the hook {settings['HOOK_NAME']!r} in {', '.join(hook_regions(choices, settings))}")
    return hooks


def uninstall(given: Mapping[str, str]) -> None:
    """`make uninstall`: refuse while a group of the app's account has the app's hook with the default result ABANDON
    (unless FORCE=1); then the member stack instances and StackSet; then the app's stack."""
    choices = resolve_places(given, ("STACK", "REGION", "STACK_SET"))
    settings = app_settings(choices, given)
    session = session_for(choices["PROFILE"], choices["REGION"])
    account = account_of(session)
    hooks = app_hooks.find_app_hooks(session, account, hook_regions(choices, settings), settings["HOOK_NAME"])
    abandoning = [h for h in hooks if h.abandons_unanswered]
    for hook in hooks:
        say(("BLOCKS " if hook.abandons_unanswered else "waits  ") + hook.describe())
        say(f"    delete it:          {hook.delete_command()}")
        if hook.abandons_unanswered:
            say(f"    or let hosts in:    {hook.continue_command()}")
    say(
        "member accounts: their groups' hooks are not visible from here. In each, with its credentials: "
        f"make hooks PROFILE=<member profile> REGIONS={choices['REGIONS'] or '<its regions>'}"
    )
    if abandoning and given.get("FORCE", "").lower() not in YES:
        raise DeployError(
            f"refusing to uninstall: {len(abandoning)} group(s) of account {account} have the hook "
            f"{settings['HOOK_NAME']!r} with the default result ABANDON; without the app every host they launch "
            "would be abandoned. Delete each hook or set its default result to CONTINUE (above), or FORCE=1."
        )
    remove_members(choices)
    say(f"deleting the app's stack {choices['STACK']} in {choices['REGION']}")
    cloudformation = session.client("cloudformation")
    if read_stack(session, choices["STACK"]) is None:
        say(f"  no stack {choices['STACK']}")
    else:
        cloudformation.delete_stack(StackName=choices["STACK"])
        cloudformation.get_waiter("stack_delete_complete").wait(
            StackName=choices["STACK"], WaiterConfig={"Delay": max(POLL_SECONDS, 1), "MaxAttempts": 360}
        )
    say(
        "left behind: the functions' log groups (/aws/lambda/<stack>-*), the package in "
        f"s3://{choices['BUCKET'] or '<BUCKET>'}/{choices['PREFIX']}/, and deploy.env"
    )


def remove_members(choices: Mapping[str, str]) -> None:
    """Every stack instance of the member StackSet (by the units they were deployed to), then the StackSet."""
    call_as = {"CallAs": choices["CALL_AS"]} if choices["CALL_AS"] != "SELF" else {}
    cloudformation = session_for(choices["MEMBERS_PROFILE"], choices["REGION"]).client("cloudformation")
    stack_set = choices["STACK_SET"]
    if not stack_set_exists(cloudformation, stack_set, call_as):
        say(f"no StackSet {stack_set} here (members removed already, or managed from another account)")
        return
    paginator = cloudformation.get_paginator("list_stack_instances")
    instances = [i for page in paginator.paginate(StackSetName=stack_set, **call_as) for i in page["Summaries"]]
    if instances:
        # By unit, as a service-managed StackSet deletes; the units deploy.env remembers too (where an instance's
        # unit is not reported).
        units = sorted(
            {i["OrganizationalUnitId"] for i in instances if i.get("OrganizationalUnitId")}
            | set(deploy_choices.split(choices["OUS"]))
        )
        regions = sorted({i["Region"] for i in instances})
        say(f"deleting {len(instances)} member stack(s): units {', '.join(units)}, regions {', '.join(regions)}")
        operation = cloudformation.delete_stack_instances(
            StackSetName=stack_set,
            DeploymentTargets={"OrganizationalUnitIds": units},
            Regions=regions,
            RetainStacks=False,
            **call_as,
        )["OperationId"]
        wait_for_operation(cloudformation, stack_set, operation, call_as)
    say(f"deleting StackSet {stack_set}")
    cloudformation.delete_stack_set(StackSetName=stack_set, **call_as)


def app_resources_of(session: Any, stack: str) -> dict[str, list[str]]:
    """The stack's physical ids by resource type."""
    paginator = session.client("cloudformation").get_paginator("list_stack_resources")
    found: dict[str, list[str]] = {}
    for page in paginator.paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            found.setdefault(resource["ResourceType"], []).append(resource["PhysicalResourceId"])
    return found


# Repair keeps running while stopped: an operator may still look (dry run) or repair by hand.
KEEPS_RUNNING = f"-{build_deploy.chalice_name('Repair')}"


def switch_app(session: Any, stack: str, on: bool) -> None:
    """The app's rules (events and schedules) and its retry queue's mapping enabled or disabled, and its functions
    (repair excepted) let run or held at a reserved concurrency of 0, so that an event already queued for them does
    not run either."""
    resources = app_resources_of(session, stack)
    events, lambda_ = session.client("events"), session.client("lambda")
    for rule in resources.get("AWS::Events::Rule", []):
        (events.enable_rule if on else events.disable_rule)(Name=rule)
        say(f"  rule {rule}: {'enabled' if on else 'disabled'}")
    for mapping in resources.get("AWS::Lambda::EventSourceMapping", []):
        lambda_.update_event_source_mapping(UUID=mapping, Enabled=on)
        say(f"  retry queue mapping {mapping}: {'enabled' if on else 'disabled'}")
    for function in resources.get("AWS::Lambda::Function", []):
        if function.endswith(KEEPS_RUNNING):
            continue
        if on:
            lambda_.delete_function_concurrency(FunctionName=function)
        else:
            lambda_.put_function_concurrency(FunctionName=function, ReservedConcurrentExecutions=0)
        say(f"  function {function}: {'runs' if on else 'held (reserved concurrency 0)'}")


def stop_hooks(given: Mapping[str, str], hold: Callable[[], None] | None = None) -> list[app_hooks.AppHook]:
    """`make stop-hooks` (any account): no host of this account is abandoned while the app does not answer. The app's
    hooks whose default result is ABANDON are set to CONTINUE (remembered, for start-hooks), then `hold` (the app's
    own stop), then every host waiting on them now is let in, unmounted: host-mode tasks are not placed on it (it
    lacks the mount attribute), and repair mounts it once the app runs again."""
    choices = resolve_places(given, ("REGION",))
    settings = app_settings(choices, given)
    session = session_for(choices["PROFILE"], choices["REGION"])
    account = account_of(session)
    hooks = app_hooks.find_app_hooks(session, account, hook_regions(choices, settings), settings["HOOK_NAME"])
    stopped = app_hooks.StoppedHooks(STOPPED_HOOKS)
    for hook in hooks:
        if hook.abandons_unanswered:
            stopped.add(hook)
            app_hooks.put_default_result(session, hook, "CONTINUE")
            say(f"  default result CONTINUE: {hook.describe()}")
    if hold is not None:
        hold()
    for hook in hooks:
        for instance in app_hooks.let_waiting_hosts_in(session, hook):
            say(f"  let in unmounted (repair mounts it after start): {instance} of {hook.group!r}")
    return hooks


def start_hooks(given: Mapping[str, str]) -> None:
    """`make start-hooks` (any account): the hooks stop-hooks changed get their default result back."""
    choices = resolve_places(given, ("REGION",))
    settings = app_settings(choices, given)
    session = session_for(choices["PROFILE"], choices["REGION"])
    account = account_of(session)
    stopped = app_hooks.StoppedHooks(STOPPED_HOOKS)
    entries = stopped.of_account(account)
    regions = sorted({e["region"] for e in entries})
    found = app_hooks.find_app_hooks(session, account, regions, settings["HOOK_NAME"])
    current = {(h.region, h.group): h for h in found}
    for entry in entries:
        hook = current.get((entry["region"], entry["group"]))
        if hook is not None:
            app_hooks.put_default_result(session, hook, entry["default_result"])
            say(f"  default result {entry['default_result']} again: {hook.describe()}")
        stopped.remove(entry)
    if not entries:
        say(f"no hook of account {account} was changed by make stop-hooks (or it was put back already)")


def stop(given: Mapping[str, str]) -> None:
    """`make stop` (the app's account): its hooks let no host be abandoned, then the app stops acting."""
    choices = resolve_places(given, ("STACK", "REGION"))
    session = session_for(choices["PROFILE"], choices["REGION"])
    if read_stack(session, choices["STACK"]) is None:
        raise DeployError(f"no stack {choices['STACK']} in {choices['REGION']} for these credentials")
    say(f"stopping efs-automount (stack {choices['STACK']} in {choices['REGION']})")
    stop_hooks(given, hold=lambda: switch_app(session, choices["STACK"], on=False))
    say("stopped. In each member account, with its credentials: make stop-hooks PROFILE=<member profile>")
    say("Hosts launched from now on wait their hook's heartbeat timeout, then go in service unmounted.")


def start(given: Mapping[str, str]) -> None:
    """`make start`: the app acts again, then its hooks get their default result back."""
    choices = resolve_places(given, ("STACK", "REGION"))
    session = session_for(choices["PROFILE"], choices["REGION"])
    say(f"starting efs-automount (stack {choices['STACK']} in {choices['REGION']})")
    switch_app(session, choices["STACK"], on=True)
    start_hooks(given)
    say("started. In each member account: make start-hooks PROFILE=<member profile>. Hosts let in during the stop")
    say("are mounted by repair: make repair CLUSTER=<cluster> (DRY_RUN=1 first)")


COMMANDS: dict[str, Callable[..., Any]] = {
    "deploy": deploy,
    "deploy-members": deploy_members,
    "uninstall": uninstall,
    "hooks": list_hooks,
    "stop": stop,
    "start": start,
    "stop-hooks": stop_hooks,
    "start-hooks": start_hooks,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=sorted(COMMANDS))
    parser.add_argument("variables", nargs="*", metavar="VARIABLE=value")
    parser.add_argument("--aws", default="aws", help="the AWS CLI to run (make deploy's own: .venv-deploy/bin/aws)")
    parser.add_argument("--package", type=Path, help="deploy this package (make package's directory) as it is")
    arguments = parser.parse_intermixed_args(argv)
    try:
        given = deploy_choices.parse_given(arguments.variables)
        if arguments.command == "deploy":
            deploy(given, arguments.aws, arguments.package)
        else:
            COMMANDS[arguments.command](given)
    except (ChoiceError, DeployError) as exc:
        print(f"make {arguments.command}: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"make {arguments.command}: {exc.cmd[0]} failed (exit {exc.returncode})", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - botocore's errors (credentials, access) said in one line
        if type(exc).__module__.startswith("botocore"):
            print(f"make {arguments.command}: {exc}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

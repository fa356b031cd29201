"""Writes deploy/: the mount document, the templates that create it, and the member account template; and the
document's digest into the app (chalicelib/checks/document_digest.py), for the document-drift check.

Run `make deploy-files` after changing host/mount-efs.sh, the tag patterns in
chalicelib/mount/spec.py, MOUNT_ROOTS in .chalice/config.json, .chalice/policy.json or
.chalice/policy-opt-in.json; a test fails while deploy/ is stale.

MOUNT_ROOTS is a deploy-time choice: it is read from the config's top-level
environment_variables and baked into the document (the MountPath allowedPattern and the
script's own roots), so the Lambda, SSM and the host refuse the same paths.
"""

from __future__ import annotations

import ast
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib import __version__  # noqa: E402
from chalicelib.checks.rules import content_digest  # noqa: E402
from chalicelib.mount.spec import (  # noqa: E402
    ACCESS_POINT_ID,
    DEFAULT_MOUNT_ROOTS,
    FILE_SYSTEM_ID,
    IPV4_ADDRESS,
    mount_path_pattern,
)
from chalicelib.plumbing.events import (  # noqa: E402
    command_status_pattern,
    container_instance_pattern,
    launch_pattern,
    task_definition_registered_pattern,
)
from chalicelib.plumbing.names import ACCOUNT_ID, REGION  # noqa: E402
from chalicelib.plumbing.settings import (  # noqa: E402
    DEFAULT_MEMBER_ROLE_NAME,
    DEFAULT_MOUNT_DOCUMENT,
    Settings,
    SettingsError,
)
from tools import operations, stack_parameters  # noqa: E402
from tools.stack_parameters import ref  # noqa: E402

SCRIPT = ROOT / "host" / "mount-efs.sh"
RETRY_QUEUE_NAME = "efs-automount-retries"
# Lets on_retry report single failed messages (Powertools batch) instead of failing the whole batch.
PARTIAL_BATCH = ["ReportBatchItemFailures"]
POLICY = ROOT / ".chalice" / "policy.json"
CHALICE_CONFIG = ROOT / ".chalice" / "config.json"
# The script's own copy of the roots; the document's copy replaces this line.
SCRIPT_ROOTS_LINE = f"readonly MOUNT_ROOTS={','.join(DEFAULT_MOUNT_ROOTS)}"
# Statements granted only where their setting is on; each Sid starts with the template parameter that grants it.
OPT_IN_POLICY = ROOT / ".chalice" / "policy-opt-in.json"
OPT_INS = {"UpdateServices": "UPDATE_SERVICES", "DeregisterSource": "DEREGISTER_SOURCE"}
# With autogen_policy off, `chalice package` gives every function its own role, named after the function.
FUNCTIONS = (
    "OnLaunch",
    "OnCommandStatus",
    "OnContainerInstance",
    "OnTaskDefinition",
    "Sweeper",
    "OnRetry",
    "Repair",
    "Checks",
)
APP = ROOT / "app.py"
ENTRYPOINTS = ROOT / "chalicelib" / "entrypoints.py"
# The one function of chalicelib/entrypoints.py that makes the retry queue: a handler whose entry point reaches it can
# schedule a retry (tests/test_retry_senders.py checks that nothing else makes one).
RETRY_QUEUE_MAKER = "lifecycle_flow"
# The functions that may move services or deregister revisions: the rewrite's follow-ups, which repair runs too
# when it registers a missed rewrite (the same flow), and repair's own update of services left on a source.
FOLLOW_UPS_FUNCTIONS = stack_parameters.FOLLOW_UPS
# checkov findings that do not apply to the functions, each with the reason (rendered into the template, where
# checkov reads them). Everything else checkov checks passes.
FUNCTION_CHECKOV_SKIPS = [
    {
        "id": "CKV_AWS_115",
        "comment": "No reserved concurrency: a burst of launches must not be throttled into lifecycle timeouts.",
    },
    {
        "id": "CKV_AWS_116",
        "comment": "No dead-letter queue: a lost event is recovered by the sweeper, which re-reads AWS every minute.",
    },
    {
        "id": "CKV_AWS_117",
        "comment": "Not in a VPC: the functions call only AWS APIs; a VPC would add NAT or endpoints, no isolation.",
    },
    {
        "id": "CKV_AWS_173",
        "comment": "Environment variables hold names and flags only, no secrets; Lambda encrypts them at rest.",
    },
]
TABLE_CHECKOV_SKIPS = [
    {
        "id": "CKV_AWS_119",
        "comment": "Encrypted at rest with the AWS owned key; it holds only hashes of task definition ARNs for 24 h.",
    },
    {
        "id": "CKV_AWS_28",
        "comment": "No point-in-time recovery: records expire after 24 h and restoring them would restore nothing.",
    },
]
QUEUE_CHECKOV_SKIPS = [
    {
        "id": "CKV_AWS_27",
        "comment": "Encrypted at rest with SSE-SQS (SqsManagedSseEnabled); this check knows only KMS keys.",
    }
]
# IAM role ARNs only (a path is allowed): never an account id or an account's root, which would trust every
# principal of that account that may call sts:AssumeRole.
ROLE_ARN_PATTERN = r"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]+$"
DEPLOY = ROOT / "deploy"
# Statements the member role does not need: the Lambda's own logs, assuming member roles, and the
# idempotency table and retry queue, which live in the app's account.
APP_ONLY_STATEMENTS = {
    "LambdaLogs",
    "AssumeMemberRoleInTrustedAccounts",
    "IdempotencyTable",
    "RetryQueue",
    "RetryQueueSubscription",
}


def logical_id(name: str) -> str:
    """The packaged function's logical id of a Chalice function name: on_launch -> OnLaunch."""
    return "".join(part.capitalize() for part in name.split("_"))


def _references(node: ast.AST) -> set[str]:
    """The names a piece of code uses: `f` and `module.f`, called or passed on."""
    names = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            names.add(child.id)
        elif isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name):
            names.add(f"{child.value.id}.{child.attr}")
    return names


def _handler_entrypoints() -> dict[str, set[str]]:
    """Each function of app.py (its Chalice name) and the functions of chalicelib/entrypoints.py it uses."""
    handlers = {}
    for node in ast.walk(ast.parse(APP.read_text())):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute):
                keywords = decorator.keywords
                names = [k.value.value for k in keywords if k.arg == "name" and isinstance(k.value, ast.Constant)]
                used = {n.split(".", 1)[1] for n in _references(node) if n.startswith("entrypoints.")}
                if not used:
                    raise SystemExit(f"app.py: {node.name} hands its event to no function of chalicelib/entrypoints.py")
                handlers[names[0] if names else node.name] = used
    return handlers


def retry_senders() -> tuple[str, ...]:
    """The functions that schedule retries (logical ids, in FUNCTIONS' order): they learn the queue's URL, and the queue
    accepts messages from their roles only. A function is one when its handler's entry point reaches,
    through the functions of chalicelib/entrypoints.py, the one that makes the retry queue. Read from the code, so a
    handler that comes to schedule retries becomes a sender (its URL, the queue's policy) without anyone listing it."""
    module = ast.parse(ENTRYPOINTS.read_text())
    functions = {node.name: node for node in module.body if isinstance(node, ast.FunctionDef)}
    if RETRY_QUEUE_MAKER not in functions:
        raise SystemExit(f"chalicelib/entrypoints.py has no {RETRY_QUEUE_MAKER}: update RETRY_QUEUE_MAKER")
    uses = {name: _references(node) & set(functions) - {name} for name, node in functions.items()}
    senders = set()
    for handler, entrypoints in _handler_entrypoints().items():
        reached, todo = set(), list(entrypoints)
        while todo:
            name = todo.pop()
            if name not in reached:
                reached.add(name)
                todo.extend(uses.get(name, ()))
        if RETRY_QUEUE_MAKER in reached:
            senders.add(logical_id(handler))
    unknown = senders - set(FUNCTIONS)
    if unknown:
        raise SystemExit(f"app.py's {sorted(unknown)} schedule retries but are not in FUNCTIONS")
    return tuple(function for function in FUNCTIONS if function in senders)


def chalice_name(function: str) -> str:
    """The name in app.py, and in `efs-automount-<stage>-<name>` under chalice deploy: OnLaunch -> on_launch."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", function).lower()


def function_name(function: str) -> dict[str, str]:
    """The packaged function's name. Named, not generated: CloudFormation's generated names cut the stack name short
    when they are long, and the role's log statement must name the function's log group exactly."""
    return {"Fn::Sub": f"${{AWS::StackName}}-{chalice_name(function)}"}


def retry_queue_policy(queue_arn: Any, sender_arns: list[Any]) -> dict[str, Any]:
    """The retry queue's own policy: whoever is not one of the senders may not send to it, whatever IAM allows them.

    A Deny on sqs:SendMessage only (which also governs SendMessageBatch): the account's administrators keep every
    other right on the queue, including changing this policy. aws:PrincipalArn is the role's ARN for a role session
    (not the session's ARN), and is absent from anonymous requests, which a negated operator then denies.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheAppSchedulesRetries",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sender_arns}},
            }
        ],
    }


# https://sqs.<region>.amazonaws.com[.cn]/<account>/<queue name>
QUEUE_URL = re.compile(
    r"^https://sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<account>\d{12})/(?P<name>[\w-]+)$"
)


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def retry_queue_attributes(queue_url: str, stage: str) -> dict[str, str]:
    """`aws sqs set-queue-attributes --attributes` for a queue made by hand (chalice deploy): its policy, naming the
    roles Chalice gives the senders of the stage, efs-automount-<stage>-<function>."""
    match = QUEUE_URL.match(queue_url)
    if not match:
        raise SystemExit(f"{queue_url!r} is not an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>)")
    partition, account = partition_of(match["region"]), match["account"]
    queue_arn = f"arn:{partition}:sqs:{match['region']}:{account}:{match['name']}"
    senders = [f"arn:{partition}:iam::{account}:role/efs-automount-{stage}-{chalice_name(f)}" for f in retry_senders()]
    return {"Policy": json.dumps(retry_queue_policy(queue_arn, senders), separators=(",", ":"))}


def parameters(roots: tuple[str, ...]) -> dict[str, tuple[str, str, str | None]]:
    """The document's parameters: description, allowedPattern and default of each."""
    return {
        "FileSystemId": ("The EFS file system id.", FILE_SYSTEM_ID.pattern, None),
        "MountPath": (
            f"Absolute host path to mount it at, under one of {', '.join(roots)}.",
            mount_path_pattern(roots),
            None,
        ),
        "Region": ("The file system's region.", REGION.pattern, None),
        "AccessPointId": ("An EFS access point id, or empty.", f"^$|{ACCESS_POINT_ID.pattern}", ""),
        "MountTargetIp": (
            "IP of the mount target in the host's AZ, used when the DNS name does not resolve yet; or empty.",
            f"^$|{IPV4_ADDRESS.pattern}",
            "",
        ),
        "ReadOnly": ("true to mount read-only.", "^(true|false)$", "false"),
        "RequireTls": ("true when the mount must use TLS (never plain NFS).", "^(true|false)$", "false"),
        "DnsWaitSeconds": (
            "How long to wait for the file system's DNS name before using the IP.",
            "^[0-9]{1,3}$",
            "30",
        ),
    }


def mount_roots(config: dict[str, Any]) -> tuple[str, ...]:
    """MOUNT_ROOTS of the chalice config: one value for every stage, since one document serves them all."""
    value = config.get("environment_variables", {}).get("MOUNT_ROOTS", "")
    for stage, stage_config in config.get("stages", {}).items():
        override = stage_config.get("environment_variables", {}).get("MOUNT_ROOTS")
        if override is not None and override != value:
            raise SystemExit(
                f"stage {stage} sets MOUNT_ROOTS={override!r}, but the mount document is built from the top-level "
                f"MOUNT_ROOTS={value!r}: set it once, at the top level of .chalice/config.json"
            )
    try:
        return Settings.from_environ({"MOUNT_ROOTS": value}).mount_roots
    except SettingsError as exc:
        raise SystemExit(f".chalice/config.json: {exc}") from exc


def built_roots() -> tuple[str, ...]:
    """The mount roots deploy/ is built for: MOUNT_ROOTS of .chalice/config.json."""
    return mount_roots(json.loads(CHALICE_CONFIG.read_text()))


def script_for_roots(roots: tuple[str, ...]) -> str:
    """host/mount-efs.sh with its MOUNT_ROOTS line set to `roots`."""
    text = SCRIPT.read_text()
    if text.count(SCRIPT_ROOTS_LINE + "\n") != 1:
        raise SystemExit(f"host/mount-efs.sh must have exactly one line {SCRIPT_ROOTS_LINE!r}")
    return text.replace(SCRIPT_ROOTS_LINE + "\n", f"readonly MOUNT_ROOTS={','.join(roots)}\n")


def mount_document(roots: tuple[str, ...] | None = None) -> dict[str, Any]:
    roots = roots or built_roots()
    document_parameters: dict[str, Any] = {}
    # Agents older than 3.3.2746.0 do not set SSM_* variables: fall back to SSM's own
    # substitution, which allowedPattern keeps to characters that cannot leave the quotes.
    # SSM runs the commands with sh, which is dash on some distributions: re-run under bash.
    prelude = ['if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi']
    for name, (description, pattern, default) in parameters(roots).items():
        document_parameters[name] = {
            "type": "String",
            "description": description,
            "allowedPattern": pattern,
            "interpolationType": "ENV_VAR",
        }
        if default is not None:
            document_parameters[name]["default"] = default
        prelude.append(f"if [ -z \"${{SSM_{name}+x}}\" ]; then export SSM_{name}='{{{{ {name} }}}}'; fi")
    script = script_for_roots(roots).splitlines()
    return {
        "schemaVersion": "2.2",
        # The version names the release whose document this is: an operator reading a member account's document
        # (and the document-drift check, through the digest) can tell which release it came from.
        "description": (
            f"efs-automount {__version__}: mount an Amazon EFS file system on this host (idempotent, fstab, verified)."
        ),
        "parameters": document_parameters,
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "mountEfs",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {"timeoutSeconds": "600", "runCommand": prelude + script},
            }
        ],
    }


def document_resource(roots: tuple[str, ...]) -> dict[str, Any]:
    """The mount document, named by the template's MountDocumentName parameter (the app's MOUNT_DOCUMENT)."""
    return {
        "Type": "AWS::SSM::Document",
        "Properties": {
            "Name": ref("MountDocumentName"),
            "DocumentType": "Command",
            "DocumentFormat": "JSON",
            "UpdateMethod": "NewVersion",
            "Content": mount_document(roots),
        },
    }


# policy.json is static (`chalice deploy` may send it as it is), so a statement that must reach the caller's own
# account only writes the ARN's account as `*` and pins it with this condition: the resource's account
# (aws:ResourceAccount, IAM's global condition keys) equals the caller's, a policy variable in a condition value.
# IAM documents policy variables in an ARN only in its resource part, after the fifth colon (IAM User Guide, "IAM JSON
# policy elements: Resource", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
# and https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_variables.html), never in the account field.
# Where the account is known (a template: ${AWS::AccountId}; `stage-policy --account`), it is written into the ARN
# instead, and the condition goes: no request context key is then needed at all.
OWN_ACCOUNT_KEY = "aws:ResourceAccount"
OWN_ACCOUNT_PIN = "${aws:PrincipalAccount}"


def pins_own_account(statement: dict[str, Any]) -> bool:
    return statement.get("Condition", {}).get("StringEquals", {}).get(OWN_ACCOUNT_KEY) == OWN_ACCOUNT_PIN


def pinned(resource: str, account: str | None, partition: str) -> Any:
    """A resource of policy.json with the partition written in, and the account when the statement pins it."""
    fields = resource.split(":", 5)
    if len(fields) == 6 and fields[0] == "arn":
        if fields[1] == "*":
            fields[1] = partition
        if account is not None and fields[4] == "*":
            fields[4] = account
        resource = ":".join(fields)
    return {"Fn::Sub": resource} if "${" in resource else resource


def account_pinned(statement: dict[str, Any], account: str, partition: str) -> dict[str, Any]:
    """The statement with the account written into its ARNs, in place of the aws:ResourceAccount condition."""
    statement = copy.deepcopy(statement)
    pins = pins_own_account(statement)
    resources = statement["Resource"]
    own = account if pins else None
    statement["Resource"] = (
        [pinned(r, own, partition) for r in resources]
        if isinstance(resources, list)
        else pinned(resources, own, partition)
    )
    if pins:
        condition = statement["Condition"]
        del condition["StringEquals"][OWN_ACCOUNT_KEY]
        if not condition["StringEquals"]:
            del condition["StringEquals"]
        if not condition:
            del statement["Condition"]
    return statement


def own_log_group_only(policy: dict[str, Any], function: str) -> dict[str, Any]:
    """The role's policy with its log statement narrowed to the function's own log group (and its streams)."""
    policy = copy.deepcopy(policy)
    log_group = f"/aws/lambda/{function_name(function)['Fn::Sub']}"
    group = f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:{log_group}"
    for statement in policy["Statement"]:
        if statement["Sid"] == "LambdaLogs":
            statement["Resource"] = [{"Fn::Sub": group}, {"Fn::Sub": group + ":*"}]
    return policy


# The names policy.json writes as their defaults, and the template parameter that chooses each (a template's policy
# names what its parameters name; policy.json, sent as it is by chalice deploy, must be edited by hand instead).
NAMED_BY_PARAMETERS = {
    f":document/{DEFAULT_MOUNT_DOCUMENT}": ":document/${MountDocumentName}",
    f":role/{DEFAULT_MEMBER_ROLE_NAME}": ":role/${MemberRoleName}",
}


def _named_by_parameters(resource: Any) -> Any:
    if isinstance(resource, list):
        return [_named_by_parameters(r) for r in resource]
    for name, parameter in NAMED_BY_PARAMETERS.items():
        if isinstance(resource, str) and resource.endswith(name):
            return resource.removesuffix(name) + parameter
    return resource


def template_policy(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """policy.json's statements as a template writes them: the stack's own partition and account, and the document
    and member role its parameters name."""
    named = [{**s, "Resource": _named_by_parameters(s["Resource"])} for s in statements]
    rendered = [account_pinned(s, "${AWS::AccountId}", "${AWS::Partition}") for s in named]
    return {"Version": "2012-10-17", "Statement": rendered}


def opt_in_statements(parameter: str) -> list[dict[str, Any]]:
    statements = json.loads(OPT_IN_POLICY.read_text())["Statement"]
    return [s for s in statements if s["Sid"].startswith(parameter)]


def opt_in_parameters() -> dict[str, Any]:
    return {parameter: stack_parameters.BY_NAME[parameter].template() for parameter in OPT_INS}


def opt_in_conditions() -> dict[str, Any]:
    return {f"{parameter}On": {"Fn::Equals": [{"Ref": parameter}, "true"]} for parameter in OPT_INS}


def opt_in_policies(roles: list[str], condition_suffix: str = "On") -> dict[str, Any]:
    """One policy per opt-in setting, attached to the roles only when the setting is on (condition
    `<parameter><condition_suffix>`)."""
    return {
        f"{parameter}Policy": {
            "Type": "AWS::IAM::Policy",
            "Condition": f"{parameter}{condition_suffix}",
            "Properties": {
                "PolicyName": f"efs-automount-{setting.lower().replace('_', '-')}",
                "Roles": [{"Ref": role} for role in roles],
                "PolicyDocument": template_policy(opt_in_statements(parameter)),
            },
        }
        for parameter, setting in OPT_INS.items()
    }


# The rules whose patterns hold a setting: the pattern as the app declares it, with the parameter in place of the
# setting's value (app.py reads the stage's value when `chalice package` runs; the stack's choice must win).
PARAMETER_PATTERNS = {
    "OnLaunch": launch_pattern(ref("HookName")),
    "OnCommandStatus": command_status_pattern(ref("MountDocumentName")),
}


def app_resources(roots: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Merged into `chalice package`: every setting a parameter, the mount document, the idempotency table and retry
    queue wired to their functions, the roles' policies pinned to the stack's account, and the opt-in permissions
    behind parameters."""
    roots = roots or built_roots()
    base_policy = template_policy(json.loads(POLICY.read_text())["Statement"])
    template = {
        "Description": f"efs-automount {__version__}: mount Amazon EFS on ECS hosts and in task definitions.",
        "Parameters": stack_parameters.template_parameters(roots),
        "Conditions": {**opt_in_conditions(), **operations.conditions()},
        "Outputs": {
            "AppRoleArns": {
                "Description": "The app's execution roles: the AppRoleArns parameter of deploy/member-account.json.",
                "Value": {"Fn::Join": [",", [{"Fn::GetAtt": [f"{f}Role", "Arn"]} for f in FUNCTIONS]]},
            },
            "Version": {"Description": "The efs-automount version this stack runs.", "Value": __version__},
        },
        "Resources": {
            **{
                f"{function}Role": {
                    "Properties": {
                        "Policies": [
                            {
                                "PolicyName": f"{function}RolePolicy",
                                "PolicyDocument": own_log_group_only(base_policy, function),
                            }
                        ]
                    }
                }
                for function in FUNCTIONS
            },
            **opt_in_policies([f"{function}Role" for function in FOLLOW_UPS_FUNCTIONS]),
            "MountDocument": document_resource(roots),
            "IdempotencyTable": {
                "Type": "AWS::DynamoDB::Table",
                "Metadata": {"checkov": {"skip": TABLE_CHECKOV_SKIPS}},
                "Properties": {
                    # The policy allows tables named efs-automount-* only.
                    "TableName": {"Fn::Sub": "efs-automount-idempotency-${AWS::StackName}"},
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
                },
            },
            "RetryDeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Metadata": {"checkov": {"skip": QUEUE_CHECKOV_SKIPS}},
                "Properties": {
                    "QueueName": f"{RETRY_QUEUE_NAME}-dlq",
                    "MessageRetentionPeriod": 1209600,
                    "SqsManagedSseEnabled": True,
                },
            },
            "RetryQueue": {
                "Type": "AWS::SQS::Queue",
                "Metadata": {"checkov": {"skip": QUEUE_CHECKOV_SKIPS}},
                "Properties": {
                    # The name `make package` subscribes on_retry to.
                    "QueueName": RETRY_QUEUE_NAME,
                    # At least six times the function timeout, as Lambda's SQS trigger advises.
                    "VisibilityTimeout": 360,
                    "MessageRetentionPeriod": 86400,
                    "SqsManagedSseEnabled": True,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["RetryDeadLetterQueue", "Arn"]},
                        "maxReceiveCount": 5,
                    },
                },
            },
            "RetryQueuePolicy": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "Queues": [{"Ref": "RetryQueue"}],
                    "PolicyDocument": retry_queue_policy(
                        {"Fn::GetAtt": ["RetryQueue", "Arn"]},
                        [{"Fn::GetAtt": [f"{function}Role", "Arn"]} for function in retry_senders()],
                    ),
                },
            },
            "OnRetry": {
                "Properties": {
                    "Environment": {"Variables": {"RETRY_QUEUE_URL": {"Ref": "RetryQueue"}}},
                    "Events": {
                        "OnRetrySqsEventSource": {"Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}
                    },
                },
            },
        },
    }
    resources = template["Resources"]
    resources.update(
        operations.operations_resources(
            {function: function_name(function) for function in FUNCTIONS}, list(forwarded_patterns().values())
        )
    )
    # Every setting from its parameter; the opt-ins on the functions that run the rewrite's follow-ups only.
    for function in FUNCTIONS:
        _add_variables(resources, function, stack_parameters.function_variables(function))
    for function, pattern in PARAMETER_PATTERNS.items():
        events = resources[function].setdefault("Properties", {}).setdefault("Events", {})
        events[f"{function}Event"] = {"Properties": {"Pattern": pattern}}
    # Repair registers a missed rewrite through the same flow, so it learns the same table.
    for function in FOLLOW_UPS_FUNCTIONS:
        _add_variables(resources, function, {"IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"}})
    # Functions that may schedule a retry learn the queue. The Ref also makes the subscriber (and the
    # event source mapping SAM makes for it) wait for the queue to exist.
    for function in retry_senders():
        if function != "OnRetry":
            _add_variables(resources, function, {"RETRY_QUEUE_URL": {"Ref": "RetryQueue"}})
    for function in FUNCTIONS:
        resource = resources.setdefault(function, {})
        resource["Metadata"] = {"checkov": {"skip": FUNCTION_CHECKOV_SKIPS}}
        resource.setdefault("Properties", {})["FunctionName"] = function_name(function)
        resource["Properties"]["Description"] = f"efs-automount {__version__}: {chalice_name(function)}"
    return template


def _add_variables(resources: dict[str, Any], function: str, variables: dict[str, Any]) -> None:
    properties = resources.setdefault(function, {}).setdefault("Properties", {})
    properties.setdefault("Environment", {}).setdefault("Variables", {}).update(variables)


def member_policy() -> dict[str, Any]:
    policy = json.loads(POLICY.read_text())
    return template_policy([s for s in policy["Statement"] if s["Sid"] not in APP_ONLY_STATEMENTS])


def stage_policy(settings: list[str], account: str | None = None) -> dict[str, Any]:
    """policy.json plus the opt-in statements of the given settings: a stage's iam_policy_file for `chalice deploy`;
    with `account`, that account written into the ARNs it pins (no aws:ResourceAccount condition left)."""
    parameters = {setting: parameter for parameter, setting in OPT_INS.items()}
    unknown = sorted(set(settings) - set(parameters))
    if unknown:
        raise SystemExit(f"unknown opt-in settings {unknown}; known: {sorted(parameters)}")
    if account is not None and not ACCOUNT_ID.fullmatch(account):
        raise SystemExit(f"--account {account!r} is not a 12-digit AWS account id")
    policy = json.loads(POLICY.read_text())
    for setting in settings:
        policy["Statement"] += opt_in_statements(parameters[setting])
    if account is not None:
        policy["Statement"] = [account_pinned(s, account, "*") for s in policy["Statement"]]
    return policy


def member_parameter(name: str, description: str) -> dict[str, Any]:
    """A setting of the app the member template needs too: the app stack's parameter, the same default and range."""
    return {**stack_parameters.BY_NAME[name].template(), "Description": description}


def member_template(roots: tuple[str, ...] | None = None) -> dict[str, Any]:
    roots = roots or built_roots()
    trust_condition = {
        "Fn::If": [
            "HasExternalId",
            {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"efs-automount {__version__} member account: the role the app assumes here, the mount document, "
            "and the rules forwarding events to the app."
        ),
        "Parameters": {
            "AppRoleArns": {
                "Type": "CommaDelimitedList",
                "AllowedPattern": ROLE_ARN_PATTERN,
                "Description": (
                    "The app's execution role ARNs, comma-separated: the AppRoleArns output of the app's stack, "
                    "or arn:aws:iam::<app account>:role/efs-automount-<stage>-<function> for chalice deploy."
                ),
            },
            "AppRegion": {
                "Type": "String",
                "AllowedPattern": REGION.pattern,
                "Description": (
                    "The app's region: a member stack in any region forwards to the app account's default bus there "
                    "(EventBridge delivers across regions), the one bus the app reads and grants."
                ),
            },
            "ExternalId": member_parameter("ExternalId", "The app's EXTERNAL_ID setting, if set."),
            **opt_in_parameters(),
            "HookName": member_parameter("HookName", "The app's HOOK_NAME: its launch actions are forwarded."),
            "MountDocumentName": member_parameter(
                "MountDocumentName",
                "The app's MOUNT_DOCUMENT: the document created here, whose commands are forwarded.",
            ),
            "MemberRoleName": member_parameter("MemberRoleName", "The app's MEMBER_ROLE_NAME: the role created here."),
            "RoleRegion": {
                "Type": "String",
                "Default": "",
                "AllowedPattern": f"^$|{REGION.pattern}",
                "Description": (
                    "Where the member role, which IAM keeps account-wide, is created: empty for a stack in one region; "
                    "for a StackSet over several regions, one of them (the others create no role)."
                ),
            },
        },
        "Conditions": {
            "HasExternalId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]},
            **opt_in_conditions(),
            "CreatesRole": {
                "Fn::Or": [
                    {"Fn::Equals": [{"Ref": "RoleRegion"}, ""]},
                    {"Fn::Equals": [{"Ref": "RoleRegion"}, {"Ref": "AWS::Region"}]},
                ]
            },
            **{
                f"{parameter}OnRole": {"Fn::And": [{"Condition": f"{parameter}On"}, {"Condition": "CreatesRole"}]}
                for parameter in OPT_INS
            },
        },
        "Resources": {
            "MemberRole": {
                "Type": "AWS::IAM::Role",
                "Condition": "CreatesRole",
                "Properties": {
                    "RoleName": ref("MemberRoleName"),
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                # The app's roles only, never its account's root: any other principal of the
                                # app's account would otherwise get these rights in every trusted account.
                                "Principal": {"AWS": {"Ref": "AppRoleArns"}},
                                "Action": "sts:AssumeRole",
                                "Condition": trust_condition,
                            }
                        ],
                    },
                    "Policies": [{"PolicyName": "efs-automount-member", "PolicyDocument": member_policy()}],
                },
            },
            **opt_in_policies(["MemberRole"], condition_suffix="OnRole"),
            "MountDocument": document_resource(roots),
            **forward_rules(),
        },
        "Outputs": {"Version": {"Description": "The efs-automount version of this template.", "Value": __version__}},
    }


# The app's account, read from its first role ARN (arn:partition:iam::account:role/name), and its region (a
# parameter): a member stack in another region forwards there, not to its own region's bus, which no app reads.
APP_ACCOUNT_ID = {"Fn::Select": [4, {"Fn::Split": [":", {"Fn::Select": [0, {"Ref": "AppRoleArns"}]}]}]}
APP_BUS = {
    "Fn::Sub": [
        "arn:${AWS::Partition}:events:${AppRegion}:${AppAccountId}:event-bus/default",
        {"AppAccountId": APP_ACCOUNT_ID},
    ]
}


def forwarded_patterns() -> dict[str, dict[str, Any]]:
    """Every pattern the app's EventBridge handlers are declared with (app.py), by the rule that forwards it."""
    return {
        "ForwardLaunchActions": launch_pattern(ref("HookName")),
        "ForwardMountCommandStatus": command_status_pattern(ref("MountDocumentName")),
        "ForwardContainerInstances": container_instance_pattern(),
        # Recorded only where the member account has a trail of management events (docs/getting-started.md).
        "ForwardTaskDefinitions": task_definition_registered_pattern(),
    }


def forward_rules() -> dict[str, Any]:
    """Rules sending this account's events to the app's default bus, with the app's own patterns, through a role:
    a bus that grants a whole organization (aws:PrincipalOrgID) accepts a member's rule only with one."""
    rules: dict[str, Any] = {
        name: {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "efs-automount: forward to the app's account",
                "EventPattern": pattern,
                "Targets": [{"Id": "efs-automount", "Arn": APP_BUS, "RoleArn": {"Fn::GetAtt": ["ForwardRole", "Arn"]}}],
            },
        }
        for name, pattern in forwarded_patterns().items()
    }
    rules["ForwardRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": "efs-automount: EventBridge puts this account's events on the app's bus, nowhere else",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            "Policies": [
                {
                    "PolicyName": "efs-automount-forward",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": APP_BUS}],
                    },
                }
            ],
        },
    }
    return rules


DOCUMENT_DIGEST = ROOT / "chalicelib" / "checks" / "document_digest.py"


def document_digest_module(document: dict[str, Any]) -> str:
    """The module that tells the Lambda which mount document the app deploys: the package holds app.py and
    chalicelib/ only, never deploy/."""
    return (
        '"""Generated by tools/build_deploy.py (`make deploy-files`); do not edit.\n'
        "\n"
        "The canonical digest (chalicelib/checks/rules.py content_digest) of the mount document this app deploys,\n"
        "deploy/mount-document.json: the document-drift check compares the document's default version in each\n"
        'account and region with it."""\n'
        "\n"
        f'MOUNT_DOCUMENT_DIGEST = "{content_digest(document)}"\n'
    )


def outputs(roots: tuple[str, ...] | None = None, base: Path = ROOT) -> dict[Path, dict[str, Any] | str]:
    """What `make deploy-files` writes, by path: for the roots of .chalice/config.json into this tree, or for other
    roots into a copy of it (`base`, tools/deploy.py's build for MOUNT_ROOTS=...)."""
    roots = roots or built_roots()
    document = mount_document(roots)
    return {
        base / path.relative_to(ROOT): content
        for path, content in {
            DEPLOY / "mount-document.json": document,
            DEPLOY / "app-resources.json": app_resources(roots),
            DEPLOY / "member-account.json": member_template(roots),
            DOCUMENT_DIGEST: document_digest_module(document),
        }.items()
    }


# Written without indentation: `aws cloudformation deploy` and `create-stack-set --template-body` take a template
# inline only up to 51,200 bytes (CloudFormation's TemplateBody limit), and indented it is larger.
COMPACT = {DEPLOY / "member-account.json"}


def render(content: dict[str, Any] | str, path: Path | None = None) -> str:
    if isinstance(content, str):
        return content
    if path is not None and path.name in {p.name for p in COMPACT}:
        return json.dumps(content, separators=(",", ":")) + "\n"
    return json.dumps(content, indent=2) + "\n"


def main() -> None:
    if sys.argv[1:2] == ["stage-policy"]:
        arguments = sys.argv[2:]
        account = None
        if arguments[:1] == ["--account"]:
            if len(arguments) < 2:
                raise SystemExit("usage: tools/build_deploy.py stage-policy [--account <account id>] [SETTING...]")
            account, arguments = arguments[1], arguments[2:]
        print(render(stage_policy(arguments, account)), end="")
        return
    if sys.argv[1:2] == ["retry-queue-attributes"]:
        if len(sys.argv) != 4:
            raise SystemExit("usage: tools/build_deploy.py retry-queue-attributes <queue url> <stage>")
        print(render(retry_queue_attributes(sys.argv[2], sys.argv[3])), end="")
        return
    DEPLOY.mkdir(exist_ok=True)
    for path, content in outputs().items():
        path.write_text(render(content, path))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

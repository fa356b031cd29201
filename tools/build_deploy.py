"""Writes deploy/: the mount document, the templates that create it, and the member account template.

Run `make deploy-files` after changing host/mount-efs.sh, the tag patterns in
chalicelib/mount_spec.py or .chalice/policy.json; a test fails while deploy/ is stale.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chalicelib.aws_names import REGION  # noqa: E402
from chalicelib.events import command_status_pattern, container_instance_pattern, launch_pattern  # noqa: E402
from chalicelib.mount_spec import ACCESS_POINT_ID, FILE_SYSTEM_ID, IPV4_ADDRESS, MOUNT_PATH  # noqa: E402
from chalicelib.settings import DEFAULT_HOOK_NAME, DEFAULT_MEMBER_ROLE_NAME, DEFAULT_MOUNT_DOCUMENT  # noqa: E402

SCRIPT = ROOT / "host" / "mount-efs.sh"
RETRY_QUEUE_NAME = "efs-automount-retries"
# Lets on_retry report single failed messages (Powertools batch) instead of failing the whole batch.
PARTIAL_BATCH = ["ReportBatchItemFailures"]
POLICY = ROOT / ".chalice" / "policy.json"
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

PARAMETERS: dict[str, tuple[str, str, str | None]] = {
    "FileSystemId": ("The EFS file system id.", FILE_SYSTEM_ID.pattern, None),
    "MountPath": ("Absolute host path to mount it at.", MOUNT_PATH.pattern, None),
    "Region": ("The file system's region.", REGION.pattern, None),
    "AccessPointId": ("An EFS access point id, or empty.", f"^$|{ACCESS_POINT_ID.pattern}", ""),
    "MountTargetIp": (
        "IP of the mount target in the host's AZ, used when the DNS name does not resolve yet; or empty.",
        f"^$|{IPV4_ADDRESS.pattern}",
        "",
    ),
    "ReadOnly": ("true to mount read-only.", "^(true|false)$", "false"),
    "RequireTls": ("true when the mount must use TLS (never plain NFS).", "^(true|false)$", "false"),
    "DnsWaitSeconds": ("How long to wait for the file system's DNS name before using the IP.", "^[0-9]{1,3}$", "30"),
}


def mount_document() -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    # Agents older than 3.3.2746.0 do not set SSM_* variables: fall back to SSM's own
    # substitution, which allowedPattern keeps to characters that cannot leave the quotes.
    # SSM runs the commands with sh, which is dash on some distributions: re-run under bash.
    prelude = ['if [ -z "${BASH_VERSION-}" ]; then exec bash "$0" "$@"; fi']
    for name, (description, pattern, default) in PARAMETERS.items():
        parameters[name] = {
            "type": "String",
            "description": description,
            "allowedPattern": pattern,
            "interpolationType": "ENV_VAR",
        }
        if default is not None:
            parameters[name]["default"] = default
        prelude.append(f"if [ -z \"${{SSM_{name}+x}}\" ]; then export SSM_{name}='{{{{ {name} }}}}'; fi")
    script = SCRIPT.read_text().splitlines()
    return {
        "schemaVersion": "2.2",
        "description": "efs-automount: mount an Amazon EFS file system on this host (idempotent, fstab, verified).",
        "parameters": parameters,
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "mountEfs",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {"timeoutSeconds": "600", "runCommand": prelude + script},
            }
        ],
    }


def document_resource() -> dict[str, Any]:
    return {
        "Type": "AWS::SSM::Document",
        "Properties": {
            "Name": DEFAULT_MOUNT_DOCUMENT,
            "DocumentType": "Command",
            "DocumentFormat": "JSON",
            "UpdateMethod": "NewVersion",
            "Content": mount_document(),
        },
    }


def app_resources() -> dict[str, Any]:
    """Merged into `chalice package`: the mount document, and the idempotency table wired to its function."""
    return {
        "Resources": {
            "MountDocument": document_resource(),
            "IdempotencyTable": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    # The policy allows tables named efs-automount-* only.
                    "TableName": {"Fn::Sub": "efs-automount-idempotency-${AWS::StackName}"},
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
                },
            },
            "OnTaskDefinition": {
                "Properties": {"Environment": {"Variables": {"IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"}}}}
            },
            "RetryDeadLetterQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"QueueName": f"{RETRY_QUEUE_NAME}-dlq", "MessageRetentionPeriod": 1209600},
            },
            "RetryQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {
                    # The name `make package` subscribes on_retry to.
                    "QueueName": RETRY_QUEUE_NAME,
                    # At least six times the function timeout, as Lambda's SQS trigger advises.
                    "VisibilityTimeout": 360,
                    "MessageRetentionPeriod": 86400,
                    "RedrivePolicy": {
                        "deadLetterTargetArn": {"Fn::GetAtt": ["RetryDeadLetterQueue", "Arn"]},
                        "maxReceiveCount": 5,
                    },
                },
            },
            # Functions that may schedule a retry learn the queue; the subscriber waits for it to exist.
            **{
                function: {"Properties": {"Environment": {"Variables": {"RETRY_QUEUE_URL": {"Ref": "RetryQueue"}}}}}
                for function in ("OnLaunch", "OnCommandStatus", "Sweeper", "Repair")
            },
            "OnRetry": {
                "DependsOn": ["RetryQueue"],
                "Properties": {
                    "Environment": {"Variables": {"RETRY_QUEUE_URL": {"Ref": "RetryQueue"}}},
                    "Events": {
                        "OnRetrySqsEventSource": {"Properties": {"FunctionResponseTypes": ["ReportBatchItemFailures"]}}
                    },
                },
            },
        }
    }


def member_policy() -> dict[str, Any]:
    policy = json.loads(POLICY.read_text())
    kept = [copy.deepcopy(s) for s in policy["Statement"] if s["Sid"] not in APP_ONLY_STATEMENTS]
    return {"Version": policy["Version"], "Statement": kept}


def member_template() -> dict[str, Any]:
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
            "efs-automount member account: the role the app assumes here, the mount document, "
            "and the rules forwarding events to the app."
        ),
        "Parameters": {
            "AppAccountId": {
                "Type": "String",
                "AllowedPattern": "^\\d{12}$",
                "Description": "Account running efs-automount.",
            },
            "ExternalId": {"Type": "String", "Default": "", "Description": "The app's EXTERNAL_ID setting, if set."},
        },
        "Conditions": {"HasExternalId": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExternalId"}, ""]}]}},
        "Resources": {
            "MemberRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": DEFAULT_MEMBER_ROLE_NAME,
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AppAccountId}:root"}},
                                "Action": "sts:AssumeRole",
                                "Condition": trust_condition,
                            }
                        ],
                    },
                    "Policies": [{"PolicyName": "efs-automount-member", "PolicyDocument": member_policy()}],
                },
            },
            "MountDocument": document_resource(),
            **forward_rules(),
        },
    }


def forward_rules() -> dict[str, Any]:
    """Rules sending this account's events to the app's default bus, with the app's own patterns."""
    patterns = {
        "ForwardLaunchActions": launch_pattern(DEFAULT_HOOK_NAME),
        "ForwardMountCommandStatus": command_status_pattern(DEFAULT_MOUNT_DOCUMENT),
        "ForwardContainerInstances": container_instance_pattern(),
    }
    return {
        name: {
            "Type": "AWS::Events::Rule",
            "Properties": {
                "Description": "efs-automount: forward to the app's account",
                "EventPattern": pattern,
                "Targets": [
                    {
                        "Id": "efs-automount",
                        "Arn": {
                            "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AppAccountId}:event-bus/default"
                        },
                    }
                ],
            },
        }
        for name, pattern in patterns.items()
    }


def outputs() -> dict[Path, dict[str, Any]]:
    return {
        DEPLOY / "mount-document.json": mount_document(),
        DEPLOY / "app-resources.json": app_resources(),
        DEPLOY / "member-account.json": member_template(),
    }


def render(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2) + "\n"


def main() -> None:
    DEPLOY.mkdir(exist_ok=True)
    for path, content in outputs().items():
        path.write_text(render(content))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""`chalice package` builds a deployable template: every handler's rule, the settings, the mount document."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from chalice.app import CloudWatchEventConfig

from app import app
from tests.conftest import ROOT


def test_package_has_every_rule_with_the_app_pattern_and_the_mount_document(package_dir: Path):
    template = json.loads((package_dir / "sam.json").read_text())
    resources, parameters = template["Resources"], template["Parameters"]

    patterns = {
        event["Properties"]["Pattern"]["detail-type"][0]
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] == "CloudWatchEvent"
    }
    expected = {
        source.event_pattern["detail-type"][0]
        for source in app.event_sources
        if isinstance(source, CloudWatchEventConfig)
    }
    assert patterns == expected
    # Named by the stack's parameter, the app's MOUNT_DOCUMENT, whose default is the contract's
    assert resources["MountDocument"]["Properties"]["Name"] == {"Ref": "MountDocumentName"}
    assert parameters["MountDocumentName"]["Default"] == "efs-automount-mount"
    retry = resources["OnRetry"]
    (subscription,) = retry["Properties"]["Events"].values()
    assert subscription["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert subscription["Properties"]["Queue"] == {
        "Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:efs-automount-retries"
    }
    assert resources["RetryQueue"]["Properties"]["QueueName"] == "efs-automount-retries"
    # The subscriber waits for its queue through the Ref (a DependsOn on top is redundant: cfn-lint W3005).
    assert "DependsOn" not in retry
    for function in ("OnLaunch", "OnCommandStatus", "Sweeper", "OnRetry"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["RETRY_QUEUE_URL"] == {"Ref": "RetryQueue"}, function
    (schedule,) = resources["Sweeper"]["Properties"]["Events"].values()
    assert schedule["Properties"]["Schedule"] == "rate(1 minute)"
    variables = resources["OnLaunch"]["Properties"]["Environment"]["Variables"]
    assert variables["HOOK_NAME"] == {"Ref": "HookName"} and variables["ON_FAILURE"] == {"Ref": "OnFailure"}
    assert (parameters["HookName"]["Default"], parameters["OnFailure"]["Default"]) == ("efs-automount", "ABANDON")
    rewrite_variables = resources["OnTaskDefinition"]["Properties"]["Environment"]["Variables"]
    assert rewrite_variables["IDEMPOTENCY_TABLE"] == {"Ref": "IdempotencyTable"}
    assert rewrite_variables["HOOK_NAME"] == {"Ref": "HookName"}
    assert resources["IdempotencyTable"]["Type"] == "AWS::DynamoDB::Table"
    repair = resources["Repair"]["Properties"]
    # Measured in `make bench` (README: Repair): a 1,000-host cluster with 200 services fits in one invocation.
    assert (repair["Timeout"], repair["MemorySize"]) == (900, 512)
    assert "Events" not in repair  # invoked by hand only
    assert repair["Environment"]["Variables"]["RETRY_QUEUE_URL"] == {"Ref": "RetryQueue"}
    # The rewrite keeps what this botocore's model knows: the package carries the pinned botocore
    shipped = zipfile.ZipFile(package_dir / "deployment.zip").namelist()
    for name, version in _pins("requirements.txt").items():
        dist_info = f"{name.replace('-', '_')}-{version}.dist-info/METADATA"
        assert dist_info in shipped, f"{dist_info} is not in deployment.zip"
    assert "botocore/data/ecs/2014-11-13/service-2.json.gz" in shipped or (
        "botocore/data/ecs/2014-11-13/service-2.json" in shipped
    )


def _pins(requirements: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / requirements).read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\[\]-]+)==(\S+)", line.split("#")[0].strip())
        if match:
            pins[re.sub(r"\[.*\]", "", match[1]).lower()] = match[2]
    return pins


def test_the_shipped_boto3_and_botocore_are_the_ones_the_tests_run_with():
    shipped, tested = _pins("requirements.txt"), _pins("requirements-dev.txt")
    import boto3
    import botocore

    assert shipped["boto3"] == tested["boto3"] == boto3.__version__
    assert shipped["botocore"] == tested["botocore"] == botocore.__version__

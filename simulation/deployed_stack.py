"""The packaged template deployed into moto: SAM translated offline (aws-sam-translator, as CloudFormation's
AWS::Serverless transform would), then created by moto's CloudFormation, with the resource types moto lacks.

Test and benchmark tooling only: never packaged (chalicelib/ is what Lambda gets).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend
from moto.core.common_models import CloudFormationModel

STACK_NAME = "efs-automount"
CODE_BUCKET = "efs-automount-package"
CODE_KEY = "deployment.zip"
# What `aws cloudformation deploy` needs to create the packaged template's roles and expand its SAM transform.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]


def translate(sam: dict[str, Any], region: str, packaged: bool = False) -> dict[str, Any]:
    """The SAM template as CloudFormation expands it, offline: every function's code at s3://CODE_BUCKET/CODE_KEY
    (what `aws cloudformation package` writes in place of the local zip), or where `packaged` says it is."""
    from samtranslator.translator.arn_generator import ArnGenerator
    from samtranslator.translator.transform import transform

    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function" and not packaged:
            resource["Properties"]["CodeUri"] = f"s3://{CODE_BUCKET}/{CODE_KEY}"

    class NoManagedPolicies:
        """The app's roles are its own (AWS::IAM::Role): SAM has no managed policy name to look up."""

        def load(self) -> dict[str, str]:
            return {}

    ArnGenerator.BOTO_SESSION_REGION_NAME = region
    return transform(sam, {}, NoManagedPolicies())


def create_stack(session: Any, sam: dict[str, Any], parameters: dict[str, str] | None = None) -> str:
    """Deploy the packaged template into the (mocked) account of `session` as stack STACK_NAME; returns its id.
    Raises when the stack does not reach CREATE_COMPLETE."""
    install()
    region = session.region_name
    s3 = session.client("s3")
    if region == "us-east-1":
        s3.create_bucket(Bucket=CODE_BUCKET)
    else:
        s3.create_bucket(Bucket=CODE_BUCKET, CreateBucketConfiguration={"LocationConstraint": region})
    # The code is not what is checked (the configuration is): a zip Lambda accepts.
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", "")
    s3.put_object(Bucket=CODE_BUCKET, Key=CODE_KEY, Body=code.getvalue())
    cloudformation = session.client("cloudformation")
    stack_id = cloudformation.create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(translate(sam, region)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in (parameters or {}).items()],
        Capabilities=CAPABILITIES,
    )["StackId"]
    (stack,) = cloudformation.describe_stacks(StackName=stack_id)["Stacks"]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack {STACK_NAME}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
    return stack_id


# --- what moto's CloudFormation lacks ------------------------------------------------------------------


class _Made:
    """A resource made through the service's own backend; CloudFormation only needs its physical id. (Each model
    names CloudFormationModel as a direct base: moto lists its direct subclasses only.)"""

    def __init__(self, physical_id: str, attributes: dict[str, str] | None = None) -> None:
        self.physical_id = physical_id
        self.attributes = attributes or {}

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in cls.ATTRIBUTES

    def get_cfn_attribute(self, attribute_name: str) -> str:
        return self.attributes[attribute_name]

    ATTRIBUTES: tuple[str, ...] = ()

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""


class QueuePolicy(_Made, CloudFormationModel):
    """AWS::SQS::QueuePolicy: the policy set on each queue, as SQS SetQueueAttributes would."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> QueuePolicy:
        from moto.sqs.models import sqs_backends

        properties = cloudformation_json["Properties"]
        policy = json.dumps(properties["PolicyDocument"])
        for url in properties["Queues"]:
            sqs_backends[account_id][region_name].set_queue_attributes(url.rsplit("/", 1)[-1], {"Policy": policy})
        return cls(resource_name)


class EventBusPolicy(_Made, CloudFormationModel):
    """AWS::Events::EventBusPolicy with a Statement: that statement added to the bus's policy under its id."""

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::Events::EventBusPolicy"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> EventBusPolicy:
        from moto.events.models import EventBusPolicyStatement, events_backends

        properties = cloudformation_json["Properties"]
        bus = events_backends[account_id][region_name].describe_event_bus(properties.get("EventBusName", "default"))
        sid = properties["StatementId"]
        bus._statements[sid] = EventBusPolicyStatement.from_dict({"Sid": sid, **properties["Statement"]})
        return cls(sid)


class Alarm(_Made, CloudFormationModel):
    """AWS::CloudWatch::Alarm: the alarm put through CloudWatch's backend, a metric's or a query's."""

    ATTRIBUTES = ("Arn",)

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> Alarm:
        from moto.cloudwatch.models import MetricDataQuery, cloudwatch_backends

        p = cloudformation_json["Properties"]
        queries = [
            MetricDataQuery(
                q["Id"], q.get("Label", ""), q.get("Period"), q.get("ReturnData", True), q.get("Expression")
            )
            for q in p.get("Metrics", [])
        ]
        alarm = cloudwatch_backends[account_id][region_name].put_metric_alarm(
            name=p["AlarmName"],
            namespace=p.get("Namespace"),
            metric_name=p.get("MetricName"),
            comparison_operator=p["ComparisonOperator"],
            evaluation_periods=p["EvaluationPeriods"],
            period=p.get("Period"),
            threshold=p["Threshold"],
            statistic=p.get("Statistic"),
            description=p.get("AlarmDescription", ""),
            dimensions=p.get("Dimensions", []),
            alarm_actions=p.get("AlarmActions", []),
            ok_actions=p.get("OKActions", []),
            metric_data_queries=queries or None,
            datapoints_to_alarm=p.get("DatapointsToAlarm"),
            treat_missing_data=p.get("TreatMissingData"),
        )
        return cls(alarm.name, {"Arn": alarm.alarm_arn})


ADDED = (QueuePolicy, EventBusPolicy, Alarm)


def _describe_stack_resource(backend: Any, stack_name: str, logical_resource_id: str) -> Any:
    """moto's DescribeStackResource, past the resources a false condition left uncreated (None in moto's map)."""
    stack = backend.get_stack(stack_name)
    for resource in stack.stack_resources:
        if resource is not None and resource.logical_resource_id == logical_resource_id:
            return stack, resource
    raise ValidationError(stack_name, f"Resource {logical_resource_id} does not exist for stack {stack_name}")


def install() -> None:
    """Make moto's CloudFormation know the added types (it lists CloudFormationModel's subclasses once, cached)."""
    CloudFormationBackend.describe_stack_resource = _describe_stack_resource  # type: ignore[method-assign]
    for cache in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cache.cache_clear()
    missing = [
        model.cloudformation_type() for model in ADDED if model.cloudformation_type() not in parsing.get_model_map()
    ]
    if missing:
        raise RuntimeError(f"moto's CloudFormation still lacks {missing}")


# --- what moto lacks for `make deploy` and its siblings (tests/test_deploy_commands.py) --------------------------
# Each is a replacement the tests put in place with monkeypatch (undone after each test); the moto server they run the
# AWS CLI against serves from this process's moto, so the replacements apply to it too.


def create_change_set_with_transform(original: Any) -> Any:
    """CloudFormation expands a template's AWS::Serverless transform when it creates a change set (`aws cloudformation
    deploy`); moto does not: the template is translated here as CloudFormation would, its code where `package` put
    it."""

    def create_change_set(self: CloudFormationBackend, stack_name: str, change_set_name: str, template: str, *args: Any,
                          **kwargs: Any) -> Any:  # fmt: skip
        body = json.loads(template)
        if body.get("Transform") == "AWS::Serverless-2016-10-31":
            template = json.dumps(translate(body, self.region_name, packaged=True))
        return original(self, stack_name, change_set_name, template, *args, **kwargs)

    return create_change_set


def delete_stack_instances_by_unit(self: Any) -> Any:
    """DeleteStackInstances of a service-managed StackSet names organizational units (DeploymentTargets), which moto
    ignores: the accounts of those units (and of the units below them) are the ones deleted."""
    from moto.cloudformation.responses import ActionResult
    from moto.organizations.models import organizations_backends

    units = (self._get_params().get("DeploymentTargets") or {}).get("OrganizationalUnitIds", [])
    organization = organizations_backends[self.current_account]["aws"]
    below = [ou.id for ou in organization.ou if ou.parent_id in units]
    accounts = [a.id for a in organization.accounts if a.parent_id in units + below]
    stack_set = self.cloudformation_backend.delete_stack_instances(
        self._get_param("StackSetName"), accounts + self._get_param("Accounts", []), self._get_param("Regions", [])
    )
    return ActionResult({"OperationId": stack_set.operations[-1]["OperationId"]})


def execute_change_set_with_outputs(original: Any) -> Any:
    """A stack made or changed through a change set has its template's outputs (moto computes them for CreateStack
    and UpdateStack only)."""

    def execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        original(self, change_set_name, stack_name)
        for stack in self.stacks.values():
            if stack.name == stack_name or stack.stack_id == stack_name:
                stack._parse_template()
                stack.output_map = stack._create_output_map()

    return execute_change_set

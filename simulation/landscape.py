"""Builds the AWS a platform team would have, on moto: network, EFS, an ECS cluster, a tagged group.

Shared by the tests and the demo; never shipped.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from simulation import moto_gaps

ROOT = Path(__file__).resolve().parent.parent
MOUNT_DOCUMENT = ROOT / "deploy" / "mount-document.json"
AMI_ID = "ami-12c6146b"  # one of moto's built-in images


@dataclass
class Landscape:
    """One account and region's worth of efs-automount's world."""

    session: boto3.Session
    account: str
    region: str
    cluster_name: str = "apps"
    group_name: str = "ecs-hosts"
    hook_name: str = "efs-automount"
    file_system_id: str = ""
    cluster_arn: str = ""
    vpc_id: str = ""
    subnet_ids: list[str] = field(default_factory=list)
    # As the README asks: the hosts' group, and the mount targets' group admitting TCP 2049 from it.
    host_security_group_id: str = ""
    mount_target_security_group_id: str = ""

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=self.region)


def session_in_account(account: str, region: str = "us-east-1") -> boto3.Session:
    """A session whose calls moto serves in `account` (as an administrator of that account would make them)."""
    session = boto3.Session(region_name=region)

    def add_account_header(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account

    session.events.register("before-sign.*.*", add_account_header)
    return session


def create_member_role(session: boto3.Session, app_account: str, external_id: str = "") -> str:
    """The member role of deploy/member-account.json. It trusts the app's account here: the app's moto
    credentials are not a role (the real template trusts the app's roles only, tests/test_security_policy.py)."""
    template = json.loads((ROOT / "deploy" / "member-account.json").read_text())
    # Deployed with the names' defaults (the app's settings as .chalice/config.json gives them)
    names = {name: parameter.get("Default", "") for name, parameter in template["Parameters"].items()}
    properties = template["Resources"]["MemberRole"]["Properties"]
    role_name = names[properties["RoleName"]["Ref"]]
    statement = dict(properties["AssumeRolePolicyDocument"]["Statement"][0])
    statement["Principal"] = {"AWS": f"arn:aws:iam::{app_account}:root"}
    statement.pop("Condition")
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    iam = session.client("iam")
    role = iam.create_role(
        RoleName=role_name,
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    member_account = role["Role"]["Arn"].split(":")[4]
    for policy in properties["Policies"]:
        iam.put_role_policy(
            RoleName=role_name,
            PolicyName=policy["PolicyName"],
            PolicyDocument=json.dumps(_as_deployed(policy["PolicyDocument"], member_account, names)),
        )
    return role["Role"]["Arn"]


def _as_deployed(value: Any, account: str, parameters: dict[str, str]) -> Any:
    """The template's policy as CloudFormation deploys it: each Fn::Sub of an ARN resolved in the stack's account,
    with the template's parameters."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        text = value["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", account)
        for name, parameter in parameters.items():
            text = text.replace(f"${{{name}}}", parameter)
        return text
    if isinstance(value, dict):
        return {key: _as_deployed(item, account, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_deployed(item, account, parameters) for item in value]
    return value


def create_mount_document(ssm: Any, name: str = "efs-automount-mount") -> None:
    ssm.create_document(Name=name, Content=MOUNT_DOCUMENT.read_text(), DocumentType="Command", DocumentFormat="JSON")


def build_landscape(
    session: boto3.Session,
    region: str = "us-east-1",
    *,
    group_tags: dict[str, str] | None = None,
    hook_name: str = "efs-automount",
    group_name: str = "ecs-hosts",
    with_file_system: bool = True,
    with_document: bool = True,
) -> Landscape:
    """A VPC with a subnet per AZ, EFS with a mount target in each, an ECS cluster and a group with the hook; the
    security groups as the README asks (the mount targets' admits TCP 2049 from the hosts').

    `group_tags` default to the file system tag; pass {} for a group without it.
    """
    account = session.client("sts", region_name=region).get_caller_identity()["Account"]
    land = Landscape(session=session, account=account, region=region, hook_name=hook_name, group_name=group_name)
    ec2 = land.client("ec2")
    vpc_id = land.vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    land.host_security_group_id = ec2.create_security_group(
        GroupName=f"{group_name}-hosts", Description="ECS hosts of the group", VpcId=vpc_id
    )["GroupId"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]][:2]
    for index, zone in enumerate(zones):
        # /20: room for a burst of a thousand hosts.
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.0.{index * 16}.0/20", AvailabilityZone=zone)
        land.subnet_ids.append(subnet["Subnet"]["SubnetId"])
    if with_file_system:
        efs = land.client("efs")
        land.file_system_id = efs.create_file_system(CreationToken="shared-data", Encrypted=True)["FileSystemId"]
        land.mount_target_security_group_id = ec2.create_security_group(
            GroupName=f"{group_name}-efs-mount-targets", Description="NFS from the ECS hosts", VpcId=vpc_id
        )["GroupId"]
        nfs_from_hosts = {"GroupId": land.host_security_group_id, "Description": "NFS from the ECS hosts"}
        ec2.authorize_security_group_ingress(
            GroupId=land.mount_target_security_group_id,
            IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 2049, "ToPort": 2049, "UserIdGroupPairs": [nfs_from_hosts]}
            ],
        )
        for subnet_id in land.subnet_ids:
            efs.create_mount_target(
                FileSystemId=land.file_system_id,
                SubnetId=subnet_id,
                SecurityGroups=[land.mount_target_security_group_id],
            )
    if with_document:
        create_mount_document(land.client("ssm"))
    ecs = land.client("ecs")
    land.cluster_arn = ecs.create_cluster(clusterName=land.cluster_name)["cluster"]["clusterArn"]
    autoscaling = land.client("autoscaling")
    user_data = f"#!/bin/bash\necho ECS_CLUSTER={land.cluster_name} >> /etc/ecs/ecs.config\n"
    template_id = ec2.create_launch_template(
        LaunchTemplateName=f"{group_name}-template",
        LaunchTemplateData={
            "ImageId": AMI_ID,
            "InstanceType": "t3.medium",
            "SecurityGroupIds": [land.host_security_group_id],
            "UserData": base64.b64encode(user_data.encode()).decode(),
        },
    )["LaunchTemplate"]["LaunchTemplateId"]
    tags = {"efs-automount:file-system-id": land.file_system_id} if group_tags is None else group_tags
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group_name,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": "$Latest"},
        MinSize=0,
        MaxSize=1000,
        DesiredCapacity=0,
        VPCZoneIdentifier=",".join(land.subnet_ids),
        Tags=[
            {
                "Key": k,
                "Value": v,
                "PropagateAtLaunch": False,
                "ResourceId": group_name,
                "ResourceType": "auto-scaling-group",
            }
            for k, v in tags.items()
        ],
    )
    autoscaling.put_lifecycle_hook(
        LifecycleHookName=hook_name,
        AutoScalingGroupName=group_name,
        LifecycleTransition=moto_gaps.LAUNCHING,
        HeartbeatTimeout=900,
        DefaultResult="ABANDON",
    )
    return land


def scale_out(land: Landscape, count: int) -> list[str]:
    """Launch `count` more hosts; returns their instance ids (each now in Pending:Wait)."""
    autoscaling = land.client("autoscaling")
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"][0]
    before = {i["InstanceId"] for i in group["Instances"]}
    autoscaling.set_desired_capacity(AutoScalingGroupName=land.group_name, DesiredCapacity=len(before) + count)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[land.group_name])["AutoScalingGroups"][0]
    return sorted(i["InstanceId"] for i in group["Instances"] if i["InstanceId"] not in before)


def lifecycle_state(land: Landscape, instance_id: str) -> str:
    """The host's state in its group, or 'Terminated' once it left it."""
    found = land.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    states = found["AutoScalingInstances"]
    return states[0]["LifecycleState"] if states else "Terminated"


def register_container_instance(land: Landscape, instance_id: str) -> str:
    """The host's ECS agent registers it in the cluster; returns the container instance ARN."""
    ec2 = land.client("ec2")
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    document = {
        "instanceId": instance_id,
        "region": land.region,
        "availabilityZone": instance["Placement"]["AvailabilityZone"],
        "accountId": land.account,
    }
    response = land.client("ecs").register_container_instance(
        cluster=land.cluster_name, instanceIdentityDocument=json.dumps(document)
    )
    return response["containerInstance"]["containerInstanceArn"]


def mount_attribute(land: Landscape, container_instance_arn: str, path: str | None = None) -> str | None:
    """The value of the host's mount attribute in ECS for the landscape's file system at `path` (by default the
    group's mount path, as its tags say now), if set."""
    from chalicelib.mount.attribute import mount_attribute_name

    name = mount_attribute_name(land.file_system_id, path or group_mount_path(land))
    return container_instance_attributes(land, container_instance_arn).get(name)


def group_mount_path(land: Landscape) -> str:
    """The path the group's tags ask its file system to be mounted at now."""
    tags = land.client("autoscaling").describe_tags(
        Filters=[{"Name": "auto-scaling-group", "Values": [land.group_name]}]
    )["Tags"]
    return {t["Key"]: t["Value"] for t in tags}.get("efs-automount:mount-path") or f"/mnt/efs/{land.file_system_id}"


def container_instance_attributes(land: Landscape, container_instance_arn: str) -> dict[str, str | None]:
    """Every attribute of the container instance, as ECS reports it."""
    described = land.client("ecs").describe_container_instances(
        cluster=land.cluster_name, containerInstances=[container_instance_arn]
    )["containerInstances"]
    return {a["name"]: a.get("value") for a in (described[0].get("attributes", []) if described else [])}


def placeable_on(land: Landscape, task_definition: str) -> set[str]:
    """The container instances of the cluster where ECS would place the revision's tasks, as far as its memberOf
    placement constraints decide: ListContainerInstances with each constraint's expression as the filter (the
    same cluster query language)."""
    ecs = land.client("ecs")
    definition = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    admitted = set(ecs.list_container_instances(cluster=land.cluster_name)["containerInstanceArns"])
    for constraint in definition.get("placementConstraints") or []:
        if constraint.get("type") == "memberOf":
            found = ecs.list_container_instances(cluster=land.cluster_name, filter=constraint["expression"])
            admitted &= set(found["containerInstanceArns"])
    return admitted


def app_mount_parameters(land: Landscape, instance_id: str, **tags: str) -> dict[str, list[str]]:
    """The SendCommand parameters the app sends the host for the group's mount (its zone's mount target), as an
    operator re-running the app's mount by hand would copy them. `tags`: the group tags besides the file system's."""
    from chalicelib.mount.spec import mount_command_parameters, mount_spec_from_tags

    (instance,) = land.client("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])[
        "AutoScalingInstances"
    ]
    targets = land.client("efs").describe_mount_targets(FileSystemId=land.file_system_id)["MountTargets"]
    (ip,) = [t["IpAddress"] for t in targets if t["AvailabilityZoneName"] == instance["AvailabilityZone"]]
    spec = mount_spec_from_tags({"efs-automount:file-system-id": land.file_system_id, **tags})
    if spec is None:
        raise ValueError("the landscape has no file system")
    return mount_command_parameters(spec, land.region, ip)

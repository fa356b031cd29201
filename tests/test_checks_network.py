"""The network rules over moto: mount-target-missing and nfs-blocked, read from AWS as check_network reads them."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.checks import network
from chalicelib.checks.findings import Findings
from chalicelib.checks.network import check_network
from chalicelib.checks.reach import GroupRef, Rule, SecurityGroup
from chalicelib.mount.spec import MountSpec, default_mount_path
from chalicelib.plumbing.accounts import AwsAccess
from simulation.landscape import AMI_ID, Landscape, scale_out
from tests.support.network import NFS, SSH, replace_ingress


def raw_group(land: Landscape, name: str | None = None) -> dict[str, Any]:
    found = land.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name or land.group_name])
    return found["AutoScalingGroups"][0]


def check(
    land: Landscape, group: str | None = None, file_system_id: str | None = None, session: boto3.Session | None = None
) -> Findings:
    """What check_network finds for the group, through `session` (by default the landscape's)."""
    findings = Findings()
    fs = file_system_id or land.file_system_id
    described = raw_group(land, group)
    access = AwsAccess(land.account, land.region, session or land.session)
    check_network(access, described, MountSpec(fs, default_mount_path(fs)), findings)
    return findings


def mount_targets(land: Landscape) -> dict[str, dict[str, Any]]:
    """The landscape's mount targets by zone."""
    targets = land.client("efs").describe_mount_targets(FileSystemId=land.file_system_id)["MountTargets"]
    return {t["AvailabilityZoneName"]: t for t in targets}


def subnet_cidrs(land: Landscape) -> dict[str, str]:
    subnets = land.client("ec2").describe_subnets(SubnetIds=land.subnet_ids)["Subnets"]
    return {s["SubnetId"]: s["CidrBlock"] for s in subnets}


def new_group(land: Landscape, name: str) -> str:
    return land.client("ec2").create_security_group(GroupName=name, Description=name, VpcId=land.vpc_id)["GroupId"]


def put_in_service(land: Landscape, count: int = 1) -> list[str]:
    instance_ids = scale_out(land, count)
    for instance_id in instance_ids:
        land.client("autoscaling").complete_lifecycle_action(
            LifecycleHookName=land.hook_name,
            AutoScalingGroupName=land.group_name,
            InstanceId=instance_id,
            LifecycleActionResult="CONTINUE",
        )
    return instance_ids


# The landscape as the README asks.


def test_a_group_set_up_as_the_readme_asks_has_no_network_problem(land: Landscape):
    put_in_service(land, 2)
    findings = check(land)
    assert findings.problems == []
    assert findings.unsure == []


# mount-target-missing


def test_a_zone_without_a_mount_target_is_named_with_its_subnet(land: Landscape):
    ec2 = land.client("ec2")
    subnet = ec2.create_subnet(VpcId=land.vpc_id, CidrBlock="10.0.32.0/20", AvailabilityZone="us-east-1c")["Subnet"]
    land.client("autoscaling").update_auto_scaling_group(
        AutoScalingGroupName=land.group_name, VPCZoneIdentifier=",".join([*land.subnet_ids, subnet["SubnetId"]])
    )
    findings = check(land)
    assert findings.problems == [
        f"mount-target-missing: file system {land.file_system_id} has no mount target in us-east-1c, where group "
        f"{land.group_name} launches hosts (subnet {subnet['SubnetId']}); create one there"
    ]


def test_a_file_system_that_cannot_be_read_is_unsure_not_a_problem(land: Landscape):
    findings = check(land, file_system_id="fs-00000000")
    assert findings.problems == []
    assert "does not exist" in findings.unsure[0]


def test_a_group_in_its_zones_default_subnets(land: Landscape):
    # Without subnets a group launches into the default subnet of each of its zones (the default VPC's).
    autoscaling = land.client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="classic",
        LaunchTemplate={"LaunchTemplateName": f"{land.group_name}-template"},
        MinSize=0,
        MaxSize=1,
        AvailabilityZones=["us-east-1c"],
    )
    default_subnet = land.client("ec2").describe_subnets(
        Filters=[
            {"Name": "default-for-az", "Values": ["true"]},
            {"Name": "availability-zone", "Values": ["us-east-1c"]},
        ]
    )["Subnets"][0]["SubnetId"]
    findings = check(land, "classic")
    assert findings.rules() == ["mount-target-missing"]
    assert f"in us-east-1c, where group classic launches hosts (subnet {default_subnet})" in findings.problems[0]


# nfs-blocked


def test_a_mount_target_group_admitting_only_ssh_blocks_nfs_at_every_mount_target(land: Landscape):
    replace_ingress(land, {**SSH, "UserIdGroupPairs": [{"GroupId": land.host_security_group_id}]})
    findings = check(land)
    assert findings.rules() == ["nfs-blocked", "nfs-blocked"]
    target = mount_targets(land)["us-east-1b"]
    subnet = target["SubnetId"]
    assert findings.problems[1] == (
        f"nfs-blocked: mount target {target['MountTargetId']} in us-east-1b (security group "
        f"{land.mount_target_security_group_id}) admits no TCP 2049 from the hosts' security group "
        f"{land.host_security_group_id} or their subnet {subnet} ({subnet_cidrs(land)[subnet]}); allow it inbound"
    )


def test_a_range_covering_the_hosts_subnets_admits_them(land: Landscape):
    replace_ingress(land, {**NFS, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]})
    assert check(land).problems == []


def test_a_range_covering_one_subnet_blocks_the_other(land: Landscape):
    replace_ingress(land, {**NFS, "IpRanges": [{"CidrIp": "10.0.0.0/20"}]})
    findings = check(land)
    assert findings.rules() == ["nfs-blocked"]
    assert "in us-east-1b" in findings.problems[0]


def test_a_prefix_list_is_unsure_and_reports_nothing(land: Landscape):
    ec2 = land.client("ec2")
    prefix_list = ec2.create_managed_prefix_list(
        PrefixListName="office", MaxEntries=5, AddressFamily="IPv4", Entries=[{"Cidr": "10.0.0.0/16"}]
    )["PrefixList"]["PrefixListId"]
    replace_ingress(land, {**NFS, "PrefixListIds": [{"PrefixListId": prefix_list}]})
    findings = check(land)
    assert findings.problems == []
    assert len(findings.unsure) == 2
    assert all(f"prefix list {prefix_list}" in line for line in findings.unsure)


def test_egress_limited_to_https_blocks_nfs_on_the_hosts_side(land: Landscape):
    ec2 = land.client("ec2")
    everything = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ec2.revoke_security_group_egress(GroupId=land.host_security_group_id, IpPermissions=[everything])
    https = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ec2.authorize_security_group_egress(GroupId=land.host_security_group_id, IpPermissions=[https])
    findings = check(land)
    assert findings.rules() == ["nfs-blocked", "nfs-blocked"]
    target = mount_targets(land)["us-east-1a"]
    assert findings.problems[0] == (
        f"nfs-blocked: mount target {target['MountTargetId']} in us-east-1a ({target['IpAddress']}, security group "
        f"{land.mount_target_security_group_id}) is out of reach: the hosts' security group "
        f"{land.host_security_group_id} allows no TCP 2049 out to it; allow it outbound"
    )


def test_a_host_in_service_adds_its_groups_to_the_launch_templates(land: Landscape):
    (instance_id,) = put_in_service(land)
    extra = new_group(land, "monitoring")
    land.client("ec2").modify_instance_attribute(InstanceId=instance_id, Groups=[land.host_security_group_id, extra])
    replace_ingress(land, {**SSH, "IpRanges": [{"CidrIp": "10.0.0.0/16"}]})
    findings = check(land)
    assert findings.rules() == ["nfs-blocked", "nfs-blocked"]
    assert (
        f"from the hosts' security groups {', '.join(sorted([extra, land.host_security_group_id]))}"
        in (findings.problems[0])
    )


def test_a_launch_template_without_groups_means_the_vpcs_default_group(land: Landscape):
    ec2 = land.client("ec2")
    template = f"{land.group_name}-template"
    ec2.create_launch_template_version(LaunchTemplateName=template, LaunchTemplateData={"ImageId": AMI_ID})
    default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [land.vpc_id]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    findings = check(land)  # the group launches $Latest: the version without groups
    assert findings.rules() == ["nfs-blocked", "nfs-blocked"]
    assert f"from the hosts' security group {default} or" in findings.problems[0]


def test_a_group_with_a_launch_configuration(land: Landscape):
    autoscaling = land.client("autoscaling")
    other = new_group(land, "legacy-hosts")
    for name, groups in (("admitted", [land.host_security_group_id]), ("refused", [other])):
        autoscaling.create_launch_configuration(
            LaunchConfigurationName=name, ImageId=AMI_ID, InstanceType="t3.micro", SecurityGroups=groups
        )
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=f"{name}-hosts",
            LaunchConfigurationName=name,
            MinSize=0,
            MaxSize=1,
            VPCZoneIdentifier=",".join(land.subnet_ids),
        )
    assert check(land, "admitted-hosts").problems == []
    refused = check(land, "refused-hosts")
    assert refused.rules() == ["nfs-blocked", "nfs-blocked"]
    assert f"from the hosts' security group {other} or" in refused.problems[0]


@pytest.mark.parametrize(("version", "blocked"), [("$Latest", False), ("$Default", True), ("1", True)])
def test_a_group_with_a_mixed_instances_policy_uses_the_version_it_names(land: Landscape, version: str, blocked: bool):
    ec2 = land.client("ec2")
    other = new_group(land, "spot-hosts")
    template = ec2.create_launch_template(
        LaunchTemplateName="spot", LaunchTemplateData={"ImageId": AMI_ID, "SecurityGroupIds": [other]}
    )["LaunchTemplate"]["LaunchTemplateId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template,
        LaunchTemplateData={
            "ImageId": AMI_ID,
            "NetworkInterfaces": [{"DeviceIndex": 0, "Groups": [land.host_security_group_id]}],
        },
    )
    land.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName="mixed",
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": version},
                "Overrides": [{"InstanceType": "t3.medium"}, {"InstanceType": "m5.large"}],
            }
        },
        MinSize=0,
        MaxSize=1,
        VPCZoneIdentifier=",".join(land.subnet_ids),
    )
    findings = check(land, "mixed")
    assert findings.rules() == (["nfs-blocked", "nfs-blocked"] if blocked else [])


def test_a_mount_target_whose_groups_are_not_listed_is_unsure(land: Landscape):
    # moto lists no group for a mount target created without one (AWS would give it the VPC's default group).
    efs = land.client("efs")
    file_system = efs.create_file_system(CreationToken="bare")["FileSystemId"]
    for subnet_id in land.subnet_ids:
        efs.create_mount_target(FileSystemId=file_system, SubnetId=subnet_id)
    findings = check(land, file_system_id=file_system)
    assert findings.problems == []
    assert all("its security groups are not listed" in line for line in findings.unsure)


# What the check calls, and what happens when a call is refused.


def documented_calls() -> set[str]:
    return set(re.findall(r"^- (\w+:\w+)", network.__doc__ or "", re.MULTILINE))


def recording_session(calls: list[str]) -> boto3.Session:
    session = boto3.Session(region_name="us-east-1")

    def record(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.signing_name}:{model.name}")

    session.events.register("before-call", record)
    return session


def broken_landscape(land: Landscape, *, launch_configuration: bool = False) -> str:
    """A group with every reading path in use (a zone without mount target, hosts in service, a group by name):
    returns its name."""
    ec2 = land.client("ec2")
    subnet = ec2.create_subnet(VpcId=land.vpc_id, CidrBlock="10.0.32.0/20", AvailabilityZone="us-east-1c")["Subnet"]
    replace_ingress(land, {**SSH, "UserIdGroupPairs": [{"GroupId": land.host_security_group_id}]})
    put_in_service(land)
    name = land.group_name
    if launch_configuration:
        autoscaling = land.client("autoscaling")
        autoscaling.create_launch_configuration(
            LaunchConfigurationName="lc", ImageId=AMI_ID, InstanceType="t3.micro", SecurityGroups=[]
        )
        name = "with-lc"
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchConfigurationName="lc",
            MinSize=0,
            MaxSize=1,
            VPCZoneIdentifier=subnet["SubnetId"] + "," + land.subnet_ids[0],
        )
    return name


@pytest.mark.parametrize("launch_configuration", [False, True])
def test_every_call_is_listed_in_the_modules_docstring(land: Landscape, launch_configuration: bool):
    name = broken_landscape(land, launch_configuration=launch_configuration)
    calls: list[str] = []
    check(land, name, session=recording_session(calls))
    assert set(calls) <= documented_calls()
    assert calls, "the check made no call"


def refusing_session(operation: str) -> boto3.Session:
    session = boto3.Session(region_name="us-east-1")

    def refuse(model: Any, **_: Any) -> None:
        if f"{model.service_model.signing_name}:{model.name}" == operation:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, model.name)

    session.events.register("before-call", refuse)
    return session


@pytest.mark.parametrize("operation", sorted(documented_calls()))
@pytest.mark.parametrize("launch_configuration", [False, True])
def test_a_refused_call_is_unsure_never_a_false_problem_nor_an_exception(
    land: Landscape, operation: str, launch_configuration: bool
):
    name = broken_landscape(land, launch_configuration=launch_configuration)
    expected = check(land, name)
    findings = check(land, name, session=refusing_session(operation))
    # Only problems the full read also finds; and when one is missing, the log says what could not be read.
    assert set(findings.problems) <= set(expected.problems)
    if findings.problems != expected.problems:
        assert any(operation.split(":")[1] in line for line in findings.unsure)


def test_a_described_group_becomes_one_rule_per_peer():
    # As DescribeSecurityGroups answers for a group referencing one in a peered VPC of another account.
    described = {
        "GroupId": "sg-0aaaaaaaaaaaaaaaa",
        "OwnerId": "111111111111",
        "VpcId": "vpc-1",
        "IpPermissions": [
            {
                "IpProtocol": "tcp",
                "FromPort": 2049,
                "ToPort": 2049,
                "IpRanges": [{"CidrIp": "10.0.0.0/16"}],
                "Ipv6Ranges": [{"CidrIpv6": "::/0"}],
                "PrefixListIds": [{"PrefixListId": "pl-1"}],
                "UserIdGroupPairs": [
                    {
                        "GroupId": "sg-0bbbbbbbbbbbbbbbb",
                        "UserId": "222222222222",
                        "VpcId": "vpc-2",
                        "VpcPeeringConnectionId": "pcx-1",
                        "PeeringStatus": "active",
                    }
                ],
            }
        ],
        "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    }
    group = network.security_group_from_description(described)
    assert group == SecurityGroup(
        "sg-0aaaaaaaaaaaaaaaa",
        "111111111111",
        "vpc-1",
        ingress=(
            Rule("tcp", 2049, 2049, cidr="10.0.0.0/16"),
            Rule("tcp", 2049, 2049, cidr_v6="::/0"),
            Rule("tcp", 2049, 2049, prefix_list="pl-1"),
            Rule("tcp", 2049, 2049, group=GroupRef("sg-0bbbbbbbbbbbbbbbb", "222222222222", "vpc-2", "pcx-1")),
        ),
        egress=(Rule("-1", cidr="0.0.0.0/0"),),
    )

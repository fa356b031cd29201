"""The network rules of a group's checks: `mount-target-missing` (a zone the group launches into has no mount
target of its file system) and `nfs-blocked` (the security groups keep TCP 2049 from the hosts away from the
mount target of their zone), read from AWS and decided by `reach.nfs_reach`.

What cannot be read (access denied, a resource gone, a mount target still being created) is noted with
`findings.not_sure`, never reported as a problem: the rules then say nothing for what it would have decided.

Every AWS call made here (the app's IAM policy and the member template must grant them):
- ec2:DescribeSubnets (the group's subnets, or the default subnets of its zones)
- elasticfilesystem:DescribeMountTargets
- elasticfilesystem:DescribeMountTargetSecurityGroups, which also needs ec2:DescribeNetworkInterfaceAttribute
  on the mount target's network interface (EFS API reference)
- ec2:DescribeLaunchTemplateVersions (the hosts' groups in the launch template versions the group uses)
- autoscaling:DescribeLaunchConfigurations (the same, for a group with a launch configuration)
- ec2:DescribeInstances (the groups of the group's hosts in service)
- ec2:DescribeSecurityGroups (the groups named by name, the VPC's default group, then every group involved)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.checks.findings import Findings
from chalicelib.checks.reach import GroupRef, NfsPath, Reach, Rule, SecurityGroup, Verdict, nfs_reach
from chalicelib.mount.spec import MountSpec
from chalicelib.mount.targets import NoMountTarget, describe_mount_targets
from chalicelib.plumbing.accounts import AwsAccess

# A mount target in these states is, or is about to be, the zone's; deleting or deleted ones are not.
USABLE_STATES = ("available", "creating", "updating")
GONE_STATES = ("deleting", "deleted")
# Values of one DescribeInstances filter per call.
INSTANCE_FILTER_VALUES = 200


class Unreadable(Exception):
    """Something a rule needs could not be read; the message says what, for the log."""


@dataclass(frozen=True)
class LaunchSubnet:
    subnet_id: str
    zone: str
    vpc_id: str
    cidr: ipaddress.IPv4Network | None


@dataclass(frozen=True)
class HostGroups:
    """Where the hosts' security groups come from, before names and the default group are resolved."""

    ids: frozenset[str]
    names: frozenset[str]


def check_network(aws: AwsAccess, raw_group: dict[str, Any], spec: MountSpec, findings: Findings) -> None:
    """Report `mount-target-missing` and `nfs-blocked` for one group (an entry of DescribeAutoScalingGroups)."""
    group_name = raw_group["AutoScalingGroupName"]
    ec2 = aws.client("ec2")
    efs = aws.client("efs")
    try:
        subnets = launch_subnets(ec2, raw_group)
        targets = _read("efs DescribeMountTargets", describe_mount_targets, efs, spec.file_system_id)
    except Unreadable as exc:
        findings.not_sure(f"mount-target-missing, nfs-blocked: group {group_name}: {exc}")
        return

    used: list[tuple[dict[str, Any], list[LaunchSubnet]]] = []
    for zone, zone_subnets in sorted(_by_zone(subnets).items()):
        in_zone = [t for t in targets if t.get("AvailabilityZoneName") == zone]
        usable = [t for t in in_zone if t.get("LifeCycleState") in USABLE_STATES]
        if usable:
            used.append((usable[0], zone_subnets))
        elif all(t.get("LifeCycleState") in GONE_STATES for t in in_zone):
            findings.problem(
                "mount-target-missing",
                f"file system {spec.file_system_id} has no mount target in {zone}, where group {group_name} "
                f"launches hosts ({_subnets_phrase(zone_subnets)}); create one there",
            )
        else:
            states = ", ".join(f"{t.get('MountTargetId')} is {t.get('LifeCycleState')}" for t in in_zone)
            findings.not_sure(f"mount-target-missing: {spec.file_system_id} in {zone}: {states}")
    if not used:
        return

    try:
        host_ids = host_security_group_ids(aws, raw_group, _one_vpc(subnets, group_name))
        target_ids = {t["MountTargetId"]: _target_group_ids(efs, t) for t, _ in used}
        wanted = host_ids | {g for ids in target_ids.values() if isinstance(ids, frozenset) for g in ids}
        groups = describe_security_groups(ec2, wanted)
    except Unreadable as exc:
        findings.not_sure(f"nfs-blocked: group {group_name}: {exc}")
        return
    hosts = tuple(groups[g] for g in sorted(host_ids))
    for target, zone_subnets in used:
        ids = target_ids[target["MountTargetId"]]
        if isinstance(ids, Unreadable):
            findings.not_sure(f"nfs-blocked: mount target {target['MountTargetId']}: {ids}")
            continue
        _check_target(target, zone_subnets, hosts, tuple(groups[g] for g in sorted(ids)), findings)


def _check_target(
    target: dict[str, Any],
    subnets: list[LaunchSubnet],
    hosts: tuple[SecurityGroup, ...],
    target_groups: tuple[SecurityGroup, ...],
    findings: Findings,
) -> None:
    target_id, zone = target["MountTargetId"], target.get("AvailabilityZoneName")
    try:
        ip = ipaddress.IPv4Address(target.get("IpAddress", ""))
    except ValueError:
        findings.not_sure(f"nfs-blocked: mount target {target_id} in {zone} has no IPv4 address")
        return
    reaches: list[tuple[LaunchSubnet, Reach]] = []
    for subnet in subnets:
        if subnet.cidr is None:
            findings.not_sure(f"nfs-blocked: subnet {subnet.subnet_id} has no IPv4 range")
            continue
        reaches.append((subnet, nfs_reach(NfsPath(hosts, subnet.cidr, ip, target_groups))))
    blocked_in = [s for s, r in reaches if r.inbound.verdict is Verdict.BLOCKED]
    blocked_out = any(r.outbound.verdict is Verdict.BLOCKED for _, r in reaches)
    if blocked_in or blocked_out:
        findings.problem(
            "nfs-blocked", nfs_blocked_sentence(target_id, zone, ip, target_groups, hosts, blocked_in, blocked_out)
        )
        return
    reasons = sorted({reason for _, r in reaches if r.verdict is Verdict.UNSURE for reason in r.reasons})
    if reasons:
        findings.not_sure(f"nfs-blocked: mount target {target_id} in {zone}: {'; '.join(reasons)}")


def nfs_blocked_sentence(
    target_id: str,
    zone: str | None,
    ip: ipaddress.IPv4Address,
    target_groups: tuple[SecurityGroup, ...],
    hosts: tuple[SecurityGroup, ...],
    blocked_in: list[LaunchSubnet],
    blocked_out: bool,
) -> str:
    """The problem, naming the mount target, its zone and groups, the hosts' groups and which side blocks."""
    target_sgs = _groups_phrase(g.group_id for g in target_groups)
    host_sgs = _groups_phrase(g.group_id for g in hosts)
    allows = "allows" if len(hosts) == 1 else "allow"
    inbound = f"admits no TCP 2049 from the hosts' {host_sgs} or their {_subnets_phrase(blocked_in, ranges=True)}"
    outbound = f"the hosts' {host_sgs} {allows} no TCP 2049 out to it"
    target = f"mount target {target_id} in {zone}"
    if blocked_in and blocked_out:
        return f"{target} ({ip}, {target_sgs}) {inbound}, and {outbound}; allow it inbound and outbound"
    if blocked_in:
        return f"{target} ({target_sgs}) {inbound}; allow it inbound"
    return f"{target} ({ip}, {target_sgs}) is out of reach: {outbound}; allow it outbound"


def launch_subnets(ec2: Any, raw_group: dict[str, Any]) -> list[LaunchSubnet]:
    """The subnets the group launches into: VPCZoneIdentifier's, else the default subnet of each of its zones."""
    ids = [s.strip() for s in (raw_group.get("VPCZoneIdentifier") or "").split(",") if s.strip()]
    if ids:
        described = _pages(ec2, "describe_subnets", "Subnets", "ec2 DescribeSubnets", SubnetIds=ids)
        missing = set(ids) - {s["SubnetId"] for s in described}
        if missing:
            raise Unreadable(f"subnets {', '.join(sorted(missing))} not found")
        return [_launch_subnet(s) for s in described]
    zones = raw_group.get("AvailabilityZones") or []
    if not zones:
        raise Unreadable("the group names neither subnets nor Availability Zones")
    filters = [{"Name": "default-for-az", "Values": ["true"]}, {"Name": "availability-zone", "Values": zones}]
    described = _pages(ec2, "describe_subnets", "Subnets", "ec2 DescribeSubnets", Filters=filters)
    found = sorted(s["AvailabilityZone"] for s in described)
    if found != sorted(set(zones)):
        raise Unreadable(f"cannot tell the default subnets of {', '.join(zones)} (found them in: {found or 'none'})")
    return [_launch_subnet(s) for s in described]


def host_security_group_ids(aws: AwsAccess, raw_group: dict[str, Any], vpc_id: str) -> frozenset[str]:
    """Every security group the group's hosts may carry: those of the launch template versions or launch
    configuration the group uses, and those its hosts in service carry; a name or no group at all (the VPC's
    default group) resolved in the hosts' VPC."""
    sources = [_launch_template_groups(aws.client("ec2"), raw_group), _launch_configuration_groups(aws, raw_group)]
    launch = [s for s in sources if s is not None]
    if not launch:
        raise Unreadable("the group has neither a launch template nor a launch configuration")
    in_service = _in_service_groups(aws.client("ec2"), raw_group)
    ids = frozenset().union(in_service, *(s.ids for s in launch))
    names = frozenset().union(*(s.names for s in launch))
    if names:
        ids |= _groups_by_name(aws.client("ec2"), names, vpc_id)
    return ids


def describe_security_groups(ec2: Any, group_ids: Iterable[str]) -> dict[str, SecurityGroup]:
    """The groups by id, from one DescribeSecurityGroups call (paginated)."""
    wanted = sorted(set(group_ids))
    if not wanted:
        return {}
    described = _pages(ec2, "describe_security_groups", "SecurityGroups", "ec2 DescribeSecurityGroups", GroupIds=wanted)
    groups = {g["GroupId"]: security_group_from_description(g) for g in described}
    missing = set(wanted) - set(groups)
    if missing:
        raise Unreadable(f"security groups {', '.join(sorted(missing))} not found")
    return groups


def security_group_from_description(described: dict[str, Any]) -> SecurityGroup:
    """A SecurityGroups entry of DescribeSecurityGroups as reach's plain data."""
    return SecurityGroup(
        described["GroupId"],
        described.get("OwnerId", ""),
        described.get("VpcId", ""),
        tuple(_rules(described.get("IpPermissions") or [])),
        tuple(_rules(described.get("IpPermissionsEgress") or [])),
    )


def _rules(permissions: list[dict[str, Any]]) -> Iterator[Rule]:
    for permission in permissions:
        protocol = str(permission.get("IpProtocol", ""))
        ports = (permission.get("FromPort"), permission.get("ToPort"))
        for ipv4 in permission.get("IpRanges") or []:
            yield Rule(protocol, *ports, cidr=ipv4["CidrIp"])
        for ipv6 in permission.get("Ipv6Ranges") or []:
            yield Rule(protocol, *ports, cidr_v6=ipv6["CidrIpv6"])
        for prefix_list in permission.get("PrefixListIds") or []:
            yield Rule(protocol, *ports, prefix_list=prefix_list["PrefixListId"])
        for pair in permission.get("UserIdGroupPairs") or []:
            # A VPC group's reference always carries its GroupId; UserId is the referenced group's owner.
            ref = GroupRef(pair["GroupId"], pair.get("UserId"), pair.get("VpcId"), pair.get("VpcPeeringConnectionId"))
            yield Rule(protocol, *ports, group=ref)


def _launch_template_groups(ec2: Any, raw_group: dict[str, Any]) -> HostGroups | None:
    specs = [raw_group.get("LaunchTemplate")]
    mixed = (raw_group.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
    specs.append(mixed.get("LaunchTemplateSpecification"))
    specs += [o.get("LaunchTemplateSpecification") for o in mixed.get("Overrides") or []]
    # One DescribeLaunchTemplateVersions per template, with every version of it the group uses.
    versions: dict[tuple[str, str], set[str]] = {}
    for spec in filter(None, specs):
        key = ("LaunchTemplateId", spec["LaunchTemplateId"]) if spec.get("LaunchTemplateId") else None
        key = key or ("LaunchTemplateName", spec.get("LaunchTemplateName", ""))
        versions.setdefault(key, set()).add(str(spec.get("Version") or "$Default"))
    if not versions:
        return None
    ids: set[str] = set()
    names: set[str] = set()
    for (argument, template), wanted in sorted(versions.items()):
        described = _pages(
            ec2,
            "describe_launch_template_versions",
            "LaunchTemplateVersions",
            "ec2 DescribeLaunchTemplateVersions",
            **{argument: template, "Versions": sorted(wanted)},
        )
        if not described:
            raise Unreadable(f"launch template {template} has none of the versions {', '.join(sorted(wanted))}")
        for version in described:
            found = _template_data_groups(version.get("LaunchTemplateData") or {})
            ids |= found.ids
            names |= found.names
    return HostGroups(frozenset(ids), frozenset(names))


def _template_data_groups(data: dict[str, Any]) -> HostGroups:
    interfaces = data.get("NetworkInterfaces") or []
    if interfaces:
        # An interface the template gives no group gets its VPC's default group.
        ids = {g for i in interfaces for g in i.get("Groups") or []}
        names = {"default"} if any(not i.get("Groups") for i in interfaces) else set()
        return HostGroups(frozenset(ids), frozenset(names))
    ids = set(data.get("SecurityGroupIds") or [])
    names = set(data.get("SecurityGroups") or [])
    return HostGroups(frozenset(ids), frozenset(names or ({"default"} if not ids else set())))


def _launch_configuration_groups(aws: AwsAccess, raw_group: dict[str, Any]) -> HostGroups | None:
    name = raw_group.get("LaunchConfigurationName")
    if not name:
        return None
    described = _pages(
        aws.client("autoscaling"),
        "describe_launch_configurations",
        "LaunchConfigurations",
        "autoscaling DescribeLaunchConfigurations",
        LaunchConfigurationNames=[name],
    )
    if not described:
        raise Unreadable(f"launch configuration {name} not found")
    groups = described[0].get("SecurityGroups") or []
    ids = {g for g in groups if g.startswith("sg-")}
    names = {g for g in groups if not g.startswith("sg-")} or ({"default"} if not ids else set())
    return HostGroups(frozenset(ids), frozenset(names))


def _in_service_groups(ec2: Any, raw_group: dict[str, Any]) -> frozenset[str]:
    ids = sorted(i["InstanceId"] for i in raw_group.get("Instances") or [] if i.get("LifecycleState") == "InService")
    groups: set[str] = set()
    # A filter, not InstanceIds: a host that has just gone is no error.
    for start in range(0, len(ids), INSTANCE_FILTER_VALUES):
        chunk = ids[start : start + INSTANCE_FILTER_VALUES]
        filters = [{"Name": "instance-id", "Values": chunk}]
        for reservation in _pages(ec2, "describe_instances", "Reservations", "ec2 DescribeInstances", Filters=filters):
            for instance in reservation.get("Instances", []):
                groups |= {g["GroupId"] for g in instance.get("SecurityGroups") or []}
                for interface in instance.get("NetworkInterfaces") or []:
                    groups |= {g["GroupId"] for g in interface.get("Groups") or []}
    return frozenset(groups)


def _groups_by_name(ec2: Any, names: frozenset[str], vpc_id: str) -> frozenset[str]:
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": sorted(names)}]
    described = _pages(ec2, "describe_security_groups", "SecurityGroups", "ec2 DescribeSecurityGroups", Filters=filters)
    found = {g["GroupName"]: g["GroupId"] for g in described}
    missing = names - set(found)
    if missing:
        raise Unreadable(f"security groups named {', '.join(sorted(missing))} not found in {vpc_id}")
    return frozenset(found.values())


def _target_group_ids(efs: Any, target: dict[str, Any]) -> frozenset[str] | Unreadable:
    target_id = target["MountTargetId"]
    try:
        response = _read(
            "efs DescribeMountTargetSecurityGroups", efs.describe_mount_target_security_groups, MountTargetId=target_id
        )
    except Unreadable as exc:
        return exc
    ids = frozenset(response.get("SecurityGroups") or [])
    # Every network interface has a group; an empty answer is not one to decide on.
    return ids or Unreadable("its security groups are not listed")


def _launch_subnet(described: dict[str, Any]) -> LaunchSubnet:
    cidr = described.get("CidrBlock")
    return LaunchSubnet(
        described["SubnetId"],
        described["AvailabilityZone"],
        described.get("VpcId", ""),
        ipaddress.IPv4Network(cidr) if cidr else None,
    )


def _one_vpc(subnets: list[LaunchSubnet], group_name: str) -> str:
    vpcs = {s.vpc_id for s in subnets}
    if len(vpcs) != 1:
        raise Unreadable(f"the subnets of group {group_name} are in {len(vpcs)} VPCs")
    return vpcs.pop()


def _by_zone(subnets: list[LaunchSubnet]) -> dict[str, list[LaunchSubnet]]:
    zones: dict[str, list[LaunchSubnet]] = {}
    for subnet in sorted(subnets, key=lambda s: s.subnet_id):
        zones.setdefault(subnet.zone, []).append(subnet)
    return zones


def _subnets_phrase(subnets: list[LaunchSubnet], ranges: bool = False) -> str:
    named = [f"{s.subnet_id} ({s.cidr})" if ranges else s.subnet_id for s in subnets]
    return f"subnet{'s' if len(named) > 1 else ''} {', '.join(named)}"


def _groups_phrase(group_ids: Iterable[str]) -> str:
    ids = sorted(group_ids)
    return f"security group{'s' if len(ids) > 1 else ''} {', '.join(ids)}"


def _pages(client: Any, method: str, key: str, operation: str, **request: Any) -> list[Any]:
    def read() -> list[Any]:
        return [item for page in client.get_paginator(method).paginate(**request) for item in page.get(key, [])]

    return _read(operation, read)


def _read(operation: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's answer, or Unreadable naming the call and AWS's error (denied, not found, throttled for good)."""
    try:
        return call(*args, **kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise Unreadable(f"{operation}: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")) from exc
    except NoMountTarget as exc:
        raise Unreadable(f"{operation}: {exc}") from exc
    except BotoCoreError as exc:
        raise Unreadable(f"{operation}: {exc}") from exc

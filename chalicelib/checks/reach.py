"""Whether NFS (TCP 2049) from a group's hosts reaches a mount target, as far as security groups decide.

Pure: plain frozen data in, a verdict out. A security group only allows, and a packet passes a side when
any rule of any of its groups admits it; it is stateful, so the answer needs only the hosts' egress to the
mount target's IP and the mount target's ingress from the hosts (Amazon VPC User Guide, "Security group
rules", https://docs.aws.amazon.com/vpc/latest/userguide/security-group-rules.html; Amazon EFS User Guide,
"Using VPC security groups", https://docs.aws.amazon.com/efs/latest/ug/network-access.html, and "Security
considerations for network access", https://docs.aws.amazon.com/efs/latest/ug/sg-information.html). A rule
names exactly one peer: an IPv4 range, an IPv6 range, a prefix list or a security group (CloudFormation's
AWS::EC2::SecurityGroup Ingress). A group reference admits the private IPs of the network interfaces in
that group; one to a group of a peered VPC works only while the peering is active, and across accounts is
written account/sg-… (Amazon VPC Peering Guide, "Update your security groups to reference peer security
groups", https://docs.aws.amazon.com/vpc/latest/peering/vpc-peering-security-groups.html).

BLOCKED means no rule could admit the mount's packets whatever the unknowns are, OPEN that a rule surely
admits them from every address of the hosts' subnet, UNSURE anything else, with the reasons: a prefix list
(its entries are not read), a reference to another account's or VPC's group, a range covering only part of
the hosts' subnet, a TCP rule without ports.

What it cannot see: network ACLs of the hosts' and the mount target's subnets (stateless, and they can
deny what the groups allow), route tables (within one VPC the local route always exists; across a peering
or a transit gateway it may not), DNS (the app passes the mount target's IP, so the file system's name
need not resolve), the hosts' own firewall, and IPv6 (the app mounts the mount target's IPv4 address).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

NFS_PORT = 2049
# IpProtocol as DescribeSecurityGroups returns it: a name, or the protocol number for the others; -1 is all.
ALL_PROTOCOLS = "-1"
TCP = ("tcp", "6")


class Verdict(Enum):
    OPEN = "open"
    BLOCKED = "blocked"
    UNSURE = "unsure"


@dataclass(frozen=True)
class GroupRef:
    """A rule's peer that is a security group; `account`, `vpc_id`, `peering` as the rule names them."""

    group_id: str
    account: str | None = None
    vpc_id: str | None = None
    peering: str | None = None


@dataclass(frozen=True)
class Rule:
    """One permission with one peer (an IpPermissions entry yields one Rule per range, list and group)."""

    protocol: str
    from_port: int | None = None
    to_port: int | None = None
    cidr: str | None = None
    cidr_v6: str | None = None
    prefix_list: str | None = None
    group: GroupRef | None = None


@dataclass(frozen=True)
class SecurityGroup:
    group_id: str
    account: str
    vpc_id: str
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class NfsPath:
    """The hosts of one subnet (every security group they may carry) and the mount target they would use."""

    host_groups: tuple[SecurityGroup, ...]
    host_subnet: ipaddress.IPv4Network
    target_ip: ipaddress.IPv4Address
    target_groups: tuple[SecurityGroup, ...]


@dataclass(frozen=True)
class Side:
    verdict: Verdict
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reach:
    """The verdict, and each side's: `inbound` the mount target's ingress, `outbound` the hosts' egress."""

    verdict: Verdict
    inbound: Side
    outbound: Side

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.inbound.reasons + self.outbound.reasons


# What one rule does for the mount's packets: None when it cannot admit them, True when it admits them all,
# otherwise the reason it might.
_Admits = bool | str | None


def nfs_reach(path: NfsPath) -> Reach:
    """Whether the hosts' security groups let TCP 2049 out to the mount target and its groups let it in."""
    host_ids = frozenset(g.group_id for g in path.host_groups)
    target_ids = frozenset(g.group_id for g in path.target_groups)
    inbound = _side(
        path.target_groups,
        "ingress",
        lambda group, rule: _ingress_admits(group, rule, host_ids, path.host_subnet),
        "the mount target",
    )
    outbound = _side(
        path.host_groups,
        "egress",
        lambda group, rule: _egress_admits(group, rule, target_ids, path.target_ip),
        "the hosts",
    )
    verdicts = {inbound.verdict, outbound.verdict}
    if Verdict.BLOCKED in verdicts:
        verdict = Verdict.BLOCKED
    elif verdicts == {Verdict.OPEN}:
        verdict = Verdict.OPEN
    else:
        verdict = Verdict.UNSURE
    return Reach(verdict, inbound, outbound)


def _side(
    groups: tuple[SecurityGroup, ...], direction: str, admits: Callable[[SecurityGroup, Rule], _Admits], whose: str
) -> Side:
    if not groups:
        # Every network interface has at least one group: none known means they were not read.
        return Side(Verdict.UNSURE, (f"no security group of {whose} is known",))
    reasons: list[str] = []
    for group in groups:
        for rule in getattr(group, direction):
            found = admits(group, rule)
            if found is True:
                return Side(Verdict.OPEN)
            if isinstance(found, str):
                reasons.append(f"{group.group_id} {direction}: {found}")
    return Side(Verdict.UNSURE, tuple(reasons)) if reasons else Side(Verdict.BLOCKED)


def _carries_nfs(rule: Rule) -> _Admits:
    protocol = rule.protocol.lower()
    if protocol == ALL_PROTOCOLS:
        return True
    if protocol not in TCP:
        return None
    if rule.from_port is None or rule.to_port is None:
        return "a TCP rule without a port range"
    return True if rule.from_port <= NFS_PORT <= rule.to_port else None


def _ingress_admits(
    group: SecurityGroup, rule: Rule, host_ids: frozenset[str], subnet: ipaddress.IPv4Network
) -> _Admits:
    carries = _carries_nfs(rule)
    if carries is not True:
        return carries
    if rule.cidr is not None:
        source = _network(rule.cidr)
        if source is None:
            return f"range {rule.cidr!r} is not an IPv4 range"
        if subnet.subnet_of(source):
            return True
        if subnet.overlaps(source):
            return f"{rule.cidr} covers only part of the hosts' subnet {subnet}"
        return None
    return _peer_admits(group, rule, host_ids)


def _egress_admits(
    group: SecurityGroup, rule: Rule, target_ids: frozenset[str], target: ipaddress.IPv4Address
) -> _Admits:
    carries = _carries_nfs(rule)
    if carries is not True:
        return carries
    if rule.cidr is not None:
        destination = _network(rule.cidr)
        if destination is None:
            return f"range {rule.cidr!r} is not an IPv4 range"
        return True if target in destination else None
    return _peer_admits(group, rule, target_ids)


def _peer_admits(group: SecurityGroup, rule: Rule, other_side: frozenset[str]) -> _Admits:
    if rule.prefix_list is not None:
        return f"prefix list {rule.prefix_list} (its entries are not read)"
    ref = rule.group
    if ref is not None:
        if _foreign(group, ref):
            where = ref.peering or ref.vpc_id or ref.account
            return f"{ref.account or '?'}/{ref.group_id} is a group of another account or VPC ({where})"
        return True if ref.group_id in other_side else None
    # An IPv6 range (the mount uses the target's IPv4 address), or a rule naming no peer: admits nothing.
    return None


def _foreign(group: SecurityGroup, ref: GroupRef) -> bool:
    return (
        (ref.account is not None and ref.account != group.account)
        or ref.peering is not None
        or (ref.vpc_id is not None and ref.vpc_id != group.vpc_id)
    )


def _network(cidr: str) -> ipaddress.IPv4Network | None:
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
    return network if isinstance(network, ipaddress.IPv4Network) else None

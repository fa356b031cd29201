"""Pure: whether TCP 2049 from the hosts reaches a mount target through security groups. No AWS.

The property test holds nfs_reach to a literal model of how security groups admit one packet: every rule
evaluated on a sampled host address, with what the function cannot know (a prefix list's entries, whether a
peering is active) drawn at random too. BLOCKED must hold in every such world, OPEN for every host address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from hypothesis import find, given
from hypothesis import strategies as st

from chalicelib.checks.reach import NFS_PORT, GroupRef, NfsPath, Rule, SecurityGroup, Verdict, nfs_reach

ACCOUNT = "111111111111"
VPC = "vpc-1"
SUBNET = IPv4Network("10.0.16.0/20")
TARGET_IP = IPv4Address("10.0.16.4")
ALL_OUT = Rule("-1", cidr="0.0.0.0/0")


def group(group_id: str, ingress: tuple[Rule, ...] = (), egress: tuple[Rule, ...] = (ALL_OUT,)) -> SecurityGroup:
    return SecurityGroup(group_id, ACCOUNT, VPC, ingress, egress)


def nfs_from(**peer: object) -> Rule:
    return Rule("tcp", NFS_PORT, NFS_PORT, **peer)  # type: ignore[arg-type]


HOSTS = group("sg-hosts")


def reach(target_ingress: tuple[Rule, ...], hosts: SecurityGroup = HOSTS):
    target = group("sg-efs", ingress=target_ingress)
    return nfs_reach(NfsPath((hosts,), SUBNET, TARGET_IP, (target,)))


# Examples: the cases a platform engineer meets.


def test_a_mount_target_group_admitting_only_ssh_blocks_nfs():
    found = reach((Rule("tcp", 22, 22, group=GroupRef("sg-hosts")),))
    assert found.verdict is Verdict.BLOCKED
    assert found.inbound.verdict is Verdict.BLOCKED and found.outbound.verdict is Verdict.OPEN


def test_nfs_from_the_hosts_group_is_open():
    assert reach((nfs_from(group=GroupRef("sg-hosts", account=ACCOUNT)),)).verdict is Verdict.OPEN


def test_nfs_from_another_group_of_the_vpc_is_blocked():
    assert reach((nfs_from(group=GroupRef("sg-bastion")),)).verdict is Verdict.BLOCKED


def test_a_range_covering_the_hosts_subnet_is_open():
    assert reach((nfs_from(cidr="10.0.0.0/16"),)).verdict is Verdict.OPEN
    assert reach((Rule("6", 0, 65535, cidr="10.0.16.0/20"),)).verdict is Verdict.OPEN


def test_a_range_covering_part_of_the_hosts_subnet_is_unsure():
    found = reach((nfs_from(cidr="10.0.16.0/24"),))
    assert found.verdict is Verdict.UNSURE
    assert found.reasons == ("sg-efs ingress: 10.0.16.0/24 covers only part of the hosts' subnet 10.0.16.0/20",)


def test_a_range_outside_the_hosts_subnet_is_blocked():
    assert reach((nfs_from(cidr="10.0.32.0/20"),)).verdict is Verdict.BLOCKED


def test_a_prefix_list_is_unsure_unless_another_rule_admits():
    prefix_list = nfs_from(prefix_list="pl-0123456789abcdef0")
    found = reach((prefix_list,))
    assert found.verdict is Verdict.UNSURE
    assert "prefix list pl-0123456789abcdef0" in found.reasons[0]
    assert reach((prefix_list, nfs_from(cidr="10.0.0.0/16"))).verdict is Verdict.OPEN


def test_a_group_of_another_account_or_a_peered_vpc_is_unsure():
    for ref in (
        GroupRef("sg-hosts", account="222222222222"),
        GroupRef("sg-hosts", account=ACCOUNT, vpc_id="vpc-2", peering="pcx-1"),
    ):
        assert reach((nfs_from(group=ref),)).verdict is Verdict.UNSURE


def test_egress_limited_to_https_blocks_nfs_even_when_the_target_admits_it():
    hosts = group("sg-hosts", egress=(Rule("tcp", 443, 443, cidr="0.0.0.0/0"),))
    found = reach((nfs_from(group=GroupRef("sg-hosts")),), hosts=hosts)
    assert found.verdict is Verdict.BLOCKED
    assert found.inbound.verdict is Verdict.OPEN and found.outbound.verdict is Verdict.BLOCKED


def test_egress_to_the_mount_target_group_or_its_address_is_open():
    for rule in (nfs_from(group=GroupRef("sg-efs")), nfs_from(cidr="10.0.16.4/32")):
        hosts = group("sg-hosts", egress=(rule,))
        assert reach((nfs_from(group=GroupRef("sg-hosts")),), hosts=hosts).verdict is Verdict.OPEN


def test_a_blocked_side_decides_whatever_the_other_side_is():
    hosts = group("sg-hosts", egress=(nfs_from(prefix_list="pl-1"),))
    found = reach((Rule("udp", 2049, 2049, cidr="0.0.0.0/0"),), hosts=hosts)
    assert found.outbound.verdict is Verdict.UNSURE
    assert found.verdict is Verdict.BLOCKED


def test_protocols_other_than_tcp_and_ipv6_ranges_admit_nothing():
    for rule in (
        Rule("udp", 2049, 2049, cidr="0.0.0.0/0"),
        Rule("icmp", -1, -1, cidr="0.0.0.0/0"),
        Rule("17", 0, 65535, cidr="0.0.0.0/0"),
        Rule("-1", cidr_v6="::/0"),
    ):
        assert reach((rule,)).verdict is Verdict.BLOCKED, rule


def test_all_protocols_admit_nfs_on_every_port():
    assert reach((Rule("-1", cidr="0.0.0.0/0"),)).verdict is Verdict.OPEN


def test_what_cannot_be_read_is_unsure():
    assert reach((Rule("tcp", cidr="0.0.0.0/0"),)).verdict is Verdict.UNSURE  # a TCP rule without ports
    assert reach((nfs_from(cidr="not-a-range"),)).verdict is Verdict.UNSURE
    unknown_target = nfs_reach(NfsPath((HOSTS,), SUBNET, TARGET_IP, ()))
    assert unknown_target.verdict is Verdict.UNSURE
    assert unknown_target.inbound.reasons == ("no security group of the mount target is known",)


def test_given_no_security_group_of_the_hosts_when_judged_then_their_side_is_unsure_and_says_so():
    found = nfs_reach(NfsPath((), SUBNET, TARGET_IP, (group("sg-efs", ingress=(nfs_from(cidr="10.0.0.0/16"),)),)))
    assert found.outbound.verdict is Verdict.UNSURE and found.verdict is Verdict.UNSURE
    assert found.reasons == ("no security group of the hosts is known",)


def test_given_a_tcp_rule_missing_either_port_when_judged_then_it_may_admit_and_says_why():
    for rule in (Rule("tcp", None, 2049, cidr="0.0.0.0/0"), Rule("tcp", 2049, None, cidr="0.0.0.0/0")):
        found = reach((rule,))
        assert found.verdict is Verdict.UNSURE
        assert found.reasons == ("sg-efs ingress: a TCP rule without a port range",)


def test_given_egress_only_to_a_range_without_the_mount_target_when_judged_then_nfs_is_blocked():
    hosts = group("sg-hosts", egress=(nfs_from(cidr="10.0.32.0/20"),))
    assert reach((nfs_from(group=GroupRef("sg-hosts")),), hosts=hosts).outbound.verdict is Verdict.BLOCKED


def test_given_a_group_of_another_account_vpc_or_peering_when_judged_then_the_reason_names_it():
    for ref, named in (
        (
            GroupRef("sg-x", account="222222222222"),
            "222222222222/sg-x is a group of another account or VPC (222222222222)",
        ),
        (GroupRef("sg-x", vpc_id="vpc-2"), "?/sg-x is a group of another account or VPC (vpc-2)"),
        (
            GroupRef("sg-x", account=ACCOUNT, vpc_id="vpc-2", peering="pcx-1"),
            f"{ACCOUNT}/sg-x is a group of another account or VPC (pcx-1)",
        ),
    ):
        assert reach((nfs_from(group=ref),)).reasons == (f"sg-efs ingress: {named}",)


def test_given_a_range_written_with_host_bits_when_judged_then_it_is_read_as_its_network():
    # EC2 stores ranges as given; 10.0.7.9/16 is the network 10.0.0.0/16, which covers the hosts' subnet
    assert reach((nfs_from(cidr="10.0.7.9/16"),)).verdict is Verdict.OPEN


def test_given_an_ipv6_range_where_an_ipv4_one_belongs_when_judged_then_it_is_unsure_never_a_crash():
    found = reach((nfs_from(cidr="::/0"),))
    assert found.verdict is Verdict.UNSURE
    assert found.reasons == ("sg-efs ingress: range '::/0' is not an IPv4 range",)


# The model: how AWS admits one packet, literally, in a world where the unknowns have values.


@dataclass(frozen=True)
class World:
    prefix_lists: dict[str, tuple[IPv4Network, ...]] = field(default_factory=dict)
    active_peerings: frozenset[GroupRef] = frozenset()


def rule_admits(rule: Rule, owner: SecurityGroup, peer_ip: IPv4Address, peer_groups: set[str], world: World) -> bool:
    if rule.protocol != "-1":
        if rule.protocol not in ("tcp", "6"):
            return False
        assert rule.from_port is not None and rule.to_port is not None
        if not rule.from_port <= NFS_PORT <= rule.to_port:
            return False
    if rule.cidr is not None:
        return peer_ip in ipaddress.ip_network(rule.cidr)
    if rule.prefix_list is not None:
        return any(peer_ip in entry for entry in world.prefix_lists.get(rule.prefix_list, ()))
    if rule.group is not None:
        ref = rule.group
        local = ref.account in (None, owner.account) and ref.vpc_id in (None, owner.vpc_id) and ref.peering is None
        return ref.group_id in peer_groups and (local or ref in world.active_peerings)
    return False  # an IPv6 range never matches the IPv4 packet


def admitted_in(path: NfsPath, host_ip: IPv4Address, world: World) -> bool:
    hosts = {g.group_id for g in path.host_groups}
    return any(rule_admits(r, g, host_ip, hosts, world) for g in path.target_groups for r in g.ingress)


def admitted_out(path: NfsPath, world: World) -> bool:
    targets = {g.group_id for g in path.target_groups}
    return any(rule_admits(r, g, path.target_ip, targets, world) for g in path.host_groups for r in g.egress)


VPC_RANGE = IPv4Network("10.0.0.0/16")
GROUP_IDS = ("sg-a", "sg-b", "sg-c", "sg-d")
NEAR_NFS = st.sampled_from([NFS_PORT, NFS_PORT - 1, NFS_PORT + 1, 0, 22, 443, 65535])


def addresses(within: IPv4Network = VPC_RANGE) -> st.SearchStrategy[IPv4Address]:
    return st.integers(int(within.network_address), int(within.broadcast_address)).map(IPv4Address)


def networks(subnet: IPv4Network) -> st.SearchStrategy[str]:
    def network(address: IPv4Address, length: int) -> str:
        return str(IPv4Network((address, length), strict=False))

    around = st.builds(network, addresses(IPv4Network("10.0.0.0/14")), st.integers(8, 32))
    inside = st.builds(network, addresses(subnet), st.integers(subnet.prefixlen, 32))
    return st.one_of(around, inside, st.sampled_from(["0.0.0.0/0", str(subnet), str(subnet.supernet())]))


@st.composite
def rules(draw: st.DrawFn, subnet: IPv4Network) -> Rule:
    protocol = draw(st.sampled_from(["-1", "tcp", "6", "udp", "17", "icmp"]))
    ports: tuple[int | None, int | None] = (None, None)
    if protocol != "-1":
        low, high = sorted((draw(NEAR_NFS | st.integers(0, 65535)), draw(NEAR_NFS | st.integers(0, 65535))))
        ports = (low, high)
    peer = draw(st.sampled_from(["cidr", "cidr_v6", "prefix_list", "group"]))
    if peer == "cidr":
        return Rule(protocol, *ports, cidr=draw(networks(subnet)))
    if peer == "cidr_v6":
        return Rule(protocol, *ports, cidr_v6="::/0")
    if peer == "prefix_list":
        return Rule(protocol, *ports, prefix_list=draw(st.sampled_from(["pl-1", "pl-2"])))
    ref = GroupRef(
        draw(st.sampled_from(GROUP_IDS)),
        account=draw(st.sampled_from([None, ACCOUNT, "222222222222"])),
        vpc_id=draw(st.sampled_from([None, VPC, "vpc-2"])),
        peering=draw(st.sampled_from([None, None, "pcx-1"])),
    )
    return Rule(protocol, *ports, group=ref)


@st.composite
def paths(draw: st.DrawFn) -> NfsPath:
    subnet = IPv4Network((draw(addresses()), draw(st.integers(16, 28))), strict=False)
    rule_lists = st.lists(rules(subnet), max_size=4).map(tuple)
    groups = {gid: SecurityGroup(gid, ACCOUNT, VPC, draw(rule_lists), draw(rule_lists)) for gid in GROUP_IDS}
    host_ids = draw(st.lists(st.sampled_from(GROUP_IDS), min_size=1, max_size=3, unique=True))
    target_ids = draw(st.lists(st.sampled_from(GROUP_IDS), min_size=1, max_size=3, unique=True))
    target_ip = draw(addresses(subnet) | addresses())
    return NfsPath(tuple(groups[g] for g in host_ids), subnet, target_ip, tuple(groups[g] for g in target_ids))


@st.composite
def worlds(draw: st.DrawFn, path: NfsPath) -> World:
    entries = st.lists(networks(path.host_subnet).map(IPv4Network), max_size=3).map(tuple)
    refs = [r.group for g in path.host_groups + path.target_groups for r in g.ingress + g.egress if r.group]
    return World(
        prefix_lists={"pl-1": draw(entries), "pl-2": draw(entries)},
        active_peerings=frozenset(draw(st.lists(st.sampled_from(refs), unique=True)) if refs else ()),
    )


@given(st.data())
def test_the_verdict_holds_in_every_world_and_for_every_host(data: st.DataObject):
    path = data.draw(paths())
    world = data.draw(worlds(path))
    subnet = path.host_subnet
    host_ips = [subnet.network_address, subnet.broadcast_address, *data.draw(st.lists(addresses(subnet), max_size=5))]
    found = nfs_reach(path)

    inbound = [admitted_in(path, ip, world) for ip in host_ips]
    outbound = admitted_out(path, world)
    if found.inbound.verdict is Verdict.OPEN:
        assert all(inbound)
    if found.inbound.verdict is Verdict.BLOCKED:
        assert not any(inbound)
    if found.outbound.verdict is not Verdict.UNSURE:
        assert outbound is (found.outbound.verdict is Verdict.OPEN)
    if found.verdict is Verdict.OPEN:
        assert all(inbound) and outbound
    if found.verdict is Verdict.BLOCKED:
        assert not (any(inbound) and outbound)
    if found.verdict is Verdict.UNSURE:
        assert found.reasons


def test_the_drawn_paths_reach_every_verdict_on_each_side():
    # So the property above is not vacuous: each verdict is among what the strategy draws.
    for verdict in Verdict:
        find(paths(), lambda path, v=verdict: nfs_reach(path).inbound.verdict is v)
        find(paths(), lambda path, v=verdict: nfs_reach(path).outbound.verdict is v)
        find(paths(), lambda path, v=verdict: nfs_reach(path).verdict is v)

"""The VPC view of a user's networks: DescribeVpcs, DescribeVpcAttribute, DescribeSubnets,
DescribeAccountAttributes.

One default VPC, ``vpc-00000000``, holds every virtual network the user may use, each a subnet
``subnet-%08d`` of its OpenNebula id. A subnet's CIDR is the smallest block holding its first IPv4
address range; the VPC's, the smallest block holding every subnet's (EC2 puts each subnet inside its
VPC's block). The group's published network — the one the instance-type templates' NIC names — is
the zone's default subnet, which is where an instance made without a subnet goes."""

from __future__ import annotations

import contextlib
import functools
import ipaddress

from one import template as tpl

from .. import ids
from ..errors import EC2Error, invalid
from ..objects import VNet
from .filters import check_names, flag, matcher
from .regions import ZONE
from .registry import Context, action
from .secgroups import VPC  # the one VPC, vpc-00000000

EMPTY_VPC_BLOCK = "172.31.0.0/16"  # EC2's default VPC block, for a user who may use no network
# oned's vnet states (include/VirtualNetwork.h) as EC2's subnet states
_STATES = {0: "pending", 1: "available", 2: "pending", 3: "unavailable", 5: "failed", 6: "available"}


# ---------------------------------------------------------------- subnets


@functools.lru_cache(maxsize=4096)
def cidr(first: str, size: int) -> str | None:
    """The smallest block holding *size* addresses from *first*; None when it is no IPv4 range."""
    try:
        start = ipaddress.IPv4Address(first)
        end = ipaddress.IPv4Address(min(int(start) + max(size, 1) - 1, 2**32 - 1))
    except ValueError:
        return None
    block = ipaddress.IPv4Network(start)
    while end not in block:
        block = block.supernet()
    return str(block)


def ipv4_ranges(vnet: VNet) -> list[tuple[ipaddress.IPv4Address, int]]:
    """The vnet's IPv4 address ranges (an AR of TYPE IP4, IP4_6...): (first address, size)."""
    out = []
    for kind, first, size in vnet.ranges:
        if kind.startswith("IP4"):
            with contextlib.suppress(ValueError):  # oned checked it; a range without one is no IPv4 range
                out.append((ipaddress.IPv4Address(first), size))
    return out


def published(ctx: Context, vnets: list[VNet]) -> int | None:
    """The network the instance types put their instances on (the lowest id of an instance type's
    template NIC that names one the user may use), else the lowest id: the zone's default subnet."""
    by_id = {v.id: v for v in vnets}
    by_name = {v.name: v.id for v in sorted(vnets, key=lambda v: -v.id)}
    if not ctx.config.use_file_templates:
        for t in sorted(ctx.session.templates(), key=lambda t: t.id):
            if tpl.get(t.body, "EC2_INSTANCE_TYPE") is None:
                continue
            for nic in tpl.get_all(t.body, "NIC"):
                if not isinstance(nic, list):
                    continue
                ref = tpl.vget(nic, "NETWORK_ID")
                if ref is not None and ref.isdigit() and int(ref) in by_id:
                    return int(ref)
                if tpl.vget(nic, "NETWORK") in by_name:
                    return by_name[tpl.vget(nic, "NETWORK")]
    return min(by_id) if by_id else None


def subnet(vnet: VNet, default: bool) -> dict:
    """The EC2 Subnet of a virtual network."""
    ranges = ipv4_ranges(vnet)
    return {
        "SubnetId": ids.fmt("subnet", vnet.id),
        "VpcId": VPC,
        "State": _STATES.get(vnet.state, "unavailable"),
        "CidrBlock": cidr(str(ranges[0][0]), ranges[0][1]) if ranges else None,
        # every address of every range that holds no lease (held ones count as leased, as oned counts them)
        "AvailableIpAddressCount": max(sum(size for _, _, size in vnet.ranges) - vnet.used, 0),
        "AvailabilityZone": ZONE,
        "AvailabilityZoneId": f"{ZONE}-1",
        "DefaultForAz": default,
        "MapPublicIpOnLaunch": False,  # an address is public when the network's is (no NAT here)
        "AssignIpv6AddressOnCreation": False,
        "Ipv6CidrBlockAssociationSet": [],
        "Tags": [{"Key": "Name", "Value": vnet.name}],  # the network's name, as EC2 consoles show subnets
    }


def subnets(ctx: Context) -> list[dict]:
    """Every subnet of the user, by id."""
    vnets = sorted(ctx.session.vnets(ctx.config.elasticips_vnet_id), key=lambda v: v.id)
    default = published(ctx, vnets)
    return [subnet(v, v.id == default) for v in vnets]


_SUBNET_FILTERS = {
    "subnet-id": lambda s: [s["SubnetId"]],
    "vpc-id": lambda s: [s["VpcId"]],
    "state": lambda s: [s["State"]],
    "cidr-block": lambda s: [s["CidrBlock"]] if s["CidrBlock"] else [],
    "available-ip-address-count": lambda s: [str(s["AvailableIpAddressCount"])],
    "availability-zone": lambda s: [s["AvailabilityZone"]],
    "availability-zone-id": lambda s: [s["AvailabilityZoneId"]],
    "default-for-az": lambda s: flag(s["DefaultForAz"]),
    "map-public-ip-on-launch": lambda s: flag(s["MapPublicIpOnLaunch"]),
    "tag-key": lambda s: [t["Key"] for t in s["Tags"]],
}
# the older spellings EC2 still takes, which some clients send
for _old, _new in {"cidr": "cidr-block", "cidrBlock": "cidr-block", "availabilityZone": "availability-zone",
                   "defaultForAz": "default-for-az"}.items():  # fmt: skip
    _SUBNET_FILTERS[_old] = _SUBNET_FILTERS[_new]


@action("DescribeSubnets", reads=("SubnetIds", "Filters"), ignored=("MaxResults", "NextToken"))
def describe_subnets(ctx: Context, p: dict) -> dict:
    """All subnets in one answer (a user has few networks), so there is never a next page."""
    filters = p.get("Filters", [])
    check_names(filters, _SUBNET_FILTERS)
    wanted = [(text, ids.parse(text, "subnet")) for text in p.get("SubnetIds", [])]
    found = subnets(ctx)
    if wanted:
        by_id = {s["SubnetId"]: s for s in found}
        for text, sid in wanted:
            if ids.fmt("subnet", sid) not in by_id:
                raise ids.not_found("subnet", text)
        found = [by_id[ids.fmt("subnet", sid)] for sid in dict.fromkeys(sid for _, sid in wanted)]
    matches = matcher(filters, _SUBNET_FILTERS)
    return {"Subnets": [s for s in found if matches(s)]}


# ---------------------------------------------------------------- the VPC


def vpc_block(found: list[dict]) -> str:
    blocks = [ipaddress.IPv4Network(s["CidrBlock"]) for s in found if s["CidrBlock"]]
    if not blocks:
        return EMPTY_VPC_BLOCK
    block = blocks[0]
    while not all(b.subnet_of(block) for b in blocks):
        block = block.supernet()
    return str(block)


def _vpc(block: str) -> dict:
    return {
        "VpcId": VPC,
        "State": "available",
        "CidrBlock": block,
        "CidrBlockAssociationSet": [
            {"AssociationId": "vpc-cidr-assoc-00000000", "CidrBlock": block, "CidrBlockState": {"State": "associated"}}
        ],
        "DhcpOptionsId": "default",
        "InstanceTenancy": "default",
        "IsDefault": True,
        "Ipv6CidrBlockAssociationSet": [],
    }


def _vpc_id(text: str) -> None:
    if ids.parse(text, "vpc") != 0:
        raise ids.not_found("vpc", text)


_VPC_FILTERS = {
    "vpc-id": lambda v: [v["VpcId"]],
    "is-default": lambda v: flag(v["IsDefault"]),
    "isDefault": lambda v: flag(v["IsDefault"]),  # EC2's older spelling: amazon.aws's ec2_instance sends it
    "state": lambda v: [v["State"]],
    "cidr": lambda v: [v["CidrBlock"]],
    "cidr-block-association.cidr-block": lambda v: [a["CidrBlock"] for a in v["CidrBlockAssociationSet"]],
    "cidr-block-association.association-id": lambda v: [a["AssociationId"] for a in v["CidrBlockAssociationSet"]],
    "cidr-block-association.state": lambda v: [a["CidrBlockState"]["State"] for a in v["CidrBlockAssociationSet"]],
    "dhcp-options-id": lambda v: [v["DhcpOptionsId"]],
    "tag-key": lambda v: [],
}


@action("DescribeVpcs", reads=("VpcIds", "Filters"), ignored=("MaxResults", "NextToken"))
def describe_vpcs(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _VPC_FILTERS)
    for text in p.get("VpcIds", []):
        _vpc_id(text)
    vpc = _vpc(vpc_block(subnets(ctx)))
    return {"Vpcs": [vpc] if matcher(filters, _VPC_FILTERS)(vpc) else []}


# no DNS names here (PrivateDnsName is empty), and no usage metrics
_VPC_ATTRIBUTES = {
    "enableDnsSupport": "EnableDnsSupport",
    "enableDnsHostnames": "EnableDnsHostnames",
    "enableNetworkAddressUsageMetrics": "EnableNetworkAddressUsageMetrics",
}


@action("DescribeVpcAttribute", reads=("VpcId", "Attribute"))
def describe_vpc_attribute(ctx: Context, p: dict) -> dict:
    _vpc_id(p["VpcId"])
    name = p["Attribute"]
    if name not in _VPC_ATTRIBUTES:
        raise invalid("Attribute", name, f"It must be one of {', '.join(_VPC_ATTRIBUTES)}.")
    return {"VpcId": VPC, _VPC_ATTRIBUTES[name]: {"Value": False}}


# ---------------------------------------------------------------- the account


def _elastic_ips(ctx: Context) -> str:
    """The addresses of the elastic-IP network (the most a user could hold), 0 when none is offered."""
    eip = ctx.config.elasticips_vnet_id
    if eip is None:
        return "0"
    return str(sum(size for v in ctx.session.vnets(eip) if v.id == eip for _, _, size in v.ranges))


def _account(ctx: Context) -> dict[str, list[str]]:
    elastic = _elastic_ips(ctx)
    return {
        "supported-platforms": ["VPC"],
        "default-vpc": [VPC],
        "max-instances": [str(ctx.config.max_count)],  # what one RunInstances may make here
        "max-elastic-ips": [elastic],
        "vpc-max-elastic-ips": [elastic],
    }


@action("DescribeAccountAttributes", reads=("AttributeNames",))
def describe_account_attributes(ctx: Context, p: dict) -> dict:
    known = _account(ctx)
    names = p.get("AttributeNames") or list(known)
    for name in names:
        if name not in known:
            raise EC2Error("InvalidParameterValue", f"The account attribute '{name}' is not one of {', '.join(known)}.")
    return {
        "AccountAttributes": [
            {"AttributeName": name, "AttributeValues": [{"AttributeValue": v} for v in known[name]]}
            for name in dict.fromkeys(names)
        ]
    }

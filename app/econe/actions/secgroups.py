"""Security groups on OpenNebula's: Describe/Create/DeleteSecurityGroup and
Authorize/RevokeSecurityGroupIngress/Egress.

An EC2 group is an OpenNebula security group: GroupName its NAME, Description its DESCRIPTION,
Tags its EC2_TAGS, and each EC2 rule (a protocol, a port range and one address range) one RULE
vector, written back with the whole template (oned pushes the rules to the VMs that use it)."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from one import template as tpl

from .. import ids
from ..errors import EC2Error, invalid, missing
from ..gateway import secgroup_missing
from ..objects import SecGroup
from . import paging, tagging
from .filters import check_names, wildcards
from .locks import lock
from .registry import Context, action

VPC = ids.fmt("vpc", 0)  # the one VPC of this cloud
DEFAULT = 0  # OpenNebula's default security group: EC2's group named "default"
# OpenNebula's PROTOCOL -> EC2's IpProtocol as EC2 shows it, and its number (IPSEC is ESP, 50)
_PROTOCOL_TABLE = {"TCP": ("tcp", "6"), "UDP": ("udp", "17"), "ICMP": ("icmp", "1"), "ICMPV6": ("icmpv6", "58"),
                   "IPSEC": ("50", "50"), "ALL": ("-1", "-1")}  # fmt: skip
EC2_PROTOCOL = {one: shown for one, (shown, _) in _PROTOCOL_TABLE.items()}
# what a request may name (either form) -> OpenNebula's PROTOCOL: EC2_PROTOCOL's inverse, and the numbers
PROTOCOLS = {text: one for one, names in _PROTOCOL_TABLE.items() for text in names}
ICMP_TYPE = {"ICMP": "ICMP_TYPE", "ICMPV6": "ICMPV6_TYPE"}
ALL_PORTS = (0, 65535)
# A rule without IP/SIZE is any address of IPv4 and IPv6 alike (OpenNebula's security_groups_iptables.rb
# writes it with iptables and ip6tables): EC2's 0.0.0.0/0 is stored as the widest IPv4 range oned takes
# (SIZE is at most 2^32-1: every address but 255.255.255.255), and shown back as 0.0.0.0/0.
ANY_IPV4 = (("IP", "0.0.0.0"), ("SIZE", str(2**32 - 1)))
# a name EC2 allows in a VPC that oned also takes (PoolObjectSQL::INVALID_NAME_CHARS, at most 128)
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-()@[]+=!*,")
MAX_NAME = 128


@dataclass(frozen=True)
class Rule:
    """One EC2 rule: what a RULE vector holds. Two rules are the same whatever their descriptions."""

    egress: bool
    protocol: str  # OpenNebula's PROTOCOL, upper case
    ports: tuple[int, int] | None  # TCP/UDP: from, to; ICMP: type (-1 any), -1; ALL: None
    cidr: str  # 0.0.0.0/0 and ::/0 are a rule without IP (any address)
    description: str = field(default="", compare=False)


# ---------------------------------------------------------------- RULE vectors <-> rules


def to_vector(rule: Rule) -> list:
    vec = [("PROTOCOL", rule.protocol), ("RULE_TYPE", "outbound" if rule.egress else "inbound")]
    if rule.protocol in ("TCP", "UDP"):
        vec.append(("RANGE", f"{rule.ports[0]}:{rule.ports[1]}"))
    elif rule.protocol in ICMP_TYPE and rule.ports[0] != -1:
        vec.append((ICMP_TYPE[rule.protocol], str(rule.ports[0])))
    net = ipaddress.ip_network(rule.cidr)
    if net.prefixlen:
        vec += [("IP", str(net.network_address)), ("SIZE", str(net.num_addresses))]
    elif net.version == 4:
        vec += ANY_IPV4
    else:  # no IPv6 range of oned holds every IPv6 address: any address (IPv4 too), as ::/0 says it
        vec.append(("EC2_CIDR", "::/0"))
    if rule.description:
        vec.append(("DESCRIPTION", rule.description))
    return vec


def _ports(text: str) -> list[tuple[int, int]]:
    """A RANGE ("22", "1000:2000", "22,80") as port pairs; none: every port."""
    if not text:
        return [ALL_PORTS]
    out = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        out.append((int(low), int(high or low)))
    return out


def _cidrs(vec: dict) -> list[str]:
    if not vec.get("IP"):
        return [vec.get("EC2_CIDR") or "0.0.0.0/0"]
    if (("IP", vec["IP"]), ("SIZE", vec.get("SIZE"))) == ANY_IPV4:
        return ["0.0.0.0/0"]
    first = ipaddress.ip_address(vec["IP"])
    last = first + (int(vec.get("SIZE") or 1) - 1)
    return [str(n) for n in ipaddress.summarize_address_range(first, last)]


def from_vector(vec: list) -> list[Rule]:
    """The EC2 rules of a RULE vector (one when econe wrote it). A rule naming a virtual network
    (NETWORK_ID) has no EC2 form and is not shown; it stays in the group."""
    v = {k: val for k, val in vec}
    protocol = v.get("PROTOCOL", "").upper()
    if v.get("NETWORK_ID") or protocol not in EC2_PROTOCOL:
        return []
    egress = v.get("RULE_TYPE", "").upper() == "OUTBOUND"
    try:
        if protocol in ("TCP", "UDP"):
            ports = _ports(v.get("RANGE", ""))
        elif protocol in ICMP_TYPE:
            ports = [(int(v.get(ICMP_TYPE[protocol]) or -1), -1)]
        else:
            ports = [None]
        cidrs = _cidrs(v)
    except ValueError:  # written by hand in OpenNebula, and nothing EC2 can show
        return []
    return [Rule(egress, protocol, p, c, v.get("DESCRIPTION", "")) for p in ports for c in cidrs]


def rules_of(group: SecGroup) -> list[Rule]:
    return [r for vec in tpl.get_all(group.template, "RULE") if isinstance(vec, list) for r in from_vector(vec)]


# ---------------------------------------------------------------- the request's rules


def _cidr(text, version: int, name: str) -> str:
    try:
        net = ipaddress.ip_network(text or "", strict=False)
    except ValueError:
        net = None
    if net is None or net.version != version:
        raise EC2Error("InvalidParameterValue", f"CIDR block {text} is malformed")
    if version == 6 and 0 < net.prefixlen < 97:  # oned's SIZE is at most 4294967295 addresses
        raise invalid(
            name, text, "OpenNebula's rules hold at most 2^32-1 addresses of a range: use ::/0 or a /97 or longer."
        )
    return str(net)


def _port_range(protocol: str, perm: dict) -> tuple[int, int] | None:
    low, high = perm.get("FromPort"), perm.get("ToPort")
    if protocol in ("TCP", "UDP"):
        if low is None or high is None:
            raise EC2Error("InvalidParameterValue", "Invalid value 'Must specify both from and to ports with TCP/UDP.'")
        if not 0 <= low <= high <= 65535:
            raise EC2Error(
                "InvalidParameterValue", f"Invalid TCP/UDP port range {low}:{high}: from 0 to 65535, from <= to."
            )
        return low, high
    if protocol in ICMP_TYPE:  # FromPort is the ICMP type, ToPort the code
        low = -1 if low is None else low
        if not -1 <= low <= 255:
            raise invalid("FromPort", low, "The ICMP type is -1 (all) or 0 to 255.")
        if high not in (None, -1):
            raise invalid("ToPort", high, "OpenNebula's rules match an ICMP type with every code: the code must be -1.")
        return low, -1
    return None  # all protocols: EC2 ignores the ports


def permission_rules(perm: dict, egress: bool, where: str) -> list[Rule]:
    """The rules of one IpPermission: its protocol and ports with each of its address ranges."""
    if perm.get("UserIdGroupPairs"):
        raise EC2Error(
            "InvalidParameterValue",
            f"{where}: a rule naming another security group cannot be expressed in OpenNebula's security groups; "
            "name address ranges (IpRanges, Ipv6Ranges).",
        )
    if perm.get("PrefixListIds"):
        raise EC2Error("InvalidParameterValue", f"{where}: prefix lists are not offered on this cloud.")
    text = perm.get("IpProtocol")
    if not text:
        raise missing(f"{where}.IpProtocol")
    protocol = PROTOCOLS.get(str(text).lower())
    if protocol is None:
        raise EC2Error("InvalidParameterValue", f"Invalid value '{text}' for IP protocol. Unknown protocol.")
    ports = _port_range(protocol, perm)
    ranges = [(r.get("CidrIp"), 4, r) for r in perm.get("IpRanges") or []]
    ranges += [(r.get("CidrIpv6"), 6, r) for r in perm.get("Ipv6Ranges") or []]
    if not ranges:
        raise EC2Error("InvalidParameterValue", f"{where}: the rule names no address range (IpRanges or Ipv6Ranges).")
    return [Rule(egress, protocol, ports, _cidr(c, v, where), r.get("Description") or "") for c, v, r in ranges]


def requested(p: dict, egress: bool) -> list[Rule]:
    """The rules a request names: IpPermissions, or the flat CidrIp/IpProtocol/FromPort/ToPort."""
    perms = p.get("IpPermissions") or []
    flat = {k: p.get(k) for k in ("IpProtocol", "FromPort", "ToPort", "CidrIp") if p.get(k) is not None}
    if p.get("SourceSecurityGroupName") or p.get("SourceSecurityGroupOwnerId"):
        raise EC2Error(
            "InvalidParameterValue",
            "A rule naming another security group cannot be expressed in OpenNebula's security groups; name CidrIp.",
        )
    if perms and flat:
        raise EC2Error("InvalidParameterCombination", "Give either IpPermissions or IpProtocol/CidrIp/FromPort/ToPort.")
    if flat:
        if "CidrIp" not in flat:
            raise missing("CidrIp")
        perms = [{**flat, "IpRanges": [{"CidrIp": flat["CidrIp"]}]}]
    if not perms:
        raise missing("IpPermissions")
    rules = [r for i, perm in enumerate(perms, 1) for r in permission_rules(perm, egress, f"IpPermissions.{i}")]
    return rules


def _rule_text(rule: Rule) -> str:
    ports = f", from port: {rule.ports[0]}, to port: {rule.ports[1]}" if rule.ports else ""
    return f"peer: {rule.cidr}, {EC2_PROTOCOL[rule.protocol].upper()}{ports}, ALLOW"


# ---------------------------------------------------------------- describing


def _ports_of(rule: Rule) -> dict:
    return {"FromPort": rule.ports[0], "ToPort": rule.ports[1]} if rule.ports else {}


def permissions(rules: list[Rule]) -> list[dict]:
    """EC2's IpPermissions: the rules grouped by protocol and ports, in the order oned keeps them."""
    out: dict[tuple, dict] = {}
    for r in rules:
        perm = out.setdefault(
            (r.protocol, r.ports),
            {"IpProtocol": EC2_PROTOCOL[r.protocol], **_ports_of(r), "IpRanges": [], "Ipv6Ranges": []},
        )
        key, cidr = ("Ipv6Ranges", "CidrIpv6") if ":" in r.cidr else ("IpRanges", "CidrIp")
        perm[key].append({cidr: r.cidr, "Description": r.description or None})
    return list(out.values())


def name_of(group: SecGroup) -> str:
    return "default" if group.id == DEFAULT else group.name


def describe(group: SecGroup) -> dict:
    rules = rules_of(group)
    return {
        "GroupId": ids.fmt("sg", group.id),
        "GroupName": name_of(group),
        "Description": tpl.get(group.template, "DESCRIPTION") or "",
        "OwnerId": str(group.uid),
        "VpcId": VPC,
        "IpPermissions": permissions([r for r in rules if not r.egress]),
        "IpPermissionsEgress": permissions([r for r in rules if r.egress]),
        "Tags": tagging.as_list(tagging.load(tpl.get(group.template, "EC2_TAGS"))),
    }


def _perm_values(d: dict, egress: bool, what: str) -> list[str]:
    perms = d["IpPermissionsEgress" if egress else "IpPermissions"]
    if what == "cidr":
        return [r["CidrIp"] for p in perms for r in p["IpRanges"]]
    if what == "ipv6-cidr":
        return [r["CidrIpv6"] for p in perms for r in p["Ipv6Ranges"]]
    key = {"protocol": "IpProtocol", "from-port": "FromPort", "to-port": "ToPort"}[what]
    return [str(p[key]) for p in perms if key in p]


_FILTERS = {
    "group-id": lambda d: [d["GroupId"]],
    "group-name": lambda d: [d["GroupName"]],
    "description": lambda d: [d["Description"]],
    "vpc-id": lambda d: [d["VpcId"]],
    "owner-id": lambda d: [d["OwnerId"]],
    "tag-key": lambda d: [t["Key"] for t in d["Tags"] or []],
}
for _egress, _prefix in ((False, "ip-permission."), (True, "egress.ip-permission.")):
    for _what in ("protocol", "from-port", "to-port", "cidr", "ipv6-cidr"):
        _FILTERS[_prefix + _what] = lambda d, e=_egress, w=_what: _perm_values(d, e, w)


def _matcher(filters: list[dict]):
    def values(name: str, d: dict) -> list[str]:
        if name.startswith("tag:"):
            return [t["Value"] for t in d["Tags"] or [] if t["Key"] == name[4:]]
        return _FILTERS[name](d)

    tests = [(f["Name"], wildcards(f.get("Values", []))) for f in filters]
    return lambda d: all(any(map(test, values(name, d))) for name, test in tests)


def get_group(ctx: Context, text: str) -> SecGroup:
    return ids.read(text, "sg", ctx.session.secgroup, secgroup_missing(ids.parse(text, "sg"), text))


def groups_named(ctx: Context, names: list[str]) -> list[SecGroup]:
    """The groups GroupNames name, from one read of the pool: the user's own of each name, or
    OpenNebula's default."""
    uid = ctx.session.whoami()[0]
    pool = ctx.session.secgroups()
    by_name = {g.name: g for g in pool if g.id != DEFAULT and g.uid == uid}  # oned: names unique per owner
    by_name.update((name_of(g), g) for g in pool if g.id == DEFAULT)  # "default" is OpenNebula's, whatever else
    for name in names:
        if name not in by_name:
            raise EC2Error(
                "InvalidGroup.NotFound", f"The security group '{name}' does not exist in default VPC '{VPC}'"
            )
    return [by_name[name] for name in names]


def group_named(ctx: Context, name: str) -> SecGroup:
    return groups_named(ctx, [name])[0]


def _group(ctx: Context, p: dict) -> SecGroup:
    if p.get("GroupId"):
        return get_group(ctx, p["GroupId"])
    if p.get("GroupName"):
        return group_named(ctx, p["GroupName"])
    raise missing("GroupId")


def _page(p: dict, items: list) -> tuple[list, str | None]:
    limit = paging.max_results(p)
    if limit is None:
        return items, None
    token = p.get("NextToken")
    start = 0
    if token:  # the last group of the page before: the next page starts after its id, also if it is gone
        try:
            last = ids.parse(token, "sg")
        except EC2Error:
            raise paging.invalid_token(token) from None
        start = next((i for i, d in enumerate(items) if ids.parse(d["GroupId"], "sg") > last), len(items))
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, page[-1]["GroupId"] if more else None


@action("DescribeSecurityGroups", reads=("GroupIds", "GroupNames", "Filters", "MaxResults", "NextToken"))
def describe_security_groups(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _FILTERS)
    wanted, names = p.get("GroupIds", []), p.get("GroupNames", [])
    if (wanted or names) and ("MaxResults" in p or "NextToken" in p):
        raise EC2Error("InvalidParameterCombination", "GroupIds and GroupNames cannot be used with MaxResults.")
    groups = [get_group(ctx, text) for text in dict.fromkeys(wanted)] + (groups_named(ctx, names) if names else [])
    groups = list({g.id: g for g in groups}.values())  # sg-7 and sg-00000007 are one, listed once as EC2 does
    if not wanted and not names:
        groups = sorted(ctx.session.secgroups(), key=lambda g: g.id)
    keep = _matcher(filters)
    items = [d for d in map(describe, groups) if keep(d)]
    page, token = _page(p, items)
    return {"SecurityGroups": page, "NextToken": token}


# ---------------------------------------------------------------- Create, Delete


def _check_name(name: str) -> None:
    if not name:  # oned refuses it too, in words about NAME
        raise invalid("groupName", "", "The value cannot be empty")
    if name == "default":
        raise EC2Error("InvalidParameterValue", "Cannot use reserved security group name: default")
    if name.startswith("sg-"):
        raise EC2Error("InvalidParameterValue", "Group names may not be in the format sg-*.")
    if len(name) > MAX_NAME or not set(name) <= NAME_CHARS:
        raise invalid(
            "GroupName",
            name,
            f"At most {MAX_NAME} characters of a-z, A-Z, 0-9, spaces and ._-()@[]+=!*, "
            "(OpenNebula refuses EC2's others).",
        )


@action(
    "CreateSecurityGroup",
    reads=("GroupName", "Description", "VpcId", "TagSpecifications"),
    stored=("GroupName", "Description", "TagSpecifications"),
    changes=True,
)
def create_security_group(ctx: Context, p: dict) -> dict:
    name, description = p["GroupName"], p["Description"]
    _check_name(name)
    if len(description) > 255:
        raise invalid("GroupDescription", description[:40], "At most 255 characters.")
    vpc = p.get("VpcId")
    if vpc not in (None, VPC):
        raise EC2Error("InvalidVpcID.NotFound", f"The vpc ID '{vpc}' does not exist")
    tags = tagging.from_specifications(p.get("TagSpecifications", []), "security-group")
    if ctx.dry_run:
        ctx.session.decide_dry_run([("CREATE", "SECGROUP", None)])
    body = [("NAME", name), ("DESCRIPTION", description), ("RULE", to_vector(Rule(True, "ALL", None, "0.0.0.0/0")))]
    if tags:
        body.append(("EC2_TAGS", tagging.dump(tags)))
    sgid = ctx.session.secgroup_allocate(tpl.serialize(body))
    return {"GroupId": ids.fmt("sg", sgid), "Tags": tagging.as_list(tags)}


@action("DeleteSecurityGroup", reads=("GroupId", "GroupName"), changes=True)
def delete_security_group(ctx: Context, p: dict) -> dict:
    group = _group(ctx, p)
    if group.id == DEFAULT:
        raise EC2Error("CannotDelete", 'the specified group: "default" name: "default" cannot be deleted by a user')
    if ctx.dry_run:
        if group.vms:
            raise EC2Error("DependencyViolation", "The security group is in use by an instance.")
        ctx.session.decide_dry_run([("MANAGE", "SECGROUP", group.id)])
    ctx.session.secgroup_delete(group.id)
    return {"Return": True, "GroupId": ids.fmt("sg", group.id)}


# ---------------------------------------------------------------- Authorize, Revoke


def _rule_answer(group: SecGroup, rule: Rule) -> dict:
    digest = hashlib.sha1(repr((group.id, rule)).encode()).hexdigest()[:17]  # noqa: S324 (a name, not a secret)
    cidr = "CidrIpv6" if ":" in rule.cidr else "CidrIpv4"
    return {
        "SecurityGroupRuleId": f"sgr-{digest}",
        "GroupId": ids.fmt("sg", group.id),
        "GroupOwnerId": str(group.uid),
        "IsEgress": rule.egress,
        "IpProtocol": EC2_PROTOCOL[rule.protocol],
        **(_ports_of(rule) or {"FromPort": -1, "ToPort": -1}),
        cidr: rule.cidr,
        "Description": rule.description or None,
    }


def _write(ctx: Context, group: SecGroup, vectors: list) -> None:
    """The group's whole template with these RULE vectors in place of its own."""
    body = [(k, v) for k, v in group.template if k != "RULE"] + [("RULE", vec) for vec in vectors]
    ctx.session.secgroup_update(group.id, tpl.serialize(body))


@contextlib.contextmanager
def _changing(ctx: Context, p: dict) -> Iterator[SecGroup]:
    """The group *p* names, read under its lock: its whole template is written back, and a change made
    between this read and that write (a rule, a tag) would be lost."""
    text = p.get("GroupId") or ids.fmt("sg", _group(ctx, p).id)
    with lock("sg", ids.parse(text, "sg")):
        yield get_group(ctx, text)


def _authorize(ctx: Context, p: dict, egress: bool) -> dict:
    with _changing(ctx, p) as group:
        return _add_rules(ctx, group, requested(p, egress))


def _add_rules(ctx: Context, group: SecGroup, rules: list[Rule]) -> dict:
    existing = set(rules_of(group))
    for i, rule in enumerate(rules):
        if rule in existing or rule in rules[:i]:
            raise EC2Error("InvalidPermission.Duplicate", f'the specified rule "{_rule_text(rule)}" already exists')
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "SECGROUP", group.id)])
    vectors = [vec for vec in tpl.get_all(group.template, "RULE")] + [to_vector(r) for r in rules]
    _write(ctx, group, vectors)
    return {"Return": True, "SecurityGroupRules": [_rule_answer(group, r) for r in rules]}


def _revoke(ctx: Context, p: dict, egress: bool) -> dict:
    """Each rule named must be one of the group's, or nothing is revoked (InvalidPermission.NotFound)."""
    with _changing(ctx, p) as group:
        return _remove_rules(ctx, group, requested(p, egress))


def _remove_rules(ctx: Context, group: SecGroup, rules: list[Rule]) -> dict:
    vectors = list(tpl.get_all(group.template, "RULE"))
    # a vector econe wrote holds one rule; one OpenNebula made with several ports or ranges is left alone
    single = [from_vector(v) if isinstance(v, list) else [] for v in vectors]
    gone = []
    for rule in rules:
        i = next((i for i, found in enumerate(single) if found == [rule] and i not in gone), None)
        if i is None:
            raise EC2Error(
                "InvalidPermission.NotFound",
                f'The specified rule does not exist in this security group: "{_rule_text(rule)}"',
            )
        gone.append(i)
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "SECGROUP", group.id)])
    _write(ctx, group, [v for i, v in enumerate(vectors) if i not in gone])
    return {"Return": True, "RevokedSecurityGroupRules": [
        {k: v for k, v in _rule_answer(group, single[i][0]).items() if k != "GroupOwnerId"} for i in gone
    ]}  # fmt: skip


_INGRESS = ("GroupId", "GroupName", "IpPermissions", "IpProtocol", "FromPort", "ToPort", "CidrIp")
_INGRESS += ("SourceSecurityGroupName", "SourceSecurityGroupOwnerId")
_EGRESS = tuple(m for m in _INGRESS if m != "GroupName")


@action("AuthorizeSecurityGroupIngress", reads=_INGRESS, stored=("IpPermissions",), changes=True)
def authorize_security_group_ingress(ctx: Context, p: dict) -> dict:
    return _authorize(ctx, p, False)


@action("AuthorizeSecurityGroupEgress", reads=_EGRESS, stored=("IpPermissions",), changes=True)
def authorize_security_group_egress(ctx: Context, p: dict) -> dict:
    return _authorize(ctx, p, True)


@action("RevokeSecurityGroupIngress", reads=_INGRESS, changes=True)
def revoke_security_group_ingress(ctx: Context, p: dict) -> dict:
    return _revoke(ctx, p, False)


@action("RevokeSecurityGroupEgress", reads=_EGRESS, changes=True)
def revoke_security_group_egress(ctx: Context, p: dict) -> dict:
    return _revoke(ctx, p, True)

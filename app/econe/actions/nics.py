"""Network interfaces: the NIC RunInstances gives an instance (``SubnetId``, ``SecurityGroups``,
``SecurityGroupIds``, ``PrivateIpAddress``, or ``NetworkInterfaces`` at device index 0), how an
instance's NICs read in EC2's terms, and DescribeNetworkInterfaces.

A NIC is ``eni-%08d%04d`` of its VM's id and its NIC_ID. Its groups are its ``SECURITY_GROUPS``,
except that oned adds its network's groups (``0``, OpenNebula's ``default``, unless the operator set
others) to every NIC: group 0 next to others says nothing about what was asked for, so EC2 shows it
only when it is the NIC's only group — as an EC2 instance launched without groups has ``default``."""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from one.codes import VM_STATE

from .. import ids
from ..errors import EC2Error
from ..gateway import UserSession
from ..objects import VM, Nic, VNet
from .filters import check_names, matcher, present
from .regions import ZONE
from .registry import Context, action
from .secgroups import DEFAULT as DEFAULT_GROUP
from .secgroups import get_group, group_named, name_of
from .vpcs import VPC, ipv4_ranges

RUN_READS = ("SubnetId", "SecurityGroups", "SecurityGroupIds", "PrivateIpAddress", "NetworkInterfaces")
RUN_STORED = ("PrivateIpAddress", "NetworkInterfaces")  # the address is written into the NIC
# what a NetworkInterfaces item may say (device index 0 only); AssociatePublicIpAddress is ignored:
# an address is public when the network's is, there is no NAT to add one
_SPEC_MEMBERS = {"DeviceIndex", "SubnetId", "Groups", "PrivateIpAddress", "DeleteOnTermination",
                 "AssociatePublicIpAddress"}  # fmt: skip
# what a NIC of the instance type keeps when RunInstances names its subnet: none of its own network choice
_NETWORK_CHOICE = {"NETWORK", "NETWORK_ID", "NETWORK_UNAME", "NETWORK_UID", "NETWORK_MODE", "IP", "IP6", "MAC",
                   "AR_ID", "SECURITY_GROUPS", "SCHED_REQUIREMENTS", "SCHED_RANK"}  # fmt: skip


def eni_id(vmid: int, nic_id: int) -> str:
    return f"eni-{vmid:08d}{nic_id:04d}"


_ENI = re.compile(r"eni-([0-9]{8,14})([0-9]{4})")


def parse_eni(text: str) -> tuple[int, int]:
    m = _ENI.fullmatch(text or "")
    if not m or int(m.group(1)) > 2**31 - 1:
        raise EC2Error(
            "InvalidNetworkInterfaceID.Malformed",
            f'Invalid id: "{text}" (expecting a network interface ID like eni-000000010000)',
        )
    return int(m.group(1)), int(m.group(2))


def _eni_missing(text: str) -> EC2Error:
    return EC2Error("InvalidNetworkInterfaceID.NotFound", f"The networkInterface ID '{text}' does not exist")


@functools.lru_cache(maxsize=4096)
def groups_of(security_groups: str) -> tuple[int, ...]:
    """The EC2 groups of a NIC from oned's ``SECURITY_GROUPS`` (see the module's docstring)."""
    found = tuple(int(g) for g in security_groups.split(",") if g.strip().isdigit())
    shown = tuple(g for g in found if g != DEFAULT_GROUP)
    return shown or found


class GroupNames:
    """A NIC's groups as EC2 shows them, for one request: group 0 is ``default``; the other names come
    from one pool call, made only when a group other than 0 is asked for (*session* None: never; they
    are left out). Each distinct ``SECURITY_GROUPS`` is read once: most NICs of a cloud share a few.
    Also which NICs hold an elastic IP: those on the user's reservations of the *elastic* network."""

    def __init__(self, session: UserSession | None, elastic: int | None = None):
        self._session = session
        self._names: dict[int, str] | None = None if session else {}
        self._lists: dict[str, list[dict]] = {}
        self._elastic = elastic
        self._addresses: set[str] | None = None if session and elastic is not None else set()

    def is_elastic(self, nic: Nic) -> bool:
        """Whether the NIC holds an elastic IP (the instance's public address). The short pool answer's
        NIC has no PARENT_NETWORK_ID: the user's reservations come from one pool call (-3, the user's
        own networks), made only when elastic IPs are offered and a NIC with an address is asked about."""
        if not nic.ip or not nic.network_id:
            return False
        if self._addresses is None:
            self._addresses = {
                el.findtext("ID")
                for el in self._session.own_vnets()
                if el.findtext("PARENT_NETWORK_ID") == str(self._elastic)
            }
        return nic.network_id in self._addresses

    def name(self, gid: int) -> str | None:
        if gid == DEFAULT_GROUP:
            return "default"
        if self._names is None:
            self._names = {g.id: name_of(g) for g in self._session.secgroups()}
        return self._names.get(gid)

    def groups(self, security_groups: str) -> list[dict]:
        found = self._lists.get(security_groups)
        if found is None:
            found = [{"GroupId": ids.fmt("sg", g), "GroupName": self.name(g)} for g in groups_of(security_groups)]
            if len(self._lists) < 1024:
                self._lists[security_groups] = found
        return found


@functools.lru_cache(maxsize=65536)
def _subnet_id(network_id: str) -> str | None:
    return ids.fmt("subnet", int(network_id)) if network_id.isdigit() else None


@functools.lru_cache(maxsize=65536)
def utc_time(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def interface(vm: VM, nic: Nic, names: GroupNames, standalone: bool = False) -> dict:
    """An instance's NIC as EC2's InstanceNetworkInterface, or (*standalone*) its NetworkInterface.
    Per VM of every DescribeInstances: kept to what clients read, from cached parts."""
    nic_id = int(nic.nic_id or 0)
    eni = eni_id(vm.id, nic_id)
    out = {
        "NetworkInterfaceId": eni,
        "SubnetId": _subnet_id(nic.network_id),
        "VpcId": VPC,
        "OwnerId": str(vm.uid),
        "Status": "in-use",
        "MacAddress": nic.mac,
        "PrivateIpAddress": nic.ip or None,
        "PrivateIpAddresses": [{"PrivateIpAddress": nic.ip, "Primary": True}] if nic.ip else [],
        "SourceDestCheck": True,
        "InterfaceType": "interface",
        "Groups": names.groups(nic.security_groups),
        "Attachment": {
            "AttachmentId": "eni-attach-" + eni[4:],
            "DeviceIndex": nic_id,
            "Status": "attached",
            "AttachTime": utc_time(vm.stime),
            "DeleteOnTermination": True,  # a NIC lives and dies with its VM
        },
    }
    if names.is_elastic(nic):
        out["Association"] = {"PublicIp": nic.ip, "IpOwnerId": str(vm.uid), "PublicDnsName": ""}
    if standalone:
        out["Attachment"].update(InstanceId=ids.fmt("i", vm.id), InstanceOwnerId=str(vm.uid))
        out.update(AvailabilityZone=ZONE, Description="", RequesterManaged=False, TagSet=[])
    return out


def instance_network(vm: VM, names: GroupNames) -> dict:
    """VpcId, SubnetId (the first NIC's), NetworkInterfaces and SecurityGroups (all NICs') of an instance.
    A DONE VM has none: its leases are back in their networks."""
    if vm.state == VM_STATE.DONE or not vm.nics:
        return {"NetworkInterfaces": [], "SecurityGroups": []}
    enis = [interface(vm, nic, names) for nic in vm.nics]
    if len(enis) == 1:
        groups = enis[0]["Groups"]
    else:
        groups = list({g["GroupId"]: g for e in enis for g in e["Groups"]}.values())
    return {"VpcId": VPC, "SubnetId": enis[0]["SubnetId"], "NetworkInterfaces": enis, "SecurityGroups": groups}


# DescribeInstances' network filters, on the described instance
INSTANCE_FILTERS = {
    "vpc-id": lambda d: present(d.get("VpcId")),
    "subnet-id": lambda d: present(d.get("SubnetId")),
    "network-interface.network-interface-id": lambda d: [e["NetworkInterfaceId"] for e in d["NetworkInterfaces"]],
    "network-interface.subnet-id": lambda d: [e["SubnetId"] for e in d["NetworkInterfaces"] if e["SubnetId"]],
    "network-interface.vpc-id": lambda d: [e["VpcId"] for e in d["NetworkInterfaces"]],
    "network-interface.mac-address": lambda d: [e["MacAddress"] for e in d["NetworkInterfaces"]],
    "network-interface.private-ip-address": lambda d: [
        e["PrivateIpAddress"] for e in d["NetworkInterfaces"] if e["PrivateIpAddress"]
    ],  # fmt: skip
    "instance.group-id": lambda d: [g["GroupId"] for g in d["SecurityGroups"]],
    "instance.group-name": lambda d: [g["GroupName"] for g in d["SecurityGroups"] if g["GroupName"]],
}
INSTANCE_FILTERS["group-id"] = INSTANCE_FILTERS["instance.group-id"]
INSTANCE_FILTERS["group-name"] = INSTANCE_FILTERS["instance.group-name"]


# ---------------------------------------------------------------- DescribeNetworkInterfaces

_ENI_FILTERS = {
    "network-interface-id": lambda e: [e["NetworkInterfaceId"]],
    "attachment.instance-id": lambda e: [e["Attachment"]["InstanceId"]],
    "attachment.instance-owner-id": lambda e: [e["Attachment"]["InstanceOwnerId"]],
    "attachment.attachment-id": lambda e: [e["Attachment"]["AttachmentId"]],
    "attachment.device-index": lambda e: [str(e["Attachment"]["DeviceIndex"])],
    "attachment.status": lambda e: [e["Attachment"]["Status"]],
    "attachment.delete-on-termination": lambda e: ["true"],
    "subnet-id": lambda e: present(e["SubnetId"]),
    "vpc-id": lambda e: [e["VpcId"]],
    "private-ip-address": lambda e: present(e["PrivateIpAddress"]),
    "addresses.private-ip-address": lambda e: present(e["PrivateIpAddress"]),
    "mac-address": lambda e: [e["MacAddress"]],
    "group-id": lambda e: [g["GroupId"] for g in e["Groups"]],
    "group-name": lambda e: [g["GroupName"] for g in e["Groups"] if g["GroupName"]],
    "owner-id": lambda e: [e["OwnerId"]],
    "status": lambda e: [e["Status"]],
    "availability-zone": lambda e: [e["AvailabilityZone"]],
    "interface-type": lambda e: [e["InterfaceType"]],
    "source-dest-check": lambda e: ["true"],
    "requester-managed": lambda e: ["false"],
    "description": lambda e: [],
    "tag-key": lambda e: [],
}


@action(
    "DescribeNetworkInterfaces",
    reads=("NetworkInterfaceIds", "Filters"),
    ignored=("MaxResults", "NextToken", "IncludeManagedResources"),
)
def describe_network_interfaces(ctx: Context, p: dict) -> dict:
    """The NICs of the user's VMs that are not DONE, all in one answer."""
    filters = p.get("Filters", [])
    check_names(filters, _ENI_FILTERS)
    wanted = [(text, parse_eni(text)) for text in p.get("NetworkInterfaceIds", [])]
    if wanted:
        vms = ctx.session.vms_by_id(sorted({vmid for _, (vmid, _) in wanted}))
    else:
        vms = ctx.session.vms(False)
    names = GroupNames(ctx.session, ctx.config.elasticips_vnet_id)
    found = {
        (vm.id, int(nic.nic_id or 0)): interface(vm, nic, names, standalone=True)
        for vm in vms
        if vm.state != VM_STATE.DONE
        for nic in vm.nics
    }
    if wanted:
        for text, key in wanted:
            if key not in found:
                raise _eni_missing(text)
        items = [found[key] for key in dict.fromkeys(key for _, key in wanted)]
    else:
        items = list(found.values())
    matches = matcher(filters, _ENI_FILTERS)
    return {"NetworkInterfaces": [e for e in items if matches(e)]}


# ---------------------------------------------------------------- RunInstances


@dataclass(frozen=True)
class Choice:
    """What a RunInstances asks of the instance's first NIC; None members: the instance type decides."""

    subnet: VNet | None = None
    groups: tuple[int, ...] | None = None
    ip: str | None = None
    vnets: tuple[VNet, ...] = ()  # the user's networks, read when an address is asked for


def _combination(what: str) -> EC2Error:
    return EC2Error(
        "InvalidParameterCombination",
        f"Network interfaces and an instance-level {what} may not be specified on the same request",
    )


def _spec(interfaces: list[dict]) -> dict:
    """The one NetworkInterfaces item this cloud takes: device index 0, a NIC made with the instance."""
    if len(interfaces) != 1 or interfaces[0].get("DeviceIndex", 0) != 0:
        raise EC2Error(
            "InvalidParameterValue",
            "An instance here has one network interface: give NetworkInterface.1 at DeviceIndex 0.",
        )
    spec = interfaces[0]
    for member in spec:
        if member not in _SPEC_MEMBERS:
            raise EC2Error(
                "InvalidParameter", f"The parameter NetworkInterface.1.{member} is not supported on this cloud."
            )
    if spec.get("DeleteOnTermination") is False:
        raise EC2Error(
            "InvalidParameterValue",
            "A network interface here is deleted with its instance: DeleteOnTermination must be true.",
        )
    return spec


def _address(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise EC2Error("InvalidParameterValue", f"Invalid value '{text[:40]}' for PrivateIpAddress.") from None


def _group_ids(ctx: Context, id_texts: list[str], names: list[str]) -> tuple[int, ...] | None:
    """The security groups named by id or by name, as the security-group actions find them."""
    if not id_texts and not names:
        return None
    found = [get_group(ctx, text).id for text in id_texts] + [group_named(ctx, name).id for name in names]
    return tuple(dict.fromkeys(found))


def choose(ctx: Context, p: dict, count: int) -> Choice | None:
    """The NIC a RunInstances asks for, checked as EC2 checks it; None when it asks for nothing.
    A dry run asks nothing more of the subnet and groups: the subnet is found among the networks the
    user may USE, and oned answers one.secgroup.info only to a user who may USE the group."""
    subnet_text, id_texts, names = p.get("SubnetId"), p.get("SecurityGroupIds", []), p.get("SecurityGroups", [])
    ip_text, interfaces = p.get("PrivateIpAddress"), p.get("NetworkInterfaces", [])
    if interfaces:
        if subnet_text is not None:
            raise _combination("subnet ID")
        if id_texts or names:
            raise _combination("security groups")
        if ip_text is not None:
            raise _combination("private IP address")
        spec = _spec(interfaces)
        subnet_text, id_texts, ip_text = spec.get("SubnetId"), spec.get("Groups", []), spec.get("PrivateIpAddress")
    if subnet_text is None and not id_texts and not names and ip_text is None:
        return None
    ip = _address(ip_text)
    if ip and count > 1:
        raise EC2Error("InvalidParameterCombination", "A private IP address cannot be given to more than one instance.")
    vnets: tuple[VNet, ...] = ()
    subnet = None
    if subnet_text is not None or ip:
        vnets = tuple(ctx.session.vnets(ctx.config.elasticips_vnet_id))
    if subnet_text is not None:
        sid = ids.parse(subnet_text, "subnet")
        subnet = next((v for v in vnets if v.id == sid), None)
        if subnet is None:
            raise ids.not_found("subnet", subnet_text)
    return Choice(subnet, _group_ids(ctx, id_texts, names), ip, vnets)


def _check_in_range(ip: str, vnet: VNet) -> None:
    address = ipaddress.IPv4Address(ip)
    if not any(int(first) <= int(address) < int(first) + size for first, size in ipv4_ranges(vnet)):
        raise EC2Error(
            "InvalidParameterValue",
            f"Address {ip} does not fall within the subnet's address range ({ids.fmt('subnet', vnet.id)}).",
        )


def _network_of(nic: list, vnets: tuple[VNet, ...]) -> VNet | None:
    """The network an instance type's NIC names, among the user's (by NETWORK_ID, or NETWORK by name)."""
    attrs = dict(nic)
    ref, name = attrs.get("NETWORK_ID"), attrs.get("NETWORK")
    return next((v for v in vnets if (ref is not None and str(v.id) == ref) or (ref is None and v.name == name)), None)


def shape(type_nics: list, choice: Choice | None) -> list[tuple[str, list]]:
    """The NIC attributes of the VM: the instance type's NICs with the first one as *choice* makes it
    (its network replaced when a subnet is chosen; SECURITY_GROUPS and IP set), or none when nothing is
    chosen (the type's own NICs stand). Raises the client's error when the choice cannot be made."""
    if choice is None:
        return []
    if choice.subnet is None and not type_nics:
        raise EC2Error(
            "InvalidParameterValue", "This instance type gives its instances no network interface: name a SubnetId."
        )
    first = type_nics[0] if type_nics else []
    if choice.subnet is not None:
        nic = [(k, v) for k, v in first if k not in _NETWORK_CHOICE] + [("NETWORK_ID", str(choice.subnet.id))]
        network = choice.subnet
    else:
        nic = [(k, v) for k, v in first if k not in ("SECURITY_GROUPS", "IP")]
        network = _network_of(first, choice.vnets) if choice.ip else None
    if choice.groups is not None:
        nic.append(("SECURITY_GROUPS", ",".join(str(g) for g in choice.groups)))
    if choice.ip:
        if network is not None:
            _check_in_range(choice.ip, network)
        nic.append(("IP", choice.ip))
    return [("NIC", nic)] + [("NIC", rest) for rest in type_nics[1:]]


@contextlib.contextmanager
def lease_errors(choice: Choice | None):
    """oned's "cannot get a lease" for an address asked for means the address is taken: EC2's InUse."""
    try:
        yield
    except EC2Error as e:
        if choice is None or not choice.ip or e.code != "InsufficientInstanceCapacity":
            raise
        raise EC2Error("InvalidIPAddress.InUse", f"Address {choice.ip} is in use.", 400, e.detail) from None

"""Elastic IPs: AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress, DescribeAddresses.

An address is a network the user owns that reserves one address of the operator's elastic-IP network
(``elasticips_vnet_id``), made with ``one.vn.reserve`` as the user: oned holds the address for that
network alone, so no address is ever given to two users, and the user sees it in ``onevnet list``.
Its AllocationId is ``eipalloc-%08d`` of the reservation's id. An association is the NIC that leases
the address on an instance (``one.vm.attachnic`` of the reservation): ``eipassoc-%08d%04d`` of the VM's
id and the NIC_ID. OpenNebula has no NAT: the NIC's address is the public address itself, so an
association's PrivateIpAddress is that address too. Domain is ``vpc`` whatever the client asked for.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass

from one import template as tpl
from one.codes import LCM_STATE, VM_STATE

from .. import ids
from ..errors import EC2Error, invalid, missing
from ..objects import VM, Nic
from . import filters, nics, tagging, waits
from .regions import REGION
from .registry import Context, action

SETTLE_TIMEOUT = 10.0  # seconds an action waits for the driver at most
_ASSOCIATION = re.compile(r"eipassoc-([0-9]{8})([0-9]{4})")


@dataclass(frozen=True)
class Address:
    vnet: int  # the reservation network
    ip: str
    tags: dict  # EC2_TAGS of the reservation's template
    made: bool = True  # False while oned's driver is still making the reservation (LOCK_CREATE)
    vm: VM | None = None  # the instance the address is associated with, and its NIC holding it
    nic: Nic | None = None

    @property
    def association(self) -> str | None:
        return association_id(self.vm.id, int(self.nic.nic_id or 0)) if self.vm and self.nic else None


def association_id(vmid: int, nic_id: int) -> str:
    return f"eipassoc-{vmid:08d}{nic_id:04d}"


def parse_association(text: str) -> tuple[int, int]:
    m = _ASSOCIATION.fullmatch(text or "")
    if not m or int(m.group(1)) > 2**31 - 1:
        raise EC2Error(
            "InvalidAssociationID.Malformed",
            f'Invalid id: "{text}" (expecting an association ID like eipassoc-000000010001)',
        )
    return int(m.group(1)), int(m.group(2))


def elastic_network(ctx: Context) -> int:
    """The elastic-IP network; without one this cloud offers no addresses."""
    if ctx.config.elasticips_vnet_id is None:
        raise EC2Error("UnsupportedOperation", "Elastic IP addresses are not offered by this cloud.")
    return ctx.config.elasticips_vnet_id


def _tags(el) -> dict:
    return tagging.load(el.findtext("TEMPLATE/EC2_TAGS"))


# VirtualNetworkState: a reservation is LOCK_CREATE for a moment, in which oned refuses to delete it;
# a released one stays while oned's driver deletes it (LOCK_DELETE, DONE)
_MAKING, _RELEASED = "2", {"3", "4"}


def reservations(ctx: Context) -> list[Address]:
    """The user's addresses, by allocation, without their associations (one pool call)."""
    eip = ctx.config.elasticips_vnet_id
    if eip is None:
        return []
    found = [
        Address(int(el.findtext("ID")), el.findtext("AR_POOL/AR/IP") or "", _tags(el), el.findtext("STATE") != _MAKING)
        for el in ctx.session.own_vnets()
        if el.findtext("PARENT_NETWORK_ID") == str(eip) and el.findtext("STATE") not in _RELEASED
    ]
    return sorted(found, key=lambda a: a.vnet)


def addresses(ctx: Context) -> list[Address]:
    """The user's addresses, by allocation, each with the instance NIC that holds it (if any)."""
    found = reservations(ctx)
    if not found:
        return []
    held = {
        int(nic.network_id): (vm, nic)
        for vm in ctx.session.vms(with_done=False)
        for nic in vm.nics
        if nic.network_id.isdigit()
    }
    out = []
    for a in found:
        vm, nic = held.get(a.vnet, (None, None))
        out.append(dataclasses.replace(a, vm=vm, nic=nic))
    return out


def _find(ctx: Context, allocation: str | None, public_ip: str | None) -> Address:
    """The address an AllocationId (first) or a PublicIp names; another user's is as missing as none."""
    if allocation:
        rid = ids.parse(allocation, "eipalloc")
        found = next((a for a in addresses(ctx) if a.vnet == rid), None)
        if found is None:
            raise ids.not_found("eipalloc", allocation)
        return found
    if public_ip:
        found = next((a for a in addresses(ctx) if a.ip == public_ip), None)
        if found is None:
            raise EC2Error("InvalidAddress.NotFound", f"Address '{public_ip}' not found.")
        return found
    raise missing("AllocationId")


def _settled(ctx: Context, vmid: int) -> None:
    """Wait for the driver to finish plugging or unplugging (as a client's waiter would), so that the
    address is free, or in use, when the answer says so."""
    waits.until(lambda: ctx.session.vm(vmid).lcm_state != LCM_STATE.HOTPLUG_NIC, SETTLE_TIMEOUT, poll=0.05)


def describe(a: Address) -> dict:
    out = {
        "PublicIp": a.ip,
        "AllocationId": ids.fmt("eipalloc", a.vnet),
        "Domain": "vpc",
        "PublicIpv4Pool": "opennebula",
        "NetworkBorderGroup": REGION,
        "Tags": tagging.as_list(a.tags),
    }
    if a.vm and a.nic:
        out.update(
            AssociationId=a.association,
            InstanceId=ids.fmt("i", a.vm.id),
            NetworkInterfaceId=nics.eni_id(a.vm.id, int(a.nic.nic_id or 0)),
            NetworkInterfaceOwnerId=str(a.vm.uid),
            PrivateIpAddress=a.ip,
        )
    return out


_FILTERS = {
    "allocation-id": lambda d: [d["AllocationId"]],
    "association-id": lambda d: filters.present(d.get("AssociationId")),
    "domain": lambda d: [d["Domain"]],
    "instance-id": lambda d: filters.present(d.get("InstanceId")),
    "network-border-group": lambda d: [d["NetworkBorderGroup"]],
    "network-interface-id": lambda d: filters.present(d.get("NetworkInterfaceId")),
    "network-interface-owner-id": lambda d: filters.present(d.get("NetworkInterfaceOwnerId")),
    "private-ip-address": lambda d: filters.present(d.get("PrivateIpAddress")),
    "public-ip": lambda d: [d["PublicIp"]],
    "tag-key": lambda d: [t["Key"] for t in d["Tags"] or []],
}


@action("DescribeAddresses", reads=("PublicIps", "AllocationIds", "Filters"))
def describe_addresses(ctx: Context, p: dict) -> dict:
    """The user's addresses (none without an elastic-IP network); naming one the user does not hold
    is an error, as on EC2."""
    wanted_filters = p.get("Filters", [])
    filters.check_names(wanted_filters, _FILTERS)
    public_ips, allocations = p.get("PublicIps", []), p.get("AllocationIds", [])
    wanted = [ids.parse(text, "eipalloc") for text in allocations]
    found = addresses(ctx) if ctx.config.elasticips_vnet_id is not None else []
    for ip in public_ips:
        if not any(a.ip == ip for a in found):
            raise EC2Error("InvalidAddress.NotFound", f"Address '{ip}' not found.")
    for text, rid in zip(allocations, wanted, strict=True):
        if not any(a.vnet == rid for a in found):
            raise ids.not_found("eipalloc", text)
    if public_ips or wanted:
        found = [a for a in found if a.ip in public_ips or a.vnet in wanted]
    matches = filters.matcher(wanted_filters, _FILTERS)
    return {"Addresses": [d for d in map(describe, found) if matches(d)]}


@action("AllocateAddress", reads=("Domain", "TagSpecifications"), stored=("TagSpecifications",), changes=True)
def allocate_address(ctx: Context, p: dict) -> dict:
    """A reservation of one address of the elastic-IP network, made as the user; its tags go into the
    reservation's template (``EC2_TAGS``), as the tags API keeps them."""
    domain = p.get("Domain")
    if domain is not None and domain not in ("vpc", "standard"):
        raise invalid("Domain", domain, "It must be vpc or standard.")
    tags = tagging.from_specifications(p.get("TagSpecifications", []), "elastic-ip")
    eip = elastic_network(ctx)
    if ctx.dry_run:
        ctx.session.decide_dry_run([("USE", "NET", eip)])
    missing_network = EC2Error("UnsupportedOperation", f"The elastic-IP network {eip} does not exist.")
    rid = ctx.session.vn_reserve(eip, f'SIZE="1"\nNAME="eip-{uuid.uuid4().hex}"\n', missing_network)
    if tags:
        ctx.session.vn_update(rid, tpl.serialize([("EC2_TAGS", tagging.dump(tags))]))
    made = next((a for a in reservations(ctx) if a.vnet == rid), None)
    if made is None:  # released by another request of the user since it was made
        raise ids.not_found("eipalloc", ids.fmt("eipalloc", rid))
    return {k: v for k, v in describe(made).items() if k in ("PublicIp", "AllocationId", "Domain", "PublicIpv4Pool",
                                                             "NetworkBorderGroup")}  # fmt: skip


@action("AssociateAddress", reads=("AllocationId", "PublicIp", "InstanceId", "AllowReassociation"), changes=True)
def associate_address(ctx: Context, p: dict) -> dict:
    """Plug a NIC on the address's reservation into the instance; with AllowReassociation, an address
    associated with another instance is unplugged from it first. Another association to the same
    instance is the one it has."""
    allocation, public_ip = p.get("AllocationId"), p.get("PublicIp")
    instance, allow = p.get("InstanceId"), p.get("AllowReassociation", False)
    if not instance:
        raise missing("InstanceId")
    vmid = ids.parse(instance, "i")
    elastic_network(ctx)
    address = _find(ctx, allocation, public_ip)
    target = ctx.session.vm(vmid)
    if target.uid != ctx.session.uid:  # a VM of another the user may MANAGE: its addresses would not list it
        raise ids.not_found("i", instance)
    here = address.vm is not None and address.vm.id == vmid
    if address.vm and not here and not allow:
        raise _already(address)
    if ctx.dry_run:
        moved = [("MANAGE", "VM", address.vm.id)] if address.vm and not here else []
        ctx.session.decide_dry_run([("MANAGE", "VM", vmid), ("USE", "NET", address.vnet)] + moved)
    if here:
        return {"AssociationId": address.association}
    if (target.state, target.lcm_state) not in _PLUGGABLE:  # checked before the address leaves its instance
        raise EC2Error("IncorrectInstanceState", f"The instance '{instance}' is not in a state from which "
                       "an address can be associated with it.")  # fmt: skip
    if address.vm and address.nic:
        ctx.session.vm_detachnic(address.vm.id, int(address.nic.nic_id or 0))
        _settled(ctx, address.vm.id)
    try:
        ctx.session.vm_attachnic(vmid, f'NIC=[NETWORK_ID="{address.vnet}"]')
    except EC2Error as e:  # another request plugged it in since it was read: oned leases it once
        if e.code != "InsufficientInstanceCapacity":
            raise
        raise _already(address) from None
    _settled(ctx, vmid)
    nic = next((n for n in ctx.session.vm(vmid).nics if n.network_id == str(address.vnet)), None)
    if nic is None:  # another request of the user unplugged it since
        raise EC2Error("InvalidAssociationID.NotFound", f"The address {address.ip} was disassociated meanwhile.")
    return {"AssociationId": association_id(vmid, int(nic.nic_id or 0))}


# the states oned's attach_nic accepts (DispatchManager::attach_nic): RUNNING, and POWEROFF
_PLUGGABLE = {(VM_STATE.ACTIVE, LCM_STATE.RUNNING), (VM_STATE.POWEROFF, LCM_STATE.LCM_INIT)}


def _already(address: Address) -> EC2Error:
    allocation = ids.fmt("eipalloc", address.vnet)
    message = f"The address with allocation id [{allocation}] is already associated."
    return EC2Error("Resource.AlreadyAssociated", message)


@action("DisassociateAddress", reads=("AssociationId", "PublicIp"), changes=True)
def disassociate_address(ctx: Context, p: dict) -> dict:
    association, public_ip = p.get("AssociationId"), p.get("PublicIp")
    if not association and not public_ip:
        raise missing("AssociationId")
    wanted = parse_association(association) if association else None
    elastic_network(ctx)
    if wanted:
        address = next((a for a in addresses(ctx) if a.vm and (a.vm.id, int(a.nic.nic_id or 0)) == wanted), None)
        if address is None:
            raise EC2Error("InvalidAssociationID.NotFound", f"The association ID '{association}' does not exist")
    else:
        address = _find(ctx, None, public_ip)
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "VM", address.vm.id)] if address.vm else [])
    if address.vm and address.nic:
        ctx.session.vm_detachnic(address.vm.id, int(address.nic.nic_id or 0))
        _settled(ctx, address.vm.id)
    return {}


@action("ReleaseAddress", reads=("AllocationId", "PublicIp"), ignored=("NetworkBorderGroup",), changes=True)
def release_address(ctx: Context, p: dict) -> dict:
    """Delete the reservation (oned gives the address back to the elastic-IP network); refused while
    it is associated, as EC2 refuses it."""
    allocation, public_ip = p.get("AllocationId"), p.get("PublicIp")
    if allocation:
        ids.parse(allocation, "eipalloc")
    elastic_network(ctx)
    address = _find(ctx, allocation, public_ip)
    if address.vm:
        raise EC2Error("InvalidIPAddress.InUse", f"Address {address.ip} is in use.")
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "NET", address.vnet)])
    if not address.made:
        waits.until(lambda: all(a.made for a in reservations(ctx) if a.vnet == address.vnet), SETTLE_TIMEOUT)
    ctx.session.vn_delete(address.vnet, ids.not_found("eipalloc", ids.fmt("eipalloc", address.vnet)))
    # oned gives the address back to the elastic-IP network once its driver has deleted the reservation
    # (LOCK_DELETE, then gone): an AllocateAddress right after the answer finds it free
    waits.until(lambda: all(el.findtext("ID") != str(address.vnet) for el in ctx.session.own_vnets()), SETTLE_TIMEOUT)
    return {}

"""one.vn.* and one.vnpool.info: virtual networks, address ranges and leases."""

from __future__ import annotations

import ipaddress
import re

from one import template as tpl

from .. import records
from ..cloud import Call
from ..errors import ACTION, INTERNAL, OneError
from ..registry import method
from . import common

READY, LOCK_CREATE, LOCK_DELETE = 1, 2, 3  # VirtualNetwork::VirtualNetworkState
STEP = 0.03  # the vnet driver's create takes about this long with dummy drivers
_NO_ADDRESS = "Address is not part of the address range or in use."


def _parse_ar(vector, ar_id: int) -> dict:
    attrs = dict(vector)
    kind = attrs.get("TYPE", "").upper()
    if kind not in ("IP4", "IP6", "IP4_6", "ETHER"):
        raise OneError(INTERNAL, "Unknown or missing address range TYPE.")
    try:
        size = int(attrs.get("SIZE", ""))
        if size <= 0:
            raise ValueError
    except ValueError:
        raise OneError(INTERNAL, "Wrong SIZE for address range") from None
    ip_int = 0
    if kind in ("IP4", "IP4_6"):
        try:
            ip_int = int(ipaddress.IPv4Address(attrs.get("IP", "")))
        except ValueError:
            raise OneError(INTERNAL, "Wrong IP address format for address range") from None
    mac_int = 0x020000000000 | ip_int
    if "MAC" in attrs:
        try:
            mac_int = int(attrs["MAC"].replace(":", ""), 16)
        except ValueError:
            raise OneError(INTERNAL, "Wrong MAC address format for address range") from None
    template = [(k, v) for k, v in vector if k != "AR_ID"]
    ar = {"AR_ID": ar_id, "TYPE": kind, "SIZE": size, "IP_INT": ip_int, "MAC_INT": mac_int, "LEASES": {}}
    if "MAC" not in attrs:
        template.append(("MAC", records.mac_at(ar, 0)))
    ar["TEMPLATE"] = template
    return ar


@method("one.vn.allocate", str, int, required=1)
def vn_allocate(call: Call, text: str, cluster_id: int = -1) -> int:
    call.authorize_create("vnet")
    t = common.parse_template(text)
    name = tpl.get(t, "NAME")
    name = name if isinstance(name, str) else ""
    call.check_name_free("vnet", name, call.uid, "NET")
    if not name:
        raise OneError(INTERNAL, "No NAME in template for Virtual Network.")
    common.check_name(name)
    ars = [_parse_ar(v, i) for i, v in enumerate(v for v in tpl.get_all(t, "AR") if not isinstance(v, str))]
    vn_mad = tpl.get(t, "VN_MAD", "")
    if not vn_mad:
        raise OneError(INTERNAL, "No VN_MAD in template")
    bridge = tpl.get(t, "BRIDGE") or f"onebr.{call.db.count('vnet')}"
    # until the driver has created it, the template still holds the ARs, as oned shows it
    template = tpl.merge(
        tpl.remove(t, "NAME"),
        [
            ("BRIDGE", bridge),
            ("BRIDGE_TYPE", "linux"),
            ("PHYDEV", tpl.get(t, "PHYDEV", "")),
            ("SECURITY_GROUPS", tpl.get(t, "SECURITY_GROUPS", "0")),
        ],
    )
    oid = call.db.next_id("vnet", 0)
    vnet = {
        "ID": oid,
        "NAME": name,
        "UID": call.uid,
        "GID": call.user["GID"],
        "PERMS": common.default_perms(call),
        "CLUSTERS": [0 if cluster_id < 0 else cluster_id],
        "BRIDGE": bridge,
        "BRIDGE_TYPE": "linux",
        "STATE": LOCK_CREATE,
        "VN_MAD": vn_mad,
        "TEMPLATE": template,
        "ARS": ars,
        "UPDATED_VMS": [],
    }
    call.db.put("vnet", vnet)
    call.cloud.owe(call.db, "vnet", oid, call.cloud.clock() + STEP)
    return oid


def settle(db, vnet: dict) -> None:
    """The vnet driver finished creating it (LOCK_CREATE -> READY) or deleting it: then it goes, and
    the parent's addresses a reservation held are free (VirtualNetworkPool::delete_success)."""
    if vnet["STATE"] == LOCK_DELETE:
        db.delete("vnet", vnet["ID"])
        parent = db.get("vnet", vnet.get("PARENT", -1)) if vnet.get("PARENT", -1) >= 0 else None
        if parent is not None:
            for ar in parent["ARS"]:
                ar["LEASES"] = {i: h for i, h in ar["LEASES"].items() if h != {"VNET": vnet["ID"]}}
            db.put("vnet", parent)
    elif vnet["STATE"] == LOCK_CREATE:
        vnet["STATE"] = READY
        t = tpl.remove(vnet["TEMPLATE"], "AR")
        vlans = [("OUTER_VLAN_ID", tpl.get(t, "OUTER_VLAN_ID", "")), ("VLAN_ID", tpl.get(t, "VLAN_ID", ""))]
        vnet["TEMPLATE"] = tpl.merge(t, vlans)
        db.put("vnet", vnet)


@method("one.vn.delete", int)
def vn_delete(call: Call, oid: int) -> int:
    v = call.get("vnet", oid)
    call.authorize("vnet", v, "MANAGE")
    if any(_in_use(holder) for ar in v["ARS"] for holder in ar["LEASES"].values()):
        raise OneError(ACTION, "Cannot delete virtual network. Can not remove a virtual network with leases in use")
    if v["STATE"] in (LOCK_CREATE, LOCK_DELETE):  # VirtualNetworkDelete::drop: its driver is at work
        state = "LOCK_CREATE" if v["STATE"] == LOCK_CREATE else "LOCK_DELETE"
        raise OneError(ACTION, f"Cannot delete virtual network. Can not remove a Virtual Network, wrong state {state}")
    v["STATE"] = LOCK_DELETE  # the driver deletes it (settle)
    call.db.put("vnet", v)
    call.cloud.owe(call.db, "vnet", oid, call.cloud.clock() + STEP)
    return oid


def _in_use(holder) -> bool:
    """A lease held by a VM or by a reservation (a hold, -1, does not keep the network)."""
    return isinstance(holder, dict) or int(holder) >= 0


@method("one.vn.info", int, bool, required=1)
def vn_info(call: Call, oid: int, decrypt: bool = False) -> str:
    return common.info(call, "vnet", oid)


@method("one.vnpool.info", int, int, int)
def vnpool_info(call: Call, flag: int, start: int, end: int) -> str:
    def render(v):
        uname, gname = common.names(call, v)
        return records.vnet(v, uname, gname, pool=True)

    return "<VNET_POOL>" + common.owned_pool(call, "vnet", flag, start, end, render) + "</VNET_POOL>"


@method("one.vn.update", int, str, int, required=2)
def vn_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    return common.update(call, "vnet", oid, text, mode)


@method("one.vn.chown", int, int, int)
def vn_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "vnet", oid, uid, gid)


@method("one.vn.chmod", int, int, int, int, int, int, int, int, int, int)
def vn_chmod(call: Call, oid: int, *bits: int) -> int:
    return common.chmod(call, "vnet", oid, list(bits))


@method("one.vn.rename", int, str)
def vn_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "vnet", oid, name)


@method("one.vn.add_ar", int, str)
def vn_add_ar(call: Call, oid: int, text: str) -> int:
    v = call.get("vnet", oid)
    call.authorize("vnet", v, "ADMIN")
    t = common.parse_template(text)
    vectors = [x for x in tpl.get_all(t, "AR") if not isinstance(x, str)]
    if not vectors:
        raise OneError(INTERNAL, "Unknown or missing address range TYPE.")
    next_id = max((ar["AR_ID"] for ar in v["ARS"]), default=-1) + 1
    v["ARS"].append(_parse_ar(vectors[0], next_id))
    call.db.put("vnet", v)
    return oid


def _lease_ip(text: str) -> str:
    t = common.parse_template(text)
    lease = tpl.get(t, "LEASES")
    ip = tpl.vget(lease, "IP") if isinstance(lease, list) else None
    if not ip:
        raise OneError(INTERNAL, _NO_ADDRESS)
    return ip


def _find(v: dict, ip: str):
    try:
        want = int(ipaddress.IPv4Address(ip))
    except ValueError:
        return None, -1
    for ar in v["ARS"]:
        if ar["TYPE"] in ("IP4", "IP4_6") and 0 <= want - ar["IP_INT"] < ar["SIZE"]:
            return ar, want - ar["IP_INT"]
    return None, -1


@method("one.vn.hold", int, str)
def vn_hold(call: Call, oid: int, text: str) -> int:
    v = call.get("vnet", oid)
    call.authorize("vnet", v, "MANAGE")
    ar, index = _find(v, _lease_ip(text))
    if ar is None or str(index) in ar["LEASES"]:
        raise OneError(INTERNAL, _NO_ADDRESS)
    ar["LEASES"][str(index)] = -1
    call.db.put("vnet", v)
    return oid


@method("one.vn.release", int, str)
def vn_release(call: Call, oid: int, text: str) -> int:
    v = call.get("vnet", oid)
    call.authorize("vnet", v, "MANAGE")
    ar, index = _find(v, _lease_ip(text))
    if ar is None or ar["LEASES"].get(str(index)) != -1:
        raise OneError(INTERNAL, _NO_ADDRESS)
    del ar["LEASES"][str(index)]
    call.db.put("vnet", v)
    return oid


# ---------------------------------------------------------------- reservations


def _int(t: tpl.Template, name: str) -> int | None:
    """Template::get(name, int&): the value's leading integer; None when it has none (or is a vector)."""
    value = tpl.get(t, name)
    m = re.match(r"\s*[+-]?[0-9]+", value) if isinstance(value, str) else None
    return int(m.group()) if m else None


def _reservation_size(t: tpl.Template) -> int:
    size = _int(t, "SIZE")
    if size is None or size <= 0:
        raise OneError(ACTION, "Reservation SIZE must be a greater than 0")
    return size


def _target(call: Call, t: tpl.Template, oid: int) -> dict | None:
    """The existing reservation NETWORK_ID names (oned's checks, in its order), or None for a new one."""
    rid = _int(t, "NETWORK_ID")
    if rid is None:
        return None
    if rid < 0:
        raise OneError(ACTION, "NETWORK_ID must be equal or greater than 0")
    if rid == oid:
        raise OneError(ACTION, "Cannot add a reservation from the same network")
    rvn = call.get("vnet", rid)
    if rvn.get("PARENT", -1) == -1:
        raise OneError(ACTION, "Cannot add reservations to a non-reservation VNET")
    if rvn["PARENT"] != oid:
        raise OneError(ACTION, f"New reservations for virtual network {rid} have to be from network {rvn['PARENT']}")
    return rvn


def _free_block(ar: dict, size: int, first: int | None) -> int | None:
    """The first index of *size* free addresses in a row (at *first* if given), as AddressRange::get_addr."""
    starts = [first] if first is not None else range(ar["SIZE"] - size + 1)
    for start in starts:
        if 0 <= start <= ar["SIZE"] - size and all(str(i) not in ar["LEASES"] for i in range(start, start + size)):
            return start
    return None


def _find_block(parent: dict, size: int, ar_id: int | None, ip: str) -> tuple[dict, int]:
    """VirtualNetwork::reserve_addr*: the range and first index of *size* free addresses of *parent*."""
    if ar_id is None:
        found = ((ar, _free_block(ar, size, None)) for ar in parent["ARS"])
        ar, start = next(((ar, s) for ar, s in found if s is not None), (None, None))
        if ar is None:
            raise OneError(ACTION, "Not enough free addresses in an address range")
    else:
        ar = next((a for a in parent["ARS"] if a["AR_ID"] == ar_id), None)
        first = None
        if ar is not None and ip:
            found_ar, first = _find(parent, ip)
            first = first if found_ar is ar else -1
        start = _free_block(ar, size, first) if ar is not None else None
        if start is None:
            raise OneError(ACTION, f"Not enough free addresses in address range {ar_id}, or it does not exist")
    return ar, start


def _reserved_ar(ar: dict, start: int, size: int, ar_id: int) -> dict:
    """The reservation's own range: the parent's, from *start*, *size* long, naming the range it came from."""
    ip_int = ar["IP_INT"] + start if ar["TYPE"] in ("IP4", "IP4_6") else 0
    new = {"AR_ID": ar_id, "TYPE": ar["TYPE"], "SIZE": size, "IP_INT": ip_int, "MAC_INT": ar["MAC_INT"] + start}
    new["LEASES"] = {}
    drop = ("AR_ID", "IP", "MAC", "SIZE", "PARENT_NETWORK_AR_ID", "IPAM_MAD")
    template = [(k, v) for k, v in ar["TEMPLATE"] if k not in drop] + [("MAC", records.mac_at(ar, start))]
    if ar["TYPE"] in ("IP4", "IP4_6"):
        template.append(("IP", records.ip_at(ar, start)))
    new["TEMPLATE"] = template + [("SIZE", str(size)), ("PARENT_NETWORK_AR_ID", str(ar["AR_ID"]))]
    return new


@method("one.vn.reserve", int, str)
def vn_reserve(call: Call, oid: int, text: str) -> int:
    """VirtualNetworkReserve: a new network (or an existing reservation of *oid*) gets *SIZE* addresses
    of *oid*, which holds them for it; USE of the parent and MANAGE of an existing reservation."""
    t = common.parse_template(text, ACTION)
    size = _reservation_size(t)
    rvn = _target(call, t, oid)
    name = tpl.get(t, "NAME")
    name = name if isinstance(name, str) else ""
    if not name and rvn is None:
        raise OneError(ACTION, "NAME for reservation has to be set")
    ar_id = _int(t, "AR_ID")
    if ar_id is not None and ar_id < 0:
        raise OneError(ACTION, "AR_ID must be equal or greater than 0")
    ip = tpl.get(t, "IP") if isinstance(tpl.get(t, "IP"), str) else ""
    if ar_id is None and (ip or tpl.get(t, "MAC") or tpl.get(t, "IP6")):
        raise OneError(ACTION, "AR_ID must be specified for IP/MAC based reservations")
    parent = call.get("vnet", oid)
    if parent.get("PARENT", -1) != -1:
        raise OneError(ACTION, "Cannot reserve addresses from a reserved VNET")
    call.authorize("vnet", parent, "USE")
    if rvn is not None:
        call.authorize("vnet", rvn, "MANAGE")
    else:
        common.check_name(name)
        call.check_name_free("vnet", name, call.uid, "NET")
    ar, start = _find_block(parent, size, ar_id, ip)  # before the network is made: oned drops it on failure
    if rvn is None:
        rid = call.db.next_id("vnet", 0)
        rvn = {
            **{k: parent[k] for k in ("CLUSTERS", "BRIDGE", "BRIDGE_TYPE", "VN_MAD")},
            "ID": rid,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "STATE": LOCK_CREATE,
            "PARENT": oid,
            "TEMPLATE": tpl.remove(parent["TEMPLATE"], "AR"),
            "ARS": [],
            "UPDATED_VMS": [],
        }
        call.cloud.owe(call.db, "vnet", rid, call.cloud.clock() + STEP)
    for i in range(start, start + size):
        ar["LEASES"][str(i)] = {"VNET": rvn["ID"]}
    next_id = max((a["AR_ID"] for a in rvn["ARS"]), default=-1) + 1
    rvn["ARS"].append(_reserved_ar(ar, start, size, next_id))
    call.db.put("vnet", parent)
    call.db.put("vnet", rvn)
    return rvn["ID"]


# ---------------------------------------------------------------- leases for VMs


def lease(v: dict, vmid: int, ip: str | None = None) -> tuple[dict, int]:
    """Take the next free address (or *ip*) of *v* for VM *vmid*; (ar, index). While its driver
    creates it (LOCK_CREATE), oned has no address range to lease from yet, but for a reservation's,
    which it has from the start."""
    if v["STATE"] == LOCK_CREATE and v.get("PARENT", -1) < 0:
        raise OneError(INTERNAL, f"Cannot get IP/MAC lease from virtual network {v['ID']}.")
    if ip:
        ar, index = _find(v, ip)
        if ar is None or str(index) in ar["LEASES"]:
            raise OneError(INTERNAL, f"Cannot get IP/MAC lease from virtual network {v['ID']}.")
        ar["LEASES"][str(index)] = vmid
        return ar, index
    for ar in v["ARS"]:
        for index in range(ar["SIZE"]):
            if str(index) not in ar["LEASES"]:
                ar["LEASES"][str(index)] = vmid
                return ar, index
    raise OneError(INTERNAL, f"Cannot get IP/MAC lease from virtual network {v['ID']}.")


def release_ip(v: dict, vmid: int, ip: str) -> None:
    """Give back the address *ip* of *v* that VM *vmid* leases (a NIC detached)."""
    ar, index = _find(v, ip)
    if ar is not None and ar["LEASES"].get(str(index)) == vmid:
        del ar["LEASES"][str(index)]
    if not any(h == vmid for a in v["ARS"] for h in a["LEASES"].values()):
        v["UPDATED_VMS"] = [x for x in v["UPDATED_VMS"] if x != vmid]


def release_vm(v: dict, vmid: int) -> None:
    for ar in v["ARS"]:
        ar["LEASES"] = {k: vm for k, vm in ar["LEASES"].items() if vm != vmid}
    v["UPDATED_VMS"] = [x for x in v["UPDATED_VMS"] if x != vmid]

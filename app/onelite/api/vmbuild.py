"""Building a VM from a template, as oned's VirtualMachinePool::allocate does.

Used by one.vm.allocate, one.template.instantiate and disk hotplug: DISKs take their image's
attributes, NICs a lease from their vnet, CONTEXT the NICs' addresses, and the scheduling
requirements are set.
"""

from __future__ import annotations

import re
import uuid

from one import template as tpl

from .. import records, snapshots
from ..cloud import Call
from ..errors import INTERNAL, OneError, not_authorized
from . import common, images, vnets
from .vmstate import HOLD, LCM_INIT, PENDING, save_vm

# Attributes oned keeps in the VM TEMPLATE; everything else a user gives lands in USER_TEMPLATE.
SYSTEM_ATTRS = {
    "CPU",
    "VCPU",
    "MEMORY",
    "DISK",
    "NIC",
    "NIC_ALIAS",
    "NIC_DEFAULT",
    "CONTEXT",
    "GRAPHICS",
    "OS",
    "INPUT",
    "FEATURES",
    "RAW",
    "CPU_MODEL",
    "PCI",
    "NUMA_NODE",
    "TOPOLOGY",
    "VMGROUP",
    "TEMPLATE_ID",
    "VMID",
    "MEMORY_MAX",
    "VCPU_MAX",
    "MEMORY_RESIZE_MODE",
    "HYPERVISOR",
    "SPICE_OPTIONS",
    "VIDEO",
    "IOTHREADS",
    "SECURITY_GROUP_RULE",
    "AUTOMATIC_REQUIREMENTS",
    "AUTOMATIC_DS_REQUIREMENTS",
    "AUTOMATIC_NIC_REQUIREMENTS",
    "TM_MAD_SYSTEM",
    "EMULATOR",
    "SCHED_ACTION",
    "SNAPSHOT",
    "BACKUP_CONFIG",
}
CLUSTER_REQ = '("CLUSTERS/ID" @> 0)'
AUTO_REQ = "(CLUSTER_ID = 0) & !(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)"
ETH_CONTEXT = (
    "DNS",
    "EXTERNAL",
    "GATEWAY",
    "IP",
    "IP6",
    "IP6_GATEWAY",
    "IP6_METHOD",
    "IP6_METRIC",
    "IP6_PREFIX_LENGTH",
    "IP6_ULA",
    "MAC",
    "MASK",
    "METHOD",
    "METRIC",
    "MTU",
    "NETWORK",
    "SEARCH_DOMAIN",
    "VLAN_ID",
    "VROUTER_IP",
    "VROUTER_IP6",
    "VROUTER_MANAGEMENT",
)


def automatic_requirements(vm: dict) -> None:
    """oned recomputes the scheduling requirements when a VM goes (back) to the scheduler (release,
    resume from STOPPED/UNDEPLOYED); once it has been deployed, its system datastore's TM_MAD joins them."""
    tm_mad = tpl.get(vm["TEMPLATE"], "TM_MAD_SYSTEM")
    ds_req = CLUSTER_REQ + (f' & (TM_MAD = "{tm_mad}")' if tm_mad else "")
    vm["TEMPLATE"] = tpl.replace(vm["TEMPLATE"], "AUTOMATIC_DS_REQUIREMENTS", ds_req)


def _referenced(call: Call, kind: str, d: dict, id_key: str, name_key: str, owner_key: str) -> dict | None:
    """The object a DISK or NIC names: by id, or by name (the caller's own, or OWNER_UNAME's)."""
    if d.get(id_key) is not None:
        return call.db.get(kind, int(d[id_key])) if d[id_key].isdigit() else None
    owner_name = d.get(owner_key)
    for obj in call.db.by_name(kind, d[name_key]):
        if (owner_name is None and obj["UID"] == call.uid) or call.uname(obj["UID"]) == owner_name:
            return obj
    return None


def image_disk(call: Call, image: dict, disk_id: int, prefix: str) -> dict:
    """The attributes oned gives a DISK that uses *image* (in a VM, or an extended template)."""
    ds = call.db.get("datastore", image["DATASTORE_ID"]) or {"NAME": image["DATASTORE"], "TM_MAD": "dummy"}
    persistent = bool(image["PERSISTENT"])
    out = {
        "ALLOW_ORPHANS": "NO", "CLONE": "NO" if persistent else "YES", "CLONE_TARGET": "SYSTEM",
        "CLUSTER_ID": "0", "DATASTORE": ds["NAME"], "DATASTORE_ID": str(image["DATASTORE_ID"]),
        "DEV_PREFIX": prefix, "DISK_ID": str(disk_id),
        "DISK_SNAPSHOT_TOTAL_SIZE": str(snapshots.total_size(image.get("SNAPSHOTS", {}))), "DISK_TYPE": "FILE",
        "DRIVER": image["FORMAT"], "FORMAT": image["FORMAT"], "IMAGE": image["NAME"],
        "IMAGE_ID": str(image["ID"]), "IMAGE_STATE": str(image["STATE"]), "LN_TARGET": "NONE",
        "ORIGINAL_SIZE": str(image["SIZE"]), "READONLY": "NO", "SAVE": "YES" if persistent else "NO",
        "SIZE": str(image["SIZE"]), "SOURCE": image["SOURCE"], "TM_MAD": ds.get("TM_MAD", "dummy"), "TYPE": "FILE",
    }  # fmt: skip
    if persistent:
        out["PERSISTENT"] = "YES"
    return out


def new_disk(
    call: Call, vec: tpl.Vector, disk_id: int, vmid: int, used_targets: set[str], owner: Call, attach: bool = False
) -> tpl.Vector:
    d = dict(vec)
    ref = d.get("IMAGE_ID")
    if ref is not None or "IMAGE" in d:
        image = _referenced(call, "image", d, "IMAGE_ID", "IMAGE", "IMAGE_UNAME")
        if image is None:
            what = f"with ID: {ref}" if ref is not None else d["IMAGE"]
            raise OneError(INTERNAL, f"DISK {disk_id}: Image {what} does not exist")
    else:  # a volatile disk
        out = dict(d)
        out.update({"DISK_ID": str(disk_id), "DATASTORE_ID": "0", "TYPE": d.get("TYPE", "fs")})
        return sorted(out.items())
    images.check_use(owner, image)
    if attach and d.get("TARGET") in used_targets:
        raise OneError(INTERNAL, f"Target {d['TARGET']} is already in use.")
    images.use(call, image, vmid, attach)
    prefix = d.get("DEV_PREFIX") or tpl.get(image["TEMPLATE"], "DEV_PREFIX") or "sd"
    target = d.get("TARGET") or next(
        f"{prefix}{c}" for c in "abcdefghijklmnopqrstuvwxyz" if f"{prefix}{c}" not in used_targets
    )
    used_targets.add(target)
    out = image_disk(call, image, disk_id, prefix)
    out["TARGET"] = target
    for k, v in d.items():
        if k not in out:
            out[k] = v
    return sorted(out.items())


def carried_snapshots(call: Call, disks: list[tpl.Vector]) -> dict:
    """The snapshots an image brings to each disk made from it (ImagePool::acquire_disk), by DISK_ID."""
    out = {}
    for disk in disks:
        ref = tpl.vget(disk, "IMAGE_ID")
        image = call.db.get("image", int(ref)) if ref is not None else None
        if image and image.get("SNAPSHOTS", {}).get("SNAPSHOT"):
            out[tpl.vget(disk, "DISK_ID")] = image["SNAPSHOTS"]
    return out


def build_nic(call: Call, vec: tpl.Vector, nic_id: int, vmid: int, owner: Call) -> tpl.Vector:
    d = dict(vec)
    ref = d.get("NETWORK_ID")
    if ref is None and "NETWORK" not in d:
        raise OneError(INTERNAL, f"NIC {nic_id}: No NETWORK or NETWORK_ID in NIC")
    vnet = _referenced(call, "vnet", d, "NETWORK_ID", "NETWORK", "NETWORK_UNAME")
    if vnet is None:  # oned's words (VirtualNetworkPool::get_nic_by_id, get_nic_by_name)
        if ref is not None:
            raise OneError(INTERNAL, f"Virtual network with ID: {ref} does not exist")
        owners = call.db.by_name("user", d["NETWORK_UNAME"]) if "NETWORK_UNAME" in d else []
        uid = owners[0]["ID"] if owners else call.uid
        raise OneError(
            INTERNAL,
            f"User {uid} does not own a network with name: {d['NETWORK']} . "
            "Set NETWORK_UNAME or NETWORK_UID of owner in NIC.",
        )
    if not owner.can("vnet", vnet, "USE"):
        raise not_authorized(owner.uid, "USE", "NET", vnet["ID"])
    nic_groups = sg_ids(d.get("SECURITY_GROUPS", "")) | sg_ids(tpl.get(vnet["TEMPLATE"], "SECURITY_GROUPS") or "0")
    for sid in sorted(nic_groups):  # oned's VirtualMachineNic::authorize: USE of each group it has
        sg = call.db.get("secgroup", sid)
        if sg is not None and not owner.can("secgroup", sg, "USE"):
            raise not_authorized(owner.uid, "USE", "SECGROUP", sid)
    ar, index = vnets.lease(vnet, vmid, d.get("IP"))
    vnet["UPDATED_VMS"] = sorted(set(vnet["UPDATED_VMS"]) | {vmid})
    call.db.put("vnet", vnet)
    out = {
        "AR_ID": str(ar["AR_ID"]),
        "BRIDGE": vnet["BRIDGE"],
        "BRIDGE_TYPE": vnet["BRIDGE_TYPE"],
        "CLUSTER_ID": "0",
        "MAC": records.mac_at(ar, index),
        "NAME": f"NIC{nic_id}",
        "NETWORK": vnet["NAME"],
        "NETWORK_ID": str(vnet["ID"]),
        "NIC_ID": str(nic_id),
        # the NIC's own groups and the network's (oned's VirtualNetwork::nic_attribute)
        "SECURITY_GROUPS": ",".join(map(str, sorted(nic_groups))),
        "TARGET": f"one-{vmid}-{nic_id}",
        "VN_MAD": vnet["VN_MAD"],
    }
    if ar["TYPE"] in ("IP4", "IP4_6"):
        out["IP"] = records.ip_at(ar, index)
    if vnet.get("PARENT", -1) >= 0:  # a lease of a reservation names the network it came from
        out["PARENT_NETWORK_ID"] = str(vnet["PARENT"])
    if vnet["UID"] != call.uid and "NETWORK_UNAME" in d:
        out["NETWORK_UNAME"] = d["NETWORK_UNAME"]
    for k, v in d.items():
        if k not in out and k != "IP":
            out[k] = v
    return sorted(out.items())


def sg_ids(text: str) -> set[int]:
    """oned's split_unique of a SECURITY_GROUPS list: each item's leading integer, others skipped."""
    found = (re.match(r"\s*[+-]?[0-9]+", item, re.ASCII) for item in text.split(","))
    return {int(m.group()) for m in found if m and -(2**31) <= int(m.group()) < 2**31}


def secgroup_rules(sg: dict) -> list[tuple[str, tpl.Vector]]:
    """A VM's copies of a security group's rules, as they are in the group (RULE_TYPE's case too)."""
    extra = {"SECURITY_GROUP_ID": str(sg["ID"]), "SECURITY_GROUP_NAME": sg["NAME"]}
    rules = [v for v in tpl.get_all(sg["TEMPLATE"], "RULE") if isinstance(v, list)]
    return [("SECURITY_GROUP_RULE", sorted({**dict(v), **extra}.items())) for v in rules]


def _secgroup_rules(call: Call, ids: set[int], vmid: int) -> list[tuple[str, tpl.Vector]]:
    """The rules of every group the NICs name, by group id; each group lists the VM (UPDATED_VMS)."""
    rules = []
    for sid in sorted(ids):
        sg = call.db.get("secgroup", sid)
        if sg is None:
            continue
        rules += secgroup_rules(sg)
        sg["UPDATED_VMS"] = sorted(set(sg["UPDATED_VMS"]) | {vmid})
        call.db.put("secgroup", sg)
    return rules


def network_context(vec: tpl.Vector, disk_id: int, nics: list[tpl.Vector]) -> tpl.Vector:
    """A VM's CONTEXT as oned fills it (also on one.vm.updateconf): the NICs' ETHn_ values when
    NETWORK is YES, its DISK_ID and TARGET."""
    d = dict(vec)
    if d.get("TOKEN", "").upper() == "YES":
        raise OneError(INTERNAL, "TOKEN set, but onegate endpoint was not defined in oned.conf.")
    out = {k: v for k, v in d.items()}
    if d.get("NETWORK", "").upper() == "YES":
        for nic in nics:
            n = dict(nic)
            for key in ETH_CONTEXT:
                out[f"ETH{n['NIC_ID']}_{key}"] = {"IP": n.get("IP", ""), "MAC": n.get("MAC", "")}.get(key, "")
    out["DISK_ID"] = str(disk_id)
    out["TARGET"] = "hda"
    return sorted(out.items())


def build_vm(call: Call, t: tpl.Template, name: str | None, hold: bool, extra_user: tpl.Template = ()) -> int:
    """Create a VM from a parsed template as oned's VirtualMachinePool::allocate does."""
    call.authorize_create("vm")
    vmid = call.db.next_id("vm", 0)
    vm_name = name or tpl.get(t, "NAME") or f"one-{vmid}"
    if not isinstance(vm_name, str):
        raise OneError(INTERNAL, "NAME attribute must be a single value")
    common.check_name(vm_name)
    system: tpl.Template = []
    user: tpl.Template = list(extra_user)
    for k, v in t:
        if k == "NAME":
            continue
        (system if k in SYSTEM_ATTRS else user).append((k, v))
    out: tpl.Template = []
    used_targets: set[str] = set()
    disks = [v for k, v in system if k == "DISK" and isinstance(v, list)]
    for i, vec in enumerate(disks):
        out.append(("DISK", new_disk(call, vec, i, vmid, used_targets, call)))
    nics: list[tpl.Vector] = []
    groups: set[int] = set()
    for i, vec in enumerate(v for k, v in system if k == "NIC" and isinstance(v, list)):
        nic = build_nic(call, vec, i, vmid, call)
        nics.append(nic)
        out.append(("NIC", nic))
        groups |= sg_ids(tpl.vget(nic, "SECURITY_GROUPS"))
    for k, v in system:
        if k in ("DISK", "NIC", "CONTEXT", "OS", "VMID", "SECURITY_GROUP_RULE"):
            continue
        out.append((k, v))
    context = tpl.get(system, "CONTEXT")
    if isinstance(context, list):
        out.append(("CONTEXT", network_context(context, len(disks), nics)))
    os_vec = [(k, v) for k, v in (tpl.get(system, "OS") or []) if k != "UUID"] + [("UUID", str(uuid.uuid4()))]
    out.append(("OS", os_vec))
    out += _secgroup_rules(call, groups, vmid)
    out += [
        ("AUTOMATIC_DS_REQUIREMENTS", CLUSTER_REQ),
        ("AUTOMATIC_NIC_REQUIREMENTS", CLUSTER_REQ),
        ("AUTOMATIC_REQUIREMENTS", AUTO_REQ),
        ("VMID", str(vmid)),
    ]
    for key in ("CPU", "MEMORY"):
        if tpl.get(out, key) is None:
            raise OneError(INTERNAL, f"No {key} in template." if key == "MEMORY" else "No CPU in template.")
    if hold:
        out.append(("SUBMIT_ON_HOLD", "YES"))
    state = HOLD if hold else PENDING
    vm = {
        "ID": vmid,
        "NAME": vm_name,
        "UID": call.uid,
        "GID": call.user["GID"],
        "PERMS": common.default_perms(call),
        "STATE": state,
        "LCM_STATE": LCM_INIT,
        "STIME": call.cloud.now(),
        "ETIME": 0,
        "DEPLOY_ID": "",
        "TEMPLATE": out,
        "USER_TEMPLATE": user,
        "HISTORY": [],
        "_NEXT": [],
        "_RESUME": "",
        "SNAPSHOTS": carried_snapshots(call, [v for k, v in out if k == "DISK"]),
    }
    save_vm(call, vm)
    return vmid

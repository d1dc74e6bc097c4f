"""one.vm.*, one.vmpool.*, one.template.* (instantiate builds VMs): what oned's VM manager does.

State changes that oned's drivers make after an action returns are queued on the VM as
``_NEXT`` steps ``[STATE, LCM_STATE, due time]``; the hypervisor loop applies them.
"""

from __future__ import annotations

import uuid

from one import template as tpl

from .. import records
from ..cloud import Call
from ..errors import ACTION, ALLOCATE, INTERNAL, XML_RPC_API, OneError, not_authorized
from ..registry import method
from . import common, images, vnets

# VM STATE and LCM_STATE codes
INIT, PENDING, HOLD, ACTIVE, STOPPED, SUSPENDED, DONE, POWEROFF, UNDEPLOYED = 0, 1, 2, 3, 4, 5, 6, 8, 9
LCM_INIT, PROLOG, BOOT, RUNNING, SAVE_STOP, SAVE_SUSPEND, EPILOG, SHUTDOWN = 0, 1, 2, 3, 5, 6, 11, 12
HOTPLUG, SHUTDOWN_POWEROFF, BOOT_POWEROFF, HOTPLUG_SAVEAS, SHUTDOWN_UNDEPLOY = 17, 18, 20, 26, 29
PROLOG_RESUME, PROLOG_UNDEPLOY, BOOT_UNDEPLOY = 9, 31, 32

STATE_NAMES = {
    0: "INIT",
    1: "PENDING",
    2: "HOLD",
    3: "ACTIVE",
    4: "STOPPED",
    5: "SUSPENDED",
    6: "DONE",
    8: "POWEROFF",
    9: "UNDEPLOYED",
    10: "CLONING",
    11: "CLONING_FAILURE",
}
LCM_NAMES = {
    0: "LCM_INIT",
    1: "PROLOG",
    2: "BOOT",
    3: "RUNNING",
    5: "SAVE_STOP",
    6: "SAVE_SUSPEND",
    9: "PROLOG_RESUME",
    11: "EPILOG",
    12: "SHUTDOWN",
    17: "HOTPLUG",
    18: "SHUTDOWN_POWEROFF",
    20: "BOOT_POWEROFF",
    26: "HOTPLUG_SAVEAS",
    29: "SHUTDOWN_UNDEPLOY",
    31: "PROLOG_UNDEPLOY",
    32: "BOOT_UNDEPLOY",
}

# history ACTION codes (VMActions)
ACTIONS = {
    "undeploy": 5,
    "undeploy-hard": 6,
    "hold": 7,
    "release": 8,
    "stop": 9,
    "suspend": 10,
    "resume": 11,
    "delete": 13,
    "reboot": 15,
    "reboot-hard": 16,
    "poweroff": 19,
    "poweroff-hard": 20,
    "disk-attach": 21,
    "disk-detach": 22,
    "terminate": 27,
    "terminate-hard": 28,
    "disk-saveas": 45,
}

VNC_BASE_PORT = 5900
STEP = 0.03  # seconds between two driver-made state changes, as observed on oned with dummy drivers

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


def lcm_name(vm: dict) -> str:
    if vm["STATE"] == ACTIVE:
        return LCM_NAMES.get(vm["LCM_STATE"], str(vm["LCM_STATE"]))
    return STATE_NAMES.get(vm["STATE"], str(vm["STATE"]))


# ---------------------------------------------------------------- persistence


def qsum(vm: dict) -> dict | None:
    """The VM's share of its owner's quotas; None once DONE."""
    if vm["STATE"] == DONE:
        return None
    t = vm["TEMPLATE"]
    net: dict[str, int] = {}
    img: dict[str, int] = {}
    disk = 0
    for vec in tpl.get_all(t, "DISK"):
        if isinstance(vec, list):
            d = dict(vec)
            if "IMAGE_ID" in d and d.get("CLONE") == "YES":
                img[d["IMAGE_ID"]] = img.get(d["IMAGE_ID"], 0) + 1
                disk += int(d.get("SIZE", 0) or 0)
    for vec in tpl.get_all(t, "NIC"):
        if isinstance(vec, list) and tpl.vget(vec, "NETWORK_ID") is not None:
            k = tpl.vget(vec, "NETWORK_ID")
            net[k] = net.get(k, 0) + 1

    def num(key, conv):
        try:
            return conv(tpl.get(t, key) or 0)
        except ValueError:
            return conv(0)

    running = vm["STATE"] not in (POWEROFF, STOPPED, UNDEPLOYED, SUSPENDED)
    return {
        "cpu": num("CPU", float),
        "mem": num("MEMORY", int),
        "disk": disk,
        "run": running,
        "net": net,
        "img": img,
    }


def save_vm(call: Call, vm: dict) -> None:
    uname, gname = call.uname(vm["UID"]), call.gname(vm["GID"])
    call.db.put("vm", vm, pool_xml=records.vm_short(vm, uname, gname), qsum=qsum(vm))
    if vm.get("_NEXT"):
        call.cloud.owe(call.db, "vm", vm["ID"], vm["_NEXT"][0][2])
    else:
        call.db.pending_clear("vm", vm["ID"])


def automatic_requirements(vm: dict) -> None:
    """oned recomputes the scheduling requirements when a VM goes (back) to the scheduler (release,
    resume from STOPPED/UNDEPLOYED); once it has been deployed, its system datastore's TM_MAD joins them."""
    tm_mad = tpl.get(vm["TEMPLATE"], "TM_MAD_SYSTEM")
    ds_req = CLUSTER_REQ + (f' & (TM_MAD = "{tm_mad}")' if tm_mad else "")
    vm["TEMPLATE"] = tpl.replace(vm["TEMPLATE"], "AUTOMATIC_DS_REQUIREMENTS", ds_req)


def set_state(vm: dict, state: int, lcm: int) -> None:
    vm["STATE"], vm["LCM_STATE"] = state, lcm


def queue(call: Call, vm: dict, *steps: tuple[int, int]) -> None:
    now = call.cloud.clock()
    vm["_NEXT"] = [[s, lcm, now + STEP * (i + 1)] for i, (s, lcm) in enumerate(steps)]


# ---------------------------------------------------------------- building VMs


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
        "DEV_PREFIX": prefix, "DISK_ID": str(disk_id), "DISK_SNAPSHOT_TOTAL_SIZE": "0", "DISK_TYPE": "FILE",
        "DRIVER": image["FORMAT"], "FORMAT": image["FORMAT"], "IMAGE": image["NAME"],
        "IMAGE_ID": str(image["ID"]), "IMAGE_STATE": str(image["STATE"]), "LN_TARGET": "NONE",
        "ORIGINAL_SIZE": str(image["SIZE"]), "READONLY": "NO", "SAVE": "YES" if persistent else "NO",
        "SIZE": str(image["SIZE"]), "SOURCE": image["SOURCE"], "TM_MAD": ds.get("TM_MAD", "dummy"), "TYPE": "FILE",
    }  # fmt: skip
    if persistent:
        out["PERSISTENT"] = "YES"
    return out


def _disk(call: Call, vec: tpl.Vector, disk_id: int, vmid: int, used_targets: set[str], owner: Call) -> tpl.Vector:
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
    images.use(call, image, vmid)
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


def _nic(call: Call, vec: tpl.Vector, nic_id: int, vmid: int, owner: Call) -> tpl.Vector:
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
        "SECURITY_GROUPS": tpl.get(vnet["TEMPLATE"], "SECURITY_GROUPS") or "0",
        "TARGET": f"one-{vmid}-{nic_id}",
        "VN_MAD": vnet["VN_MAD"],
    }
    if ar["TYPE"] in ("IP4", "IP4_6"):
        out["IP"] = records.ip_at(ar, index)
    if vnet["UID"] != call.uid and "NETWORK_UNAME" in d:
        out["NETWORK_UNAME"] = d["NETWORK_UNAME"]
    for k, v in d.items():
        if k not in out and k != "IP":
            out[k] = v
    return sorted(out.items())


def _secgroup_rules(call: Call, ids_text: str, vmid: int) -> list[tuple[str, tpl.Vector]]:
    rules = []
    for sid in ids_text.split(","):
        sid = sid.strip()
        if not sid.isdigit():
            continue
        sg = call.db.get("secgroup", int(sid))
        if sg is None:
            continue
        for vec in tpl.get_all(sg["TEMPLATE"], "RULE"):
            if isinstance(vec, list):
                rule = dict(vec)
                rule.update({"SECURITY_GROUP_ID": sid, "SECURITY_GROUP_NAME": sg["NAME"]})
                rules.append(("SECURITY_GROUP_RULE", sorted(rule.items())))
        sg["UPDATED_VMS"] = sorted(set(sg["UPDATED_VMS"]) | {vmid})
        call.db.put("secgroup", sg)
    return rules


def _context(vec: tpl.Vector, disk_id: int, nics: list[tpl.Vector]) -> tpl.Vector:
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
        out.append(("DISK", _disk(call, vec, i, vmid, used_targets, call)))
    nics: list[tpl.Vector] = []
    sg_ids: list[str] = []
    for i, vec in enumerate(v for k, v in system if k == "NIC" and isinstance(v, list)):
        nic = _nic(call, vec, i, vmid, call)
        nics.append(nic)
        out.append(("NIC", nic))
        sg_ids += [s for s in tpl.vget(nic, "SECURITY_GROUPS", "").split(",") if s and s not in sg_ids]
    for k, v in system:
        if k in ("DISK", "NIC", "CONTEXT", "OS", "VMID", "SECURITY_GROUP_RULE"):
            continue
        out.append((k, v))
    context = tpl.get(system, "CONTEXT")
    if isinstance(context, list):
        out.append(("CONTEXT", _context(context, len(disks), nics)))
    os_vec = [(k, v) for k, v in (tpl.get(system, "OS") or []) if k != "UUID"] + [("UUID", str(uuid.uuid4()))]
    out.append(("OS", os_vec))
    out += _secgroup_rules(call, ",".join(sg_ids), vmid)
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
    }
    save_vm(call, vm)
    return vmid


@method("one.vm.allocate", str, bool, required=1)
def vm_allocate(call: Call, text: str, hold: bool = False) -> int:
    t = common.parse_template(text)
    return build_vm(call, t, None, hold)


# ---------------------------------------------------------------- templates

TEMPLATE_ONLY = (
    "DESCRIPTION",
    "LABELS",
    "LOGO",
    "SCHED_REQUIREMENTS",
    "SCHED_RANK",
    "SCHED_DS_REQUIREMENTS",
    "SCHED_DS_RANK",
    "USER_INPUTS",
    "INPUTS_ORDER",
    "VROUTER",
)


@method("one.template.allocate", str)
def template_allocate(call: Call, text: str) -> int:
    t = common.parse_template(text)
    call.authorize_create("template")
    name = tpl.get(t, "NAME")
    common.check_name(name)
    call.check_name_free("template", name, call.uid, "TEMPLATE")
    oid = call.db.next_id("template", 0)
    call.db.put(
        "template",
        {
            "ID": oid,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "REGTIME": call.cloud.now(),
            "TEMPLATE": tpl.remove(t, "NAME"),
        },
    )
    return oid


def _extended(call: Call, t: tpl.Template) -> tpl.Template:
    """template.info(extended): each image DISK shows the image's attributes, as a VM disk would."""
    out = []
    for i, (k, v) in enumerate(t):
        if k == "DISK" and isinstance(v, list) and tpl.vget(v, "IMAGE_ID") is not None:
            image = call.db.get("image", int(tpl.vget(v, "IMAGE_ID")))
            if image:
                disk_id = sum(1 for kk, _ in t[:i] if kk == "DISK")
                prefix = tpl.get(image["TEMPLATE"], "DEV_PREFIX") or "sd"
                d = image_disk(call, image, disk_id, prefix)
                d.update(dict(v))
                v = sorted(d.items())
        out.append((k, v))
    return out


@method("one.template.info", int, bool, bool, required=1)
def template_info(call: Call, oid: int, extended: bool = False, decrypt: bool = False) -> str:
    t = call.get("template", oid)
    call.authorize("template", t, "USE")
    uname, gname = common.names(call, t)
    return records.vmtemplate(t, uname, gname, _extended(call, t["TEMPLATE"]) if extended else None)


@method("one.templatepool.info", int, int, int)
def templatepool_info(call: Call, flag: int, start: int, end: int) -> str:
    return (
        "<VMTEMPLATE_POOL>"
        + common.owned_pool(call, "template", flag, start, end, lambda t: common.render(call, "template", t))
        + "</VMTEMPLATE_POOL>"
    )


@method("one.template.update", int, str, int, required=2)
def template_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    return common.update(call, "template", oid, text, mode)


@method("one.template.chown", int, int, int)
def template_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "template", oid, uid, gid)


@method("one.template.chmod", int, int, int, int, int, int, int, int, int, int, bool, required=10)
def template_chmod(call: Call, oid: int, *bits) -> int:
    return common.chmod(call, "template", oid, list(bits[:9]))


@method("one.template.rename", int, str)
def template_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "template", oid, name)


@method("one.template.delete", int, bool, required=1)
def template_delete(call: Call, oid: int, recursive: bool = False) -> int:
    t = call.get("template", oid)
    call.authorize("template", t, "MANAGE")
    call.db.delete("template", oid)
    return oid


@method("one.template.clone", int, str, bool, required=2)
def template_clone(call: Call, oid: int, name: str, recursive: bool = False) -> int:
    t = call.get("template", oid)
    call.authorize("template", t, "USE")
    call.authorize_create("template")
    prefix = "Error allocating a new virtual machine template. "
    common.check_name(name, ALLOCATE, prefix)
    for other in call.db.by_name("template", name):
        if other["UID"] == call.uid:
            raise OneError(ALLOCATE, f"{prefix}NAME is already taken by TEMPLATE {other['ID']}.")
    new = call.db.next_id("template", 0)
    call.db.put(
        "template",
        {
            "ID": new,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "REGTIME": call.cloud.now(),
            "TEMPLATE": tpl.remove(t["TEMPLATE"], "NAME"),
        },
    )
    return new


@method("one.template.instantiate", int, str, bool, str, bool, required=2)
def template_instantiate(
    call: Call, oid: int, name: str, hold: bool = False, extra: str = "", persistent: bool = False
) -> int:
    t = call.get("template", oid)
    call.authorize("template", t, "USE")
    extra_t = common.parse_template(extra) if extra else []
    merged = tpl.merge(t["TEMPLATE"], extra_t)
    user_part = [(k, v) for k, v in merged if k in TEMPLATE_ONLY]
    body = [(k, v) for k, v in merged if k not in TEMPLATE_ONLY] + [("TEMPLATE_ID", str(oid))]
    try:
        return build_vm(call, body, name or None, hold, user_part)
    except OneError as e:
        if e.code == INTERNAL:
            raise OneError(ALLOCATE, f"Error allocating a new virtual machine template. {e.message}") from None
        raise


# ---------------------------------------------------------------- info and pools


@method("one.vm.info", int, bool, required=1)
def vm_info(call: Call, oid: int, decrypt: bool = False) -> str:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "USE")
    uname, gname = common.names(call, vm)
    return records.vm(vm, uname, gname)


def _pool_rows(call: Call, flag: int, start: int, end: int, state: int, query: str):
    if query:
        raise OneError(INTERNAL, "JSON query search is not supported by the SQL backend")
    if state < -2 or state > 11:
        raise OneError(XML_RPC_API, "Incorrect filter_flag, state")
    keep = common.pool_filter(call, "vm", flag, start, end)
    clauses, args = [], []
    if state == -1:
        clauses.append("state != ?")
        args.append(DONE)
    elif state != -2:
        clauses.append("state = ?")
        args.append(state)
    if end >= -1:  # an id range: let SQLite skip what is outside it
        if start >= 0:
            clauses.append("oid >= ?")
            args.append(start)
        if end >= 0:
            clauses.append("oid <= ?")
            args.append(end)
    if flag == -3 or flag >= 0:
        clauses.append("uid = ?")
        args.append(call.uid if flag == -3 else flag)
    rows = [r for r in call.db.rows("vm", " AND ".join(clauses), tuple(args)) if keep(r[0], r[1], r[2], r[3])]
    return common.page(rows, start, end)


@method("one.vmpool.info", int, int, int, int, str, required=4)
def vmpool_info(call: Call, flag: int, start: int, end: int, state: int, query: str = "") -> str:
    rows = _pool_rows(call, flag, start, end, state, query)
    return "<VM_POOL>" + "".join(r[5] for r in rows) + "</VM_POOL>"


@method("one.vmpool.infoextended", int, int, int, int, str, required=4)
def vmpool_infoextended(call: Call, flag: int, start: int, end: int, state: int, query: str = "") -> str:
    rows = _pool_rows(call, flag, start, end, state, query)
    out = []
    for r in rows:
        vm = call.db.get("vm", r[0])
        uname, gname = common.names(call, vm)
        out.append(records.vm(vm, uname, gname, last_history=True))
    return "<VM_POOL>" + "".join(out) + "</VM_POOL>"


# ---------------------------------------------------------------- simple edits


@method("one.vm.update", int, str, int, required=2)
def vm_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    return common.update(call, "vm", oid, text, mode, field="USER_TEMPLATE")


@method("one.vm.chown", int, int, int)
def vm_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "vm", oid, uid, gid)


@method("one.vm.chmod", int, int, int, int, int, int, int, int, int, int)
def vm_chmod(call: Call, oid: int, *bits: int) -> int:
    return common.chmod(call, "vm", oid, list(bits))


@method("one.vm.rename", int, str)
def vm_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "vm", oid, name, unique_per_owner=False)


# ---------------------------------------------------------------- lifecycle


def open_history(call: Call, vm: dict, host: dict) -> None:
    now = call.cloud.now()
    vm["HISTORY"].append(
        {
            "OID": vm["ID"],
            "SEQ": len(vm["HISTORY"]),
            "HOSTNAME": host["NAME"],
            "HID": host["ID"],
            "CID": host["CLUSTER_ID"],
            "STIME": now,
            "ETIME": 0,
            "VM_MAD": host["VM_MAD"],
            "TM_MAD": "dummy",
            "DS_ID": 0,
            "PSTIME": now,
            "PETIME": 0,
            "RSTIME": 0,
            "RETIME": 0,
            "ESTIME": 0,
            "EETIME": 0,
            "ACTION": 0,
            "UID": -1,
            "GID": -1,
            "REQUEST_ID": -1,
        }
    )
    if tpl.get(vm["TEMPLATE"], "TM_MAD_SYSTEM") is None:
        vm["TEMPLATE"] = vm["TEMPLATE"] + [("TM_MAD_SYSTEM", "dummy")]


def vnc_port(vm: dict) -> None:
    """A deployed VM with GRAPHICS gets its VNC port (oned's VNC_PORTS START + VM id)."""
    vm["TEMPLATE"] = [
        (k, [*v, ("PORT", str(VNC_BASE_PORT + vm["ID"]))] if k == "GRAPHICS" and tpl.vget(v, "PORT") is None else v)
        for k, v in vm["TEMPLATE"]
    ]


def _requester(call: Call, action: str | None) -> list:
    """What a history record says of the action that ended it: [ACTION, UID, GID, REQUEST_ID]."""
    if action is None:
        return [0, -1, -1, -1]
    return [ACTIONS.get(action, 0), call.uid, call.user["GID"], call.cloud.request_id]


def _mark_action(call: Call, h: dict, action: str | None) -> None:
    h["ACTION"], h["UID"], h["GID"], h["REQUEST_ID"] = _requester(call, action)


def name_action(call: Call, vm: dict, action: str) -> None:
    """The open history record names the action asked for; its times are set as the drivers act."""
    if vm["HISTORY"] and not vm["HISTORY"][-1]["ETIME"]:
        _mark_action(call, vm["HISTORY"][-1], action)


def _leave_host(call: Call, vm: dict, keep_port: bool = False) -> None:
    """The VM no longer occupies its host (DONE, STOPPED, UNDEPLOYED); a STOPPED one keeps its VNC port."""
    if not vm["HISTORY"]:
        return
    h = vm["HISTORY"][-1]
    now = call.cloud.now()
    if not keep_port:
        vm["TEMPLATE"] = [
            (k, [(a, b) for a, b in v if a != "PORT"] if k == "GRAPHICS" else v) for k, v in vm["TEMPLATE"]
        ]
    if not h["ETIME"]:
        h["ETIME"] = now
        if h["ESTIME"] and not h["EETIME"]:
            h["EETIME"] = now
    host = call.db.get("host", h["HID"])
    if host and vm["ID"] in host["VMS"]:
        host["VMS"] = [x for x in host["VMS"] if x != vm["ID"]]
        host["CPU_USAGE"] = max(0, host["CPU_USAGE"] - int(float(tpl.get(vm["TEMPLATE"], "CPU") or 0) * 100))
        host["MEM_USAGE"] = max(0, host["MEM_USAGE"] - int(tpl.get(vm["TEMPLATE"], "MEMORY") or 0) * 1024)
        call.db.put("host", host)


def finish_done(call: Call, vm: dict) -> None:
    """Everything DONE releases: leases, images, host, security groups."""
    _leave_host(call, vm)
    vm["ETIME"] = call.cloud.now()
    for vec in tpl.get_all(vm["TEMPLATE"], "NIC"):
        if isinstance(vec, list) and tpl.vget(vec, "NETWORK_ID") is not None:
            vnet = call.db.get("vnet", int(tpl.vget(vec, "NETWORK_ID")))
            if vnet:
                vnets.release_vm(vnet, vm["ID"])
                call.db.put("vnet", vnet)
    for vec in tpl.get_all(vm["TEMPLATE"], "DISK"):
        if isinstance(vec, list) and tpl.vget(vec, "IMAGE_ID") is not None:
            images.unuse(call, int(tpl.vget(vec, "IMAGE_ID")), vm["ID"])
    for sg in call.db.all("secgroup"):
        if vm["ID"] in sg["UPDATED_VMS"]:
            sg["UPDATED_VMS"] = [x for x in sg["UPDATED_VMS"] if x != vm["ID"]]
            call.db.put("secgroup", sg)


def apply_step(call: Call, vm: dict, state: int, lcm: int) -> None:
    """One driver-made transition, with the bookkeeping oned does on entering that state.

    History times as oned keeps them: PSTIME/PETIME around a prolog (none when the VM comes back
    to the same host), RSTIME when it runs, RETIME when the running ends (the shutdown or save is
    done, not when it is asked for), ESTIME/EETIME around an epilog, ETIME when the record ends."""
    now = call.cloud.now()
    if state == ACTIVE and vm["STATE"] == SUSPENDED:
        _reopen(call, vm)  # restored on the same host: a new history record
    h = vm["HISTORY"][-1] if vm["HISTORY"] else None
    open_record = h is not None and not h["ETIME"]
    if state == ACTIVE and lcm == BOOT and h:
        h["PETIME"] = h["PETIME"] or now
        h["RSTIME"] = h["RSTIME"] or now
    if state == ACTIVE and lcm == RUNNING and h and vm["LCM_STATE"] not in (HOTPLUG, HOTPLUG_SAVEAS):
        # the driver's deploy or restore named the domain; a hotplug keeps it (a renamed VM too)
        vm["DEPLOY_ID"] = f"{h['HOSTNAME']}:{vm['NAME']}:dummy"
    if state == ACTIVE and lcm == RUNNING and h and not h["RSTIME"]:
        h["PETIME"] = h["PETIME"] or now
        h["RSTIME"] = now
    if open_record and vm["STATE"] == ACTIVE and (state != ACTIVE or lcm == EPILOG):
        h["RETIME"] = h["RETIME"] or now  # the running is over
    if open_record and (lcm == EPILOG or (vm["STATE"] == ACTIVE and state in (STOPPED, UNDEPLOYED))):
        h["ESTIME"] = h["ESTIME"] or now  # the epilog (of a stop or undeploy too) begins
    if state == ACTIVE and vm["STATE"] == POWEROFF and vm["HISTORY"]:
        _mark_action(call, vm["HISTORY"][-1], None)  # the boot has begun: the record no longer names it
    if vm["STATE"] == ACTIVE and vm["LCM_STATE"] in (HOTPLUG, HOTPLUG_SAVEAS):
        finish_hotplug(call, vm)
    set_state(vm, state, lcm)
    if state == DONE:
        ended_by = vm.pop("_ENDED_BY", None)
        if ended_by and h:
            h["ACTION"], h["UID"], h["GID"], h["REQUEST_ID"] = ended_by
        finish_done(call, vm)
    elif state in (STOPPED, UNDEPLOYED):
        _leave_host(call, vm, keep_port=state == STOPPED)


# actions that take a RUNNING VM through one driver step to a stable state
_LEAVING_RUNNING = {
    "poweroff": (SHUTDOWN_POWEROFF, POWEROFF),
    "stop": (SAVE_STOP, STOPPED),
    "suspend": (SAVE_SUSPEND, SUSPENDED),
}


def _fail_state(action: str, vm: dict):
    return OneError(
        ACTION, f'Error performing action "{action}": This action is not available for state {lcm_name(vm)}'
    )


@method("one.vm.action", str, int)
def vm_action(call: Call, action: str, oid: int) -> int:
    if action not in ACTIONS or action in ("delete", "disk-attach", "disk-detach", "disk-saveas"):
        raise OneError(ACTION, f'Action "{action}" is not supported')
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    state, lcm = vm["STATE"], vm["LCM_STATE"]
    running = state == ACTIVE and lcm == RUNNING
    base = action.removesuffix("-hard")
    if base == "terminate":
        if state == DONE:
            return oid
        # oned shuts down only a RUNNING VM (a hard terminate also overrides a SHUTDOWN under way);
        # while the drivers deploy or move it, it refuses (DispatchManager::terminate)
        if running or (state == ACTIVE and lcm == SHUTDOWN and action == "terminate-hard"):
            name_action(call, vm, action)
            set_state(vm, ACTIVE, SHUTDOWN)
            queue(call, vm, (ACTIVE, EPILOG), (DONE, LCM_INIT))
        elif state in (POWEROFF, SUSPENDED):
            name_action(call, vm, action)
            if vm["HISTORY"]:
                vm["HISTORY"][-1]["ESTIME"] = call.cloud.now()
            set_state(vm, ACTIVE, EPILOG)
            queue(call, vm, (DONE, LCM_INIT))
        elif state in (PENDING, HOLD, STOPPED, UNDEPLOYED, INIT):
            name_action(call, vm, action)
            set_state(vm, DONE, LCM_INIT)
            vm["_NEXT"] = []
            finish_done(call, vm)
        elif state == ACTIVE:
            raise OneError(
                ACTION, f'Error performing action "{action}": Could not terminate VM {oid}, wrong state {lcm_name(vm)}.'
            )
        else:
            raise _fail_state(action, vm)
    elif action == "hold":
        if state != PENDING:
            raise _fail_state(action, vm)
        set_state(vm, HOLD, LCM_INIT)
    elif action == "release":
        if state != HOLD:
            raise _fail_state(action, vm)
        automatic_requirements(vm)
        set_state(vm, PENDING, LCM_INIT)
    elif base in _LEAVING_RUNNING:
        if not running:
            raise _fail_state(action, vm)
        transient, final = _LEAVING_RUNNING[base]
        name_action(call, vm, action)
        set_state(vm, ACTIVE, transient)
        queue(call, vm, (final, LCM_INIT))
    elif base == "reboot":
        if not running:
            raise _fail_state(action, vm)
    elif base == "undeploy":
        if not (running or state == POWEROFF):
            raise _fail_state(action, vm)
        name_action(call, vm, action)
        set_state(vm, ACTIVE, SHUTDOWN_UNDEPLOY)
        queue(call, vm, (UNDEPLOYED, LCM_INIT))
    elif action == "resume":
        if state == POWEROFF:
            # oned opens the new history record (naming the resume) at once, and boots later
            _reopen(call, vm)
            name_action(call, vm, action)
            queue(call, vm, (ACTIVE, BOOT_POWEROFF), (ACTIVE, RUNNING))
        elif state == SUSPENDED:
            queue(call, vm, (ACTIVE, RUNNING))
        elif state in (STOPPED, UNDEPLOYED):
            vm["_RESUME"] = "stopped" if state == STOPPED else "undeployed"
            automatic_requirements(vm)
            set_state(vm, PENDING, LCM_INIT)
        else:
            raise _fail_state(action, vm)
    save_vm(call, vm)
    return oid


def _reopen(call: Call, vm: dict) -> None:
    """oned ends the current history record and opens a new one on the same host
    (resume from POWEROFF or SUSPENDED, disk hotplug)."""
    if vm["HISTORY"]:
        last = vm["HISTORY"][-1]
        now = call.cloud.now()
        last["ETIME"] = last["ETIME"] or now
        last["RETIME"] = last["RETIME"] or now
        host = call.db.get("host", last["HID"])
        if host:
            open_history(call, vm, host)
            vm["HISTORY"][-1].update(PSTIME=0, RSTIME=now)  # no prolog: it runs at once


@method("one.vm.recover", int, int)
def vm_recover(call: Call, oid: int, op: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "ADMIN")
    if op not in (0, 1, 2, 3, 4, 5):
        raise OneError(ACTION, "Wrong recovery operation code")
    if op in (3, 5):
        # oned records the delete in the history once the VM is DONE, not when it is asked
        vm["_ENDED_BY"] = _requester(call, "delete")
        queue(call, vm, (DONE, LCM_INIT))
    elif op == 1 and vm.get("_NEXT"):
        for s, lcm, _due in vm["_NEXT"]:
            apply_step(call, vm, s, lcm)
        vm["_NEXT"] = []
    save_vm(call, vm)
    return oid


# ---------------------------------------------------------------- disks


def _hotplug(call: Call, vm: dict, lcm: int, action: str | None = None) -> None:
    if not (vm["STATE"] == ACTIVE and vm["LCM_STATE"] == RUNNING) and vm["STATE"] != POWEROFF:
        raise OneError(ACTION, f"Could not perform the action, VM in wrong state {lcm_name(vm)}")
    if action:  # attach and detach end the history record and start a new one
        name_action(call, vm, action)
        _reopen(call, vm)
    if vm["STATE"] == ACTIVE:
        set_state(vm, ACTIVE, lcm)
        queue(call, vm, (ACTIVE, RUNNING))


def _mark_disk(vm: dict, disk_id: str, marks: tpl.Vector) -> None:
    """Add *marks* to the DISK being hot-plugged (oned flags it until the driver is done)."""
    vm["TEMPLATE"] = [
        (k, tpl.merge(v, marks) if k == "DISK" and tpl.vget(v, "DISK_ID") == disk_id else v) for k, v in vm["TEMPLATE"]
    ]


_HOTPLUG_MARKS = ("ATTACH", "HOTPLUG_SAVE_AS_ACTIVE", "HOTPLUG_SAVE_AS_SNAPSHOT_ID")


def finish_hotplug(call: Call, vm: dict) -> None:
    """The driver finished a disk operation: detached disks go, the operation's flags are dropped."""
    keep = []
    for k, v in vm["TEMPLATE"]:
        if k == "DISK" and tpl.vget(v, "DISK_ID") == str(vm.get("_DETACH")):
            if tpl.vget(v, "IMAGE_ID") is not None:
                images.unuse(call, int(tpl.vget(v, "IMAGE_ID")), vm["ID"])
            continue
        if k == "DISK":
            v = [(a, b) for a, b in v if a not in _HOTPLUG_MARKS]
        keep.append((k, v))
    vm["TEMPLATE"] = keep
    vm.pop("_DETACH", None)


def _disk_by_id(vm: dict, disk_id: int):
    return next(
        (
            v
            for k, v in vm["TEMPLATE"]
            if k == "DISK" and isinstance(v, list) and tpl.vget(v, "DISK_ID") == str(disk_id)
        ),
        None,
    )


@method("one.vm.attach", int, str)
def vm_attach(call: Call, oid: int, text: str) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    t = common.parse_template(text, ACTION)
    vec = tpl.get(t, "DISK")
    if not isinstance(vec, list):
        raise OneError(ACTION, "No DISK in template")
    ref = tpl.vget(vec, "IMAGE_ID")
    if ref is not None and (not ref.isdigit() or call.db.get("image", int(ref)) is None):
        raise OneError(ACTION, f"Image with ID: {ref} does not exist")
    existing = [v for k, v in vm["TEMPLATE"] if k == "DISK" and isinstance(v, list)]
    ids = [int(tpl.vget(d, "DISK_ID", "0")) for d in existing]
    context = tpl.get(vm["TEMPLATE"], "CONTEXT")
    if isinstance(context, list):
        ids.append(int(tpl.vget(context, "DISK_ID", "0")))
    targets = {tpl.vget(d, "TARGET") for d in existing}
    owner = _owner_call(call, vm)
    _hotplug(call, vm, HOTPLUG, "disk-attach")
    disk = _disk(call, vec, max(ids, default=-1) + 1, oid, targets, owner)
    marks = [("ATTACH", "YES"), ("TM_MAD_SYSTEM", tpl.get(vm["TEMPLATE"], "TM_MAD_SYSTEM") or "dummy")]
    vm["TEMPLATE"] = vm["TEMPLATE"] + [("DISK", tpl.merge(disk, marks))]
    save_vm(call, vm)
    return oid


@method("one.vm.detach", int, int)
def vm_detach(call: Call, oid: int, disk_id: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    if _disk_by_id(vm, disk_id) is None:
        raise OneError(ACTION, f"Could not detach disk with DISK_ID {disk_id}, it does not exist.")
    _hotplug(call, vm, HOTPLUG, "disk-detach")
    _mark_disk(vm, str(disk_id), [("ATTACH", "YES")])
    vm["_DETACH"] = disk_id
    if vm["STATE"] != ACTIVE:  # powered off: no driver step to wait for
        finish_hotplug(call, vm)
    save_vm(call, vm)
    return oid


@method("one.vm.disksaveas", int, int, str, str, int, required=3)
def vm_disksaveas(call: Call, oid: int, disk_id: int, name: str, itype: str = "", snap: int = -1) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    disk = _disk_by_id(vm, disk_id)
    if disk is None or tpl.vget(disk, "IMAGE_ID") is None:
        raise OneError(INTERNAL, "Cannot use DISK. DISK does not exist.")
    src = call.get("image", int(tpl.vget(disk, "IMAGE_ID")))
    call.authorize_create("image")
    ds = call.get("datastore", src["DATASTORE_ID"])
    images.check_new_name(call, name)
    type_code = images.TYPES.get((itype or "").upper(), src["TYPE"])
    origin = [("SAVED_DISK_ID", str(disk_id)), ("SAVED_IMAGE_ID", str(src["ID"])), ("SAVED_VM_ID", str(oid))]
    saved = images.new_image(
        call,
        name,
        ds,
        type_code,
        src["SIZE"],
        src["SOURCE"],
        "",
        src["FORMAT"],
        [(k, v) for k, v in src["TEMPLATE"] if k != "EC2_AMI"] + origin,
        0,
        images.LOCKED,
    )
    call.cloud.owe(call.db, "image", saved["ID"], call.cloud.clock() + 2 * STEP)
    _hotplug(call, vm, HOTPLUG_SAVEAS)
    _mark_disk(vm, str(disk_id), [("HOTPLUG_SAVE_AS_ACTIVE", "YES"), ("HOTPLUG_SAVE_AS_SNAPSHOT_ID", str(snap))])
    save_vm(call, vm)
    return saved["ID"]


def _owner_call(call: Call, vm: dict) -> Call:
    """Authorization as the VM's owner (the scheduler and hotplug act for the owner)."""
    if vm["UID"] == call.uid:
        return call
    owner = call.db.get("user", vm["UID"])
    return Call(call.cloud, call.method, owner, set(owner["GROUPS"])) if owner else call

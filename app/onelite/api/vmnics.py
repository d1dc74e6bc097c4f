"""one.vm.attachnic and one.vm.detachnic (oned's DispatchManager::attach_nic / detach_nic).

A RUNNING VM goes to HOTPLUG_NIC until the driver is done, as set3 recorded ((3,25) -> (3,3)): the
NIC carries ATTACH=YES meanwhile, and the CONTEXT's ETHn_ values follow when it is done. A POWEROFF
VM changes at once (the dummy driver has no cold attach). Either call ends the open history record,
naming the action, and opens a new one (DispatchManager::close_cp_history), as a disk hot-plug does.
"""

from __future__ import annotations

from one import template as tpl
from one.codes import LCM_STATE

from ..cloud import Call
from ..errors import ACTION, AUTHORIZATION, NO_EXISTS, OneError
from ..registry import method
from . import common, vnets
from .lifecycle import close_cp_history, queue, set_state
from .vmbuild import build_nic, network_context, secgroup_rules, sg_ids
from .vmstate import ACTIVE, LCM_INIT, POWEROFF, RUNNING, lcm_name, save_vm

HOTPLUG_NIC = LCM_STATE.HOTPLUG_NIC


def _running(vm: dict) -> bool:
    return vm["STATE"] == ACTIVE and vm["LCM_STATE"] == RUNNING


def _check_state(vm: dict, what: str) -> None:
    if not (_running(vm) or (vm["STATE"] == POWEROFF and vm["LCM_STATE"] == LCM_INIT)):
        raise OneError(ACTION, f"Could not {what} VM {vm['ID']}, wrong state {lcm_name(vm)}.")


def _nics(vm: dict) -> list[tpl.Vector]:
    return [v for k, v in vm["TEMPLATE"] if k == "NIC" and isinstance(v, list)]


def _begin(call: Call, vm: dict, action: str) -> None:
    close_cp_history(call, vm, action)
    if _running(vm):
        set_state(vm, ACTIVE, HOTPLUG_NIC)
        queue(call, vm, (ACTIVE, RUNNING))


@method("one.vm.attachnic", int, str)
def vm_attachnic(call: Call, oid: int, text: str) -> int:
    vm = call.get("vm", oid)
    t = common.parse_template(text)
    call.authorize("vm", vm, "MANAGE")
    vec = tpl.get(t, "NIC")
    if not isinstance(vec, list):
        raise OneError(ACTION, "Wrong format or missing NIC/NIC_ALIAS/PCI attribute")
    _check_state(vm, "add a new NIC to")
    nic_id = max((int(tpl.vget(n, "NIC_ID", "0")) for n in _nics(vm)), default=-1) + 1
    try:
        nic = build_nic(call, vec, nic_id, oid, call)
    except OneError as e:  # the request's checks fail as oned's; the attach itself answers ACTION
        if e.code in (AUTHORIZATION, NO_EXISTS):
            raise
        raise OneError(ACTION, e.message) from None
    groups = {g for n in _nics(vm) for g in sg_ids(tpl.vget(n, "SECURITY_GROUPS", ""))}
    rules = []
    for sid in sorted(sg_ids(tpl.vget(nic, "SECURITY_GROUPS", "")) - groups):
        sg = call.db.get("secgroup", sid)
        if sg is not None:
            rules += secgroup_rules(sg)
            sg["UPDATED_VMS"] = sorted(set(sg["UPDATED_VMS"]) | {oid})
            call.db.put("secgroup", sg)
    _begin(call, vm, "nic-attach")
    vm["TEMPLATE"] = vm["TEMPLATE"] + [("NIC", tpl.merge(nic, [("ATTACH", "YES")]))] + rules
    if vm["LCM_STATE"] != HOTPLUG_NIC:  # powered off: no driver step to wait for
        finish_nic_hotplug(call, vm)
    save_vm(call, vm)
    return oid


@method("one.vm.detachnic", int, int)
def vm_detachnic(call: Call, oid: int, nic_id: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    _check_state(vm, "detach NIC from")
    if not any(tpl.vget(n, "NIC_ID") == str(nic_id) for n in _nics(vm)):
        raise OneError(ACTION, f"Could not detach NIC with NIC_ID {nic_id}, it does not exist.")
    _begin(call, vm, "nic-detach")
    vm["TEMPLATE"] = [
        (k, tpl.merge(v, [("ATTACH", "YES")]) if k == "NIC" and tpl.vget(v, "NIC_ID") == str(nic_id) else v)
        for k, v in vm["TEMPLATE"]
    ]
    vm["_DETACH_NIC"] = nic_id
    if vm["LCM_STATE"] != HOTPLUG_NIC:
        finish_nic_hotplug(call, vm)
    save_vm(call, vm)
    return oid


def finish_nic_hotplug(call: Call, vm: dict) -> None:
    """The driver is done: a detached NIC goes with its lease (and the rules of groups no other NIC
    has), the ATTACH flag is dropped, and the CONTEXT's ETHn_ values are written again."""
    gone = vm.pop("_DETACH_NIC", None)
    kept: tpl.Template = []
    for k, v in vm["TEMPLATE"]:
        if k == "NIC" and gone is not None and tpl.vget(v, "NIC_ID") == str(gone):
            vnet = call.db.get("vnet", int(tpl.vget(v, "NETWORK_ID", "-1")))
            if vnet is not None:
                vnets.release_ip(vnet, vm["ID"], tpl.vget(v, "IP", ""))
                call.db.put("vnet", vnet)
            continue
        if k == "NIC":
            v = [(a, b) for a, b in v if a != "ATTACH"]
        kept.append((k, v))
    groups = {s for n in (v for k, v in kept if k == "NIC") for s in sg_ids(tpl.vget(n, "SECURITY_GROUPS", ""))}
    kept = [
        (k, v) for k, v in kept if k != "SECURITY_GROUP_RULE" or int(tpl.vget(v, "SECURITY_GROUP_ID", "-1")) in groups
    ]
    context = tpl.get(kept, "CONTEXT")
    if isinstance(context, list):
        plain = [(a, b) for a, b in context if not (a.startswith("ETH") and a.partition("_")[0][3:].isdigit())]
        disk_id = int(tpl.vget(context, "DISK_ID", "0"))
        fresh = network_context(plain, disk_id, [v for k, v in kept if k == "NIC"])
        kept = [(k, fresh if k == "CONTEXT" else v) for k, v in kept]
    vm["TEMPLATE"] = kept

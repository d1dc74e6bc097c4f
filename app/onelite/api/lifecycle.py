"""The VM lifecycle: what oned's LCM does on each state change.

A call that changes a VM's state (one.vm.action, hotplug, the scheduler's deploy) sets the first
state and queues the ones oned's drivers make afterwards on the VM as ``_NEXT`` steps
``[STATE, LCM_STATE, due time]``; the hypervisor loop applies each with :func:`apply_step`, which does
the bookkeeping of entering that state: history records and their times, the host's usage, leases,
images and security groups released once the VM is DONE.
"""

from __future__ import annotations

from one import template as tpl
from one.codes import LCM_STATE

from .. import snapshots
from ..cloud import Call
from . import images, vnets
from .vmstate import (
    ACTIONS,
    ACTIVE,
    BOOT,
    DISK_OPS,
    DONE,
    EPILOG,
    POWEROFF,
    RUNNING,
    STOPPED,
    SUSPENDED,
    UNDEPLOYED,
)

VNC_BASE_PORT = 5900
STEP = 0.03  # seconds between two driver-made state changes, as observed on oned with dummy drivers


def set_state(vm: dict, state: int, lcm: int) -> None:
    vm["STATE"], vm["LCM_STATE"] = state, lcm


def queue(call: Call, vm: dict, *steps: tuple[int, int]) -> None:
    now = call.cloud.clock()
    vm["_NEXT"] = [[s, lcm, now + STEP * (i + 1)] for i, (s, lcm) in enumerate(steps)]


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


def requester(call: Call, action: str | None) -> list:
    """What a history record says of the action that ended it: [ACTION, UID, GID, REQUEST_ID]."""
    if action is None:
        return [0, -1, -1, -1]
    return [ACTIONS.get(action, 0), call.uid, call.user["GID"], call.cloud.request_id]


def _mark_action(call: Call, h: dict, action: str | None) -> None:
    h["ACTION"], h["UID"], h["GID"], h["REQUEST_ID"] = requester(call, action)


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


_HOTPLUGS = DISK_OPS | {LCM_STATE.HOTPLUG_NIC}  # a hot-plug keeps the domain's name


def apply_step(call: Call, vm: dict, state: int, lcm: int) -> None:
    """One driver-made transition, with the bookkeeping oned does on entering that state.

    History times as oned keeps them: PSTIME/PETIME around a prolog (none when the VM comes back
    to the same host), RSTIME when it runs, RETIME when the running ends (the shutdown or save is
    done, not when it is asked for), ESTIME/EETIME around an epilog, ETIME when the record ends."""
    now = call.cloud.now()
    if state == ACTIVE and vm["STATE"] == SUSPENDED:
        reopen(call, vm)  # restored on the same host: a new history record
    h = vm["HISTORY"][-1] if vm["HISTORY"] else None
    open_record = h is not None and not h["ETIME"]
    if state == ACTIVE and lcm == BOOT and h:
        h["PETIME"] = h["PETIME"] or now
        h["RSTIME"] = h["RSTIME"] or now
    if state == ACTIVE and lcm == RUNNING and h and vm["LCM_STATE"] not in _HOTPLUGS:
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
    if vm["STATE"] == ACTIVE and vm["LCM_STATE"] in DISK_OPS:
        finish_hotplug(call, vm)
    if vm["STATE"] == ACTIVE and vm["LCM_STATE"] == LCM_STATE.HOTPLUG_NIC:
        from .vmnics import finish_nic_hotplug  # vmnics builds on this module

        finish_nic_hotplug(call, vm)
    set_state(vm, state, lcm)
    if state == DONE:
        ended_by = vm.pop("_ENDED_BY", None)
        if ended_by and h:
            h["ACTION"], h["UID"], h["GID"], h["REQUEST_ID"] = ended_by
        finish_done(call, vm)
    elif state in (STOPPED, UNDEPLOYED):
        _leave_host(call, vm, keep_port=state == STOPPED)


def reopen(call: Call, vm: dict) -> None:
    """oned ends the current history record and opens a new one on the same host
    (resume from POWEROFF or SUSPENDED)."""
    if vm["HISTORY"]:
        last = vm["HISTORY"][-1]
        now = call.cloud.now()
        last["ETIME"] = last["ETIME"] or now
        last["RETIME"] = last["RETIME"] or now
        host = call.db.get("host", last["HID"])
        if host:
            open_history(call, vm, host)
            vm["HISTORY"][-1].update(PSTIME=0, RSTIME=now)  # no prolog: it runs at once


_HOTPLUG_MARKS = (
    "ATTACH", "HOTPLUG_SAVE_AS_ACTIVE", "HOTPLUG_SAVE_AS_SNAPSHOT_ID", "DISK_SNAPSHOT_ACTIVE", "DISK_SNAPSHOT_ID",
)  # fmt: skip


def finish_hotplug(call: Call, vm: dict) -> None:
    """The driver finished a disk operation: a detached disk goes (its image keeps the snapshots),
    a disk snapshot operation takes effect, the operation's flags are dropped."""
    op = vm.pop("_SNAPOP", None)
    if op:
        _finish_snapshot_op(call, vm, *op)
    keep = []
    for k, v in vm["TEMPLATE"]:
        if k == "DISK" and tpl.vget(v, "DISK_ID") == str(vm.get("_DETACH")):
            if tpl.vget(v, "IMAGE_ID") is not None:
                images.unuse(call, int(tpl.vget(v, "IMAGE_ID")), vm["ID"])
            vm.get("SNAPSHOTS", {}).pop(str(vm["_DETACH"]), None)
            continue
        if k == "DISK":
            v = [(a, b) for a, b in v if a not in _HOTPLUG_MARKS]
        keep.append((k, v))
    vm["TEMPLATE"] = keep
    vm.pop("_DETACH", None)


def _finish_snapshot_op(call: Call, vm: dict, op: str, disk_id: int, sid: int) -> None:
    """A disk snapshot made, deleted or reverted to; a persistent image keeps the disk's list
    (ImageManager::set_image_snapshots: the image shows the VM's snapshots while it is USED_PERS)."""
    snaps = vm.get("SNAPSHOTS", {}).get(str(disk_id))
    if snaps is None:
        return
    snaps = snapshots.delete(snaps, sid) if op == "delete" else snapshots.activate(snaps, sid)
    if snaps["SNAPSHOT"]:
        vm["SNAPSHOTS"][str(disk_id)] = snaps
    else:
        del vm["SNAPSHOTS"][str(disk_id)]
    total = str(snapshots.total_size(snaps))
    disk = next(v for k, v in vm["TEMPLATE"] if k == "DISK" and tpl.vget(v, "DISK_ID") == str(disk_id))
    disk[:] = [(a, total if a == "DISK_SNAPSHOT_TOTAL_SIZE" else b) for a, b in disk]
    image_id = tpl.vget(disk, "IMAGE_ID")
    image = call.db.get("image", int(image_id)) if image_id is not None else None
    if image and image["STATE"] == images.USED_PERS:
        image["SNAPSHOTS"] = snaps if snaps["SNAPSHOT"] else {}
        call.db.put("image", image)


def close_cp_history(call: Call, vm: dict, action: str) -> None:
    """oned's DispatchManager::close_cp_history (a resize while POWEROFF, the disk operations): the
    open record ends naming *action*, and a copy on the same host goes on with the action the old one
    had, as oned's own (no requester); a VM that was not running keeps a running end time on the copy
    too."""
    if not vm["HISTORY"]:
        return
    last = vm["HISTORY"][-1]
    now = call.cloud.now()
    was_stopped = bool(last["RETIME"])
    current = last["ACTION"]
    last["RETIME"] = last["RETIME"] or now
    last["ETIME"] = now
    _mark_action(call, last, action)
    copy = {**last, "SEQ": last["SEQ"] + 1, "STIME": now, "ETIME": 0, "PSTIME": 0, "PETIME": 0, "RSTIME": now}
    copy.update(RETIME=now if was_stopped else 0, ESTIME=0, EETIME=0, ACTION=current, UID=-1, GID=-1, REQUEST_ID=-1)
    vm["HISTORY"].append(copy)

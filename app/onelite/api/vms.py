"""one.vm.*, one.vmpool.*: what oned's VM manager answers, and which action each state allows.

An action sets the VM's first state and queues the ones oned's drivers make afterwards; lifecycle.py
does the work of each state change, and the hypervisor loop makes the queued ones when they are due.
"""

from __future__ import annotations

import math
import os

from one import template as tpl
from one.codes import LCM_STATE, VM_STATE

from .. import records, snapshots
from ..cloud import Call
from ..errors import ACTION, INTERNAL, XML_RPC_API, OneError
from ..registry import method
from . import common, images
from .lifecycle import (
    STEP,
    apply_step,
    close_cp_history,
    finish_done,
    name_action,
    queue,
    reopen,
    requester,
    set_state,
    vnc_port,
)
from .vmbuild import automatic_requirements, build_vm, carried_snapshots, network_context, new_disk
from .vmstate import (
    ACTIONS,
    ACTIVE,
    BOOT_POWEROFF,
    DISK_SNAPSHOT,
    DISK_SNAPSHOT_DELETE,
    DISK_SNAPSHOT_DELETE_POWEROFF,
    DISK_SNAPSHOT_DELETE_SUSPENDED,
    DISK_SNAPSHOT_POWEROFF,
    DISK_SNAPSHOT_REVERT_POWEROFF,
    DISK_SNAPSHOT_SUSPENDED,
    DONE,
    EPILOG,
    HOLD,
    HOTPLUG,
    HOTPLUG_EPILOG_POWEROFF,
    HOTPLUG_PROLOG_POWEROFF,
    HOTPLUG_SAVEAS,
    HOTPLUG_SAVEAS_POWEROFF,
    HOTPLUG_SAVEAS_STOPPED,
    HOTPLUG_SAVEAS_SUSPENDED,
    HOTPLUG_SAVEAS_UNDEPLOYED,
    INIT,
    LCM_INIT,
    PENDING,
    POWEROFF,
    RUNNING,
    SAVE_STOP,
    SAVE_SUSPEND,
    SHUTDOWN,
    SHUTDOWN_POWEROFF,
    SHUTDOWN_UNDEPLOY,
    STOPPED,
    SUSPENDED,
    UNDEPLOYED,
    lcm_name,
    save_vm,
)


@method("one.vm.allocate", str, bool, required=1)
def vm_allocate(call: Call, text: str, hold: bool = False) -> int:
    t = common.parse_template(text)
    return build_vm(call, t, None, hold)


# ---------------------------------------------------------------- info and pools


@method("one.vm.info", int, bool, required=1)
def vm_info(call: Call, oid: int, decrypt: bool = False) -> str:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "USE")
    uname, gname = common.names(call, vm)
    return records.vm(vm, uname, gname)


def _pool_rows(call: Call, flag: int, start: int, end: int, state: int, query: str, full: bool = False):
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
    rows = [r for r in call.db.rows("vm", " AND ".join(clauses), tuple(args), full) if keep(r[0], r[1], r[2], r[3])]
    return common.page(rows, start, end)


@method("one.vmpool.info", int, int, int, int, str, required=4)
def vmpool_info(call: Call, flag: int, start: int, end: int, state: int, query: str = "") -> str:
    rows = _pool_rows(call, flag, start, end, state, query)
    return "<VM_POOL>" + "".join(r[5] for r in rows) + "</VM_POOL>"


@method("one.vmpool.infoextended", int, int, int, int, str, required=4)
def vmpool_infoextended(call: Call, flag: int, start: int, end: int, state: int, query: str = "") -> str:
    out = []
    for r in _pool_rows(call, flag, start, end, state, query, full=True):
        if r[5] is None:  # saved by an earlier onelite
            vm = call.db.get("vm", r[0])
            out.append(records.vm(vm, *common.names(call, vm), last_history=True))
        else:
            out.append(r[5])
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


# ---------------------------------------------------------------- actions

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
    if action not in ACTIONS or action == "delete" or action.startswith("disk-"):
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
            reopen(call, vm)
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


@method("one.vm.recover", int, int)
def vm_recover(call: Call, oid: int, op: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "ADMIN")
    if op not in (0, 1, 2, 3, 4, 5):
        raise OneError(ACTION, "Wrong recovery operation code")
    if op in (3, 5):
        # oned records the delete in the history once the VM is DONE, not when it is asked
        vm["_ENDED_BY"] = requester(call, "delete")
        queue(call, vm, (DONE, LCM_INIT))
    elif op == 1 and vm.get("_NEXT"):
        for s, lcm, _due in vm["_NEXT"]:
            apply_step(call, vm, s, lcm)
        vm["_NEXT"] = []
    save_vm(call, vm)
    return oid


# ---------------------------------------------------------------- capacity and configuration


def _number(t: tpl.Template, name: str, conv) -> float:
    """A value as oned's Template::get reads it: what does not parse as a finite number counts as 0."""
    try:
        value = conv(tpl.get(t, name) or 0)
    except (ValueError, TypeError):
        return 0
    return value if math.isfinite(value) else 0


@method("one.vm.resize", int, str, bool)
def vm_resize(call: Call, oid: int, text: str, enforce: bool) -> int:
    """VirtualMachineResize and DispatchManager::resize: oned 6.10 no longer reads *enforce*, and the
    dummy driver has no live resize, so a RUNNING VM is refused (set3 shows it). Quotas and the
    host's free capacity are not checked here (oned does both)."""
    t = common.parse_template(text)
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    new = {"CPU": _number(t, "CPU", float), "VCPU": _number(t, "VCPU", int), "MEMORY": _number(t, "MEMORY", int)}
    for name, what in (("CPU", "float or integer"), ("MEMORY", "integer"), ("VCPU", "integer")):
        if new[name] < 0:
            raise OneError(INTERNAL, f"{name} must be a positive {what} value.")
    state = vm["STATE"]
    if state == ACTIVE:
        if vm["LCM_STATE"] != RUNNING:
            raise OneError(ACTION, "Cannot resize a VM in state ACTIVE")
        driver = vm["HISTORY"][-1]["VM_MAD"] if vm["HISTORY"] else "dummy"
        raise OneError(ACTION, f"Hotplug resize not supported by driver {driver}")
    if state in (STOPPED, SUSPENDED, DONE):
        raise OneError(ACTION, f"Cannot resize a VM in state {VM_STATE(state).name}")
    old_cpu, old_mem = _number(vm["TEMPLATE"], "CPU", float), _number(vm["TEMPLATE"], "MEMORY", int)
    for name, value in new.items():
        if value > 0:
            vm["TEMPLATE"] = tpl.replace(vm["TEMPLATE"], name, f"{value:g}" if name == "CPU" else str(value))
    if state == POWEROFF:
        _moved_capacity(call, vm, old_cpu, old_mem)
        close_cp_history(call, vm, "resize")
    save_vm(call, vm)
    return oid


def _moved_capacity(call: Call, vm: dict, old_cpu: float, old_mem: int) -> None:
    """A powered-off VM keeps its place on its host: the host's usage follows the new capacity."""
    host = call.db.get("host", vm["HISTORY"][-1]["HID"]) if vm["HISTORY"] else None
    if host and vm["ID"] in host["VMS"]:
        cpu, mem = _number(vm["TEMPLATE"], "CPU", float), _number(vm["TEMPLATE"], "MEMORY", int)
        host["CPU_USAGE"] = max(0, host["CPU_USAGE"] + int(cpu * 100) - int(old_cpu * 100))
        host["MEM_USAGE"] = max(0, host["MEM_USAGE"] + (mem - old_mem) * 1024)
        call.db.put("host", host)


# VirtualMachineTemplate::UPDATECONF_ATTRS: the vectors one.vm.updateconf changes, and their attributes
_UPDATECONF = {
    "OS": ("ARCH", "MACHINE", "KERNEL", "INITRD", "BOOTLOADER", "BOOT", "KERNEL_CMD", "ROOT", "SD_DISK_BUS", "UUID",
           "FIRMWARE"),
    "FEATURES": ("PAE", "ACPI", "APIC", "LOCALTIME", "HYPERV", "GUEST_AGENT", "VIRTIO_SCSI_QUEUES",
                 "VIRTIO_BLK_QUEUES", "IOTHREADS"),
    "INPUT": ("TYPE", "BUS"),
    "GRAPHICS": ("TYPE", "LISTEN", "PASSWD", "KEYMAP", "COMMAND"),
    "VIDEO": ("IOMMU", "ATS", "TYPE", "VRAM", "RESOLUTION"),
    "RAW": ("TYPE", "DATA", "VALIDATE", "DATA_VMX"),
    "CPU_MODEL": ("MODEL", "FEATURES"),
}  # fmt: skip
# the LCM states of an ACTIVE VM whose configuration may change (VirtualMachine::updateconf)
_UPDATABLE_LCM = {
    LCM_STATE[name]
    for name in (
        "LCM_INIT", "PROLOG", "RUNNING", "EPILOG", "SHUTDOWN", "CLEANUP_RESUBMIT", "SHUTDOWN_POWEROFF",
        "CLEANUP_DELETE", "HOTPLUG_SAVEAS_POWEROFF", "SHUTDOWN_UNDEPLOY", "EPILOG_UNDEPLOY", "PROLOG_UNDEPLOY",
        "HOTPLUG_PROLOG_POWEROFF", "HOTPLUG_EPILOG_POWEROFF", "BOOT_FAILURE", "PROLOG_FAILURE", "EPILOG_FAILURE",
        "EPILOG_UNDEPLOY_FAILURE", "PROLOG_MIGRATE_POWEROFF", "PROLOG_MIGRATE_POWEROFF_FAILURE",
        "BOOT_UNDEPLOY_FAILURE", "PROLOG_UNDEPLOY_FAILURE", "DISK_SNAPSHOT_POWEROFF",
        "DISK_SNAPSHOT_REVERT_POWEROFF", "DISK_SNAPSHOT_DELETE_POWEROFF",
    )
}  # fmt: skip


def _conf_vector(old, new, names: tuple[str, ...], append: bool):
    """replace_vector_values: the vector's known attributes from *new*; in replace mode the others go."""
    if new is None:
        return old if append else None
    wanted = [(k, v) for k, v in new if k in names]
    if old is None:
        return wanted or None
    given = dict(wanted)
    kept = [(k, v) for k, v in old if k not in given and (append or k not in names)]
    return kept + wanted


def _conf_context(vm: dict, old: list, new: list, append: bool) -> list:
    """The CONTEXT part of VirtualMachine::updateconf: ETHn_* come from the NICs and may not be set
    here; the new values are parsed as at creation (NETWORK=YES makes the NICs' ETHn_* again), then
    merged into the old CONTEXT or put in its place; TARGET and DISK_ID stay."""
    current = dict(old)
    for k, v in new:
        if k.startswith("ETH") and k.partition("_")[0][3:].isdigit() and current.get(k) != v:
            verb = "update" if k in current else "add"
            raise OneError(INTERNAL, f"Unable to {verb} {k}, update NIC to update network context")
    nics = [v for k, v in vm["TEMPLATE"] if k == "NIC" and isinstance(v, list)]
    parsed = network_context([(k, v) for k, v in new if k not in ("TARGET", "DISK_ID")], 0, nics)
    kept = [(k, current[k]) for k in ("DISK_ID", "TARGET") if k in current]
    parsed = tpl.merge(parsed, kept)
    return tpl.merge(old, parsed) if append else parsed


@method("one.vm.updateconf", int, str, int, required=2)
def vm_updateconf(call: Call, oid: int, text: str, update_type: int = 0) -> int:
    """VirtualMachineUpdateConf (6.10: the 4th parameter, 0 replace or 1 merge, may be left out).
    On a RUNNING VM a changed CONTEXT goes to the driver: HOTPLUG for a moment, as set3 shows."""
    if update_type not in (0, 1):
        raise OneError(XML_RPC_API, "Wrong update type")
    t = common.parse_template(text)
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    state, lcm = vm["STATE"], vm["LCM_STATE"]
    if state in (INIT, DONE, SUSPENDED, STOPPED) or (state == ACTIVE and lcm not in _UPDATABLE_LCM):
        raise OneError(INTERNAL, f"configuration cannot be updated in state {VM_STATE(state).name}")
    append = update_type == 1
    body = vm["TEMPLATE"]
    for name, names in _UPDATECONF.items():
        vec = _conf_vector(tpl.get(body, name), tpl.get(t, name), names, append)
        body = tpl.replace(body, name, vec) if vec is not None else tpl.remove(body, name)
    old_context, new_context = tpl.get(body, "CONTEXT"), tpl.get(t, "CONTEXT")
    context_changed = False
    if isinstance(new_context, list):
        if not isinstance(old_context, list):
            raise OneError(INTERNAL, "Virtual machine does not have context, cannot add a new one.")
        context = _conf_context(vm, old_context, new_context, append)
        context_changed = sorted(context) != sorted(old_context)
        body = [(k, context if k == "CONTEXT" else v) for k, v in body]
    vm["TEMPLATE"] = body
    if state in (ACTIVE, POWEROFF, SUSPENDED):
        vnc_port(vm)
    if state == ACTIVE and lcm == RUNNING and context_changed:
        set_state(vm, ACTIVE, HOTPLUG)
        queue(call, vm, (ACTIVE, RUNNING))
    save_vm(call, vm)
    return oid


# ---------------------------------------------------------------- disks
# DispatchManager::attach/detach/disk_snapshot_*, VirtualMachine::set_saveas_state: the state each
# disk operation is allowed in, the state it puts the VM in while the driver works, and where it
# goes back to (lifecycle.finish_hotplug does the operation's work on that last step).

_BACK = {ACTIVE: (ACTIVE, RUNNING), POWEROFF: (POWEROFF, LCM_INIT), SUSPENDED: (SUSPENDED, LCM_INIT),
         UNDEPLOYED: (UNDEPLOYED, LCM_INIT), STOPPED: (STOPPED, LCM_INIT)}  # fmt: skip
_SAVEAS = {ACTIVE: HOTPLUG_SAVEAS, POWEROFF: HOTPLUG_SAVEAS_POWEROFF, SUSPENDED: HOTPLUG_SAVEAS_SUSPENDED,
           UNDEPLOYED: HOTPLUG_SAVEAS_UNDEPLOYED, STOPPED: HOTPLUG_SAVEAS_STOPPED}  # fmt: skip
_SNAPSHOT_CREATE = {ACTIVE: DISK_SNAPSHOT, POWEROFF: DISK_SNAPSHOT_POWEROFF, SUSPENDED: DISK_SNAPSHOT_SUSPENDED}
_SNAPSHOT_DELETE = {
    ACTIVE: DISK_SNAPSHOT_DELETE, POWEROFF: DISK_SNAPSHOT_DELETE_POWEROFF, SUSPENDED: DISK_SNAPSHOT_DELETE_SUSPENDED,
}  # fmt: skip


def _settled(vm: dict) -> bool:
    """RUNNING, or resting in POWEROFF/SUSPENDED (what the disk snapshot calls accept)."""
    return (vm["STATE"] == ACTIVE and vm["LCM_STATE"] == RUNNING) or vm["STATE"] in (POWEROFF, SUSPENDED)


def _disk_op(call: Call, vm: dict, lcm: int) -> None:
    """The VM waits in (ACTIVE, *lcm*) for the driver, then goes back where it was."""
    back = _BACK[vm["STATE"]]
    set_state(vm, ACTIVE, lcm)
    queue(call, vm, back)


def _mark_disk(vm: dict, disk_id: str, marks: tpl.Vector) -> None:
    """Add *marks* to the DISK being worked on (oned flags it until the driver is done)."""
    vm["TEMPLATE"] = [
        (k, tpl.merge(v, marks) if k == "DISK" and tpl.vget(v, "DISK_ID") == disk_id else v) for k, v in vm["TEMPLATE"]
    ]


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
    if not vm["HISTORY"]:
        raise OneError(ACTION, "VM is not running in any host")
    t = common.parse_template(text, ACTION)
    vec = tpl.get(t, "DISK")
    if not isinstance(vec, list):
        raise OneError(ACTION, "No DISK in template")
    ref = tpl.vget(vec, "IMAGE_ID")
    if ref is not None and (not ref.isdigit() or call.db.get("image", int(ref)) is None):
        raise OneError(ACTION, f"Image with ID: {ref} does not exist")
    if not (vm["STATE"] == ACTIVE and vm["LCM_STATE"] == RUNNING) and vm["STATE"] != POWEROFF:
        raise OneError(ACTION, f"Could not attach a new disk to VM {oid}, wrong state {lcm_name(vm)}.")
    existing = [v for k, v in vm["TEMPLATE"] if k == "DISK" and isinstance(v, list)]
    ids = [int(tpl.vget(d, "DISK_ID", "0")) for d in existing]
    context = tpl.get(vm["TEMPLATE"], "CONTEXT")
    if isinstance(context, list):
        ids.append(int(tpl.vget(context, "DISK_ID", "0")))
    targets = {tpl.vget(d, "TARGET") for d in existing}
    disk_id = max(ids, default=-1) + 1
    try:
        disk = new_disk(call, vec, disk_id, oid, targets, _owner_call(call, vm), attach=True)
    except OneError as e:  # every refusal of an attach is oned's ACTION failure
        raise OneError(ACTION, e.message) from None
    vm.setdefault("SNAPSHOTS", {}).update(carried_snapshots(call, [disk]))
    close_cp_history(call, vm, "disk-attach")
    _disk_op(call, vm, HOTPLUG if vm["STATE"] == ACTIVE else HOTPLUG_PROLOG_POWEROFF)
    marks = [("ATTACH", "YES"), ("TM_MAD_SYSTEM", tpl.get(vm["TEMPLATE"], "TM_MAD_SYSTEM") or "dummy")]
    vm["TEMPLATE"] = vm["TEMPLATE"] + [("DISK", tpl.merge(disk, marks))]
    save_vm(call, vm)
    return oid


@method("one.vm.detach", int, int)
def vm_detach(call: Call, oid: int, disk_id: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    if not (vm["STATE"] == ACTIVE and vm["LCM_STATE"] == RUNNING) and vm["STATE"] != POWEROFF:
        raise OneError(ACTION, f"Could not detach disk from VM {oid}, wrong state {lcm_name(vm)}.")
    if _disk_by_id(vm, disk_id) is None:
        raise OneError(ACTION, f"Could not detach disk with DISK_ID {disk_id}, it does not exist.")
    close_cp_history(call, vm, "disk-detach")
    _disk_op(call, vm, HOTPLUG if vm["STATE"] == ACTIVE else HOTPLUG_EPILOG_POWEROFF)
    _mark_disk(vm, str(disk_id), [("ATTACH", "YES")])
    vm["_DETACH"] = disk_id
    save_vm(call, vm)
    return oid


@method("one.vm.disksaveas", int, int, str, str, int, required=3)
def vm_disksaveas(call: Call, oid: int, disk_id: int, name: str, itype: str = "", snap: int = -1) -> int:
    """VirtualMachineDiskSaveas: a new image (LOCKED, FORMAT save_as, no SOURCE until the copy is
    done) whose template holds only where it came from; the source image is left as it is."""
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    if vm["STATE"] not in _SAVEAS or (vm["STATE"] == ACTIVE and vm["LCM_STATE"] != RUNNING):
        raise OneError(INTERNAL, "VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.")
    disk = _disk_by_id(vm, disk_id)
    if disk is None:
        raise OneError(INTERNAL, "Cannot use DISK. DISK does not exist.")
    if tpl.vget(disk, "IMAGE_ID") is None:
        raise OneError(INTERNAL, "Cannot use DISK. DISK does not have a valid IMAGE_ID.")
    if snap != -1 and not snapshots.exists(vm.get("SNAPSHOTS", {}).get(str(disk_id), {}), snap):
        raise OneError(INTERNAL, "Cannot use DISK. Snapshot does not exist.")
    src = call.get("image", int(tpl.vget(disk, "IMAGE_ID")))
    if src["TYPE"] not in (images.TYPES["OS"], images.TYPES["DATABLOCK"], images.TYPES["CDROM"]):
        type_name = next(k for k, v in images.TYPES.items() if v == src["TYPE"])
        raise OneError(INTERNAL, f"Cannot save_as image of type {type_name}")
    call.authorize_create("image")
    ds = call.get("datastore", src["DATASTORE_ID"])
    images.check_new_name(call, name)
    type_code = images.TYPES.get((itype or "").upper(), src["TYPE"])
    body = [(k, v) for k, v in src["TEMPLATE"] if k in ("TARGET", "DEV_PREFIX")]
    body += [("SAVED_DISK_ID", str(disk_id)), ("SAVED_IMAGE_ID", str(src["ID"])), ("SAVED_VM_ID", str(oid))]
    size = int(tpl.vget(disk, "SIZE") or src["SIZE"])
    saved = images.new_image(
        call, name, ds, type_code, size, "", "", "save_as", body + [("SAVE_AS_HOT", "YES")], 0, images.LOCKED
    )
    source = src["SOURCE"]
    if os.path.isfile(source):
        source, _ = images.copy_in(call, ds, source)
    images.driver_makes(call, saved, 2 * STEP, SOURCE=source, FORMAT=src["FORMAT"])
    _disk_op(call, vm, _SAVEAS[vm["STATE"]])
    _mark_disk(vm, str(disk_id), [("HOTPLUG_SAVE_AS_ACTIVE", "YES"), ("HOTPLUG_SAVE_AS_SNAPSHOT_ID", str(snap))])
    save_vm(call, vm)
    return saved["ID"]


def _snapshot_disk(call: Call, vm: dict, disk_id: int) -> tuple[tpl.Vector, dict]:
    """VirtualMachineDisks::get_snapshots: the disk and its snapshot list, or oned's refusal."""
    disk = _disk_by_id(vm, disk_id)
    if disk is None:
        raise OneError(ACTION, "VM disk does not exist")
    snaps = vm.get("SNAPSHOTS", {}).get(str(disk_id))
    if snaps is None:
        raise OneError(ACTION, "Snapshot does not exist")
    return disk, snaps


@method("one.vm.disksnapshotcreate", int, int, str)
def vm_disksnapshotcreate(call: Call, oid: int, disk_id: int, name: str) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    disk = _disk_by_id(vm, disk_id)
    if disk is None:
        raise OneError(ACTION, "VM disk does not exist")
    if tpl.vget(disk, "IMAGE_ID") is None:
        raise OneError(ACTION, "Cannot make snapshots on volatile disks")
    if not _settled(vm):
        raise OneError(ACTION, f"Could not create a new snapshot for VM {oid}, wrong state {lcm_name(vm)}.")
    if tpl.vget(disk, "READONLY", "NO").upper() == "YES":
        raise OneError(ACTION, "Cannot make snapshots on readonly disks")
    old = vm.get("SNAPSHOTS", {}).get(str(disk_id), {})
    snaps, sid = snapshots.create(old, name, int(tpl.vget(disk, "SIZE") or 0), call.cloud.now())
    vm.setdefault("SNAPSHOTS", {})[str(disk_id)] = snaps
    marks = [("DISK_SNAPSHOT_ACTIVE", "YES"), ("DISK_SNAPSHOT_ID", str(sid))]
    _mark_disk(vm, str(disk_id), [*marks, ("DISK_SNAPSHOT_TOTAL_SIZE", str(snapshots.total_size(snaps)))])
    vm["_SNAPOP"] = ["create", disk_id, sid]
    _disk_op(call, vm, _SNAPSHOT_CREATE[vm["STATE"]])
    close_cp_history(call, vm, "disk-snapshot-create")
    save_vm(call, vm)
    return sid


@method("one.vm.disksnapshotdelete", int, int, int)
def vm_disksnapshotdelete(call: Call, oid: int, disk_id: int, sid: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    if not _settled(vm):
        raise OneError(ACTION, f"Could not delete disk snapshot from VM {oid}, wrong state {lcm_name(vm)}.")
    disk, snaps = _snapshot_disk(call, vm, disk_id)
    error = snapshots.disk_delete_error(snaps, sid, tpl.vget(disk, "PERSISTENT") == "YES")
    if error:
        raise OneError(ACTION, error)
    _mark_disk(vm, str(disk_id), [("DISK_SNAPSHOT_ACTIVE", "YES"), ("DISK_SNAPSHOT_ID", str(sid))])
    vm["_SNAPOP"] = ["delete", disk_id, sid]
    _disk_op(call, vm, _SNAPSHOT_DELETE[vm["STATE"]])
    close_cp_history(call, vm, "disk-snapshot-delete")
    save_vm(call, vm)
    return oid


@method("one.vm.disksnapshotrevert", int, int, int)
def vm_disksnapshotrevert(call: Call, oid: int, disk_id: int, sid: int) -> int:
    vm = call.get("vm", oid)
    call.authorize("vm", vm, "MANAGE")
    if vm["STATE"] != POWEROFF:
        raise OneError(ACTION, f"Could not revert to disk snapshot for VM {oid}, wrong state {lcm_name(vm)}.")
    _, snaps = _snapshot_disk(call, vm, disk_id)
    if not snapshots.exists(snaps, sid):
        raise OneError(ACTION, f"Disk id ({disk_id}) or snapshot id ({sid}) is not valid.")
    _mark_disk(vm, str(disk_id), [("DISK_SNAPSHOT_ACTIVE", "YES"), ("DISK_SNAPSHOT_ID", str(sid))])
    vm["_SNAPOP"] = ["revert", disk_id, sid]
    close_cp_history(call, vm, "disk-snapshot-revert")
    _disk_op(call, vm, DISK_SNAPSHOT_REVERT_POWEROFF)
    save_vm(call, vm)
    return oid


def _owner_call(call: Call, vm: dict) -> Call:
    """Authorization as the VM's owner (the scheduler and hotplug act for the owner)."""
    if vm["UID"] == call.uid:
        return call
    owner = call.db.get("user", vm["UID"])
    return Call(call.cloud, call.method, owner, set(owner["GROUPS"])) if owner else call

"""A VM's state codes, and how a VM document is written back.

oned's VM STATE, LCM_STATE and history ACTION codes (include/VirtualMachine.h, include/VMActions.h),
and :func:`save_vm`: a VM is stored with its pool-form XML and its quota summary beside the document
(store.py's columns), so every change to a VM goes through it.
"""

from __future__ import annotations

from one import template as tpl
from one.codes import LCM_STATE, VM_STATE

from .. import records
from ..cloud import Call

# VM STATE and LCM_STATE codes, by the names one.codes gives them (oned's own, through pyone)
INIT, PENDING, HOLD, ACTIVE, STOPPED, SUSPENDED, DONE, POWEROFF, UNDEPLOYED = (
    VM_STATE.INIT,
    VM_STATE.PENDING,
    VM_STATE.HOLD,
    VM_STATE.ACTIVE,
    VM_STATE.STOPPED,
    VM_STATE.SUSPENDED,
    VM_STATE.DONE,
    VM_STATE.POWEROFF,
    VM_STATE.UNDEPLOYED,
)
LCM_INIT, PROLOG, BOOT, RUNNING, SAVE_STOP, SAVE_SUSPEND, EPILOG, SHUTDOWN = (
    LCM_STATE.LCM_INIT,
    LCM_STATE.PROLOG,
    LCM_STATE.BOOT,
    LCM_STATE.RUNNING,
    LCM_STATE.SAVE_STOP,
    LCM_STATE.SAVE_SUSPEND,
    LCM_STATE.EPILOG,
    LCM_STATE.SHUTDOWN,
)
HOTPLUG, SHUTDOWN_POWEROFF, BOOT_POWEROFF, HOTPLUG_SAVEAS, SHUTDOWN_UNDEPLOY = (
    LCM_STATE.HOTPLUG,
    LCM_STATE.SHUTDOWN_POWEROFF,
    LCM_STATE.BOOT_POWEROFF,
    LCM_STATE.HOTPLUG_SAVEAS,
    LCM_STATE.SHUTDOWN_UNDEPLOY,
)
PROLOG_RESUME, PROLOG_UNDEPLOY, BOOT_UNDEPLOY = (
    LCM_STATE.PROLOG_RESUME,
    LCM_STATE.PROLOG_UNDEPLOY,
    LCM_STATE.BOOT_UNDEPLOY,
)
# the LCM states of a disk operation: the driver is at work on one disk, the VM goes back after
HOTPLUG_PROLOG_POWEROFF, HOTPLUG_EPILOG_POWEROFF = LCM_STATE.HOTPLUG_PROLOG_POWEROFF, LCM_STATE.HOTPLUG_EPILOG_POWEROFF
HOTPLUG_SAVEAS_POWEROFF, HOTPLUG_SAVEAS_SUSPENDED, HOTPLUG_SAVEAS_UNDEPLOYED, HOTPLUG_SAVEAS_STOPPED = (
    LCM_STATE.HOTPLUG_SAVEAS_POWEROFF,
    LCM_STATE.HOTPLUG_SAVEAS_SUSPENDED,
    LCM_STATE.HOTPLUG_SAVEAS_UNDEPLOYED,
    LCM_STATE.HOTPLUG_SAVEAS_STOPPED,
)
DISK_SNAPSHOT, DISK_SNAPSHOT_POWEROFF, DISK_SNAPSHOT_SUSPENDED = (
    LCM_STATE.DISK_SNAPSHOT,
    LCM_STATE.DISK_SNAPSHOT_POWEROFF,
    LCM_STATE.DISK_SNAPSHOT_SUSPENDED,
)
DISK_SNAPSHOT_DELETE, DISK_SNAPSHOT_DELETE_POWEROFF, DISK_SNAPSHOT_DELETE_SUSPENDED = (
    LCM_STATE.DISK_SNAPSHOT_DELETE,
    LCM_STATE.DISK_SNAPSHOT_DELETE_POWEROFF,
    LCM_STATE.DISK_SNAPSHOT_DELETE_SUSPENDED,
)
DISK_SNAPSHOT_REVERT_POWEROFF = LCM_STATE.DISK_SNAPSHOT_REVERT_POWEROFF
DISK_OPS = {
    HOTPLUG, HOTPLUG_SAVEAS, HOTPLUG_PROLOG_POWEROFF, HOTPLUG_EPILOG_POWEROFF, HOTPLUG_SAVEAS_POWEROFF,
    HOTPLUG_SAVEAS_SUSPENDED, HOTPLUG_SAVEAS_UNDEPLOYED, HOTPLUG_SAVEAS_STOPPED, DISK_SNAPSHOT, DISK_SNAPSHOT_POWEROFF,
    DISK_SNAPSHOT_SUSPENDED, DISK_SNAPSHOT_DELETE, DISK_SNAPSHOT_DELETE_POWEROFF, DISK_SNAPSHOT_DELETE_SUSPENDED,
    DISK_SNAPSHOT_REVERT_POWEROFF,
}  # fmt: skip


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
    "nic-attach": 23,
    "nic-detach": 24,
    "disk-snapshot-create": 25,
    "disk-snapshot-delete": 26,
    "terminate": 27,
    "terminate-hard": 28,
    "updateconf": 33,
    "resize": 35,
    "disk-saveas": 40,
    "disk-snapshot-revert": 41,
}


def lcm_name(vm: dict) -> str:
    if vm["STATE"] == ACTIVE:
        return LCM_STATE(vm["LCM_STATE"]).name
    return VM_STATE(vm["STATE"]).name


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
    call.db.put(
        "vm",
        vm,
        pool_xml=records.vm_short(vm, uname, gname),
        qsum=qsum(vm),
        full_xml=records.vm(vm, uname, gname, last_history=True),
    )
    if vm.get("_NEXT"):
        call.cloud.owe(call.db, "vm", vm["ID"], vm["_NEXT"][0][2])
    else:
        call.db.pending_clear("vm", vm["ID"])

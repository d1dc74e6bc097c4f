"""A VM's state codes, and how a VM document is written back.

oned's VM STATE, LCM_STATE and history ACTION codes (include/VirtualMachine.h, include/VMActions.h),
and :func:`save_vm`: a VM is stored with its pool-form XML and its quota summary beside the document
(store.py's columns), so every change to a VM goes through it.
"""

from __future__ import annotations

from one import template as tpl

from .. import records
from ..cloud import Call

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


def lcm_name(vm: dict) -> str:
    if vm["STATE"] == ACTIVE:
        return LCM_NAMES.get(vm["LCM_STATE"], str(vm["LCM_STATE"]))
    return STATE_NAMES.get(vm["STATE"], str(vm["STATE"]))


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

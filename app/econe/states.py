"""OpenNebula states to EC2 states: pure tables, keyed on oned's short state names as the original did."""

from __future__ import annotations

from one.codes import IMAGE_STATES, LCM_STATE, VM_STATE

_L = LCM_STATE

# VM STATE -> short name; ACTIVE is described by its LCM state instead
VM_SHORT = {
    VM_STATE.INIT: "init",
    VM_STATE.PENDING: "pend",
    VM_STATE.HOLD: "hold",
    VM_STATE.STOPPED: "stop",
    VM_STATE.SUSPENDED: "susp",
    VM_STATE.DONE: "done",
    VM_STATE.FAILED: "fail",
    VM_STATE.POWEROFF: "poff",
    VM_STATE.UNDEPLOYED: "unde",
    VM_STATE.CLONING: "clon",
    VM_STATE.CLONING_FAILURE: "fail",
}
# LCM_STATE -> short name, as OpenNebula's Ruby bindings (SHORT_LCM_STATES) but for the two noted below
LCM_SHORT = {
    _L.LCM_INIT: "init",
    **dict.fromkeys((_L.PROLOG, _L.PROLOG_RESUME, _L.PROLOG_UNDEPLOY), "prol"),
    **dict.fromkeys((_L.BOOT, _L.BOOT_UNKNOWN, _L.BOOT_POWEROFF, _L.BOOT_SUSPENDED, _L.BOOT_STOPPED), "boot"),
    **dict.fromkeys((_L.BOOT_UNDEPLOY, _L.BOOT_MIGRATE), "boot"),
    _L.RUNNING: "runn",
    **dict.fromkeys((_L.MIGRATE, _L.PROLOG_MIGRATE, _L.PROLOG_MIGRATE_POWEROFF, _L.PROLOG_MIGRATE_SUSPEND), "migr"),
    _L.PROLOG_MIGRATE_UNKNOWN: "migr",
    **dict.fromkeys((_L.SAVE_STOP, _L.SAVE_SUSPEND, _L.SAVE_MIGRATE), "save"),
    **dict.fromkeys((_L.EPILOG_STOP, _L.EPILOG, _L.EPILOG_UNDEPLOY), "epil"),
    **dict.fromkeys((_L.SHUTDOWN, _L.CANCEL), "shut"),
    _L.SHUTDOWN_POWEROFF: "shpo",  # "shut" in Ruby: econe tells these two shutdowns apart (below)
    _L.SHUTDOWN_UNDEPLOY: "shun",
    **dict.fromkeys((_L.CLEANUP_RESUBMIT, _L.CLEANUP_DELETE), "clea"),
    _L.UNKNOWN: "unkn",
    **dict.fromkeys((_L.HOTPLUG, _L.HOTPLUG_NIC, _L.HOTPLUG_NIC_POWEROFF, _L.HOTPLUG_RESIZE), "hotp"),
    **dict.fromkeys((_L.HOTPLUG_SAVEAS, _L.HOTPLUG_SAVEAS_POWEROFF, _L.HOTPLUG_SAVEAS_SUSPENDED), "hotp"),
    **dict.fromkeys((_L.HOTPLUG_SAVEAS_UNDEPLOYED, _L.HOTPLUG_SAVEAS_STOPPED), "hotp"),
    **dict.fromkeys((_L.HOTPLUG_PROLOG_POWEROFF, _L.HOTPLUG_EPILOG_POWEROFF), "hotp"),
    **dict.fromkeys((s for s in _L if s.name.startswith(("HOTPLUG_SNAPSHOT", "DISK_SNAPSHOT"))), "snap"),
    **dict.fromkeys((s for s in _L if s.name == "FAILURE" or s.name.endswith("_FAILURE")), "fail"),
    **dict.fromkeys((_L.DISK_RESIZE, _L.DISK_RESIZE_POWEROFF, _L.DISK_RESIZE_UNDEPLOYED), "drsz"),
    **dict.fromkeys((_L.BACKUP, _L.BACKUP_POWEROFF), "back"),
    _L.RESTORE: "rest",
}

EC2_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
_EC2 = {
    # econe 5.12 said running while booting; oned refuses poweroff and reboot until the driver has
    # booted the VM, so a client that waited for running could not stop it: pending, as EC2 says
    **dict.fromkeys(("init", "pend", "hold", "prol", "clon", "boot"), "pending"),
    **dict.fromkeys(("runn", "migr", "hotp", "snap", "drsz", "back"), "running"),
    # econe 5.12 said shutting-down for the poweroff and undeploy shutdowns; they are stops in EC2 terms
    **dict.fromkeys(("save", "shpo", "shun"), "stopping"),
    # a restore copies a powered-off VM's disks from a backup and leaves it powered off
    **dict.fromkeys(("stop", "susp", "poff", "unde", "rest"), "stopped"),
    **dict.fromkeys(("epil", "shut", "clea"), "shutting-down"),
    **dict.fromkeys(("done", "fail", "unkn"), "terminated"),
}


def short_name(state: int, lcm_state: int) -> str:
    return LCM_SHORT.get(lcm_state, "unkn") if state == VM_STATE.ACTIVE else VM_SHORT.get(state, "unkn")


# work on a VM that is off (a disk resized, snapshotted or saved, a NIC or backup) leaves it off: stopped,
# so that a client that waited for stopped does not see it run meanwhile
_WHILE_OFF = {
    s
    for s in _L
    if s.name.endswith(("_POWEROFF", "_UNDEPLOYED", "_STOPPED", "_SUSPENDED"))
    and _EC2.get(LCM_SHORT.get(s, ""), "") == "running"
}


def instance_state(state: int, lcm_state: int) -> dict:
    """``{"Code": 16, "Name": "running"}`` for an OpenNebula (STATE, LCM_STATE)."""
    off = state == VM_STATE.ACTIVE and lcm_state in _WHILE_OFF
    name = "stopped" if off else _EC2.get(short_name(state, lcm_state), "pending")
    return {"Code": EC2_CODES[name], "Name": name}


# image STATE -> EC2 image state; None = not shown (DISABLED, DELETE)
_IMAGE = {
    IMAGE_STATES.INIT: "pending",
    IMAGE_STATES.READY: "available",
    IMAGE_STATES.USED: "available",
    IMAGE_STATES.DISABLED: None,
    IMAGE_STATES.LOCKED: "pending",
    IMAGE_STATES.ERROR: "failed",
    IMAGE_STATES.CLONE: "available",
    IMAGE_STATES.DELETE: None,
    IMAGE_STATES.USED_PERS: "in-use",
    IMAGE_STATES.LOCKED_USED: "pending",
    IMAGE_STATES.LOCKED_USED_PERS: "pending",
}


def image_state(state: int) -> str | None:
    return _IMAGE.get(state, "pending")

"""OpenNebula states to EC2 states: pure tables, keyed on oned's short state names as the original did."""

from __future__ import annotations

# VM STATE -> short name; ACTIVE (3) is described by its LCM state instead
VM_SHORT = {
    0: "init",
    1: "pend",
    2: "hold",
    4: "stop",
    5: "susp",
    6: "done",
    7: "fail",
    8: "poff",
    9: "unde",
    10: "clon",
    11: "fail",
}
LCM_SHORT = {
    0: "init",
    1: "prol",
    2: "boot",
    3: "runn",
    4: "migr",
    5: "save",
    6: "save",
    7: "save",
    8: "migr",
    9: "prol",
    10: "epil",
    11: "epil",
    12: "shut",
    15: "clea",
    16: "unkn",
    17: "hotp",
    18: "shpo",
    19: "boot",
    20: "boot",
    21: "boot",
    22: "boot",
    23: "clea",
    24: "snap",
    25: "hotp",
    26: "hotp",
    27: "hotp",
    28: "hotp",
    29: "shun",
    30: "epil",
    31: "prol",
    32: "boot",
    33: "hotp",
    34: "hotp",
    35: "boot",
    36: "fail",
    37: "fail",
    38: "fail",
    39: "fail",
    40: "fail",
    41: "fail",
    42: "fail",
    43: "fail",
    44: "fail",
    45: "fail",
    46: "migr",
    47: "fail",
    48: "drsz",
    49: "drsz",
    50: "drsz",
    51: "hotp",
    52: "hotp",
    53: "hotp",
    54: "hotp",
    55: "back",
    56: "back",
}

EC2_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
_EC2 = {
    # econe 5.12 said running while booting; oned refuses poweroff and reboot until the driver has
    # booted the VM, so a client that waited for running could not stop it: pending, as EC2 says
    **dict.fromkeys(("init", "pend", "hold", "prol", "clon", "boot"), "pending"),
    **dict.fromkeys(("runn", "migr", "hotp", "snap", "drsz", "back"), "running"),
    # econe 5.12 said shutting-down for the poweroff and undeploy shutdowns; they are stops in EC2 terms
    **dict.fromkeys(("save", "shpo", "shun"), "stopping"),
    **dict.fromkeys(("stop", "susp", "poff", "unde"), "stopped"),
    **dict.fromkeys(("epil", "shut", "clea"), "shutting-down"),
    **dict.fromkeys(("done", "fail", "unkn"), "terminated"),
}


def short_name(state: int, lcm_state: int) -> str:
    return LCM_SHORT.get(lcm_state, "unkn") if state == 3 else VM_SHORT.get(state, "unkn")


def instance_state(state: int, lcm_state: int) -> dict:
    """``{"Code": 16, "Name": "running"}`` for an OpenNebula (STATE, LCM_STATE)."""
    name = _EC2.get(short_name(state, lcm_state), "pending")
    return {"Code": EC2_CODES[name], "Name": name}


# image STATE -> EC2 image state; None = not shown (DISABLED, DELETE)
IMAGE_STATES = {
    0: "pending",
    1: "available",
    2: "available",
    3: None,
    4: "pending",
    5: "failed",
    6: "available",
    7: None,
    8: "in-use",
    9: "pending",
    10: "pending",
}


def image_state(state: int) -> str | None:
    return IMAGE_STATES.get(state, "pending")

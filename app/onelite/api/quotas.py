"""Quota usage, summed from the objects themselves (limits are oned's default, -1).

oned keeps counters; summing what exists gives the same figures and cannot drift.
oneadmin (uid 0) and its group (gid 0) are exempt, as in oned.
"""

from __future__ import annotations

from ..cloud import Call


def _usage(call: Call, match) -> dict:
    vm = {
        "CPU": 0.0,
        "MEMORY": 0,
        "RUNNING_CPU": 0.0,
        "RUNNING_MEMORY": 0,
        "RUNNING_VMS": 0,
        "SYSTEM_DISK_SIZE": 0,
        "VMS": 0,
    }
    net: dict[str, int] = {}
    img: dict[str, int] = {}
    any_vm = False
    for uid, gid, q in call.db.qsums("vm"):
        if not match(uid, gid):
            continue
        any_vm = True
        vm["VMS"] += 1
        vm["CPU"] += q["cpu"]
        vm["MEMORY"] += q["mem"]
        vm["SYSTEM_DISK_SIZE"] += q["disk"]
        if q["run"]:
            vm["RUNNING_VMS"] += 1
            vm["RUNNING_CPU"] += q["cpu"]
            vm["RUNNING_MEMORY"] += q["mem"]
        for k, n in q["net"].items():
            net[k] = net.get(k, 0) + n
        for k, n in q["img"].items():
            img[k] = img.get(k, 0) + n
    ds: dict[str, list[int]] = {}
    for i in call.db.all("image"):
        if match(i["UID"], i["GID"]):
            entry = ds.setdefault(str(i["DATASTORE_ID"]), [0, 0])
            entry[0] += 1
            entry[1] += int(i["SIZE"])
    return {"vm": vm if any_vm else None, "net": net, "img": img, "ds": ds}


def user_quotas(call: Call, uid: int) -> dict | None:
    if uid == 0:
        return None
    return _usage(call, lambda u, g: u == uid)


def group_quotas(call: Call, gid: int) -> dict | None:
    if gid == 0:
        return None
    return _usage(call, lambda u, g: g == gid)

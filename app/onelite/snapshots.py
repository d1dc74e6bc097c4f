"""A disk's snapshot list, as oned keeps it for an image and for a VM's disk (src/vm/Snapshots.cc).

oned's default ALLOW_ORPHANS="NO" (its DENY mode) is the only one kept here: a new snapshot is a
child of the active one, the active one and one with children cannot go. A list is a dict
``{"ALLOW_ORPHANS", "CURRENT_BASE", "NEXT_SNAPSHOT", "SNAPSHOT": [{ID, NAME, DATE, PARENT, SIZE,
ACTIVE?, CHILDREN?}]}``; ``{}`` is a cleared one (oned's ``Snapshots::clear``, after a flatten), which
oned writes as an empty ``<SNAPSHOTS/>``. The functions are pure: they return new lists.
"""

from __future__ import annotations

import copy

from .xmlgen import cd, raw


def fresh() -> dict:
    return {"ALLOW_ORPHANS": "NO", "CURRENT_BASE": -1, "NEXT_SNAPSHOT": 0, "SNAPSHOT": []}


def _get(snaps: dict, sid: int) -> dict | None:
    return next((s for s in snaps.get("SNAPSHOT", []) if s["ID"] == sid), None)


def exists(snaps: dict, sid: int) -> bool:
    return _get(snaps, sid) is not None


def active(snaps: dict) -> int:
    return next((s["ID"] for s in snaps.get("SNAPSHOT", []) if s.get("ACTIVE")), -1)


def total_size(snaps: dict) -> int:
    return sum(int(s["SIZE"]) for s in snaps.get("SNAPSHOT", []))


def create(snaps: dict, name: str, size: int, date: int) -> tuple[dict, int]:
    """A new snapshot, child of the active one; it becomes active only when the driver is done."""
    out = copy.deepcopy(snaps) if snaps else fresh()
    sid = out["NEXT_SNAPSHOT"]
    parent = active(out)
    snap = {"ID": sid, "DATE": date, "PARENT": parent, "SIZE": size}
    if name:
        snap["NAME"] = name
    if parent != -1:
        p = _get(out, parent)
        p["CHILDREN"] = f"{p['CHILDREN']},{sid}" if p.get("CHILDREN") else str(sid)
    out["SNAPSHOT"].append(snap)
    out["NEXT_SNAPSHOT"] = sid + 1
    return out, sid


def activate(snaps: dict, sid: int) -> dict:
    """Snapshots::active_snapshot: *sid* becomes the active one (a new snapshot done, or a revert)."""
    out = copy.deepcopy(snaps)
    for s in out.get("SNAPSHOT", []):
        s.pop("ACTIVE", None)
        if s["ID"] == sid:
            s["ACTIVE"] = True
    return out


def delete(snaps: dict, sid: int) -> dict:
    """Snapshots::delete_snapshot in DENY mode: the parent loses the child and inherits its only child."""
    out = copy.deepcopy(snaps)
    snap = _get(out, sid)
    if snap is None:
        return out
    parent = _get(out, snap["PARENT"])
    if parent is not None:
        children = {int(c) for c in str(parent.get("CHILDREN", "")).split(",") if c} - {sid}
        mine = [int(c) for c in str(snap.get("CHILDREN", "")).split(",") if c]
        if len(mine) == 1:
            children.add(mine[0])
            _get(out, mine[0])["PARENT"] = parent["ID"]
        parent.pop("CHILDREN", None)
        if children:
            parent["CHILDREN"] = ",".join(str(c) for c in sorted(children))
        if snap.get("ACTIVE"):
            parent["ACTIVE"] = True
    out["SNAPSHOT"] = [s for s in out["SNAPSHOT"] if s["ID"] != sid]
    return out


def image_delete_error(snaps: dict, sid: int) -> str | None:
    """Snapshots::test_delete_image: why an image's snapshot cannot be deleted, or None."""
    snap = _get(snaps, sid)
    if snap is None:
        return "Snapshot does not exist"
    if snap.get("ACTIVE"):
        return "Cannot delete the active snapshot"
    if snap.get("CHILDREN"):
        return "Cannot delete snapshot with children"
    return None


def disk_delete_error(snaps: dict, sid: int, persistent: bool) -> str | None:
    """Snapshots::test_delete (DENY) for a VM's disk: why the snapshot cannot be deleted, or None."""
    snap = _get(snaps, sid)
    if snap is None:
        return "Snapshot does not exist"
    if persistent and sid == 0:
        return "Cannot delete snapshot 0 for persistent disk images"
    children = [int(c) for c in str(snap.get("CHILDREN", "")).split(",") if c]
    if len(children) > 1:
        return "Cannot delete snapshot with more than one children"
    if not children:
        return None
    if snap.get("ACTIVE"):
        return "Cannot delete the active snapshot with children"
    child = _get(snaps, children[0])
    grandchildren = [c for c in str(child.get("CHILDREN", "")).split(",") if c] if child else []
    if len(grandchildren) > 1 or (len(grandchildren) == 1 and child.get("ACTIVE")):
        return "Cannot delete snapshot if child has children"
    parent = _get(snaps, snap["PARENT"])
    if parent is not None and len([c for c in str(parent.get("CHILDREN", "")).split(",") if c]) > 1:
        return "Cannot delete snapshot if parent has more than one child"
    return None


def render(snaps: dict | None, disk_id: int | None = None) -> str:
    """``<SNAPSHOTS>`` as oned writes it: attributes sorted by name, an image's without DISK_ID."""
    if snaps is None:
        snaps = fresh()
    if not snaps:
        return "<SNAPSHOTS/>"
    head = {"ALLOW_ORPHANS": snaps["ALLOW_ORPHANS"], "CURRENT_BASE": snaps["CURRENT_BASE"]}
    if disk_id is not None:
        head["DISK_ID"] = disk_id
    head["NEXT_SNAPSHOT"] = snaps["NEXT_SNAPSHOT"]
    body = "".join(cd(k, v) for k, v in head.items())
    for s in snaps["SNAPSHOT"]:
        fields = {**s, "ACTIVE": "YES"} if s.get("ACTIVE") else s
        body += raw("SNAPSHOT", "".join(cd(k, fields[k]) for k in sorted(fields)))
    return raw("SNAPSHOTS", body)

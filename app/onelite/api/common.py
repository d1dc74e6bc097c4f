"""What the owned-object families (vnets, images, templates, VMs, security groups, documents) share:
pool filters, chown, chmod, rename, update, and writing objects back."""

from __future__ import annotations

from one import template as tpl

from .. import records
from ..cloud import KINDS, Call
from ..errors import ACTION, INTERNAL, XML_RPC_API, OneError, not_authorized
from ..names import name_error
from .vmstate import save_vm


def check_name(name, code: int = INTERNAL, prefix: str = "") -> None:
    """oned's refusal of a name (not a single value: empty), with the code and prefix of the call's path."""
    error = name_error(name if isinstance(name, str) else "")
    if error:
        raise OneError(code, prefix + error)


def parse_template(text: str, code: int = INTERNAL, prefix: str = "") -> tpl.Template:
    try:
        return tpl.parse(text)
    except tpl.TemplateSyntaxError as e:
        raise OneError(code, prefix + str(e)) from None


def default_perms(call: Call, umask: int = 0o177) -> list[int]:
    """oned's default permissions: 0777 minus the umask (DEFAULT_UMASK 177 -> owner USE+MANAGE)."""
    mode = 0o777 & ~umask
    bits = []
    for shift in (6, 3, 0):
        part = (mode >> shift) & 7
        bits += [int(bool(part & 4)), int(bool(part & 2)), int(bool(part & 1))]
    return bits


def visible(call: Call, kind: str, uid: int, gid: int, perms: str | list, oid: int) -> bool:
    if call.is_admin:
        return True
    return call.can(kind, {"ID": oid, "UID": uid, "GID": gid, "PERMS": [int(p) for p in perms]}, "USE")


def pool_filter(call: Call, kind: str, flag: int, start: int, end: int):
    """A predicate on (oid, uid, gid, perms) for oned's pool filter flag and id range.
    With ``end < -1`` the pair is a page instead (offset, -size): see :func:`page`."""
    if flag < -4:
        raise OneError(XML_RPC_API, "Incorrect filter_flag.")
    me, primary, groups = call.uid, call.user["GID"], call.gids
    if end < -1:
        start = end = -1

    def keep(oid: int, uid: int, gid: int, perms) -> bool:
        if start >= 0 and oid < start:
            return False
        if end >= 0 and oid > end:
            return False
        if flag == -3:
            return uid == me
        if flag == -4:
            return gid == primary and visible(call, kind, uid, gid, perms, oid)
        if flag == -1:
            return (uid == me or gid in groups) and visible(call, kind, uid, gid, perms, oid)
        if flag >= 0 and uid != flag:
            return False
        return visible(call, kind, uid, gid, perms, oid)

    return keep


def page(items: list, start: int, end: int) -> list:
    """oned's pagination: with end < -1, ``-end`` items from offset ``start`` (in listing order)."""
    if end < -1:
        offset = max(start, 0)
        return items[offset : offset - end]
    return items


def owned_pool(call: Call, kind: str, flag: int, start: int, end: int, render, match=None) -> str:
    """The pool's objects *match* keeps (all by default) that the filter shows, a page of them rendered."""
    keep = pool_filter(call, kind, flag, start, end)
    objs = [
        o for o in call.db.all(kind) if (match is None or match(o)) and keep(o["ID"], o["UID"], o["GID"], o["PERMS"])
    ]
    return "".join(render(o) for o in page(objs, start, end))


def names(call: Call, obj: dict) -> tuple[str, str]:
    return call.uname(obj["UID"]), call.gname(obj["GID"])


def render(call: Call, kind: str, obj: dict) -> str:
    uname, gname = names(call, obj)
    return {
        "vnet": records.vnet,
        "image": records.image,
        "template": records.vmtemplate,
        "secgroup": records.secgroup,
        "datastore": records.datastore,
        "document": records.document,
    }[kind](obj, uname, gname)


def save(call: Call, kind: str, obj: dict) -> None:
    if kind == "vm":  # VMs keep their pool XML and quota summary beside the document
        save_vm(call, obj)
    elif kind == "document":  # oned keeps a document's body as XML: its pool answer copies it
        call.db.put(kind, obj, pool_xml=render(call, kind, obj))
    else:
        call.db.put(kind, obj)


def chown(call: Call, kind: str, oid: int, new_uid: int, new_gid: int) -> int:
    obj = call.get(kind, oid)
    new_user = call.get("user", new_uid) if new_uid >= 0 else None
    new_group = call.get("group", new_gid) if new_gid >= 0 else None
    call.authorize(kind, obj, "MANAGE")
    if new_user is not None and not call.is_admin and new_uid != call.uid and not call.can("user", new_user, "MANAGE"):
        raise not_authorized(call.uid, "MANAGE", "USER", new_uid)
    if (
        new_group is not None
        and not call.is_admin
        and new_gid not in call.gids
        and not call.can("group", new_group, "USE")
    ):
        raise not_authorized(call.uid, "USE", "GROUP", new_gid)
    if new_user is not None:
        obj["UID"] = new_uid
    if new_group is not None:
        obj["GID"] = new_gid
    save(call, kind, obj)
    return oid


def chmod(call: Call, kind: str, oid: int, bits: list[int]) -> int:
    obj = call.get(kind, oid)
    op = "ADMIN" if any(bits[i] == 1 for i in (2, 5, 8)) else "MANAGE"
    call.authorize(kind, obj, op)
    obj["PERMS"] = [old if new == -1 else int(bool(new)) for old, new in zip(obj["PERMS"], bits)]
    save(call, kind, obj)
    return oid


def rename(call: Call, kind: str, oid: int, name: str, unique_per_owner: bool = True) -> int:
    obj = call.get(kind, oid)
    if obj["NAME"] == name:  # oned answers before it checks anything else (RequestManagerRename)
        return oid
    call.authorize(kind, obj, "MANAGE")
    if unique_per_owner:
        for other in call.db.by_name(kind, name):
            if other["ID"] != oid and other.get("UID") == obj.get("UID"):
                noun = KINDS[kind][1].split()[-1] if kind != "template" else "template"
                raise OneError(
                    ACTION,
                    f"{noun} cannot be renamed to {name} because it collides with {noun} {other['ID']}",
                )
    check_name(name, ACTION)
    obj["NAME"] = name
    save(call, kind, obj)
    return oid


def one_per_name(t: tpl.Template) -> tpl.Template:
    """A template as oned keeps a user's (its Template in replace mode): each name keeps only its last
    attribute, so a second EC2_KEYPAIR=[...] replaces the first (set3's one.user.info.after_keypair*)."""
    last = {k: i for i, (k, _) in enumerate(t)}
    return [(k, v) for i, (k, v) in enumerate(t) if last[k] == i]


def update_template(current: tpl.Template, text: str, mode: int, prefix: str, code: int) -> tpl.Template:
    """Replace (0) or merge (1) *current* with *text*."""
    if mode not in (0, 1):
        raise OneError(XML_RPC_API, "Wrong update type")
    new = parse_template(text, code, prefix)
    return tpl.merge(current, new) if mode == 1 else new


def update(call: Call, kind: str, oid: int, text: str, mode: int, field: str = "TEMPLATE") -> int:
    obj = call.get(kind, oid)
    call.authorize(kind, obj, "MANAGE")
    prefix = "Cannot update template. " if kind != "vm" else ""
    code = INTERNAL if kind != "vm" else ACTION
    obj[field] = update_template(obj[field], text, mode, prefix, code)
    save(call, kind, obj)
    return oid


def info(call: Call, kind: str, oid: int) -> str:
    obj = call.get(kind, oid)
    call.authorize(kind, obj, "USE")
    return render(call, kind, obj)

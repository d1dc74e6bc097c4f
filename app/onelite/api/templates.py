"""one.template.*, one.templatepool.*: VM templates (instantiate builds a VM from one)."""

from __future__ import annotations

from one import template as tpl

from .. import records
from ..cloud import Call
from ..errors import ALLOCATE, INTERNAL, OneError
from ..registry import method
from . import common
from .vmbuild import build_vm, image_disk

TEMPLATE_ONLY = (
    "DESCRIPTION",
    "LABELS",
    "LOGO",
    "SCHED_REQUIREMENTS",
    "SCHED_RANK",
    "SCHED_DS_REQUIREMENTS",
    "SCHED_DS_RANK",
    "USER_INPUTS",
    "INPUTS_ORDER",
    "VROUTER",
)


@method("one.template.allocate", str)
def template_allocate(call: Call, text: str) -> int:
    t = common.parse_template(text)
    call.authorize_create("template")
    name = tpl.get(t, "NAME")
    common.check_name(name)
    call.check_name_free("template", name, call.uid, "TEMPLATE")
    oid = call.db.next_id("template", 0)
    call.db.put(
        "template",
        {
            "ID": oid,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "REGTIME": call.cloud.now(),
            "TEMPLATE": tpl.remove(t, "NAME"),
        },
    )
    return oid


def _extended(call: Call, t: tpl.Template) -> tpl.Template:
    """template.info(extended): each image DISK shows the image's attributes, as a VM disk would."""
    out = []
    for i, (k, v) in enumerate(t):
        if k == "DISK" and isinstance(v, list) and tpl.vget(v, "IMAGE_ID") is not None:
            image = call.db.get("image", int(tpl.vget(v, "IMAGE_ID")))
            if image:
                disk_id = sum(1 for kk, _ in t[:i] if kk == "DISK")
                prefix = tpl.get(image["TEMPLATE"], "DEV_PREFIX") or "sd"
                d = image_disk(call, image, disk_id, prefix)
                d.update(dict(v))
                v = sorted(d.items())
        out.append((k, v))
    return out


@method("one.template.info", int, bool, bool, required=1)
def template_info(call: Call, oid: int, extended: bool = False, decrypt: bool = False) -> str:
    t = call.get("template", oid)
    call.authorize("template", t, "USE")
    uname, gname = common.names(call, t)
    return records.vmtemplate(t, uname, gname, _extended(call, t["TEMPLATE"]) if extended else None)


@method("one.templatepool.info", int, int, int)
def templatepool_info(call: Call, flag: int, start: int, end: int) -> str:
    return (
        "<VMTEMPLATE_POOL>"
        + common.owned_pool(call, "template", flag, start, end, lambda t: common.render(call, "template", t))
        + "</VMTEMPLATE_POOL>"
    )


@method("one.template.update", int, str, int, required=2)
def template_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    return common.update(call, "template", oid, text, mode)


@method("one.template.chown", int, int, int)
def template_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "template", oid, uid, gid)


@method("one.template.chmod", int, int, int, int, int, int, int, int, int, int, bool, required=10)
def template_chmod(call: Call, oid: int, *bits) -> int:
    return common.chmod(call, "template", oid, list(bits[:9]))


@method("one.template.rename", int, str)
def template_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "template", oid, name)


@method("one.template.delete", int, bool, required=1)
def template_delete(call: Call, oid: int, recursive: bool = False) -> int:
    t = call.get("template", oid)
    call.authorize("template", t, "MANAGE")
    call.db.delete("template", oid)
    return oid


@method("one.template.clone", int, str, bool, required=2)
def template_clone(call: Call, oid: int, name: str, recursive: bool = False) -> int:
    t = call.get("template", oid)
    call.authorize("template", t, "USE")
    call.authorize_create("template")
    prefix = "Error allocating a new virtual machine template. "
    common.check_name(name, ALLOCATE, prefix)
    for other in call.db.by_name("template", name):
        if other["UID"] == call.uid:
            raise OneError(ALLOCATE, f"{prefix}NAME is already taken by TEMPLATE {other['ID']}.")
    new = call.db.next_id("template", 0)
    call.db.put(
        "template",
        {
            "ID": new,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "REGTIME": call.cloud.now(),
            "TEMPLATE": tpl.remove(t["TEMPLATE"], "NAME"),
        },
    )
    return new


@method("one.template.instantiate", int, str, bool, str, bool, required=2)
def template_instantiate(
    call: Call, oid: int, name: str, hold: bool = False, extra: str = "", persistent: bool = False
) -> int:
    t = call.get("template", oid)
    call.authorize("template", t, "USE")
    extra_t = common.parse_template(extra) if extra else []
    merged = tpl.merge(t["TEMPLATE"], extra_t)
    user_part = [(k, v) for k, v in merged if k in TEMPLATE_ONLY]
    body = [(k, v) for k, v in merged if k not in TEMPLATE_ONLY] + [("TEMPLATE_ID", str(oid))]
    try:
        return build_vm(call, body, name or None, hold, user_part)
    except OneError as e:
        if e.code == INTERNAL:
            raise OneError(ALLOCATE, f"Error allocating a new virtual machine template. {e.message}") from None
        raise

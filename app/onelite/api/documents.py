"""one.document.* and one.documentpool.info: OpenNebula's generic documents (OneFlow keeps its services
in them), as oned 6.10.5 keeps them (set 4 of the captures).

A document is a name, a type number, an owner with permission bits and a template. Its name is not
unique and not checked as other objects' names are, but oned writes it into the record unescaped and
refuses a record that is then not XML. Documents can be locked (``LOCK``, see ``Call.refusal``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from one import template as tpl

from ..cloud import Call
from ..errors import ACTION, ALLOCATE, INTERNAL, OneError
from ..registry import method
from . import common

MAX_NAME = 128  # bytes (Document::insert)
# lock levels a caller may ask for -> the level kept (RequestManagerLock: 4, "ALL", is USE)
LOCK_LEVELS = {1: 1, 2: 2, 3: 3, 4: 1}


def _name_error(name: str) -> str | None:
    """Why Document::insert refuses *name* (already defaulted), or None."""
    if len(name.encode()) > MAX_NAME:
        return f"NAME is too long; max length is {MAX_NAME} chars."
    try:
        ET.fromstring(f"<NAME>{name}</NAME>")
    except ET.ParseError:  # "a&b", "a<b": the record oned writes would not be XML
        return "Error transforming the Document to XML."
    return None


def _new(call: Call, name: str, dtype: int, template: tpl.Template, code: int = INTERNAL, prefix: str = "") -> int:
    """A document of the caller's, named *name* or else ``document-<id>``; a name oned refuses is
    refused with *code* and *prefix* (its id is not used up: the call's transaction is rolled back)."""
    oid = call.db.next_id("document", 0)
    name = name or f"document-{oid}"
    error = _name_error(name)
    if error:
        raise OneError(code, prefix + error)
    common.save(
        call,
        "document",
        {
            "ID": oid,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "TYPE": dtype,
            "TEMPLATE": tpl.remove(template, "NAME"),
        },
    )
    return oid


@method("one.document.allocate", str, int)
def document_allocate(call: Call, text: str, dtype: int) -> int:
    t = common.parse_template(text)
    call.authorize_create("document")
    name = tpl.get(t, "NAME")
    return _new(call, name if isinstance(name, str) else "", dtype, t)


@method("one.document.clone", int, str, bool, required=2)
def document_clone(call: Call, oid: int, name: str, recursive: bool = False) -> int:
    src = call.get("document", oid)
    call.demand(call.refusal("document", src, "USE"), call.refusal("document", None))
    return _new(call, name, src["TYPE"], src["TEMPLATE"], ALLOCATE, "Error allocating a new document. ")


@method("one.document.info", int, bool, required=1)
def document_info(call: Call, oid: int, decrypt: bool = False) -> str:
    doc = call.get("document", oid)
    call.authorize("document", doc, "USE", lockable=False)
    return common.render(call, "document", doc)


@method("one.documentpool.info", int, int, int, int)
def documentpool_info(call: Call, flag: int, start: int, end: int, dtype: int) -> str:
    """The documents of exactly type *dtype* (-1 is a type like any other) the filter shows."""
    keep = common.pool_filter(call, "document", flag, start, end)
    rows = call.db.rows("document", "json_extract(body, '$.TYPE') = ?", (dtype,))
    listed = common.page([r[5] for r in rows if keep(*r[:4])], start, end)
    return f"<DOCUMENT_POOL>{''.join(listed)}</DOCUMENT_POOL>"


@method("one.document.update", int, str, int, required=2)
def document_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    return common.update(call, "document", oid, text, mode)


@method("one.document.delete", int)
def document_delete(call: Call, oid: int) -> int:
    doc = call.get("document", oid)
    call.authorize("document", doc, "MANAGE")
    call.db.delete("document", oid)
    return oid


@method("one.document.chown", int, int, int)
def document_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "document", oid, uid, gid)


@method("one.document.chmod", int, int, int, int, int, int, int, int, int, int)
def document_chmod(call: Call, oid: int, *bits: int) -> int:
    return common.chmod(call, "document", oid, list(bits))


@method("one.document.rename", int, str)
def document_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "document", oid, name, unique_per_owner=False)


@method("one.document.lock", int, int, bool, required=2)
def document_lock(call: Call, oid: int, level: int, test: bool = False) -> int:
    """Lock at *level*; the lock's owner (or oneadmin) may lock again. With *test*, a locked document
    is refused with its lock's time as the message (RequestManagerLock, test_lock_db)."""
    doc = call.get("document", oid)
    call.authorize("document", doc, "MANAGE", lockable=False)
    if level not in LOCK_LEVELS:
        raise OneError(ACTION, "Wrong lock level specified")
    lock = doc.get("LOCK")
    if test and lock:
        raise OneError(ACTION, str(lock["TIME"]))
    if lock and lock["OWNER"] != call.uid and not call.is_admin:
        raise OneError(ACTION, "Error trying to lock the resource.")
    doc["LOCK"] = {
        "LOCKED": LOCK_LEVELS[level],
        "OWNER": call.uid,
        "TIME": call.cloud.now(),
        "REQ_ID": call.cloud.request_id,  # the call's id, as oned's att.req_id
    }
    common.save(call, "document", doc)
    return oid


@method("one.document.unlock", int)
def document_unlock(call: Call, oid: int) -> int:
    """Only the lock's owner or oneadmin unlocks, and nobody else an unlocked document."""
    doc = call.get("document", oid)
    call.authorize("document", doc, "MANAGE", lockable=False)
    if not call.is_admin and doc.get("LOCK", {}).get("OWNER") != call.uid:
        raise OneError(ACTION, "Cannot unlock: Lock is owned by another user")
    doc.pop("LOCK", None)
    common.save(call, "document", doc)
    return oid

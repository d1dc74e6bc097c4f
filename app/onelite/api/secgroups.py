"""one.secgroup.* and one.secgrouppool.info."""

from __future__ import annotations

from one import template as tpl

from ..cloud import Call
from ..errors import ACTION, INTERNAL, OneError
from ..registry import method
from . import common

PROTOCOLS = ("TCP", "UDP", "ICMP", "ICMPV6", "IPSEC", "ALL")


def _check_rules(t: tpl.Template) -> None:
    for rule in tpl.get_all(t, "RULE"):
        if not isinstance(rule, list):
            raise OneError(INTERNAL, "RULE has to be a vector attribute.")
        if (tpl.vget(rule, "PROTOCOL") or "").upper() not in PROTOCOLS:
            raise OneError(INTERNAL, "Wrong PROTOCOL in rule. Valid options: TCP, UDP, ICMP, ICMPV6, IPSEC, ALL.")
        if (tpl.vget(rule, "RULE_TYPE") or "").upper() not in ("INBOUND", "OUTBOUND"):
            raise OneError(INTERNAL, "Wrong RULE_TYPE in rule. Valid options: INBOUND, OUTBOUND.")


@method("one.secgroup.allocate", str)
def secgroup_allocate(call: Call, text: str) -> int:
    t = common.parse_template(text)
    call.authorize_create("secgroup")
    name = tpl.get(t, "NAME")
    common.check_name(name)
    _check_rules(t)
    call.check_name_free("secgroup", name, call.uid, "SECGROUP")
    oid = call.db.next_id("secgroup", 100)
    call.db.put(
        "secgroup",
        {
            "ID": oid,
            "NAME": name,
            "UID": call.uid,
            "GID": call.user["GID"],
            "PERMS": common.default_perms(call),
            "UPDATED_VMS": [],
            "TEMPLATE": tpl.remove(t, "NAME"),
        },
    )
    return oid


@method("one.secgroup.delete", int)
def secgroup_delete(call: Call, oid: int) -> int:
    sg = call.get("secgroup", oid)
    call.authorize("secgroup", sg, "MANAGE")
    if oid == 0:
        raise OneError(ACTION, "The default security group (ID 0) cannot be deleted.")
    if sg["UPDATED_VMS"]:
        raise OneError(ACTION, "The security group has VMs using it")
    call.db.delete("secgroup", oid)
    return oid


@method("one.secgroup.info", int, bool, required=1)
def secgroup_info(call: Call, oid: int, decrypt: bool = False) -> str:
    return common.info(call, "secgroup", oid)


@method("one.secgrouppool.info", int, int, int)
def secgrouppool_info(call: Call, flag: int, start: int, end: int) -> str:
    return (
        "<SECURITY_GROUP_POOL>"
        + common.owned_pool(call, "secgroup", flag, start, end, lambda s: common.render(call, "secgroup", s))
        + "</SECURITY_GROUP_POOL>"
    )


@method("one.secgroup.update", int, str, int, required=2)
def secgroup_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    sg = call.get("secgroup", oid)
    call.authorize("secgroup", sg, "MANAGE")
    new = common.update_template(sg["TEMPLATE"], text, mode, "Cannot update template. ", INTERNAL)
    _check_rules(new)
    sg["TEMPLATE"] = tpl.remove(new, "NAME")
    call.db.put("secgroup", sg)
    return oid


@method("one.secgroup.chown", int, int, int)
def secgroup_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "secgroup", oid, uid, gid)


@method("one.secgroup.chmod", int, int, int, int, int, int, int, int, int, int)
def secgroup_chmod(call: Call, oid: int, *bits: int) -> int:
    return common.chmod(call, "secgroup", oid, list(bits))

"""one.secgroup.* and one.secgrouppool.info."""

from __future__ import annotations

import re
import socket

from one import template as tpl

from .. import records
from ..cloud import Call
from ..errors import ACTION, INTERNAL, OneError
from ..registry import method
from . import common
from .vmbuild import secgroup_rules
from .vmstate import ACTIVE, RUNNING

PROTOCOLS = ("TCP", "UDP", "ICMP", "ICMPV6", "IPSEC", "ALL")
_PORTS = re.compile(r"([0-9]+|[0-9]+:[0-9]+)(,([0-9]+|[0-9]+:[0-9]+))*")
# how long a running VM's rules are with its driver after an update or commit: oned lists the VM in
# none of the group's sets meanwhile (set3's after_update and after_commit.immediate), in
# UPDATED_VMS once the driver answered (after_commit.settled, 2 s later)
DRIVER_SECONDS = 0.5


def _number(text: str | None, signed: bool = False) -> int | None:
    """oned's ``vector_value`` into an int or unsigned int: digits after an optional space and sign
    (no minus for unsigned), nothing after them, within 32 bits; None when it is not one."""
    if not text or not re.fullmatch(r"\s*[+-]?[0-9]+", text, re.ASCII) or (not signed and text.strip().startswith("-")):
        return None
    value = int(text)
    low, high = (-(2**31), 2**31) if signed else (0, 2**32)
    return value if low <= value < high else None


def _ip(text: str) -> bool:
    for family in (socket.AF_INET6, socket.AF_INET):  # oned's inet_pton, as oned tries them
        try:
            socket.inet_pton(family, text)
            return True
        except (OSError, ValueError):
            pass
    return False


def _range_error(value: str) -> str | None:
    if not _PORTS.fullmatch(value):
        return "Invalid RANGE specification."
    ports = 0
    for part in value.split(","):
        first, _, last = part.partition(":")
        if int(last or first) > 65535:
            return "RANGE out of bounds 0-65536."
        if last and int(last) < int(first):
            return "RANGE BEGIN value is greater than RANGE END value"
        ports += 2 if last else 1
        if ports > 15:
            return "Not more than 15 ports can be specified in a RULE"
    return None


def rule_error(rule: tpl.Vector) -> str | None:
    """oned's SecurityGroup::is_valid: what is wrong with one RULE, in its words and order."""
    proto = (tpl.vget(rule, "PROTOCOL") or "").upper()
    if proto not in PROTOCOLS:
        return "Wrong PROTOCOL in rule. Valid options: TCP, UDP, ICMP, ICMPV6, IPSEC, ALL."
    ports = tpl.vget(rule, "RANGE") or ""
    if ports and proto not in ("TCP", "UDP"):
        return "RANGE is supported only for TCP and UDP protocols."
    if ports and _range_error(ports):
        return _range_error(ports)
    for key, needs in (("ICMP_TYPE", "ICMP"), ("ICMPV6_TYPE", "ICMPV6")):
        if tpl.vget(rule, key):
            if proto != needs:
                return f"{key} is supported only for {needs} protocol."
            if _number(tpl.vget(rule, key)) is None:
                return f"Wrong {key}, it must be integer"
    if (tpl.vget(rule, "RULE_TYPE") or "").upper() not in ("INBOUND", "OUTBOUND"):
        return "Wrong RULE_TYPE in rule. Valid options: INBOUND, OUTBOUND."
    ip = tpl.vget(rule, "IP") or ""
    if ip:  # "any address" is a rule with no IP (and no SIZE): 0.0.0.0 needs a SIZE below 2**32
        if _number(tpl.vget(rule, "SIZE")) is None:
            return "Wrong or empty SIZE."
        if not _ip(ip):
            return "Wrong format for IP value."
    elif tpl.vget(rule, "NETWORK_ID") is not None and _number(tpl.vget(rule, "NETWORK_ID"), signed=True) is None:
        return "Wrong NETWORK_ID."
    return None


def _checked(t: tpl.Template, prefix: str = "") -> tpl.Template:
    """The template with its rules checked (vector RULEs only: oned reads no other) and duplicates dropped."""
    seen, out = set(), []
    for k, v in t:
        if k == "RULE" and isinstance(v, list):
            error = rule_error(v)
            if error:
                raise OneError(INTERNAL, prefix + error)
            key = tuple(sorted(map(tuple, v)))  # stored vectors are lists of pairs
            if key in seen:
                continue
            seen.add(key)
        out.append((k, v))
    return out


@method("one.secgroup.allocate", str)
def secgroup_allocate(call: Call, text: str) -> int:
    t = common.parse_template(text)
    call.authorize_create("secgroup")
    name = tpl.get(t, "NAME")
    common.check_name(name)
    call.check_name_free("secgroup", name, call.uid, "SecurityGroup")  # before the rules, as oned
    t = _checked(t)
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


def _shown(call: Call, sg: dict) -> str:
    """The record, without the VMs whose driver has not answered yet."""
    now = call.cloud.clock()
    busy = {int(vmid) for vmid, due in sg.get("_DRIVER", {}).items() if due > now}
    uname, gname = common.names(call, sg)
    return records.secgroup({**sg, "UPDATED_VMS": [v for v in sg["UPDATED_VMS"] if v not in busy]}, uname, gname)


@method("one.secgroup.info", int, bool, required=1)
def secgroup_info(call: Call, oid: int, decrypt: bool = False) -> str:
    sg = call.get("secgroup", oid)
    call.authorize("secgroup", sg, "USE")
    return _shown(call, sg)


@method("one.secgrouppool.info", int, int, int)
def secgrouppool_info(call: Call, flag: int, start: int, end: int) -> str:
    return (
        "<SECURITY_GROUP_POOL>"
        + common.owned_pool(call, "secgroup", flag, start, end, lambda s: _shown(call, s))
        + "</SECURITY_GROUP_POOL>"
    )


def _commit(call: Call, sg: dict, recover: bool) -> None:
    """The group's rules copied into its VMs at once (oned's LCM does it right after the call);
    a running VM's copy then goes to its driver (``DRIVER_SECONDS``). With *recover* only the VMs
    still with their driver are sent again."""
    now = call.cloud.clock()
    driver = {vmid: due for vmid, due in sg.get("_DRIVER", {}).items() if due > now}
    for vmid in list(driver) if recover else sg["UPDATED_VMS"]:
        vm = call.db.get("vm", int(vmid))
        if vm is None:
            continue
        rules = [(k, v) for k, v in vm["TEMPLATE"] if not _of_group(k, v, sg["ID"])]
        vm["TEMPLATE"] = rules + secgroup_rules(sg)
        common.save(call, "vm", vm)
        if (vm["STATE"], vm["LCM_STATE"]) == (ACTIVE, RUNNING):
            driver[str(vmid)] = now + DRIVER_SECONDS
    sg["_DRIVER"] = driver


def _of_group(key: str, value, sgid: int) -> bool:
    return key == "SECURITY_GROUP_RULE" and tpl.vget(value, "SECURITY_GROUP_ID") == str(sgid)


@method("one.secgroup.update", int, str, int, required=2)
def secgroup_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    sg = call.get("secgroup", oid)
    call.authorize("secgroup", sg, "MANAGE")
    prefix = "Cannot update template. "
    new = common.update_template(sg["TEMPLATE"], text, mode, prefix, INTERNAL)
    sg["TEMPLATE"] = _checked(new, prefix)  # a NAME in the text stays in the template (set3's after_update)
    _commit(call, sg, recover=False)
    call.db.put("secgroup", sg)
    return oid


@method("one.secgroup.commit", int, bool)
def secgroup_commit(call: Call, oid: int, recover: bool) -> int:
    sg = call.get("secgroup", oid)
    call.authorize("secgroup", sg, "MANAGE")
    _commit(call, sg, recover)
    call.db.put("secgroup", sg)
    return oid


@method("one.secgroup.chown", int, int, int)
def secgroup_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "secgroup", oid, uid, gid)


@method("one.secgroup.chmod", int, int, int, int, int, int, int, int, int, int)
def secgroup_chmod(call: Call, oid: int, *bits: int) -> int:
    return common.chmod(call, "secgroup", oid, list(bits))


@method("one.secgroup.rename", int, str)
def secgroup_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "secgroup", oid, name)

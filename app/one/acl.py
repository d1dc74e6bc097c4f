"""ACL rules as oned encodes them: hex user / resource / rights / zone, and their string form."""

from __future__ import annotations

INDIVIDUAL = 0x100000000
GROUP = 0x200000000
ALL = 0x400000000
CLUSTER = 0x800000000
ID_MASK = 0xFFFFFFFF

# Resource type bits, in the order oned prints them.
TYPES = {
    "VM": 0x1000000000,
    "HOST": 0x2000000000,
    "NET": 0x4000000000,
    "IMAGE": 0x8000000000,
    "USER": 0x10000000000,
    "TEMPLATE": 0x20000000000,
    "GROUP": 0x40000000000,
    "DATASTORE": 0x100000000000,
    "CLUSTER": 0x200000000000,
    "DOCUMENT": 0x400000000000,
    "ZONE": 0x800000000000,
    "SECGROUP": 0x1000000000000,
    "VDC": 0x2000000000000,
    "VROUTER": 0x4000000000000,
    "MARKETPLACE": 0x8000000000000,
    "MARKETPLACEAPP": 0x10000000000000,
    "VMGROUP": 0x20000000000000,
    "VNTEMPLATE": 0x40000000000000,
    "HOOK": 0x80000000000000,
    "BACKUPJOB": 0x100000000000000,
}
TYPE_MASK = sum(TYPES.values())
RIGHTS = {"USE": 1, "MANAGE": 2, "ADMIN": 4, "CREATE": 8}


class MalformedRule(ValueError):
    pass


def parse_hex(text: str) -> int:
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    return int(t, 16)


def _who(value: int, allowed: int) -> str:
    if value & INDIVIDUAL and allowed & INDIVIDUAL:
        return f"#{value & ID_MASK}"
    if value & GROUP and allowed & GROUP:
        return f"@{value & ID_MASK}"
    if value & CLUSTER and allowed & CLUSTER:
        return f"%{value & ID_MASK}"
    if value & ALL:
        return "*"
    return "??"


def to_string(user: int, resource: int, rights: int, zone: int) -> str:
    types = "+".join(n for n, bit in TYPES.items() if resource & bit)
    rts = "+".join(n for n, bit in RIGHTS.items() if rights & bit)
    return (
        f"{_who(user, INDIVIDUAL | GROUP | ALL)} {types}/{_who(resource, INDIVIDUAL | GROUP | CLUSTER | ALL)}"
        f" {rts} {_who(zone, INDIVIDUAL | ALL)}"
    )


def validate(user: int, resource: int, rights: int, zone: int) -> None:
    """Raise MalformedRule with oned's explanation when the rule is not well formed."""
    problems = []
    if bin(user & (INDIVIDUAL | GROUP | ALL)).count("1") != 1:
        problems.append("[user] is missing one of the INDIVIDUAL, GROUP or ALL bits")
    if bin(resource & (INDIVIDUAL | GROUP | CLUSTER | ALL)).count("1") != 1:
        problems.append("[resource] is missing one of the INDIVIDUAL, GROUP, CLUSTER or ALL bits")
    if resource & TYPE_MASK == 0:
        problems.append("[resource] type is missing")
    if rights == 0 or rights & ~0xF:
        problems.append("wrong [rights], it must be a combination of USE, MANAGE, ADMIN or CREATE")
    if bin(zone & (INDIVIDUAL | ALL)).count("1") != 1:
        problems.append("[zone] is missing one of the INDIVIDUAL or ALL bits")
    if problems:
        raise MalformedRule(f"Rule {to_string(user, resource, rights, zone)} is malformed: " + "; ".join(problems))


def user_matches(rule_user: int, uid: int, gids) -> bool:
    if rule_user & ALL:
        return True
    if rule_user & INDIVIDUAL:
        return rule_user & ID_MASK == uid
    if rule_user & GROUP:
        return rule_user & ID_MASK in gids
    return False


def resource_matches(rule_res: int, type_bit: int, oid: int, ogid: int, clusters=()) -> bool:
    """Does the rule's resource part cover object *oid* of group *ogid* (oid -1 = any, for CREATE)?"""
    if not rule_res & type_bit:
        return False
    if rule_res & ALL:
        return True
    if oid < 0:
        return False
    if rule_res & INDIVIDUAL:
        return rule_res & ID_MASK == oid
    if rule_res & GROUP:
        return rule_res & ID_MASK == ogid
    if rule_res & CLUSTER:
        return rule_res & ID_MASK in clusters
    return False


ONEADMIN = 0  # the oneadmin user and group, for which oned checks nothing
PERMISSION_BITS = {"USE": 0, "MANAGE": 1, "ADMIN": 2}  # offsets in OWNER_*, GROUP_*, OTHER_*


def permits(uid: int, gids, right: str, type_name: str, rules, obj=None) -> bool:
    """oned's decision: the oneadmin group may do anything; then the object's permission bits (owner,
    group, others); then the ACL rules ``(user, resource, rights)``. *obj* is ``(oid, owner uid, owner
    gid, nine permission bits or None, cluster ids)``; None asks for CREATE."""
    if uid == ONEADMIN or ONEADMIN in gids:
        return True
    oid, ouid, ogid, perms, clusters = obj if obj is not None else (-1, -1, -1, None, ())
    bit = PERMISSION_BITS.get(right)
    by_bits = perms is not None and bit is not None
    if by_bits and ((ouid == uid and perms[bit]) or (ogid in gids and perms[3 + bit]) or perms[6 + bit]):
        return True
    type_bit, right_bit = TYPES[type_name], RIGHTS[right]
    return any(
        rights & right_bit
        and user_matches(user, uid, gids)
        and resource_matches(resource, type_bit, oid, ogid, clusters)
        for user, resource, rights in rules
    )

"""one.user.*, one.userpool.*, one.group.*, one.grouppool.*, one.acl.*"""

from __future__ import annotations

import secrets

from one import acl

from .. import names, records
from ..auth import stored_password
from ..cloud import Call
from ..conf import auth_conf_flag, max_token_time
from ..errors import ACTION, INTERNAL, NO_EXISTS, XML_RPC_API, Fault, OneError, not_authorized
from ..registry import method
from . import common
from .quotas import group_quotas, user_quotas

USERS_GID = 1
FIRST_GROUP_ID = 100
MAX_TOKENS = 10  # login tokens a user may hold (LoginTokenPool::MAX_TOKENS)
INVALID_PASS_CHARS = " \t\n\v\f\r"  # User::INVALID_PASS_CHARS: an x509 DN holds its spaces escaped (one.x509)


def new_user(call_or_db, uid: int, name: str, password: str, driver: str, gids: list[int]) -> dict:
    return {
        "ID": uid,
        "NAME": name,
        "GID": gids[0],
        "GROUPS": sorted(set(gids)),
        "PASSWORD": stored_password(driver, password),
        "AUTH_DRIVER": driver,
        "ENABLED": 1,
        "TEMPLATE": [("TOKEN_PASSWORD", secrets.token_hex(32))],
        "LOGIN_TOKENS": [],
    }


def _store_user(call: Call, u: dict) -> None:
    # the store's uid column is the user's own id, so pool filters work alike for every kind
    call.db.put("user", {**u, "UID": u["ID"]})


def _add_member(call: Call, gid: int, uid: int) -> None:
    g = call.get("group", gid)
    if uid not in g["USERS"]:
        g["USERS"] = sorted(g["USERS"] + [uid])
        call.db.put("group", g)


def _drop_member(call: Call, gid: int, uid: int) -> None:
    g = call.db.get("group", gid)
    if g and uid in g["USERS"]:
        g["USERS"] = [u for u in g["USERS"] if u != uid]
        g["ADMINS"] = [u for u in g["ADMINS"] if u != uid]
        call.db.put("group", g)


def _user(call: Call, oid: int) -> dict:
    return call.get("user", call.uid if oid == -1 else oid)


def _manage(call: Call, u: dict, op: str = "MANAGE") -> None:
    if u["ID"] != call.uid or op == "ADMIN":
        call.authorize("user", u, op)


def _ints(values: list) -> list[int]:
    """An array's items as oned reads them (xmlrpc_c::value_int): anything but an <int> stops the call."""
    if any(type(v) is not int for v in values):
        raise Fault(
            -500,
            "Unexpected error executing code for particular method, detected by Xmlrpc-c method registry code.  "
            "Method did not fail; rather, it did not complete at all.  Not integer type.  See type() method",
        )
    return list(values)


@method("one.user.allocate", str, str, str, list, required=2)
def user_allocate(call: Call, name: str, password: str, driver: str = "", groups: list = ()) -> int:
    gids = _ints(groups) or [USERS_GID]
    for gid in gids:
        call.get("group", gid)
    call.authorize_create("user")
    # the driver's PASSWORD_REQUIRED (YES when unset: every driver but ldap), before the name
    if auth_conf_flag(driver, "PASSWORD_REQUIRED", True) and (error := password_error(password)):
        raise OneError(INTERNAL, error + ".")
    driver = driver or "core"
    error = names.name_error(name, names.USER_FORBIDDEN)
    if error:
        raise OneError(INTERNAL, error + ".")  # UserPool ends these with a full stop
    call.check_name_free("user", name, None, "USER")
    uid = call.db.next_id("user", 2)
    u = new_user(call, uid, name, password, driver, gids)
    _store_user(call, u)
    for gid in gids:
        _add_member(call, gid, uid)
    return uid


@method("one.user.delete", int)
def user_delete(call: Call, oid: int) -> int:
    u = call.get("user", oid)
    call.authorize("user", u, "ADMIN")
    if oid in (0, 1):
        raise OneError(ACTION, f"Cannot delete user. {u['NAME']} cannot be deleted.")
    for gid in u["GROUPS"]:
        _drop_member(call, gid, oid)
    call.db.delete("user", oid)
    call.cloud.sessions.drop(oid)
    for _rid, user, _res, _rights, _zone in call.db.acl_rules():
        if user == acl.INDIVIDUAL | oid:
            call.db.acl_delete(_rid)
    return oid


@method("one.user.info", int, bool, required=1)
def user_info(call: Call, oid: int, decrypt: bool = False) -> str:
    u = _user(call, oid)
    if u["ID"] != call.uid:
        call.authorize("user", u, "USE")
    return records.user(u, call.gname(u["GID"]), user_quotas(call, u["ID"]))


@method("one.userpool.info")
def userpool_info(call: Call) -> str:
    items = []
    for u in call.db.all("user"):
        if call.is_admin or u["ID"] == call.uid or call.can("user", u, "USE"):
            items.append(records.user(u, call.gname(u["GID"]), user_quotas(call, u["ID"]), pool=True))
    return records.user_pool(items)


@method("one.user.passwd", int, str)
def user_passwd(call: Call, oid: int, password: str) -> int:
    """UserChangePassword: users of a driver whose PASSWORD_CHANGE is not YES (x509, public, the server
    accounts) cannot change their own password; an admin can change anyone's."""
    u = _user(call, oid)
    _manage(call, u)
    if not auth_conf_flag(u["AUTH_DRIVER"], "PASSWORD_CHANGE", False) and not call.is_admin:
        raise OneError(ACTION, f"Password for driver {u['AUTH_DRIVER']} cannot be changed.")
    _set_password(call, u, password)
    _store_user(call, u)
    return u["ID"]


def password_error(password: str) -> str | None:
    """Why oned refuses *password* for any driver (User::pass_is_valid), None when it takes it."""
    if not password:
        return "Invalid password, it cannot be empty"
    bad = next((c for c in password if c in INVALID_PASS_CHARS), None)
    return None if bad is None else f"Invalid password, character '{bad}' is not allowed"


def _set_password(call: Call, u: dict, password: str) -> None:
    """User::set_password: a valid new password ends the cached session and every login token."""
    if error := password_error(password):
        raise OneError(ACTION, error)
    u["PASSWORD"] = stored_password(u["AUTH_DRIVER"], password)
    u["LOGIN_TOKENS"] = []
    call.cloud.sessions.drop(u["ID"])


@method("one.user.chauth", int, str, str)
def user_chauth(call: Call, oid: int, driver: str, password: str) -> int:
    u = _user(call, oid)
    call.authorize("user", u, "ADMIN")
    u["AUTH_DRIVER"] = driver or u["AUTH_DRIVER"]
    call.cloud.sessions.drop(u["ID"])  # User::set_auth_driver, which stands when the password is refused
    if password:
        _set_password(call, u, password)  # refused: *u*, a copy, is not stored; oned puts the old driver back
    _store_user(call, u)
    return u["ID"]


@method("one.user.enable", int, bool)
def user_enable(call: Call, oid: int, enable: bool) -> int:
    if oid < 0:  # oned authorizes ADMIN on users in general, then finds no user -1
        if not call.is_admin:
            raise not_authorized(call.uid, "ADMIN", "USER")
        raise OneError(NO_EXISTS, "Error getting user Pool.")
    u = call.get("user", oid)
    call.authorize("user", u, "ADMIN")
    if oid == 0:
        raise OneError(ACTION, "Cannot enable/disable oneadmin user")
    if u["ENABLED"] != int(enable):
        u["ENABLED"] = int(enable)
        if not enable:  # User::disable drops its session and login tokens
            u["LOGIN_TOKENS"] = []
            call.cloud.sessions.drop(oid)
        _store_user(call, u)
    return oid


@method("one.user.update", int, str, int, required=2)
def user_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    if oid < 0:  # oned does not read -1 as "self" here
        raise not_authorized(call.uid, "MANAGE", "USER")
    u = call.get("user", oid)
    _manage(call, u)
    # a replace keeps nothing of the old template, TOKEN_PASSWORD included (set3's after_replace)
    new = common.update_template(u["TEMPLATE"], text, mode, "Cannot update template. ", INTERNAL)
    u["TEMPLATE"] = common.one_per_name(new)
    _store_user(call, u)
    return oid


@method("one.user.chgrp", int, int)
def user_chgrp(call: Call, oid: int, gid: int) -> int:
    u = call.get("user", oid)
    g = call.get("group", gid)
    call.authorize("user", u, "MANAGE")
    if not call.is_admin and gid not in call.gids:
        call.authorize("group", g, "MANAGE")
    old = u["GID"]
    if old != gid:
        _drop_member(call, old, oid)
        u["GROUPS"] = sorted((set(u["GROUPS"]) - {old}) | {gid})
        u["GID"] = gid
        _store_user(call, u)
        _add_member(call, gid, oid)
    return oid


@method("one.user.addgroup", int, int)
def user_addgroup(call: Call, oid: int, gid: int) -> int:
    u = call.get("user", oid)
    g = call.get("group", gid)
    call.authorize("user", u, "MANAGE")
    call.authorize("group", g, "MANAGE")
    if gid in u["GROUPS"]:
        raise OneError(ACTION, "User is already in this group")
    u["GROUPS"] = sorted(u["GROUPS"] + [gid])
    _store_user(call, u)
    _add_member(call, gid, oid)
    return oid


@method("one.user.delgroup", int, int)
def user_delgroup(call: Call, oid: int, gid: int) -> int:
    u = call.get("user", oid)
    g = call.get("group", gid)
    call.authorize("user", u, "MANAGE")
    call.authorize("group", g, "MANAGE")
    if gid == u["GID"]:
        raise OneError(ACTION, "Cannot remove user from the primary group")
    if gid not in u["GROUPS"]:
        raise OneError(ACTION, "User is not part of this group")
    u["GROUPS"] = [x for x in u["GROUPS"] if x != gid]
    _store_user(call, u)
    _drop_member(call, gid, oid)
    return oid


@method("one.user.login", str, str, int, int, required=3)
def user_login(call: Call, name: str, token: str, valid: int, egid: int = -1) -> str:
    """UserLogin: *token* (a new random one when empty) becomes a login token of user *name* for
    *valid* seconds (-1: for ever), acting in group *egid* (-1: all its groups); *valid* 0 revokes
    *token*, or all the user's tokens when it is empty. Tokens are checked before any session
    (auth.py), and a login adds one without touching the others."""
    found = call.db.by_name("user", name)
    if not found:
        raise OneError(NO_EXISTS, "Error getting user Pool.")
    u = found[0]
    _manage(call, u)
    valid = token_validity(valid, max_token_time(u["AUTH_DRIVER"]))
    tokens = u["LOGIN_TOKENS"]
    if valid == 0:
        if token and not any(t[0] == token for t in tokens):
            raise OneError(XML_RPC_API, f"Could not find token: {token}")
        u["LOGIN_TOKENS"] = [t for t in tokens if token and t[0] != token]
    elif valid > 0 or valid == -1:
        if egid != -1 and not call.is_admin and (egid not in u["GROUPS"] or egid not in call.gids):
            raise OneError(XML_RPC_API, "EGID is not in user group list")
        if egid == -1 and set(u["GROUPS"]) != call.gids:
            raise OneError(XML_RPC_API, "Cannot create a full token with a specific group token")
        now = call.cloud.now()
        tokens = [t for t in tokens if t[1] == -1 or now <= t[1]]  # expired ones go when a token is made
        if len(tokens) >= MAX_TOKENS:
            raise OneError(XML_RPC_API, "Max number of tokens limit reached.")
        token = token or secrets.token_hex(32)
        if all(t[0] != token for t in tokens):  # one already there keeps its expiry and group (std::map::insert)
            tokens.append([token, now + valid if valid > 0 else -1, egid])
        u["LOGIN_TOKENS"] = tokens
    else:
        raise OneError(XML_RPC_API, "Wrong valid period for token")
    _store_user(call, u)
    return token


def token_validity(valid: int, max_time: int) -> int:
    """The seconds a token is made for: *valid*, capped by the driver's MAX_TOKEN_TIME when that is
    positive (a token for ever too). onelite's oned.conf, as the captured oned's, caps ldap's tokens
    (86400 s) and no other driver's, and disables tokens (0) for none."""
    return max_time if max_time > 0 and (valid > max_time or valid == -1) else valid


# ---------------------------------------------------------------- groups


def vdc_rules(gid: int) -> list[tuple[int, int, int, int]]:
    """The rules group.allocate adds for the default VDC: no CREATE right among them."""
    who, zone = acl.GROUP | gid, acl.INDIVIDUAL | 0
    return [
        (who, acl.TYPES["HOST"] | acl.ALL, acl.RIGHTS["MANAGE"], zone),
        (who, acl.TYPES["NET"] | acl.ALL, acl.RIGHTS["USE"], zone),
        (who, acl.TYPES["DATASTORE"] | acl.ALL, acl.RIGHTS["USE"], zone),
    ]


@method("one.group.allocate", str)
def group_allocate(call: Call, name: str) -> int:
    call.authorize_create("group")
    common.check_name(name)
    call.check_name_free("group", name, None, "GROUP")
    gid = call.db.next_id("group", FIRST_GROUP_ID)
    call.db.put("group", {"ID": gid, "NAME": name, "UID": 0, "GID": gid, "TEMPLATE": [], "USERS": [], "ADMINS": []})
    for rule in vdc_rules(gid):
        call.db.acl_add(*rule)
    call._rules = None
    return gid


@method("one.group.delete", int)
def group_delete(call: Call, oid: int) -> int:
    g = call.get("group", oid)
    call.authorize("group", g, "ADMIN")
    if oid < FIRST_GROUP_ID:
        raise OneError(ACTION, "Cannot delete group. System Groups (ID < 100) cannot be deleted.")
    if g["USERS"]:
        raise OneError(ACTION, f"Cannot delete group. Group {oid} is not empty.")
    call.db.delete("group", oid)
    for rid, user, res, _rights, _zone in call.db.acl_rules():
        if user == acl.GROUP | oid or (res & acl.GROUP and res & acl.ID_MASK == oid):
            call.db.acl_delete(rid)
    call._rules = None
    return oid


@method("one.group.info", int, bool, required=1)
def group_info(call: Call, oid: int, decrypt: bool = False) -> str:
    g = call.get("group", call.user["GID"] if oid == -1 else oid)
    if g["ID"] not in call.gids:
        call.authorize("group", g, "USE")
    return records.group(g, group_quotas(call, g["ID"]))


@method("one.grouppool.info")
def grouppool_info(call: Call) -> str:
    items = [
        records.group(g, group_quotas(call, g["ID"]), pool=True)
        for g in call.db.all("group")
        if call.is_admin or g["ID"] in call.gids or call.can("group", g, "USE")
    ]
    return records.group_pool(items)


# ---------------------------------------------------------------- ACL rules


@method("one.acl.addrule", str, str, str, str, required=3)
def acl_addrule(call: Call, user: str, resource: str, rights: str, zone: str = "") -> int:
    if not call.is_admin:
        raise not_authorized(call.uid, "MANAGE", "ACL")
    try:
        rule = (
            acl.parse_hex(user),
            acl.parse_hex(resource),
            acl.parse_hex(rights),
            acl.parse_hex(zone) if zone else acl.INDIVIDUAL | 0,
        )
    except ValueError:
        rule = tuple(_lenient_hex(x) for x in (user, resource, rights)) + (
            _lenient_hex(zone) if zone else acl.INDIVIDUAL,
        )
    try:
        acl.validate(*rule)
    except acl.MalformedRule as e:
        raise OneError(INTERNAL, str(e)) from None
    existing = call.db.acl_find(*rule)
    if existing is not None:
        raise OneError(INTERNAL, f"Rule {acl.to_string(*rule)} already exists")
    call._rules = None
    return call.db.acl_add(*rule)


def _lenient_hex(text: str) -> int:
    """strtoull-like: the leading hex digits, 0 when there are none."""
    t = text.strip().lower()
    t = t[2:] if t.startswith("0x") else t
    digits = ""
    for c in t:
        if c not in "0123456789abcdef":
            break
        digits += c
    return int(digits, 16) if digits else 0


@method("one.acl.delrule", int)
def acl_delrule(call: Call, rid: int) -> int:
    if not call.is_admin:
        raise not_authorized(call.uid, "MANAGE", "ACL")
    if not call.db.acl_delete(rid):
        raise OneError(INTERNAL, f"Rule {rid} does not exist")
    call._rules = None
    return rid


@method("one.acl.info")
def acl_info(call: Call) -> str:
    rules = call.db.acl_rules()
    return "<ACL_POOL>" + "".join(records.acl_rule(*r, acl.to_string(*r[1:])) for r in rules) + "</ACL_POOL>"

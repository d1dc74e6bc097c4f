"""What the opennebula_ec2 modules share: the connection to oned (pyone), ACL rule strings, quoting
values into OpenNebula templates, and x509 users' DNs as OpenNebula keeps them."""

from __future__ import annotations

import os
import re

try:
    import pyone
    import pyone.acl

    HAS_PYONE = True
except ImportError:  # reported by connect()
    HAS_PYONE = False

# characters XML 1.0 cannot carry (oned keeps templates as XML)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def quote(value) -> str:
    """The quoted literal a real oned reads back as exactly *value*: only ``\\"`` is an escape in
    oned's template language (a backslash is kept as it is). ValueError for the values oned cannot
    store exactly. The same rule as econe's writer (app/one/template.py, where it is argued and
    tested against what oned stored); tests/unit/test_template_oned.py holds this copy to it."""
    text = str(value)
    if text.endswith("\\"):
        raise ValueError("it ends with a backslash")
    if "]]>" in text:
        raise ValueError("it contains ]]>")
    if "\r" in text:
        raise ValueError("it contains a carriage return")
    bad = _NOT_XML.search(text)
    if bad:
        raise ValueError(f"it contains the character U+{ord(bad.group()):04X}")
    return '"' + text.replace('"', '\\"') + '"'


_WHITESPACE = re.compile(r"[ \t\n\v\f\r]")  # Ruby's \s


def escape_dn(dn: str) -> str:
    """*dn* as an x509 user's password holds it, each whitespace character a backslash and its code in
    lower-case hex (``CN=Jo Doe`` -> ``CN=Jo\\20Doe``): OpenNebula's X509Auth.escape_dn. The same rule as
    app/one/x509.py (econe's side, which the modules cannot import); tests/test_ansible_x509_users.py
    holds this copy to it."""
    return _WHITESPACE.sub(lambda m: "\\" + format(ord(m.group()), "x"), dn)


CONNECTION_ARGS = dict(
    api_url=dict(type="str", aliases=["one_url"]),
    api_username=dict(type="str"),
    api_password=dict(type="str", no_log=True),
)


def connect(module):
    """A pyone client from the module's api_* options, ONE_XMLRPC/ONE_AUTH, or the defaults."""
    if not HAS_PYONE:
        module.fail_json(msg="the pyone Python package is required on the host running this module")
    url = module.params.get("api_url") or os.environ.get("ONE_XMLRPC") or "http://localhost:2633/RPC2"
    user, password = module.params.get("api_username"), module.params.get("api_password")
    if not (user and password):
        path = os.environ.get("ONE_AUTH", os.path.expanduser("~/.one/one_auth"))
        try:
            with open(path) as f:
                user, password = f.read().strip().partition(":")[::2]  # user:password
        except OSError as e:
            module.fail_json(
                msg=f"no credentials for oned: give api_username/api_password or a readable ONE_AUTH "
                f"({path}: {e.strerror})"
            )
    one = pyone.OneServer(url, session=f"{user}:{password}", timeout=30)
    try:
        one.system.version()
        one.user.info(-1)
    except pyone.OneAuthenticationException:
        module.fail_json(msg=f"oned at {url} refused the credentials of {user}")
    except Exception as e:  # connection refused, timeouts, TLS
        module.fail_json(msg=f"cannot reach oned at {url}: {e}")
    return one


def rule_hex(rule: str) -> tuple[str, str, str, str]:
    """The hex strings oned takes for an ACL rule like ``@100 HOST/#0 USE``."""
    parts = pyone.acl.OneAcl().parse_rule(rule)
    if len(parts) == 3:
        parts = (*parts, "0x100000000")  # zone #0
    return tuple(p if p.startswith("0x") else "0x" + p for p in parts)


def acl_rules(one) -> list[tuple[int, str, str, str, str]]:
    """(id, user, resource, rights, zone) hex strings as oned lists them, lower-case, without 0x."""
    pool = one.acl.info()
    rules = getattr(pool, "ACL", [])
    return [(a.ID, a.USER.lower(), a.RESOURCE.lower(), a.RIGHTS.lower(), a.ZONE.lower()) for a in rules]


def find_rule(one, rule: str):
    wanted = tuple(p[2:].lstrip("0").lower() or "0" for p in rule_hex(rule))
    for rid, *values in acl_rules(one):
        if tuple(v.lstrip("0") or "0" for v in values) == wanted:
            return rid
    return None


def own_id(one) -> int:
    """The id of the account the role runs as."""
    return one.user.info(-1).ID


def find_by_name(pool, name: str, owners=None):
    """The object named *name*; with *owners* (user ids), only one they own, for oned's names are unique
    per owner only: a user's object of that name (a reservation named like the elastic-IP network) is
    not the role's. A reservation (PARENT_NETWORK_ID) is an address a user holds, never the role's network."""
    for item in pool or []:
        if item.NAME != name or (owners is not None and item.UID not in owners):
            continue
        if str(getattr(item, "PARENT_NETWORK_ID", None) or "").strip() not in ("", "-1"):
            continue
        return item
    return None

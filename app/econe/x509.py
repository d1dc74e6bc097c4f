"""x509 authentication: the user whose client certificate the TLS proxy verified.

Pure functions. The proxy verifies the certificate and forwards its subject DN (lighttpd: the
``remote_user`` of its Forwarded element); econe takes it from a trusted proxy only (``edge.client_of``)
and acts for the OpenNebula user of driver x509 whose password lists that DN. A missing, unknown,
shared or disabled DN gets the one AuthFailure answer; only the log tells which.
"""

from __future__ import annotations

import re

from one.x509 import escape_dn

from .errors import auth_failure

# OpenSSL's one-line print of a name (X509_NAME_print_ex with XN_FLAG_ONELINE, as lighttpd's
# SSL_CLIENT_S_DN is): "C = ES, O = Example, CN = Jo Doe", RFC 2253 escapes, a value with special
# characters in double quotes, ", " between names and " + " inside a multi-valued one
_ONELINE_PART = re.compile(rb'([A-Za-z][A-Za-z0-9.-]*) = ("(?:[^"\\]|\\.)*"|(?:[^,+"\\]|\\.)*)(, | \+ |\Z)')
ONELINE_MAX = 255  # lighttpd 1.4.69 cuts SSL_CLIENT_S_DN at this many bytes
_ESCAPE = re.compile(rb"\\([0-9A-Fa-f]{2}|.)", re.S)


def _unescaped(value: bytes) -> bytes:
    if value[:1] == b'"':
        value = value[1:-1]
    return _ESCAPE.sub(lambda m: bytes.fromhex(m[1].decode()) if len(m[1]) == 2 else m[1], value)


def _oneline(value: bytes) -> str:
    """A value as OpenSSL 3's X509_NAME_oneline writes it: "/" and "+" after a backslash, bytes outside
    printable ASCII as \\xHH."""
    value = re.sub(rb"([/+])", rb"\\\1", value)
    return "".join(chr(b) if 0x20 <= b <= 0x7E else f"\\x{b:02X}" for b in value)


def opennebula_dn(seen: str) -> str | None:
    """The DN a proxy forwarded in OpenSSL's one-line print (lighttpd's SSL_CLIENT_S_DN), as an x509
    user's password holds it: OpenSSL's legacy one-line form (``/C=ES/O=Example/CN=Jo Doe``,
    X509_NAME_oneline, which OpenNebula reads certificates with), whitespace escaped
    (``one.x509.escape_dn``); None when it is no such print. Header text arrives as latin-1 (PEP 3333):
    its bytes are what the proxy sent."""
    raw = seen.encode("latin-1")
    if len(raw) >= ONELINE_MAX:  # perhaps cut short, and then perhaps the DN of someone else
        return None
    parts, pos, joint = [], 0, "/"
    while joint:
        m = _ONELINE_PART.match(raw, pos)
        if m is None:
            return None
        parts.append(f"{joint}{m[1].decode()}={_oneline(_unescaped(m[2]))}")
        # "+" joins the names of a multi-valued RDN; nothing follows the last
        pos, joint = m.end(), {b", ": "/", b" + ": "+"}.get(m[3], "")
    return escape_dn("".join(parts)) if pos == len(raw) else None


def user_of(seen: str | None, users_of) -> str:
    """The name of the x509 user with the DN *seen*; *users_of(dn)* lists (name, enabled) of the x509
    users whose password lists *dn*."""
    if seen is None:
        raise auth_failure("no client certificate DN from a trusted proxy", "x509")
    dn = opennebula_dn(seen)
    if dn is None:
        raise auth_failure(f"the trusted proxy forwarded a DN econe cannot read: {seen!r}", "x509")
    users = users_of(dn)
    if not users:
        raise auth_failure(f"no x509 user has the DN {dn}", "x509")  # printable: escaped as OpenNebula escapes it
    if len(users) > 1:
        raise auth_failure(f"x509 users {', '.join(sorted(repr(n) for n, _ in users))} share the DN {dn}", "x509")
    name, enabled = users[0]
    if not enabled:
        raise auth_failure(f"x509 user {name!r} is disabled", "x509")
    return name

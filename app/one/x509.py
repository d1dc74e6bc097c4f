"""x509 users' passwords as OpenNebula keeps them.

An x509 user's PASSWORD is the subject DN of its certificate in OpenSSL's legacy one-line form
(``/C=ES/O=Example/CN=Jo Doe``) with each whitespace character written as a backslash and its code
in lower-case hex (``/C=ES/O=Example/CN=Jo\\20Doe``), and several such DNs are joined with ``|``:
``OpenNebula::X509Auth.escape_dn`` and the x509 driver's ``pass.split('|')`` (6.10.5,
src/authm_mad/remotes/x509/x509_auth.rb). oned refuses whitespace in any password.
"""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"[ \t\n\v\f\r]")  # Ruby's \s


def escape_dn(dn: str) -> str:
    """*dn* as an x509 user's password holds it: ``CN=Jo Doe`` -> ``CN=Jo\\20Doe``."""
    return _WHITESPACE.sub(lambda m: "\\" + format(ord(m.group()), "x"), dn)


def dns_of(password: str) -> list[str]:
    """The DNs an x509 user's password lists."""
    return password.split("|")

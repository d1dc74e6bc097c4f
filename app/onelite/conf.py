"""onelite's oned.conf (data/oned.conf): what one.system.config reports and what the server applies."""

from __future__ import annotations

from functools import cache
from importlib import resources

from one import template as tpl


@cache
def oned_conf() -> tpl.Template:
    return tpl.parse(resources.files("onelite").joinpath("data/oned.conf").read_text())


def session_expiration_time() -> int:
    """Seconds oned keeps a user's authenticated session cached."""
    return int(tpl.get(oned_conf(), "SESSION_EXPIRATION_TIME"))


def external_auth_drivers() -> frozenset[str]:
    """The drivers AUTH_MAD runs (its AUTHN list); it refuses any other at once."""
    return frozenset(tpl.vget(tpl.get(oned_conf(), "AUTH_MAD"), "AUTHN", "").split(","))


def max_token_time(driver: str) -> int:
    """AUTH_MAD_CONF's MAX_TOKEN_TIME of *driver*: the longest a login token may live, -1 when not capped."""
    for conf in tpl.get_all(oned_conf(), "AUTH_MAD_CONF"):
        if tpl.vget(conf, "NAME") == driver:
            return int(tpl.vget(conf, "MAX_TOKEN_TIME", "-1"))
    return -1

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


def _auth_mad_conf(driver: str) -> tpl.Vector | None:
    """*driver*'s AUTH_MAD_CONF, None when oned.conf has none."""
    return next((c for c in tpl.get_all(oned_conf(), "AUTH_MAD_CONF") if tpl.vget(c, "NAME") == driver), None)


def max_token_time(driver: str) -> int:
    """AUTH_MAD_CONF's MAX_TOKEN_TIME of *driver*: the longest a login token may live, -1 when not capped."""
    conf = _auth_mad_conf(driver)
    return int(tpl.vget(conf, "MAX_TOKEN_TIME", "-1")) if conf is not None else -1


def auth_conf_flag(driver: str, name: str, default: bool) -> bool:
    """AUTH_MAD_CONF's YES/NO *name* of *driver* as oned reads it (VectorAttribute::vector_value): any
    value but YES (in any case) is NO; *default* when the driver or the value is missing or empty."""
    conf = _auth_mad_conf(driver)
    value = tpl.vget(conf, name, "") if conf is not None else ""
    return value.upper() == "YES" if value else default

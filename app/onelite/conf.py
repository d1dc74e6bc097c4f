"""onelite's oned.conf (data/oned.conf): what one.system.config reports and what the server applies."""

from __future__ import annotations

from functools import cache
from importlib import resources

from one import template as tpl


@cache
def oned_conf() -> tpl.Template:
    return tpl.parse(resources.files("onelite").joinpath("data/oned.conf").read_text())

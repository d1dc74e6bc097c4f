"""The one XML writer for onelite's records, in oned's own style.

oned writes top-level numbers bare and names/template values CDATA-wrapped, and an
empty element as ``<X/>``. Templates are written with attributes sorted by name
(oned keeps them in a sorted multimap), vectors likewise.
"""

from __future__ import annotations

from one.template import Template


def esc(text) -> str:
    s = str(text)
    if "&" in s or "<" in s or ">" in s:
        s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s


def cdata_text(text) -> str:
    return "<![CDATA[" + str(text).replace("]]>", "]]]]><![CDATA[>") + "]]>"


def el(tag: str, value) -> str:
    """``<TAG>value</TAG>`` with the value escaped; ``<TAG/>`` when empty."""
    s = esc(value)
    return f"<{tag}>{s}</{tag}>" if s != "" else f"<{tag}/>"


def cd(tag: str, value) -> str:
    """``<TAG><![CDATA[value]]></TAG>``."""
    return f"<{tag}>{cdata_text(value)}</{tag}>"


def raw(tag: str, inner: str) -> str:
    """An element around already-written XML; ``<TAG/>`` when empty."""
    return f"<{tag}>{inner}</{tag}>" if inner else f"<{tag}/>"


def ids(tag: str, values) -> str:
    return raw(tag, "".join(f"<ID>{int(v)}</ID>" for v in values))


def template_body(template: Template, sort: bool = True) -> str:
    items = sorted(template, key=lambda kv: kv[0]) if sort else template
    out = []
    for name, value in items:
        if isinstance(value, str):
            out.append(cd(name, value))
        else:
            inner = sorted(value, key=lambda kv: kv[0]) if sort else value
            out.append(raw(name, "".join(cd(k, v) for k, v in inner)))
    return "".join(out)


def template(tag: str, template: Template, sort: bool = True) -> str:
    return raw(tag, template_body(template, sort))


PERM_TAGS = (
    "OWNER_U",
    "OWNER_M",
    "OWNER_A",
    "GROUP_U",
    "GROUP_M",
    "GROUP_A",
    "OTHER_U",
    "OTHER_M",
    "OTHER_A",
)


def permissions(perms) -> str:
    return "<PERMISSIONS>" + "".join(f"<{t}>{p}</{t}>" for t, p in zip(PERM_TAGS, perms)) + "</PERMISSIONS>"

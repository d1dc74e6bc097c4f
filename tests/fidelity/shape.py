"""Structural comparison of XML-RPC answers: element paths in order, value types; not values."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?\d+\.\d+$")


def value_type(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        return "empty"
    if _INT.match(text):
        return "int"
    if _FLOAT.match(text):
        return "float"
    return "str"


def record_shape(xml: str) -> list[tuple[str, str]]:
    """[(path, value type)] of every element, in document order."""
    out = []

    def walk(el, path):
        p = f"{path}/{el.tag}"
        if len(el):
            out.append((p, "node"))
            for child in el:
                walk(child, p)
        else:
            out.append((p, value_type(el.text)))

    walk(ET.fromstring(xml), "")
    return out


def response_shape(raw: bytes) -> dict:
    """The shape of one methodResponse: a fault's code, or each value's XML-RPC type and record shape."""
    root = ET.fromstring(raw)
    fault = root.find("fault")
    if fault is not None:
        code = fault.find(".//member[name='faultCode']/value/*")
        return {"fault": int(code.text)}
    values = root.findall("./params/param/value/array/data/value")
    shape = []
    for v in values:
        typed = v[0] if len(v) else None
        tag = typed.tag if typed is not None else "string"
        text = typed.text if typed is not None else v.text
        if tag == "string" and text and text.lstrip().startswith("<"):
            shape.append(("xml", record_shape(text)))
        elif tag == "string":
            shape.append(("string", value_type(text)))
        else:
            shape.append((tag, text if tag == "boolean" else value_type(text)))
    return {"values": shape}


def diff(expected: dict, actual: dict, limit: int = 12) -> list[str]:
    """Readable differences between two response shapes ([] when they match)."""
    if expected.keys() != actual.keys():
        return [f"expected {list(expected)} got {list(actual)}"]
    if "fault" in expected:
        return [] if expected == actual else [f"fault {expected['fault']} != {actual['fault']}"]
    e, a = expected["values"], actual["values"]
    if len(e) != len(a):
        return [f"{len(e)} values expected, got {len(a)}: {a[:3]}"]
    problems = []
    for i, (ev, av) in enumerate(zip(e, a)):
        if ev[0] != av[0]:
            problems.append(f"value {i}: {ev[0]} != {av[0]} ({av})")
        elif ev[0] == "xml":
            problems += _xml_diff(ev[1], av[1], limit)
        elif ev != av:
            problems.append(f"value {i}: {ev} != {av}")
    return problems[:limit]


def _xml_diff(e, a, limit):
    import difflib

    el = [f"{p} {t}" for p, t in e]
    al = [f"{p} {t}" for p, t in a]
    out = []
    for line in difflib.unified_diff(el, al, "oned", "onelite", n=0, lineterm=""):
        if line.startswith(("---", "+++", "@@")):
            continue
        out.append(line)
        if len(out) >= limit:
            break
    return out

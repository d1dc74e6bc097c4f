"""What an onelite answer must share with the answer a real oned gave to the same call.

Everything is compared by value — success flags, error codes, ids, names, states, permissions, the
order of elements — except the values listed in GENERATED, which oned (or its dummy drivers, or the
capture machine) made up: those are compared by type only. Element paths carry the ``ID`` of the
record they belong to (``/VM_POOL/VM[5005]/STATE``) so that a rule can name one record.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET

# (path pattern, why the value cannot be expected to repeat)
_TIMES = "STIME|ETIME|REGTIME|PSTIME|PETIME|RSTIME|RETIME|ESTIME|EETIME|LAST_MON_TIME|EXPIRATION_TIME"
GENERATED = [
    (rf"/({_TIMES})$", "a clock time"),
    (r"/VM\[\d+\]/LAST_POLL$", "the time of the dummy monitor's last VM sample"),
    (r"/USER\[[01]\]/PASSWORD$", "the bootstrap accounts' random passwords"),
    (r"/(TOKEN_PASSWORD|LOGIN_TOKEN/TOKEN)$", "a random token"),
    (r"/OS/UUID$", "a random UUID"),
    (r"/HISTORY/REQUEST_ID$", "oned's request counter"),
    (r"/HOST\[\d+\]/MONITORING(\[\d+\])?/", "the dummy monitor's samples"),
    (r"/DATASTORE\[\d+\]/(FREE_MB|TOTAL_MB|USED_MB)$", "the capture machine's disk"),
    (r"/DATASTORE\[\d+\]/TEMPLATE/SAFE_DIRS$", "the capture machine's oned.conf"),
]

# Set 1's image 0 is a file (PATH) in a dummy datastore: oned's dummy driver reports a made-up size,
# format and source, onelite copies the file and reports what it holds (README, "known differences").
# It is set 1's only image, so every disk and disk quota of set 1 is that image's.
_MADE_UP = "the dummy datastore driver's made-up image"
FILE_IMAGE = [
    (r"/IMAGE\[0\]/(SIZE|FORMAT|SOURCE|PATH)$", _MADE_UP),
    (r"/VM\[\d+\]/TEMPLATE/DISK/(SIZE|ORIGINAL_SIZE|DRIVER|FORMAT|SOURCE)$", _MADE_UP),
    (r"/(DATASTORE(\[\d+\])?/SIZE_USED|SYSTEM_DISK_SIZE_USED)$", _MADE_UP),
]

# Parts of an answer removed on both sides before comparing: oned's dummy monitor samples running
# VMs every few tens of seconds, onelite writes no VM monitoring.
VOLATILE = [r"/VM\[\d+\]/MONITORING(\[\d+\])?$"]

_INT = re.compile(r"^-?\d+$")
_FLOAT = re.compile(r"^-?\d+\.\d+$")
# oned prints uninitialised line and column numbers in template parse errors (see the captures)
_PARSE_POSITION = re.compile(r" at line -?\d+, columns -?\d+:-?\d+")


def value_type(text: str | None) -> str:
    text = (text or "").strip()
    if not text:
        return "empty"
    if _INT.match(text):
        return "int"
    if _FLOAT.match(text):
        return "float"
    return "str"


def values(raw: bytes) -> list[tuple[str, str, object]]:
    """The values of one methodResponse: ``(name, XML-RPC type, text or record element)``;
    a fault is one value named ``fault`` holding its code."""
    root = ET.fromstring(raw)
    fault = root.find("fault")
    if fault is not None:
        return [("fault", "int", fault.find(".//member[name='faultCode']/value/*").text)]
    out = []
    for i, v in enumerate(root.findall("./params/param/value/array/data/value")):
        typed = v[0] if len(v) else None
        tag = typed.tag if typed is not None else "string"
        text = (typed.text if typed is not None else v.text) or ""
        if tag == "string" and text.lstrip().startswith("<"):
            out.append((f"value[{i}]", "xml", ET.fromstring(text)))
        else:
            out.append((f"value[{i}]", tag, text))
    return out


def leaves(record: ET.Element, path: str = "", drop=()) -> list[tuple[str, str]]:
    """``(path, text)`` of every leaf element in document order; subtrees matching *drop* left out."""
    out = []

    def walk(el, parent):
        # a record: an ID beside other children (GROUPS, a list of IDs, is not one)
        oid = el.findtext("ID") if any(child.tag != "ID" for child in el) else None
        p = f"{parent}/{el.tag}" + (f"[{oid}]" if oid is not None else "")
        if any(re.search(d, p) for d in drop):
            return
        if len(el):
            for child in el:
                walk(child, p)
        else:
            out.append((p, el.text or ""))

    walk(record, path)
    return out


def _generated(path: str, rules) -> str | None:
    return next((why for pattern, why in rules if re.search(pattern, path)), None)


# Whether a time or a request id is set is not made up: one oned left unset (0, -1) must be unset
# in onelite too, and one it set must be set.
_SET_OR_NOT = re.compile(rf"/({_TIMES}|REQUEST_ID)$")


def _same(path: str, expected: str, actual: str, rules) -> bool:
    if _generated(path, rules):
        if _SET_OR_NOT.search(path) and (expected in ("0", "-1")) != (actual in ("0", "-1")):
            return False
        return value_type(expected) == value_type(actual)
    if "Parse error" in expected:
        return _PARSE_POSITION.sub("", expected) == _PARSE_POSITION.sub("", actual)
    return expected == actual


def differences(expected: bytes, actual: bytes, rules=(), limit: int = 12) -> list[str]:
    """Readable differences between oned's answer and onelite's ([] when they agree)."""
    rules = [*GENERATED, *rules]
    e, a = values(expected), values(actual)
    if [(n, t) for n, t, _ in e] != [(n, t) for n, t, _ in a]:
        return [f"values {[(n, t) for n, t, _ in e]} expected, got {[(n, t) for n, t, _ in a]}"]
    problems = []
    for (name, kind, ev), (_, _, av) in zip(e, a):
        if kind != "xml":
            if not _same(name, ev, av, rules):
                problems.append(f"{name}: oned {ev!r}, onelite {av!r}")
            continue
        el, al = leaves(ev, drop=VOLATILE), leaves(av, drop=VOLATILE)
        if [p for p, _ in el] != [p for p, _ in al]:
            problems += _structure(el, al, limit)
            continue
        problems += [f"{p}: oned {x!r}, onelite {y!r}" for (p, x), (_, y) in zip(el, al) if not _same(p, x, y, rules)]
    return problems[:limit]


def subset_differences(expected: bytes, actual: bytes, limit: int = 12) -> list[str]:
    """For answers onelite gives a part of (its oned.conf): each of its leaves, with its value,
    must appear in oned's answer, in the same order."""
    e, a = values(expected), values(actual)
    if [t for _, t, _ in e] != [t for _, t, _ in a]:
        return [f"value types {[t for _, t, _ in e]} expected, got {[t for _, t, _ in a]}"]
    problems = []
    for (_, kind, ev), (_, _, av) in zip(e, a):
        if kind != "xml":
            if ev != av:
                problems.append(f"oned {ev!r}, onelite {av!r}")
            continue
        remaining = iter(leaves(ev))
        for leaf in leaves(av):
            if leaf not in remaining:  # advances through oned's leaves: order is kept
                problems.append(f"{leaf[0]} = {leaf[1]!r} is not in oned's answer (at that place)")
                break
    return problems[:limit]


def _structure(el, al, limit):
    out = []
    for line in difflib.unified_diff([p for p, _ in el], [p for p, _ in al], "oned", "onelite", n=0, lineterm=""):
        if not line.startswith(("---", "+++", "@@")):
            out.append(line)
        if len(out) >= limit:
            break
    return out

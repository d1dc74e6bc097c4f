"""EC2's Filter.N: names checked against an action's own, values matched with EC2's wildcards."""

from __future__ import annotations

import fnmatch
import re

from ..errors import EC2Error, missing


def check_names(filters: list[dict], known) -> None:
    """Refuse a filter without a name, or with one the action does not have (``tag:KEY`` always is one)."""
    for f in filters:
        name = f.get("Name")
        if not name:
            raise missing("Filter.N.Name")
        if name not in known and not name.startswith("tag:"):
            raise EC2Error("InvalidParameterValue", f"The filter '{name}' is invalid")


def present(value: str | None) -> list[str]:
    """A filter's values of an optional member: an absent value matches no pattern, not even ``*``."""
    return [value] if value else []


def flag(value: bool) -> list[str]:
    """A boolean member as the filter value EC2 compares it with."""
    return ["true" if value else "false"]


def matcher(filters: list[dict], table: dict):
    """Whether an item (as described) matches every filter (their names checked by check_names): any
    of its values (``table[name](item)``), any pattern; ``tag:KEY`` matches the values of its tag KEY
    (its ``Tags``, or a network interface's ``TagSet``; an item without either matches none)."""
    tests = [(f["Name"], wildcards(f.get("Values", []))) for f in filters]

    def values(name: str, item: dict) -> list[str]:
        if name.startswith("tag:"):
            return [t["Value"] for t in item.get("Tags") or item.get("TagSet") or [] if t["Key"] == name[4:]]
        return table[name](item)

    return lambda item: all(any(map(test, values(name, item))) for name, test in tests)


def _fnmatch_syntax(pattern: str) -> str:
    """EC2's filter wildcards (``*``, ``?``, a backslash making the next character literal, nothing
    else special) in fnmatch's syntax, where ``[`` opens a class and a backslash is a character."""
    out = []
    for part in re.split(r"(\\.|[*?])", pattern, flags=re.DOTALL):
        if part in ("*", "?"):
            out.append(part)
        elif len(part) == 2 and part[0] == "\\":
            out.append(f"[{part[1]}]" if part[1] in "*?[" else part[1])
        else:
            out.append(part.replace("[", "[[]"))
    return "".join(out)


def wildcards(patterns: list[str]):
    """Whether a value matches any of these filter values. Compiled for this request only (fnmatch
    would cache 32,768 client patterns for the life of the server), with fnmatch's translation,
    which keeps a run of ``*`` from backtracking exponentially on a long value."""
    compiled = [re.compile(fnmatch.translate(_fnmatch_syntax(p))).match for p in patterns]
    return lambda value: any(match(value) is not None for match in compiled)

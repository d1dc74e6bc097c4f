"""OpenNebula's template language: parse, serialize, and quote values.

A template is a list of ``(NAME, value)`` pairs in source order; a value is a
string, or a vector: a list of ``(NAME, string)`` pairs. Names are upper-cased as
oned does. Repeated names are kept. This module is pure: no I/O, no oned.

The EC2 service quotes every value it puts into a template with :func:`quote`,
so a request value can never close the string and add an attribute.
"""

from __future__ import annotations

import re

Vector = list[tuple[str, str]]
Value = str | Vector
Template = list[tuple[str, Value]]

NAME_RE = re.compile(r"[A-Za-z0-9_]+")
_BARE_RE = re.compile(r"[^\s\"\[\],=#]+")


class TemplateSyntaxError(ValueError):
    """A template that oned's parser would refuse; the message reads like oned's."""


def quote(value: str) -> str:
    """The quoted literal of *value*: backslashes and double quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialize(template: Template) -> str:
    """Template text that :func:`parse` reads back to exactly *template*."""
    lines = []
    for name, value in template:
        if isinstance(value, str):
            lines.append(f"{name}={quote(value)}")
        else:
            inner = ",\n".join(f"  {k}={quote(v)}" for k, v in value)
            lines.append(f"{name}=[\n{inner} ]")
    return "\n".join(lines) + ("\n" if lines else "")


def parse(text: str) -> Template:
    """Parse template text; raises TemplateSyntaxError with oned's wording."""
    return _Parser(text).template()


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0

    # -- errors ------------------------------------------------------------
    def _where(self) -> str:
        line = self.s.count("\n", 0, self.i)
        col = self.i - (self.s.rfind("\n", 0, self.i) + 1)
        return f"at line {line}, columns {col}:{col + 1}"

    def _fail(self, expecting: str):
        if self.i >= len(self.s):
            found = "$end"
        else:
            found = {"=": "EQUAL", ",": "COMMA", "[": "OBRACKET", "]": "CBRACKET", '"': "STRING"}.get(
                self.s[self.i], "VARIABLE"
            )
        raise TemplateSyntaxError(
            f"Parse error: syntax error, unexpected {found}, expecting {expecting} {self._where()}"
        )

    # -- lexing helpers ----------------------------------------------------
    def _skip(self, newlines: bool = True):
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c == "#":
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end
            elif c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            else:
                break

    def _name(self, expecting: str = "VARIABLE") -> str:
        m = NAME_RE.match(self.s, self.i)
        if not m:
            self._fail(expecting)
        self.i = m.end()
        return m.group().upper()

    def _expect(self, char: str, token: str):
        if self.s[self.i : self.i + 1] != char:
            self._fail(token)
        self.i += 1

    def _string(self) -> str:
        out = []
        s, i, n = self.s, self.i + 1, len(self.s)
        while i < n:
            c = s[i]
            if c == "\\" and i + 1 < n and s[i + 1] in '"\\':
                out.append(s[i + 1])
                i += 2
            elif c == '"':
                self.i = i + 1
                return "".join(out)
            else:
                out.append(c)
                i += 1
        self.i = n
        raise TemplateSyntaxError(f"Parse error: unterminated string {self._where()}")

    def _scalar(self) -> str:
        if self.s[self.i : self.i + 1] == '"':
            return self._string()
        m = _BARE_RE.match(self.s, self.i)
        if not m:
            self._fail("STRING")
        self.i = m.end()
        return m.group()

    # -- grammar -----------------------------------------------------------
    def template(self) -> Template:
        out: Template = []
        while True:
            self._skip()
            if self.i >= len(self.s):
                return out
            name = self._name()
            self._skip(newlines=False)
            self._expect("=", "EQUAL")
            self._skip(newlines=False)
            if self.s[self.i : self.i + 1] == "[":
                self.i += 1
                out.append((name, self._vector()))
            else:
                out.append((name, self._scalar()))
            self._skip(newlines=False)
            if self.i < len(self.s) and self.s[self.i] != "\n":
                self._fail("NEWLINE")

    def _vector(self) -> Vector:
        out: Vector = []
        self._skip()
        if self.s[self.i : self.i + 1] == "]":
            self.i += 1
            return out
        while True:
            self._skip()
            name = self._name()
            self._skip()
            self._expect("=", "EQUAL")
            self._skip()
            out.append((name, self._scalar()))
            self._skip()
            c = self.s[self.i : self.i + 1]
            if c == ",":
                self.i += 1
                self._skip()
                if self.s[self.i : self.i + 1] == "]":  # trailing comma
                    self.i += 1
                    return out
            elif c == "]":
                self.i += 1
                return out
            else:
                self._fail("COMMA or CBRACKET")


# -- helpers on parsed templates ---------------------------------------------


def get(template: Template, name: str, default=None):
    """First value of *name*, or *default*."""
    for k, v in template:
        if k == name:
            return v
    return default


def get_all(template: Template, name: str) -> list[Value]:
    return [v for k, v in template if k == name]


def vget(vector: Vector, name: str, default=None):
    for k, v in vector:
        if k == name:
            return v
    return default


def vset(vector: Vector, name: str, value: str) -> Vector:
    """*vector* with *name* set to *value* (replacing every occurrence)."""
    return [(k, v) for k, v in vector if k != name] + [(name, value)]


def replace(template: Template, name: str, value: Value) -> Template:
    return [(k, v) for k, v in template if k != name] + [(name, value)]


def remove(template: Template, *names: str) -> Template:
    return [(k, v) for k, v in template if k not in names]


def merge(base: Template, extra: Template) -> Template:
    """oned's merge: every name in *extra* replaces all of that name in *base*."""
    names = {k for k, _ in extra}
    return [(k, v) for k, v in base if k not in names] + list(extra)

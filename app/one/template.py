"""OpenNebula's template language as oned 6.10.5 reads it, and the escaper for writing values.

A template is a list of ``(NAME, value)`` pairs in source order; a value is a string, or a vector:
a list of ``(NAME, string)`` pairs. Values are what oned stores, names are upper-cased as oned does.
This module is pure: no I/O, no oned.

The parser follows oned's flex lexer and bison grammar (``src/parsers/template_parser.l`` and
``template_syntax.y``) and is held to what a real oned stored for the texts in
``tests/fixtures/oned-6.10.5/template-quoting.json``. Its one escape is ``\\"``: a backslash before
anything else is kept, so ``\\\\`` stays two backslashes. :func:`quote` writes a value so that oned
reads back exactly that value, and refuses the values oned cannot store.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

Vector = list[tuple[str, str]]
Value = str | Vector
Template = list[tuple[str, Value]]


class TemplateSyntaxError(ValueError):
    """A template that oned's parser refuses; the message reads like oned's."""


class UnstorableValue(ValueError):
    """A value no template text makes oned store exactly; ``reason`` tells a client why."""

    def __init__(self, value: str, reason: str):
        super().__init__(reason)
        self.value = value
        self.reason = reason


# ---------------------------------------------------------------- writing

# characters XML 1.0 cannot carry (oned keeps templates as XML); CR is refused on its own below
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _refusal(value: str) -> str | None:
    """Why oned cannot store *value* exactly, or None."""
    if value.endswith("\\"):
        return "it ends with a backslash"
    if "]]>" in value:
        return "it contains ]]>"
    if "\r" in value:
        return "it contains a carriage return"
    bad = NOT_XML.search(value)
    if bad:
        return f"it contains the character U+{ord(bad.group()):04X}"
    return None


def quote(value: str) -> str:
    """The quoted literal oned reads back as exactly *value*; UnstorableValue if there is none.

    The literal is ``"`` + *value* with every ``"`` written ``\\"`` + ``"``. It must be followed by
    what a template puts after a value (end of line, blank, ``,`` or ``]``), as :func:`serialize`
    does. Why oned then reads *value* back:

    - oned's quoted string is the longest ``"([^"]|\\")*"``: every ``"`` inside must follow a
      backslash. Each ``"`` of the escaped text follows the backslash the escaper put before it, so
      the string reaches the closing quote; it cannot run past it, because the closing quote follows
      a backslash only when the value ends in one (refused). oned's other readings are never
      longer: the unquoted form stops at the end of line, blank, ``,`` or ``]`` after the closing
      quote (and loses a tie), and the CDATA-close form needs a ``]]>`` on the line.
    - oned then replaces each ``\\"`` by ``"`` and nothing else. A ``"`` in the escaped text is
      always one the escaper wrote after its own backslash, so the only ``\\"`` pairs are the ones it
      added: undoing them gives back *value*, backslashes and all.
    - The rest is refused: ``]]>`` on the value's first line makes oned's lexer read the line as a
      CDATA close ("Parse error.") and oned keeps values in CDATA; oned stores templates as XML, so
      a carriage return comes back as a newline and characters XML 1.0 cannot carry are lost.
    """
    reason = _refusal(value)
    if reason:
        raise UnstorableValue(value, reason)
    return '"' + value.replace('"', '\\"') + '"'


def serialize(template: Template) -> str:
    """Template text that oned (and :func:`parse`) reads back to *template*: one attribute per line,
    one vector element per line. UnstorableValue for a value oned cannot store."""
    lines = []
    for name, value in template:
        if isinstance(value, str):
            lines.append(f"{name}={quote(value)}")
        else:
            inner = ",\n".join(f"  {k}={quote(v)}" for k, v in value)
            lines.append(f"{name}=[\n{inner} ]")
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------- reading


class _Token(NamedTuple):
    kind: str  # bison's token name
    text: str
    start: int
    end: int


class _Seek:
    """Where a pattern next starts at or after a position, remembered: a rule retried at each of a
    run of characters no rule matches then stays linear, as flex's automaton is."""

    def __init__(self, text: str):
        self.text = text
        self.found: dict[str, tuple[int, int]] = {}  # pattern -> (searched from, found at or len(text))

    def __call__(self, pattern: str, i: int) -> int:
        start, at = self.found.get(pattern, (i + 1, i))
        if not start <= i <= at:
            m = re.compile(pattern).search(self.text, i)
            start, at = self.found[pattern] = i, m.start() if m else len(self.text)
        return at


Rule = Callable[[str, int, _Seek], int | None]  # the end of the rule's longest match at a position


def _rx(pattern: str) -> Rule:
    match = re.compile(pattern).match

    def end(text: str, i: int, seek: _Seek) -> int | None:
        m = match(text, i)
        return m.end() if m else None

    return end


def _comment(text: str, i: int, seek: _Seek) -> int | None:
    """``[[:blank:]]*#.*\\n``: a comment ends with its newline."""
    j = seek("[^ \t]", i)
    newline = seek("\n", j)
    return newline + 1 if text.startswith("#", j) and newline < len(text) else None


def _obracket(text: str, i: int, seek: _Seek) -> int | None:
    """``[[:blank:]]*\\[[[:blank:]\\n]*``"""
    j = seek("[^ \t]", i)
    return seek("[^ \t\n]", j + 1) if text.startswith("[", j) else None


def _ccdata(text: str, i: int, seek: _Seek) -> int | None:
    """``.*\\]\\]>.*`` (``.`` is anything but a newline): the rest of a line holding ``]]>``."""
    end_of_line = seek("\n", i)
    return end_of_line if seek("]]>", i) + 3 <= end_of_line else None


def _quoted(text: str, i: int, seek: _Seek) -> int | None:
    """The longest ``"([^"]|\\")*"`` at *i*: it may close at any ``"`` up to the first one that does
    not follow a backslash, which cannot be inside it."""
    if text[i] != '"':
        return None
    end, j = None, i + 1
    while (j := text.find('"', j)) >= 0:
        end = j + 1
        if text[j - 1] != "\\":
            break
        j += 1
    return end


_SKIP = ""  # comments and blank space: matched, but no token
# flex's rules of each start state, in its order: the longest match wins, the earlier rule on a tie
_INITIAL: list[tuple[str, Rule]] = [
    (_SKIP, _comment),
    (_SKIP, _rx(r"[ \t\n]+")),
    ("VARIABLE", _rx(r"[A-Za-z0-9_]+")),  # [[:alnum:]_] in the C locale
    ("EQUAL", _rx(r"[ \t]*=[ \t]*")),
    ("EQUAL_EMPTY", _rx(r"[ \t]*=[ \t]*\n")),
    ("COMMA", _rx(r"[ \t\n]*,[ \t\n]*")),
    ("CBRACKET", _rx(r"[ \t\n]*\][ \t\n]*")),
]
_VALUE: list[tuple[str, Rule]] = [
    ("OBRACKET", _obracket),
    ("CCDATA", _ccdata),
    ("QUOTED", _quoted),
    ("STRING", _rx(r"[^=# \t\n,\[\]]+")),
]


def _tokens(text: str) -> Iterator[_Token]:
    """The tokens oned's lexer hands its parser, then ``$end`` for ever."""
    i, rules, seek = 0, _INITIAL, _Seek(text)
    while i < len(text):
        kind, end = _SKIP, None
        for name, rule in rules:
            e = rule(text, i, seek)
            if e is not None and (end is None or e > end):
                kind, end = name, e
        if end is None:
            i += 1  # flex's default rule echoes the character; the parser never sees it
            continue
        if kind == "QUOTED":
            yield _Token("STRING", text[i + 1 : end - 1], i, end)
        elif kind != _SKIP:
            yield _Token(kind, text[i:end], i, end)
        if rules is _VALUE:
            rules = _INITIAL
        elif kind == "EQUAL":
            rules = _VALUE
        i = end
    while True:
        yield _Token("$end", "", len(text), len(text))


def _expect(token: _Token, kind: str, expecting: str, text: str) -> _Token:
    if token.kind != kind:
        line = text.count("\n", 0, token.end) + 1
        raise TemplateSyntaxError(
            f"Parse error: syntax error, unexpected {token.kind}, expecting {expecting}"
            f" at line {line}, columns {token.start}:{token.end}"
        )
    return token


def _stored(raw: str) -> str:
    """What oned stores for a string token: ``\\"`` becomes ``"`` (its only escape), and CR LF or a
    lone CR comes back as LF, as XML reads line ends (oned keeps templates as XML)."""
    return raw.replace('\\"', '"').replace("\r\n", "\n").replace("\r", "\n")


def parse(text: str) -> Template:
    """Parse template text as oned does; raises TemplateSyntaxError with oned's wording."""
    tokens = _tokens(text)
    out: Template = []
    while (token := next(tokens)).kind != "$end":
        # bison has reduced the attributes read so far to a whole file, which can only end here
        name = _expect(token, "VARIABLE", "$end", text).text.upper()
        token = next(tokens)
        if token.kind == "EQUAL_EMPTY":
            out.append((name, ""))
            continue
        _expect(token, "EQUAL", "EQUAL or EQUAL_EMPTY", text)
        token = next(tokens)
        if token.kind == "CCDATA":
            raise TemplateSyntaxError("Parse error.")
        if token.kind == "STRING":
            out.append((name, _stored(token.text)))
            continue
        _expect(token, "OBRACKET", "OBRACKET or CCDATA or STRING", text)
        out.append((name, _vector(tokens, text)))
    return out


def _vector(tokens: Iterator[_Token], text: str) -> Vector:
    """The pairs after ``[`` up to ``]``, as oned keeps them: in a map, sorted by name, the first
    value of a repeated name."""
    token = next(tokens)
    if token.kind == "CBRACKET":
        return []
    pairs: dict[str, str] = {}
    _expect(token, "VARIABLE", "CBRACKET or VARIABLE", text)
    while True:
        name = token.text.upper()
        _expect(next(tokens), "EQUAL", "EQUAL", text)
        pairs.setdefault(name, _stored(_expect(next(tokens), "STRING", "STRING", text).text))
        token = next(tokens)
        if token.kind == "CBRACKET":
            return sorted(pairs.items())
        _expect(token, "COMMA", "COMMA or CBRACKET", text)
        token = _expect(next(tokens), "VARIABLE", "VARIABLE", text)


# ---------------------------------------------------------------- helpers on parsed templates


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


def replace(template: Template, name: str, value: Value) -> Template:
    return [(k, v) for k, v in template if k != name] + [(name, value)]


def remove(template: Template, *names: str) -> Template:
    return [(k, v) for k, v in template if k not in names]


def merge(base: Template, extra: Template) -> Template:
    """oned's merge: every name in *extra* replaces all of that name in *base*; an empty vector
    (``X=[]``) only removes (Template::merge; set4's after_merge_empty_vector)."""
    names = {k for k, _ in extra}
    return [(k, v) for k, v in base if k not in names] + [(k, v) for k, v in extra if v != []]

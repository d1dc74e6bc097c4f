"""OpenNebula's template language as oned reads it: the forms it accepts, its parse errors, and the
escaper's promise (a value comes back exactly, or is refused) on any text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from one import template as tpl

names = st.from_regex(r"[A-Z0-9_]{1,12}", fullmatch=True)
# any text a request could carry, with the pieces that matter to oned's lexer, XML and the escaper
pieces = st.sampled_from(
    ["\\", '"', '\\"', "[", "]", "]]>", ">", "\r", "\r\n", "\n", "\t", " ", "=", ",", "#", "\x00", "\x1b", "\ufffe"]
)
values = st.lists(st.one_of(pieces, st.characters(), st.just("\ud800")), max_size=30).map("".join)
storable = values.filter(
    lambda v: not v.endswith("\\") and not re.search("]]>|[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]", v)
)
vectors = st.lists(st.tuples(names, storable), max_size=4)
templates = st.lists(st.tuples(names, st.one_of(storable, vectors)), max_size=8)


def oned_vector(pairs):
    """A vector as oned keeps it: sorted by name, the first value of a repeated name."""
    kept = {}
    for k, v in pairs:
        kept.setdefault(k, v)
    return sorted(kept.items())


@given(templates)
def test_serialize_then_parse_is_identity(t):
    expected = [(k, v if isinstance(v, str) else oned_vector(v)) for k, v in t]
    assert tpl.parse(tpl.serialize(t)) == expected


def unstorable(value: str) -> bool:
    """What oned cannot store exactly, spelled out independently of the escaper."""
    return (
        value.endswith("\\")
        or "]]>" in value
        or "\r" in value
        or any(c not in "\t\n" and (ord(c) < 0x20 or 0xD800 <= ord(c) <= 0xDFFF or c in "\ufffe\uffff") for c in value)
    )


@given(values)
def test_a_quoted_value_comes_back_exactly_or_is_refused(value):
    t = [("BEFORE", "b"), ("V", value), ("C", [("K", value), ("W", "w")]), ("AFTER", "a")]
    try:
        text = tpl.serialize(t)
    except tpl.UnstorableValue as e:
        assert unstorable(value) and e.reason
        return
    assert not unstorable(value)
    assert tpl.parse(text) == t  # exact, and no attribute added
    assert tpl.parse(f"V = {tpl.quote(value)} # blanks and a comment around it\n") == [("V", value)]


def test_the_escaper_writes_only_the_quote_escape():
    assert tpl.quote('a\\b "c" \\n') == '"a\\b \\"c\\" \\n"'


@pytest.mark.parametrize(
    "value, reason",
    [
        ("ends\\", "it ends with a backslash"),
        ("a]]>b", "it contains ]]>"),
        ("a\rb", "it contains a carriage return"),
        ("bell\x07", "it contains the character U+0007"),
        ("\ufffe", "it contains the character U+FFFE"),
    ],
)
def test_the_escaper_says_why_it_refuses(value, reason):
    with pytest.raises(tpl.UnstorableValue, match=re.escape(reason)):
        tpl.quote(value)


def test_the_forms_oned_accepts():
    text = """
    # a comment
    NAME = "vm1"   # trailing comment
    cpu = 0.5
    DISK = [ IMAGE_ID = "0", TARGET = vda ]
    DISK = [
      image = "second" ,
      IMAGE = "ignored: a vector keeps the first value of a name",
      ALPHA = oneadmin
    ]
    DESCRIPTION = "only \\" is an escape: \\\\ and \\n stay as written, and
    a newline"
    EMPTY = ""
    ALSO_EMPTY =
    A = 1 B = 2
    BARE = "a"b"
    """
    assert tpl.parse(text) == [
        ("NAME", "vm1"),
        ("CPU", "0.5"),
        ("DISK", [("IMAGE_ID", "0"), ("TARGET", "vda")]),
        ("DISK", [("ALPHA", "oneadmin"), ("IMAGE", "second")]),
        ("DESCRIPTION", 'only " is an escape: \\\\ and \\n stay as written, and\n    a newline'),
        ("EMPTY", ""),
        ("ALSO_EMPTY", ""),
        ("A", "1"),
        ("B", "2"),
        ("BARE", '"a"b"'),  # longer than the quoted "a", so read as an unquoted value
    ]


def test_a_carriage_return_is_stored_as_a_newline():
    assert tpl.parse('V = "a\r\nb\rc"\n') == [("V", "a\nb\nc")]


@pytest.mark.parametrize(
    "bad, message",
    [
        ("= 1", "unexpected EQUAL, expecting $end"),
        ("A", "unexpected $end, expecting EQUAL or EQUAL_EMPTY"),
        ("A = ", "unexpected $end, expecting OBRACKET or CCDATA or STRING"),
        ("A = [ B = 1", "unexpected $end, expecting COMMA or CBRACKET"),
        ("A = [ = 1 ]", "unexpected EQUAL, expecting CBRACKET or VARIABLE"),
        ("A = [ B = 1, ]", "unexpected CBRACKET, expecting VARIABLE"),  # no trailing comma
        ("A = [ B =\n 1 ]", "unexpected EQUAL_EMPTY, expecting EQUAL"),
        ("A = 1 # a comment needs its newline", "unexpected VARIABLE, expecting EQUAL or EQUAL_EMPTY"),
        ('V = "ends\\"\nW = "w"\n', "unexpected $end, expecting EQUAL or EQUAL_EMPTY"),
    ],
)
def test_malformed_templates_are_refused_in_oneds_words(bad, message):
    with pytest.raises(tpl.TemplateSyntaxError) as e:
        tpl.parse(bad)
    assert str(e.value).startswith(f"Parse error: syntax error, {message} at line ")


def test_cdata_close_on_the_value_line_is_a_bare_parse_error():
    with pytest.raises(tpl.TemplateSyntaxError) as e:
        tpl.parse('A = [ B = "x", C = "]]>" ]\n')
    assert str(e.value) == "Parse error."


def test_merge_replaces_vectors_whole():
    base = [("CONTEXT", [("A", "1"), ("B", "2")]), ("MEMORY", "64")]
    assert tpl.merge(base, [("CONTEXT", [("C", "3")])]) == [("MEMORY", "64"), ("CONTEXT", [("C", "3")])]

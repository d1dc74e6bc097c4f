"""OpenNebula's template language: exact round trips, oned's parse errors, and quoting as a defence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onelite import template as tpl

names = st.from_regex(r"[A-Z0-9_]{1,12}", fullmatch=True)
# any text a request could carry, newlines, quotes, backslashes, brackets and '#' included
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
vectors = st.lists(st.tuples(names, values), max_size=4)
templates = st.lists(st.tuples(names, st.one_of(values, vectors)), max_size=8)


@given(templates)
def test_serialize_then_parse_is_identity(t):
    assert tpl.parse(tpl.serialize(t)) == t


@given(names, values)
def test_a_quoted_value_never_adds_an_attribute(name, value):
    text = f"{name} = {tpl.quote(value)}\n"
    assert tpl.parse(text) == [(name, value)]


@given(values)
def test_quoted_value_inside_a_vector_stays_inside(value):
    text = f'CONTEXT = [ USER_DATA = {tpl.quote(value)}, KEY = "k" ]\nMEMORY = 64\n'
    assert tpl.parse(text) == [("CONTEXT", [("USER_DATA", value), ("KEY", "k")]), ("MEMORY", "64")]


def test_the_forms_oned_accepts():
    text = """
    # a comment
    NAME = "vm1"   # trailing comment
    cpu = 0.5
    DISK = [ IMAGE_ID = "0", TARGET = vda ]
    DISK = [
      IMAGE = "second",
      IMAGE_UNAME = oneadmin,
    ]
    DESCRIPTION = "quoted with \\" and \\\\ and
    a newline"
    EMPTY = ""
    """
    assert tpl.parse(text) == [
        ("NAME", "vm1"),
        ("CPU", "0.5"),
        ("DISK", [("IMAGE_ID", "0"), ("TARGET", "vda")]),
        ("DISK", [("IMAGE", "second"), ("IMAGE_UNAME", "oneadmin")]),
        ("DESCRIPTION", 'quoted with " and \\ and\n    a newline'),
        ("EMPTY", ""),
    ]


def test_oned_wording_of_a_parse_error():
    with pytest.raises(tpl.TemplateSyntaxError) as e:
        tpl.parse('NAME = [ broken "')
    assert str(e.value).startswith("Parse error: syntax error, unexpected")


@pytest.mark.parametrize("bad", ["= 1", "A", "A = ", "A = [ B = 1", "A = 1 B = 2", 'A = "open', "A = [ = 1 ]"])
def test_malformed_templates_are_refused(bad):
    with pytest.raises(tpl.TemplateSyntaxError):
        tpl.parse(bad)


def test_merge_replaces_vectors_whole():
    base = [("CONTEXT", [("A", "1"), ("B", "2")]), ("MEMORY", "64")]
    assert tpl.merge(base, [("CONTEXT", [("C", "3")])]) == [("MEMORY", "64"), ("CONTEXT", [("C", "3")])]

"""The template parser and the escaper, each held to what a real oned 6.10.5 stored.

``template-quoting.json`` records 80 texts sent with ``one.template.allocate`` (a quoted value alone,
and inside a vector) and what oned stored, or its parse error. onelite must store the same; the
escaper is checked against the parser that is itself checked here against oned.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
import xmlrpc.client

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from one import template as tpl
from onelite.bootstrap import bootstrap
from onelite.cloud import Cloud
from onelite.engine import Engine
from onelite.store import Store

from ..conftest import FIXTURES

CORPUS_FILE = FIXTURES / "template-quoting.json"
CORPUS_SIZE = 80


def _load() -> list[dict]:
    try:
        return json.loads(CORPUS_FILE.read_text())
    except FileNotFoundError:
        return []  # test_the_corpus_is_all_there fails


CORPUS = _load()
STORED = [e for e in CORPUS if "stored" in e]
FAILED = [e for e in CORPUS if "error" in e]
# what clients could mean: each fragment taken as the value itself, and each value oned stored
CLIENT_VALUES = sorted({e["fragment"] for e in CORPUS} | {e["stored"] for e in STORED})
# values oned could not store from any text: it failed on them ending in a backslash or holding ]]>
UNSTORABLE = sorted({e["fragment"] for e in FAILED if e["fragment"].endswith("\\") or "]]>" in e["fragment"]})


def _id(entry: dict) -> str:
    return f"{entry['shape']}:{entry['fragment']!r}"


def test_the_corpus_is_all_there():
    assert CORPUS_FILE.is_file(), f"{CORPUS_FILE} is missing"
    assert len(CORPUS) >= CORPUS_SIZE, f"{CORPUS_FILE} has {len(CORPUS)} entries, not {CORPUS_SIZE}"
    assert len(STORED) + len(FAILED) == len(CORPUS)
    assert len(UNSTORABLE) >= 6  # a\\, trailing\\\\, ends\, ends\\, a]]>b, cdata ]]> end


def _before_at_line(message: str) -> str:
    """oned's line and column numbers are garbage (uninitialised locations): compare what precedes them."""
    return message.split(" at line")[0]


def _value(template: tpl.Template, shape: str) -> str:
    return tpl.get(template, "V") if shape == "scalar" else tpl.vget(tpl.get(template, "C"), "V")


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize("entry", CORPUS, ids=_id)
def test_onelite_parses_as_oned_stored(entry):
    if "error" in entry:
        with pytest.raises(tpl.TemplateSyntaxError) as e:
            tpl.parse(entry["template"])
        assert f"[one.template.allocate] {_before_at_line(str(e.value))}" == _before_at_line(entry["error"])
        return
    t = tpl.parse(entry["template"])
    assert _value(t, entry["shape"]) == entry["stored"]
    assert sorted(k for k, _ in t if k != "NAME") == entry["attributes"]  # NAME leaves a VM template's body
    if entry["shape"] == "vector":
        assert [k for k, _ in tpl.get(t, "C")] == entry["vector_attributes"]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """onelite's API in this process: the same answers its XML-RPC server sends."""
    data = tmp_path_factory.mktemp("one")
    store = Store(str(data / "one.db"))
    bootstrap(store, str(data), "/tmp")
    yield Engine(Cloud(store, str(data))), (data / "one_auth").read_text().strip()
    store.close()


def _call(engine, method: str, *args):
    server, session = engine
    answer = server.handle(xmlrpc.client.dumps((session, *args), method).encode())
    return xmlrpc.client.loads(answer)[0][0]


def _shape(element: ET.Element):
    children = [_shape(c) for c in element]
    return element.tag, None if children else element.text or "", children


@pytest.mark.parametrize("entry", CORPUS, ids=_id)
def test_onelite_answers_allocate_and_info_as_oned_did(engine, entry):
    answer = _call(engine, "one.template.allocate", entry["template"])
    if "error" in entry:
        assert answer[0] is False and answer[2] == entry["code"] == 8192
        assert _before_at_line(answer[1]) == _before_at_line(entry["error"])
        return
    assert answer[0] is True, answer
    info = _call(engine, "one.template.info", answer[1])
    stored = ET.fromstring(info[1]).find("TEMPLATE")
    assert _shape(stored) == _shape(ET.fromstring(entry["raw_xml_fragment"]))


# ---------------------------------------------------------------- the escaper


@pytest.mark.parametrize("value", CLIENT_VALUES, ids=repr)
def test_quote_refuses_or_the_value_comes_back_exactly(value):
    try:
        text = tpl.serialize([("NAME", "n"), ("V", value), ("C", [("V", value), ("W", "w")]), ("AFTER", "after")])
    except tpl.UnstorableValue as e:
        assert e.reason and e.value == value
        return
    assert tpl.parse(text) == [("NAME", "n"), ("V", value), ("C", [("V", value), ("W", "w")]), ("AFTER", "after")]


@pytest.mark.parametrize("value", UNSTORABLE, ids=repr)
def test_values_oned_failed_on_are_refused(value):
    with pytest.raises(tpl.UnstorableValue):
        tpl.quote(value)


@pytest.mark.parametrize("entry", STORED, ids=_id)
def test_the_escaped_stored_value_reads_back_in_the_corpus_shape(entry):
    """Put the escaper's literal where the corpus put its quoted fragment: the oned-faithful parser
    must read the value oned stored."""
    quoted = f'V="{entry["fragment"]}"'
    assert entry["template"].count(quoted) == 1
    try:
        literal = tpl.quote(entry["stored"])
    except tpl.UnstorableValue:
        pytest.fail(f"oned stored {entry['stored']!r}, so it must be writable")
    t = tpl.parse(entry["template"].replace(quoted, f"V={literal}"))
    assert _value(t, entry["shape"]) == entry["stored"]
    assert sorted(k for k, _ in t if k != "NAME") == entry["attributes"]


def _role_quote():
    """The copy of the escaper the Ansible role's modules carry (they run on the frontend, apart from econe)."""
    import importlib.util

    from ..conftest import ROOT

    path = ROOT / "collections/ansible_collections/econe/opennebula/plugins/module_utils/one_ec2.py"
    spec = importlib.util.spec_from_file_location("role_one_ec2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.quote


@settings(max_examples=300)
@given(st.one_of(st.sampled_from(CLIENT_VALUES), st.text(alphabet=st.sampled_from('ab"\\]>[=,\r\n\t\x01 '))))
def test_the_role_quotes_as_econe_does(value):
    quote = _role_quote()
    try:
        expected = tpl.quote(value)
    except tpl.UnstorableValue as e:
        with pytest.raises(ValueError, match=re.escape(e.reason)):
            quote(value)
    else:
        assert quote(value) == expected

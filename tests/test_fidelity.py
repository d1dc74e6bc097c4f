"""onelite answers the captured oned scenarios as oned did, value for value, and pyone parses every answer.

The captures live in tests/fixtures/oned-6.10.5 (README.md there). What may differ is listed in
fidelity/compare.py, with the reason; everything else must be equal.
"""

from __future__ import annotations

import json
import sqlite3
import xmlrpc.client

import pytest
from pyone import bindings

from .conftest import FIXTURES, start_onelite
from .fidelity.compare import FILE_IMAGE, differences, subset_differences
from .fidelity.replay import SET2_SEQUENCES, Replayer, scenario_set1, scenario_set2

# How many answers each capture holds (INDEX.txt): fewer means the fixtures are broken, not that
# there is less to check.
EXPECTED_ANSWERS = {"set1": 78, "set2": 200, "set3": 172}

# What else may differ, per capture and per answer.
SET_RULES = {"set1": FILE_IMAGE, "set2": []}
ANSWER_RULES = {"one.user.login": [(r"^value\[1\]$", "a random token")]}
# onelite reports the part of oned.conf it implements (app/onelite/data/oned.conf)
SUBSET = {"one.system.config"}


def answers(set_name: str) -> list[str]:
    return sorted(p.stem for p in (FIXTURES / set_name).glob("*.xml"))


SET1, SET2, SET3 = answers("set1"), answers("set2"), answers("set3")


@pytest.mark.parametrize("set_name", sorted(EXPECTED_ANSWERS))
def test_the_captures_are_all_here(set_name):
    names = answers(set_name)
    assert len(names) == EXPECTED_ANSWERS[set_name], f"{FIXTURES / set_name}: {len(names)} answers"
    for name in names:
        assert (FIXTURES / set_name / "requests" / f"{name}.xml").is_file(), f"no request behind {name}"


def _check(replayer: Replayer, name: str):
    if name not in replayer.answers:
        pytest.fail(f"the scenario does not replay {name}")
    expected, actual = replayer.expected(name), replayer.answers[name]
    if name in SUBSET:
        problems = subset_differences(expected, actual)
    else:
        problems = differences(expected, actual, [*SET_RULES[replayer.fixtures.name], *ANSWER_RULES.get(name, ())])
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def set1(tmp_path_factory):
    work = tmp_path_factory.mktemp("set1")
    server = start_onelite(work / "one", interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES / "set1", server.admin_session, server.server_auth[1], work / "files")
        scenario_set1(r)
        yield r
    finally:
        server.stop()


@pytest.fixture(scope="module")
def set2(tmp_path_factory):
    work = tmp_path_factory.mktemp("set2")
    start_onelite(work / "one").stop()  # bootstrap, then seed the id sequences the capture started from
    db = sqlite3.connect(work / "one" / "one.db")
    with db:
        db.executemany("INSERT OR REPLACE INTO seq (kind, next) VALUES (?, ?)", SET2_SEQUENCES.items())
    db.close()
    server = start_onelite(work / "one", interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES / "set2", server.admin_session, server.server_auth[1], work / "files")
        scenario_set2(r)
        yield r
    finally:
        server.stop()


@pytest.mark.parametrize("name", SET1)
def test_set1_answer(set1, name):
    _check(set1, name)


@pytest.mark.parametrize("name", SET2)
def test_set2_answer(set2, name):
    _check(set2, name)


SEQUENCES = json.loads((FIXTURES / "set2" / "sequences.json").read_text())["sequences"]
# States oned passes through faster than the capture's 20 ms polling caught every time
# (release's PROLOG shows in release_vmB's sequence, not in release's).
TRANSIENT = {"release": {(3, 1)}}


def _distinct(states):
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


@pytest.mark.parametrize("action", sorted(SEQUENCES))
def test_set2_state_sequence(set2, action):
    """After each VM action onelite shows oned's (STATE, LCM_STATE) sequence: the same first and last
    states, every state oned showed in the same order, and no state oned did not show."""
    oned = [(s["STATE"], s["LCM_STATE"]) for s in SEQUENCES[action]]
    seen = _distinct(set2.sequences.get(action, []))
    assert seen, f"the replay recorded no states for {action}"
    assert (seen[0], seen[-1]) == (oned[0], oned[-1]), f"oned {oned}, onelite {seen}"
    remaining = iter(seen)
    assert all(state in remaining for state in oned), f"oned {oned}, onelite {seen}"
    assert set(seen) <= set(oned) | TRANSIENT.get(action, set()), f"oned {oned}, onelite {seen}"


def _pyone_parses(raw: bytes):
    try:
        (result,), _ = xmlrpc.client.loads(raw)
    except xmlrpc.client.Fault:
        return
    if result[0] and isinstance(result[1], str) and result[1].startswith("<"):
        assert bindings.parseString(result[1].encode()) is not None


@pytest.mark.parametrize("name", SET1)
def test_set1_pyone_parses(set1, name):
    """pyone's generated bindings accept every record onelite answers with."""
    _pyone_parses(set1.answers[name])


@pytest.mark.parametrize("name", SET2)
def test_set2_pyone_parses(set2, name):
    _pyone_parses(set2.answers[name])

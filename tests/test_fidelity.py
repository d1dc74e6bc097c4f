"""onelite answers the captured oned scenarios with the same shapes, and pyone parses every answer."""

from __future__ import annotations

import sqlite3

import pytest

from .conftest import FIXTURES, start_onelite
from .fidelity.replay import SET2_SEQUENCES, Replayer, scenario_set1, scenario_set2
from .fidelity.shape import diff

# Where onelite knowingly differs from the capture (also listed in the README).
KNOWN_DIFFERENCES = {
    "one.system.config": "onelite reports the subset of oned.conf it implements",
    # oned's dummy monitor samples running VMs every few tens of seconds; onelite writes no VM monitoring
    "one.vm.info.after_resume_from_poweroff.settled": "no VM MONITORING samples",
    "one.vm.info.after_terminate.immediate": "no VM MONITORING samples",
    "one.vm.info.after_terminate.settled": "no VM MONITORING samples",
}


@pytest.fixture(scope="module")
def set1(tmp_path_factory):
    data = tmp_path_factory.mktemp("set1") / "one"
    server = start_onelite(data, interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES / "set1", server.admin_session, server.server_auth[1], data.parent / "files")
        scenario_set1(r)
        yield r
    finally:
        server.stop()


SET1 = sorted(p.stem for p in (FIXTURES / "set1").glob("*.xml"))


@pytest.mark.parametrize("name", SET1)
def test_set1_shape(set1, name):
    if name not in set1.answers:
        pytest.fail(f"the scenario does not replay {name}")
    if name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[name])
    problems = diff(set1.expected(name), set1.actual(name))
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def set2(tmp_path_factory):
    data = tmp_path_factory.mktemp("set2") / "one"
    start_onelite(data).stop()  # bootstrap, then seed the id sequences the capture started from
    db = sqlite3.connect(data / "one.db")
    with db:
        db.executemany("INSERT OR REPLACE INTO seq (kind, next) VALUES (?, ?)", SET2_SEQUENCES.items())
    db.close()
    server = start_onelite(data, interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES / "set2", server.admin_session, server.server_auth[1], data.parent / "files")
        scenario_set2(r)
        yield r
    finally:
        server.stop()


SET2 = sorted(p.stem for p in (FIXTURES / "set2").glob("*.xml"))


@pytest.mark.parametrize("name", SET2)
def test_set2_shape(set2, name):
    if name not in set2.answers:
        pytest.fail(f"the scenario does not replay {name}")
    if name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[name])
    problems = diff(set2.expected(name), set2.actual(name))
    assert not problems, "\n".join(problems)


def _pyone_parses(raw: bytes):
    import xmlrpc.client

    from pyone import bindings

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

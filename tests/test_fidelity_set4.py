"""onelite answers set 4 of the captured oned 6.10.5 scenarios (tests/fixtures/oned-6.10.5/set4) as oned did:
OpenNebula documents (``one.document.*``, ``one.documentpool.info``), held to a real oned, not to what econe
needs of them: allocate and the names oned makes or refuses, update in replace and merge mode, the pool
by filter and type, chmod, chown, rename, clone, locks, delete, and who may do each.

Every request of the capture is replayed in the order of its INDEX.txt against an onelite whose id
sequences start where the capture's oned stood (ids.json), and every answer is compared by
fidelity/compare.py's ``differences``; a lock's TIME and REQ_ID are oned's clock and its id for the request.
Set 3's document answers (names not unique per owner, the pool by type) are replayed too, on a
cloud made as set 3's capture made it. Every record onelite answers validates against OpenNebula
6.10.5's document.xsd / document_pool.xsd (xsd/) and pyone parses it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import xmlrpc.client

import pytest
from lxml import etree
from pyone import bindings

from .conftest import FIXTURES, start_onelite
from .fidelity.compare import differences
from .fidelity.replay import Replayer, call

SET4 = FIXTURES / "set4"
# INDEX.txt lists the answers in the order the capture made the calls
STEPS = re.findall(r"^(\S+)\.xml ", (SET4 / "INDEX.txt").read_text(), re.M)
LOCK_RULES = [
    (r"/LOCK/TIME$", "a clock time"),
    (r"/LOCK/REQ_ID$", "the id oned gives the locking request (a random number below 10000)"),
]

# set 3's document answers, in the order its ids show they were made (claim1 0, dup 1, type101 2, otheruser 3)
SET3_SETUP = [
    "one.group.allocate",
    "one.acl.addrule.create",
    "one.user.allocate.clouduser",
    "one.user.allocate.otheruser",
]
SET3_DOCS = [
    "one.document.allocate.claim1",
    "one.document.allocate.claim_dup",
    "one.document.allocate.claim_type101",
    "one.document.allocate.claim_otheruser",
    "one.document.info.0",
    "one.documentpool.info.admin",
    "one.documentpool.info.clouduser",
]


def _seeded_onelite(work):
    """An onelite whose id sequences start where set 4's oned stood."""
    start_onelite(work / "one").stop()
    sequences = json.loads((SET4 / "ids.json").read_text())["sequences"]
    db = sqlite3.connect(work / "one" / "one.db")
    with db:
        db.executemany("INSERT OR REPLACE INTO seq (kind, next) VALUES (?, ?)", sequences.items())
    db.close()
    return start_onelite(work / "one")


@pytest.fixture(scope="module")
def set4(tmp_path_factory):
    work = tmp_path_factory.mktemp("set4")
    server = _seeded_onelite(work)
    try:
        r = Replayer(server.url, SET4, server.admin_session, server.server_auth[1], work / "files")
        for name in STEPS:
            r.run(name)
        yield r
    finally:
        server.stop()


@pytest.fixture(scope="module")
def set3_docs(tmp_path_factory):
    work = tmp_path_factory.mktemp("set3docs")
    server = start_onelite(work / "one")
    try:
        r = Replayer(server.url, FIXTURES / "set3", server.admin_session, server.server_auth[1], work / "files")
        for name in SET3_SETUP + SET3_DOCS:
            r.run(name)
        yield r
    finally:
        server.stop()


def test_the_index_names_every_answer_once():
    captured = sorted(p.stem for p in SET4.glob("*.xml"))
    assert sorted(STEPS) == captured and len(set(STEPS)) == len(STEPS)
    assert sorted(p.stem for p in (SET4 / "requests").glob("*.xml")) == captured


@pytest.mark.parametrize("name", STEPS)
def test_set4_answer(set4, name):
    problems = differences(set4.expected(name), set4.answers[name], LOCK_RULES)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", SET3_DOCS)
def test_set3_document_answer(set3_docs, name):
    problems = differences(set3_docs.expected(name), set3_docs.answers[name])
    assert not problems, "\n".join(problems)


def _records(raw: bytes) -> list[str]:
    (result,), _ = xmlrpc.client.loads(raw)
    return [result[1]] if result[0] and isinstance(result[1], str) and result[1].startswith("<") else []


RECORDS = [name for name in STEPS if re.match(r"one\.document(pool)?\.info", name)]


def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "xsd" / name)))


@pytest.mark.parametrize("name", RECORDS)
def test_set4_record_follows_the_xsd(set4, name):
    """OpenNebula's XSDs declare a namespace oned's answers do not carry: it is added before validating."""
    (xml,) = _records(set4.answers[name])
    root = re.match(r"<(\w+)>", xml).group(1)
    schema = _schema("document_pool.xsd" if root == "DOCUMENT_POOL" else "document.xsd")
    doc = etree.fromstring(xml.replace(f"<{root}>", f'<{root} xmlns="http://opennebula.org/XMLSchema">', 1).encode())
    assert schema.validate(doc), schema.error_log


@pytest.mark.parametrize("name", RECORDS)
def test_set4_record_pyone_parses(set4, name):
    """pyone's generated bindings (econe reads records with them) accept every document record."""
    for xml in _records(set4.answers[name]):
        assert bindings.parseString(xml.encode()) is not None


# What OpenNebula's release-6.10.5 source makes plain and set 4 did not capture (RequestManagerLock,
# RequestManagerClone with Document::insert), on a document of docuser's the replay left unlocked.


def test_a_lock_test_refuses_a_locked_document_with_the_time_of_its_lock(set4):
    user, doc = "docuser:pw", json.loads((SET4 / "ids.json").read_text())["doc_empty_name"]
    assert call(set4.url, "one.document.lock", user, doc, 4, True)[:2] == [True, doc]  # 4 ("ALL") is USE
    ok, xml, *_ = call(set4.url, "one.document.info", user, doc)
    locked_at = re.search(r"<LOCKED>1</LOCKED><OWNER>\d+</OWNER><TIME>(\d+)</TIME>", xml).group(1)
    answer = call(set4.url, "one.document.lock", user, doc, 2, True)
    assert answer == [False, f"[one.document.lock] {locked_at}", 2048, -1, -1]
    assert call(set4.url, "one.document.unlock", user, doc)[:2] == [True, doc]


def test_a_clone_named_too_long_is_refused_as_an_allocation(set4):
    doc = json.loads((SET4 / "ids.json").read_text())["doc_empty_name"]
    answer = call(set4.url, "one.document.clone", "docuser:pw", doc, "n" * 129)
    message = "[one.document.clone] Error allocating a new document. NAME is too long; max length is 128 chars."
    assert answer == [False, message, 16384, -1, -1]

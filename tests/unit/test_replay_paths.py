"""The captured requests name image files of the capture machine (``PATH="/var/tmp/set3.img"``): they
are oned's requests as sent, kept verbatim. The replay points each such PATH at a file it makes in
the test's own directory, so no test reads or writes the machine's /var/tmp."""

from __future__ import annotations

import re
import xmlrpc.client

import pytest

from ..conftest import FIXTURES
from ..fidelity.replay import Replayer

CAPTURED = sorted(p for p in FIXTURES.glob("set*/requests/*.xml") if re.search(r'PATH=\\?"/var/tmp/', p.read_text()))


def test_the_captures_name_such_paths():
    assert {p.parent.parent.name for p in CAPTURED} >= {"set1", "set3"}  # else this module tests nothing


@pytest.mark.parametrize("request_file", CAPTURED, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_the_replay_sends_a_file_of_its_own_directory(request_file, tmp_path):
    replayer = Replayer("http://127.0.0.1:9/RPC2", request_file.parent.parent, "a:b", "pw", tmp_path / "files")
    params, _ = xmlrpc.client.loads(request_file.read_bytes())
    sent = [replayer.local_paths(p) for p in params[1:]]
    paths = [m for p in sent if isinstance(p, str) for m in re.findall(r'PATH="([^"]+)"', p)]
    assert paths, sent
    for path in paths:
        assert path.startswith(str(tmp_path / "files")), path
        assert (tmp_path / "files" / path.rsplit("/", 1)[1]).stat().st_size == 1 << 20

"""onelite answers the captured oned scenarios with the same shapes, and pyone parses every answer."""

from __future__ import annotations

import pytest

from .conftest import FIXTURES, start_onelite
from .fidelity.replay import Replayer, scenario_set1
from .fidelity.shape import diff

# Where onelite knowingly differs from the capture (also listed in the README).
KNOWN_DIFFERENCES = {
    "one.system.config": "onelite reports the subset of oned.conf it implements",
}


@pytest.fixture(scope="module")
def set1(tmp_path_factory):
    data = tmp_path_factory.mktemp("set1") / "one"
    server = start_onelite(data, interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES, server.admin_session, server.server_auth[1])
        scenario_set1(r)
        yield r
    finally:
        server.stop()


SET1 = sorted(p.stem for p in FIXTURES.glob("*.xml"))


@pytest.mark.parametrize("name", SET1)
def test_set1_shape(set1, name):
    if name not in set1.answers:
        pytest.fail(f"the scenario does not replay {name}")
    if name in KNOWN_DIFFERENCES:
        pytest.skip(KNOWN_DIFFERENCES[name])
    problems = diff(set1.expected(name), set1.actual(name))
    assert not problems, "\n".join(problems)

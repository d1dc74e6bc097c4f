"""econe's login tokens per user (`econe.sessions.LoginTokens`): one login at a time per user, and the
requests that waited for a login that failed get its answer, not a login each."""

from __future__ import annotations

import contextlib
import threading
import time

from econe.errors import EC2Error, unavailable
from econe.sessions import LoginTokens


def test_requests_waiting_for_a_failed_login_share_its_answer():
    calls = []

    def login(user: str) -> tuple[str, float]:
        calls.append(user)
        time.sleep(0.3)  # oned not answering, as long as the client's timeout
        raise unavailable("oned timed out")

    tokens = LoginTokens(login)
    answers: list[str] = []

    def request():
        try:
            tokens.session("alice")
        except EC2Error as e:
            answers.append(e.code)

    started = time.monotonic()
    threads = [threading.Thread(target=request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == ["Unavailable"] * 4
    assert calls == ["alice"]  # one login; four would have held the last request 4 x 0.3 s
    assert time.monotonic() - started < 0.9
    with contextlib.suppress(EC2Error):  # a request that comes after the failure tries again
        tokens.session("alice")
    assert calls == ["alice", "alice"]


def test_a_login_gives_every_waiting_request_its_session():
    calls = []

    def login(user: str) -> tuple[str, float]:
        calls.append(user)
        time.sleep(0.2)
        return f"{user}:token{len(calls)}", 3600

    tokens = LoginTokens(login)
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(tokens.session("bob"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["bob:token1"] * 4 and calls == ["bob"]
    assert tokens.tokens() == [("bob", "token1")]

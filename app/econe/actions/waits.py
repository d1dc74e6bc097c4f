"""Waiting within a request for what oned's drivers finish in a moment (a hot-plug, a copy, a network
made), so that the answer holds when it is given. Each waiting request holds one of the server's
workers: a few wait at once, the others do not wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

SLOTS = threading.BoundedSemaphore(4)  # requests that may wait at once


def until(done: Callable[[], bool], seconds: float, poll: float = 0.1) -> bool | None:
    """Poll *done* until it holds or *seconds* pass: its last answer; None, at once, when enough
    other requests wait already."""
    if not SLOTS.acquire(blocking=False):
        return None
    try:
        deadline = time.monotonic() + seconds
        while not (finished := done()) and time.monotonic() < deadline:
            time.sleep(poll)
        return finished
    finally:
        SLOTS.release()

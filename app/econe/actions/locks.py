"""One lock per object whose check-and-write econe makes in two steps.

oned has no compare-and-set on templates: a security group's rules are written back with its whole
template, a user's key pairs and an object's tags are read, changed and written. Within this process
such a read+write holds the lock of what it changes — ``("sg", id)`` for a security group (shared
between users, so a user's lock is not enough), ``("user", name)`` for a user's key pairs and the
tags of its instances and images. Two econe servers on one oned can still race between the read and
the write. The locks are kept: one per object changed since the server started, bounded by what oned
holds. Re-entrant: the tags API holds a user's lock while it changes a key pair's tags."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator

_locks: dict[tuple, threading.RLock] = {}
_guard = threading.Lock()


def lock(*key) -> threading.RLock:
    with _guard:
        return _locks.setdefault(key, threading.RLock())


@contextlib.contextmanager
def holding(keys: Iterable[tuple]) -> Iterator[None]:
    """Hold the locks of all *keys*, taken in one order (so two requests never wait on each other)."""
    with contextlib.ExitStack() as stack:
        for key in sorted(set(keys)):
            stack.enter_context(lock(*key))
        yield

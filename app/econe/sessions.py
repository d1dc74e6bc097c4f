"""The session strings econe acts with on oned, and how long each is used.

oned caches ONE authenticated session per user (UserPool::authenticate_internal/_server): any other
login of the user (its CLI, Sunstone, another econe) replaces it, and a server_cipher session that is
not the cached one goes to oned's external auth driver, ~150 ms per call. Login tokens
(``one.user.login``) are checked before that cache and are not evicted, so econe acts for each user with
``user:<token>``, a token it asks for through the server account (the user's server_cipher session),
reuses until TOKEN_RENEW before it expires, and replaces when oned refuses it (revoked, or cut short by
the driver's MAX_TOKEN_TIME). oned checks no login token for a server_cipher account
(UserPool::authenticate_server), so the server account's own calls keep their server_cipher session;
within a CIPHER_PERIOD every econe process makes the same one, and they do not evict each other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from one import cipher

from .errors import EC2Error

TOKEN_LIFETIME = 3600  # seconds a login token econe asks for is valid
TOKEN_RENEW = 300  # a new token is asked for this long before the one held expires
NO_TOKEN_RETRY = 300  # oned gave a user no token (tokens disabled, too many): its server_cipher session this long
CIPHER_PERIOD = 1800  # a server_cipher session is valid from CIPHER_PERIOD to twice that ahead


def cipher_session(server_user: str, key: str, user: str, now: float | None = None) -> str:
    """``server:user:token`` acting for *user*, valid until the end of the period after the current one:
    the same string in every econe process with the same account (the token is deterministic)."""
    expiry = (int(time.time() if now is None else now) // CIPHER_PERIOD + 2) * CIPHER_PERIOD
    return f"{server_user}:{user}:{cipher.encrypt(key, f'{server_user}:{user}:{expiry}')}"


class LoginTokens:
    """The session econe holds for each user; one login at a time per user.

    *login(user)* answers ``(session, seconds it may be used)``: a token's session, or another one when
    oned gives no token."""

    def __init__(self, login: Callable[[str], tuple[str, float]]):
        self._login = login
        self._held: dict[str, tuple[str, float]] = {}  # user -> (session, time.monotonic() to stop using it)
        self._locks: dict[str, threading.Lock] = {}  # one per user seen, as many as oned has users
        self._failed: dict[str, tuple[float, EC2Error]] = {}  # user -> (when its last login failed, why)
        self._guard = threading.Lock()

    def session(self, user: str, refused: str = "") -> str:
        """The session to act for *user* with; a new one when the one held is *refused* (or about to expire)."""
        if (held := self._usable(user, refused)) is not None:
            return held
        with self._guard:
            lock = self._locks.setdefault(user, threading.Lock())
        waited = time.monotonic()
        with lock:  # concurrent first requests of a user: one login, the others take its session
            if (held := self._usable(user, refused)) is not None:
                return held
            at, failure = self._failed.get(user, (0.0, None))
            if failure is not None and at >= waited:  # the login they waited for failed: its answer, not N more
                raise EC2Error(failure.code, failure.message, failure.status, failure.detail)
            asked = time.monotonic()
            try:
                session, valid = self._login(user)
            except EC2Error as e:
                self._failed[user] = (time.monotonic(), e)
                raise
            self._held[user] = (session, asked + valid)
            return session

    def tokens(self) -> list[tuple[str, str]]:
        """(user, token) of every login token held (a user on its server_cipher session holds none)."""
        held = list(self._held.items())
        return [(user, session.split(":", 1)[1]) for user, (session, _) in held if session.count(":") == 1]

    def _usable(self, user: str, refused: str) -> str | None:
        session, until = self._held.get(user, ("", 0.0))
        return session if session and session != refused and time.monotonic() < until else None

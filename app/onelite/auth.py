"""Session strings to users, as oned 6.10.5's UserPool::authenticate does it (src/um/UserPool.cc).

``user:secret`` of a core or public user, in oned's order: a live login token of the user
(``one.user.login``; one scoped to a group narrows the caller's groups to it), then the one session
oned caches per user, then the password: in-process for core (SHA-256; a SHA-1 hash is upgraded),
never for public (their server logs in for them). ``server:target[:egid]:token`` of a server_*
account: the target's cached session, else the external auth driver. Users of the other drivers
(x509, ssh, ldap) go to the external driver too.

The external driver is a process of its own in oned (about 150 ms a call, measured): here a
``DriverCheck`` that the engine runs outside its lock after a configured delay. A password or driver
check that succeeds caches its secret as the user's one session for SESSION_EXPIRATION_TIME, in
place of the one cached before: a user's own logins evict a server's session, and two servers acting
for one user evict each other. Every failure is the same 256 answer, whatever went wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass

from one import cipher

from .conf import external_auth_drivers
from .errors import AUTH_FAILED, AUTHENTICATION, OneError
from .store import Store

_INT = re.compile(r"\s*[+-]?[0-9]+")  # what a C++ istream reads as a whole int


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored_password(driver: str, password: str) -> str:
    """What oned stores (User::set_password): core passwords hashed, the others as given."""
    return sha256(password) if driver == "core" else password


def _fail() -> OneError:
    return OneError(AUTHENTICATION, AUTH_FAILED)


def _user_by_name(db: Store, name: str) -> dict | None:
    found = db.by_name("user", name)
    return found[0] if found else None


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts, whatever their characters (compare_digest takes ASCII str only)."""
    return hmac.compare_digest(a.encode(), b.encode())


class Sessions:
    """oned's session cache (UserPool's CachePool of SessionToken): one secret per user id, in memory
    only, as oned's is. Used under the engine's lock."""

    def __init__(self, lifetime: int):
        self.lifetime = lifetime
        self._cached: dict[int, tuple[str, int]] = {}

    def valid(self, uid: int, secret: str, now: int) -> bool:
        secret_until = self._cached.get(uid)
        return secret_until is not None and _same(secret_until[0], secret) and now < secret_until[1]

    def keep(self, uid: int, secret: str, now: int) -> None:
        self._cached[uid] = (secret, now + self.lifetime)

    def drop(self, uid: int) -> None:
        """A new password, driver, a disabled or deleted user: oned resets the session."""
        self._cached.pop(uid, None)


def _server_cipher(server: str, password: str, token: str, now: int) -> bool:
    """The server_cipher driver's check: the token decrypts with the server's key, names the server
    first and its expiry (a number, last) is still ahead. It does not look at the user acted for."""
    plain = cipher.decrypt(password, token)
    if plain is None:
        return False
    fields = plain.split(":")
    expiry = _INT.match(fields[-1])  # Ruby's to_i: the leading number, 0 without one
    return fields[0] == server and now < (int(expiry.group()) if expiry else 0)


# What each external driver checks: (account name, its stored password, the secret, now) -> passed.
# Drivers that oned's AUTH_MAD runs and onelite lacks (x509, server_x509, ssh, ldap) refuse; a check
# of theirs goes here.
DRIVERS: dict[str, Callable[[str, str, str, int], bool]] = {"server_cipher": _server_cipher}


@dataclass(frozen=True)
class DriverCheck:
    """What oned hands its external auth driver: the *secret* to check with *driver* against the
    *account* and its stored *password*; once passed, the secret is user *uid*'s session, acting
    in group *egid* (-1: all its groups)."""

    driver: str
    account: str
    password: str
    secret: str
    uid: int
    egid: int = -1

    def passes(self, now: int) -> bool:
        check = DRIVERS.get(self.driver)
        return check is not None and check(self.account, self.password, self.secret, now)


def authenticate(db: Store, sessions: Sessions, session: str, now: int) -> tuple[dict, int] | DriverCheck:
    """(user, effective gid or -1), or the check the external driver must pass first; raises the
    256 OneError. What it changes in *db* (a SHA-1 upgrade, a dropped token) stands even when it refuses."""
    name, sep, secret = session.partition(":")
    if not sep:
        raise _fail()
    user = _user_by_name(db, name)
    # a user oned does not know goes to DEFAULT_AUTH's driver, "default", which AUTH_MAD does not run
    if user is None or not user["ENABLED"]:
        raise _fail()
    if user["AUTH_DRIVER"].startswith("server"):
        return _as_server(db, sessions, user, secret, now)
    return _as_user(db, sessions, user, secret, now)


def accept(db: Store, sessions: Sessions, check: DriverCheck, now: int) -> tuple[dict, int]:
    """After the driver passed *check*: its secret becomes the user's cached session; the user as it is now."""
    user = db.get("user", check.uid)
    if user is None:
        raise _fail()
    sessions.keep(check.uid, check.secret, now)
    return user, check.egid


def _as_user(db: Store, sessions: Sessions, user: dict, secret: str, now: int) -> tuple[dict, int] | DriverCheck:
    uid, driver, stored = user["ID"], user["AUTH_DRIVER"], user["PASSWORD"]
    sha1 = hashlib.sha1(secret.encode()).hexdigest()
    if _same(stored, sha1):  # upgraded to SHA-256 by User::set_password, which drops sessions and tokens
        user.update(PASSWORD=stored_password(driver, secret), LOGIN_TOKENS=[])
        sessions.drop(uid)
        db.put("user", user)
    token = next((t for t in user["LOGIN_TOKENS"] if _same(t[0], secret)), None)
    if token is not None and (token[1] == -1 or now < token[1]):
        egid = token[2]
        if egid != -1 and egid not in user["GROUPS"]:  # the user has left the token's group: oned drops it
            user["LOGIN_TOKENS"] = [t for t in user["LOGIN_TOKENS"] if t is not token]
            db.put("user", user)
            raise _fail()
        return user, egid
    if sessions.valid(uid, secret, now):
        return user, -1
    if token is not None:  # an expired token: refused, and listed until the user's next login
        raise _fail()
    if driver == "core":
        if not (_same(stored, sha256(secret)) or _same(stored, sha1)):
            raise _fail()
        sessions.keep(uid, secret, now)
        return user, -1
    if driver in external_auth_drivers():
        return DriverCheck(driver, user["NAME"], stored, secret, uid)
    raise _fail()  # public users never log in themselves; a driver AUTH_MAD does not run refuses at once


def _as_server(db: Store, sessions: Sessions, server: dict, secret: str, now: int) -> tuple[dict, int] | DriverCheck:
    target_name, sep, token = secret.partition(":")
    if not sep:
        raise _fail()
    egid_text, sep, rest = token.partition(":")
    egid = -1
    if sep:
        if not _INT.fullmatch(egid_text):
            raise _fail()
        egid, token = int(egid_text), rest
    target = _user_by_name(db, target_name)
    if target is None:  # oned checks that the server account is enabled, not the user it acts for
        raise _fail()
    if sessions.valid(target["ID"], token, now):
        return target, egid
    return DriverCheck(server["AUTH_DRIVER"], server["NAME"], server["PASSWORD"], token, target["ID"], egid)

"""Session strings to users, as oned's UserPool::authenticate does it.

``user:password`` (core: SHA-256 hex stored, SHA-1 upgraded; public: as stored; or a
``one.user.login`` token), and ``server:target[:egid]:token`` for server_cipher accounts.
Every failure is the same 256 answer, whatever went wrong.
"""

from __future__ import annotations

import hashlib
import hmac

from one import cipher

from .errors import AUTH_FAILED, AUTHENTICATION, OneError
from .store import Store

SERVER_DRIVERS = ("server_cipher",)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _fail() -> OneError:
    return OneError(AUTHENTICATION, AUTH_FAILED)


def _user_by_name(db: Store, name: str) -> dict | None:
    found = db.by_name("user", name)
    return found[0] if found else None


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two texts, whatever their characters (compare_digest takes ASCII str only)."""
    return hmac.compare_digest(a.encode(), b.encode())


def _token_ok(user: dict, secret: str, now: int) -> int | None:
    """The token's effective group when *secret* is a live login token of *user*."""
    for token, expire, egid in user.get("LOGIN_TOKENS", []):
        if _same(token, secret) and (expire < 0 or expire > now):
            return egid
    return None


def authenticate(db: Store, session: str, now: int) -> tuple[dict, int]:
    """(user, effective gid or -1); raises the 256 OneError."""
    name, sep, secret = session.partition(":")
    if not sep:
        raise _fail()
    user = _user_by_name(db, name)
    if user is None or not user["ENABLED"]:
        raise _fail()
    driver = user["AUTH_DRIVER"]
    if ":" in secret and driver in SERVER_DRIVERS:
        return _server_session(db, user, secret, now)
    egid = _token_ok(user, secret, now)
    if egid is not None:
        return user, egid
    stored = user["PASSWORD"]
    if driver == "core":
        if _same(stored, sha256(secret)):
            return user, -1
        if _same(stored, hashlib.sha1(secret.encode()).hexdigest()):
            user["PASSWORD"] = sha256(secret)  # oned upgrades SHA-1 passwords at login
            db.put("user", user)
            return user, -1
    elif driver == "public" and _same(stored, secret):
        return user, -1
    raise _fail()


def _server_session(db: Store, server: dict, secret: str, now: int) -> tuple[dict, int]:
    parts = secret.split(":")
    if len(parts) == 2:
        target_name, token = parts
        egid = -1
    elif len(parts) == 3:
        target_name, egid_text, token = parts
        try:
            egid = int(egid_text)
        except ValueError:
            raise _fail() from None
    else:
        raise _fail()
    plain = cipher.decrypt(server["PASSWORD"], token)
    if plain is None:
        raise _fail()
    fields = plain.split(":")
    if len(fields) < 3 or fields[0] != server["NAME"]:
        raise _fail()
    try:
        expire = int(fields[-1])
    except ValueError:
        raise _fail() from None
    if expire <= now:
        raise _fail()
    target = _user_by_name(db, target_name)
    if target is None:  # oned checks that the server account is enabled, not the user it acts for
        raise _fail()
    return target, egid

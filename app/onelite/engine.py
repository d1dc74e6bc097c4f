"""One XML-RPC call from bytes in to bytes out: parse, authenticate, run in one transaction, answer.

Calls are serialized by one lock, as oned's request manager effectively does with its
SQLite backend; each runs in its own transaction so a failure leaves nothing behind.
Authentication is a transaction of its own before it (what it writes stands, as in oned), and
a check for oned's external auth driver (auth.DriverCheck) runs between the two, outside the
lock: oned's driver is a process of its own that takes its time and checks calls in parallel.
"""

from __future__ import annotations

import logging
import threading
import time

from . import api  # noqa: F401  (registers the handlers)
from .auth import DriverCheck, accept, authenticate
from .cloud import Call, Cloud
from .errors import AUTH_FAILED, AUTHENTICATION, INTERNAL, Fault, OneError
from .registry import METHODS, check_params
from .wire import I8, fault, parse_call, response

log = logging.getLogger("onelite")


AUTH_DRIVER_DELAY = 0.15  # seconds oned 6.10.5's server_cipher driver took per check, measured


class Engine:
    def __init__(self, cloud: Cloud, auth_driver_delay: float = AUTH_DRIVER_DELAY):
        self.cloud = cloud
        self.auth_driver_delay = auth_driver_delay
        self.lock = threading.RLock()
        self._request_id = 0

    def handle(self, body: bytes) -> bytes:
        started = time.perf_counter()
        name, who, code = "?", "-", 0
        try:
            try:
                name, params = parse_call(body)
            except ValueError as e:
                raise Fault(-503, f"Call XML not a proper XML-RPC call.  {e}") from None
            m = METHODS.get(name)
            if m is None:
                raise Fault(-506, f"Method '{name}' not defined")
            if not params:
                raise Fault(-501, "Not enough parameters")
            if not isinstance(params[0], str):
                raise Fault(-501, "Parameter that is supposed to be string is not")
            args = check_params(m, params[1:])
            session = params[0]
            who = session.split(":", 1)[0]
            answer, acting = self._run(name, m.func, session, args)
            if acting != who:
                who = f"{who}>{acting}"  # a server_cipher session acting for a user
        except Fault as f:
            code = f.code
            answer = fault(f.code, f.message)
        except OneError as e:
            code = e.code
            answer = response([False, f"[{name}] {e.message}", e.code, e.oid, I8(-1)])
        log.info("%s user=%s code=%s ms=%.1f", name, who, code, (time.perf_counter() - started) * 1000)
        return answer

    def _run(self, name: str, func, session: str, args: list) -> tuple[bytes, str]:
        sessions = self.cloud.sessions
        with self.lock:
            found = self._authenticate(lambda db, now: authenticate(db, sessions, session, now))
            if not isinstance(found, DriverCheck):
                return self._call(name, func, *found, args)
        time.sleep(self.auth_driver_delay)
        if not found.passes(self.cloud.now()):
            raise OneError(AUTHENTICATION, AUTH_FAILED)
        with self.lock:
            return self._call(name, func, *self._authenticate(lambda db, now: accept(db, sessions, found, now)), args)

    def _authenticate(self, step):
        """*step(db, now)* in a transaction that is kept whether it answers or refuses."""
        db = self.cloud.store
        db.begin()
        try:
            return step(db, self.cloud.now())
        except OneError:
            raise
        except Exception:
            log.exception("authentication failed")
            raise OneError(INTERNAL, "Internal error, see onelite's log") from None
        finally:
            db.commit()

    def _call(self, name: str, func, user: dict, egid: int, args: list) -> tuple[bytes, str]:
        db = self.cloud.store
        db.begin()
        try:
            self._request_id += 1
            self.cloud.request_id = self._request_id
            gids = set(user["GROUPS"]) if egid < 0 else {egid}
            result = func(Call(self.cloud, name, user, gids, egid), *args)
            db.commit()
        except (OneError, Fault):
            db.rollback()
            raise
        except Exception:
            db.rollback()
            log.exception("%s failed", name)
            raise OneError(INTERNAL, "Internal error, see onelite's log") from None
        return response([True, result, 0]), user["NAME"]

    def as_oneadmin(self, func):
        """Run *func(call)* as oneadmin in one transaction (the drivers and scheduler use this)."""
        with self.lock:
            db = self.cloud.store
            db.begin()
            try:
                admin = db.get("user", 0)
                result = func(Call(self.cloud, "internal", admin, set(admin["GROUPS"])))
                db.commit()
                return result
            except Exception:
                db.rollback()
                raise

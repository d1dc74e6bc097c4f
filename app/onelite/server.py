"""onelite's HTTP side: XML-RPC on POST /RPC2 within oned's XML-RPC server limits, clean stop on SIGTERM.

As oned's xmlrpc-c (Abyss) server does it: MAX_CONN connections are served at once, each by a thread,
and the others wait unaccepted in the listen backlog; a connection serves one call and is closed; a client
that leaves a read waiting TIMEOUT seconds is dropped; a request over MESSAGE_SIZE is refused from its
Content-Length, before its body is read. Error statuses and messages are Abyss's.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import signal
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from one import template as tpl

from .bootstrap import bootstrap
from .cloud import Cloud
from .conf import oned_conf
from .engine import AUTH_DRIVER_DELAY, Engine
from .hypervisor import Hypervisor
from .store import Store

log = logging.getLogger("onelite")

POLL = 0.2  # seconds between checks for a stop request while waiting


@dataclass(frozen=True)
class Limits:
    """oned.conf's XML-RPC server settings."""

    max_conn: int
    max_conn_backlog: int
    timeout: float
    message_size: int

    @classmethod
    def of_oned_conf(cls) -> Limits:
        conf = oned_conf()
        return cls(*(int(tpl.get(conf, key)) for key in ("MAX_CONN", "MAX_CONN_BACKLOG", "TIMEOUT", "MESSAGE_SIZE")))


def body_length(header: str | None, limit: int) -> tuple[int, int, str]:
    """(length, 0, "") for a Content-Length the server reads a body of, else (0, HTTP status, Abyss's reason)."""
    if header is None:
        return 0, 411, "You must send a content-length HTTP header in an XML-RPC call."
    if not header:
        return 0, 400, "The value in your content-length HTTP header value is a null string"
    number = re.match(r"\s*[+-]?[0-9]+", header)  # what C's strtoul reads
    tail = header[number.end() :] if number else header
    if tail:
        return 0, 400, f"There's non-numeric crap in the value of your content-length HTTP header: '{tail}'"
    length = int(number.group())
    if length == 0:
        return 0, 400, "According to your content-length HTTP header, your request is empty (zero length)"
    if length < 0 or length > limit:  # strtoul wraps a negative length around; Abyss prints it unsigned
        return 0, 500, f"XML-RPC request too large ({length % 2**32} bytes)"
    return length, 0, ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "onelite"
    engine: Engine
    limits: Limits

    def setup(self):
        super().setup()
        # headers and body leave in two writes: without this, Nagle and delayed ACKs add 40 ms per call
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        if path != "/RPC2":
            self._send(
                404,
                "This XML-RPC For C/C++ Abyss XML-RPC server responds to only one URI path.  I don't know what URI "
                f"path that is, but it's not the one you requested: '{path}'.  (Typically, it's '/RPC2')",
            )
            return
        length, status, reason = body_length(self.headers.get("Content-Length"), self.limits.message_size)
        if status:
            self._send(status, reason)
            return
        body = self.rfile.read(length)
        self._send(200, self.engine.handle(body), "text/xml")

    def do_GET(self):  # noqa: N802
        self._send(405, "POST is the only HTTP method this server understands")

    def _send(self, status: int, body: bytes | str, ctype: str = "text/plain"):
        body = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # one call per connection, as oned
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # the engine logs each call; skip http.server's own lines
        pass


class _Server(ThreadingHTTPServer):
    """Accepts a connection only while fewer than MAX_CONN are being served."""

    daemon_threads = True

    def __init__(self, address, handler, limits: Limits):
        self.request_queue_size = limits.max_conn_backlog  # listen()'s backlog
        self._slots = threading.BoundedSemaphore(limits.max_conn)
        self.stopping = False
        super().__init__(address, handler)

    def get_request(self):
        while not self._slots.acquire(timeout=POLL):
            if self.stopping:
                raise OSError("stopping")  # serve_forever's loop skips this round and sees the stop request
        try:
            return super().get_request()
        except OSError:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _lock_data(data_dir: str):
    """One onelite per data directory: a second would share the database and answer its calls with
    "database is locked"."""
    handle = open(os.path.join(data_dir, "lock"), "a")  # noqa: SIM115  (kept open: the lock is its life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise OSError(f"{data_dir} is in use by another onelite") from None
    return handle


class OneliteServer:
    def __init__(
        self,
        host: str,
        port: int,
        data_dir: str,
        sched_interval: float = 1.0,
        safe_dirs: str = "/var/tmp /tmp",
        limits: Limits | None = None,
        auth_driver_delay: float = AUTH_DRIVER_DELAY,
    ):
        os.umask(0o077)  # the database holds password hashes and the image files are users' data
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        self._lock = _lock_data(data_dir)  # held until the process ends
        self.store = Store(os.path.join(data_dir, "one.db"))
        if bootstrap(self.store, data_dir, safe_dirs):
            log.info("bootstrapped a new cloud in %s", data_dir)
        self.engine = Engine(Cloud(self.store, data_dir), auth_driver_delay)
        self.hypervisor = Hypervisor(self.engine, sched_interval)
        limits = limits or Limits.of_oned_conf()
        # StreamRequestHandler puts timeout on the socket: each read waits that long at most
        handler = type("Handler", (_Handler,), {"engine": self.engine, "limits": limits, "timeout": limits.timeout})
        self.http = _Server((host, port), handler, limits)

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    def serve_forever(self):
        self.hypervisor.start()
        log.info("listening on http://%s:%d/RPC2", *self.http.server_address[:2])
        try:
            self.http.serve_forever(poll_interval=POLL)
        finally:
            self.hypervisor.stop()
            self.http.server_close()
            with self.engine.lock:
                self.store.close()
            log.info("stopped")

    def shutdown(self):
        self.http.stopping = True
        threading.Thread(target=self.http.shutdown, daemon=True).start()

    def install_signal_handlers(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.shutdown())

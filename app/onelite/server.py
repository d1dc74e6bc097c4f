"""onelite's HTTP side: XML-RPC on POST /RPC2, threads per connection, clean stop on SIGTERM."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .bootstrap import bootstrap
from .cloud import Cloud
from .engine import Engine
from .hypervisor import Hypervisor
from .store import Store

log = logging.getLogger("onelite")

MAX_BODY = 64 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "onelite"
    engine: Engine

    def setup(self):
        super().setup()
        # headers and body leave in two writes: without this, Nagle and delayed ACKs add 40 ms per call
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        if self.path.split("?")[0] != "/RPC2":
            self._send(404, b"Not Found", "text/plain")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send(411, b"Length Required", "text/plain")
            return
        if length < 0 or length > MAX_BODY:
            self._send(413, b"Request Entity Too Large", "text/plain")
            return
        body = self.rfile.read(length)
        self._send(200, self.engine.handle(body), "text/xml")

    def do_GET(self):  # noqa: N802
        self._send(405, b"XML-RPC server accepts POST requests only.", "text/plain")

    def _send(self, status: int, body: bytes, ctype: str):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # the engine logs each call; skip http.server's own lines
        pass


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
    ):
        os.umask(0o077)  # the database holds password hashes and the image files are users' data
        os.makedirs(data_dir, mode=0o700, exist_ok=True)
        self._lock = _lock_data(data_dir)  # held until the process ends
        self.store = Store(os.path.join(data_dir, "one.db"))
        if bootstrap(self.store, data_dir, safe_dirs):
            log.info("bootstrapped a new cloud in %s", data_dir)
        self.engine = Engine(Cloud(self.store, data_dir))
        self.hypervisor = Hypervisor(self.engine, sched_interval)
        handler = type("Handler", (_Handler,), {"engine": self.engine})
        ThreadingHTTPServer.daemon_threads = True
        self.http = ThreadingHTTPServer((host, port), handler)

    @property
    def port(self) -> int:
        return self.http.server_address[1]

    def serve_forever(self):
        self.hypervisor.start()
        log.info("listening on http://%s:%d/RPC2", *self.http.server_address[:2])
        try:
            self.http.serve_forever(poll_interval=0.2)
        finally:
            self.hypervisor.stop()
            self.http.server_close()
            with self.engine.lock:
                self.store.close()
            log.info("stopped")

    def shutdown(self):
        threading.Thread(target=self.http.shutdown, daemon=True).start()

    def install_signal_handlers(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.shutdown())

"""``econe-server [-c FILE] [--port P] [--metrics-port M] start|stop|restart|status|run|check``: the EC2
Query service on Cheroot.

``run`` stays in the foreground (systemd, tests): it tells systemd ``READY=1`` once it listens, and on
SIGTERM stops accepting, finishes the requests in flight and exits 0. ``start`` runs it in the background
with a pid file and waits until it answers; ``stop`` sends SIGTERM and waits; ``status`` exits 0 when it
runs, 3 when it does not (LSB). Configuration mistakes are reported with file, key and reason, exit 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import logging.handlers
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

from . import __version__, model
from .actions import ACTIONS
from .config import DEFAULT_PATH, Config, ConfigError, load, with_ports
from .edge import EdgeServer
from .gateway import Gateway
from .metrics import Metrics, health_app
from .notify import notify
from .web import MAX_FORM, make_app

LEVELS = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}
FORMAT = "%(asctime)s [%(levelname)s] [%(request_id)s] %(message)s"


class _DefaultRequestId(logging.Filter):
    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = "-"
        return True


class _LogFile(logging.handlers.WatchedFileHandler):
    """The log file, reopened when logrotate moves it. A reopen that fails (its directory removed, a
    rotation that left it unwritable) is a logging error like a failed write: it costs the line, and
    never raises into the request, or the signal handler, that logged it."""

    def emit(self, record):
        try:
            super().emit(record)  # the reopen, and FileHandler's opening, are outside its own try
        except OSError:
            self.handleError(record)


class _JsonLines(logging.Formatter):
    """``:log_format: json``: one JSON object a line, with time (UTC), level, request_id and message, and
    the fields of a request's line (``fields``, which web.py gives it: what its text says, no secret)."""

    def format(self, record):
        line = {
            **getattr(record, "fields", {}),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "request_id": record.request_id,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def setup_logging(cfg: Config, to_stderr: bool) -> None:
    handler: logging.Handler
    if to_stderr or cfg.log_file == "-":
        handler = logging.StreamHandler(sys.stderr)
    else:
        os.makedirs(os.path.dirname(cfg.log_file) or ".", exist_ok=True)
        handler = _LogFile(cfg.log_file)
    handler.setFormatter(_JsonLines() if cfg.log_format == "json" else logging.Formatter(FORMAT))
    handler.addFilter(_DefaultRequestId())
    root = logging.getLogger("econe")
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[cfg.debug_level])
    root.propagate = False


STOP_WAIT = 30  # seconds a stop waits for the requests in flight, past the drain, before econe revokes its tokens
METRICS_TIMEOUT = 5  # seconds a client of the metrics port (a scrape, a health check) has to send its request


def serve(cfg: Config) -> int:
    log = logging.getLogger("econe")
    model.prepare(op for name, act in ACTIONS.items() if (op := model.operation(name, act.service)))
    metrics = Metrics()
    gateway = Gateway(cfg.one_xmlrpc, cfg.server_user, cfg.server_password, metrics, cfg.cache_ttl)
    server = EdgeServer(
        (cfg.host, cfg.port),
        make_app(cfg, gateway, metrics),
        threads=cfg.threads,
        request_timeout=cfg.request_timeout,
        max_body=cfg.max_upload_size + MAX_FORM,  # an upload's fields and file part
        metrics=metrics,
        trusted=cfg.trusted_proxies,
    )
    listener = None
    if cfg.metrics_port:  # behind the same edge: a client that trickles its request holds none of its workers
        listener = EdgeServer(
            (cfg.host, cfg.metrics_port),
            health_app(metrics),
            threads=2,
            request_timeout=METRICS_TIMEOUT,
            max_body=0,
            metrics=None,
        )

    stopped = threading.Event()  # set once the connections taken are answered (or given up by Cheroot)

    def stop(*_):
        metrics.stopping = True  # /health answers 503 while the requests in flight finish
        notify("STOPPING=1")

        # stop() refuses new connections, serves those taken (edge.EdgeConnections._drain) and joins the
        # worker threads: never from the signal handler's own (serving) thread
        def finish():
            server.stop()
            stopped.set()

        threading.Thread(target=finish, daemon=True).start()
        log.info("SIGTERM: finishing requests in flight and stopping")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    metrics_at = f", metrics on http://{cfg.host}:{cfg.metrics_port}/metrics" if listener else ""
    log.info(
        "econe %s listening on http://%s:%d/ (oned %s%s)", __version__, cfg.host, cfg.port, cfg.one_xmlrpc, metrics_at
    )
    if "x509" in cfg.auth and not cfg.proxy_secret:
        log.warning(
            "x509 without proxy_secret_file: any process connecting from a trusted proxy's address (%s) may act "
            "as any x509 user",
            ", ".join(map(str, cfg.trusted_proxies)),
        )
    for port, ready in [(cfg.port, server), *([(cfg.metrics_port, listener)] if listener else [])]:
        try:
            ready.prepare()  # binds and listens: a port in use is said now, with its number
        except OSError as e:
            log.error("cannot listen on %s:%d: %s", cfg.host, port, e)
            print(f"econe-server: cannot listen on {cfg.host}:{port}: {e}", file=sys.stderr)
            return 1
    if listener:
        threading.Thread(target=listener.serve, name="metrics", daemon=True).start()
    # what is made by now (botocore's model and the writers: most of the heap) lives as long as the
    # process: out of the collector's sight, a full collection walks only what requests made since (one
    # during a first listing of 1,000 VMs cost 45-70 ms, 45-70 us a VM, in bench/first_listing.py)
    gc.collect()
    gc.freeze()
    notify("READY=1")  # both ports listen: what connects now is queued until the loop below takes it
    server.serve()  # returns once a stop has taken what connected, while its requests may still run
    stopped.wait(cfg.request_timeout + STOP_WAIT)
    gateway.sign_out()
    if listener:
        listener.stop()
    log.info("stopped")
    return 0


def _read_pid(path: str) -> int | None:
    try:
        with open(path) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start(cfg: Config, config_path: str) -> int:
    pid = _read_pid(cfg.pid_file)
    if pid:
        print(f"econe-server is already running (pid {pid})")
        return 0
    os.makedirs(os.path.dirname(cfg.pid_file) or ".", exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "econe.server",
        "-c",
        config_path,
        "--pid-file",
        cfg.pid_file,
        "--log-file",
        cfg.log_file,
        "--port",
        str(cfg.port),
        *(["--metrics-port", str(cfg.metrics_port)] if cfg.metrics_port else []),
        "run",
    ]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip()
            print(f"econe-server failed to start: {err or 'see ' + cfg.log_file}", file=sys.stderr)
            return 1
        if _answers(cfg.host, cfg.port):
            with open(cfg.pid_file, "w") as f:
                f.write(f"{proc.pid}\n")
            print(f"econe-server started (pid {proc.pid}), listening on {cfg.host}:{cfg.port}")
            return 0
        time.sleep(0.1)
    proc.terminate()
    print("econe-server did not start listening within 30 s", file=sys.stderr)
    return 1


def stop(cfg: Config) -> int:
    pid = _read_pid(cfg.pid_file)
    if not pid:
        print("econe-server is not running")
        if os.path.exists(cfg.pid_file):
            os.unlink(cfg.pid_file)
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(150):
        if _read_pid(cfg.pid_file) is None:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
    if os.path.exists(cfg.pid_file):
        os.unlink(cfg.pid_file)
    print(f"econe-server stopped (pid {pid})")
    return 0


def status(cfg: Config) -> int:
    pid = _read_pid(cfg.pid_file)
    if pid:
        print(f"econe-server is running (pid {pid}) on {cfg.host}:{cfg.port}")
        return 0
    print("econe-server is not running")
    return 3


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"must be an integer 1-65535, got {text!r}")
    return int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="econe-server",
        description="Amazon EC2 Query API for OpenNebula. Reads econe.conf (YAML, the original's keys) and the "
        "server account from the file named by ONE_CIPHER_AUTH (default /var/lib/one/.one/ec2_auth).",
    )
    parser.add_argument(
        "-c",
        "--config",
        default=os.environ.get("ECONE_CONF", DEFAULT_PATH),
        help=f"configuration file (default {DEFAULT_PATH}, or $ECONE_CONF)",
    )
    parser.add_argument("--pid-file", help="pid file (default: econe.conf pid_file, /var/run/one/econe-server.pid)")
    parser.add_argument("--log-file", help="log file (default: econe.conf log_file; '-' for standard error)")
    parser.add_argument(
        "--port", type=_port, help="the EC2 port (beats econe.conf's port: one file serves every instance)"
    )
    parser.add_argument(
        "--metrics-port", type=_port, help="the metrics and /health port (beats econe.conf's metrics_port)"
    )
    parser.add_argument("--version", action="version", version=f"econe-server {__version__}")
    parser.add_argument(
        "command",
        choices=["start", "stop", "restart", "status", "run", "check"],
        help="run: stay in the foreground; start/stop/restart/status: manage a background server; "
        "check: read the configuration (and the files it names), say what is wrong, start nothing",
    )
    args = parser.parse_args(argv)
    try:
        cfg = with_ports(load(args.config), args.port, args.metrics_port)
    except ConfigError as e:
        print(f"econe-server: {e}", file=sys.stderr)
        return 2
    if args.command == "check":
        print(f"econe-server: {args.config} is valid")
        return 0
    if args.pid_file:
        cfg.pid_file = args.pid_file
    if args.log_file:
        cfg.log_file = args.log_file
    if args.command == "run":
        setup_logging(cfg, to_stderr=False)
        return serve(cfg)
    if args.command == "start":
        return start(cfg, args.config)
    if args.command == "stop":
        return stop(cfg)
    if args.command == "status":
        return status(cfg)
    stop(cfg)
    return start(cfg, args.config)


if __name__ == "__main__":
    sys.exit(main())

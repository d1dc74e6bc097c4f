"""Normal clients while N slow ones hold connections open on econe's own port (#8 item 14).

Starts onelite and econe-server (econe.conf defaults: 16 threads, request_timeout 10 s) on free
loopback ports, opens N connections that send their request a byte at a time — its head
("head"), or a complete head then its 100-byte body ("body"), or a head and the first 300 KiB of a
larger body then the rest ("large body") — opening again any connection the server ends, as an
attacker would; meanwhile one client makes signed DescribeRegions one after another for
--seconds, each on a new connection with a 5 s timeout. Prints, and appends to bench/RESULTS.md,
how many were served and the worst latency, and how the slow connections ended.

Usage: python -m bench.slow_clients [--slow 200] [--seconds 15] [--label TEXT] [--no-record]
(``PYTHONPATH=/other/checkout/app python -m bench.slow_clients`` measures another version of econe.)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import selectors
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

from econe.auth import v2_signature, v2_string_to_sign

KINDS = ("head", "body", "large body")
LARGE_FIRST = 300 * 1024  # what a "large body" client sends at once, before the byte-at-a-time rest


def signed_query(port: int, user: str, secret: str, method: str = "GET", **params) -> str:
    """A SigV2-signed DescribeRegions (or *params*) for 127.0.0.1:*port*, as a query string or form body."""
    pairs = {
        "Action": "DescribeRegions",
        "Version": "2016-11-15",
        "AWSAccessKeyId": user,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **params,
    }
    to_sign = v2_string_to_sign(method, f"127.0.0.1:{port}", "/", list(pairs.items()))
    pairs["Signature"] = v2_signature(secret, to_sign)
    return urlencode(pairs)


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes


def parse_answers(data: bytes) -> list[Answer]:
    """Every HTTP response in *data*, in order (econe's answers carry a Content-Length)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError(f"a truncated answer: {data[:200]!r}")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        status = int(lines[0].split()[1])
        length = 0 if status < 200 else int(headers.get("content-length", 0))
        out.append(Answer(status, headers, rest[:length]))
        data = rest[length:]
    return out


class SlowClients:
    """*n* connections that send a request a byte at a time: its head (*kind* "head"), or a complete
    head, *first* bytes of its body at once and the rest of it ("body"); one byte per connection
    every *every* seconds, from one thread. A connection the server ends is opened again, as an
    attacker would; the answers it got and how long it lived are kept."""

    def __init__(self, port: int, n: int, kind: str, every: float = 0.5, first: bytes = b""):
        self.port, self.n, self.kind, self.every, self.first = port, n, kind, every, first
        self.answers: list[Answer] = []
        self.ended: list[float] = []  # how long each connection the server ended had lived
        self.sel = selectors.DefaultSelector()
        self.stop = threading.Event()
        self._top_up()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _top_up(self) -> None:
        while len(self.sel.get_map()) < self.n:
            sock = socket.create_connection(("127.0.0.1", self.port))
            if self.kind == "head":
                start = b"GET /?Action=DescribeRegions HTTP/1.1\r\nHost: x\r\n"
            else:
                start = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                start += b"Content-Length: %d\r\n\r\n%s" % (len(self.first) + 100, self.first)
            self.sel.register(sock, selectors.EVENT_READ, {"opened": time.monotonic(), "got": b""})
            with contextlib.suppress(OSError):  # refused before it was all sent: its answer may still be read
                sock.sendall(start)
            sock.setblocking(False)

    def _run(self) -> None:
        next_byte = time.monotonic()
        while not self.stop.is_set():
            for key, _ in self.sel.select(timeout=0.05):
                try:
                    chunk = key.fileobj.recv(65536)
                except OSError:
                    chunk = b""
                key.data["got"] += chunk
                if not chunk:
                    self._ended(key)
            if time.monotonic() >= next_byte:
                next_byte += self.every
                for key in list(self.sel.get_map().values()):
                    try:
                        key.fileobj.send(b"X" if self.kind == "head" else b"a")
                    except OSError:
                        self._ended(key)
            self._top_up()

    def _ended(self, key) -> None:
        self.sel.unregister(key.fileobj)
        key.fileobj.close()
        self.ended.append(time.monotonic() - key.data["opened"])
        if key.data["got"]:
            self.answers += parse_answers(key.data["got"])

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def normal_requests(port: int, user: str, secret: str, seconds: float, timeout: float = 5.0) -> tuple[int, int, float]:
    """(served, made, worst latency in s) of signed DescribeRegions made one after another for *seconds*."""
    served = made = 0
    worst, stop = 0.0, time.monotonic() + seconds
    while time.monotonic() < stop:
        made += 1
        t = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", "/?" + signed_query(port, user, secret), headers={"Host": f"127.0.0.1:{port}"})
            served += conn.getresponse().status == 200
        except OSError:
            pass  # a timeout: not served
        finally:
            conn.close()
        worst = max(worst, time.monotonic() - t)
        time.sleep(0.05)
    return served, made, worst


def run(slow: int, seconds: float) -> list[tuple]:
    import demo
    from tests.conftest import start_econe, start_onelite

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        one = start_onelite(work / "one")
        econe = None
        try:
            d = demo.provision(one.url, one.admin_session, str(work))
            econe = start_econe(work, one.url, one.data / "ec2_auth", debug_level=2)
            for kind in KINDS:
                first = b"a" * LARGE_FIRST if kind == "large body" else b""
                clients = SlowClients(econe.port, slow, "head" if kind == "head" else "body", first=first)
                try:
                    served, made, worst = normal_requests(econe.port, d.user, d.secret, seconds)
                finally:
                    clients.close()
                ends = Counter(a.status for a in clients.answers)
                rows.append((kind, served, made, worst, len(clients.ended), dict(sorted(ends.items()))))
        finally:
            if econe:
                econe.stop()
            one.stop()
    return rows


def table(rows, slow: int) -> str:
    lines = [
        f"| {slow} slow connections sending | normal requests served / made | worst latency (s) "
        "| slow connections the server ended | their answers (status: count) |",
        "|---|---|---|---|---|",
    ]
    for kind, served, made, worst, ended, ends in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in ends.items()) or "none"
        lines.append(f"| {kind} | {served} / {made} | {worst:.2f} | {ended} | {answers} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from bench.onelite_bench import record

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, default=200, help="slow connections held open (default 200)")
    parser.add_argument("--seconds", type=float, default=15, help="how long each kind is measured (default 15)")
    parser.add_argument("--label", default="", help="what was measured, for the title (e.g. a commit)")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    load = "load average {:.2f} {:.2f} {:.2f} at the start".format(*os.getloadavg())
    out = table(run(args.slow, args.seconds), args.slow) + f"\n\nEach kind measured for {args.seconds:g} s; {load}."
    print(out)
    if not args.no_record:
        record(f"slow clients on econe's port{': ' + args.label if args.label else ''}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""econe-server's own port as an attacker meets it (#8 items 9, 14, 19): request framing, slow and
many clients, and the client address behind a trusted proxy. Raw sockets against real processes."""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import re
import resource
import selectors
import signal
import socket
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

import demo
from bench.slow_clients import Answer, SlowClients, parse_answers
from bench.slow_clients import signed_query as bench_signed_query
from econe.config import ConfigError, load
from econe.edge import client_of, head_size

from .conftest import Econe, start_econe, write_conf

TIMEOUT = 2  # econe.conf request_timeout of the econe these tests drive: deadlines show in seconds
SLOW = 200  # slow connections held open while normal clients are served


@dataclass
class Edge:
    econe: Econe
    user: str
    secret: str

    @property
    def port(self) -> int:
        return self.econe.port

    def log(self) -> str:
        return self.econe.log.read_text()

    def logs(self) -> str:
        """The service's log and the process's standard error, where Cheroot writes its own errors."""
        return self.log() + self.econe.log.with_suffix(".out").read_text()


@pytest.fixture(scope="module")
def edge(module_cloud, tmp_path_factory):
    cloud = module_cloud
    work = tmp_path_factory.mktemp("edge")
    d = demo.provision(
        cloud.url,
        cloud.admin_session,
        str(work),
        user=cloud.name("edgeuser"),
        group=cloud.name("edge"),
        prefix=cloud.prefix + "edge-",
        host=cloud.host,
        datastore=cloud.datastore,
        cluster=cloud.cluster,
    )
    econe = start_econe(
        work,
        cloud.url,
        cloud.server_auth,
        request_timeout=TIMEOUT,
        trusted_proxies=["127.0.0.2/31"],  # 127.0.0.2 and .3 are the proxies; 127.0.0.1 is a client
        datastore_id=cloud.datastore,
    )
    yield Edge(econe, d.user, d.secret)
    econe.stop()


# ---------------------------------------------------------------- helpers


def signed_query(edge: Edge, method: str = "GET") -> str:
    return bench_signed_query(edge.port, edge.user, edge.secret, method)


def signed_post(edge: Edge, length: bytes | None = None) -> bytes:
    body = signed_query(edge, "POST").encode()
    return (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %s\r\n\r\n%s" % (edge.port, length or str(len(body)).encode(), body)
    )


def error_code(answer: Answer) -> str | None:
    return ET.fromstring(answer.body).findtext("Errors/Error/Code")


def exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[list[Answer], bool]:
    """Send *data* without closing our side; collect what comes back until the server closes the
    connection or *wait* seconds pass. (answers, whether the server closed the connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        received, closed, deadline = b"", False, time.monotonic() + wait
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return parse_answers(received), closed


def describe_regions(edge: Edge, timeout: float = 3.0, source: str | None = None, headers=None) -> tuple[int, str]:
    """(status, request id) of a signed DescribeRegions on a connection of its own."""
    conn = http.client.HTTPConnection(
        "127.0.0.1", edge.port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", "/?" + signed_query(edge), headers={"Host": f"127.0.0.1:{edge.port}", **(headers or {})})
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    return resp.status, ET.fromstring(body).findtext("{*}requestId") or ""


def served_while(edge: Edge, seconds: float) -> list[float]:
    """Latencies of normal signed requests made one after another for *seconds* (a failed or
    timed-out one fails the test)."""
    latencies, stop = [], time.monotonic() + seconds
    while time.monotonic() < stop:
        t = time.monotonic()
        status, _ = describe_regions(edge)
        latencies.append(time.monotonic() - t)
        assert status == 200
        time.sleep(0.05)
    return latencies


def log_line(edge: Edge, request_id: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in edge.log().splitlines():
            if f"[{request_id}]" in line and " status=" in line:
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line for {request_id}")


# ---------------------------------------------------------------- framing (item 9)


def test_a_normal_request_is_answered_and_the_connection_kept(edge):
    answers, closed = exchange(edge.port, signed_post(edge) + signed_post(edge), wait=1)
    assert [a.status for a in answers] == [200, 200]  # pipelined: both, in order
    assert not closed
    # optional whitespace around the value is not part of it (RFC 9110 5.5)
    answers, _ = exchange(edge.port, signed_post(edge, length=b" %d\t" % len(signed_query(edge, "POST"))), wait=1)
    assert [a.status for a in answers] == [200]


def test_expect_100_continue_gets_one_interim_answer(edge):
    body = signed_query(edge, "POST").encode()
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (edge.port, len(body))
    )
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"  # the client waits for it before its body
        sock.sendall(body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert [a.status for a in parse_answers(data)] == [200]


def _post(edge: Edge, framing: bytes, body: bytes = b"Action=DescribeRegions") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n%s" % (edge.port, framing, body)


BAD_FRAMING = [
    (b"Content-Length: -1\r\n", 400, "InvalidRequest"),
    (b"Content-Length: +5\r\n", 400, "InvalidRequest"),
    (b"Content-Length: \x0b5\r\n", 400, "InvalidRequest"),  # whitespace int() skips, HTTP does not
    (b"Content-Length: 5,5\r\n", 400, "InvalidRequest"),
    (b"Content-Length: 0x5\r\n", 400, "InvalidRequest"),
    (b"Content-Length: 2_2\r\n", 400, "InvalidRequest"),
    (b"Content-Length: \r\n", 400, "InvalidRequest"),
    (b"Content-Length: 22\r\nContent-Length: 22\r\n", 400, "InvalidRequest"),
    (b"Content-Length: 22\r\nContent-length: 5\r\n", 400, "InvalidRequest"),
    (b"Content-Length: 5\r\n  0\r\n", 400, "InvalidRequest"),  # a folded line would make it 50 to some
    (b"Transfer-Encoding: chunked\r\nContent-Length: 22\r\n", 400, "InvalidRequest"),
    (b"Transfer-Encoding: chunked\r\n", 411, "MissingContentLength"),
    (b"Transfer-Encoding: gzip, chunked\r\n", 411, "MissingContentLength"),
]


@pytest.mark.parametrize(("framing", "status", "code"), BAD_FRAMING, ids=[repr(f[0])[2:-5] for f in BAD_FRAMING])
def test_a_body_of_unknown_length_is_refused_at_once_and_the_connection_closed(edge, framing, status, code):
    t = time.monotonic()
    answers, closed = exchange(edge.port, _post(edge, framing), wait=3)
    assert [(a.status, error_code(a)) for a in answers] == [(status, code)]
    assert closed and time.monotonic() - t < 2  # at once: not after a timeout, nor at our end of the stream


def test_a_chunked_body_is_never_read_as_a_second_request(edge):
    inner = b"GET /?" + signed_query(edge).encode() + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % edge.port
    smuggling = b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nTransfer-Encoding: chunked\r\n\r\n%s" % (edge.port, inner)
    answers, closed = exchange(edge.port, smuggling, wait=3)
    assert [(a.status, error_code(a)) for a in answers] == [(411, "MissingContentLength")]
    assert closed


# found by the generated requests of test_http_fuzz: each had no EC2 answer, or a 5xx, or two answers
EDGE_CASES = [
    (b"PUT / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "InvalidRequest"),  # was Bottle's HTML page
    (b"GET / HTTP/2.0\r\n\r\n", 400, "InvalidRequest"),  # was a 505
    (b"get / HTTP/1.1\r\n\r\n", 400, "InvalidRequest"),  # was Cheroot's plain text
    (b"GET * HTTP/1.1\r\n\r\n", 400, "InvalidRequest"),
]


@pytest.mark.parametrize(
    ("request_", "status", "code"), EDGE_CASES, ids=[c[0].split(b"\r")[0].decode() for c in EDGE_CASES]
)
def test_what_the_application_does_not_take_is_an_ec2_error(edge, request_, status, code):
    answers, _ = exchange(edge.port, request_, wait=2)
    assert [(a.status, error_code(a)) for a in answers] == [(status, code)]


def test_a_request_cut_short_by_the_client_is_answered(edge):
    """A client that closes its side before the body it announced is complete still reads an answer."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(_post(edge, b"Content-Length: 50\r\n", b"Action=Desc"))
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert [(a.status, error_code(a)) for a in parse_answers(data)] == [(400, "IncompleteRequest")]


def test_a_refused_head_request_gets_no_document(edge):
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"Content-Length: " in head and rest == b""


@pytest.mark.parametrize("option", [b"Close", b"keep-alive, close"])
def test_connection_close_in_any_case_or_list_closes(edge, option):
    """Cheroot closes only on exactly "close"; what follows would be read as a second request."""
    answers, closed = exchange(
        edge.port,
        signed_post(edge).replace(b"\r\n\r\n", b"\r\nConnection: %s\r\n\r\n" % option, 1) + b"GET / HTTP/1.1\r\n\r\n",
        wait=2,
    )
    assert [a.status for a in answers] == [200] and closed


def test_a_head_larger_than_the_limit_is_refused(edge):
    big = b"GET /?Action=DescribeRegions HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (80 * 1024) + b"\r\n\r\n"
    answers, closed = exchange(edge.port, big, wait=3)
    assert [(a.status, error_code(a)) for a in answers] == [(431, "RequestHeaderSectionTooLarge")]
    assert closed


def test_the_listen_backlog_takes_a_burst_of_connections(edge):
    """With econe stopped (SIGSTOP), the kernel completes as many handshakes as the backlog holds;
    the others wait for a SYN retry (a second or more)."""
    socks = []
    os.kill(edge.econe.proc.pid, signal.SIGSTOP)
    try:
        for _ in range(64):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", edge.port))
            socks.append(s)
        time.sleep(0.3)
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_WRITE)
        connected = [
            k for k, _ in sel.select(timeout=0.2) if k.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        ]
        sel.close()
    finally:
        os.kill(edge.econe.proc.pid, signal.SIGCONT)
        for s in socks:
            s.close()
    assert len(connected) == 64


# ---------------------------------------------------------------- slow clients (item 14)


@pytest.mark.parametrize("kind", ["head", "body"])
def test_normal_clients_are_served_while_200_connections_trickle_their_requests(edge, kind):
    slow = SlowClients(edge.port, SLOW, kind)
    try:
        latencies = served_while(edge, 1.5)
    finally:
        slow.close()
    assert max(latencies) < 1.0, latencies


@pytest.mark.parametrize("kind", ["head", "body"])
def test_a_trickling_request_ends_with_408_within_the_request_timeout(edge, kind):
    slow = SlowClients(edge.port, 5, kind)
    try:
        deadline = time.monotonic() + TIMEOUT + 3
        while len(slow.ended) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        slow.close()
    assert len(slow.ended) >= 5 and max(slow.ended) < TIMEOUT + 1.5, slow.ended
    assert [(a.status, error_code(a)) for a in slow.answers] == [(408, "RequestTimeout")] * len(slow.answers)
    assert len(slow.answers) >= 5
    assert "status=408" in edge.log() and "Traceback" not in edge.logs()


def test_a_large_body_that_stalls_ends_with_408(edge):
    """A body larger than econe reads ahead goes to a worker, which gives it a deadline too."""
    first = b"Action=DescribeRegions&Pad=" + b"a" * (300 * 1024)  # the client then sends 1 byte every 0.5 s
    slow = SlowClients(edge.port, 1, "body", first=first)
    try:
        deadline = time.monotonic() + 3 * TIMEOUT + 3
        while not slow.ended and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        slow.close()
    assert slow.ended and slow.ended[0] < 2 * TIMEOUT + 1.5, slow.ended
    assert [(a.status, error_code(a)) for a in slow.answers] == [(408, "RequestTimeout")]
    assert "Traceback" not in edge.logs()


def test_at_most_half_the_workers_wait_for_large_bodies(edge):
    """Such a body holds its worker while it arrives: 8 of the 16 workers may be doing that; the next
    large request is told to come back later, and every other request is still served."""
    pad = b"a" * (300 * 1024)
    slow = SlowClients(edge.port, 8, "body", first=b"Action=DescribeRegions&Pad=" + pad)
    try:
        time.sleep(0.5)
        ninth = _post(edge, b"Content-Length: %d\r\n" % (len(pad) + 10), b"Pad=" + pad[: 70 * 1024])
        answers, closed = exchange(edge.port, ninth, wait=2)
        assert [(a.status, error_code(a)) for a in answers] == [(503, "Unavailable")] and closed
        assert max(served_while(edge, 0.5)) < 1.0
    finally:
        slow.close()


def test_connections_past_the_file_limit_make_room_for_normal_clients(edge):
    """More idle connections than econe may open files for (its limit lowered to 256, as systemd's
    1024 would be for 1,000): those that waited longest are closed, and everyone else is served."""
    pid = edge.econe.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (256, hard))
    socks = []
    try:
        for _ in range(400):
            socks.append(socket.create_connection(("127.0.0.1", edge.port), timeout=3))
        assert max(served_while(edge, 1.0)) < 1.0
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        for s in socks:
            s.close()
    assert "Traceback" not in edge.logs()


def test_room_is_made_among_connections_that_are_sending(edge):
    """As above, with the held connections trickling their heads (found in review): the one closed
    to make room may be ready in the same round of the selector. Cheroot's loop then unregistered
    its descriptor (which the new connection may already reuse) and handed the closed connection on:
    tracebacks, and a new connection no one watched."""
    pid = edge.econe.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (160, hard))
    socks, stop = [], threading.Event()

    def trickle():
        while not stop.is_set():
            for s in list(socks):
                with contextlib.suppress(OSError):
                    s.send(b"x")
            time.sleep(0.005)

    sender = threading.Thread(target=trickle)
    try:
        sender.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                s = socket.create_connection(("127.0.0.1", edge.port), timeout=3)
                s.send(b"GET / HTTP/1.1\r\nX-Slow: ")
                socks.append(s)
        assert max(served_while(edge, 1.0)) < 1.0
    finally:
        stop.set()
        sender.join()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        for s in socks:
            s.close()
    assert "Traceback" not in edge.logs()


# ---------------------------------------------------------------- the client address (item 19)


@pytest.mark.parametrize(
    ("source", "headers", "client"),
    [
        # a trusted proxy: the address it forwards, the last element of Forwarded (lighttpd appends its own)
        ("127.0.0.2", {"Forwarded": "for=198.51.100.1, for=203.0.113.7;proto=https"}, "203.0.113.7"),
        ("127.0.0.3", {"Forwarded": 'for="[2001:db8::1]:4711";proto=https'}, "2001:db8::1"),
        ("127.0.0.2", {"X-Forwarded-For": "203.0.113.8"}, "127.0.0.2"),  # only Forwarded is read
        ("127.0.0.2", {}, "127.0.0.2"),
        # anyone else: its own address, whatever it claims
        ("127.0.0.1", {"Forwarded": "for=203.0.113.9", "X-Forwarded-For": "203.0.113.9"}, "127.0.0.1"),
    ],
)
def test_the_log_names_the_client_a_trusted_proxy_forwards_and_the_peer_otherwise(edge, source, headers, client):
    status, request_id = describe_regions(edge, source=source, headers=headers)
    assert status == 200
    assert re.search(rf" client={re.escape(client)} ", log_line(edge, request_id))


@pytest.mark.parametrize(("source", "client"), [("127.0.0.2", "203.0.113.7"), ("127.0.0.1", "127.0.0.1")])
def test_the_edges_own_refusals_name_the_client_as_the_application_does(edge, source, client):
    """A request the edge refuses before the application (here a bad Content-Length) is logged with the
    same client: behind lighttpd, the address it forwards, not lighttpd's."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=5, source_address=(source, 0)) as sock:
        sock.sendall(_post(edge, b"Forwarded: for=203.0.113.7;proto=https\r\nContent-Length: -1\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    (answer,) = parse_answers(data)
    request_id = ET.fromstring(answer.body).findtext("RequestID")
    assert answer.status == 400 and re.search(rf" client={re.escape(client)} ", log_line(edge, request_id))


@pytest.mark.parametrize("end", [b"\r\n\r\n", b"\n\n", b"\r\n\n", b"\n\r\n"])
def test_a_head_arriving_in_pieces_is_found_where_it_ends(end):
    """head_size searches only what arrived since its last look, wherever the pieces split the end."""
    head = b"GET / HTTP/1.1\r\nHost: x" + end
    for cut in range(1, len(head)):
        first = head_size(head[:cut])
        searched = cut if first is None else 0
        assert (first or head_size(head + b"Action=", searched)) == len(head), cut


TRUSTED = (ipaddress.ip_network("127.0.0.2/31"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.2", "for=203.0.113.1, for=127.0.0.3", ("203.0.113.1", "127.0.0.2")),  # past a second proxy
        ("127.0.0.2", 'for="203.0.113.5:8080";proto=https', ("203.0.113.5", "127.0.0.2")),
        ("127.0.0.2", 'for="[2001:db8::7]", For=203.0.113.2;by=x', ("203.0.113.2", "127.0.0.2")),
        ("127.0.0.2", 'for="x, y;z, for=203.0.113.6', ("203.0.113.6", "127.0.0.2")),  # a client's broken part
        ("127.0.0.2", "for=unknown", ("unknown", "127.0.0.2")),
        ("127.0.0.2", "proto=https", ("unknown", "127.0.0.2")),
        ("127.0.0.2", "for=127.0.0.3", ("127.0.0.3", "127.0.0.2")),  # proxies all the way
        ("::ffff:127.0.0.3", "for=203.0.113.3", ("203.0.113.3", "::ffff:127.0.0.3")),  # a dual-stack socket
        ("::1", 'for="[2001:db8::1]:4711"', ("2001:db8::1", "::1")),
        ("127.0.0.4", "for=203.0.113.4", ("127.0.0.4", None)),
        ("127.0.0.2", None, ("127.0.0.2", None)),
    ],
)
def test_client_of(peer, forwarded, expected):
    client = client_of(peer, forwarded, TRUSTED)
    assert (client.address, client.proxy) == expected


@pytest.mark.parametrize(
    ("proxies", "accepted"),
    [
        (["127.0.0.1", "::1", "10.0.0.0/8", "fd00::/8"], True),
        (["proxy.example"], False),  # a name would be resolved by someone else's DNS
        (["10.0.0.1/8"], False),  # host bits set: which was meant?
        ("127.0.0.1", False),
    ],
)
def test_trusted_proxies_are_addresses_or_networks(tmp_path, proxies, accepted):
    (tmp_path / "ec2_auth").write_text("serveradmin:pw")
    conf = write_conf(tmp_path / "econe.conf", {"trusted_proxies": proxies, "request_timeout": 5})
    if accepted:
        cfg = load(str(conf), {"ONE_CIPHER_AUTH": str(tmp_path / "ec2_auth")})
        assert cfg.trusted_proxies == tuple(ipaddress.ip_network(p) for p in proxies)
        assert cfg.request_timeout == 5
    else:
        with pytest.raises(ConfigError, match=r"econe.conf: :trusted_proxies: must be a list of proxy addresses"):
            load(str(conf), {"ONE_CIPHER_AUTH": str(tmp_path / "ec2_auth")})

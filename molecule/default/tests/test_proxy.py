"""The TLS proxy as an attacker meets it (#8 items 14 and 18): what its access log keeps, whether
normal clients are served while many slow ones are open, and the limits it puts on a request."""

from __future__ import annotations

import hashlib
import http.client
import secrets
import socket
import ssl
import threading
import time

import boto3
import botocore.config

PROXY = ("127.0.0.1", 18443)  # molecule.yml publishes the container's 8443 here
LOGS = "/var/log/lighttpd"
# molecule.yml sets econe_server_max_upload_size to 64M: econe accepts bodies up to that plus 1 MiB of
# form fields, and site.yml gives the proxy the same limit
BODY_LIMIT = 65 * 1024 * 1024


def _tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the snakeoil certificate
    return ctx


def _request(method: str, target: str, headers: dict | None = None) -> tuple[int, bytes]:
    """One request with no body (a Content-Length among *headers* is only announced), its answer."""
    conn = http.client.HTTPSConnection(*PROXY, timeout=10, context=_tls_context())
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def _ec2():
    return boto3.client(
        "ec2", endpoint_url=f"https://{PROXY[0]}:{PROXY[1]}", region_name="opennebula", verify=False,
        aws_access_key_id="alice", aws_secret_access_key=hashlib.sha256(b"alicepw").hexdigest(),
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def _log_lines(host, marker: str, count: int) -> list[str]:
    """The access log's lines carrying *marker*, once there are *count* (lighttpd flushes every 4 s)."""
    deadline = time.monotonic() + 15
    while True:
        lines = [line for line in host.file(f"{LOGS}/access.log").content_string.splitlines() if marker in line]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.5)


def test_the_access_log_keeps_no_signature(host):
    """A SigV2 GET signature and a presigned X-Amz-Signature stay valid for days: the log keeps the path."""
    agent = f"econe-verify-{secrets.token_hex(8)}"
    v2, v4 = f"SECRETVALUE{secrets.token_hex(16)}", secrets.token_hex(32)
    queries = (
        "Action=DescribeRegions&AWSAccessKeyId=alice&SignatureMethod=HmacSHA256&SignatureVersion=2"
        f"&Timestamp=2026-01-01T00%3A00%3A00Z&Version=2016-11-15&Signature={v2}",
        "Action=DescribeRegions&Version=2016-11-15&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=alice%2F20260101%2Fopennebula%2Fec2%2Faws4_request&X-Amz-Date=20260101T000000Z"
        f"&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature={v4}",
    )
    for query in queries:
        status, body = _request("GET", f"/?{query}", {"User-Agent": agent})
        assert 400 <= status < 500 and b"<Errors>" in body, (status, body)  # econe refused it

    lines = _log_lines(host, agent, 2)
    assert len(lines) == 2 and all('"GET / HTTP/1.1"' in line for line in lines), lines
    for name in ("access.log", "error.log"):
        text = host.file(f"{LOGS}/{name}").content_string
        assert v2 not in text and v4 not in text, name


def test_normal_requests_are_served_while_200_clients_trickle_their_heads():
    """lighttpd holds slow clients without a worker each: a signed request is answered within a second."""
    slow = []
    stop = threading.Event()

    def trickle():  # one more byte of a header line that never ends, every second
        while not stop.wait(1):
            for sock in slow:
                sock.sendall(b"x")

    try:
        for _ in range(200):
            sock = _tls_context().wrap_socket(socket.create_connection(PROXY, timeout=10))
            sock.sendall(b"POST / HTTP/1.1\r\nHost: econe-frontend:8443\r\nX-Slow: ")
            slow.append(sock)
        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        ec2, times = _ec2(), []
        for _ in range(5):
            started = time.monotonic()
            assert ec2.describe_regions()["Regions"]
            times.append(time.monotonic() - started)
            time.sleep(0.5)
        stop.set()
        thread.join()
        assert max(times) < 1.0, times
        for sock in slow:  # and all 200 were still open, unanswered
            sock.setblocking(False)
            try:
                sock.recv(1)
                raise AssertionError("the proxy answered or closed a slow client")
            except ssl.SSLWantReadError:
                pass
    finally:
        stop.set()
        for sock in slow:
            sock.close()


def test_a_get_with_1000_ids_reaches_econe_and_a_larger_head_is_refused():
    """A SigV2 GET carries its parameters in the request line: 1,000 ids (~27 KiB) must reach econe."""
    query = "Action=DescribeInstances&" + "&".join(f"InstanceId.{i}=i-{i:08d}" for i in range(1, 1001))
    status, body = _request("GET", f"/?{query}")
    assert 400 <= status < 500 and b"<Errors>" in body, (status, body[:200])  # econe's (unsigned)
    status, body = _request("GET", f"/?{query}", {"X-Padding": "x" * 8192})
    assert status == 431 and b"<Errors>" not in body, (status, body[:200])  # the proxy's


def test_a_body_larger_than_econe_accepts_is_refused_by_the_proxy():
    """Announced lengths up to econe's limit reach econe; one byte more gets 413 from lighttpd itself."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, body = _request("POST", "/", {**form, "Content-Length": str(BODY_LIMIT)})
    assert status == 413 and b"<Errors>" in body, (status, body[:200])  # econe's (forms are smaller)
    status, body = _request("POST", "/", {**form, "Content-Length": str(BODY_LIMIT + 1)})
    assert status == 413 and b"<Errors>" not in body, (status, body[:200])  # the proxy's

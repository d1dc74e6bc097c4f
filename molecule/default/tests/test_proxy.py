"""The TLS proxy as an attacker meets it (#8 items 14 and 18): what its access log keeps, whether
normal clients are served while many slow ones are open, the limits it puts on a request, and that
what it refuses itself gets an EC2 error document while econe's own answers pass unchanged."""

from __future__ import annotations

import hashlib
import http.client
import secrets
import socket
import ssl
import threading
import time
import xml.etree.ElementTree as ET

import boto3
import botocore.config
import pytest
from botocore.exceptions import ClientError

PROXY = ("127.0.0.1", 18443)  # molecule.yml publishes the container's 8443 here
LOGS = "/var/log/lighttpd"
# molecule.yml sets econe_server_max_upload_size to 64M: econe accepts bodies up to that plus 1 MiB of
# form fields, and site.yml gives the proxy the same limit
BODY_LIMIT = 65 * 1024 * 1024
PROXY_ID = "lighttpd"  # the RequestID of the proxy's own answers (static files: no fresh id)


def _tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the snakeoil certificate
    return ctx


def _request(method: str, target: str, headers: dict | None = None, body: bytes = b"") -> tuple[int, str, bytes]:
    """One request with *body*, which may be only the start of what a Content-Length among *headers*
    announces: its answer's status, Content-Type and body."""
    conn = http.client.HTTPSConnection(*PROXY, timeout=10, context=_tls_context())
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        conn.close()


def _raw(data: bytes) -> tuple[int, str, bytes]:
    """What the proxy answers to *data*, sent as it is (http.client cannot send malformed requests)."""
    with _tls_context().wrap_socket(socket.create_connection(PROXY, timeout=10)) as sock:
        sock.sendall(data)
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()


def _ec2_error(content_type: str, body: bytes) -> tuple[str, str]:
    """(Code, RequestID) of an EC2 error document, as a client reads it; fails on anything else."""
    assert content_type.startswith("text/xml"), (content_type, body[:200])
    root = ET.fromstring(body)
    assert root.tag == "Response" and root.findtext("Errors/Error/Message"), body[:200]
    return root.findtext("Errors/Error/Code"), root.findtext("RequestID")


def _ec2(secret: str = hashlib.sha256(b"alicepw").hexdigest()):
    return boto3.client(
        "ec2", endpoint_url=f"https://{PROXY[0]}:{PROXY[1]}", region_name="opennebula", verify=False,
        aws_access_key_id="alice", aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"max_attempts": 1}),
    )  # fmt: skip


def _client_error(call, *args, **kwargs) -> tuple[int, str, str]:
    """(HTTP status, Code, RequestId) of the ClientError boto3 raises for *call*."""
    with pytest.raises(ClientError) as raised:
        call(*args, **kwargs)
    answer, meta = raised.value.response, raised.value.response["ResponseMetadata"]
    return meta["HTTPStatusCode"], answer["Error"]["Code"], meta["RequestId"]


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
        status, content_type, body = _request("GET", f"/?{query}", {"User-Agent": agent})
        assert 400 <= status < 500 and _ec2_error(content_type, body)[1] != PROXY_ID  # econe refused it

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
        assert ec2.describe_regions()["Regions"]  # not timed: the client's own set-up (botocore's loaders)
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
    status, content_type, body = _request("GET", f"/?{query}")
    assert 400 <= status < 500 and _ec2_error(content_type, body)[1] != PROXY_ID  # econe's (unsigned)
    status, content_type, body = _request("GET", f"/?{query}", {"X-Padding": "x" * 8192})
    assert (status, _ec2_error(content_type, body)) == (431, ("RequestHeaderSectionTooLarge", PROXY_ID))


def test_a_body_larger_than_econe_accepts_is_refused_by_the_proxy():
    """Announced lengths up to econe's limit reach econe; one byte more gets 413 from lighttpd itself."""
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    # econe's edge passes a request on once its first 10 KiB of body came; its form reader refuses it
    status, content_type, body = _request("POST", "/", {**form, "Content-Length": str(BODY_LIMIT)}, b"x" * 16384)
    code, request_id = _ec2_error(content_type, body)
    assert (status, code) == (413, "RequestEntityTooLarge") and request_id != PROXY_ID  # econe's (forms are smaller)
    status, content_type, body = _request("POST", "/", {**form, "Content-Length": str(BODY_LIMIT + 1)})
    assert (status, _ec2_error(content_type, body)) == (413, ("RequestEntityTooLarge", PROXY_ID))


def test_boto3_reads_the_proxys_413_as_an_ec2_error():
    """A body over the limit from boto3: the client reports RequestEntityTooLarge, not "413".
    boto3 waits for "100 Continue" here, as it does for S3 uploads: a client that sends the body
    regardless is often cut off by lighttpd's TLS close before it reads the answer (README, Deploy)."""
    ec2 = _ec2()

    def expect_continue(params, **kwargs):
        params["headers"]["Expect"] = "100-continue"

    ec2.meta.events.register("before-call.ec2.CreateTags", expect_continue)
    tags = [{"Key": "k", "Value": "x" * BODY_LIMIT}]
    answer = _client_error(ec2.create_tags, Resources=["i-00000001"], Tags=tags)
    assert answer == (413, "RequestEntityTooLarge", PROXY_ID)


HOST = b"Host: econe-frontend:8443\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GET / HTTP/1.1\r\n" + HOST + b"Bad Header: 1\r\n\r\n", 400, "InvalidRequest"),
        (b"POST / HTTP/1.1\r\n" + HOST + b"\r\n", 411, "MissingContentLength"),
        (b"BREW / HTTP/1.1\r\n" + HOST + b"\r\n", 501, "NotImplemented"),
        (b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n", 501, "NotImplemented"),
        (b"GET / HTTP/2.0\r\n" + HOST + b"\r\n", 505, "InvalidRequest"),
    ],
    ids=["malformed-header", "post-without-length", "unknown-method", "unknown-encoding", "http-2.0-line"],
)
def test_what_the_proxy_refuses_itself_gets_an_ec2_error_document(request_bytes, status, code):
    """lighttpd's own refusals, before econe sees the request: an EC2 document, not an HTML page."""
    answer, content_type, body = _raw(request_bytes)
    assert (answer, _ec2_error(content_type, body)) == (status, (code, PROXY_ID))


def _econe_logged(host, request_id: str) -> bool:
    """econe's log has a line for *request_id* (it logs every error it answers)."""
    deadline = time.monotonic() + 5
    while f"[{request_id}]" not in host.file("/var/log/one/econe-server.log").content_string:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_econes_own_errors_pass_through_the_proxy_unchanged(host):
    """econe's 401 and 400 keep their status, code and request id: lighttpd's error files are only its own."""
    status, code, request_id = _client_error(_ec2("wrong-secret").describe_regions)
    assert (status, code) == (401, "AuthFailure") and _econe_logged(host, request_id)
    status, code, request_id = _client_error(_ec2().describe_instances, InstanceIds=["i-12x"])
    assert (status, code) == (400, "InvalidInstanceID.Malformed") and _econe_logged(host, request_id)


def test_with_econe_stopped_clients_get_unavailable(host):
    """lighttpd's 503 when every econe instance is down is EC2's Unavailable, which clients retry."""
    try:
        host.run_expect([0], "systemctl stop 'econe-server@*'")
        assert _client_error(_ec2().describe_regions) == (503, "Unavailable", PROXY_ID)
    finally:
        host.run_expect([0], "systemctl start econe-server@1 econe-server@2")
        deadline = time.monotonic() + 30  # lighttpd retries a backend it found down after a few seconds
        while True:
            try:
                _ec2().describe_regions()
                break
            except ClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

"""Hostile HTTP at econe's edge, generated (issue #8, item 15): whatever arrives — methods, targets,
headers, lengths, transfer encodings, body encodings, parameter shapes, signatures good and bad — gets one
answer below 500, in time, that a client can parse; and the server still serves a normal request after.

Each example is one raw request on its own connection. ECONE_FUZZ_EXAMPLES changes the count (10,000 by
default); ECONE_FUZZ_RANDOM=1 draws new examples instead of the fixed sequence `make test` runs."""

from __future__ import annotations

import http.client
import io
import os
import socket
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import demo
from econe.actions import ACTIONS
from econe.auth import v2_signature, v2_string_to_sign

from .conftest import start_econe

EXAMPLES = int(os.environ.get("ECONE_FUZZ_EXAMPLES", "10000"))
TIMEOUT = 15  # s for one answer: more is a hang

ACTION_NAMES = sorted(ACTIONS) + ["UploadImage", "NotAnAction", "", "describeinstances"]
PARAM_NAMES = [
    "Action", "Version", "InstanceId.1", "InstanceId.2", "InstanceId.1001", "ImageId.1", "ImageId", "InstanceType",
    "MinCount", "MaxCount", "MaxResults", "NextToken", "ClientToken", "DryRun", "Filter.1.Name", "Filter.1.Value.1",
    "Filter.2.Value.200", "TagSpecification.1.ResourceType", "TagSpecification.1.Tag.1.Key",
    "TagSpecification.1.Tag.1.Value", "UserData", "Owner.1", "ExecutableBy.1", "RegionName.1", "ZoneName.1",
    "Timestamp", "Expires", "AWSAccessKeyId", "SignatureVersion", "SignatureMethod", "Signature",
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders",
    "X-Amz-Signature", "file", "InstanceId", "Filter.1.Value", "Filter..Name", "InstanceId.0", "InstanceId.-1",
]  # fmt: skip
VALUES = [
    "i-00000001", "i-00000001\n", "i-0000000²", "ami-00000000", "i-ffffffff", "i-99999999999", "ami-4294967296",
    "i-99999999999999999999", "1", "0",
    "-1", "2", "1000", "9" * 30, "true", "false", "TRUE", "instance-state-name", "tag:Name", "*", "?*?*?*?*" * 40,
    "2016-11-15", "2016-11-15\"><x/>", "2099-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "2", "HmacSHA256",
    "HmacSHA1", "AWS4-HMAC-SHA256", "m1.small", "t2.micro", "instance", "a" * 300, "\u00e9t\u00e9", "\U0001f600",
    "\x00", "\x0b", "\ufffe", "%00", "%ZZ", "&", "=", "+", " ", "",
]  # fmt: skip
CONTENT_TYPES = [
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=latin-1", "multipart/form-data; boundary=Bq9",
    "multipart/form-data; boundary=\"Bq9\"", "multipart/form-data", "multipart/form-data; boundary=",
    "text/xml", "application/json", "", "a" * 200, "multipart/mixed; boundary=Bq9",
]  # fmt: skip
METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "POST ", "G\x00T", "CONNECT"]

text = st.text(max_size=40)
names = st.one_of(st.sampled_from(PARAM_NAMES), text)
values = st.one_of(st.sampled_from(VALUES), text, st.integers().map(str))


@st.composite
def parameters(draw) -> list[tuple[str, str]]:
    params = draw(st.lists(st.tuples(names, values), max_size=8))
    if draw(st.integers(0, 9)):  # mostly a real action, so that the request gets past the first checks
        params.insert(0, ("Action", draw(st.sampled_from(ACTION_NAMES))))
    if draw(st.booleans()):
        params.append(("Version", draw(st.sampled_from(["2016-11-15", "2010-08-31", "x"]))))
    return params


def _form(params) -> bytes:
    return urlencode(params).encode()


def _multipart(params, with_file: bool, boundary: str = "Bq9") -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode("utf-8", "surrogatepass")
        for k, v in params
    ]
    if with_file:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.img"\r\n\r\n'.encode()
            + b"\0" * 1024
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


@st.composite
def requests(draw, stack) -> tuple[bytes, str]:
    """(the raw request, its method)."""
    host = f"127.0.0.1:{stack.port}"
    method = draw(st.sampled_from(METHODS[:2] * 8 + METHODS))
    params = draw(parameters())
    signing = draw(st.sampled_from(["none", "v2", "v2", "v2-bad", "v4", "v4", "v4-presigned"]))
    # a presigned URL signs its query only
    in_body = method.strip().upper() != "GET" and signing != "v4-presigned" and draw(st.integers(0, 3)) > 0
    body_kind = draw(st.sampled_from(["form", "form", "multipart", "bytes"])) if in_body else "none"
    headers: list[tuple[str, str]] = []
    path = draw(st.sampled_from(["/", "/", "/", "/x/../", "//", "/%2e%2e/", "*", f"http://{host}/"]))

    if signing in ("v2", "v2-bad"):
        base = [
            ("AWSAccessKeyId", stack.user),
            ("SignatureVersion", "2"),
            ("SignatureMethod", "HmacSHA256"),
            ("Timestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
        ]
        params = base + params
        secret = stack.secret if signing == "v2" else "wrong"
        sts = v2_string_to_sign(method.strip().upper(), host, "/", params)
        params.append(("Signature", v2_signature(secret, sts)))

    query = [] if in_body else params
    form = params if in_body else []
    if body_kind == "form":
        body = _form(form)
    elif body_kind == "multipart":
        body = _multipart(form, draw(st.booleans()))
    elif body_kind == "bytes":
        body = draw(st.binary(max_size=300))
    else:
        body = b""
    target = path + ("?" + urlencode(query) if query else "")

    if signing in ("v4", "v4-presigned"):
        req = botocore.awsrequest.AWSRequest(
            method.strip().upper() or "GET",
            f"http://{host}{target if target.startswith('/') else '/'}",
            data=body or None,
        )
        if body_kind == "form":
            req.headers["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8"
        creds = botocore.credentials.Credentials(stack.user, stack.secret)
        if signing == "v4":
            botocore.auth.SigV4Auth(creds, "ec2", "opennebula").add_auth(req)
            headers += [(k, v) for k, v in req.headers.items() if k.lower() not in ("content-length", "host")]
        else:
            botocore.auth.SigV4QueryAuth(creds, "ec2", "opennebula", expires=60).add_auth(req)
            target = req.url.split(host, 1)[1]

    if body_kind == "multipart":
        headers.append(("Content-Type", draw(st.sampled_from(CONTENT_TYPES[3:5] * 4 + CONTENT_TYPES))))
    elif body_kind == "form" and not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", draw(st.sampled_from(CONTENT_TYPES[:2] * 4 + CONTENT_TYPES))))
    elif draw(st.integers(0, 4)) == 0:
        headers.append(("Content-Type", draw(st.sampled_from(CONTENT_TYPES))))

    # framing: mostly right, often wrong
    framing = draw(
        st.sampled_from(["length"] * 6 + ["none", "-1", "+n", "short", "long", "twice", "huge", "chunked", "both"])
    )
    n = len(body)
    if framing == "length" and (body or method.strip().upper() == "POST"):
        headers.append(("Content-Length", str(n)))
    elif framing == "-1":
        headers.append(("Content-Length", "-1"))
    elif framing == "+n":
        headers.append(("Content-Length", f"+{n}"))
    elif framing == "short":
        headers.append(("Content-Length", str(max(0, n - draw(st.integers(1, 50))))))
    elif framing == "long":
        headers.append(("Content-Length", str(n + draw(st.integers(1, 5000)))))
    elif framing == "twice":
        headers += [("Content-Length", str(n)), ("Content-Length", str(n + 1))]
    elif framing == "huge":
        headers.append(("Content-Length", draw(st.sampled_from(["99999999999999999999", "1e9", "0x10", "5 5"]))))
    elif framing in ("chunked", "both"):
        headers.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "chunked", "gzip, chunked", "x"]))))
        if framing == "both":
            headers.append(("Content-Length", str(n)))
        body = (f"{n:x}\r\n".encode() + body + b"\r\n0\r\n\r\n") if n else b"0\r\n\r\n"

    if body and framing in ("none", "short", "twice", "huge"):
        # bytes past the declared body are the next request: one answer each is right, unless it closes
        headers.append(("Connection", "close"))
    host_header = draw(st.sampled_from([host, host, host, "", "evil.example", host + ":1", "[::1]"]))
    if host_header:
        headers.insert(0, ("Host", host_header))
    if draw(st.integers(0, 3)) == 0:
        headers.append(
            (
                draw(
                    st.sampled_from(["X-Forwarded-For", "Forwarded", "Expect", "Connection", "X-Junk", "Authorization"])
                ),
                draw(st.sampled_from(["1.2.3.4", "for=1.2.3.4", "100-continue", "keep-alive", "x" * 9000, "\u00ff"])),
            )
        )
    version = draw(st.sampled_from(["HTTP/1.1"] * 10 + ["HTTP/1.0", "HTTP/2.0", "HTTP/1.x", ""]))
    head = f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogatepass") + body, method


class _Bytes(io.BytesIO):
    """A socket for http.client that keeps what follows the first answer readable."""

    def makefile(self, *_a, **_k):
        return self

    def close(self):
        pass


def exchange(port: int, raw: bytes) -> bytes:
    """Send *raw*, close our side, read until the server closes: all it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        try:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse early and close: what it answered is below
        out = b""
        started = time.monotonic()
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
            assert time.monotonic() - started < TIMEOUT, "no end to the answer"
        return out


def check_answer(raw: bytes, method: str) -> None:
    assert raw, "the connection closed without an answer"
    stream = _Bytes(raw)
    resp = http.client.HTTPResponse(stream, method=method.strip().upper())
    resp.begin()
    assert 200 <= resp.status < 500, (resp.status, raw[:300])
    body = resp.read()
    rest = stream.read()
    assert not rest, f"more than one answer to one request: {rest[:200]!r}"
    if body:
        root = ET.fromstring(body)  # every answer, error or not, is an EC2 XML document
        if resp.status >= 400:
            assert root.tag == "Response" and root.findtext("Errors/Error/Code"), body[:300]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    from .conftest import start_onelite

    work = tmp_path_factory.mktemp("fuzz")
    one = start_onelite(work / "one")
    d = demo.provision(one.url, one.admin_session, str(work))
    econe = start_econe(work, one.url, one.data / "ec2_auth", max_upload_size=64 * 1024, max_count=2)
    econe.user, econe.secret = d.user, d.secret
    yield econe
    econe.stop()
    one.stop()


@pytest.mark.skipif(EXAMPLES <= 0, reason="ECONE_FUZZ_EXAMPLES=0")
def test_generated_requests_never_hurt_the_edge(target):
    seen = {"count": 0}
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=not os.environ.get("ECONE_FUZZ_RANDOM"),
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def one_request(data):
        raw, method = data.draw(requests(target))
        seen["count"] += 1
        check_answer(exchange(target.port, raw), method)

    one_request()
    elapsed = time.monotonic() - started
    print(f"\n{seen['count']} generated requests in {elapsed:.1f} s")
    assert seen["count"] >= EXAMPLES
    ec2 = boto3.client(
        "ec2",
        endpoint_url=target.url,
        region_name="opennebula",
        aws_access_key_id=target.user,
        aws_secret_access_key=target.secret,
    )
    assert ec2.describe_regions()["Regions"]
    assert target.proc.poll() is None
    log = target.log.read_text() + target.log.with_suffix(".out").read_text()  # the service's, and cheroot's
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert not list((target.log.parent / "tmp").iterdir()), "an upload left a file"


def test_the_checks_catch_what_they_are_for():
    """check_answer refuses what the fuzz is looking for."""
    xml = b"<Response><Errors><Error><Code>X</Code></Error></Errors></Response>"
    ok = b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(xml), xml)
    check_answer(ok, "GET")
    for bad in (
        b"",
        ok.replace(b"400 Bad Request", b"500 Internal Server Error"),
        ok + ok,  # a smuggled second request answered
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nBad Request",
    ):
        with pytest.raises((AssertionError, ET.ParseError, http.client.HTTPException)):
            check_answer(bad, "GET")

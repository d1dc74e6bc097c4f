"""Issue #15, metrics: econe-server's Prometheus metrics and health answer on a port of their own,
``--port``/``--metrics-port``, systemd's readiness protocol, a stop that finishes what is in flight,
and JSON log lines, against econe-server and onelite as real processes (boto3, urllib, raw sockets)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, quote, urlencode

import botocore.exceptions
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from econe.auth import v2_signature, v2_string_to_sign

from . import test_econe_e2e as e2e
from .conftest import free_port, start_econe, terminate, write_conf

stack = e2e.stack  # the e2e module's fixture: a cloud with a demo user (its own econe is not the one measured)

BOUNDARY = "metricsboundary"


@pytest.fixture(scope="module")
def metered(stack, tmp_path_factory):
    """The stack with an econe of its own that has a metrics port and writes JSON log lines."""
    work = tmp_path_factory.mktemp("metered")
    econe = start_econe(
        work,
        stack.cloud.url,
        stack.cloud.server_auth,
        metrics_port=free_port(),
        log_format="json",
        max_upload_size=8 * 1024 * 1024,
        datastore_id=stack.cloud.datastore,
    )
    yield dataclasses.replace(stack, econe=econe, workdir=work)
    econe.stop()


def _metrics_port(econe) -> int:
    return yaml.safe_load(econe.conf.read_text())[":metrics_port"]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict[tuple, float]:
    """Every sample of the metrics port: (name, sorted labels) -> value."""
    status, text = _get(port, "/metrics")
    assert status == 200, text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def moved(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0) - before.get(key, 0)


def _v2_query(st, params: dict, secret: str | None = None) -> str:
    """A SigV2-signed query string for *params* on *st*'s econe."""
    pairs = {
        "Version": "2016-11-15",
        "AWSAccessKeyId": st.demo.user,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **params,
    }
    to_sign = v2_string_to_sign("GET", f"127.0.0.1:{st.econe.port}", "/", list(pairs.items()))
    return urlencode([*pairs.items(), ("Signature", v2_signature(secret or st.demo.secret, to_sign))])


def _raw(port: int, data: bytes) -> int:
    """The status of the answer to *data* sent on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n" not in answer and (chunk := sock.recv(4096)):
            answer += chunk
    return int(answer.split()[1])


# ---------------------------------------------------------------- metrics


def test_requests_latencies_oned_calls_and_auth_failures_are_counted_with_bounded_labels(metered):
    port = _metrics_port(metered.econe)
    before = scrape(port)
    ec2 = metered.client()
    ec2.describe_instances()  # a good one, which calls oned
    assert e2e.signed_v2(metered, {"Action": "NoSuchActionXyz"})[0] == 400  # signed, not an action
    unsigned = f"{metered.econe.url}/?Action=DescribeRegions&Version=2016-11-15"
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(unsigned, timeout=5)
    assert e.value.code == 401
    for client in (metered.client(secret="not-the-secret"), metered.client(user="nosuchuser")):
        with pytest.raises(botocore.exceptions.ClientError):
            client.describe_regions()
    expired = e2e.signed_v2(metered, {"Action": "DescribeRegions"}, when=time.time() - 3600)[0]
    assert expired == 400  # RequestExpired
    # refused by the edge before the application sees it: a Content-Length with a sign
    assert _raw(metered.econe.port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n") == 400
    after = scrape(port)

    assert moved(before, after, "econe_requests_total", action="DescribeInstances", status="200") == 1
    assert moved(before, after, "econe_request_duration_seconds_count", action="DescribeInstances") == 1
    assert moved(before, after, "econe_requests_total", action="DescribeRegions", status="401") == 3
    assert moved(before, after, "econe_requests_total", action="DescribeRegions", status="400") == 1
    assert moved(before, after, "econe_requests_total", action="unknown", status="400") == 2  # the action, the edge's
    assert moved(before, after, "econe_oned_call_duration_seconds_count", method="one.vmpool.info") >= 1
    for reason, n in (("missing", 1), ("signature", 1), ("unknown_key", 1), ("expired", 1), ("disabled", 0)):
        assert moved(before, after, "econe_auth_failures_total", reason=reason) == n, reason
    # a client's action name makes no label value
    assert not any("NoSuchActionXyz" in str(labels) for _, labels in after)


def _upload(st, file_bytes: int) -> tuple[bytes, bytes]:
    """(what to send first: head, signed fields, the file's first half; the rest) of an UploadImage. econe reads
    a body 64 KiB at a time: the first half of a file of more than 128 KiB brings its start to the server."""
    fields = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in e2e.upload_fields(st)
    )
    fields += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.raw"\r\n\r\n'.encode()
    body = fields + b"\0" * file_bytes + f"\r\n--{BOUNDARY}--\r\n".encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{st.econe.port}\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    cut = len(fields) + file_bytes // 2
    return head + body[:cut], body[cut:]


def _answer(sock) -> tuple[int, ET.Element]:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), ET.fromstring(body)


def _until(check, seconds: float = 5):
    deadline = time.monotonic() + seconds
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def test_an_upload_is_in_flight_while_its_file_arrives(metered):
    port = _metrics_port(metered.econe)
    gauge = ("econe_uploads_in_flight", ())
    first, rest = _upload(metered, 256 * 1024)
    with socket.create_connection(("127.0.0.1", metered.econe.port), timeout=10) as sock:
        sock.sendall(first)
        assert _until(lambda: scrape(port).get(gauge) == 1), scrape(port).get(gauge)
        sock.sendall(rest)
        status, root = _answer(sock)
    assert status == 200, ET.tostring(root)
    assert scrape(port)[gauge] == 0
    assert scrape(port)[("econe_requests_total", (("action", "UploadImage"), ("status", "200")))] >= 1


def test_health_and_the_metrics_port_serves_no_ec2_request(metered):
    port = _metrics_port(metered.econe)
    assert _get(port, "/health") == (200, "ok\n")
    status, text = _get(port, "/?" + _v2_query(metered, {"Action": "DescribeRegions"}))
    assert status == 404 and "regionInfo" not in text
    # and the EC2 port has no metrics
    status, text = _get(metered.econe.port, "/metrics")
    assert status == 400 and "econe_requests_total" not in text and e2e.error_code(ET.fromstring(text))


# ---------------------------------------------------------------- JSON log lines, and no secret in any


def test_json_log_lines_carry_the_request_line_and_no_secret(metered, stack):
    signatures = []
    for st in (metered, stack):  # JSON lines, and the text lines of the e2e stack's econe
        query = _v2_query(st, {"Action": "DescribeRegions"})
        signatures.append(parse_qs(query)["Signature"][0])
        assert _get(st.econe.port, "/?" + query)[0] == 200
    records = [json.loads(line) for line in metered.econe.log.read_text().splitlines()]  # each line one object
    assert records and all({"time", "level", "request_id", "message"} <= r.keys() for r in records)
    line = [r for r in records if r.get("action") == "DescribeRegions" and r.get("status") == 200][-1]
    assert line["user"] == metered.demo.user and line["method"] == "GET" and line["path"] == "/"
    assert line["client"] == "127.0.0.1" and line["ms"] >= 0 and line["level"] == "INFO"
    assert line["message"].startswith("GET / client=127.0.0.1 ")  # the text line's words, too
    for st in (metered, stack):
        text = st.econe.log.read_text()
        assert text and st.demo.secret not in text and "Signature=" not in text
        assert not any(sig in text or quote(sig, safe="") in text for sig in signatures)


# ---------------------------------------------------------------- one econe.conf, several instances


def _run(conf, *args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "econe.server", "-c", str(conf), "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _conf(st, work, **settings):
    work.mkdir(parents=True, exist_ok=True)
    return write_conf(
        work / "econe.conf",
        {
            "one_xmlrpc": st.cloud.url,
            "host": "127.0.0.1",
            "tmpdir": str(work),
            "log_file": str(work / "econe.log"),
            "max_upload_size": 8 * 1024 * 1024,
            "datastore_id": st.cloud.datastore,
            **settings,
        },
    )


def test_port_and_metrics_port_on_the_command_line_beat_the_file(stack, tmp_path):
    file_port, file_metrics, port, metrics = free_port(), free_port(), free_port(), free_port()
    conf = _conf(stack, tmp_path, port=file_port, metrics_port=file_metrics)
    env = {**os.environ, "ONE_CIPHER_AUTH": str(stack.cloud.server_auth)}
    proc = _run(conf, "--port", str(port), "--metrics-port", str(metrics), env=env)
    try:
        assert _until(lambda: _listens(port) and _listens(metrics), 20), proc.poll()
        st = dataclasses.replace(
            stack, econe=dataclasses.replace(stack.econe, port=port, url=f"http://127.0.0.1:{port}")
        )
        st.client().describe_regions()
        assert _get(metrics, "/health") == (200, "ok\n")
        assert moved({}, scrape(metrics), "econe_requests_total", action="DescribeRegions", status="200") == 1
        assert not _listens(file_port) and not _listens(file_metrics)
    finally:
        assert terminate(proc, 15) == 0


@pytest.mark.parametrize(
    "settings, args, words",
    [
        ({"port": 4567, "metrics_port": 4567}, [], "econe.conf: :metrics_port: must differ from :port: (4567)"),
        ({"port": 4567, "metrics_port": 0}, [], "econe.conf: :metrics_port: must be an integer 1-65535, got 0"),
        ({"port": 4567, "metrics_port": "x"}, [], "econe.conf: :metrics_port: must be an integer 1-65535, got 'x'"),
        ({"port": 4567, "log_format": "xml"}, [], "econe.conf: :log_format: must be text or json, got 'xml'"),
        ({"port": 4567, "metrics_port": 9567}, ["--port", "9567"], "--port 9567 is also the metrics port"),
        ({"port": 4567}, ["--metrics-port", "4567"], "--metrics-port 4567 is also the port"),
        ({"port": 4567}, ["--port", "70000"], "--port: must be an integer 1-65535, got '70000'"),
    ],
)
def test_port_mistakes_stop_the_server_with_what_and_why(stack, tmp_path, settings, args, words):
    conf = _conf(stack, tmp_path, **settings)
    env = {**os.environ, "ONE_CIPHER_AUTH": str(stack.cloud.server_auth)}
    commands = [["check"]] if not args else []
    commands.append(["run", *args])
    for command in commands:
        out = subprocess.run(
            [sys.executable, "-m", "econe.server", "-c", str(conf), *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert words in out.stderr, out.stderr


# ---------------------------------------------------------------- systemd: readiness, and a stop that finishes


def test_ready_to_systemd_once_listening_and_sigterm_finishes_the_request_in_flight(stack, tmp_path):
    name = f"econe-test-{uuid.uuid4().hex}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind("\0" + name)  # the abstract namespace, as systemd's own socket is
    notify.settimeout(20)
    metrics = free_port()
    conf = _conf(stack, tmp_path, port=free_port(), metrics_port=metrics)
    env = {**os.environ, "ONE_CIPHER_AUTH": str(stack.cloud.server_auth), "NOTIFY_SOCKET": "@" + name}
    proc = _run(conf, env=env)
    try:
        port = yaml.safe_load(conf.read_text())[":port"]
        assert b"READY=1" in notify.recv(4096).split(b"\n")
        assert _listens(port) and _get(metrics, "/health") == (200, "ok\n")  # listening when it said so
        st = dataclasses.replace(
            stack, econe=dataclasses.replace(stack.econe, port=port, url=f"http://127.0.0.1:{port}")
        )
        first, rest = _upload(st, 256 * 1024)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(first)
            assert _until(lambda: scrape(metrics).get(("econe_uploads_in_flight", ())) == 1)
            proc.send_signal(15)  # SIGTERM, as systemd stops a unit
            assert b"STOPPING=1" in notify.recv(4096).split(b"\n")
            assert _until(lambda: not _listens(port)), "it still accepts connections"
            assert _get(metrics, "/health")[0] == 503  # the proxy and systemd see it stopping
            sock.sendall(rest)  # the request in flight is finished, and answered
            status, root = _answer(sock)
        assert status == 200 and root.findtext("{*}imageId", "").startswith("ami-"), ET.tostring(root)
        assert proc.wait(20) == 0
    finally:
        notify.close()
        terminate(proc, 15)


# ---------------------------------------------------------------- review of #15: what a slow client or a stop costs


def test_slow_clients_on_the_metrics_port_hold_no_health_check(metered):
    """Clients that trickle a request head a byte at a time hold no worker of the metrics port: /health
    and /metrics answer at once meanwhile (the probe of the proxy and of systemd must not time out)."""
    port = _metrics_port(metered.econe)
    slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
    try:
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
        for _ in range(3):  # each slow client sends a byte a second, never the head's end
            time.sleep(1)
            for sock in slow:
                sock.sendall(b"X")
            started = time.monotonic()
            assert _get(port, "/health") == (200, "ok\n")
            assert time.monotonic() - started < 1
    finally:
        for sock in slow:
            sock.close()


def _burst_client(port: int, request: bytes, go, outcomes: list) -> None:
    """Fresh-connection requests until one is refused at connect: each outcome (answered, refused, reset, empty)."""
    go.wait()
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        except ConnectionRefusedError:
            outcomes.append("refused")
            return
        try:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            outcomes.append("answered" if answer.startswith(b"HTTP/1.1 ") else "empty")
        except ConnectionResetError:
            outcomes.append("reset")
        except OSError as e:
            outcomes.append(f"error {e!r}")
        finally:
            sock.close()


def test_sigterm_mid_burst_answers_or_refuses_every_connection(stack, tmp_path):
    """A stop costs no request: under 16 clients of fresh connections, SIGTERM leaves each either
    answered or refused at connect (what a proxy retries on another backend); none is reset after
    connecting or closed without an answer. And the server exits 0."""
    metrics = free_port()
    conf = _conf(stack, tmp_path, port=free_port(), metrics_port=metrics)
    port = yaml.safe_load(conf.read_text())[":port"]
    env = {**os.environ, "ONE_CIPHER_AUTH": str(stack.cloud.server_auth)}
    proc = _run(conf, env=env)
    try:
        assert _until(lambda: _listens(port) and _listens(metrics), 20), proc.poll()
        st = dataclasses.replace(
            stack, econe=dataclasses.replace(stack.econe, port=port, url=f"http://127.0.0.1:{port}")
        )
        request = (
            f"GET /?{_v2_query(st, {'Action': 'DescribeRegions'})} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        go, outcomes = threading.Event(), []
        clients = [threading.Thread(target=_burst_client, args=(port, request, go, outcomes)) for _ in range(16)]
        for t in clients:
            t.start()
        go.set()
        time.sleep(1)
        proc.send_signal(15)
        for t in clients:
            t.join(30)
        assert proc.wait(20) == 0
    finally:
        terminate(proc, 15)
    counts = collections.Counter(outcomes)
    assert counts["refused"] == 16 and counts["answered"] > 16, counts
    assert set(counts) == {"answered", "refused"}, counts

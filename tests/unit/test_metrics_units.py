"""The pure parts of issue #15's metrics: why an authentication failed (the metrics' reason label),
systemd's notify datagram, and the metrics port's answers."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from econe import auth, x509
from econe.errors import EC2Error
from econe.metrics import AUTH_REASONS, Metrics, health_app
from econe.notify import notify

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
ACCOUNTS = {"alice": auth.Account("secret"), "off": auth.Account("secret", enabled=False)}


def _v2(user: str, secret: str, when: datetime = NOW, **extra) -> auth.Request:
    params = {
        "Action": "DescribeRegions",
        "AWSAccessKeyId": user,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **extra,
    }.items()
    signature = auth.v2_signature(secret, auth.v2_string_to_sign("GET", "h", "/", list(params)))
    return auth.Request("GET", ["h"], ["/"], [*params, ("Signature", signature)])


@pytest.mark.parametrize(
    "request_, reason",
    [
        (auth.Request("GET", ["h"], ["/"], [("Action", "DescribeRegions")]), "missing"),
        (auth.Request("GET", ["h"], ["/"], [], headers={"authorization": "AWS4-HMAC-SHA256 nonsense"}), "malformed"),
        (_v2("alice", "secret", SignatureMethod="HmacMD5"), "malformed"),
        (_v2("alice", "secret", NOW - timedelta(hours=1)), "expired"),
        (_v2("nobody", "secret"), "unknown_key"),
        (_v2("off", "secret"), "disabled"),
        (_v2("alice", "not-the-secret"), "signature"),
    ],
)
def test_each_refused_signature_says_why(request_, reason):
    with pytest.raises(EC2Error) as e:
        auth.verify(request_, ACCOUNTS.get, NOW)
    assert auth.reason_of(e.value) == reason and reason in AUTH_REASONS


@pytest.mark.parametrize("dn, users", [(None, []), ("CN = nobody", []), ("CN = off", [("off", False)])])
def test_a_refused_client_certificate_is_x509s(dn, users):
    with pytest.raises(EC2Error) as e:
        x509.user_of(dn, lambda _: users)
    assert auth.reason_of(e.value) == "x509"


@pytest.mark.parametrize("abstract", [True, False])
def test_notify_sends_one_datagram_to_systemds_socket(tmp_path, abstract):
    name = f"\0econe-unit-{uuid.uuid4().hex}" if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(name)
        sock.settimeout(2)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name[1:] if abstract else name})
        assert sock.recv(100) == b"READY=1"


def test_notify_without_systemd_sends_nothing_and_a_gone_socket_does_not_raise(tmp_path):
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def _call(app, path: str, method: str = "GET") -> tuple[str, bytes]:
    answer = {}
    body = b"".join(
        app({"PATH_INFO": path, "REQUEST_METHOD": method, "QUERY_STRING": ""}, lambda s, h: answer.update(s=s))
    )
    return answer["s"], body


def test_the_metrics_port_answers_health_metrics_and_nothing_else():
    metrics = Metrics()
    app = health_app(metrics)
    metrics.request("DescribeRegions", 200, 0.01)
    assert _call(app, "/health") == ("200 OK", b"ok\n")
    status, body = _call(app, "/metrics")
    assert status.startswith("200") and b'econe_requests_total{action="DescribeRegions",status="200"} 1.0' in body
    assert _call(app, "/")[0].startswith("404") and _call(app, "/metrics", "POST")[0].startswith("405")
    metrics.stopping = True
    assert _call(app, "/health")[0].startswith("503")


def test_two_servers_in_one_process_count_apart():
    one, two = Metrics(), Metrics()  # each its own registry: no "Duplicated timeseries" from prometheus_client
    one.request("DescribeRegions", 200)
    assert one.registry.get_sample_value("econe_requests_total", {"action": "DescribeRegions", "status": "200"}) == 1
    assert two.registry.get_sample_value("econe_requests_total", {"action": "DescribeRegions", "status": "200"}) is None
    with one.oned_call("one.vm.info"):
        time.sleep(0.001)
    assert one.registry.get_sample_value("econe_oned_call_duration_seconds_count", {"method": "one.vm.info"}) == 1

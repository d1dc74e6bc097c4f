"""onelite at oned's limits, held to what a real oned 6.10.5 answered (tests/fixtures/oned-6.10.5/limits/):
one.user.enable and what a disabled user can do, the names oned refuses, the numbers its XML-RPC library
cannot read, and its XML-RPC server's bounds: the request size, one call per connection, MAX_CONN
connections served at once (the others wait in the backlog), TIMEOUT for a silent client."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from xml.sax.saxutils import escape

import pytest

from one import cipher

from .conftest import FIXTURES, free_port, start_onelite, terminate

CAPTURE = json.loads((FIXTURES / "limits" / "answers.json").read_text())
P = "econe-conformance-onelite16-"
MAX_CONN = 15  # oned.conf's MAX_CONN, which onelite applies


# ---------------------------------------------------------------- calls as the capture made them


def _value(kind: str, v) -> str:
    if kind == "raw":
        return v
    if kind == "array":
        return "<array><data>" + "".join(f"<value>{_value(*x)}</value>" for x in v) + "</data></array>"
    if kind == "boolean":
        return f"<boolean>{int(v)}</boolean>"
    return f"<{kind}>{escape(str(v))}</{kind}>"


def call_body(method: str, params: list) -> bytes:
    ps = "".join(f"<param><value>{_value(k, v)}</value></param>" for k, v in params)
    return (
        f"<?xml version='1.0'?><methodCall><methodName>{method}</methodName><params>{ps}</params></methodCall>".encode()
    )


def post(port: int, body: bytes) -> bytes:
    """One call on a connection of its own: the answer's body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
        answer = conn.getresponse()
        assert answer.status == 200, answer.read()
        return answer.read()
    finally:
        conn.close()


def post_request(body: bytes, path: str = "/RPC2") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def exchange(port: int, raw: bytes, timeout: float = 5) -> tuple[int, dict, bytes]:
    """Send *raw*, read until the server closes: (status, headers, body). Fails if it does not close."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):  # a timeout here: the server kept the connection open
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def parse(raw: str | bytes):
    try:
        (answer,), _ = xmlrpc.client.loads(raw)
        return answer
    except xmlrpc.client.Fault as f:
        return ("fault", f.faultCode, f.faultString)


def substitute(v, names: dict):
    if isinstance(v, str):
        for key, value in names.items():
            v = v.replace("{" + key + "}", str(value))
        return v
    return [[kind, substitute(x, names)] for kind, x in v] if isinstance(v, list) else v


def _swap(v, theirs: int, ours: int):
    if isinstance(v, str):
        return v.replace(f"[{theirs}]", f"[{ours}]")
    return ours if type(v) is int and v == theirs else v


def expected(case: dict, names: dict):
    """oned's answer with the capture's ids swapped for this cloud's."""
    answer = parse(case["answer"])
    if isinstance(answer, tuple):
        return answer
    for key, theirs in case["ids"].items():
        answer = [_swap(v, theirs, names[key]) for v in answer]
    return answer


def mismatch(case: dict, names: dict, actual) -> str | None:
    want = expected(case, names)
    if case["compare"] == "all":
        same = actual == want
    elif case["compare"] == "ok":
        same = isinstance(actual, list) and actual[0] == want[0]
    else:  # one element of an object's document
        element = re.compile(f"<{case['compare']}>(.*?)</")
        same = isinstance(actual, list) and actual[0] and element.findall(actual[1]) == element.findall(want[1])
    return None if same else f"{case['name']} ({case['note']}): oned {want!r}, onelite {actual!r}"


def replay(port: int, names: dict, prefix: str, after=None) -> list[str]:
    problems = []
    for case in CAPTURE["cases"]:
        if case["name"].startswith(prefix):
            actual = parse(post(port, call_body(case["method"], substitute(case["params"], names))))
            problems.append(mismatch(case, names, actual))
            if after:
                after(case, actual)
    return [p for p in problems if p]


# ---------------------------------------------------------------- the cloud the capture had


def wait(fn, what: str, timeout: float = 10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := fn():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    work = tmp_path_factory.mktemp("limits")
    server = start_onelite(work / "one", log=work / "onelite.log")
    one = xmlrpc.client.ServerProxy(server.url)
    admin = server.admin_session

    def ok(method: str, *args):
        answer = getattr(one, method)(admin if args and args[0] is None else args[0], *args[1:])
        assert answer[0], answer
        return answer[1]

    names = {"ADMIN": admin, "U": P + "u", "V": P + "v", "SERVER": server.server_auth[0]}
    names["GID"] = ok("one.group.allocate", None, P + "g")
    names["UID_U"] = ok("one.user.allocate", None, names["U"], "pw", "", [names["GID"]])
    names["UID_V"] = ok("one.user.allocate", None, names["V"], "pw2", "", [names["GID"]])
    names["TOKEN_U"] = ok("one.user.login", names["U"] + ":pw", names["U"], "", 3600, -1)
    key = hashlib.sha256(server.server_auth[1].encode()).hexdigest()
    token = cipher.encrypt(key, f"{names['SERVER']}:{names['U']}:{int(time.time()) + 3600}")
    names["CIPHER_U"] = token
    names["TID"] = ok("one.template.allocate", None, f'NAME="{P}t"\nCPU="0.1"\nMEMORY="64"')
    names["IID"] = ok("one.image.allocate", None, f'NAME="{P}i"\nTYPE="DATABLOCK"\nSIZE="1"', 1)
    names["VNID"] = ok("one.vn.allocate", None, f'NAME="{P}n"\nVN_MAD="dummy"\nBRIDGE="br0"', -1)
    names["VMID"] = ok("one.vm.allocate", None, f'NAME="{P}vm"\nCPU="0.1"\nMEMORY="64"', True)
    ready = re.compile(r"<STATE>(<!\[CDATA\[)?1\b")
    wait(lambda: ready.search(ok("one.image.info", None, names["IID"])), "the image READY")
    wait(lambda: ready.search(ok("one.vn.info", None, names["VNID"])), "the vnet READY")
    server.names, server.ok, server.log = names, ok, work / "onelite.log"
    yield server
    server.stop()


# ---------------------------------------------------------------- sessions


def test_sessions_and_tokens_with_any_characters_authenticate_as_text(cloud):
    """Found by test_onelite_fuzz: a login token with a non-ASCII character made every later password
    session of its user an internal error (Python's compare_digest takes ASCII strings only)."""
    one = xmlrpc.client.ServerProxy(f"http://127.0.0.1:{cloud.port}/RPC2")
    user = P + "w"
    ok, uid, *_ = one.one.user.allocate(cloud.names["ADMIN"], user, "pw", "", [cloud.names["GID"]])
    assert ok
    try:
        assert one.one.user.login(f"{user}:pw", user, "tökén", 3600, -1)[:2] == [True, "tökén"]
        assert one.one.user.info(f"{user}:pw", -1, False)[0]  # the password still works
        assert one.one.user.info(f"{user}:tökén", -1, False)[0]  # and so does the token
        answer = one.one.user.info(f"{user}:pässwörd", -1, False)
        assert answer[:3] == [False, "[one.user.info] User couldn't be authenticated, aborting call.", 256]
    finally:
        one.one.user.delete(cloud.names["ADMIN"], uid)


# ---------------------------------------------------------------- one.user.enable


def test_user_enable_and_disabled_users_as_oned(cloud):
    problems = replay(cloud.port, cloud.names, "enable.")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- names


DELETE = {
    "user": "one.user.delete",
    "group": "one.group.delete",
    "host": "one.host.delete",
    "vn": "one.vn.delete",
    "image": "one.image.delete",
    "template": "one.template.delete",
    "secgroup": "one.secgroup.delete",
    "template_clone": "one.template.delete",
    "image_clone": "one.image.delete",
}


def test_names_oned_refuses_are_refused_with_its_errors(cloud):
    def succeeds(method: str, oid: int) -> bool:
        return parse(post(cloud.port, call_body(method, [["string", cloud.names["ADMIN"]], ["int", oid]])))[0]

    def drop_what_was_made(case, actual):  # as the capture did, so that later names are free again
        method = DELETE.get(case["name"].split(".")[1])
        if method and isinstance(actual, list) and actual[0] and case["method"].endswith(("allocate", "clone")):
            wait(lambda: succeeds(method, actual[1]), f"{method} {actual[1]}")  # a vnet: once its driver made it
            wait(lambda: not succeeds(method.replace(".delete", ".info"), actual[1]), f"{method} {actual[1]} done")

    problems = replay(cloud.port, cloud.names, "name.", after=drop_what_was_made)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- numbers


def test_numbers_xmlrpc_c_cannot_read_are_parse_faults(cloud):
    problems = replay(cloud.port, cloud.names, "number.")
    assert not problems, "\n".join(problems)
    assert "Traceback" not in cloud.log.read_text()  # none reached a handler as an internal error


def test_a_nic_naming_a_missing_vnet_is_refused_in_oneds_words(cloud):
    problems = replay(cloud.port, cloud.names, "nic.")  # found by make conformance: onelite had its own words
    assert not problems, "\n".join(problems)


def test_parameters_past_the_methods_are_ignored_and_missing_ones_faults(cloud):
    problems = replay(cloud.port, cloud.names, "params.")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("99999999999999999999", "Number cannot be represented in 64 bits.  Must be in the range "
         "[-9223372036854775808 - 9223372036854775807]"),
        ("12abc", "contains non-numerical junk: 'abc'"),
    ],
)  # fmt: skip
def test_an_i8_that_is_no_64_bit_integer_is_a_parse_fault(cloud, text, reason):
    """A real oned dies on these (xmlrpc-c 1.33.14 formats this fault with an argument missing);
    onelite answers the fault xmlrpc-c means to give, and carries on."""
    body = call_body("one.vm.info", [["string", cloud.names["ADMIN"]], ["raw", f"<i8>{text}</i8>"]])
    assert parse(post(cloud.port, body)) == (
        "fault",
        -503,
        f"Call XML not a proper XML-RPC call.  <i8> XML element value '{text}' is invalid because it does "
        f"not represent a 64 bit integer.  {reason}",
    )
    assert cloud.ok("one.system.version", None) == "6.10.5"


def test_an_unbounded_integer_type_is_unknown_to_xml_rpc(cloud):
    """Python reads <biginteger> as an int of any size; xmlrpc-c knows no such type."""
    body = call_body(
        "one.vm.info", [["string", cloud.names["ADMIN"]], ["raw", "<biginteger>99999999999999999999</biginteger>"]]
    )
    assert parse(post(cloud.port, body)) == (
        "fault", -503, "Call XML not a proper XML-RPC call.  Unknown value type -- XML element is named <biginteger>"
    )  # fmt: skip


# ---------------------------------------------------------------- the XML-RPC server


@pytest.mark.parametrize("name", sorted(CAPTURE["http"]))
def test_http_answers_as_oned(cloud, name):
    """Status, message, and the connection closed after the answer, for each captured exchange."""
    captured = CAPTURE["http"][name]
    status, headers, body = exchange(cloud.port, captured["request"].encode("latin-1"), timeout=3)
    want_head, _, want_body = captured["response"].partition("\r\n\r\n")
    assert status == int(want_head.split()[1])
    assert headers.get("connection") == "close"
    if status == 200:
        assert parse(body) == parse(want_body)
    else:
        message = re.search("<P>(.*?)</P>", want_body).group(1).replace("&#39;", "'")
        assert message in body.decode()


def test_a_request_over_message_size_is_refused_before_its_body_is_sent(cloud):
    head = b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: 1073741825\r\n\r\n"
    started = time.monotonic()
    status, _, body = exchange(cloud.port, head, timeout=3)
    assert (status, body.decode().strip()) == (500, "XML-RPC request too large (1073741825 bytes)")
    assert time.monotonic() - started < 2


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_connections_beyond_max_conn_wait_in_the_backlog_and_add_no_threads(cloud):
    before = _threads(cloud.proc.pid)
    idle = [socket.create_connection(("127.0.0.1", cloud.port), timeout=2) for _ in range(2 * MAX_CONN)]
    try:
        answered = []
        caller = threading.Thread(
            target=lambda: answered.append(post(cloud.port, call_body("one.system.version", [["string", "x:y"]])))
        )
        caller.start()
        time.sleep(1)
        assert _threads(cloud.proc.pid) - before <= MAX_CONN
        assert not answered, "a call was served while MAX_CONN connections held every slot"
    finally:
        for s in idle:
            s.close()
    caller.join(5)
    assert answered, "the waiting call was not served once the connections closed"


def test_each_connection_serves_one_call(cloud):
    with socket.create_connection(("127.0.0.1", cloud.port), timeout=3) as s:
        req = post_request(call_body("one.system.version", [["string", "x:y"]]))
        s.sendall(req + req)  # a second call on the same connection goes unanswered, as on oned
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 1
    assert b"Connection: close" in data


# ---------------------------------------------------------------- TIMEOUT, with a short one


@pytest.fixture
def short_timeout(tmp_path):
    """onelite with oned's limits but TIMEOUT 0.5 s and MAX_CONN 2, so that a silent client is seen dropped
    in well under a second (oned's 15 s would make a slow test)."""
    port = free_port()
    code = (
        "import sys; from onelite.server import Limits, OneliteServer\n"
        f"s = OneliteServer('127.0.0.1', {port}, sys.argv[1], limits=Limits(max_conn=2, max_conn_backlog=2,"
        " timeout=0.5, message_size=1073741824))\n"
        "s.install_signal_handlers(); s.serve_forever()\n"
    )
    with open(tmp_path / "onelite.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "one")], stdout=out, stderr=out)
    wait(lambda: proc.poll() is None and _connects(port), "onelite to listen")
    yield port
    terminate(proc, 10)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("sent", [b"", b"POST /RPC2 HTTP/1.1\r\nContent-Length: 100\r\n\r\n<?xml"])
def test_a_silent_client_is_dropped_after_timeout(short_timeout, sent):
    silent = [socket.create_connection(("127.0.0.1", short_timeout), timeout=3) for _ in range(2)]
    for s in silent:
        s.sendall(sent)
    started = time.monotonic()
    for s in silent:  # the server closes them: EOF
        while s.recv(65536):
            pass
        s.close()
    assert time.monotonic() - started < 2
    # both slots are free again
    assert parse(post(short_timeout, call_body("one.system.version", [["string", "x:y"]])))[2] == 256

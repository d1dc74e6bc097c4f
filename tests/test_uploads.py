"""UploadImage as an attacker sends it (#8 items 2 and 12), against econe-server and onelite as real
processes on raw sockets: nothing reaches tmpdir before the request is authenticated, a refused
upload is answered while its body is still arriving and the rest is not read, and the multipart
parser is bounded and linear."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import xml.etree.ElementTree as ET

import pytest

from . import test_econe_e2e as e2e

stack = e2e.stack  # the e2e module's fixture: an onelite, a demo user, an econe-server of this module's own
error_code = e2e.error_code

MiB = 1024 * 1024
ANNOUNCED = 8 * MiB  # what a refused request says it will send (the most the stack accepts): no waiting for it


def _parts(boundary: str, pairs) -> bytes:
    return b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in pairs
    )


def _file_head(boundary: str) -> bytes:
    return (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="disk.raw"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()


def _request_head(stack, boundary: str, length: int) -> bytes:
    return (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{stack.econe.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def _answer(sock: socket.socket) -> tuple[int, ET.Element]:
    """The server's answer: status and EC2 document (read up to its Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < e2e._length(data):
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection before its answer was complete: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), ET.fromstring(body)


def _closed(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (it will not read what the client still sends)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _staged(stack) -> list[str]:
    return sorted(os.listdir(stack.workdir / "tmp"))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _begin(stack, boundary: str, head: bytes, file_bytes: int = MiB) -> socket.socket:
    """A request announcing 8 MiB that has sent only *head* and *file_bytes* of file so far."""
    sock = socket.create_connection(("127.0.0.1", stack.econe.port), timeout=10)
    sock.sendall(_request_head(stack, boundary, ANNOUNCED) + head)
    with contextlib.suppress(OSError):  # the server may already have answered and closed
        sock.sendall(b"\0" * file_bytes)
    return sock


def _unsigned(stack):
    return [p for p in e2e.upload_fields(stack) if p[0] != "Signature"], (401, "AuthFailure")


def _wrong_signature(stack):
    return e2e.upload_fields(stack, secret="not-the-secret"), (401, "AuthFailure")


def _not_an_action(stack):
    return [("Action", "NotAnAction"), ("Version", "2016-11-15")], (400, "InvalidAction")


def _another_action(stack):  # signed, but only UploadImage takes a file
    return e2e.upload_fields(stack, "DescribeRegions"), (400, "InvalidParameter")


def _dry_run(stack):
    return e2e.upload_fields(stack, DryRun="true"), (400, "InvalidParameter")


REFUSALS = {
    "unsigned": _unsigned,
    "wrong signature": _wrong_signature,
    "not an action": _not_an_action,
    "an action that takes no file": _another_action,
    "dry run": _dry_run,
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_upload_stages_nothing_and_is_answered_before_its_body_ends(stack, case):
    fields, expected = REFUSALS[case](stack)
    boundary = "b0undary"
    with _begin(stack, boundary, _parts(boundary, fields) + _file_head(boundary)) as sock:
        # 7 MiB are still to come: the answer must not wait for them, nor anything be staged meanwhile
        answered = select.select([sock], [], [], 5)[0]
        assert _staged(stack) == [], "an unauthenticated upload was written to tmpdir"
        assert answered, "no answer while the body is still arriving"
        status, root = _answer(sock)
        assert (status, error_code(root)) == expected
        assert _closed(sock), "the server keeps reading a body it refused"
    assert _staged(stack) == []
    assert stack.client().describe_regions()["Regions"][0]["RegionName"] == "opennebula"


def test_a_file_part_before_the_signed_fields_is_refused_before_a_byte_is_staged(stack):
    boundary = "b0undary"
    with _begin(stack, boundary, _file_head(boundary)) as sock:
        answered = select.select([sock], [], [], 5)[0]
        assert _staged(stack) == []
        assert answered
        status, root = _answer(sock)
        assert (status, error_code(root)) == (400, "MissingParameter")  # no Action yet when the file begins
        assert _closed(sock)


def test_fields_before_the_file_are_held_to_the_form_limit(stack):
    """What precedes the file is read unauthenticated: at most a form's 1 MiB of it, not 8 MiB."""
    boundary = "b0undary"
    with _begin(stack, boundary, b"x" * (2 * MiB)) as sock:  # a preamble that never ends
        assert select.select([sock], [], [], 5)[0], "no answer while the body is still arriving"
        status, root = _answer(sock)
        assert (status, error_code(root)) == (413, "RequestEntityTooLarge")
        assert _closed(sock)


def test_a_part_after_the_file_is_refused_and_nothing_is_kept(stack):
    """Only the fields before the file were authenticated: nothing may follow it."""
    boundary = "b0undary"
    images = len(stack.client().describe_images(Owners=["self"])["Images"])
    body = (
        _parts(boundary, e2e.upload_fields(stack))
        + _file_head(boundary)
        + b"\1" * 4096
        + b"\r\n"
        + _parts(boundary, [("Action", "RunInstances")])
        + f"--{boundary}--\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", stack.econe.port), timeout=10) as sock:
        sock.sendall(_request_head(stack, boundary, len(body)) + body)
        status, root = _answer(sock)
    assert (status, error_code(root)) == (400, "InvalidRequest")
    assert _staged(stack) == []
    assert len(stack.client().describe_images(Owners=["self"])["Images"]) == images


def test_a_boundary_with_capital_letters_is_accepted(stack):
    """RFC 2046: boundaries are case-sensitive (browsers send ----WebKitFormBoundaryAbC...)."""
    boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
    body = (
        _parts(boundary, e2e.upload_fields(stack))
        + _file_head(boundary)
        + os.urandom(4096)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with socket.create_connection(("127.0.0.1", stack.econe.port), timeout=30) as sock:
        sock.sendall(_request_head(stack, boundary, len(body)) + body)
        status, root = _answer(sock)
    assert status == 200, ET.tostring(root)
    ami = next(el.text for el in root.iter() if el.tag.endswith("imageId"))
    assert stack.client().describe_images(ImageIds=[ami])["Images"][0]["State"] == "available"
    assert _staged(stack) == []


def test_many_empty_parts_are_refused_at_once_and_cheaply(stack):
    """4 MiB of empty parts: the part limit answers a clear 400 after a few hundred of them."""
    boundary = "b0undary"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n\r\n'.encode()
    body = part * (4 * MiB // len(part)) + f"--{boundary}--\r\n".encode()
    before = _cpu_seconds(stack.econe.proc.pid)
    with socket.create_connection(("127.0.0.1", stack.econe.port), timeout=10) as sock:
        sock.sendall(_request_head(stack, boundary, len(body)))
        with contextlib.suppress(OSError):  # refused before the end: the rest is not read
            sock.sendall(body)
        status, root = _answer(sock)
    cpu = _cpu_seconds(stack.econe.proc.pid) - before
    assert (status, error_code(root)) == (400, "InvalidRequest")
    assert "at most 256 parts" in root.findtext("Errors/Error/Message")
    assert cpu < 0.3, f"{cpu:.2f} s of CPU for 4 MiB of empty parts"

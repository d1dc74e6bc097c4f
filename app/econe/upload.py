"""``econe-upload IMAGE``: upload a disk image to an econe endpoint and print its new AMI id.

The original econe-upload wire protocol: a multipart POST of the field ``file`` plus SigV2-signed
``Action=UploadImage`` fields (the file itself is not signed). The file is streamed, never read
into memory, with a progress bar on standard error.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.client
import io
import os
import select
import ssl
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlparse

from .auth import v2_signature, v2_string_to_sign

CHUNK = 1024 * 1024
VERSION = "2016-11-15"


def credentials(args) -> tuple[str, str]:
    """Options, then EC2_ACCESS_KEY/EC2_SECRET_KEY, then ONE_AUTH (user:password)."""
    key = args.access_key or os.environ.get("EC2_ACCESS_KEY")
    secret = args.secret_key or os.environ.get("EC2_SECRET_KEY")
    if key and secret:
        return key, secret
    auth_file = os.environ.get("ONE_AUTH", os.path.expanduser("~/.one/one_auth"))
    try:
        with open(auth_file) as f:
            user, _, password = f.read().strip().partition(":")
    except OSError:
        raise SystemExit("econe-upload: no credentials: use -K/-S, EC2_ACCESS_KEY/EC2_SECRET_KEY or ONE_AUTH") from None
    return key or user, secret or hashlib.sha256(password.encode()).hexdigest()


def signed_fields(url: str, key: str, secret: str) -> list[tuple[str, str]]:
    parts = urlparse(url)
    fields = [
        ("Action", "UploadImage"),
        ("Version", VERSION),
        ("AWSAccessKeyId", key),
        ("SignatureVersion", "2"),
        ("SignatureMethod", "HmacSHA256"),
        ("Timestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    ]
    host = parts.netloc
    text = v2_string_to_sign("POST", host, parts.path or "/", fields)
    return fields + [("Signature", v2_signature(secret, text))]


class Progress:
    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.stream, self.started = total, 0, stream, time.time()
        self.tty = stream.isatty()

    def update(self, n: int):
        self.done += n
        if self.tty:
            pct = self.done * 100 // max(self.total, 1)
            bar = "#" * (pct // 4)
            rate = self.done / max(time.time() - self.started, 1e-6) / 1048576
            self.stream.write(f"\r[{bar:<25}] {pct:3d}% {self.done / 1048576:8.1f} MiB  {rate:6.1f} MiB/s")
            self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")


def upload(url: str, path: str, key: str, secret: str, progress: Progress | None = None) -> tuple[int, bytes]:
    parts = urlparse(url)
    boundary = uuid.uuid4().hex
    head = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in signed_fields(url, key, secret)
    )
    file_head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{os.path.basename(path)}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = os.path.getsize(path)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    kwargs = {}
    if parts.scheme == "https":
        kwargs["context"] = ssl._create_unverified_context() if os.environ.get("EC2_NO_VERIFY") else None
    conn = conn_cls(parts.hostname, parts.port, timeout=600, **kwargs)
    conn.putrequest("POST", parts.path or "/")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + len(file_head) + size + len(tail)))
    conn.endheaders()
    early = None
    try:
        conn.send(head + file_head)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                if (early := _early_answer(conn.sock)) is not None:
                    break
                conn.send(chunk)
                if progress:
                    progress.update(len(chunk))
            else:
                conn.send(tail)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server refused the upload before its end and closed: its answer is there to read
    if early:
        conn.response_class = functools.partial(_Replayed, early)
    resp = conn.getresponse()
    return resp.status, resp.read()


def _early_answer(sock) -> bytes | None:
    """None while the server has not answered; else the bytes of its answer read here (b"" when none
    were). It refuses an upload as soon as the file begins (a wrong signature...) and reads no more
    of it, so there is no point in sending the rest. Over TLS a readable socket is no answer yet: a
    TLS 1.3 server sends session tickets after the handshake. A non-blocking read consumes them and
    tells them from application data, which is the answer's beginning, kept for its parser."""
    if not select.select([sock], [], [], 0)[0]:
        return None
    if not isinstance(sock, ssl.SSLSocket):
        return b""  # data or the server's close: the response reader sees it all
    timeout = sock.gettimeout()
    sock.settimeout(0)
    try:
        return sock.recv(CHUNK)  # b"" when the server closed
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None  # no application data: TLS records of its own (tickets), or part of one
    finally:
        sock.settimeout(timeout)


class _Replayed(http.client.HTTPResponse):
    """The server's answer, whose first bytes *head* were read off the socket already."""

    def __init__(self, head: bytes, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_Prefixed(head, self.fp))


class _Prefixed(io.RawIOBase):
    """*head*, then the stream *rest*."""

    def __init__(self, head: bytes, rest):
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if not self.head:
            return self.rest.readinto1(buffer)  # what one read brings: readinto waits to fill *buffer*
        n = min(len(buffer), len(self.head))
        buffer[:n], self.head = self.head[:n], self.head[n:]
        return n

    def close(self):
        self.rest.close()
        super().close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="econe-upload",
        description="Upload a disk image to an econe endpoint and register it; prints the new AMI id.",
    )
    parser.add_argument("image", help="the disk image file to upload")
    parser.add_argument("-K", "--access-key", help="access key (OpenNebula user name); default $EC2_ACCESS_KEY")
    parser.add_argument("-S", "--secret-key", help="secret key; default $EC2_SECRET_KEY")
    parser.add_argument(
        "-U",
        "--url",
        default=os.environ.get("EC2_URL", "http://localhost:4567/"),
        help="endpoint URL; default $EC2_URL or http://localhost:4567/",
    )
    args = parser.parse_args(argv)
    if not os.path.isfile(args.image):
        print(f"econe-upload: {args.image}: no such file", file=sys.stderr)
        return 1
    key, secret = credentials(args)
    progress = Progress(os.path.getsize(args.image))
    try:
        status, body = upload(args.url, args.image, key, secret, progress)
    except OSError as e:
        progress.close()
        print(f"econe-upload: cannot reach {args.url}: {e}", file=sys.stderr)
        return 1
    except http.client.HTTPException as e:  # an answer cut short or not HTTP
        progress.close()
        print(f"econe-upload: {args.url}: not a complete HTTP answer: {e!r}", file=sys.stderr)
        return 1
    progress.close()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        print(f"econe-upload: HTTP {status}: {body[:200]!r}", file=sys.stderr)
        return 1
    if status != 200:
        code = root.findtext(".//Code") or f"HTTP {status}"
        print(f"econe-upload: {code}: {root.findtext('.//Message') or ''}", file=sys.stderr)
        return 1
    print(next((el.text for el in root.iter() if el.tag.endswith("imageId")), ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

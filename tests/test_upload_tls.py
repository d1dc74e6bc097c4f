"""econe-upload through a TLS 1.3 terminator (as lighttpd deploys it): the session tickets a TLS 1.3
server sends after the handshake are no answer, so the whole image is sent; a refused upload is still
stopped early, over TLS and plain HTTP. The terminator is a small relay in the test (Python's TLS 1.3
server sends 2 tickets), with a certificate made here and trusted through SSL_CERT_FILE (refused without it)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from . import test_econe_e2e as e2e
from .conftest import start_econe

stack = e2e.stack  # the e2e module's fixture: an onelite, a demo user, an econe-server of this module's own

MiB = 1024 * 1024


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files): the relay's, and the client's CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "econe test relay")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay.pem", directory / "relay.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class Relay:
    """A TLS terminator (or, with no certificate, a plain TCP relay) on a free loopback port, relaying
    bytes both ways to *port*. ``received`` counts the request bytes the client sent, all of them: what
    it sends after the upstream has answered and closed is still read (and dropped), as a proxy does."""

    def __init__(self, port: int, cert: tuple[Path, Path] | None = None):
        self.upstream, self.received, self.tls = port, 0, None
        if cert:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_3
            self.tls.load_cert_chain(*cert)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket):
        # one thread for both directions (an SSL object must not be read and written at once), the
        # upstream non-blocking: its answer is read while the request is still being passed on
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as upstream:
            if self.tls:
                try:
                    client = self.tls.wrap_socket(client, server_side=True)
                except ssl.SSLError:
                    return  # the client refused the certificate
            upstream.setblocking(False)
            answering, sending, pending = True, True, b""
            while True:
                reads = [upstream] * answering + [client] * (not pending)
                if self.tls and client.pending() and not pending:
                    readable, writable = [client], []
                else:
                    readable, writable, _ = select.select(reads, [upstream] * bool(pending), [], 60)
                    if not readable and not writable:
                        return
                if upstream in readable:
                    try:
                        data = upstream.recv(65536)
                    except OSError:
                        data = b""
                    client.sendall(data)
                    answering = sending = bool(data)
                if upstream in writable:
                    try:
                        pending = pending[upstream.send(pending) :]
                    except OSError:
                        sending = False  # it reads no more (it has answered): its answer is still read
                if client in readable:
                    try:
                        data = client.recv(65536)
                    except (ssl.SSLError, ConnectionResetError):
                        data = b""
                    if not data:
                        return
                    self.received += len(data)
                    pending += data
                pending = pending if sending else b""  # what the upstream will not read is dropped

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/"

    def close(self):
        self.listener.close()


@pytest.fixture(scope="module")
def econe(stack):
    """An econe on the stack's cloud that takes a 512 MiB image and waits 3 s for a stalled body (the
    failure this module is about: its RequestTimeout)."""
    e = start_econe(
        stack.workdir / "tls",
        stack.cloud.url,
        stack.cloud.server_auth,
        max_upload_size=1024 * MiB,
        request_timeout=3,
        datastore_id=stack.cloud.datastore,
    )
    yield e
    e.stop()


@pytest.fixture(params=["https", "http"])
def relay(request, econe, tmp_path):
    r = Relay(econe.port, _certificate(tmp_path) if request.param == "https" else None)
    r.ca = tmp_path / "relay.pem" if request.param == "https" else None
    yield r
    r.close()


def _econe_upload(url: str, disk: Path, key: str, secret: str, ca: Path | None = None) -> subprocess.CompletedProcess:
    """The console script, verifying https certificates against the system's CAs or *ca* (SSL_CERT_FILE)."""
    env = {k: v for k, v in os.environ.items() if k not in ("EC2_NO_VERIFY", "SSL_CERT_FILE")}
    env.update(EC2_URL=url, EC2_ACCESS_KEY=key, EC2_SECRET_KEY=secret, **({"SSL_CERT_FILE": str(ca)} if ca else {}))
    exe = str(Path(sys.executable).with_name("econe-upload"))
    return subprocess.run([exe, str(disk)], env=env, capture_output=True, text=True, timeout=30)


def _disk(tmp_path: Path, size: int, sparse: bool = False) -> Path:
    disk = tmp_path / "disk.raw"
    with open(disk, "wb") as f:
        f.truncate(size) if sparse else f.write(os.urandom(size))
    return disk


def test_an_upload_through_tls_13_is_sent_whole_and_registered(stack, relay, tmp_path):
    disk = _disk(tmp_path, 4 * MiB + 17)
    done = _econe_upload(relay.url, disk, stack.demo.user, stack.demo.secret, relay.ca)
    assert done.returncode == 0, done.stderr
    ami = done.stdout.strip()
    assert ami.startswith("ami-")
    assert stack.client().describe_images(ImageIds=[ami])["Images"][0]["State"] == "available"
    assert relay.received > disk.stat().st_size


def test_a_refused_upload_is_stopped_early_over_tls_and_plain_http(stack, relay, tmp_path):
    disk = _disk(tmp_path, 512 * MiB, sparse=True)
    done = _econe_upload(relay.url, disk, stack.demo.user, "not-the-secret", relay.ca)
    assert done.returncode != 0 and "AuthFailure" in done.stderr, done.stderr
    # the server answers when the file part begins; what the client sends until the answer reaches it
    # fills the sockets' buffers (about 8 MiB seen here), far from the whole file
    assert relay.received < 64 * MiB, f"the client sent {relay.received} bytes of a refused 512 MiB upload"


def test_the_certificate_is_verified_by_default(stack, econe, tmp_path):
    relay = Relay(econe.port, _certificate(tmp_path))
    try:
        done = _econe_upload(relay.url, _disk(tmp_path, 1024), stack.demo.user, stack.demo.secret)
    finally:
        relay.close()
    assert done.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr
    assert relay.received == 0


def test_an_answer_begun_early_is_read_without_waiting_for_the_connection_to_close():
    """The answer's first TLS record was read while the upload was sent (its head), the rest comes
    later on a connection the server keeps open: the reader takes what it is given, as without a
    head, rather than wait for a buffer's worth (which only the connection's close would bring)."""
    from econe.upload import _Replayed  # here: the module's other tests run on a client without it

    head = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n"
    client, server = socket.socketpair()
    with client, server:
        client.settimeout(2)
        server.sendall(b"<x/>\n")
        resp = _Replayed(head, client, method="POST")
        resp.begin()
        assert (resp.status, resp.read()) == (401, b"<x/>\n")


def test_an_answer_cut_short_is_reported_without_a_traceback(tmp_path):
    """A server (or proxy) that closes in the middle of its answer: a message and exit 1."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_half():
        conn, _ = listener.accept()
        with conn:
            request = b""
            while not request.endswith(b"--\r\n"):  # the whole upload: a close with bytes unread is a reset
                request += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 254\r\n\r\n<Response>")

    threading.Thread(target=answer_half, daemon=True).start()
    with listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        done = _econe_upload(url, _disk(tmp_path, 1024), "user", "secret")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "IncompleteRead" in done.stderr

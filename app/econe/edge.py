"""econe's HTTP edge: Cheroot, with what a port open to anyone needs on top of it.

Cheroot hands a connection to a worker thread as soon as it is accepted (or, kept alive, as soon
as a byte arrives); the worker then blocks reading the request, so a few clients that trickle a
byte every few seconds hold every worker. Here the selector thread holds each connection instead
— reading what arrives into the connection's own read buffer, without blocking — until its request
can be answered without waiting on the client: its head, and its body or the body's first
``MIN_RATE`` × ``request_timeout`` bytes (10 KiB by default, more than most EC2 requests). Only
then does a worker take it.

One rule for time: a request has ``request_timeout`` seconds, from its connection's opening or its
previous answer, to bring its head and that much of its body; a larger body then has to bring as
much again in each further ``request_timeout`` seconds (``MIN_RATE`` bytes per second, which any
link uploads at). A request that falls behind gets 408 (a connection that sent nothing is closed
silently); at most half the workers wait for large bodies at once (503 for the next).

The same place refuses a head whose body length is not one plain ``Content-Length`` (no sign, no
list, no second header, no ``Transfer-Encoding``: 400, or 411 for a body with no length): a body
of unknown length would otherwise be read to the end of the connection, or left in it to be read
as the next request. Past the process's file-descriptor limit (less what the workers need), the
connection that has waited longest is closed to make room for a new one. Every answer the edge
gives itself is an EC2 error document.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import logging
import re
import resource
import select
import selectors
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus

from cheroot import connections, errors, server, wsgi

from . import model
from .errors import EC2Error
from .metrics import UNKNOWN, Metrics

MAX_HEAD = 64 * 1024  # request line and headers: a SigV2 GET with many parameters fits; lighttpd in front allows 32 KiB
MIN_RATE = 1024  # bytes per second a body must keep up, over each request_timeout window

log = logging.getLogger("econe")

# ---------------------------------------------------------------- the head (pure)

_EMPTY_LINE = re.compile(rb"\r?\n\r?\n")
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field names
_DIGITS = re.compile(r"[0-9]+")


class Refused(Exception):
    """A request the edge answers itself with an EC2 error: (HTTP status, EC2 code, message)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Head:
    length: int  # of the body
    expects_continue: bool  # the client waits for "100 Continue" before sending it


def head_size(buffered: bytes, searched: int = 0) -> int | None:
    """Bytes of the request head at the start of *buffered* (through its empty line), or None.
    *searched*: how much of it an earlier call searched in vain (a head arrives in pieces: searching
    it all again for each would cost the selector thread the square of its size)."""
    m = _EMPTY_LINE.search(buffered, max(0, searched - 3))  # an empty line spans at most 4 bytes
    return m.end() if m else None


def content_length(value: str) -> int | None:
    """A Content-Length value as HTTP has it (ASCII digits, nothing else), or None."""
    return int(value) if _DIGITS.fullmatch(value) else None


def parse_head(head: bytes, max_body: int) -> Head:
    """How long the body after *head* is, or Refused. Only what framing needs is read here; Cheroot
    parses the rest. What Cheroot would read differently (a name with spaces, a folded line, a bare
    LF, a second Content-Length) is refused, so that both see the same request."""
    if _BARE_CR_OR_LF.search(head):
        raise Refused(400, "InvalidRequest", "HTTP requires CRLF line ends.")
    lines = head.split(b"\r\n")[:-2]  # the head ends with an empty line
    if lines and not lines[0]:
        lines = lines[1:]  # one empty line before a request is allowed (and skipped by Cheroot)
    lengths, encodings, expects = [], [], False
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            raise Refused(400, "InvalidRequest", "Folded header lines are not accepted.")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise Refused(400, "InvalidRequest", "Malformed header line.")
        name, value = name.lower(), value.strip(b" \t").decode("latin-1")
        if name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            encodings.append(value)
        elif name == b"expect":
            expects = value.lower() == "100-continue"
    if encodings:
        if lengths:
            raise Refused(400, "InvalidRequest", "A request has Content-Length or Transfer-Encoding, not both.")
        raise Refused(411, "MissingContentLength", "Send the body with a Content-Length (no Transfer-Encoding).")
    if len(lengths) > 1:
        raise Refused(400, "InvalidRequest", "A request has one Content-Length.")
    length = content_length(lengths[0]) if lengths else 0
    if length is None:
        raise Refused(400, "InvalidRequest", "Content-Length must be a number of bytes.")
    if length > max_body:
        raise Refused(413, "RequestEntityTooLarge", f"The request body is larger than {max_body} bytes.")
    return Head(length, expects and length > 0)


def error_response(status: int, code: str, message: str, to_head: bool = False) -> tuple[bytes, str]:
    """(a complete HTTP answer carrying an EC2 error document that closes the connection, its request id).
    *to_head*: the answer to a HEAD request, which has the document's headers and not the document."""
    request_id = str(uuid.uuid4())
    body = model.error(code, message, request_id)
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: text/xml; charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if to_head else body), request_id


# ---------------------------------------------------------------- the client address (pure)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# A Forwarded header's tokens: a quoted string, a run of other text, a separator, a quote that does not close
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*+"|[^,;"]++|[,;"]')
_PLAIN = re.compile(r"[^,;]++|[,;]")  # the same past a quote that does not close: no later one can
# RFC 7239's grammar. Only in a header that follows it, every quote closed, is the last element surely
# the one the proxy appended (a client's unclosed quote would take it in). Possessive quantifiers: what
# one part took is never tried by the next, so a mismatch costs linear time.
_PAIR = r'[!#$%&\'*+.^_`|~0-9A-Za-z-]++=(?:[!#$%&\'*+.^_`|~0-9A-Za-z-]++|"(?:[^"\\]|\\.)*+")'
_ELEMENT = rf"(?:{_PAIR}(?:[ \t]*+;[ \t]*+{_PAIR})*+)?+"
_WELL_FORMED = re.compile(rf"[ \t]*+{_ELEMENT}(?:[ \t]*+,[ \t]*+{_ELEMENT})*+[ \t]*+")


@dataclass(frozen=True)
class Client:
    address: str  # the client's: forwarded by a trusted proxy, or the connection's peer
    proxy: str | None  # the trusted proxy the request came through; None when the client connected itself
    # the subject DN of the client certificate the proxy verified (its element's ``remote_user``), as the proxy wrote it
    dn: str | None = None


def _ip(text: str):
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped:  # a dual-stack socket's IPv4 peers
        return ip.ipv4_mapped
    return ip


def _node(value: str):
    """The address of an unquoted Forwarded ``for`` value (RFC 7239 6: ``1.2.3.4``, ``1.2.3.4:80``,
    ``[v6]:80``), or None."""
    if value.startswith("["):
        return _ip(value[1 : value.find("]")])
    return _ip(value) or _ip(value.rpartition(":")[0])


def _elements(header: str) -> list[dict[str, str]]:
    """The parameters of each element of a Forwarded header, names in lower case, quoted strings
    unquoted (RFC 9110 5.6.4); leniently, as a client may have written the start of it. Linear: a quote
    that does not close is taken as text, and so is every later one (it would have closed the first)."""
    elements, pairs, pair, pattern, pos = [], [], "", _TOKENS, 0
    while pos < len(header):
        token = pattern.match(header, pos)[0]
        pos += len(token)
        if token in (",", ";"):
            pairs.append(pair)
            pair = ""
            if token == ",":
                elements.append(pairs)
                pairs = []
        else:
            pattern = _PLAIN if token == '"' else pattern
            pair += token
    elements.append([*pairs, pair])
    return [dict(_param(pair) for pair in pairs if "=" in pair) for pairs in elements]


def _param(pair: str) -> tuple[str, str]:
    name, _, value = pair.partition("=")
    value = value.strip()
    if len(value) > 1 and value[0] == value[-1] == '"':
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    return name.strip().lower(), value


def _forwarded_for(elements: list[dict]) -> list:
    """The ``for`` address of each element, in order (None where it has none)."""
    return [_node(params["for"]) if "for" in params else None for params in elements]


_FORWARDED = re.compile(rb"^forwarded:[ \t]*(.*?)[ \t]*\r?$", re.I | re.M)


def forwarded_in(head: bytes) -> str | None:
    """The Forwarded header of a raw request head (several fields joined, as RFC 9110 5.3 allows), or None."""
    fields = _FORWARDED.findall(head)
    return b", ".join(fields).decode("latin-1") if fields else None


def client_of(peer: str, forwarded: str | None, trusted: tuple[Network, ...]) -> Client:
    """Who sent a request: the address a trusted proxy forwards (RFC 7239; walking from the last
    element, which the nearest proxy appended, past any other trusted proxy), else the peer; and the
    DN of the client certificate that proxy verified, which only its own element, the last, can carry
    (any earlier one came to it from the client). A forwarding header from anyone else says nothing."""
    ip = _ip(peer)
    if ip is None or not any(ip in net for net in trusted) or not forwarded:
        return Client(peer, None)
    elements = _elements(forwarded)
    dn = elements[-1].get("remote_user") if _WELL_FORMED.fullmatch(forwarded) else None
    nodes = _forwarded_for(elements)
    for node in reversed(nodes):
        if node is None:
            return Client("unknown", peer, dn)  # an element without a usable address: the chain ends there
        if not any(node in net for net in trusted):
            return Client(str(node), peer, dn)
    return Client(str(nodes[0]), peer, dn) if nodes else Client(peer, None)  # proxies all the way


# ---------------------------------------------------------------- Cheroot, held to the above


class _WithoutExpect(server.HeaderReader):
    """The connection manager answers ``Expect: 100-continue`` while it waits for the body; Cheroot must not again."""

    def _allow_header(self, key_name):
        return key_name.strip().lower() != b"expect"


class EdgeRequest(server.HTTPRequest):
    header_reader = _WithoutExpect()

    def respond(self):
        # the manager has checked Content-Length; a body it did not read ahead ties a worker to the client
        large = int(self.inheaders.get(b"Content-Length", 0)) > self.server.read_ahead
        if large and not self.server.large_bodies.acquire(blocking=False):
            self.simple_response("503 Service Unavailable", "Too many large requests are arriving; try again later.")
            return
        try:
            super().respond()
        finally:
            if large:
                self.server.large_bodies.release()

    def read_request_headers(self):
        ok = super().read_request_headers()
        options = self.inheaders.get(b"Connection", b"").lower().replace(b" ", b"").split(b",")
        if b"close" in options:  # a list of options in any case (RFC 9110 7.6.1); Cheroot wants exactly "close"
            self.close_connection = True
        return ok

    def send_headers(self):
        if getattr(self.rfile, "remaining", 0):  # the application left part of the body unread:
            self.close_connection = True  # close rather than wait for it (Cheroot would read it to the end)
        super().send_headers()

    def simple_response(self, status, msg=""):
        """Cheroot's own answers (a malformed request line, a timeout, its 500s) as EC2 errors."""
        number = int(str(status)[:3])
        message = msg or HTTPStatus(number).phrase
        if number == 505:  # a request line of another HTTP is not one this server can read: the client's error
            number, message = 400, "This server speaks HTTP/1.0 and HTTP/1.1."
        code = _CODES.get(number, "InvalidRequest" if number < 500 else "InternalError")
        data, request_id = error_response(number, code, message, self.conn.head_only)
        self.close_connection = True
        forwarded = (self.inheaders or {}).get(b"Forwarded")
        client = client_of(self.conn.remote_addr, forwarded and forwarded.decode("latin-1"), self.server.trusted)
        log.info("client=%s status=%d %s", client.address, number, message, extra={"request_id": request_id})
        if self.server.metrics:  # not an action's: the application never saw it
            self.server.metrics.request(UNKNOWN, number)
        try:
            self.conn.wfile.write(data)
        except OSError as e:
            if e.args[0] not in errors.socket_errors_to_ignore:
                raise


_CODES = {
    400: "InvalidRequest",
    408: "RequestTimeout",
    411: "MissingContentLength",
    413: "RequestEntityTooLarge",
    414: "RequestURITooLong",
    431: "RequestHeaderSectionTooLarge",
    500: "InternalError",
    501: "NotImplemented",
    503: "Unavailable",
}


class EdgeConnection(server.HTTPConnection):
    RequestHandlerClass = EdgeRequest

    def __init__(self, server, sock, makefile):
        self.rbufsize = MAX_HEAD + server.read_ahead  # what the manager waits for fits: a full buffer is ready
        super().__init__(server, sock, makefile)
        self.head_only = False  # the request asks for HEAD: its answers carry no document
        self.served = 0  # requests handed to a worker: a connection without one is never idle


class BodyReader(server.KnownLengthRFile):
    """``wsgi.input`` with a deadline. The body must keep arriving: at least MIN_RATE bytes per second
    over each window of *window* seconds, and no wait for data beyond the window that needs it.
    Else the request ends with 408 (an EC2Error, which the application answers and logs)."""

    def __init__(self, conn, length: int, window: float):
        super().__init__(conn.rfile, length)
        self.sock, self.window = conn.socket, window
        self.window_end = time.monotonic() + window
        self.window_bytes = 0

    def read(self, size=None):
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        parts = []
        while want > 0 and (chunk := self._receive(want)):
            parts.append(chunk)
            want -= len(chunk)
        return b"".join(parts)

    def readline(self, size=None):  # econe reads bodies with read(); this is for completeness, not speed
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        line = b""
        while len(line) < limit and not line.endswith(b"\n") and (byte := self.read(1)):
            line += byte
        return line

    def _receive(self, n: int) -> bytes:
        """Up to *n* bytes: buffered ones, or one receive with the socket's timeout cut to the time left."""
        need = MIN_RATE * self.window
        until = self.window_end if self.window_bytes < need else self.window_end + self.window
        self.sock.settimeout(max(0.001, until - time.monotonic()))
        try:
            data = self.rfile.read1(n)
        except TimeoutError:
            raise _too_slow(self.window) from None
        except ConnectionError:
            raise EC2Error(
                "IncompleteRequest", "The client closed the connection before the request was complete."
            ) from None
        finally:
            self.sock.settimeout(self.window)
        self.remaining -= len(data)
        self.window_bytes += len(data)
        now = time.monotonic()
        if now >= self.window_end:  # a window has passed: was the body arriving fast enough?
            if self.window_bytes < need:
                raise _too_slow(self.window)
            self.window_end, self.window_bytes = now + self.window, 0
        return data


def _too_slow(window: float) -> EC2Error:
    return EC2Error(
        "RequestTimeout", f"The request body did not arrive at {MIN_RATE} bytes per second over {window:g} s.", 408
    )


class EdgeGateway(wsgi.Gateway_10):
    def start_response(self, status, headers, exc_info=None):
        # an answer that says Connection: close (an upload refused when its file begins) closes it
        if any(k.lower() == "connection" and v.lower() == "close" for k, v in headers):
            self.req.close_connection = True
        return super().start_response(status, headers, exc_info)

    def get_environ(self):
        env = super().get_environ()
        req = self.req
        req.rfile = env["wsgi.input"] = BodyReader(req.conn, req.rfile.remaining, req.server.timeout)
        return env


class EdgeConnections(connections.ConnectionManager):
    """Cheroot's connection manager, holding each connection in the selector until its request is
    ready (module docstring). Only the selector thread reads from a held connection, and only when
    the selector says it is readable, so a read never blocks; writes are non-blocking too."""

    def _run(self, expiration_interval):
        """Cheroot's selector loop (``ConnectionManager._run``), then, once a stop is asked for, `_drain`."""
        last_expiration_check = time.time()
        while not self._stop_requested:
            self._select(expiration_interval)
            now = time.time()
            if now - last_expiration_check > expiration_interval:
                self._expire(threshold=now - self.server.timeout)
                last_expiration_check = now
        self._drain()

    def _select(self, timeout: float):
        """One round of Cheroot's loop, except that a connection closed earlier in the same round — to
        make room for a new one — is skipped: Cheroot would unregister its descriptor, which the new
        connection may already reuse, and hand the closed connection on."""
        try:
            active_list = self._selector.select(timeout=timeout)
        except OSError:
            self._remove_invalid_sockets()
            return
        for sock_fd, conn in active_list:
            if conn is self.server:
                self._from_server_socket(self.server.socket)
            elif conn.socket.fileno() != -1:
                self._selector.unregister(sock_fd)
                self.received(conn)

    def _drain(self):
        """A stop that costs no request (a proxy retries a refused connect on another backend, not a
        reset): new connections are refused, and what connected before is served. The listener drops
        new handshakes first, so that its queue only shrinks; every connection queued is accepted and
        the listener closed (a client whose handshake was dropped retries it, and is refused). A
        connection kept alive with no request in it is closed; every other gets its request_timeout
        to bring its request, which a worker then answers (Cheroot's stop waits for the workers)."""
        listener = self.server.socket
        _refuse_handshakes(listener)
        while select.select([listener], [], [], 0)[0]:
            self._from_server_socket(listener)
        self._selector.unregister(listener.fileno())
        listener.close()
        self.server.socket = None  # Cheroot's stop would connect to it to wake an accept
        for fd, conn in list(self._selector.connections):
            if conn.served and not _buffered(conn):
                self._selector.unregister(fd)
                conn.close()
        while len(self._selector):
            self._select(0.05)
            self._expire(threshold=time.time() - self.server.timeout)

    def _from_server_socket(self, server_socket):
        self._make_room()
        try:
            conn = super()._from_server_socket(server_socket)
        except OSError as e:  # out of file descriptors all the same: Cheroot's loop would spin on accept
            if e.errno not in (errno.EMFILE, errno.ENFILE) or not self._drop_oldest():
                raise
            return None
        if conn is not None:
            self.put(conn)
        return None  # Cheroot's loop would hand it to a worker at once

    def _make_room(self):
        """Keep file descriptors for the workers (their clients, oned, uploads): past the process's
        limit less that reserve, the connection that has waited longest makes room for a new one.
        It is a trickling one: every other request is ready, and taken by a worker, in moments."""
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if limit != resource.RLIM_INFINITY and self._num_connections >= limit - self.server.fd_reserve:
            self._drop_oldest()

    def _drop_oldest(self) -> bool:
        held = [(fd, conn) for fd, conn in self._selector.connections if conn is not self.server]
        if not held:
            return False
        fd, conn = min(held, key=lambda held: held[1].last_used)
        self._drop(fd, conn, "The server needed the connection for another client.")
        return True

    def put(self, conn):
        """A new connection, or one whose worker answered and keeps it: wait for its next request."""
        conn.last_used = time.time()  # the request's deadline runs from here (see _expire)
        conn.continued = False
        conn.searched = 0  # bytes of its head searched for the empty line that ends it
        self._advance(conn)

    def received(self, conn):
        """The selector found *conn* readable: take what arrived into its read buffer."""
        before = len(_buffered(conn))
        try:
            after = len(conn.rfile.peek(conn.rbufsize))  # one receive of what fits the buffer
        except OSError:
            after = before
        if after == before:  # the client closed (or reset) the connection
            if before:  # mid-request: a client that only closed its side still reads the answer
                self.refuse(conn, Refused(400, "IncompleteRequest", "The request ended before it was complete."))
            else:
                conn.close()
            return
        self._advance(conn)

    def _advance(self, conn):
        buffered = _buffered(conn)
        end = head_size(buffered, conn.searched)
        try:
            if end is None and len(buffered) < MAX_HEAD:
                conn.searched = len(buffered)
                self._wait(conn)
                return
            if end is None or end > MAX_HEAD:
                raise Refused(431, "RequestHeaderSectionTooLarge", f"The request head is larger than {MAX_HEAD} bytes.")
            head = parse_head(buffered[:end], self.server.max_request_body_size)
            conn.head_only = buffered.lstrip(b"\r\n").startswith(b"HEAD ")  # Cheroot may not read the line
        except Refused as r:
            self.refuse(conn, r)
            return
        if len(buffered) >= end + min(head.length, self.server.read_ahead):
            self.server.dispatch(conn)
            return
        if head.expects_continue and not conn.continued:
            conn.continued = _send_now(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
        self._wait(conn)

    def _wait(self, conn):
        self._selector.register(conn.socket.fileno(), selectors.EVENT_READ, data=conn)

    def refuse(self, conn, refusal: Refused):
        buffered = _buffered(conn)
        head_only = buffered.lstrip(b"\r\n").startswith(b"HEAD ")
        data, request_id = error_response(refusal.status, refusal.code, refusal.message, head_only)
        head = buffered[: head_size(buffered) or MAX_HEAD]
        log.info(
            "client=%s status=%d %s",
            client_of(conn.remote_addr, forwarded_in(head), self.server.trusted).address,
            refusal.status,
            refusal.message,
            extra={"request_id": request_id},
        )
        if self.server.metrics:
            self.server.metrics.request(UNKNOWN, refusal.status)
        _send_now(conn, data)
        conn.close()

    def _expire(self, threshold):
        """Close what has waited since before *threshold* (request_timeout ago): silently when no
        byte of a request came (an idle keep-alive connection), with 408 when part of one did."""
        late = [
            (fd, conn)
            for fd, conn in self._selector.connections
            if conn is not self.server and conn.last_used < threshold
        ]
        for fd, conn in late:
            self._drop(fd, conn, f"The request was not complete within {self.server.timeout:g} s.")

    def _drop(self, fd, conn, why: str):
        """Close a held connection: with 408 when part of a request came, silently otherwise."""
        self._selector.unregister(fd)
        if _buffered(conn):
            self.refuse(conn, Refused(408, "RequestTimeout", why))
        else:
            conn.close()


# a classic BPF program of one instruction, ``ret #0``: every packet dropped (linux/filter.h)
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)
SO_ATTACH_FILTER = 26


def _refuse_handshakes(listener: socket.socket) -> None:
    """Have the kernel drop what reaches *listener* from now on: the SYN of a new connection (which its
    client sends again in a second, to a closed port then: refused), not the connections queued."""
    program = ctypes.create_string_buffer(_DROP_ALL)
    fprog = struct.pack("HL", 1, ctypes.addressof(program))  # struct sock_fprog {len; filter *}
    listener.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _buffered(conn) -> bytes:
    """What the connection's read buffer holds, without reading the socket."""
    return conn.rfile.peek(0) if conn.rfile.has_data() else b""


def _send_now(conn, data: bytes) -> bool:
    """Write *data* if the socket takes it at once (a few hundred bytes to a fresh socket do)."""
    sock = conn.socket
    try:
        sock.setblocking(False)
        return sock.send(data) == len(data)
    except OSError:
        return False
    finally:
        sock.settimeout(conn.server.timeout)


class EdgeServer(wsgi.Server):
    """Cheroot's WSGI server with the edge above: a bounded pool of *threads* workers, a listen
    backlog as deep as the system allows, and the limits and deadlines of this module."""

    ConnectionClass = EdgeConnection

    def __init__(
        self,
        bind_addr,
        app,
        threads: int,
        request_timeout: float,
        max_body: int,
        metrics: Metrics | None,
        trusted: tuple[Network, ...] = (),
    ):
        super().__init__(
            bind_addr,
            app,
            numthreads=threads,
            max=threads,
            server_name="econe",
            request_queue_size=socket.SOMAXCONN,
            timeout=request_timeout,
            shutdown_timeout=10,
        )
        self.gateway = EdgeGateway
        self.max_request_header_size = MAX_HEAD  # the manager refuses larger heads first; this is Cheroot's bound
        self.max_request_body_size = max_body
        self.read_ahead = MIN_RATE * request_timeout  # the body bytes the first window brings
        self.large_bodies = threading.BoundedSemaphore(max(1, threads // 2))  # the others answer everyone else
        self.trusted = trusted  # proxies whose Forwarded header names the client in the edge's log lines
        self.fd_reserve = 3 * threads + 32  # what the workers may hold open at once, and the process's own files
        self.metrics = metrics  # counts the answers the edge gives itself; None: not EC2's (the metrics port)

    def prepare(self):
        super().prepare()
        self._connections.close()  # Cheroot's own manager, before it served anything
        self._connections = EdgeConnections(self)

    def dispatch(self, conn):
        """Hand a connection whose request is ready to a worker."""
        conn.served += 1
        self.process_conn(conn)

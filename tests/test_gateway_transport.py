"""The gateway's connection to oned when it breaks mid-call (found in review): a call that changes oned
is never sent twice, and a read on a kept-alive connection oned closed meanwhile is sent again once.

Neither oned nor onelite can be made to drop a connection between reading a call and answering it, so
the peer here is a socket that does exactly that; what it answers otherwise is a real oned answer's form."""

from __future__ import annotations

import socket
import threading

import pytest

from econe.gateway import RawXMLRPC
from econe.metrics import Metrics

ANSWER = (
    b'<?xml version="1.0" encoding="UTF-8"?><methodResponse><params><param><value><array><data>'
    b"<value><boolean>1</boolean></value><value><string>ok</string></value><value><i4>0</i4></value>"
    b"</data></array></value></param></params></methodResponse>"
)


class Peer:
    """Serves connections one after another; *plan* says, per request received, "answer" or "drop"."""

    def __init__(self, plan: list[str]):
        self.plan, self.received = list(plan), []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/RPC2"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.plan:
            conn, _ = self.sock.accept()
            with conn:
                while self.plan:
                    request = _read_request(conn)
                    if request is None:
                        break
                    self.received.append(request)
                    if self.plan.pop(0) == "drop":
                        break  # read, never answered: as an oned that fails over or restarts
                    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
                    conn.sendall(head + ANSWER)  # kept alive, as an Abyss server does


def _read_request(conn) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")) if k.lower() == b"content-length"
    )
    while len(body) < length:
        body += conn.recv(65536)
    return body


@pytest.mark.parametrize("method", ["one.vm.allocate", "one.template.instantiate", "one.vm.action"])
def test_a_call_that_changes_oned_is_sent_once_even_when_the_answer_is_lost(method):
    peer = Peer(["drop", "answer"])
    with pytest.raises(OSError):
        RawXMLRPC(peer.url, Metrics()).call(method, "user:token")
    assert len(peer.received) == 1


@pytest.mark.parametrize("method", ["one.vm.allocate", "one.vmpool.info"])
def test_on_a_kept_alive_connection_only_a_read_is_sent_again(method):
    peer = Peer(["answer", "drop", "answer"])
    rpc = RawXMLRPC(peer.url, Metrics())
    assert rpc.call("one.user.info", "user:token")[0] is True
    if method.endswith("info"):
        assert rpc.call(method, "user:token")[0] is True  # the stale connection is reopened once
        assert len(peer.received) == 3
    else:
        with pytest.raises(OSError):
            rpc.call(method, "user:token")
        assert len(peer.received) == 2

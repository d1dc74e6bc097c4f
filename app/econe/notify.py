"""systemd's readiness protocol (sd_notify(3)): a datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``.

A unit of ``Type=notify`` counts as started once ``READY=1`` arrives, so systemd (and what is ordered
after the unit) waits until econe listens; ``STOPPING=1`` says a stop has begun. Without the variable
(not under systemd) nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("econe")


def notify(state: str, environ=os.environ) -> bool:
    """Send *state* (e.g. ``READY=1``) to systemd; whether it was sent. A failure is logged, never raised:
    the service runs as well without it."""
    address = environ.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):  # the abstract namespace: a leading NUL byte
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        return False  # unset, or a kind of socket (vsock) econe does not speak
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as e:
        log.warning("could not tell systemd %s: %s", state, e)
        return False
    return True

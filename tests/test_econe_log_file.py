"""econe's log file is reopened when it is moved (logrotate); a reopen that fails (its directory gone,
a rotation that left it unwritable) costs log lines, never a request's answer or a stop."""

from __future__ import annotations

import shutil
import signal
import socket

from .conftest import start_econe, start_onelite


def test_a_log_file_that_cannot_be_reopened_costs_neither_answers_nor_the_stop(tmp_path):
    one = start_onelite(tmp_path / "one")
    try:
        logs = tmp_path / "logs"
        econe = start_econe(tmp_path / "econe", one.url, one.data / "ec2_auth", log_file=str(logs / "econe.log"))
        try:
            shutil.rmtree(logs)
            with socket.create_connection(("127.0.0.1", econe.port), timeout=10) as sock:
                sock.sendall(b"GET /?Action=DescribeRegions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = sock.makefile("rb").read()
            assert answer.startswith(b"HTTP/1.1 401 "), answer[:300]  # the unsigned request's answer, not a 500
            econe.proc.send_signal(signal.SIGTERM)
            assert econe.proc.wait(15) == 0
        finally:
            econe.stop()
    finally:
        one.stop()

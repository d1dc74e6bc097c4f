"""`make run`'s program: the stack comes up, the printed AWS CLI commands work as printed, Ctrl-C stops both."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

from .conftest import free_port


def test_make_run_prints_commands_that_work(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "demo.run", "--dir", str(tmp_path / "run"), "--port", str(port),
                             "--one-port", str(free_port())], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        lines, deadline = [], time.time() + 60
        while "Ctrl-C stops both." not in "".join(lines) and time.time() < deadline:
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        env = dict(os.environ)
        for line in text.splitlines():
            if line.strip().startswith("export "):
                for pair in shlex.split(line.strip()[7:]):
                    k, _, v = pair.partition("=")
                    env[k] = v
        commands = [line.strip() for line in text.splitlines() if " ec2 " in line]
        assert len(commands) == 3
        for command in commands:
            done = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (command, done.stderr)
        assert env["EC2_URL"] == f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path / "run")], capture_output=True, text=True).stdout
    assert leftovers == ""

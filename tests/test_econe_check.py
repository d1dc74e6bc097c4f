"""``econe-server check``: the configuration and the files it names are read as a start reads them,
and nothing starts; the econe_server role validates each econe.conf with it before installing it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from .conftest import free_port, write_conf


def _check(conf, auth_file) -> subprocess.CompletedProcess:
    env = {**os.environ, "ONE_CIPHER_AUTH": str(auth_file)}
    return subprocess.run(
        [sys.executable, "-m", "econe.server", "-c", str(conf), "check"], env=env, capture_output=True, text=True
    )


def test_check_says_what_is_wrong_and_starts_nothing(tmp_path):
    auth_file = tmp_path / "ec2_auth"
    auth_file.write_text("serveradmin:pw\n")
    port = free_port()
    good = write_conf(tmp_path / "econe.conf", {"port": port, "auth": ["ec2", "x509"]})
    done = _check(good, auth_file)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"econe-server: {good} is valid\n", "")
    with pytest.raises(ConnectionRefusedError):  # nothing listens on the port it names
        socket.create_connection(("127.0.0.1", port), timeout=2)
    bad = write_conf(tmp_path / "bad.conf", {"port": "abc"})
    done = _check(bad, auth_file)
    assert done.returncode == 2
    assert done.stderr == "econe-server: bad.conf: :port: must be an integer 1-65535, got 'abc'\n"
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    named = write_conf(tmp_path / "named.conf", {"proxy_secret_file": str(secret)})
    done = _check(named, auth_file)
    assert done.returncode == 2 and f"{secret} is readable by others than its owner" in done.stderr
    done = _check(good, tmp_path / "missing")
    assert done.returncode == 2 and "cannot read the server account (ONE_CIPHER_AUTH)" in done.stderr

"""Shared fixtures: real onelite processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "oned-6.10.5"  # see its README.md for provenance


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(proc: subprocess.Popen, timeout: float) -> int:
    """SIGTERM, as systemd would; SIGKILL only if it does not stop in time. The exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class Onelite:
    url: str
    data: Path
    proc: subprocess.Popen
    port: int

    @property
    def admin_session(self) -> str:
        return (self.data / "one_auth").read_text().strip()

    @property
    def server_auth(self) -> tuple[str, str]:
        user, _, pw = (self.data / "ec2_auth").read_text().strip().partition(":")
        return user, pw

    def stop(self, timeout: float = 10) -> int:
        return terminate(self.proc, timeout)


def start_onelite(
    data: Path,
    port: int | None = None,
    interval: float = 0.2,
    log: Path | None = None,
    auth_driver_delay: float | None = 0.0,
) -> Onelite:
    """onelite serving *data* on a free loopback port (or *port*).

    *auth_driver_delay*: the seconds its simulated external auth driver takes for a server_cipher
    session that misses the session cache. 0 by default: tests that do not measure authentication
    should not wait for it; None leaves onelite's own default (oned's measured 0.15 s)."""
    port = port or free_port()
    cmd = [
        sys.executable,
        "-m",
        "onelite.cli",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(data),
        "--sched-interval",
        str(interval),
        "-v",
    ]
    if auth_driver_delay is not None:
        cmd += ["--auth-driver-delay", str(auth_driver_delay)]
    with open(log or (data.parent / f"onelite-{port}.log"), "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/RPC2"
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"onelite exited with {proc.returncode}")
        try:
            xmlrpc.client.ServerProxy(url).one.system.version("x:y")
        except (ConnectionError, OSError):
            time.sleep(0.05)
            continue
        if proc.poll() is None and (data / "one_auth").exists():  # ours, not another process on that port
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise RuntimeError("onelite did not start")
    return Onelite(url, data, proc, port)


@pytest.fixture
def onelite(tmp_path):
    server = start_onelite(tmp_path / "one")
    yield server
    server.stop()


@pytest.fixture
def admin(onelite):
    import pyone

    return pyone.OneServer(onelite.url, session=onelite.admin_session)


# ---------------------------------------------------------------- econe-server


@dataclass
class Econe:
    url: str
    port: int
    proc: subprocess.Popen
    conf: Path
    log: Path

    def stop(self, timeout: float = 15) -> int:
        return terminate(self.proc, timeout)


def write_conf(path: Path, settings: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({f":{k}": v for k, v in settings.items()}))
    return path


def ec2_client(url: str, key: str, secret: str, **config):
    """boto3's EC2 client for the access key *key* on the econe at *url*; *config*: botocore's Config."""
    import boto3
    import botocore.config

    return boto3.client(
        "ec2",
        endpoint_url=url,
        region_name="opennebula",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=botocore.config.Config(**config) if config else None,
    )


def start_econe(workdir: Path, one_url: str, auth_file: Path, **settings) -> Econe:
    port = free_port()
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = write_conf(
        workdir / f"econe-{port}.conf",
        {
            "one_xmlrpc": one_url,
            "host": "127.0.0.1",
            "port": port,
            "tmpdir": str(workdir / "tmp"),
            "log_file": str(workdir / f"econe-{port}.log"),
            "debug_level": 3,
            **settings,
        },
    )
    env = {**os.environ, "ONE_CIPHER_AUTH": str(auth_file)}
    with open(workdir / f"econe-{port}.out", "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "econe.server", "-c", str(conf), "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"econe-server exited with {proc.returncode}: {(workdir / f'econe-{port}.out').read_text()}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Econe(f"http://127.0.0.1:{port}", port, proc, conf, workdir / f"econe-{port}.log")
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("econe-server did not start")


# ---------------------------------------------------------------- make conformance


def pytest_addoption(parser):
    parser.addoption(
        "--conformance",
        action="store_true",
        help="run the end-to-end tests against the existing oned named by ONE_XMLRPC, ONE_AUTH and ONE_CIPHER_AUTH",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "onelite_only(reason): cannot run on an existing oned, for the reason given")
    if config.getoption("conformance"):
        from .cloud import existing_cloud

        try:  # once, before any test: a missing variable or an unreachable oned is one message
            existing_cloud()
        except RuntimeError as e:
            raise pytest.UsageError(f"make conformance: {e}") from None
        # systemd or CI stopping the run: end it as Ctrl-C does, so that the sweep still runs
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(config, items):
    if not config.getoption("conformance"):
        return
    for item in items:
        if mark := item.get_closest_marker("onelite_only"):
            item.add_marker(pytest.mark.skip(reason=f"onelite only: {mark.args[0]}"))


@pytest.fixture(scope="module")
def module_cloud(request, tmp_path_factory):
    """The OpenNebula of a test module: its own onelite, or the existing oned of make conformance."""
    from .cloud import open_cloud

    with open_cloud(tmp_path_factory.mktemp("cloud"), request.config.getoption("conformance")) as c:
        yield c


@pytest.fixture
def cloud(request, tmp_path):
    """A cloud of the test's own: a fresh onelite, or the existing oned under a new prefix."""
    from .cloud import open_cloud

    with open_cloud(tmp_path, request.config.getoption("conformance")) as c:
        yield c


CENSUSES: list[tuple[str, dict]] = []  # (prefix, {"before": counts, "after": counts}) of each existing-oned run


def pytest_terminal_summary(terminalreporter):
    if CENSUSES:
        terminalreporter.write_line("oned's objects before → after each run (VMs: those not DONE):")
    for prefix, census in CENSUSES:
        before, after = census.get("before", {}), census.get("after", {})
        counts = ", ".join(f"{kind} {n} → {after.get(kind, '?')}" for kind, n in before.items())
        terminalreporter.write_line(f"  {prefix}*: {counts}")

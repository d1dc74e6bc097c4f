"""``make run``: econe on the embedded cloud, in the foreground, with a demo set up on first start.

Starts onelite (state under .run/), provisions a demo the first time (an ec2 group with its rules,
a user, a host, a shared vnet, an m1.small instance type, a small image registered as an AMI),
starts econe-server on 127.0.0.1:4567, prints how to use it, and stops both on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

import demo


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _any_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited ({proc.returncode}); see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not start; see {log}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".run", help="where state, logs and configuration go (default .run)")
    parser.add_argument("--port", type=int, default=4567, help="econe's port (default 4567)")
    parser.add_argument("--one-port", type=int, default=2633, help="onelite's port (default 2633, or any free one)")
    args = parser.parse_args(argv)

    work = Path(args.dir).resolve()
    tmpdir = work / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    if not _free(args.port):
        raise SystemExit(f"port {args.port} is taken: stop what uses it, or run with --port")
    one_port = args.one_port if _free(args.one_port) else _any_port()
    bindir = Path(sys.executable).parent
    one_log, econe_log = work / "onelite.log", work / "econe-server.log"
    procs: list[subprocess.Popen] = []

    def stop_all(code: int = 0):
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        raise SystemExit(code)

    signal.signal(signal.SIGINT, lambda *_: stop_all())
    signal.signal(signal.SIGTERM, lambda *_: stop_all())

    with open(one_log, "ab") as log:
        one = subprocess.Popen([sys.executable, "-m", "onelite.cli", "serve", "--listen", f"127.0.0.1:{one_port}",
                                "--data", str(work / "one"), "--safe-dirs", f"{tmpdir} {work}", "-v"],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    procs.append(one)
    _wait_port(one_port, one, "onelite", one_log)
    one_url = f"http://127.0.0.1:{one_port}/RPC2"

    state = work / "demo.json"
    if state.exists():
        d = demo.Demo(**json.loads(state.read_text()))
    else:
        admin = (work / "one" / "one_auth").read_text().strip()
        d = demo.provision(one_url, admin, str(tmpdir))
        state.write_text(json.dumps(d.__dict__))
        os.chmod(state, 0o600)

    conf = work / "econe.conf"
    conf.write_text(yaml.safe_dump({":one_xmlrpc": one_url, ":host": "127.0.0.1", ":port": args.port,
                                    ":tmpdir": str(tmpdir), ":log_file": str(econe_log), ":debug_level": 2,
                                    ":pid_file": str(work / "econe-server.pid")}))  # fmt: skip
    env = {**os.environ, "ONE_CIPHER_AUTH": str(work / "one" / "ec2_auth")}
    with open(work / "econe-server.out", "ab") as out:
        econe = subprocess.Popen([sys.executable, "-m", "econe.server", "-c", str(conf), "run"], env=env,
                                 stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    procs.append(econe)
    _wait_port(args.port, econe, "econe-server", econe_log)

    url = f"http://127.0.0.1:{args.port}"
    aws = bindir / "aws"
    print(f"""
econe is running on the embedded cloud (onelite at {one_url}, state in {work}).

  export EC2_URL={url}
  export EC2_ACCESS_KEY={d.user} EC2_SECRET_KEY={d.secret}
  export AWS_ACCESS_KEY_ID={d.user} AWS_SECRET_ACCESS_KEY={d.secret} AWS_DEFAULT_REGION=opennebula

Then, for example:

  {aws} --endpoint-url {url} ec2 describe-images
  {aws} --endpoint-url {url} ec2 run-instances --image-id ami-{d.image:08d} --instance-type m1.small --count 1
  {aws} --endpoint-url {url} ec2 describe-instances

Upload an image with {bindir / "econe-upload"} FILE. Logs: {econe_log}, {one_log}.
Ctrl-C stops both.
""", flush=True)  # fmt: skip
    while all(p.poll() is None for p in procs):
        time.sleep(0.5)
    print("a process stopped unexpectedly; see the logs above", file=sys.stderr)
    stop_all(1)
    return 1


if __name__ == "__main__":
    sys.exit(main())

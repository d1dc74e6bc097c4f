"""Two econe instances behind the proxy (#15): both run sandboxed on their ports, the proxy spreads
requests over them and passes them to the other while one is stopped, one ClientToken raced through
both makes one instance, uploads and the log work inside the sandbox, the metrics ports answer on the
container's loopback only, and the deployment printed no secret."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.config
from botocore.exceptions import ClientError

PROXY = "https://127.0.0.1:18443"  # molecule.yml publishes the container's 8443 here
INSTANCES = {1: (4567, 9567), 2: (4568, 9568)}  # econe_server_port and econe_server_metrics_port, then +1
ALICE_SECRET = hashlib.sha256(b"alicepw").hexdigest()

# run in the container by oneadmin: an image of the ec2 group's that RunInstances can use
ADMIN_SCRIPT = r"""
import xmlrpc.client
s = open("/var/lib/onelite/one_auth").read().strip()
p = xmlrpc.client.ServerProxy("http://127.0.0.1:2633/RPC2").one
images = p.imagepool.info(s, -2, -1, -1)[1]
if "<NAME>ami-instances</NAME>" in images:
    print(images.split("<NAME>ami-instances</NAME>")[0].rsplit("<ID>", 1)[1].split("<")[0])
    raise SystemExit
open("/var/tmp/ami-instances.img", "wb").write(bytes(1048576))
groups = p.grouppool.info(s)[1]
gid = int(groups.split("<NAME>ec2</NAME>")[0].rsplit("<ID>", 1)[1].split("<")[0])
body = 'NAME="ami-instances"\nTYPE="OS"\nPATH="/var/tmp/ami-instances.img"\nEC2_AMI="YES"\n'
image = p.image.allocate(s, body, 1, False)[1]
p.image.chown(s, image, -1, gid)
p.image.chmod(s, image, 1, 1, 0, 1, 0, 0, 0, 0, 0)
print(image)
"""

# run in the container: GET http://127.0.0.1:<argv[1]><argv[2]>, printing the status and the body
LOCAL_GET = r"""
import sys, urllib.error, urllib.request
try:
    answer = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}{sys.argv[2]}", timeout=10)
except urllib.error.HTTPError as e:
    answer = e
print(answer.status)
print(answer.read().decode())
"""


def _ec2(retries=None):
    return boto3.client(
        "ec2", endpoint_url=PROXY, region_name="opennebula", verify=False,
        aws_access_key_id="alice", aws_secret_access_key=ALICE_SECRET,
        # by default a failed request is not retried away
        config=botocore.config.Config(retries=retries or {"max_attempts": 1}),
    )  # fmt: skip


def _local_get(host, port: int, path: str) -> tuple[int, str]:
    host.run_expect([0], f"cat > /tmp/local-get.py <<'PY'\n{LOCAL_GET}\nPY")
    out = host.run_expect([0], f"/usr/bin/python3 /tmp/local-get.py {port} '{path}'").stdout
    status, _, body = out.partition("\n")
    return int(status), body[:-1]  # print's newline


def _served(host, action: str) -> dict[int, float]:
    """How many requests of *action* each instance answered, from its metrics (all statuses)."""
    counts = {}
    for n, (_, metrics) in INSTANCES.items():
        status, text = _local_get(host, metrics, "/metrics")
        assert status == 200, text[:500]
        found = re.findall(rf'^econe_requests_total\{{[^}}]*action="{action}"[^}}]*\}} (\S+)$', text, re.M)
        counts[n] = sum(float(v) for v in found)
    return counts


def _more(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    return {n: after[n] - before[n] for n in after}


def test_the_earlier_deployments_units_are_gone(host):
    """prepare.yml left a single econe-server.service on 4567 and a third instance on 4569, both enabled
    and running: the converge stopped, disabled and removed them."""
    assert not host.file("/etc/systemd/system/econe-server.service").exists
    assert not host.file("/etc/systemd/system/econe-server@3.service.d").exists
    for unit in ("econe-server", "econe-server@3"):
        assert not host.service(unit).is_running and not host.service(unit).is_enabled, unit
    assert not host.socket("tcp://127.0.0.1:4569").is_listening


def test_both_instances_run_sandboxed_on_their_ports(host):
    for n, (port, metrics) in INSTANCES.items():
        unit = host.service(f"econe-server@{n}")
        assert unit.is_running and unit.is_enabled, n
        assert host.socket(f"tcp://127.0.0.1:{port}").is_listening, n
        assert host.socket(f"tcp://127.0.0.1:{metrics}").is_listening, n
        pid = host.check_output(f"systemctl show -p MainPID --value econe-server@{n}")
        status = host.file(f"/proc/{pid}/status").content_string
        assert re.search(r"^CapBnd:\s+0+$", status, re.M), status  # the empty capability set
        # its own mount namespace: the system read-only, /tmp its own, the log directory writable
        inside = f"nsenter -t {pid} -m --"
        assert "Read-only file system" in host.run(f"{inside} touch /etc/econe-probe").stderr
        assert host.run(f"{inside} test -w /var/log/one").rc == 0
        host.run_expect([0], "touch /tmp/econe-host-probe")
        assert host.run(f"{inside} test -e /tmp/econe-host-probe").rc != 0


def test_requests_through_the_proxy_reach_both_instances(host):
    before = _served(host, "DescribeInstances")

    def describe(_):
        return _ec2().describe_instances()["ResponseMetadata"]["HTTPStatusCode"]

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(describe, range(64))) == {200}
    spread = _more(before, _served(host, "DescribeInstances"))
    assert sum(spread.values()) == 64 and all(spread.values()), spread


def test_12_runinstances_racing_one_client_token_make_one_instance(host):
    host.run_expect([0], f"cat > /tmp/mkami-instances.py <<'PY'\n{ADMIN_SCRIPT}\nPY")
    image = int(host.check_output("/opt/onelite/bin/python /tmp/mkami-instances.py"))
    token = f"race-{secrets.token_hex(8)}"
    before = _served(host, "RunInstances")
    start = threading.Barrier(12)

    def run(_):
        # the SDK's own retries, as a client has them: a request that finds every wait slot of its
        # server taken is told RequestLimitExceeded, and tries again shortly
        ec2 = _ec2({"mode": "standard", "max_attempts": 5})
        start.wait()
        answer = ec2.run_instances(
            ImageId=f"ami-{image:08d}", InstanceType="m1.small", MinCount=1, MaxCount=1, ClientToken=token
        )
        return answer["Instances"][0]["InstanceId"]

    with ThreadPoolExecutor(12) as pool:
        made = set(pool.map(run, range(12)))
    spread = _more(before, _served(host, "RunInstances"))
    ec2 = _ec2()
    listed = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=[{"Name": "client-token", "Values": [token]}])["Reservations"]
        for i in r["Instances"]
    ]
    ec2.terminate_instances(InstanceIds=listed or list(made))
    assert len(made) == 1 and listed == list(made), (made, listed)
    assert all(spread.values()), spread  # the race went through both instances


def test_a_stopped_instance_costs_no_request(host):
    """While econe-server@1 stops (in flight requests finish, new ones go to @2) and is down, a burst
    of requests through the proxy is answered, every one."""
    stop, answered, failures, threads = _burst(8)
    try:
        time.sleep(2)
        host.run_expect([0], "systemctl stop econe-server@1")
        time.sleep(3)
    finally:
        stop.set()
        for t in threads:
            t.join()
        host.run_expect([0], "systemctl start econe-server@1")
    assert not failures and len(answered) > 50, (len(answered), failures[:5])


def _burst(clients: int) -> tuple[threading.Event, list, list, list[threading.Thread]]:
    """*clients* threads sending DescribeInstances through the proxy until the event is set."""
    failures, answered, stop = [], [], threading.Event()

    def burst():
        ec2 = _ec2()
        while not stop.is_set():
            try:
                ec2.describe_instances()
                answered.append(1)
            except Exception as e:  # noqa: BLE001 - every failure is what the test counts
                failures.append(repr(e))

    threads = [threading.Thread(target=burst) for _ in range(clients)]
    for t in threads:
        t.start()
    return stop, answered, failures, threads


# the role's restart handler, as a changed econe.conf or package runs it: each instance in turn
RESTART_PLAY = """
- hosts: frontend
  become: true
  gather_facts: false
  tasks:
    - name: The econe_server role's restart, one instance at a time
      ansible.builtin.include_role:
        name: econe_server
        tasks_from: restart
      loop: [1, 2]
      loop_control:
        loop_var: econe_server_instance
"""


def test_the_roles_restart_of_every_instance_costs_no_request(host):
    """roles/econe_server/tasks/restart.yml (restart, /health, a pause while lighttpd takes the instance
    back, then the next) with 8 clients sending requests through the proxy: every one is answered."""
    pids = {n: host.check_output(f"systemctl show -p MainPID --value econe-server@{n}") for n in INSTANCES}
    stop, answered, failures, threads = _burst(8)
    try:
        time.sleep(1)
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as book:
            book.write(RESTART_PLAY)
            book.flush()
            playbook = Path(sys.executable).parent / "ansible-playbook"
            inventory = os.environ["MOLECULE_INVENTORY_FILE"]
            done = subprocess.run([str(playbook), "-i", inventory, book.name], capture_output=True, text=True)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for n, pid in pids.items():  # each instance was restarted
        assert host.check_output(f"systemctl show -p MainPID --value econe-server@{n}") != pid, n
    assert not failures and len(answered) > 50, (len(answered), failures[:5])


def test_metrics_answer_on_loopback_and_not_through_the_proxy(host):
    for n, (_, metrics) in INSTANCES.items():
        assert _local_get(host, metrics, "/health") == (200, "ok\n"), n
        status, text = _local_get(host, metrics, "/metrics")
        assert status == 200 and "# TYPE econe_requests_total counter" in text, n
        listening = host.check_output(f"ss -ltnH 'sport = :{metrics}'").split()
        assert listening and all(f == f"127.0.0.1:{metrics}" for f in listening if f.endswith(f":{metrics}")), n
    # through the proxy /metrics is a request to econe's EC2 port, which knows no such thing
    try:
        context = ssl._create_unverified_context()  # the snakeoil certificate
        body = urllib.request.urlopen(f"{PROXY}/metrics", context=context, timeout=10).read().decode()
    except urllib.error.HTTPError as e:
        body = e.read().decode()
    assert "econe_requests_total" not in body and "<Response>" in body, body[:300]


def test_an_upload_through_the_proxy_reaches_oned_from_the_sandbox(host, tmp_path):
    """econe-upload, as a user runs it, over TLS 1.3 through the proxy (verifying the frontend's
    certificate): econe stages the upload in tmpdir (/var/tmp), which its unit binds through its private
    /tmp and /var/tmp, and oned (here onelite, outside the sandbox) reads it from there."""
    staged_before = set(host.check_output("ls -A /var/tmp").split())
    cert = tmp_path / "econe.crt"
    cert.write_text(host.file("/etc/lighttpd/ssl/econe.crt").content_string)
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("econe-upload")), "-U", PROXY + "/", str(disk)],
        env={**os.environ, "SSL_CERT_FILE": str(cert), "EC2_ACCESS_KEY": "alice", "EC2_SECRET_KEY": ALICE_SECRET},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ami = done.stdout.split()[-1]
    image = _ec2().describe_images(ImageIds=[ami])["Images"][0]
    assert image["State"] == "available", image
    assert set(host.check_output("ls -A /var/tmp").split()) <= staged_before  # nothing left behind
    _ec2().deregister_image(ImageId=ami)


def test_the_log_is_written_from_the_sandbox_after_a_rotation(host):
    log = "/var/log/one/econe-server.log"
    host.run_expect([0], "logrotate -f /etc/logrotate.d/econe-server")
    assert host.file(f"{log}.1").exists
    try:  # econe logs every error it answers, with its request id
        _ec2().describe_instances(InstanceIds=["i-rotate"])
        raise AssertionError("a malformed instance id was accepted")
    except ClientError as e:
        marker = f"[{e.response['ResponseMetadata']['RequestId']}]"
    deadline = time.monotonic() + 10
    while marker not in host.file(log).content_string:
        assert time.monotonic() < deadline, host.file(log).content_string[-2000:]
        time.sleep(0.5)
    assert (host.file(log).user, host.file(log).group, host.file(log).mode) == ("oneadmin", "oneadmin", 0o640)


def test_the_deployment_printed_no_secret(host):
    """converge, idempotence and check --diff as molecule/run.sh ran them (ECONE_DEPLOY_LOG)."""
    path = os.environ.get("ECONE_DEPLOY_LOG")
    assert path, "run the scenario with molecule/run.sh (make molecule): it saves what the deployment printed"
    text = Path(path).read_text()
    assert "PLAY RECAP" in text and "econe_server : The configuration, econe.conf" in text
    server_password = host.check_output("cat /var/lib/one/.one/ec2_auth").split(":", 1)[1]
    proxy_secret = host.check_output("cat /var/lib/one/.one/econe_proxy_secret")
    named = {"alice's password": "alicepw", "alice's secret key": ALICE_SECRET,
             "the server account's password": server_password, "the proxy secret": proxy_secret}  # fmt: skip
    assert all(len(value) >= 7 for value in named.values()), named.keys()
    leaked = [name for name, value in named.items() if value in text]
    assert not leaked, leaked

"""econe against its floor (the oned calls underneath it) and its peer (moto server), measured in the same run.

Prints one table of figures and ratios and appends it to bench/RESULTS.md. Needs nothing running:
it starts onelite, econe-server (one for the warm figures, fresh ones for each cold DescribeInstances)
and, when installed, moto_server on free loopback ports; without moto, moto's cells say "not measured".
Usage: python -m bench.econe_bench [--sizes 100,1000,5000] [--upload-mib 1024] [--no-record]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode, urlparse

import botocore.auth
import botocore.awsrequest
import botocore.credentials

import demo
from bench.onelite_bench import median_ms, real_oned_wanted, record, table
from econe.config import load as load_config
from econe.gateway import Gateway, RawXMLRPC
from econe.metrics import Metrics
from econe.upload import upload as econe_upload
from tests.conftest import free_port, start_econe, start_onelite

VM_TEMPLATE = 'NAME="bench"\nCPU="0.1"\nMEMORY="64"\nDISK=[IMAGE_ID="{img}"]\nNIC=[NETWORK_ID="{net}"]\n'
NOT_MEASURED = "not measured"  # moto's cell when moto_server is not installed
PAGE = 100  # MaxResults of the page figure
COLD_STARTS = 5  # fresh econe-server starts behind each cold figure (their median)


class Signed:
    """A SigV4-signed EC2 request, reusable within the 15 minutes its timestamp allows."""

    def __init__(self, url: str, key: str, secret: str, params: dict, region: str = "opennebula"):
        body = urlencode({"Version": "2016-11-15", **params})
        req = botocore.awsrequest.AWSRequest(
            "POST", url + "/", data=body, headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        )
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "ec2", region).add_auth(req)
        self.parts = urlparse(url)
        self.body = body.encode()
        self.headers = dict(req.headers.items())

    def send(self, conn: http.client.HTTPConnection | None = None) -> bytes:
        conn = conn or http.client.HTTPConnection(self.parts.hostname, self.parts.port, timeout=300)
        conn.request("POST", "/", body=self.body, headers=self.headers)
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200, data[:300]
        return data


def econe_calls(url: str, session: str, calls: list[tuple]):
    """A function making these oned calls (method, *args) the way one econe request makes them
    (gateway.UserSession): econe's XML-RPC transport on a connection of its own, *session* first."""

    def make():
        rpc = RawXMLRPC(url, Metrics())
        for method, *args in calls:
            ok, value, *_ = rpc.call(method, session, *args)
            assert ok, value

    return make


def cold_describe_ms(work: Path, one_url: str, auth_file: Path, user: str, secret: str) -> tuple[float, float]:
    """(the first request of a user after a fresh start, then its first DescribeInstances), in ms, each the
    median over COLD_STARTS starts of econe-server. The first request is a DescribeKeyPairs: it loads the
    EC2 model, reads the user's secret and signs in to oned for the user (a login token, asked for with
    the user's server_cipher session, which oned's external driver checks), costs every user's first
    request pays whatever it asks; the listing after it finds the EC2-attribute cache empty."""
    first, listing = [], []
    for _ in range(COLD_STARTS):
        fresh = start_econe(work, one_url, auth_file)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", fresh.port, timeout=300)
            t = time.perf_counter()
            Signed(fresh.url, user, secret, {"Action": "DescribeKeyPairs"}).send(conn)
            first.append((time.perf_counter() - t) * 1000)
            describe = Signed(fresh.url, user, secret, {"Action": "DescribeInstances"})
            t = time.perf_counter()
            describe.send(conn)
            listing.append((time.perf_counter() - t) * 1000)
        finally:
            fresh.stop()
    return statistics.median(first), statistics.median(listing)


def listing_rows(where: str, url: str, auth_file: Path, work: Path, d, size: int, econe, listing_state: int):
    """DescribeInstances of *size* VMs through *econe* on the oned (or onelite) at *url*, against the pool
    call econe makes under it, made as econe makes it: warm; econe's own time per VM; while the user
    also signs in to oned with its password between calls; served alternately by two econe-servers;
    and the first listing after a start against the warm one."""
    rows: list[tuple] = []
    server_user, server_password = Path(auth_file).read_text().strip().split(":", 1)
    gateway = Gateway(url, server_user, server_password, Metrics())
    session = gateway.session_string(d.user)  # a login token, as econe's
    floor = median_ms(econe_calls(url, session, [("one.vmpool.info", -3, -1, -1, listing_state)]))
    gateway.sign_out()  # oned keeps 10 tokens per user: the bench's own goes as econe's do
    describe = Signed(econe.url, d.user, d.secret, {"Action": "DescribeInstances"})
    conn = http.client.HTTPConnection("127.0.0.1", econe.port, timeout=300)
    describe.send(conn)  # warm: econe's token and its EC2-attribute cache are filled
    warm = median_ms(lambda: describe.send(conn))
    pool = f"one.vmpool.info(-3,-1,-1,{listing_state})"
    rows.append((f"{where}DescribeInstances, {size:,} VMs, warm: econe (raw HTTP) / its {pool} as econe makes it",
                 warm, floor, "context"))  # fmt: skip
    if size >= 1000:
        rows.append((f"{where}econe's own time per listed VM at {size:,} VMs, warm (us): (econe - its pool call) / VMs",
                     (warm - floor) * 1000 / size, None, "<= 10 us"))  # fmt: skip
        first, cold = cold_describe_ms(work, url, auth_file, d.user, d.secret)
        rows.append((f"{where}a user's first request after a start (DescribeKeyPairs: signs in to oned), ms",
                     first, None, "context"))  # fmt: skip
        rows.append((f"{where}DescribeInstances, {size:,} VMs, cold (the first listing after a start) / warm",
                     cold, warm, "<= 2.0"))  # fmt: skip
    if size <= 100:
        raw = xmlrpc.client.ServerProxy(url).one

        def after_own_login():  # the user's CLI or Sunstone: oned caches that session for the user
            raw.user.info(f"{d.user}:{d.password}", -1, False)
            t = time.perf_counter()
            describe.send(conn)
            return (time.perf_counter() - t) * 1000

        rows.append((f"{where}DescribeInstances, {size:,} VMs, the user signing in to oned with its password "
                     f"between calls: econe / its {pool}", statistics.median(after_own_login() for _ in range(7)),
                     floor, "<= 3.0"))  # fmt: skip
        other = start_econe(work, url, auth_file)
        try:
            conn2 = http.client.HTTPConnection("127.0.0.1", other.port, timeout=300)
            describe2 = Signed(other.url, d.user, d.secret, {"Action": "DescribeInstances"})
            describe2.send(conn2)
            both = median_ms(lambda: (describe.send(conn), describe2.send(conn2)), runs=7) / 2
        finally:
            other.stop()
        rows.append((f"{where}DescribeInstances, {size:,} VMs, two econe-servers serving the user alternately: "
                     f"econe / its {pool}", both, floor, "<= 3.0"))  # fmt: skip
    return rows


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def throughput(make_request, seconds: float = 10.0, clients: int = 4) -> float:
    stop = time.time() + seconds
    counts = [0] * clients

    def worker(i):
        conn, send = make_request()
        while time.time() < stop:
            send(conn)
            counts[i] += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return sum(counts) / seconds


def start_moto() -> tuple[subprocess.Popen, str] | None:
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        return None
    port = free_port()
    proc = subprocess.Popen([str(exe), "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    return None


class _Sink(http.server.BaseHTTPRequestHandler):
    """The floor for uploads: a receiver that stores the body in a file and removes it."""

    directory = "/var/tmp"

    def do_POST(self):  # noqa: N802
        left = int(self.headers["Content-Length"])
        with tempfile.NamedTemporaryFile(dir=self.directory) as f:
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                f.write(chunk)
                left -= len(chunk)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def run(sizes: list[int], upload_mib: int) -> list[tuple]:
    import boto3

    rows: list[tuple] = []
    work = Path(tempfile.mkdtemp(prefix="econe-bench-", dir="/var/tmp"))
    one = start_onelite(work / "one", interval=3600, auth_driver_delay=None)  # oned's external driver's cost
    d = demo.provision(one.url, one.admin_session, str(work), addresses=max(sizes) + 300)
    econe = start_econe(work, one.url, one.data / "ec2_auth", max_upload_size=(upload_mib + 64) * 1024 * 1024)
    moto = start_moto()
    raw = xmlrpc.client.ServerProxy(one.url).one
    user_session = f"{d.user}:{d.password}"
    ec2 = boto3.client(
        "ec2",
        endpoint_url=econe.url,
        region_name="opennebula",
        aws_access_key_id=d.user,
        aws_secret_access_key=d.secret,
    )
    mec2 = (
        boto3.client(
            "ec2", endpoint_url=moto[1], region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
        )
        if moto
        else None
    )
    describe_all = Signed(econe.url, d.user, d.secret, {"Action": "DescribeInstances"})
    # econe's kind of session for the user (a login token) and listing state, from the file it runs with
    cfg = load_config(str(econe.conf), {"ONE_CIPHER_AUTH": str(one.data / "ec2_auth")})
    econe_session = Gateway(cfg.one_xmlrpc, cfg.server_user, cfg.server_password, Metrics()).session_string(d.user)
    listing_state = -2 if cfg.describe_with_terminated_instances else -1  # as UserSession.vms
    try:
        vmids: list[int] = []
        moto_made = 0
        moto_image = mec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"] if mec2 else None
        for size in sorted(sizes):
            while len(vmids) < size:
                ok, vmid, *_ = raw.vm.allocate(user_session, VM_TEMPLATE.format(img=d.image, net=d.vnet), False)
                assert ok, vmid
                vmids.append(vmid)
            admin_pool = median_ms(lambda: raw.vmpool.info(one.admin_session, -2, -1, -1, -1))
            conn = http.client.HTTPConnection("127.0.0.1", econe.port, timeout=300)
            econe_ms = median_ms(lambda c=conn: describe_all.send(c))
            rows.append(
                (
                    f"DescribeInstances, {size:,} VMs, warm: econe (raw HTTP) / raw one.vmpool.info",
                    econe_ms,
                    admin_pool,
                    "<= 2.0" if size >= 1000 else "context",
                )
            )
            rows += listing_rows("", one.url, one.data / "ec2_auth", work, d, size, econe, listing_state)
            boto_ms = median_ms(lambda: ec2.describe_instances(), runs=3)
            if mec2:
                while moto_made < size:
                    batch = min(500, size - moto_made)
                    mec2.run_instances(ImageId=moto_image, InstanceType="t2.micro", MinCount=batch, MaxCount=batch)
                    moto_made += batch
                moto_ms = median_ms(lambda: mec2.describe_instances(), runs=3)
            else:
                moto_ms = NOT_MEASURED
            rows.append(
                (f"DescribeInstances, {size:,} VMs: moto / econe, end to end with boto3", moto_ms, boto_ms, ">= 5.0")
            )
        page = Signed(econe.url, d.user, d.secret, {"Action": "DescribeInstances", "MaxResults": str(PAGE)})
        conn = http.client.HTTPConnection("127.0.0.1", econe.port, timeout=300)
        page.send(conn)  # the page's EC2 attributes cached: its oned work is then the one pool call below
        page_ms = median_ms(lambda: page.send(conn))
        page_call = ("one.vmpool.info", -3, 0, -(PAGE + 1), listing_state)  # one more VM: is there a next page
        page_floor = median_ms(econe_calls(one.url, econe_session, [page_call]))
        rows.append(
            (
                f"DescribeInstances MaxResults={PAGE} at {len(vmids):,} VMs, warm / its oned call as econe makes it, "
                f"one.vmpool.info(-3,0,{-(PAGE + 1)},{listing_state})",
                page_ms,
                page_floor,
                "about 1 page",
            )
        )
        one_id = Signed(econe.url, d.user, d.secret, {"Action": "DescribeInstances", "InstanceId.1": "i-00000005"})
        single = median_ms(lambda: one_id.send(conn), runs=51)
        if mec2:  # the same request the same way: raw HTTP, signed once, median of 51
            mid = mec2.describe_instances(MaxResults=5)["Reservations"][0]["Instances"][0]["InstanceId"]
            m_one = Signed(moto[1], "x", "y", {"Action": "DescribeInstances", "InstanceId.1": mid}, "us-east-1")
            moto_port = urlparse(moto[1]).port
            moto_conn = http.client.HTTPConnection("127.0.0.1", moto_port, timeout=300)
            moto_single = median_ms(lambda: m_one.send(moto_conn), runs=51)
        else:
            moto_single = NOT_MEASURED
        rows.append(("DescribeInstances by id (ms), raw HTTP: econe / moto", single, moto_single, "<= 5 ms"))

        def econe_client():
            return http.client.HTTPConnection("127.0.0.1", econe.port, timeout=60), one_id.send

        cpu0 = cpu_seconds(econe.proc.pid)
        rate = throughput(econe_client)
        cpu_per_req = (cpu_seconds(econe.proc.pid) - cpu0) / max(rate * 10, 1) * 1000
        if mec2:
            moto_rate = throughput(lambda: (http.client.HTTPConnection("127.0.0.1", moto_port, timeout=60), m_one.send))
        else:
            moto_rate = NOT_MEASURED
        rows.append(("small calls/s, 4 clients, 10 s: econe / moto", rate, moto_rate, ">= 2.0"))
        rows.append(("econe CPU per small call (ms)", cpu_per_req, None, "context"))

        itype_template = d.template
        run100 = Signed(
            econe.url,
            d.user,
            d.secret,
            {
                "Action": "RunInstances",
                "ImageId": f"ami-{d.image:08d}",
                "InstanceType": "m1.small",
                "MinCount": "100",
                "MaxCount": "100",
            },
        )
        t = time.perf_counter()
        answer = run100.send()  # raw HTTP, as for DescribeInstances: client-side parsing is not counted
        run_ms = (time.perf_counter() - t) * 1000
        assert answer.count(b"<instanceId>") == 100
        extra = f'DISK=[IMAGE_ID="{d.image}"]\nEC2_IMAGE_ID="ami-{d.image:08d}"\nEC2_INSTANCE_TYPE="m1.small"\n'
        t = time.perf_counter()
        for _ in range(100):  # the same work for oned: the image disk and the EC2 attributes
            ok, vmid, *_ = raw.template.instantiate(user_session, itype_template, "", False, extra, False)
            assert ok, vmid
        inst_ms = (time.perf_counter() - t) * 1000
        rows.append(("RunInstances MaxCount=100 / 100 raw one.template.instantiate", run_ms, inst_ms, "<= 1.2"))

        if upload_mib:
            image = work / "upload.img"
            with open(image, "wb") as f:
                block = os.urandom(1 << 20)
                for _ in range(upload_mib):
                    f.write(block)
            _Sink.directory = str(work / "tmp")
            sink = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
            threading.Thread(target=sink.serve_forever, daemon=True).start()
            t = time.perf_counter()
            econe_upload(f"http://127.0.0.1:{sink.server_address[1]}/", str(image), "k", "s")
            plain_s = time.perf_counter() - t
            sink.shutdown()
            rss_before = rss_mib(econe.proc.pid, "VmRSS")
            samples = [rss_before]
            sampling = threading.Event()

            def sample():  # VmHWM would report earlier peaks (the big DescribeInstances): sample instead
                while not sampling.wait(0.02):
                    samples.append(rss_mib(econe.proc.pid, "VmRSS"))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t = time.perf_counter()
            status, body = econe_upload(econe.url + "/", str(image), d.user, d.secret)
            econe_s = time.perf_counter() - t
            sampling.set()
            sampler.join()
            assert status == 200, body
            peak = max(samples)
            rows.append(
                (
                    f"upload {upload_mib} MiB: econe MiB/s / loopback upload to a file, MiB/s",
                    upload_mib / econe_s,
                    upload_mib / plain_s,
                    ">= 0.5",
                )
            )
            rows.append(
                (
                    "econe RSS growth during the upload (MiB; sampled peak minus before)",
                    peak - rss_before,
                    None,
                    "<= 64",
                )
            )
            image.unlink()
    finally:
        econe.stop()
        one.stop()
        if moto:
            moto[0].terminate()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def real_oned_rows(sizes: list[int]) -> list[tuple]:
    """DescribeInstances through econe on the existing oned of ONE_XMLRPC, ONE_AUTH and ONE_CIPHER_AUTH
    (as make conformance names it), against the pool calls on that oned: the figures `listing_rows`
    makes on onelite, measured there (issue "Fast on a real OpenNebula").
    What it makes is named econe-conformance-<hex>-… and swept at the end."""
    from tests.cloud import existing_cloud, sweep

    if not real_oned_wanted() or not os.environ.get("ONE_CIPHER_AUTH"):
        return []
    cloud = existing_cloud()
    work = Path(tempfile.mkdtemp(prefix="econe-bench-real-", dir="/var/tmp"))
    raw = xmlrpc.client.ServerProxy(cloud.url).one
    rows: list[tuple] = []
    econe = None
    try:
        d = demo.provision(cloud.url, cloud.admin_session, str(work), user=cloud.name("bench"),
                           group=cloud.name("ec2"), prefix=cloud.prefix, host=cloud.host,
                           datastore=cloud.datastore, cluster=cloud.cluster, addresses=max(sizes) + 10)  # fmt: skip
        econe = start_econe(work, cloud.url, cloud.server_auth)
        user_session = f"{d.user}:{d.password}"
        describe_all = Signed(econe.url, d.user, d.secret, {"Action": "DescribeInstances"})
        made = 0
        for size in sorted(sizes):
            while made < size:  # on hold: listed as pending, and the scheduler leaves them alone
                ok, vmid, *_ = raw.vm.allocate(user_session, VM_TEMPLATE.format(img=d.image, net=d.vnet), True)
                assert ok, vmid
                made += 1
            conn = http.client.HTTPConnection("127.0.0.1", econe.port, timeout=300)  # econe drops idle ones
            # the bench user's VMs, as econe lists them: the rest of that cloud is not this figure's
            pool_ms = median_ms(lambda: raw.vmpool.info(cloud.admin_session, d.uid, -1, -1, -1))
            describe_all.send(conn)  # warm: econe's session and EC2-attribute cache are filled
            rows.append(
                (
                    f"real oned: DescribeInstances, {size:,} VMs, warm: econe (raw HTTP) / raw one.vmpool.info",
                    median_ms(lambda c=conn: describe_all.send(c)),
                    pool_ms,
                    "<= 2.0" if size >= 1000 else "context",
                )
            )
            rows += listing_rows("real oned: ", cloud.url, cloud.server_auth, work, d, size, econe, -1)
    finally:
        if econe:
            econe.stop()
        shutil.rmtree(work, ignore_errors=True)
        left, errors = sweep(cloud.admin(), cloud.prefix, cloud.admin_id, timeout=600)
        if left:
            raise RuntimeError(f"the sweep of {cloud.prefix}* left {left}; last errors: {errors}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    out = table(run([int(s) for s in args.sizes.split(",")], args.upload_mib))
    print(out)
    if not args.no_record:
        record("econe", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""econe's own CPU per VM of a first DescribeInstances (issue #13): every VM seen for the first time.

Starts onelite, provisions the demo, allocates the VMs as the demo user, fetches the short and the
extended pool answers once, then times in this process, on fresh objects each run (median of the
runs), each step econe takes for VMs it has not seen: split and parse the short answer, attach the
EC2 attributes of the extended one, describe and write each instance, group the reservations and
serialize the answer. Prints µs per VM; records nothing.
Usage: python -m bench.first_listing [--vms 1000] [--runs 9]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import xmlrpc.client
from pathlib import Path

import demo
from bench.econe_bench import VM_TEMPLATE
from econe import model, objects
from econe.actions import instances, nics
from econe.gateway import Gateway, RawXMLRPC
from econe.metrics import Metrics
from tests.conftest import start_onelite


def answers(vms: int) -> tuple[str, str]:
    """The short and the extended VM pool answers of a user with *vms* VMs, as econe's transport reads them."""
    work = Path(tempfile.mkdtemp(prefix="first-listing-"))
    one = start_onelite(work / "one", interval=3600)
    try:
        d = demo.provision(one.url, one.admin_session, str(work), addresses=vms + 300)
        raw = xmlrpc.client.ServerProxy(one.url).one
        for _ in range(vms):
            ok, value, *_ = raw.vm.allocate(
                f"{d.user}:{d.password}", VM_TEMPLATE.format(img=d.image, net=d.vnet), False
            )
            assert ok, value
        server_user, server_password = (one.data / "ec2_auth").read_text().strip().split(":", 1)
        session = Gateway(one.url, server_user, server_password, Metrics()).session_string(d.user)
        rpc = RawXMLRPC(one.url, Metrics())
        short = rpc.call("one.vmpool.info", session, -3, -1, -1, -1)[1]
        extended = rpc.call("one.vmpool.infoextended", session, -3, -1, -1, -1)[1]
        return short, extended
    finally:
        one.stop()
        shutil.rmtree(work, ignore_errors=True)


def first_listing(short: str, extended: str) -> tuple[dict[str, float], bytes]:
    """Each step's seconds for one first listing of every VM of *short*, and the answer."""
    op = model.operation("DescribeInstances")
    times = {}

    def step(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times[name] = time.perf_counter() - start
        return out

    vms = step("split + parse", lambda: objects.parse_vm_records(objects.split_vm_pool(short)))
    attrs = step("extended attrs parse", objects.parse_ec2_attrs, extended)
    vms = step("attach attrs", lambda: [Gateway.with_attrs(vm, *attrs.get(vm.id, ({}, ""))) for vm in vms])
    names = nics.GroupNames(None)
    step("describe", lambda: [instances._described(vm, names) for vm in vms])
    items = step("write", lambda: [(vm, instances._written(vm, names)) for vm in vms])
    reservations = step("reservations", instances._reservations, items)
    body = step("serialize", model.serialize, op, {"Reservations": reservations}, "2016-11-15", "bench")
    return times, body


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    short, extended = answers(args.vms)
    count = len(objects.split_vm_pool(short))
    model.prepare([model.operation("DescribeInstances")])  # as econe-server does at start
    first_listing(short, extended)  # the lru caches of addresses and times, as in a running server
    runs = [first_listing(short, extended)[0] for _ in range(args.runs)]
    per_vm = {name: statistics.median(r[name] for r in runs) / count * 1e6 for name in runs[0]}
    totals = [sum(r.values()) / count * 1e6 for r in runs]
    core = ("split + parse", "describe", "write")
    cores = [sum(r[name] for name in core) / count * 1e6 for r in runs]
    print(f"{count} VMs, median of {args.runs} runs, µs per VM")
    for name, us in per_vm.items():
        print(f"  {name:22} {us:7.1f}")
    print(f"  {'parse+describe+write':22} {statistics.median(cores):7.1f}")
    print(f"  {'all':22} {statistics.median(totals):7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""econe's own CPU per VM of a first DescribeInstances (issue #13): every VM seen for the first time.

Starts onelite, provisions the demo, allocates the VMs as the demo user, fetches the short and the
extended pool answers once, then times in this process, on fresh objects each run (median of the
runs), each step econe takes for VMs it has not seen: split and parse the short answer, attach the
EC2 attributes of the extended one, describe and write each instance, group the reservations and
serialize the answer, with the collector's share; the heap made at the start is frozen first, as
econe-server freezes it. Prints µs per VM; records nothing.
Usage: python -m bench.first_listing [--vms 1000] [--runs 9] [--no-freeze]
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import time
import xmlrpc.client
from pathlib import Path

import demo
from bench.econe_bench import VM_TEMPLATE
from econe import model, objects
from econe.actions import ACTIONS, instances, nics
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
    """Each step's seconds for one first listing of every VM of *short* (and the collector's), and the answer."""
    op = model.operation("DescribeInstances")
    times = {}

    def step(name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        times[name] = time.perf_counter() - start
        return out

    collecting = Collector()
    with collecting:
        vms = step("split + parse", lambda: objects.parse_vm_records(objects.split_vm_pool(short)))
        attrs = step("extended attrs parse", objects.parse_ec2_attrs, extended)
        vms = step("attach attrs", lambda: [Gateway.with_attrs(vm, *attrs.get(vm.id, ({}, ""))) for vm in vms])
        names = nics.GroupNames(None)  # as DescribeInstances: each instance described, then written
        items = step("describe + write", lambda: [(vm, instances._written(vm, names)) for vm in vms])
        reservations = step("reservations", instances._reservations, items)
        body = step("serialize", model.serialize, op, {"Reservations": reservations}, "2016-11-15", "bench")
    times["garbage collection"] = collecting.seconds
    return times, body


class Collector:
    """The seconds the garbage collector ran within the block (part of its steps' times)."""

    def __init__(self):
        self.seconds = 0.0
        self._start = 0.0

    def _note(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start

    def __enter__(self):
        gc.callbacks.append(self._note)

    def __exit__(self, *exc):
        gc.callbacks.remove(self._note)


CORE = ("split + parse", "describe + write")  # issue #13's figure


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--no-freeze", action="store_true", help="leave the heap to the collector (econe before #13)")
    args = parser.parse_args(argv)
    short, extended = answers(args.vms)
    count = len(objects.split_vm_pool(short))
    # as econe-server before it serves: every answer's writer made, then the heap frozen
    model.prepare(op for name, act in ACTIONS.items() if (op := model.operation(name, act.service)))
    if not args.no_freeze:
        gc.collect()
        gc.freeze()
    runs = [first_listing(short, extended)[0] for _ in range(args.runs + 1)]
    for r in runs:
        r["parse+describe+write"] = sum(r[name] for name in CORE)
        r["all"] = sum(r.values()) - r["parse+describe+write"] - r["garbage collection"]
    cold, warm = runs[0], runs[1:]  # the first run after the start: no address or time looked up yet
    print(f"{count} VMs, µs per VM: median of {args.runs} runs (worst), then the first run")
    for name in cold:
        values = [r[name] / count * 1e6 for r in warm]
        first = cold[name] / count * 1e6
        print(f"  {name:22} {statistics.median(values):7.1f} ({max(values):5.1f})  first {first:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

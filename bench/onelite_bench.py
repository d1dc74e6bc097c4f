"""onelite against real oned 6.10.5: allocate throughput, one.vmpool.info and one.vm.info times.

The anchors are real oned figures measured on this kind of machine (2 cores, SQLite, dummy
drivers); onelite is measured here, now. Prints a table and appends it to bench/RESULTS.md.
Usage: python -m bench.onelite_bench [--sizes 1000,10000] [--no-record]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from datetime import UTC, datetime
from pathlib import Path

# real oned 6.10.5, median of 7 (issue #2); 10,000 is not measured there: scaled linearly from 5,000
ANCHOR_ALLOCATE_MS = 6.0
ANCHOR_POOL_MS = {100: 3.0, 1000: 27.0, 5000: 104.0, 10000: 208.0}
ANCHOR_VM_INFO_MS = 1.0
TEMPLATE = 'NAME="bench"\nCPU="0.1"\nVCPU="1"\nMEMORY="64"\n'


def median_ms(fn, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def start(data: Path) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "onelite.cli", "serve", "--listen", f"127.0.0.1:{port}", "--data", str(data),
         "--sched-interval", "3600"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/RPC2"
    for _ in range(200):
        try:
            xmlrpc.client.ServerProxy(url).one.system.version("x:y")
            return proc, url
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("onelite did not start")


def run(sizes: list[int]) -> list[tuple[str, float, float | None]]:
    rows = []
    data = Path(tempfile.mkdtemp(prefix="onelite-bench-")) / "one"
    proc, url = start(data)
    try:
        session = (data / "one_auth").read_text().strip()
        one = xmlrpc.client.ServerProxy(url).one
        allocated = 0
        for size in sorted(sizes):
            while allocated < size:
                ok, vmid, *_ = one.vm.allocate(session, TEMPLATE, False)
                assert ok, vmid
                allocated += 1
            pool = median_ms(lambda: one.vmpool.info(session, -2, -1, -1, -1))
            rows.append((f"one.vmpool.info(-2,-1,-1,-1) at {size:,} VMs (ms)", pool, ANCHOR_POOL_MS.get(size)))
        t = time.perf_counter()
        for _ in range(200):
            one.vm.allocate(session, TEMPLATE, False)
        per_vm = (time.perf_counter() - t) * 1000 / 200
        rows.insert(0, (f"one.vm.allocate per VM, pool of {allocated:,} (ms)", per_vm, ANCHOR_ALLOCATE_MS))
        info = median_ms(lambda: one.vm.info(session, 0, False), runs=51)
        rows.append(("one.vm.info (ms)", info, ANCHOR_VM_INFO_MS))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data.parent, ignore_errors=True)
    return rows


def table(rows) -> str:
    lines = ["| figure | onelite | real oned | ratio (onelite / oned; target <= 2.0) |", "|---|---|---|---|"]
    for name, value, anchor in rows:
        ratio = f"{value / anchor:.2f}" if anchor else "n/a"
        lines.append(f"| {name} | {value:.2f} | {anchor if anchor else 'n/a'} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="pool sizes to measure (default 1000,10000)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    rows = run([int(s) for s in args.sizes.split(",")])
    out = table(rows)
    print(out)
    if not args.no_record:
        machine = (
            f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}"
        )
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
            f.write(f"\n## onelite vs real oned — {stamp}\n\nMachine: {machine}.\n\n{out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

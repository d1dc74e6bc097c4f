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
# named so that make conformance-clean removes what an interrupted run leaves on a real oned
TEMPLATE = 'NAME="econe-conformance-bench"\nCPU="0.1"\nVCPU="1"\nMEMORY="64"\n'


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


def real_oned_wanted() -> bool:
    """Real-oned rows are asked for by ECONE_BENCH_ONED=1, with the oned of ONE_XMLRPC and ONE_AUTH
    (those alone are the OpenNebula CLI's everyday variables: they are not consent to load a cloud)."""
    return os.environ.get("ECONE_BENCH_ONED") == "1" and bool(
        os.environ.get("ONE_XMLRPC") and os.environ.get("ONE_AUTH")
    )


def measure(url: str, session: str, sizes: list[int], made: list[int]) -> dict[str, float]:
    """The figures for one cloud: pool times at each size, allocate per VM, vm.info. The VMs it
    allocates are appended to *made* as they come, for the caller to remove."""
    one = xmlrpc.client.ServerProxy(url).one
    out: dict[str, float] = {}
    first = None
    for size in sorted(sizes):
        while len(made) < size:
            ok, vmid, *_ = one.vm.allocate(session, TEMPLATE, True)  # on hold: the figures are the API's
            assert ok, vmid
            made.append(vmid)
        first = made[0]
        out[f"one.vmpool.info(-2,-1,-1,-1) at {size:,} VMs (ms)"] = median_ms(
            lambda: one.vmpool.info(session, -2, -1, -1, -1)
        )
    t = time.perf_counter()
    for _ in range(200):
        ok, vmid, *_ = one.vm.allocate(session, TEMPLATE, True)
        made.append(vmid)
    out[f"one.vm.allocate per VM, pool of {len(made):,} (ms)"] = (time.perf_counter() - t) * 1000 / 200
    out["one.vm.info (ms)"] = median_ms(lambda: one.vm.info(session, first, False), runs=51)
    return out


def anchor(name: str) -> float | None:
    if name.startswith("one.vm.allocate"):
        return ANCHOR_ALLOCATE_MS
    if name.startswith("one.vm.info"):
        return ANCHOR_VM_INFO_MS
    for size, ms in ANCHOR_POOL_MS.items():
        if f" {size:,} VMs" in name:
            return ms
    return None


def run(sizes: list[int]) -> list[tuple[str, float, float | None, str]]:
    """Rows (figure, onelite, baseline, target): the baseline is a real oned measured now when
    real_oned_wanted(), else the oned 6.10.5 figures quoted in the issue."""
    data = Path(tempfile.mkdtemp(prefix="onelite-bench-")) / "one"
    proc, url = start(data)
    try:
        ours = measure(url, (data / "one_auth").read_text().strip(), sizes, [])
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(data.parent, ignore_errors=True)
    if real_oned_wanted():
        real_url, session = os.environ["ONE_XMLRPC"], Path(os.environ["ONE_AUTH"]).read_text().strip()
        made: list[int] = []
        try:
            theirs = measure(real_url, session, sizes, made)
        finally:
            one = xmlrpc.client.ServerProxy(real_url).one
            for vmid in made:  # leave the real cloud as it was (DONE VMs stay in its history)
                one.vm.recover(session, vmid, 3)
        return [(f"onelite / real oned: {k}", v, theirs[k], "<= 2.0") for k, v in ours.items()]
    return [(f"onelite / oned 6.10.5 as quoted: {k}", v, anchor(k), "<= 2.0") for k, v in ours.items()]


def _cell(x) -> str:
    return f"{x:.2f}" if isinstance(x, int | float) else x or "—"


def table(rows) -> str:
    """Rows (figure, measured, baseline, target) as a Markdown table. A figure is a number, None
    (no baseline) or a string saying why it was not measured; a ratio needs two numbers."""
    lines = ["| figure | measured | baseline | ratio | target |", "|---|---|---|---|---|"]
    for name, value, base, target in rows:
        numbers = isinstance(value, int | float) and isinstance(base, int | float) and base
        ratio = f"{value / base:.2f}" if numbers else "—"
        lines.append(f"| {name} | {_cell(value)} | {_cell(base)} | {ratio} | {target} |")
    return "\n".join(lines)


def record(title: str, out: str) -> None:
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with open(Path(__file__).with_name("RESULTS.md"), "a") as f:
        f.write(
            f"\n## {title} — {stamp}\n\nMachine: {machine}. Times in ms unless the figure says otherwise.\n\n{out}\n"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000", help="pool sizes to measure (default 1000,10000)")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)
    out = table(run([int(s) for s in args.sizes.split(",")]))
    print(out)
    if not args.no_record:
        record("onelite", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

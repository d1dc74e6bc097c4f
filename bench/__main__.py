"""``make bench``: onelite against oned, and econe against its floor and moto, in one table.

Every ratio compares figures measured in this run (or, for onelite without a real oned, the oned
6.10.5 figures quoted in the issue). With ECONE_BENCH_ONED=1 and the variables of make conformance
(ONE_XMLRPC, ONE_AUTH, ONE_CIPHER_AUTH), onelite and econe's DescribeInstances are also measured on
that oned: a test oned, as it allocates some 11,000 VMs there. The table
is appended to bench/RESULTS.md with the machine and the date.
"""

from __future__ import annotations

import argparse
import sys

from . import econe_bench, onelite_bench


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0])
    parser.add_argument("--onelite-sizes", default="1000,10000")
    parser.add_argument("--econe-sizes", default="100,1000,5000")
    parser.add_argument("--real-sizes", default="100,1000,5000", help="VMs on the existing oned, when one is named")
    parser.add_argument("--upload-mib", type=int, default=1024)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    rows = onelite_bench.run([int(s) for s in args.onelite_sizes.split(",")])
    rows += econe_bench.run([int(s) for s in args.econe_sizes.split(",")], args.upload_mib)
    rows += econe_bench.real_oned_rows([int(s) for s in args.real_sizes.split(",")])
    out = onelite_bench.table(rows)
    print(out)
    if not args.no_record:
        onelite_bench.record("onelite and econe", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

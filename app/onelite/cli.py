"""``onelite serve``: the embedded OpenNebula-compatible cloud."""

from __future__ import annotations

import argparse
import logging
import sys

from .engine import AUTH_DRIVER_DELAY
from .server import OneliteServer


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds (0 or more), got {text!r}")
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="onelite",
        description="A single-process OpenNebula stand-in: oned's XML-RPC API on /RPC2, state in SQLite, "
        "a simulated dummy hypervisor. The first start writes DIR/one_auth (oneadmin) and DIR/ec2_auth "
        "(serveradmin), both mode 0600.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the cloud in the foreground (SIGTERM stops it cleanly)")
    serve.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 2633),
        metavar="HOST:PORT",
        help="address to serve XML-RPC on (default 127.0.0.1:2633; port 0 picks a free one)",
    )
    serve.add_argument(
        "--data",
        default="/var/lib/onelite",
        metavar="DIR",
        help="state directory: SQLite database, image files, auth files (default /var/lib/onelite)",
    )
    serve.add_argument(
        "--sched-interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how often the scheduler places PENDING VMs (default 1)",
    )
    serve.add_argument(
        "--safe-dirs",
        default="/var/tmp /tmp",
        metavar="DIRS",
        help="space-separated directories image PATHs may be copied from (default '/var/tmp /tmp')",
    )
    serve.add_argument(
        "--auth-driver-delay",
        type=_seconds,
        default=AUTH_DRIVER_DELAY,
        metavar="SECONDS",
        help="how long the simulated external auth driver takes to check a server_cipher (or x509, ssh, "
        "ldap) session the session cache does not hold, as oned's does: other calls go on meanwhile "
        f"(default {AUTH_DRIVER_DELAY}, measured on oned 6.10.5; 0 for none)",
    )
    serve.add_argument("--log-file", metavar="FILE", help="log here instead of standard error")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every call (method, user, code, ms)")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        filename=args.log_file,
    )
    if args.verbose:
        logging.getLogger("onelite").setLevel(logging.INFO)

    try:
        server = OneliteServer(
            *args.listen, args.data, args.sched_interval, args.safe_dirs, auth_driver_delay=args.auth_driver_delay
        )
    except OSError as e:
        print(f"onelite: cannot start: {e}", file=sys.stderr)
        return 1
    server.install_signal_handlers()
    print(f"onelite listening on http://{args.listen[0]}:{server.port}/RPC2 (data in {args.data})", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

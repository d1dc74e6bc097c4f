"""The OpenNebula the end-to-end tests drive: a fresh onelite of their own (``make test``), or an
existing oned named by the environment (``make conformance``; the README's "Conformance" section).

On an existing oned, everything a run makes is named with a prefix of its own
(``econe-conformance-<hex>-``) or belongs to a user so named, and `sweep` removes exactly that at
the end, also after failures: nothing made before the run, or by anyone else, is touched."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from demo import _One
from econe import attr_index

from .conftest import CENSUSES, Onelite, start_onelite

PREFIX = "econe-conformance-"
DEFAULT_URL = "http://localhost:2633/RPC2"
# a VM whose deletion is still under way is not DONE yet; a lease or an image it holds is freed after
SWEEP_TIMEOUT = 180


@dataclass
class Cloud:
    url: str
    admin_session: str
    admin_auth: Path  # the admin's credentials file (user:password)
    server_auth: Path  # the server_cipher account file econe is given as ONE_CIPHER_AUTH
    prefix: str = ""  # starts the name of everything the tests make
    host: int = 0  # the host the run's VMs go to
    datastore: int = 1  # for images
    cluster: int = -1  # for vnets: the host's cluster (-1: oned's default)

    @property
    def pinned(self) -> tuple[str, str]:
        """The template attribute that keeps a VM on the cloud's host: a group oned puts in its
        default VDC may manage every host, and the run's VMs must reach none but this one."""
        return ("SCHED_REQUIREMENTS", f'ID="{self.host}"')

    onelite: Onelite | None = None  # None: an existing oned
    admin_id: int = 0
    admin_name: str = "oneadmin"
    census: dict = field(default_factory=dict)

    def name(self, base: str) -> str:
        return self.prefix + base

    def admin(self) -> _One:
        return _One(self.url, self.admin_session)


def _env_file(var: str) -> Path:
    value = os.environ.get(var)
    if not value or not Path(value).is_file():
        raise RuntimeError(f"make conformance needs {var}: a readable credentials file (user:password), got {value!r}")
    return Path(value)


TAGS = {  # the objects' element in each pool answer (a pool also carries quotas)
    "one.userpool.info": "USER",
    "one.grouppool.info": "GROUP",
    "one.acl.info": "ACL",
    "one.vmpool.info": "VM",
    "one.imagepool.info": "IMAGE",
    "one.templatepool.info": "VMTEMPLATE",
    "one.vnpool.info": "VNET",
    "one.secgrouppool.info": "SECURITY_GROUP",
    "one.hostpool.info": "HOST",
    "one.documentpool.info": "DOCUMENT",
}


def _pool(one: _One, method: str, *args) -> list[ET.Element]:
    return ET.fromstring(one(method, *args)).findall(TAGS[method])


def _host(one: _One, wanted: str | None) -> ET.Element:
    """The host named or numbered by ECONE_CONFORMANCE_HOST, or the first monitored dummy host. It must
    have the dummy drivers: the run's VMs have disks of random bytes and NICs on made-up bridges."""
    for h in _pool(one, "one.hostpool.info"):
        named = wanted in (h.findtext("ID"), h.findtext("NAME"))
        if named or (wanted is None and h.findtext("STATE") == "2" and h.findtext("VM_MAD") == "dummy"):
            if h.findtext("VM_MAD") != "dummy":
                raise RuntimeError(
                    f"ECONE_CONFORMANCE_HOST: host {wanted} has VM_MAD {h.findtext('VM_MAD')}, not dummy"
                )
            return h
    raise RuntimeError(f"ECONE_CONFORMANCE_HOST: no host {wanted!r}, or no monitored host with the dummy drivers")


def _datastore(one: _One, dsid: int, cluster: int) -> int:
    """The image datastore, which must serve the host's cluster (or the run's VMs would stay pending)."""
    ds = ET.fromstring(one("one.datastore.info", dsid, False))
    if str(cluster) not in [c.text for c in ds.iterfind("CLUSTERS/ID")]:
        raise RuntimeError(f"ECONE_CONFORMANCE_DATASTORE: datastore {dsid} is not in the host's cluster {cluster}")
    return dsid


def existing_cloud() -> Cloud:
    url = os.environ.get("ONE_XMLRPC") or DEFAULT_URL
    admin_auth = _env_file("ONE_AUTH")
    admin_session = admin_auth.read_text().strip()
    one = _One(url, admin_session)
    try:
        me = ET.fromstring(one("one.user.info", -1, False))
    except OSError as e:
        raise RuntimeError(f"cannot reach oned at ONE_XMLRPC={url}: {e}") from None
    host = _host(one, os.environ.get("ECONE_CONFORMANCE_HOST"))
    cluster = int(host.findtext("CLUSTER_ID"))
    return Cloud(
        url=url,
        admin_session=admin_session,
        admin_auth=admin_auth,
        server_auth=_env_file("ONE_CIPHER_AUTH"),
        prefix=f"{PREFIX}{secrets.token_hex(3)}-",
        host=int(host.findtext("ID")),
        datastore=_datastore(one, int(os.environ.get("ECONE_CONFORMANCE_DATASTORE", "1")), cluster),
        cluster=cluster,
        admin_id=int(me.findtext("ID")),
        admin_name=me.findtext("NAME"),
    )


def onelite_cloud(one: Onelite) -> Cloud:
    """A Cloud on an onelite the tests started, with a dummy host."""
    host = _One(one.url, one.admin_session)("one.host.allocate", "host0", "dummy", "dummy", -1)
    return Cloud(one.url, one.admin_session, one.data / "one_auth", one.data / "ec2_auth", host=host, onelite=one)


@contextlib.contextmanager
def open_cloud(workdir: Path, existing: bool) -> Iterator[Cloud]:
    if not existing:
        one = start_onelite(workdir / "one", interval=0.1)
        try:
            yield onelite_cloud(one)
        finally:
            one.stop()
        return
    cloud = existing_cloud()
    cloud.census["before"] = census(cloud.admin())
    CENSUSES.append((cloud.prefix, cloud.census))
    try:
        yield cloud
    finally:
        with _signals_wait():
            left, errors = sweep(cloud.admin(), cloud.prefix, cloud.admin_id)
        cloud.census["after"] = census(cloud.admin())
        if left:
            raise RuntimeError(f"the sweep of {cloud.prefix}* left {left}; last errors: {errors}")


# ---------------------------------------------------------------- what a run made, and its removal

LIVE = -1  # vmpool.info's state filter: every VM that is not DONE


def census(one: _One) -> dict[str, int]:
    """How many objects of each kind oned holds (VMs: those not DONE), to show a run left none."""
    return {
        "users": len(_pool(one, "one.userpool.info")),
        "groups": len(_pool(one, "one.grouppool.info")),
        "acl rules": len(_pool(one, "one.acl.info")),
        "vms": len(_pool(one, "one.vmpool.info", -2, -1, -1, LIVE)),
        "images": len(_pool(one, "one.imagepool.info", -2, -1, -1)),
        "templates": len(_pool(one, "one.templatepool.info", -2, -1, -1)),
        "vnets": len(_pool(one, "one.vnpool.info", -2, -1, -1)),
        "security groups": len(_pool(one, "one.secgrouppool.info", -2, -1, -1)),
        "hosts": len(_pool(one, "one.hostpool.info")),
        "ec2 indexes": len(_pool(one, "one.documentpool.info", -2, -1, -1, attr_index.TYPE)),
    }


def _ours(prefix: str, users: set[int], admin_id: int):
    def owned(obj: ET.Element) -> bool:
        uid = int(obj.findtext("UID"))
        return uid in users or (uid == admin_id and obj.findtext("NAME").startswith(prefix))

    return owned


def _named(one: _One, method: str, prefix: str) -> set[int]:
    return {int(o.findtext("ID")) for o in _pool(one, method) if o.findtext("NAME").startswith(prefix)}


OWNED = [  # (pool call, its delete call's method and extra arguments, kind): what VMs may hold, then the rest
    (("one.imagepool.info", -2, -1, -1), "one.image.delete", (False,), "images"),
    (("one.templatepool.info", -2, -1, -1), "one.template.delete", (False,), "templates"),
    (("one.vnpool.info", -2, -1, -1), "one.vn.delete", (), "vnets"),
    (("one.secgrouppool.info", -2, -1, -1), "one.secgroup.delete", (), "security groups"),
    (("one.documentpool.info", -2, -1, -1, attr_index.TYPE), "one.document.delete", (), "ec2 indexes"),
]


def ours(one: _One, prefix: str, admin_id: int) -> dict[str, list[int]]:
    """What of a run oned holds, by kind: the users and groups named with *prefix*; the VMs (not DONE),
    images, templates, vnets and security groups those users own, or the admin owns under the prefix;
    the ACL rules whose subject is one of those users or groups."""
    users, groups = _named(one, "one.userpool.info", prefix), _named(one, "one.grouppool.info", prefix)
    owned = _ours(prefix, users, admin_id)
    found = {"users": sorted(users), "groups": sorted(groups)}
    found["vms"] = [int(vm.findtext("ID")) for vm in _pool(one, "one.vmpool.info", -2, -1, -1, LIVE) if owned(vm)]
    for pool, _method, _args, kind in OWNED:
        found[kind] = [int(o.findtext("ID")) for o in _pool(one, *pool) if owned(o)]
    subjects = {f"#{u}" for u in users} | {f"@{g}" for g in groups}
    rules = _pool(one, "one.acl.info")
    found["acl rules"] = [int(r.findtext("ID")) for r in rules if r.findtext("STRING").split()[0] in subjects]
    return found


def sweep(one: _One, prefix: str, admin_id: int, timeout: float = SWEEP_TIMEOUT) -> tuple[dict, dict]:
    """Remove what a run made: its VMs, then what they held, then the rules, users and groups, retrying
    what oned still holds (a deleted VM's images and leases come free when it is DONE, an image goes
    when its driver is done) until nothing is left or *timeout*. What is left, and the last errors."""
    deadline = time.monotonic() + timeout
    errors: dict[str, str] = {}

    def attempt(kind: str, method: str, oid: int, *args) -> None:
        try:
            one(method, oid, *args)
        except (RuntimeError, OSError) as e:  # still held, or already on its way out
            errors[f"{kind} {oid}"] = str(e)

    while True:
        found = ours(one, prefix, admin_id)
        left = {kind: ids for kind, ids in found.items() if ids}
        if not left or time.monotonic() > deadline:
            return left, errors
        errors = {}
        for vmid in found["vms"]:
            attempt("vm", "one.vm.recover", vmid, 3)  # delete, whatever its state
        if not found["vms"]:
            for _pool_name, method, args, kind in OWNED:
                for oid in found[kind]:
                    attempt(kind, method, oid, *args)
        if not found["vms"] and not any(found[kind] for *_, kind in OWNED):  # users own nothing more
            for rid in found["acl rules"]:
                attempt("acl rule", "one.acl.delrule", rid)
            for uid in found["users"]:
                attempt("user", "one.user.delete", uid)
            for gid in found["groups"]:
                attempt("group", "one.group.delete", gid)
        time.sleep(1)


@contextlib.contextmanager
def _signals_wait():
    """Ctrl-C or SIGTERM during a sweep would leave half a run behind: they wait until it is done."""
    handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def main(argv: list[str]) -> int:
    """make conformance-clean: list what runs that could not sweep left (everything named
    econe-conformance-*, and what its users own); remove it with --yes."""
    url, session = os.environ.get("ONE_XMLRPC") or DEFAULT_URL, _env_file("ONE_AUTH").read_text().strip()
    one = _One(url, session)
    admin_id = int(ET.fromstring(one("one.user.info", -1, False)).findtext("ID"))
    found = {kind: ids for kind, ids in ours(one, PREFIX, admin_id).items() if ids}
    print(f"named {PREFIX}* or owned by such users: {found or 'nothing'}")
    if not found or "--yes" not in argv:
        return 0 if not found else 1
    left, errors = sweep(one, PREFIX, admin_id)
    print(f"left: {left} {errors}" if left else "removed")
    return 1 if left else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

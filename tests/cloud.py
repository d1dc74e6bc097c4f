"""The OpenNebula the end-to-end tests drive: a fresh onelite of their own (``make test``), or an
existing oned named by the environment (``make conformance``; the README's "Conformance" section).

On an existing oned, everything a run makes is named with a prefix of its own
(``econe-conformance-<hex>-``) or belongs to a user so named, and `sweep` removes exactly that at
the end, also after failures: nothing made before the run, or by anyone else, is touched."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from econe.demo import _One

from .conftest import CENSUSES, Onelite, start_onelite

PREFIX = "econe-conformance-"
# a VM whose deletion is still under way is not DONE yet; a lease or an image it holds is freed after
SWEEP_TIMEOUT = 180


@dataclass
class Cloud:
    url: str
    admin_session: str
    admin_auth: Path  # the admin's credentials file (user:password)
    server_auth: Path  # the server_cipher account file econe is given as ONE_CIPHER_AUTH
    prefix: str = ""  # starts the name of everything the tests make
    host: int | None = None  # an existing host for the EC2 group, or None: onelite makes one
    datastore: int = 1  # for images
    cluster: int = -1  # for vnets: the host's cluster (-1: oned's default)
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
}


def _pool(one: _One, method: str, *args) -> list[ET.Element]:
    return ET.fromstring(one(method, *args)).findall(TAGS[method])


def _host(one: _One, wanted: str | None) -> int:
    """The host named or numbered by ECONE_CONFORMANCE_HOST, or the first one oned monitors."""
    hosts = _pool(one, "one.hostpool.info")
    for h in hosts:
        if wanted in (h.findtext("ID"), h.findtext("NAME")) or (wanted is None and h.findtext("STATE") == "2"):
            return int(h.findtext("ID"))
    raise RuntimeError(f"ECONE_CONFORMANCE_HOST: no host {wanted!r} in oned's host pool, or none MONITORED")


def existing_cloud() -> Cloud:
    url = os.environ.get("ONE_XMLRPC") or "http://localhost:2633/RPC2"
    admin_auth = _env_file("ONE_AUTH")
    admin_session = admin_auth.read_text().strip()
    one = _One(url, admin_session)
    try:
        me = ET.fromstring(one("one.user.info", -1, False))
    except OSError as e:
        raise RuntimeError(f"cannot reach oned at ONE_XMLRPC={url}: {e}") from None
    return Cloud(
        url=url,
        admin_session=admin_session,
        admin_auth=admin_auth,
        server_auth=_env_file("ONE_CIPHER_AUTH"),
        prefix=f"{PREFIX}{secrets.token_hex(3)}-",
        host=_host(one, os.environ.get("ECONE_CONFORMANCE_HOST")),
        datastore=int(os.environ.get("ECONE_CONFORMANCE_DATASTORE", "1")),
        cluster=int(os.environ.get("ECONE_CONFORMANCE_CLUSTER", "-1")),
        admin_id=int(me.findtext("ID")),
        admin_name=me.findtext("NAME"),
    )


@contextlib.contextmanager
def open_cloud(workdir: Path, existing: bool) -> Iterator[Cloud]:
    if not existing:
        one = start_onelite(workdir / "one", interval=0.1)
        try:
            yield Cloud(one.url, one.admin_session, one.data / "one_auth", one.data / "ec2_auth", onelite=one)
        finally:
            one.stop()
        return
    cloud = existing_cloud()
    cloud.census["before"] = census(cloud.admin())
    CENSUSES.append((cloud.prefix, cloud.census))
    try:
        yield cloud
    finally:
        left = sweep(cloud.admin(), cloud.prefix, cloud.admin_id)
        cloud.census["after"] = census(cloud.admin())
        if left:
            raise RuntimeError(f"the sweep of {cloud.prefix}* left {left}")


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
    }


def _ours(prefix: str, users: set[int], admin_id: int):
    def owned(obj: ET.Element) -> bool:
        uid = int(obj.findtext("UID"))
        return uid in users or (uid == admin_id and obj.findtext("NAME").startswith(prefix))

    return owned


def _named(one: _One, method: str, prefix: str) -> set[int]:
    return {int(o.findtext("ID")) for o in _pool(one, method) if o.findtext("NAME").startswith(prefix)}


def _remove_all(one: _One, pool: str, args: tuple, owned, delete, what: str, deadline: float) -> None:
    """Delete every owned object of *pool* until none is listed: oned removes an image after its
    driver did, and refuses while it is still held (an image a VM being deleted uses, a vnet with leases)."""
    errors: list[str] = []
    while left := [int(o.findtext("ID")) for o in _pool(one, pool, *args) if owned(o)]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"cannot remove {what} {left}: {errors}")
        errors = []
        for oid in left:
            try:
                delete(oid)
            except RuntimeError as e:  # held, or already on its way out
                errors.append(str(e))
        time.sleep(0.5)


def sweep(one: _One, prefix: str, admin_id: int, timeout: float = SWEEP_TIMEOUT) -> dict[str, int]:
    """Remove what a run made, dependants first; what is left of it (empty when all went)."""
    deadline = time.monotonic() + timeout
    users = _named(one, "one.userpool.info", prefix)
    groups = _named(one, "one.grouppool.info", prefix)
    owned = _ours(prefix, users, admin_id)
    for vm in _pool(one, "one.vmpool.info", -2, -1, -1, LIVE):
        if owned(vm):
            with contextlib.suppress(RuntimeError):  # already being deleted
                one("one.vm.recover", int(vm.findtext("ID")), 3)  # delete, whatever its state
    while any(owned(vm) for vm in _pool(one, "one.vmpool.info", -2, -1, -1, LIVE)) and time.monotonic() < deadline:
        time.sleep(1)
    steps = [
        ("one.imagepool.info", lambda i: one("one.image.delete", i, False), "images"),
        ("one.templatepool.info", lambda i: one("one.template.delete", i, False), "templates"),
        ("one.vnpool.info", lambda i: one("one.vn.delete", i), "vnets"),
        ("one.secgrouppool.info", lambda i: one("one.secgroup.delete", i), "security groups"),
    ]
    for pool, delete, what in steps:
        _remove_all(one, pool, (-2, -1, -1), owned, delete, what, deadline)
    subjects = {f"#{u}" for u in users} | {f"@{g}" for g in groups}
    for rule in _pool(one, "one.acl.info"):
        if rule.findtext("STRING").split()[0] in subjects:
            one("one.acl.delrule", int(rule.findtext("ID")))
    for uid in users:
        one("one.user.delete", uid)
    for gid in groups:
        one("one.group.delete", gid)
    return leftovers(one, prefix, users, admin_id)


def leftovers(one: _One, prefix: str, users: set[int], admin_id: int) -> dict[str, int]:
    owned = _ours(prefix, users, admin_id)
    left = {
        "users": len(_named(one, "one.userpool.info", prefix)),
        "groups": len(_named(one, "one.grouppool.info", prefix)),
        "vms": sum(map(owned, _pool(one, "one.vmpool.info", -2, -1, -1, LIVE))),
    }
    for pool, what in (
        ("one.imagepool.info", "images"),
        ("one.templatepool.info", "templates"),
        ("one.vnpool.info", "vnets"),
        ("one.secgrouppool.info", "security groups"),
    ):
        left[what] = sum(map(owned, _pool(one, pool, -2, -1, -1)))
    return {k: v for k, v in left.items() if v}


if __name__ == "__main__":  # make conformance-clean: what runs that could not sweep left behind
    cloud = existing_cloud()
    print(census(cloud.admin()))
    left = sweep(cloud.admin(), PREFIX, cloud.admin_id)
    print(census(cloud.admin()))
    raise SystemExit(f"left: {left}" if left else 0)

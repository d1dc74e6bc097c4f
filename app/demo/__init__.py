"""The demo, which is not part of the service (nor of the wheel the econe_server role installs).

This module provisions a cloud for EC2 users, as the opennebula_ec2 role does: an ``ec2`` group with
its CREATE rule, a user, a host the group may use, a vnet shared with the group, an ``m1.small``
instance type and a small image registered as an AMI, over its own XML-RPC client. Used by ``make run``
(``demo.run``), the end-to-end tests and the benchmarks."""

from __future__ import annotations

import hashlib
import os
import time
import xml.etree.ElementTree as ET
import xmlrpc.client
from dataclasses import dataclass

from one import acl
from one import template as tpl


@dataclass
class Demo:
    user: str
    password: str
    gid: int
    uid: int
    host: int
    vnet: int
    image: int
    template: int
    itype: str  # the instance type's name

    @property
    def secret(self) -> str:
        """The EC2 secret key: the SHA-256 hex oned stores for a core user."""
        return hashlib.sha256(self.password.encode()).hexdigest()


class _One:
    def __init__(self, url: str, session: str):
        self.proxy = xmlrpc.client.ServerProxy(url, allow_none=False)
        self.session = session

    def __call__(self, method: str, *args):
        ok, value, *rest = getattr(self.proxy, method)(self.session, *args)
        if not ok:
            raise RuntimeError(f"{method}: {value}")
        return value


def add_rule(one: _One, user: int, resource: int, rights: int) -> int:
    return one("one.acl.addrule", f"{user:x}", f"{resource:x}", f"{rights:x}")


def provision(
    url: str,
    admin_session: str,
    workdir: str,
    user: str = "ec2user",
    password: str = "ec2pass",
    group: str = "ec2",
    image_mb: int = 2,
    addresses: int = 100,
    prefix: str = "",
    host: int | None = None,
    datastore: int = 1,
    cluster: int = -1,
) -> Demo:
    """*prefix* starts the names of the vnet, image, template and instance type; *host* is an existing host to use
    (None: a dummy host is made); *datastore* takes the image and *cluster* the vnet."""
    one = _One(url, admin_session)
    gid = one("one.group.allocate", group)
    add_rule(
        one,
        acl.GROUP | gid,
        sum(acl.TYPES[t] for t in ("VM", "NET", "IMAGE", "TEMPLATE", "SECGROUP", "DOCUMENT")) | acl.ALL,
        acl.RIGHTS["CREATE"],
    )
    uid = one("one.user.allocate", user, password, "core", [gid])
    if host is None:
        host = one("one.host.allocate", "host0", "dummy", "dummy", -1)
    add_rule(one, acl.GROUP | gid, acl.TYPES["HOST"] | acl.INDIVIDUAL | host, acl.RIGHTS["USE"])
    vnet = one(
        "one.vn.allocate",
        tpl.serialize(
            [
                ("NAME", f"{prefix}ec2net"),
                ("BRIDGE", "br0"),
                ("VN_MAD", "dummy"),
                ("AR", [("TYPE", "IP4"), ("IP", "10.0.0.10"), ("SIZE", str(addresses))]),
            ]
        ),
        cluster,
    )
    one("one.vn.chown", vnet, -1, gid)
    one("one.vn.chmod", vnet, 1, 1, 0, 1, 0, 0, 1, 0, 0)
    wait_ready(one, vnet, "vnet")
    path = os.path.join(workdir, "demo-image.img")
    with open(path, "wb") as f:
        f.write(os.urandom(image_mb * 1024 * 1024))
    image = one(
        "one.image.allocate",
        tpl.serialize([("NAME", f"{prefix}demo"), ("TYPE", "OS"), ("PATH", path), ("EC2_AMI", "YES")]),
        datastore,
        False,
    )
    wait_ready(one, image)  # a real oned copies the file after answering
    os.unlink(path)
    one("one.image.chown", image, -1, gid)
    one("one.image.chmod", image, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    template = one(
        "one.template.allocate",
        tpl.serialize(
            [
                ("NAME", f"{prefix}m1.small"),
                ("CPU", "0.5"),
                ("VCPU", "1"),
                ("MEMORY", "128"),
                ("EC2_INSTANCE_TYPE", f"{prefix}m1.small"),
                ("NIC", [("NETWORK_ID", str(vnet))]),
                ("SCHED_REQUIREMENTS", f'ID="{host}"'),  # the group's host, not any its VDC lets it use
            ]
        ),
    )
    one("one.template.chown", template, -1, gid)
    one("one.template.chmod", template, 1, 1, 0, 1, 0, 0, 0, 0, 0)  # 640: the group may use it
    return Demo(user, password, gid, uid, host, vnet, image, template, f"{prefix}m1.small")


# what a real oned's drivers do after it answers: (info call, the states meanwhile); READY is 1 for both
_SETTLING = {"image": ("one.image.info", {"4"}), "vnet": ("one.vn.info", {"0", "2"})}  # LOCKED; INIT, LOCK_CREATE


def wait_ready(one: _One, oid: int, kind: str = "image", timeout: float = 120) -> None:
    """Until oned's drivers are done with a new image (the copy) or vnet (the VN driver's create):
    before that, a VM cannot use it."""
    method, settling = _SETTLING[kind]
    deadline = time.monotonic() + timeout
    while (state := ET.fromstring(one(method, oid, False)).findtext("STATE")) in settling:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{kind} {oid} still in state {state} after {timeout} s")
        time.sleep(0.1)
    if state != "1":  # READY
        raise RuntimeError(f"{kind} {oid} is in state {state}, not READY")


def add_user(url: str, admin_session: str, name: str, password: str, gid: int) -> int:
    return _One(url, admin_session)("one.user.allocate", name, password, "core", [gid])

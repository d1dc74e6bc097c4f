"""The state every handler works on: the store, the clock, the data directory, and the
authenticated caller with oned's authorization rules (ownership, permission bits, ACLs)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import acl
from .errors import INTERNAL, OneError, not_authorized, not_found
from .store import Store

# kind -> (ACL type name, noun used in "Error getting <noun> [id].")
KINDS = {
    "user": ("USER", "user"),
    "group": ("GROUP", "group"),
    "host": ("HOST", "host"),
    "datastore": ("DATASTORE", "datastore"),
    "vnet": ("NET", "virtual network"),
    "image": ("IMAGE", "image"),
    "template": ("TEMPLATE", "virtual machine template"),
    "vm": ("VM", "virtual machine"),
    "secgroup": ("SECGROUP", "security group"),
    "cluster": ("CLUSTER", "cluster"),
}
OPS = {"USE": 0, "MANAGE": 1, "ADMIN": 2}

ONEADMIN_UID = 0
ONEADMIN_GID = 0


@dataclass
class Cloud:
    store: Store
    data_dir: str
    clock: callable = time.time
    on_steps: callable = None  # told the due time whenever a driver step is queued
    request_id: int = 0  # of the call being served, as oned records it in VM history

    @property
    def image_dir(self) -> str:
        return os.path.join(self.data_dir, "datastores")

    def now(self) -> int:
        return int(self.clock())

    def owe(self, db: Store, kind: str, oid: int, due: float) -> None:
        """Record a state change a driver will make at *due* (the hypervisor loop makes it)."""
        db.pending_set(kind, oid, due)
        if self.on_steps:
            self.on_steps(due)


@dataclass
class Call:
    """One authenticated XML-RPC call."""

    cloud: Cloud
    method: str
    user: dict
    gids: set[int] = field(default_factory=set)
    egid: int = -1  # effective group of a login token / server_cipher session, -1 = all
    _rules: list | None = None

    @property
    def db(self) -> Store:
        return self.cloud.store

    @property
    def uid(self) -> int:
        return self.user["ID"]

    @property
    def is_admin(self) -> bool:
        return self.uid == ONEADMIN_UID or ONEADMIN_GID in self.gids

    # -- lookups -----------------------------------------------------------
    def get(self, kind: str, oid: int) -> dict:
        obj = self.db.get(kind, oid)
        if obj is None:
            raise not_found(KINDS[kind][1], oid)
        return obj

    def authorize(self, kind: str, obj: dict, op: str) -> None:
        if not self.can(kind, obj, op):
            raise not_authorized(self.uid, op, KINDS[kind][0], obj["ID"])

    def can(self, kind: str, obj: dict, op: str) -> bool:
        """oned's check: oneadmin group, then the object's permission bits, then ACL rules."""
        if self.is_admin:
            return True
        type_name = KINDS[kind][0]
        oid = obj["ID"]
        # users and groups have no permission bits; owner/group come from the object itself
        if kind == "user":
            ouid, ogid, perms = oid, obj["GID"], None
        elif kind == "group":
            ouid, ogid, perms = -1, oid, None
        elif kind in ("host", "cluster"):
            ouid, ogid, perms = -1, -1, None
        else:
            ouid, ogid, perms = obj["UID"], obj["GID"], obj["PERMS"]
        if perms is not None:
            bit = OPS[op]
            if ouid == self.uid and perms[bit]:
                return True
            if ogid in self.gids and perms[3 + bit]:
                return True
            if perms[6 + bit]:
                return True
        clusters = obj.get("CLUSTERS") or ([obj["CLUSTER_ID"]] if "CLUSTER_ID" in obj else [])
        return self._acl_allows(type_name, oid, ogid, acl.RIGHTS[op], clusters)

    def can_create(self, kind: str) -> bool:
        return self.is_admin or self._acl_allows(KINDS[kind][0], -1, -1, acl.RIGHTS["CREATE"], ())

    def authorize_create(self, kind: str) -> None:
        if not self.can_create(kind):
            raise not_authorized(self.uid, "CREATE", KINDS[kind][0])

    def _acl_allows(self, type_name: str, oid: int, ogid: int, right: int, clusters) -> bool:
        bit = acl.TYPES[type_name]
        if self._rules is None:
            self._rules = self.db.acl_rules()
        for _rid, user, resource, rights, _zone in self._rules:
            if (
                rights & right
                and acl.user_matches(user, self.uid, self.gids)
                and acl.resource_matches(resource, bit, oid, ogid, clusters)
            ):
                return True
        return False

    def check_name_free(self, kind: str, name: str, owner: int | None, noun: str, code: int = INTERNAL):
        """oned refuses a NAME already taken (per owner for owned objects)."""
        for other in self.db.by_name(kind, name):
            if owner is None or other.get("UID") == owner:
                raise OneError(code, f"NAME is already taken by {noun} {other['ID']}.")

    # -- names -------------------------------------------------------------
    def uname(self, uid: int) -> str:
        u = self.db.get("user", uid)
        return u["NAME"] if u else ""

    def gname(self, gid: int) -> str:
        g = self.db.get("group", gid)
        return g["NAME"] if g else ""

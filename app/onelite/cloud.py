"""The state every handler works on: the store, the clock, the data directory, the session cache,
and the authenticated caller with oned's authorization rules (ownership, permission bits, ACLs)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from one import acl

from .auth import Sessions
from .conf import session_expiration_time
from .errors import AUTHORIZATION, INTERNAL, OneError, not_found
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
    "document": ("DOCUMENT", "document"),
}


@dataclass
class Cloud:
    store: Store
    data_dir: str
    clock: Callable[[], float] = time.time
    on_steps: Callable[[float], None] | None = None  # told the due time whenever a driver step is queued
    request_id: int = 0  # of the call being served, as oned records it in VM history
    # the one authenticated session oned caches per user (auth.py)
    sessions: Sessions = field(default_factory=lambda: Sessions(session_expiration_time()))

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
        return self.uid == acl.ONEADMIN or acl.ONEADMIN in self.gids

    # -- lookups -----------------------------------------------------------
    def get(self, kind: str, oid: int) -> dict:
        obj = self.db.get(kind, oid)
        if obj is None:
            raise not_found(KINDS[kind][1], oid)
        return obj

    def authorize(self, kind: str, obj: dict, op: str, lockable: bool = True) -> None:
        self.demand(self.refusal(kind, obj, op, lockable))

    def refusal(self, kind: str, obj: dict | None, op: str = "CREATE", lockable: bool = True) -> str | None:
        """What oned says against *op* on *obj* (None: creating one of *kind*), or None when it may.
        A lock at level L (an object's ``LOCK``) refuses every right from L up (USE 1, MANAGE 2, ADMIN
        4), to oneadmin too, except to the calls oned does not check against locks (*lockable* False:
        info, lock, unlock)."""
        type_name = KINDS[kind][0]
        if obj is None:
            return None if self.can_create(kind) else f"Not authorized to perform CREATE {type_name}"
        locked = lockable and "LOCK" in obj and obj["LOCK"]["LOCKED"] <= acl.RIGHTS[op]
        if locked and self.is_admin:
            return f"{type_name} is locked. [{obj['ID']}]"
        if locked or not self.can(kind, obj, op):
            return f"Not authorized to perform {op} {type_name} [{obj['ID']}]"
        return None

    def demand(self, *refusals: str | None) -> None:
        """Refuse the call with every refusal given, as oned's AuthRequest joins them."""
        found = [r for r in refusals if r]
        if found:
            raise OneError(AUTHORIZATION, f"User [{self.uid}] : {'; '.join(found)}.")

    def can(self, kind: str, obj: dict, op: str) -> bool:
        """oned's check (acl.permits): oneadmin group, then the object's permission bits, then ACL rules."""
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
        clusters = obj.get("CLUSTERS") or ([obj["CLUSTER_ID"]] if "CLUSTER_ID" in obj else [])
        return acl.permits(
            self.uid, self.gids, op, KINDS[kind][0], self._rules_now(), (oid, ouid, ogid, perms, clusters)
        )

    def can_create(self, kind: str) -> bool:
        return acl.permits(self.uid, self.gids, "CREATE", KINDS[kind][0], self._rules_now())

    def authorize_create(self, kind: str) -> None:
        self.demand(self.refusal(kind, None))

    def _rules_now(self) -> list[tuple[int, int, int]]:
        if self._rules is None:
            self._rules = [(user, resource, rights) for _rid, user, resource, rights, _zone in self.db.acl_rules()]
        return self._rules

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

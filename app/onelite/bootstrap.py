"""A fresh cloud, as a fresh oned creates it at first start."""

from __future__ import annotations

import os
import secrets

from one import acl

from .api.users import new_user, vdc_rules
from .auth import sha256
from .store import Store

PERMS_DS = [1, 1, 0, 1, 0, 0, 0, 0, 0]
PERMS_SG = [1, 1, 1, 1, 0, 0, 1, 0, 0]  # SecurityGroupPool: set_permissions(1, 1, 1, 1, 0, 0, 1, 0, 0)


def _datastore(oid, name, dtype, ds_mad, tm_mad, template) -> dict:
    return {
        "ID": oid,
        "NAME": name,
        "UID": 0,
        "GID": 0,
        "PERMS": PERMS_DS,
        "DS_MAD": ds_mad,
        "TM_MAD": tm_mad,
        "BASE_PATH": f"/var/lib/one//datastores/{oid}",
        "TYPE": dtype,
        "STATE": 0,
        "CLUSTERS": [0],
        "TOTAL_MB": 20480,
        "FREE_MB": 20480,
        "USED_MB": 0,
        "IMAGES": [],
        "TEMPLATE": template,
    }


def _write_secret(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)


def bootstrap(store: Store, data_dir: str, safe_dirs: str) -> bool:
    """Create the initial objects and DIR/one_auth, DIR/ec2_auth; False when already done."""
    if store.count("user"):
        return False
    admin_pw = secrets.token_hex(16)
    server_pw = secrets.token_hex(16)
    store.begin()
    admin = new_user(None, 0, "oneadmin", admin_pw, "core", [0])
    server = new_user(None, 1, "serveradmin", "", "server_cipher", [0])
    server["PASSWORD"] = sha256(server_pw)
    for u in (admin, server):
        store.put("user", {**u, "UID": u["ID"]})
    store.put(
        "group",
        {"ID": 0, "NAME": "oneadmin", "UID": 0, "GID": 0, "TEMPLATE": [], "USERS": [0, 1], "ADMINS": []},
    )
    store.put(
        "group",
        {
            "ID": 1,
            "NAME": "users",
            "UID": 0,
            "GID": 1,
            "USERS": [],
            "ADMINS": [],
            "TEMPLATE": [
                (
                    "SUNSTONE",
                    [
                        ("DEFAULT_VIEW", "cloud"),
                        ("GROUP_ADMIN_DEFAULT_VIEW", "groupadmin"),
                        ("GROUP_ADMIN_VIEWS", "groupadmin,cloud"),
                        ("VIEWS", "cloud"),
                    ],
                )
            ],
        },
    )
    store.put("cluster", {"ID": 0, "NAME": "default", "UID": 0, "GID": 0})
    dirs = [("RESTRICTED_DIRS", "/"), ("SAFE_DIRS", safe_dirs)]
    store.put(
        "datastore",
        _datastore(
            0,
            "system",
            1,
            "-",
            "dummy",
            [
                ("ALLOW_ORPHANS", "NO"),
                ("DISK_TYPE", "FILE"),
                ("DS_MIGRATE", "YES"),
                *dirs,
                ("SHARED", "YES"),
                ("TM_MAD", "dummy"),
                ("TYPE", "SYSTEM_DS"),
            ],
        ),
    )
    store.put(
        "datastore",
        _datastore(
            1,
            "default",
            0,
            "dummy",
            "dummy",
            [
                ("ALLOW_ORPHANS", "NO"),
                ("CLONE_TARGET", "SYSTEM"),
                ("DISK_TYPE", "FILE"),
                ("DS_MAD", "dummy"),
                ("LN_TARGET", "NONE"),
                *dirs,
                ("TM_MAD", "dummy"),
                ("TYPE", "IMAGE_DS"),
            ],
        ),
    )
    store.put(
        "datastore",
        _datastore(
            2,
            "files",
            2,
            "fs",
            "ssh",
            [
                ("ALLOW_ORPHANS", "YES"),
                ("CLONE_TARGET", "SYSTEM"),
                ("DS_MAD", "fs"),
                ("LN_TARGET", "SYSTEM"),
                *dirs,
                ("TM_MAD", "ssh"),
                ("TYPE", "FILE_DS"),
            ],
        ),
    )
    store.put(
        "secgroup",
        {
            "ID": 0,
            "NAME": "default",
            "UID": 0,
            "GID": 0,
            "PERMS": PERMS_SG,
            "UPDATED_VMS": [],
            "TEMPLATE": [
                (
                    "DESCRIPTION",
                    "The default security group is added to every network. Use it to add default filter "
                    "rules for your networks. You may remove this security group from any network by updating its "
                    "properties.",
                ),
                ("RULE", [("PROTOCOL", "ALL"), ("RULE_TYPE", "OUTBOUND")]),
                ("RULE", [("PROTOCOL", "ALL"), ("RULE_TYPE", "INBOUND")]),
            ],
        },
    )
    for kind, first in (("user", 2), ("group", 100), ("datastore", 100), ("secgroup", 100), ("cluster", 100)):
        store.seed(kind, first)
    users_gid, everyone = acl.GROUP | 1, acl.ALL
    any_zone = acl.ALL
    create_types = sum(
        acl.TYPES[t] for t in ("VM", "IMAGE", "TEMPLATE", "DOCUMENT", "SECGROUP", "VMGROUP", "BACKUPJOB")
    )
    store.acl_add(users_gid, create_types | acl.ALL, acl.RIGHTS["CREATE"], any_zone)
    store.acl_add(everyone, acl.TYPES["ZONE"] | acl.ALL, acl.RIGHTS["USE"], any_zone)
    store.acl_add(
        everyone,
        acl.TYPES["MARKETPLACE"] | acl.TYPES["MARKETPLACEAPP"] | acl.ALL,
        acl.RIGHTS["USE"],
        any_zone,
    )
    for rule in vdc_rules(1):
        store.acl_add(*rule)
    store.commit()
    _write_secret(os.path.join(data_dir, "one_auth"), f"oneadmin:{admin_pw}")
    _write_secret(os.path.join(data_dir, "ec2_auth"), f"serveradmin:{server_pw}")
    return True

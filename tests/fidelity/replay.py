"""Replay the captured oned scenarios against onelite, fixture by fixture.

Each scenario is the ordered list of the captures' request files (``requests/<name>.xml``),
with waits where the capture waited for the scheduler or the drivers. Sessions are
rewritten for this cloud (its oneadmin password, fresh server_cipher tokens, login tokens);
ids are not rewritten: set 1 starts from a fresh cloud like the capture, and set 2's id
sequences are seeded to the values its capture began with.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.request
import xmlrpc.client
from pathlib import Path

from onelite import cipher

from .shape import response_shape


def post(url: str, body: bytes) -> bytes:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def call(url: str, method: str, *params):
    raw = post(url, xmlrpc.client.dumps(tuple(params), method).encode())
    (result,), _ = xmlrpc.client.loads(raw)
    return result


def wait_vm(url: str, session: str, vmid: int, state: int, lcm: int, timeout: float = 20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok, xml, *_ = call(url, "one.vm.info", session, vmid, False)
        got = (int(re.search(r"<STATE>(\d+)", xml).group(1)), int(re.search(r"<LCM_STATE>(\d+)", xml).group(1)))
        if got == (state, lcm):
            return
        time.sleep(0.01)
    raise AssertionError(f"VM {vmid} never reached {(state, lcm)}, last {got}")


def wait_host(url: str, session: str, hid: int, timeout: float = 20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok, xml, *_ = call(url, "one.host.info", session, hid, False)
        if "<STATE>2</STATE>" in xml:
            return
        time.sleep(0.05)
    raise AssertionError(f"host {hid} never monitored")


class Replayer:
    def __init__(self, url: str, fixtures: Path, admin_session: str, server_pw: str):
        self.url = url
        self.fixtures = fixtures
        self.admin = admin_session
        self.server_pw = server_pw
        self.login_token = None
        self.answers: dict[str, bytes] = {}

    def session(self, name: str, original: str) -> str:
        user, _, secret = original.partition(":")
        if original == "oneadmin:password":
            return self.admin
        if user == "srvadm":
            key = hashlib.sha256(b"srvsecret").hexdigest()
            expiry = int(time.time()) + (-60 if "expired" in name else 600)
            if "badkey" in name:
                key = hashlib.sha256(b"not-the-key").hexdigest()
            return f"srvadm:clouduser:{cipher.encrypt(key, f'srvadm:clouduser:{expiry}')}"
        if user == "serveradmin":
            key = hashlib.sha256(self.server_pw.encode()).hexdigest()
            expiry = int(time.time()) + 600
            return f"serveradmin:clouduser:{cipher.encrypt(key, f'serveradmin:clouduser:{expiry}')}"
        if re.fullmatch(r"[0-9a-f]{64}", secret) and user == "clouduser":
            return f"clouduser:{self.login_token}"
        return original

    def run(self, name: str) -> bytes:
        req = (self.fixtures / "requests" / f"{name}.xml").read_bytes()
        params, method = xmlrpc.client.loads(req)
        if params:
            params = (self.session(name, params[0]),) + params[1:]
        raw = post(self.url, xmlrpc.client.dumps(params, method).encode())
        self.answers[name] = raw
        if method == "one.user.login":
            (result,), _ = xmlrpc.client.loads(raw)
            self.login_token = result[1]
        return raw

    def expected(self, name: str) -> dict:
        return response_shape((self.fixtures / f"{name}.xml").read_bytes())

    def actual(self, name: str) -> dict:
        return response_shape(self.answers[name])


def scenario_set1(r: Replayer):
    """The first capture: an ec2 group, its user, a vnet, an image, three VMs through their lives."""
    admin, user = r.admin, "clouduser:pw"
    for name in (
        "one.system.version", "one.system.config", "one.datastore.update.0", "one.datastore.update.1",
        "one.group.allocate", "one.user.allocate", "error.duplicate_name.one.user.allocate", "one.user.chgrp",
        "one.group.info", "one.acl.addrule", "one.acl.addrule.create", "one.acl.addrule.badhex", "one.acl.info",
        "one.host.allocate",
    ):
        r.run(name)
    wait_host(r.url, admin, 0)
    for name in (
        "one.host.info", "one.vn.allocate", "one.vn.info", "one.vn.chown", "one.vn.chmod",
        "one.image.allocate", "one.image.chown", "one.image.chmod", "one.image.info",
        "one.user.info.serveradmin_builtin", "error.bad_credentials.one.vm.info",
        "error.unknown_user.one.user.info", "error.not_authorized.one.host.delete",
        "one.vm.allocate", "one.vm.info.pending",
    ):
        r.run(name)
    wait_vm(r.url, user, 0, 3, 2)
    r.run("one.vm.info.boot")
    wait_vm(r.url, user, 0, 3, 3)
    for name in (
        "one.vm.info.running", "one.vmpool.info", "one.vmpool.info.clouduser", "one.vmpool.info.anystate",
        "one.vmpool.infoextended", "one.vn.info.clouduser",
        "one.vnpool.info", "one.vnpool.info.clouduser", "one.hostpool.info", "one.imagepool.info",
        "one.datastorepool.info", "one.userpool.info", "one.grouppool.info", "one.user.info",
        "one.user.info.self", "one.user.info.via_builtin_serveradmin", "one.user.allocate.server_cipher",
        "one.user.info.server_cipher_user", "one.user.info.via_server_cipher", "one.vmpool.info.via_server_cipher",
        "error.server_cipher_expired.one.user.info", "error.server_cipher_badkey.one.user.info",
        "one.user.allocate.default_driver", "one.user.info.otheruser",
        "error.missing_vm.one.vm.info", "error.fault_type_mismatch.one.vm.info", "error.fault_unknown_method",
        "error.malformed_template.one.vm.allocate", "error.missing_image.one.vm.allocate",
        "one.vm.action.terminate-hard",
    ):
        r.run(name)
    wait_vm(r.url, user, 0, 6, 0)
    for name in ("one.vm.info.done", "one.vm.action.terminate_on_done_vm", "error.wrong_state.one.vm.action",
                 "error.bad_action.one.vm.action", "one.vm.allocate.2"):
        r.run(name)
    wait_vm(r.url, user, 1, 3, 3)
    r.run("one.vm.action.terminate")
    wait_vm(r.url, user, 1, 6, 0)
    for name in ("one.vmpool.info.mine_anystate", "one.vm.allocate.hold", "one.vm.info.hold",
                 "error.not_authorized.one.vm.info", "one.vm.action.release"):
        r.run(name)
    wait_vm(r.url, user, 2, 3, 3)
    r.run("one.vm.action.poweroff")
    wait_vm(r.url, user, 2, 8, 0)
    r.run("one.vm.info.poweroff")
    r.run("one.vm.action.resume")
    wait_vm(r.url, user, 2, 3, 3)
    call(r.url, "one.vm.action", user, "terminate", 2)
    wait_vm(r.url, user, 2, 6, 0)
    r.run("one.vmpool.info.after_terminate")
    r.run("one.vn.info.ready")
    r.run("one.user.login")
    r.run("one.user.info.via_login_token")

"""Replay the captured oned scenarios against onelite, fixture by fixture.

Each scenario is the ordered list of the captures' request files (``requests/<name>.xml``),
with waits where the capture waited for the scheduler or the drivers. Sessions are
rewritten for this cloud (its oneadmin password, fresh server_cipher tokens), and so are the
login tokens oned made: each stands for the one onelite made in the same ``one.user.login``, in
sessions and parameters, and ``as_captured`` writes onelite's back for the comparison. Ids are
not rewritten: set 1 starts from a fresh cloud like the capture, and set 2's id sequences are
seeded to the values its capture began with.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.request
import xmlrpc.client
from pathlib import Path

from one import cipher

# a user's LOGIN_TOKEN records (escaped, inside the answer's string), and one of them: each begins
# with its TOKEN, so sorting the records sorts them by token
_LOGIN_TOKEN = re.compile(r"&lt;LOGIN_TOKEN&gt;.*?&lt;/LOGIN_TOKEN&gt;")
_LOGIN_TOKENS = re.compile(rf"(?:{_LOGIN_TOKEN.pattern})+")


def post(url: str, body: bytes) -> bytes:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def call(url: str, method: str, *params):
    raw = post(url, xmlrpc.client.dumps(tuple(params), method).encode())
    (result,), _ = xmlrpc.client.loads(raw)
    return result


def vm_state(xml: str) -> tuple[int, int]:
    return int(re.search(r"<STATE>(\d+)", xml).group(1)), int(re.search(r"<LCM_STATE>(\d+)", xml).group(1))


def wait_vm(url: str, session: str, vmid: int, state: int, lcm: int, timeout: float = 20, seen=None):
    """Poll until the VM is in (state, lcm); every state polled is appended to *seen*."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok, xml, *_ = call(url, "one.vm.info", session, vmid, False)
        assert ok, xml
        got = vm_state(xml)
        if seen is not None:
            seen.append(got)
        if got == (state, lcm):
            return
        time.sleep(0.01)
    raise AssertionError(f"VM {vmid} never reached {(state, lcm)}, last {got}")


def wait_vnet(url: str, session: str, vnid: int, timeout: float = 20):
    """Until the VN driver has created the vnet (READY): oned leases nothing before, and the
    capture's VMs got their leases, so it was done by then."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok, xml, *_ = call(url, "one.vn.info", session, vnid, False)
        if "<STATE><![CDATA[1]]></STATE>" in xml or "<STATE>1</STATE>" in xml:
            return
        time.sleep(0.02)
    raise AssertionError(f"vnet {vnid} never READY")


def wait_host(url: str, session: str, hid: int, timeout: float = 20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok, xml, *_ = call(url, "one.host.info", session, hid, False)
        if "<STATE>2</STATE>" in xml:
            return
        time.sleep(0.05)
    raise AssertionError(f"host {hid} never monitored")


class Replayer:
    def __init__(self, url: str, fixtures: Path, admin_session: str, server_pw: str, files: Path):
        self.url = url
        self.fixtures = fixtures
        self.files = files  # where the image files the capture's PATHs named are made
        self.admin = admin_session
        self.server_pw = server_pw
        self.tokens: dict[str, str] = {}  # login token oned made -> the one onelite made in its place
        self.answers: dict[str, bytes] = {}
        # per VM action (set2/sequences.json's names): the states seen from its answer until it settled
        self.sequences: dict[str, list[tuple[int, int]]] = {}
        self._action: str | None = None

    def do(self, method: str, *params, session: str | None = None):
        """A call the capture made without recording its answer; it must succeed (as oneadmin by default)."""
        ok, value, *rest = call(self.url, method, session or self.admin, *params)
        assert ok, f"{method}: {value}"
        return value

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
        if secret in self.tokens:
            return f"{user}:{self.tokens[secret]}"
        return original

    def run(self, name: str) -> bytes:
        req = (self.fixtures / "requests" / f"{name}.xml").read_bytes()
        params, method = xmlrpc.client.loads(req)
        if params:
            rest = (self.tokens.get(p, p) if isinstance(p, str) else p for p in params[1:])  # a token to revoke
            params = (self.session(name, params[0]),) + tuple(self.local_paths(p) for p in rest)
        raw = post(self.url, xmlrpc.client.dumps(params, method).encode())
        self.answers[name] = raw
        vm_actions = (
            "one.vm.action",
            "one.vm.attach",
            "one.vm.detach",
            "one.vm.disksaveas",
            "one.vm.recover",
            "one.vm.disksnapshotcreate",
        )
        if method in vm_actions and name.startswith("one.vm."):
            self._action = name.removeprefix("one.vm.action.").removeprefix("one.vm.").replace(".", "_")
            self.sequences[self._action] = []
        elif name.startswith("one.vm.info.after_") and name.endswith(".immediate"):
            (result,), _ = xmlrpc.client.loads(raw)
            self.seen().append(vm_state(result[1]))
        if method == "one.user.login":
            (made,), _ = xmlrpc.client.loads(raw)
            (captured,), _ = xmlrpc.client.loads(self.expected(name))
            if made[0] and captured[0]:
                self.tokens[captured[1]] = made[1]
        return raw

    def as_captured(self, name: str) -> bytes:
        """onelite's answer with the login tokens it made written as the capture's, and a user's
        LOGIN_TOKEN records put in the order of those (oned lists them by token string)."""
        text = self.answers[name].decode()
        for captured, made in self.tokens.items():
            text = text.replace(made, captured)
        return _LOGIN_TOKENS.sub(lambda run: "".join(sorted(_LOGIN_TOKEN.findall(run.group()))), text).encode()

    def seen(self) -> list[tuple[int, int]]:
        """Where the states of the last VM action go."""
        return self.sequences[self._action] if self._action else []

    def local_paths(self, param):
        """An image PATH of the capture machine, pointed at a 1 MiB file made here instead."""
        if not isinstance(param, str):
            return param

        def local(m):
            path = self.files / Path(m.group(1)).name
            if not path.exists():
                self.files.mkdir(parents=True, exist_ok=True)
                path.write_bytes(bytes(1 << 20))
            return f'PATH="{path}"'

        return re.sub(r'PATH="(/var/tmp/[^"]+)"', local, param)

    def expected(self, name: str) -> bytes:
        return (self.fixtures / f"{name}.xml").read_bytes()


def scenario_set1(r: Replayer):
    """The first capture: an ec2 group, its user, a vnet, an image, three VMs through their lives."""
    admin, user = r.admin, "clouduser:pw"
    for name in (
        "one.system.version",
        "one.system.config",
        "one.datastore.update.0",
        "one.datastore.update.1",
        "one.group.allocate",
        "one.user.allocate",
        "error.duplicate_name.one.user.allocate",
        "one.user.chgrp",
        "one.group.info",
        "one.acl.addrule",
        "one.acl.addrule.create",
        "one.acl.addrule.badhex",
        "one.acl.info",
        "one.host.allocate",
    ):
        r.run(name)
    wait_host(r.url, admin, 0)
    for name in (
        "one.host.info",
        "one.vn.allocate",
        "one.vn.chown",
        "one.vn.chmod",
        "one.vn.info",  # still LOCK_CREATE, already chowned and chmodded
        "one.image.allocate",
        "one.image.chown",
        "one.image.chmod",
        "wait_image",  # oned's dummy driver had made the image by then (READY in the capture)
        "one.image.info",
        "one.user.info.serveradmin_builtin",
        "error.bad_credentials.one.vm.info",
        "error.unknown_user.one.user.info",
        "error.not_authorized.one.host.delete",
    ):
        if name == "wait_image":
            wait_image(r.url, admin, 0)
        else:
            r.run(name)
    wait_vnet(r.url, admin, 0)
    call(r.url, "one.host.status", admin, 0, 1)  # the scheduler must not place vm1 before "pending" is taken
    r.run("one.vm.allocate")
    r.run("one.vm.info.pending")
    call(r.url, "one.host.status", admin, 0, 0)
    wait_vm(r.url, user, 0, 3, 2)
    r.run("one.vm.info.boot")
    wait_vm(r.url, user, 0, 3, 3)
    for name in (
        "one.vm.info.running",
        "one.vmpool.info",
        "one.vmpool.info.clouduser",
        "one.vmpool.info.anystate",
        "one.vmpool.infoextended",
        "one.vn.info.clouduser",
        "one.vnpool.info",
        "one.vnpool.info.clouduser",
        "one.hostpool.info",
        "one.imagepool.info",
        "one.datastorepool.info",
        "one.userpool.info",
        "one.grouppool.info",
        "one.user.info",
        "one.user.info.self",
        "one.user.info.via_builtin_serveradmin",
        "one.user.allocate.server_cipher",
    ):
        r.run(name)
    call(r.url, "one.user.chgrp", admin, 3, 0)  # not recorded: srvadm's record shows it in group oneadmin
    for name in (
        "one.user.info.server_cipher_user",
        "one.user.info.via_server_cipher",
        "one.vmpool.info.via_server_cipher",
        "error.server_cipher_expired.one.user.info",
        "error.server_cipher_badkey.one.user.info",
        "one.user.allocate.default_driver",
        "one.user.info.otheruser",
        "error.missing_vm.one.vm.info",
        "error.fault_type_mismatch.one.vm.info",
        "error.fault_unknown_method",
        "error.malformed_template.one.vm.allocate",
        "error.missing_image.one.vm.allocate",
        "one.vm.action.terminate-hard",
    ):
        r.run(name)
    wait_vm(r.url, user, 0, 6, 0)
    for name in (
        "one.vm.info.done",
        "one.vm.action.terminate_on_done_vm",
        "error.wrong_state.one.vm.action",
        "error.bad_action.one.vm.action",
        "one.vm.allocate.2",
    ):
        r.run(name)
    wait_vm(r.url, user, 1, 3, 3)
    r.run("one.vm.action.terminate")
    wait_vm(r.url, user, 1, 6, 0)
    for name in (
        "one.vmpool.info.mine_anystate",
        "one.vm.allocate.hold",
        "one.vm.info.hold",
        "error.not_authorized.one.vm.info",
        "one.vm.action.release",
    ):
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


PAUSE, GO = "pause the scheduler", "let the scheduler go"

# Set 2 was captured on a cloud that already held objects: its id sequences start here.
SET2_SEQUENCES = {"user": 13, "host": 3, "vnet": 3, "image": 3, "vm": 5005}


def scenario_set2(r: Replayer):
    """The second capture: every VM action, templates, images, vnets, security groups, users.

    Steps are fixture names to replay, ``(vmid, STATE, LCM_STATE)`` to wait for, or calls the
    capture made without recording them (``do``)."""
    admin, u1 = r.admin, "u1-q673362:pw1"

    do = r.do

    def steps(*items):
        for item in items:
            if isinstance(item, tuple):
                wait_vm(r.url, u1, *item, seen=r.seen())
            elif item in (PAUSE, GO):  # hold the scheduler back while an "immediate" answer is taken
                do("one.host.status", 3, 1 if item == PAUSE else 0)
            else:
                r.run(item)

    # the groups, ACL rules (ids 6-23, group 101 deleted) and templates earlier captures left in that
    # cloud (the names are the ones the capture's records show)
    create = ("0x2d400000000", "0x8")
    earlier = ((100, "earlier-100", 0), (101, "earlier-101", None), (102, "ec2672543", 1), (103, "ec2-2771002", 2))
    for gid, name, host in earlier:
        do("one.group.allocate", name)
        if host is None:
            do("one.group.delete", gid)
            continue
        rules = [(f"0x2{gid:08x}", f"0x21{host:08x}", "0x1"), (f"0x2{gid:08x}", *create)]
        for rule in rules if gid != 103 else rules[::-1]:
            do("one.acl.addrule", *rule)
    for name, memory, net, gid in (("m1.small-672543", 128, 1, 102), ("t2771002", 64, 2, 103)):
        tid = do(
            "one.template.allocate",
            f'NAME="{name}"\nCPU="0.5"\nMEMORY="{memory}"\nEC2_INSTANCE_TYPE="m1.small"\nNIC=[NETWORK_ID="{net}"]\n',
        )
        do("one.template.chown", tid, -1, gid)
        do("one.template.chmod", tid, 1, 1, 0, 1, 0, 0, 0, 0, 0)

    # fmt: off
    steps("one.group.allocate")
    do("one.group.allocate", "gempty-q673362")
    steps("one.group.delete")
    steps("one.user.allocate.with_group")
    do("one.user.allocate", "u2-q673362", "pw2", "core", [104])
    do("one.user.allocate", "u3-q673362", "pw3", "core", [104])
    do("one.host.allocate", "h-q673362", "dummy", "dummy", -1)
    wait_host(r.url, admin, 3)
    steps("one.acl.addrule.host_use")
    do("one.acl.addrule", "0x200000068", "0x2d400000000", "0x8")
    steps("one.acl.addrule.throwaway", "one.acl.delrule", "error.one.acl.delrule.missing", "one.acl.info",
          "one.host.status.disable", "one.host.info.disabled", "error.one.host.status.bad",
          "error.one.host.status.not_authorized", "one.host.status.enable", "one.host.info.enabled")

    vnet = 'NAME="{}"\nBRIDGE="br-3362"\nVN_MAD="dummy"\nAR=[TYPE="IP4", IP="10.77.0.10", SIZE="20"]\n'
    do("one.vn.allocate", vnet.format("n-q673362"), -1)
    do("one.vn.chown", 3, -1, 104)
    do("one.vn.chmod", 3, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    do("one.vn.allocate", vnet.format("dead-q673362"), -1)
    wait_vnet(r.url, admin, 3)

    steps("one.image.allocate.datablock_size")
    wait_image(r.url, admin, 3)  # named "locked", but oned's dummy driver had made it already (READY)
    steps("one.image.info.locked")
    do("one.image.chown", 3, -1, 104)
    do("one.image.chmod", 3, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    steps("one.image.info.datablock_ready")
    for name in ("att-q673362", "pers-q673362"):
        image = do("one.image.allocate", f'NAME="{name}"\nTYPE="DATABLOCK"\nSIZE="8"\n', 1, False)
        do("one.image.chown", image, -1, 104)
        do("one.image.chmod", image, 1, 1, 0, 1, 0, 0, 0, 0, 0)
        wait_image(r.url, admin, image)  # READY when the capture used them
    steps("one.image.persistent.true", "one.image.info.persistent", "one.image.persistent.false",
          "one.image.enable.false", "one.image.info.disabled", "one.image.enable.true",
          "error.one.image.allocate.no_datastore")

    steps("one.secgroup.allocate", "one.secgroup.info", "one.secgroup.update.replace", "one.secgroup.update.merge",
          "one.secgroup.info.after_update", "one.secgroup.chown", "one.secgroup.chmod")
    do("one.secgroup.allocate", 'NAME="sg2-q673362"\n')
    steps("one.secgroup.delete", "error.one.secgroup.info.deleted", "error.one.secgroup.allocate.bad_protocol",
          "one.secgrouppool.info", "one.secgrouppool.info.groupuser", "error.one.secgroup.delete.not_authorized")

    steps("one.template.allocate", "one.template.info", "one.template.info.extended",
          "error.one.template.allocate.duplicate_name", "error.one.template.instantiate.token_no_onegate",
          "error.one.template.update.parse", "one.template.update.replace", "one.template.update.merge",
          "one.template.info.after_merge")
    # after after_merge the capture put the allocate-time CONTEXT back (not recorded); the clone and pool show it
    do("one.template.update", 2, 'CONTEXT=[NETWORK="YES", SSH_PUBLIC_KEY="ssh-rsa AAAA f2", TOKEN="YES"]', 1)
    # the pools show template 2 renamed and given to u2, and its clone 3 as tc2- (a rename not recorded)
    steps("one.template.chmod", "one.template.clone", "one.template.rename",
          "error.one.template.chown.not_authorized", "one.template.chown")
    do("one.template.rename", 3, "tc2-q673362", session=u1)
    steps("one.templatepool.info", "one.templatepool.info.groupuser", "one.template.rename.same_name_other_owner",
          "error.one.template.chmod.not_authorized", "error.one.template.chown.no_user",
          "error.one.template.delete.not_authorized", "error.one.template.clone.missing",
          "error.one.template.info.missing", "error.one.template.instantiate.not_authorized",
          "one.template.delete", "error.one.template.delete.missing")
    do("one.template.chown", 2, 13, -1)  # back to u1, who instantiates it below

    do("one.host.status", 3, 1)  # keep the scheduler off vmA until it is on hold, as the capture's 5 s did
    steps("one.template.update.merge_context_no_token", "one.template.instantiate.extra", "one.vm.action.hold",
          "one.vm.info.after_hold.immediate", (5005, 2, 0), "one.vm.info.after_hold.settled",
          "one.template.instantiate.hold", "one.vm.info.instantiated_hold",
          "error.one.template.instantiate.missing_image")
    do("one.host.status", 3, 0)
    steps(PAUSE, "one.vm.action.release", "one.vm.info.after_release.immediate", GO,
          (5005, 3, 3), "one.vm.info.after_release.settled", "error.one.vm.action.hold_running",
          "error.one.vm.action.release_running", "one.vm.action.stop", "one.vm.info.after_stop.immediate",
          (5005, 4, 0), "one.vm.info.after_stop.settled", PAUSE, "one.vm.action.resume_from_stopped",
          "one.vm.info.after_resume_from_stopped.immediate", GO,
          (5005, 3, 3), "one.vm.info.after_resume_from_stopped.settled", "one.vm.action.suspend",
          "one.vm.info.after_suspend.immediate",
          (5005, 5, 0), "one.vm.info.after_suspend.settled", "one.vm.action.resume_from_suspended",
          "one.vm.info.after_resume_from_suspended.immediate",
          (5005, 3, 3), "one.vm.info.after_resume_from_suspended.settled", "one.vm.action.undeploy",
          "one.vm.info.after_undeploy.immediate",
          (5005, 9, 0), "one.vm.info.after_undeploy.settled", PAUSE, "one.vm.action.resume_from_undeployed",
          "one.vm.info.after_resume_from_undeployed.immediate", GO,
          (5005, 3, 3), "one.vm.info.after_resume_from_undeployed.settled", "one.vm.action.reboot",
          "one.vm.info.after_reboot.immediate", "one.vm.info.after_reboot.settled", "one.vm.action.reboot-hard",
          "one.vm.info.after_reboot-hard.immediate", "one.vm.info.after_reboot-hard.settled",
          "one.vm.action.poweroff-hard", "one.vm.info.after_poweroff-hard.immediate",
          (5005, 8, 0), "one.vm.info.after_poweroff-hard.settled", "error.one.vm.action.suspend_poweroff",
          "one.vm.action.resume_from_poweroff", "one.vm.info.after_resume_from_poweroff.immediate",
          (5005, 3, 3), "one.vm.info.after_resume_from_poweroff.settled")

    steps(PAUSE, "one.vm.action.release_vmB", "one.vm.info.after_release_vmB.immediate", GO,
          (5006, 3, 3), "one.vm.info.after_release_vmB.settled", "one.vm.update.replace",
          "one.vm.info.after_update_replace", "one.vm.update.merge", "one.vm.info.after_update_merge",
          "error.one.vm.update.parse", "error.one.vm.rename.empty", "error.one.vm.chown.not_authorized",
          "error.one.vm.chown.no_group", "one.vm.chown", "one.vm.info.after_chown")
    do("one.vm.chown", 5006, 13, -1)  # back to u1, who renames, chmods and hot-plugs it below
    steps("one.vm.rename", "one.vm.chmod", "error.one.vm.chmod.admin_bit")
    steps("one.vm.attach", "one.vm.info.after_attach.immediate",
          (5006, 3, 3), "one.vm.info.after_attach.settled", "one.vm.detach", "one.vm.info.after_detach.immediate",
          (5006, 3, 3), "one.vm.info.after_detach.settled", "error.one.vm.detach.missing_disk",
          "error.one.vm.attach.missing_image", "one.vm.disksaveas", "one.vm.info.after_disksaveas.immediate",
          (5006, 3, 3), "one.vm.info.after_disksaveas.settled", "error.one.vm.disksaveas.missing_disk")
    time.sleep(0.1)
    steps("one.image.clone", "one.image.info.clone_immediate", "error.one.image.clone.duplicate_name")
    time.sleep(0.1)
    steps("one.image.rename", "error.one.image.rename.duplicate", "one.image.delete", "one.image.info.after_delete",
          "one.vn.hold", "one.vn.info.with_hold", "error.one.vn.hold.already", "error.one.vn.hold.out_of_range",
          "one.vn.release", "one.vn.update.merge", "one.vn.rename", "one.vn.add_ar", "error.one.vn.add_ar.bad_type",
          "one.vn.delete", "one.image.info.saveas", "one.image.update.merge_ec2_ami", "one.image.info.after_update",
          "error.one.image.delete.in_use", "error.one.image.enable.in_use", "error.one.image.persistent.in_use",
          "one.vn.info.after_changes", "error.one.vn.delete.in_use",
          "one.vmpool.info.groupuser.f-1", "one.vmpool.info.groupuser.f-3", "one.vmpool.info.groupuser.f-4",
          "one.vmpool.info.groupuser.by_uid", "one.vmpool.info.groupuser.range", "one.vmpool.info.groupuser.range2",
          "one.vmpool.info.groupuser.state3", "one.vmpool.info.groupuser.state8", "one.vmpool.info.user2.f-3",
          "one.vmpool.info.user2.f-4", "one.vmpool.infoextended.groupuser", "one.vmpool.infoextended.empty_filter",
          "error.one.vmpool.info.bad_state", "error.one.vmpool.info.json_filter_sqlite",
          "error.one.vmpool.infoextended.json_filter_sqlite",
          "error.one.vm.recover.bad_op", "error.one.vm.recover.not_authorized", "one.vm.recover.delete",
          "one.vm.info.after_recover_delete.immediate",
          (5006, 6, 0), "one.vm.info.after_recover_delete.settled", "one.vm.action.terminate",
          "one.vm.info.after_terminate.immediate",
          (5005, 6, 0), "one.vm.info.after_terminate.settled", "one.vm.action.terminate_done",
          "one.vmpool.info.groupuser.anystate", "one.vmpool.info.groupuser.state6")

    steps("one.user.passwd", "one.user.info.after_passwd", "error.one.user.info.old_password",
          "error.one.user.passwd.empty", "one.user.update.merge", "one.user.info.after_update",
          "error.one.user.update.self_minus1", "one.user.chauth.public", "one.user.info.after_chauth",
          "one.user.chauth.unknown_driver_accepted", "one.user.delete", "error.one.user.delete.missing",
          "error.one.user.delete.oneadmin", "error.one.group.delete.has_users",
          "error.one.group.delete.oneadmin")
    # fmt: on


def wait_image(url: str, session: str, iid: int, timeout: float = 20):
    """Until the datastore driver has copied the image (READY), as the capture waited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        ok, xml, *_ = call(url, "one.image.info", session, iid, False)
        if re.search(r"<STATE>1</STATE>", xml):
            return
        time.sleep(0.02)
    raise AssertionError(f"image {iid} never READY")


SET3_SETTLE = 2  # seconds the capture waited before one.secgroup.info.after_commit.settled
SET3_REVOKED_LATER = 0.5  # seconds before the revoked token was tried again


def scenario_set3(r: Replayer):
    """The third capture, as far as issue #12 needs it: the cloud of its INDEX header, then the
    answers of the user template, security groups, template names and the VM that uses them."""
    admin, user = r.admin, "clouduser:pw"

    do = r.do

    def steps(*items):
        for item in items:
            r.run(item)

    for ds in (0, 1):  # configure-dummy.sh, as set 1 recorded it
        do("one.datastore.update", ds, 'TM_MAD="dummy"\nDS_MAD="dummy"\n', 1)
    steps("one.group.allocate", "one.acl.addrule.host_use", "one.acl.addrule.create", "one.acl.info",
          "one.user.allocate.clouduser", "one.user.allocate.otheruser")  # fmt: skip
    do("one.host.allocate", "localhost", "dummy", "dummy", -1)
    wait_host(r.url, admin, 0)
    steps("one.vn.allocate.ec2net", "one.vn.chown.ec2net", "one.vn.chmod.ec2net")
    wait_vnet(r.url, admin, 0)
    steps("one.vn.info.ec2net", "one.vn.allocate.public", "one.vn.chmod.public")
    wait_vnet(r.url, admin, 1)
    steps("one.image.allocate.os_clouduser")
    wait_image(r.url, admin, 0)
    steps("one.image.info.os_ready", "one.template.allocate.m1_small", "one.template.chown.m1_small",
          "one.template.chmod.m1_small")  # fmt: skip

    # login tokens: made through econe's kind of session and the user's own, used, revoked
    steps("one.user.login.server_cipher.a", "one.user.login.server_cipher.b", "one.user.info.after_logins",
          "one.vmpool.info.via_login_token", "one.vmpool.info.via_login_token_b", "one.user.login.revoke",
          "one.user.info.after_revoke", "error.one.vmpool.info.after_revoke")  # fmt: skip
    time.sleep(SET3_REVOKED_LATER)
    steps("error.one.vmpool.info.after_revoke.later", "one.vmpool.info.token_b_after_revoke_a",
          "error.one.user.login.egid_minus2", "error.one.user.login.egid_missing",
          "error.one.user.login.egid_not_member", "one.user.login.egid_member", "one.user.login.self_password",
          "one.user.login.set_token", "one.user.info.self_via_set_token")  # fmt: skip

    # the user template as a key store (its records show the tokens above)
    steps("one.user.update.keypair1_merge", "one.user.info.after_keypair1",
          "one.user.update.keypair2_merge", "one.user.info.after_keypair2",
          "one.user.update.keypair_both_merge", "one.user.info.after_keypair_both",
          "one.user.update.replace", "one.user.info.after_replace")  # fmt: skip

    # names unique per owner
    steps("one.template.allocate.claim1", "error.one.template.allocate.claim_dup",
          "one.template.allocate.claim_otheruser")  # fmt: skip

    # security groups: rule checks, names, and a VM using one through its update and commit
    steps("one.secgroup.allocate", "error.one.secgroup.allocate.duplicate_name",
          "error.one.secgroup.allocate.any_explicit", "error.one.secgroup.allocate.ip_no_size",
          "one.secgroup.allocate.size_max", "error.one.secgroup.allocate.bad_ip",
          "error.one.secgroup.allocate.bad_ip_cidr", "error.one.secgroup.allocate.bad_range_dash",
          "error.one.secgroup.allocate.bad_range_text", "error.one.secgroup.allocate.bad_rule_type",
          "one.secgroup.info")  # fmt: skip
    do("one.host.status", 0, 1)  # hold the scheduler back while the "immediate" answer is taken
    steps("one.template.instantiate.ec2", "one.vm.info.after_instantiate.immediate")
    do("one.host.status", 0, 0)
    wait_vm(r.url, user, 0, 3, 3)
    steps("one.vm.info.after_instantiate.settled", "one.vm.info.running", "one.vn.info.ec2net.with_vm",
          "one.secgroup.update.replace_rule_removed", "one.secgroup.info.after_update",
          "one.vm.info.after_sg_update", "one.secgroup.commit", "one.secgroup.info.after_commit.immediate")  # fmt: skip
    time.sleep(SET3_SETTLE)
    steps("one.secgroup.info.after_commit.settled", "one.vm.info.after_sg_commit",
          "one.secgroup.commit.recovery_true", "error.one.secgroup.commit.missing")  # fmt: skip
    steps("one.vm.action.terminate")
    wait_vm(r.url, user, 0, 6, 0)
    steps("one.secgroup.info.after_terminate", "one.vm.allocate.dup1", "one.vm.allocate.dup2")

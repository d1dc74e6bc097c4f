"""onelite answers set 3 of the captured oned 6.10.5 scenarios (tests/fixtures/oned-6.10.5/set3) as oned
did, for what issues #12 and #13 build on: login tokens (several per user, made through a
server_cipher session or the user's own, revoked, scoped to a group, chosen by the user), the user
template keeps one attribute per name (key pairs live there), security groups (rule checks and their
messages, names unique per owner, update and ``one.secgroup.commit``, the VM lists of a group),
template names unique per owner, and a VM whose NIC names security groups 0 and 100 (its
``SECURITY_GROUP_RULE`` copies).

The replay (fidelity/replay.py, ``scenario_set3``) builds the cloud of the capture's INDEX header
and replays the answers above in the capture's order; it does not replay the answers LEFT_OUT names,
each for its reason (onelite lacks the methods, or another part of the issue covers them); the volume
steps of issue #14 are replayed on a VM of their own (``test_set3_disk_answer``, below). onelite's
answers are compared as the replay writes them back in the capture's login tokens
(``Replayer.as_captured``), by fidelity/compare.py's ``differences``, with set 1's rule for the
dummy datastore's made-up image sizes (set 3's image 0 is a file in a dummy datastore too).
"""

from __future__ import annotations

import json
import re
import xmlrpc.client

import pytest
from pyone import bindings

from .conftest import FIXTURES, start_onelite
from .fidelity.compare import FILE_IMAGE, differences
from .fidelity.replay import Replayer, call, scenario_set3, wait_host, wait_image, wait_vm, wait_vnet

SET3 = sorted(p.stem for p in (FIXTURES / "set3").glob("*.xml"))

NIC_AND_RESERVATIONS = r"reserv|^one\.vn\.(hold|release)|^one\.vn\.info\.public|attachnic|detachnic"
# answers not replayed: (pattern over the answer names, why)
LEFT_OUT = [
    (r"^one\.document", "documents: onelite has none yet"),
    (r"ec2net\.after_terminate", "ec2net then held the lease of a reservation made from it (vnet 4), not replayed"),
    (NIC_AND_RESERVATIONS, "reservations, held leases, NIC hot-plug: tests/test_onelite_addresses.py replays them"),
    (
        r"^(error\.)?one\.image\.|datablock|snapshot|saveas|one\.vm\.(attach|detach)\b|after_(attach|detach)\.",
        "persistent volumes and image snapshots: replayed on a VM of their own (test_set3_disk_answer)",
    ),  # fmt: skip
    (r"resize|updateconf", "one.vm.resize/updateconf: part E of issue #12"),
    (
        r"poweroff|resume|after_terminate\.|vmpool\.info\.clouduser\.dup",
        "the VM's life after the hot-plug steps above: its records hold their history",
    ),  # fmt: skip
]
REPLAYED_TOO = {
    "one.image.allocate.os_clouduser",
    "one.image.info.os_ready",
}  # the image the template's DISK uses is set up as captured


def left_out(name: str) -> str | None:
    if name in REPLAYED_TOO:
        return None
    return next((why for pattern, why in LEFT_OUT if re.search(pattern, name)), None)


REPLAYED = [name for name in SET3 if left_out(name) is None]


@pytest.fixture(scope="module")
def set3(tmp_path_factory):
    work = tmp_path_factory.mktemp("set3")
    server = start_onelite(work / "one", interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES / "set3", server.admin_session, server.server_auth[1], work / "files")
        scenario_set3(r)
        yield r
    finally:
        server.stop()


def test_the_replay_covers_what_is_not_left_out(set3):
    replayed = set(set3.answers)
    assert not replayed - set(REPLAYED), "replayed but left out"
    assert not set(REPLAYED) - replayed, "neither replayed nor left out"


@pytest.mark.parametrize("name", REPLAYED)
def test_set3_answer(set3, name):
    problems = differences(set3.expected(name), set3.as_captured(name), FILE_IMAGE)
    assert not problems, "\n".join(problems)


LOGINS = [name for name in REPLAYED if re.search(r"login|token|revoke", name)]


def test_every_login_capture_is_replayed():
    assert len(LOGINS) == 17, LOGINS


def test_onelite_makes_tokens_as_oned_does(set3):
    """64 hex characters where oned made one, the user's own string where it chose one."""
    assert len(set3.tokens) == 5  # a, b, egid_member, self_password, set_token
    for captured, made in set3.tokens.items():
        assert re.fullmatch(r"[0-9a-f]{64}", made) if re.fullmatch(r"[0-9a-f]{64}", captured) else made == captured


@pytest.mark.parametrize("name", [name for name in REPLAYED if name.startswith("one.user.info")])
def test_a_users_tokens_are_listed_by_token_as_oned_lists_them(set3, name):
    tokens = re.findall(r"&lt;TOKEN&gt;(.*?)&lt;/TOKEN&gt;", set3.answers[name].decode())
    assert tokens == sorted(tokens)


@pytest.mark.parametrize("name", REPLAYED)
def test_set3_pyone_parses(set3, name):
    """pyone's generated bindings accept every record onelite answered with (SECURITY_GROUP_RULE copies too)."""
    (result,), _ = xmlrpc.client.loads(set3.answers[name])
    ok, value = result[0], result[1]
    if ok and isinstance(value, str) and value.startswith("<"):
        assert bindings.parseString(value.encode()) is not None


# The rest of oned's rule checks (SecurityGroup::is_valid in OpenNebula's release-6.10.5 source), which
# set 3 did not capture: each RULE refused with oned's words, code 8192, and no group made.
RULE_REFUSALS = [
    ('PROTOCOL="ALL",RULE_TYPE="inbound",RANGE="22"', "RANGE is supported only for TCP and UDP protocols."),
    ('PROTOCOL="TCP",RULE_TYPE="inbound",RANGE="65536"', "RANGE out of bounds 0-65536."),
    ('PROTOCOL="TCP",RULE_TYPE="inbound",RANGE="90:80"', "RANGE BEGIN value is greater than RANGE END value"),
    (
        'PROTOCOL="TCP",RULE_TYPE="inbound",RANGE="1,2,3,4,5,6,7,8,9:10,11:12,13:14,15:16"',
        "Not more than 15 ports can be specified in a RULE",
    ),  # fmt: skip
    ('PROTOCOL="TCP",RULE_TYPE="inbound",ICMP_TYPE="8"', "ICMP_TYPE is supported only for ICMP protocol."),
    ('PROTOCOL="ICMP",RULE_TYPE="inbound",ICMP_TYPE="-1"', "Wrong ICMP_TYPE, it must be integer"),
    ('PROTOCOL="TCP",RULE_TYPE="inbound",IP="10.0.0.1",SIZE="-1"', "Wrong or empty SIZE."),
    ('PROTOCOL="TCP",RULE_TYPE="inbound",NETWORK_ID="x"', "Wrong NETWORK_ID."),
]


@pytest.mark.parametrize(("rule", "message"), RULE_REFUSALS)
def test_secgroup_rule_refused_as_oned_does(set3, rule, message):
    answer = call(set3.url, "one.secgroup.allocate", set3.admin, f'NAME="refused"\nRULE=[{rule}]\n')
    assert answer == [False, f"[one.secgroup.allocate] {message}", 8192, -1, -1]


def test_secgroup_rules_oned_accepts_and_dedups(set3):
    """IPv6 addresses, port lists, a signed NETWORK_ID; a rule given twice is kept once."""
    rules = [
        'PROTOCOL="TCP",RULE_TYPE="INBOUND",RANGE="22,80:81",IP="2001:db8::",SIZE="256"',
        'PROTOCOL="UDP",RULE_TYPE="outbound",NETWORK_ID="0"',
        'PROTOCOL="UDP",RULE_TYPE="outbound",NETWORK_ID="0"',
    ]
    text = 'NAME="accepted"\n' + "".join(f"RULE=[{r}]\n" for r in rules)
    ok, sgid, *_ = call(set3.url, "one.secgroup.allocate", set3.admin, text)
    assert ok, sgid
    ok, xml, *_ = call(set3.url, "one.secgroup.info", set3.admin, sgid, False)
    assert xml.count("<RULE>") == 2 and "<IP><![CDATA[2001:db8::]]></IP>" in xml


# ---------------------------------------------------------------- issue #14, part "disks"
# The capture's volume steps (a persistent DATABLOCK attached to the running VM, a disk snapshot, a
# disk save, the detach, the image's own snapshot calls and a clone) came after NIC hot-plugs,
# poweroff/resume and resizes of the same VM, which the replay above does not make; they are replayed
# here on a VM of their own, made as the capture made VM 0. Its records therefore differ from the
# capture's in their NICs and history, so a VM record is compared by its state, DISKs and SNAPSHOTS.

DISK_STEPS = [
    "one.image.allocate.datablock", "one.image.info.datablock.immediate", "wait:1", "one.image.info.datablock.ready",
    "one.vm.attach", "one.vm.info.after_attach.immediate", "settle", "one.vm.info.after_attach.settled",
    "one.image.info.datablock.attached", "error.one.vm.attach.same_image_again", "error.one.vm.resize.running",
    "one.vm.disksnapshotcreate", "one.vm.info.after_disksnapshotcreate.immediate", "settle",
    "one.vm.info.after_disksnapshotcreate.settled", "one.image.info.datablock.after_vm_snapshot",
    "one.vm.disksaveas", "one.vm.info.after_disksaveas.immediate", "one.image.info.saved.immediate", "settle",
    "wait:2", "one.vm.info.after_disksaveas.settled", "one.image.info.saved.settled",
    "one.image.info.datablock.after_saveas",
    "one.vm.detach", "one.vm.info.after_detach.immediate", "settle", "one.vm.info.after_detach.settled",
    "one.image.info.datablock.detached", "error.one.image.clone.with_snapshots",
    "error.one.image.snapshotdelete.active", "error.one.image.snapshotdelete.missing",
    "one.image.snapshotflatten", "wait:1", "one.image.info.after_snapshotflatten",
    "one.image.clone", "one.image.info.clone.immediate", "wait:3", "one.image.info.clone.settled",
    "one.image.info.datablock.after_clone", "one.vm.action.terminate", "done",
    "one.image.info.datablock.after_terminate",
]  # fmt: skip
DISK_ANSWERS = [s for s in DISK_STEPS if ":" not in s and s not in ("settle", "done")]


def _disk_scenario(r: Replayer) -> None:
    admin, user = r.admin, "clouduser:pw"
    for ds in (0, 1):
        r.do("one.datastore.update", ds, 'TM_MAD="dummy"\nDS_MAD="dummy"\n', 1)
    for name in ("one.group.allocate", "one.acl.addrule.host_use", "one.acl.addrule.create",
                 "one.user.allocate.clouduser", "one.user.allocate.otheruser"):  # fmt: skip
        r.run(name)
    r.do("one.host.allocate", "localhost", "dummy", "dummy", -1)
    wait_host(r.url, admin, 0)
    for name in ("one.vn.allocate.ec2net", "one.vn.chown.ec2net", "one.vn.chmod.ec2net"):
        r.run(name)
    wait_vnet(r.url, admin, 0)
    r.run("one.image.allocate.os_clouduser")
    wait_image(r.url, admin, 0)
    for name in ("one.template.allocate.m1_small", "one.template.chown.m1_small", "one.template.chmod.m1_small",
                 "one.secgroup.allocate", "one.template.instantiate.ec2"):  # fmt: skip
        r.run(name)
    wait_vm(r.url, user, 0, 3, 3)
    for step in DISK_STEPS:
        if step.startswith("wait:"):
            wait_image(r.url, admin, int(step[5:]))
        elif step == "settle":
            wait_vm(r.url, user, 0, 3, 3, seen=r.seen())
        elif step == "done":
            wait_vm(r.url, user, 0, 6, 0, seen=r.seen())
        else:
            r.run(step)


@pytest.fixture(scope="module")
def set3_disks(tmp_path_factory):
    work = tmp_path_factory.mktemp("set3disks")
    server = start_onelite(work / "one", interval=0.2)
    try:
        r = Replayer(server.url, FIXTURES / "set3", server.admin_session, server.server_auth[1], work / "files")
        _disk_scenario(r)
        yield r
    finally:
        server.stop()


def _vm_parts(raw: bytes) -> bytes:
    """A VM answer cut down to its state, DISKs and SNAPSHOTS (the parts the disk calls change)."""
    (result,), _ = xmlrpc.client.loads(raw)
    xml = result[1]
    states = re.findall(r"<(?:STATE|LCM_STATE)>\d+</(?:STATE|LCM_STATE)>", xml)[:2]
    disks = re.findall(r"<DISK>.*?</DISK>", xml, re.S)
    snaps = re.findall(r"<SNAPSHOTS>.*?</SNAPSHOTS>", xml, re.S)
    vmid = re.search(r"<ID>(\d+)", xml).group(1)
    cut = f"<VM><ID>{vmid}</ID>{''.join(states)}<TEMPLATE>{''.join(disks)}</TEMPLATE>"
    result = [result[0], cut + "".join(snaps) + "</VM>", result[2]]
    return xmlrpc.client.dumps((result,), methodresponse=True).encode()


# a snapshot's DATE is the clock's
DISK_RULES = [*FILE_IMAGE, (r"/SNAPSHOT(\[\d+\])?/DATE$", "a clock time")]


@pytest.mark.parametrize("name", DISK_ANSWERS)
def test_set3_disk_answer(set3_disks, name):
    expected, actual = set3_disks.expected(name), set3_disks.answers[name]
    if name.startswith("one.vm.info"):
        expected, actual = _vm_parts(expected), _vm_parts(actual)
    problems = differences(expected, actual, DISK_RULES)
    assert not problems, "\n".join(problems)


def test_set3_disk_state_sequences(set3_disks):
    """Each disk call's VM states from its answer until it settled, as sequences.json recorded them."""
    captured = json.loads((FIXTURES / "set3" / "sequences.json").read_text())["sequences"]
    for action in ("attach", "disksnapshotcreate", "disksaveas", "detach"):
        want = [(s["STATE"], s["LCM_STATE"]) for s in captured[action]]
        polled = set3_disks.sequences[action]
        seen = [s for i, s in enumerate(polled) if i == 0 or s != polled[i - 1]]
        assert seen == want, action


def _last_records(raw: bytes) -> tuple:
    """The ACTION the previous history record ends with, and the last record's ACTION and set times
    (the previous record's times come from what the VM did before, which differs here)."""
    (result,), _ = xmlrpc.client.loads(raw)
    previous, last = re.findall(r"<HISTORY>.*?</HISTORY>", result[1])[-2:]
    times = tuple(k for k in ("STIME", "ETIME", "PSTIME", "PETIME", "RSTIME", "RETIME") if f"<{k}>0<" not in last)
    return re.search(r"<ACTION>(\d+)", previous).group(1), re.search(r"<ACTION>(\d+)", last).group(1), times


@pytest.mark.parametrize("name", [n for n in DISK_ANSWERS if n.startswith("one.vm.info")])
def test_set3_disk_history_records(set3_disks, name):
    """Attach, disk snapshot and detach each end the history record naming their action and open a
    new one, as oned did (disksaveas opens none); the earlier records differ (set 3's VM had more)."""
    assert _last_records(set3_disks.answers[name]) == _last_records(set3_disks.expected(name))


@pytest.mark.parametrize("name", DISK_ANSWERS)
def test_set3_disk_answer_pyone_parses(set3_disks, name):
    """pyone's bindings (econe reads records with them) accept the images and VMs with snapshots."""
    (result,), _ = xmlrpc.client.loads(set3_disks.answers[name])
    if result[0] and isinstance(result[1], str) and result[1].startswith("<"):
        assert bindings.parseString(result[1].encode()) is not None


def test_nic_and_reservation_captures_are_each_answered_elsewhere():
    """Issue #14 (eip): every capture of reservations and NIC hot-plug is compared, in the order the
    capture made them, by tests/test_onelite_addresses.py."""
    from .test_onelite_addresses import ANSWERED

    assert sorted(name for name in SET3 if re.search(NIC_AND_RESERVATIONS, name)) == sorted(ANSWERED)

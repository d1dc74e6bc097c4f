"""onelite's address reservations and NIC hot-plug answer as oned 6.10.5 did in set 3
(tests/fixtures/oned-6.10.5/set3): ``one.vn.reserve`` (a reservation network holding addresses of its
parent, with ``PARENT_NETWORK_ID`` and ``PARENT_NETWORK_AR_ID``; the parent's lease names the
``VNET``), ``one.vm.attachnic`` / ``one.vm.detachnic`` on a RUNNING VM ((3,25) HOTPLUG_NIC, then
RUNNING; the NIC's ``ATTACH`` flag, the CONTEXT's ETHn_ values, a history record per call), a NIC on
a reservation naming its parent, and their refusals with oned's words and codes.

The replay is set 3's (fidelity/replay.py ``scenario_set3``) up to the VM's terminate, then the
captured NIC and reservation calls in the order the capture made them (read from the answers: the
public network shows the lease of the first NIC alone, then reservations 2 and 3 with the held
address). Answers are compared by fidelity/compare.py's ``differences``, as tests/test_fidelity_set3.py does.
"""

from __future__ import annotations

import time

import pytest

from .conftest import FIXTURES, start_onelite
from .fidelity.compare import FILE_IMAGE, differences
from .fidelity.replay import Replayer, call, scenario_set3, wait_vm, wait_vnet

USER = "clouduser:pw"

# (capture name, what to wait for after it: a VM's (state, lcm), or a vnet to be READY)
STEPS = [
    ("one.vm.attachnic.clouduser", None),
    ("one.vm.info.after_attachnic.immediate", (3, 3)),
    ("one.vm.info.after_attachnic.settled", None),
    ("one.vn.info.public.after_attachnic", None),
    ("error.one.vm.attachnic.ip_in_use", None),
    ("one.vm.detachnic", None),
    ("one.vm.info.after_detachnic.immediate", (3, 3)),
    ("one.vm.info.after_detachnic.settled", None),
    ("one.vn.info.public.after_detachnic", None),
    ("error.one.vm.detachnic.missing", None),
    ("one.vn.reserve.admin", None),
    ("one.vn.info.reservation.immediate", "vnet 2"),
    ("one.vn.info.reservation", None),
    ("one.vn.info.public.after_reserve", None),
    ("error.one.vn.reserve.ip_without_ar_id", None),
    ("error.one.vn.reserve.same_ip", None),
    ("one.vn.chown.reservation", None),
    ("one.vm.attachnic.reservation", None),
    ("one.vm.info.after_attachnic_reservation.immediate", (3, 3)),
    ("one.vm.info.after_attachnic_reservation.settled", None),
    ("one.vn.info.reservation.in_use", None),
    ("one.vm.detachnic.reservation", None),
    ("one.vm.info.after_detachnic_reservation.immediate", (3, 3)),
    ("one.vm.info.after_detachnic_reservation.settled", None),
    ("one.vn.reserve.clouduser_public", "vnet 3"),
    ("one.vn.info.reservation_clouduser_public", None),
    ("one.vn.reserve.clouduser_ec2net", "vnet 4"),
    ("one.vn.info.reservation_clouduser", None),
    ("one.vn.hold", None),
    ("one.vn.info.public.with_hold", None),
    ("one.vn.release", None),
    ("one.vn.info.public.after_release", None),
]
ANSWERED = [name for name, _ in STEPS]


class _Stop(Exception):
    pass


class _UntilTerminate(Replayer):
    """set 3's replay, stopped where the capture's VM was terminated (the NIC calls came before)."""

    def run(self, name: str) -> bytes:
        if name == "one.vm.action.terminate":
            raise _Stop
        return super().run(name)


@pytest.fixture(scope="module")
def nics(tmp_path_factory):
    work = tmp_path_factory.mktemp("set3nics")
    server = start_onelite(work / "one", interval=0.2)
    try:
        r = _UntilTerminate(server.url, FIXTURES / "set3", server.admin_session, server.server_auth[1], work / "f")
        with pytest.raises(_Stop):
            scenario_set3(r)
        for name, then in STEPS:
            r.run(name)
            if isinstance(then, tuple):
                wait_vm(r.url, USER, 0, *then)
            elif then:
                wait_vnet(r.url, r.admin, int(then.split()[1]))
        r.server = server
        yield r
    finally:
        server.stop()


@pytest.mark.parametrize("name", ANSWERED)
def test_nic_and_reservation_answer(nics, name):
    problems = differences(nics.expected(name), nics.as_captured(name), FILE_IMAGE)
    assert not problems, "\n".join(problems)


def test_a_reservation_deleted_frees_its_addresses_in_the_parent_and_not_while_used(nics):
    """VirtualNetworkDelete refuses a network with leases in use; deleting a reservation gives its
    addresses back to the parent (VirtualNetworkPool::delete_success), so another may reserve them."""
    url, admin = nics.url, nics.admin
    template = 'SIZE="1"\nAR_ID="0"\nIP="192.0.2.20"\nNAME="eip-later"\n'
    ok, rid, *_ = call(url, "one.vn.reserve", admin, 1, template)
    assert ok, rid
    wait_vnet(url, admin, rid)
    assert call(url, "one.vn.chown", admin, rid, 2, 100)[0]
    assert call(url, "one.vm.attachnic", USER, 0, f'NIC=[NETWORK_ID="{rid}"]')[0]
    wait_vm(url, USER, 0, 3, 3)
    refused = call(url, "one.vn.delete", admin, rid)
    assert refused[:3] == [False, "[one.vn.delete] Cannot delete virtual network. "
                           "Can not remove a virtual network with leases in use", 2048]  # fmt: skip
    ok, xml, *_ = call(url, "one.vm.info", USER, 0, False)
    nic_id = xml.split("<IP><![CDATA[192.0.2.20]]></IP>")[1].split("<NIC_ID><![CDATA[")[1].split("]")[0]
    assert call(url, "one.vm.detachnic", USER, 0, int(nic_id))[0]
    wait_vm(url, USER, 0, 3, 3)
    assert call(url, "one.vn.delete", admin, rid)[0]
    _wait_gone(url, admin, rid)
    ok, again, *_ = call(url, "one.vn.reserve", admin, 1, template)
    assert ok, again


def _wait_gone(url: str, session: str, vnid: int, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while call(url, "one.vn.info", session, vnid, False)[0]:
        assert time.time() < deadline, f"vnet {vnid} never went"
        time.sleep(0.02)


def test_a_deleted_network_is_locked_until_its_driver_is_done(nics):
    """VirtualNetworkDelete::drop sets LOCK_DELETE and leaves the rest to the driver; the network, and
    the parent's addresses a reservation holds, go when it is done (VirtualNetworkPool::delete_success).
    Meanwhile, as while it is made (LOCK_CREATE), another delete is refused."""
    url, admin = nics.url, nics.admin
    template = 'SIZE="1"\nAR_ID="0"\nIP="192.0.2.21"\nNAME="eip-going"\n'
    ok, rid, *_ = call(url, "one.vn.reserve", admin, 1, template)
    assert ok, rid
    refused = call(url, "one.vn.delete", admin, rid)
    assert refused[:3] == [False, "[one.vn.delete] Cannot delete virtual network. "
                           "Can not remove a Virtual Network, wrong state LOCK_CREATE", 2048]  # fmt: skip
    wait_vnet(url, admin, rid)
    assert call(url, "one.vn.delete", admin, rid)[:2] == [True, rid]
    ok, xml, *_ = call(url, "one.vn.info", admin, rid, False)
    assert ok and ("<STATE><![CDATA[3]]></STATE>" in xml or "<STATE>3</STATE>" in xml), xml[:300]
    refused = call(url, "one.vn.delete", admin, rid)
    assert refused[:3] == [False, "[one.vn.delete] Cannot delete virtual network. "
                           "Can not remove a Virtual Network, wrong state LOCK_DELETE", 2048]  # fmt: skip
    assert not call(url, "one.vn.reserve", admin, 1, template)[0]  # the parent still holds it
    _wait_gone(url, admin, rid)
    ok, again, *_ = call(url, "one.vn.reserve", admin, 1, template)
    assert ok, again


def test_attachnic_refused_outside_running_and_poweroff(nics):
    """DispatchManager::attach_nic: only a RUNNING or POWEROFF VM takes a NIC (here a VM on hold)."""
    url = nics.url
    ok, vmid, *_ = call(url, "one.vm.allocate", USER, 'NAME="held"\nCPU="0.1"\nMEMORY="64"\n', True)
    assert ok, vmid
    answer = call(url, "one.vm.attachnic", USER, vmid, 'NIC=[NETWORK_ID="0"]')
    assert answer[:3] == [False, f"[one.vm.attachnic] Could not add a new NIC to VM {vmid}, wrong state HOLD.", 2048]
    answer = call(url, "one.vm.detachnic", USER, vmid, 0)
    assert answer[:3] == [False, f"[one.vm.detachnic] Could not detach NIC from VM {vmid}, wrong state HOLD.", 2048]


def test_reserve_refusals_as_oneds_source_words_them(nics):
    """VirtualNetworkReserve's checks (RequestManagerVirtualNetwork.cc), not captured in set 3."""
    url, admin = nics.url, nics.admin
    cases = [
        ('SIZE="0"\nNAME="x"\n', "Reservation SIZE must be a greater than 0"),
        ('SIZE=[A="1"]\nNAME="x"\n', "Reservation SIZE must be a greater than 0"),  # a vector is no number
        (
            'SIZE="1"\nNAME="x"\nIP="192.0.2.20"\nAR_ID="first"\n',
            "AR_ID must be specified for IP/MAC based reservations",
        ),  # no number: no AR_ID
        ('SIZE="1"\n', "NAME for reservation has to be set"),
        ('SIZE="1"\nNAME="x"\nAR_ID="-1"\n', "AR_ID must be equal or greater than 0"),
        ('SIZE="1"\nNETWORK_ID="1"\n', "Cannot add a reservation from the same network"),
        ('SIZE="1"\nNETWORK_ID="0"\n', "Cannot add reservations to a non-reservation VNET"),
        ('SIZE="99"\nNAME="x"\n', "Not enough free addresses in an address range"),
    ]
    for text, message in cases:
        assert call(url, "one.vn.reserve", admin, 1, text)[:3] == [False, f"[one.vn.reserve] {message}", 2048], text
    answer = call(url, "one.vn.reserve", admin, 2, 'SIZE="1"\nNAME="y"\n')
    assert answer[:3] == [False, "[one.vn.reserve] Cannot reserve addresses from a reserved VNET", 2048]


def test_a_reservation_leases_at_once(nics):
    """A reservation has its range from the start (set 3's immediate answer shows its AR_POOL while
    LOCK_CREATE) and oned leases without looking at a network's state: a NIC on it may be attached at once."""
    url, admin = nics.url, nics.admin
    ok, rid, *_ = call(url, "one.vn.reserve", admin, 1, 'SIZE="1"\nNAME="eip-at-once"\n')
    assert ok, rid
    answer = call(url, "one.vm.attachnic", admin, 0, f'NIC=[NETWORK_ID="{rid}"]')
    assert answer[0], answer
    wait_vm(url, USER, 0, 3, 3)
    ok, xml, *_ = call(url, "one.vm.info", USER, 0, False)
    nic_id = xml.split(f"<NETWORK_ID><![CDATA[{rid}]]></NETWORK_ID><NIC_ID><![CDATA[")[1].split("]")[0]
    assert call(url, "one.vm.detachnic", USER, 0, int(nic_id))[0]
    wait_vm(url, USER, 0, 3, 3)
    assert call(url, "one.vn.delete", admin, rid)[0]

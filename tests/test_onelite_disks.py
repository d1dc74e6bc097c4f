"""onelite's disk operations where set 3 did not capture them, held to oned 6.10.5's source
(/opt/oned-src at release-6.10.5: DispatchManagerActions.cc, RequestManagerVirtualMachine.cc,
RequestManagerImage.cc, ImageManagerActions.cc, src/vm/Snapshots.cc): the hot-plug states from
POWEROFF, the refusals and their codes, disk snapshots on a VM and on a persistent image, the image a
disk save makes, clone and chtype. What set 3 captured is replayed in test_fidelity_set3.py
(``test_set3_disk_answer``).
"""

from __future__ import annotations

import itertools
import re
import time

import pytest

from .conftest import start_onelite
from .fidelity.replay import call, vm_state, wait_host, wait_image

ACTION, INTERNAL = 2048, 8192
RUNNING, POWEROFF = (3, 3), (8, 0)
_names = itertools.count()


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    work = tmp_path_factory.mktemp("disks")
    server = start_onelite(work / "one", interval=0.05)
    admin = server.admin_session
    for ds in (0, 1):
        assert call(server.url, "one.datastore.update", admin, ds, 'TM_MAD="dummy"\nDS_MAD="dummy"\n', 1)[0]
    assert call(server.url, "one.host.allocate", admin, "localhost", "dummy", "dummy", -1)[0]
    wait_host(server.url, admin, 0)
    server.os_file = work / "os.img"
    server.os_file.write_bytes(bytes(1 << 20))
    yield server
    server.stop()


def rpc(one, method, *params):
    return call(one.url, method, one.admin_session, *params)


def ok(one, method, *params):
    answer = rpc(one, method, *params)
    assert answer[0], answer
    return answer[1]


def image(one, text="TYPE=DATABLOCK\nSIZE=1024\nPERSISTENT=YES\n") -> int:
    iid = ok(one, "one.image.allocate", f'NAME="disks-{next(_names)}"\n{text}', 1, False)
    wait_image(one.url, one.admin_session, iid)
    return iid


def info(one, kind, oid) -> str:
    return ok(one, f"one.{kind}.info", oid, False)


def field(xml: str, name: str) -> str:
    if f"<{name}/>" in xml:
        return ""
    return re.search(rf"<{name}>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</{name}>", xml, re.S).group(1)


def states(one, vmid: int, until: tuple[int, int], timeout: float = 10) -> list[tuple[int, int]]:
    """The VM's states from now until *until*, each once, as a client polling one.vm.info sees them."""
    seen: list[tuple[int, int]] = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = vm_state(info(one, "vm", vmid))
        if not seen or seen[-1] != got:
            seen.append(got)
        if got == until:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"VM {vmid} never reached {until}: {seen}")


def running_vm(one) -> int:
    os_image = image(one, "TYPE=DATABLOCK\nSIZE=64\n")
    vmid = ok(one, "one.vm.allocate", f'NAME="disks-vm"\nCPU="0.1"\nMEMORY="64"\nDISK=[IMAGE_ID="{os_image}"]\n')
    states(one, vmid, RUNNING)
    return vmid


def powered_off_vm(one) -> int:
    vmid = running_vm(one)
    ok(one, "one.vm.action", "poweroff", vmid)
    states(one, vmid, POWEROFF)
    return vmid


def test_attach_and_detach_while_powered_off_go_through_oned_s_poweroff_hotplug_states(one):
    """DispatchManager::attach/detach from POWEROFF: (3,33) HOTPLUG_PROLOG_POWEROFF and (3,34)
    HOTPLUG_EPILOG_POWEROFF, back to POWEROFF; the persistent image is USED_PERS between."""
    vmid, vol = powered_off_vm(one), image(one)
    ok(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')
    assert states(one, vmid, POWEROFF) == [(3, 33), POWEROFF]
    attached = info(one, "vm", vmid)
    assert f"<IMAGE_ID><![CDATA[{vol}]]></IMAGE_ID>" in attached and "<TARGET><![CDATA[sdb]]></TARGET>" in attached
    assert field(info(one, "image", vol), "STATE") == "8" and field(info(one, "image", vol), "RUNNING_VMS") == "1"
    ok(one, "one.vm.detach", vmid, 1)
    assert states(one, vmid, POWEROFF) == [(3, 34), POWEROFF]
    assert f"<IMAGE_ID><![CDATA[{vol}]]>" not in info(one, "vm", vmid)
    assert field(info(one, "image", vol), "STATE") == "1" and field(info(one, "image", vol), "RUNNING_VMS") == "0"


def test_attach_and_detach_refusals_are_oned_s(one):
    vmid, vol = running_vm(one), image(one)
    ok(one, "one.vm.action", "suspend", vmid)
    states(one, vmid, (5, 0))
    assert rpc(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')[1:3] == [
        f"[one.vm.attach] Could not attach a new disk to VM {vmid}, wrong state SUSPENDED.",
        ACTION,
    ]
    assert rpc(one, "one.vm.detach", vmid, 0)[1:3] == [
        f"[one.vm.detach] Could not detach disk from VM {vmid}, wrong state SUSPENDED.",
        ACTION,
    ]
    held = ok(one, "one.vm.allocate", 'NAME="held"\nCPU="0.1"\nMEMORY="64"\n', True)
    assert rpc(one, "one.vm.attach", held, f'DISK=[IMAGE_ID="{vol}"]')[1:3] == [
        "[one.vm.attach] VM is not running in any host",
        ACTION,
    ]
    ok(one, "one.vm.action", "resume", vmid)
    states(one, vmid, RUNNING)
    locked = ok(one, "one.image.allocate", 'NAME="disks-locked"\nTYPE=DATABLOCK\nSIZE=8\n', 1, False)
    assert rpc(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{locked}"]')[1:3] == [
        f"[one.vm.attach] Cannot acquire image {locked}, it is locked",
        ACTION,
    ]
    assert rpc(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}",TARGET="sda"]')[1:3] == [
        "[one.vm.attach] Target sda is already in use.",
        ACTION,
    ]
    assert field(info(one, "image", vol), "RUNNING_VMS") == "0"
    assert vm_state(info(one, "vm", vmid)) == RUNNING  # a refused attach leaves the VM as it was


def test_a_persistent_volume_is_released_when_its_vm_terminates(one):
    vmid, vol = running_vm(one), image(one)
    ok(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')
    states(one, vmid, RUNNING)
    ok(one, "one.vm.action", "terminate", vmid)
    states(one, vmid, (6, 0))
    record = info(one, "image", vol)
    assert (field(record, "STATE"), field(record, "RUNNING_VMS"), field(record, "VMS")) == ("1", "0", "")


def test_disksaveas_from_poweroff_and_the_image_it_makes(one):
    """set_saveas_state: POWEROFF -> (3,27) HOTPLUG_SAVEAS_POWEROFF -> POWEROFF. The new image's
    template is what VirtualMachineDiskSaveas writes (the source's other attributes are not copied),
    LOCKED with FORMAT save_as until the copy is done."""
    vmid = powered_off_vm(one)
    vol = image(one, 'TYPE=DATABLOCK\nSIZE=512\nPERSISTENT=YES\nDESCRIPTION="mine"\nEC2_AMI="YES"\n')
    ok(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')
    states(one, vmid, POWEROFF)
    saved = ok(one, "one.vm.disksaveas", vmid, 1, f"disks-saved-{vol}", "", -1)
    first = info(one, "image", saved)
    assert (field(first, "STATE"), field(first, "FORMAT"), field(first, "SOURCE")) == ("4", "save_as", "")
    assert states(one, vmid, POWEROFF) == [(3, 27), POWEROFF]
    wait_image(one.url, one.admin_session, saved)
    done = info(one, "image", saved)
    assert (field(done, "FORMAT"), field(done, "SIZE"), field(done, "PERSISTENT")) == ("raw", "512", "0")
    assert re.findall(r"<TEMPLATE>.*?</TEMPLATE>", done)[0] == (
        "<TEMPLATE><DEV_PREFIX><![CDATA[sd]]></DEV_PREFIX><SAVED_DISK_ID><![CDATA[1]]></SAVED_DISK_ID>"
        f"<SAVED_IMAGE_ID><![CDATA[{vol}]]></SAVED_IMAGE_ID><SAVED_VM_ID><![CDATA[{vmid}]]></SAVED_VM_ID></TEMPLATE>"
    )
    assert field(info(one, "image", vol), "STATE") == "8"  # the source stays in use by the VM


def test_disksaveas_refusals_are_oned_s(one):
    vmid = running_vm(one)
    assert rpc(one, "one.vm.disksaveas", vmid, 7, "disks-nodisk", "", -1)[1:3] == [
        "[one.vm.disksaveas] Cannot use DISK. DISK does not exist.",
        INTERNAL,
    ]
    assert rpc(one, "one.vm.disksaveas", vmid, 0, "disks-nosnap", "", 3)[1:3] == [
        "[one.vm.disksaveas] Cannot use DISK. Snapshot does not exist.",
        INTERNAL,
    ]
    ok(one, "one.vm.action", "undeploy", vmid)
    states(one, vmid, (9, 0))
    held = ok(one, "one.vm.allocate", 'NAME="held"\nCPU="0.1"\nMEMORY="64"\n', True)
    assert rpc(one, "one.vm.disksaveas", held, 0, "disks-held", "", -1)[1:3] == [
        "[one.vm.disksaveas] VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.",
        INTERNAL,
    ]


def snapshot_ids(xml: str) -> list[tuple[str, str, str, str]]:
    """(ID, PARENT, CHILDREN, ACTIVE) of each SNAPSHOT in a record."""
    return [
        (field(s, "ID"), field(s, "PARENT"), (re.search(r"<CHILDREN><!\[CDATA\[(.*?)\]\]>", s) or ["", ""])[1],
         "YES" if "<ACTIVE>" in s else "")
        for s in re.findall(r"<SNAPSHOT>.*?</SNAPSHOT>", xml, re.S)
    ]  # fmt: skip


def test_disk_snapshots_of_a_vm_and_of_its_persistent_image(one):
    """Snapshots.cc in oned's default mode (ALLOW_ORPHANS NO): each new snapshot is a child of the
    active one; (3,57) DISK_SNAPSHOT and (3,59) DISK_SNAPSHOT_DELETE while RUNNING; revert only while
    powered off, (3,52); the persistent image shows the disk's list, and keeps it once detached."""
    vmid, vol = running_vm(one), image(one)
    ok(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')
    states(one, vmid, RUNNING)
    for n in (0, 1):
        assert ok(one, "one.vm.disksnapshotcreate", vmid, 1, f"s{n}") == n
        assert states(one, vmid, RUNNING) == [(3, 57), RUNNING]
    assert snapshot_ids(info(one, "vm", vmid)) == [("0", "-1", "1", ""), ("1", "0", "", "YES")]
    assert snapshot_ids(info(one, "image", vol)) == [("0", "-1", "1", ""), ("1", "0", "", "YES")]
    assert "<DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[2048]]>" in info(one, "vm", vmid)

    assert rpc(one, "one.vm.disksnapshotdelete", vmid, 1, 0)[1:3] == [
        "[one.vm.disksnapshotdelete] Cannot delete snapshot 0 for persistent disk images",
        ACTION,
    ]
    assert rpc(one, "one.vm.disksnapshotrevert", vmid, 1, 0)[1:3] == [
        f"[one.vm.disksnapshotrevert] Could not revert to disk snapshot for VM {vmid}, wrong state RUNNING.",
        ACTION,
    ]
    ok(one, "one.vm.action", "poweroff", vmid)
    states(one, vmid, POWEROFF)
    assert rpc(one, "one.vm.disksnapshotrevert", vmid, 1, 5)[1:3] == [
        "[one.vm.disksnapshotrevert] Disk id (1) or snapshot id (5) is not valid.",
        ACTION,
    ]
    ok(one, "one.vm.disksnapshotrevert", vmid, 1, 0)
    assert states(one, vmid, POWEROFF) == [(3, 52), POWEROFF]
    assert snapshot_ids(info(one, "image", vol)) == [("0", "-1", "1", "YES"), ("1", "0", "", "")]
    ok(one, "one.vm.disksnapshotdelete", vmid, 1, 1)
    assert states(one, vmid, POWEROFF) == [(3, 53), POWEROFF]
    assert snapshot_ids(info(one, "vm", vmid)) == [("0", "-1", "", "YES")]
    ok(one, "one.vm.disksnapshotcreate", vmid, 1, "s2")
    assert states(one, vmid, POWEROFF) == [(3, 51), POWEROFF]

    ok(one, "one.vm.detach", vmid, 1)
    states(one, vmid, POWEROFF)
    assert "<SNAPSHOTS>" not in info(one, "vm", vmid)
    assert snapshot_ids(info(one, "image", vol)) == [("0", "-1", "2", ""), ("2", "0", "", "YES")]

    # the image brings its snapshots to the next disk made from it (ImagePool::acquire_disk)
    other = running_vm(one)
    ok(one, "one.vm.attach", other, f'DISK=[IMAGE_ID="{vol}"]')
    states(one, other, RUNNING)
    record = info(one, "vm", other)
    assert snapshot_ids(record) == [("0", "-1", "2", ""), ("2", "0", "", "YES")]
    assert "<DISK_ID><![CDATA[1]]></DISK_ID><NEXT_SNAPSHOT><![CDATA[3]]>" in record
    assert "<DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[2048]]>" in record


def test_an_image_s_own_snapshots(one):
    """ImageManager's snapshot calls on a detached persistent image: READY only, LOCKED while the
    driver works; revert moves ACTIVE, delete refuses the active one, flatten clears the list."""
    vmid, vol = running_vm(one), image(one)
    ok(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')
    states(one, vmid, RUNNING)
    for n in (0, 1):
        ok(one, "one.vm.disksnapshotcreate", vmid, 1, f"s{n}")
        states(one, vmid, RUNNING)
    assert rpc(one, "one.image.snapshotrevert", vol, 0)[1:3] == [
        "[one.image.snapshotrevert] Cannot revert to snapshot in state USED_PERS",
        ACTION,
    ]
    ok(one, "one.vm.detach", vmid, 1)
    states(one, vmid, RUNNING)

    assert rpc(one, "one.image.snapshotdelete", vol, 0)[1:3] == [
        "[one.image.snapshotdelete] Cannot delete snapshot with children",
        ACTION,
    ]
    ok(one, "one.image.snapshotrevert", vol, 0)
    assert field(info(one, "image", vol), "STATE") == "4"
    wait_image(one.url, one.admin_session, vol)
    assert snapshot_ids(info(one, "image", vol)) == [("0", "-1", "1", "YES"), ("1", "0", "", "")]
    ok(one, "one.image.snapshotdelete", vol, 1)
    wait_image(one.url, one.admin_session, vol)
    assert snapshot_ids(info(one, "image", vol)) == [("0", "-1", "", "YES")]
    missing = rpc(one, "one.image.snapshotrevert", vol, 4)
    assert missing[1:3] == ["[one.image.snapshotrevert] Snapshot does not exist", ACTION]
    ok(one, "one.image.snapshotflatten", vol, 0)
    wait_image(one.url, one.admin_session, vol)
    assert "<SNAPSHOTS/>" in info(one, "image", vol) or "<SNAPSHOTS></SNAPSHOTS>" in info(one, "image", vol)
    assert rpc(one, "one.image.clone", vol, f"disks-clone-{vol}", -1)[0]  # no snapshots left: it may be cloned


def test_a_clone_keeps_its_source_s_template_type_and_persistence(one):
    """Image::clone_template copies the whole template; the clone is LOCKED until the copy is done."""
    src = image(one, 'TYPE=DATABLOCK\nSIZE=16\nPERSISTENT=YES\nDESCRIPTION="d"\nEC2_AMI="YES"\n')
    clone = ok(one, "one.image.clone", src, f"disks-clone-{src}", -1)
    first = info(one, "image", clone)
    assert (field(first, "STATE"), field(first, "CLONING_ID"), field(first, "PREV_STATE")) == ("4", str(src), "0")
    wait_image(one.url, one.admin_session, clone)
    done = info(one, "image", clone)
    assert (field(done, "PERSISTENT"), field(done, "TYPE"), field(done, "SIZE")) == ("1", "2", "16")
    assert field(done, "DESCRIPTION") == "d" and field(done, "EC2_AMI") == "YES"
    assert field(info(one, "image", src), "CLONES") == ""


def test_chtype_within_the_disk_types_only(one):
    """ImageChangeType: an OS image may become a DATABLOCK (and back), not a KERNEL."""
    iid = image(one, f'TYPE=OS\nPATH="{one.os_file}"\n')
    ok(one, "one.image.chtype", iid, "datablock")
    assert field(info(one, "image", iid), "TYPE") == "2"
    assert rpc(one, "one.image.chtype", iid, "KERNEL")[1:3] == [
        "[one.image.chtype] Cannot change image type to an incompatible type for the current datastore.",
        ACTION,
    ]


def test_the_source_of_a_clone_is_busy_until_the_copy_is_done(one):
    """ImageManager::set_clone_state: a persistent source is CLONE (6) while copied, a
    non-persistent one USED (2), READY again once the copy is done; an image in use by a VM as a
    persistent disk cannot be cloned (can_clone_image), so an attached volume is saved with disksaveas."""
    for persistent, busy in (("YES", "6"), ("NO", "2")):
        src = image(one, f"TYPE=DATABLOCK\nSIZE=16\nPERSISTENT={persistent}\n")
        clone = ok(one, "one.image.clone", src, f"disks-clone-{src}", -1)
        copying, refusal = info(one, "image", src), rpc(one, "one.image.delete", src, False)  # within the copy's 30 ms
        assert (field(copying, "STATE"), field(copying, "CLONING_OPS")) == (busy, "1")
        why = "1 active clone operations" if busy == "6" else "0 VMs using it"
        assert refusal[1:3] == [f"[one.image.delete] Cannot delete image. There are {why}.", ACTION]
        wait_image(one.url, one.admin_session, clone)
        copied = info(one, "image", src)
        assert (field(copied, "STATE"), field(copied, "CLONING_OPS")) == ("1", "0")
    vmid, vol = running_vm(one), image(one)
    ok(one, "one.vm.attach", vmid, f'DISK=[IMAGE_ID="{vol}"]')
    states(one, vmid, RUNNING)
    assert rpc(one, "one.image.clone", vol, f"disks-clone-{vol}", -1)[1:3] == [
        "[one.image.clone] Error allocating a new image. Cannot clone image in state: USED_PERS",
        16384,
    ]

"""CreateVolume, DescribeVolumes, AttachVolume, DetachVolume, DeleteVolume.

A volume ``vol-%08d`` is an image: a persistent DATABLOCK marked ``EBS_VOLUME="YES"``, as OpenNebula
5.12's econe made them (so its volumes keep working). It is attached when a VM uses it (the image's
``VMS``); the VM's DISK of that image gives its device (``/dev/`` + TARGET). The short VM pool answer
DescribeInstances reads has no TARGET, so AttachVolume also notes the device in the VM's user template
(``EC2_VOLUMES``), which DescribeInstances shows for the volumes the VM still has (`block_devices`)."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from datetime import UTC, datetime

from one import template as tpl
from one.codes import IMAGE_STATES, LCM_STATE, VM_STATE

from .. import ids, states
from ..errors import EC2Error, invalid, missing
from ..objects import VM, Image
from . import claims, paging, tagging, waits
from .filters import check_names, flag, matcher, present
from .locks import lock
from .regions import ZONE
from .registry import Context, action

MIB = 1024  # MiB in a GiB: oned keeps sizes in MiB, EC2 in GiB
MAX_GIB = 16384  # EC2's largest volume
VOLUME_TYPES = ("standard", "io1", "io2", "gp2", "gp3", "sc1", "st1")  # stored and shown, nothing more here
DEVICE = re.compile(r"/dev/((?:sd|xvd|hd|vd)[a-z]{1,2})")  # an EC2 device name -> the DISK's TARGET
MIN_RESULTS, MAX_RESULTS = 5, 500  # DescribeVolumes' bounds of MaxResults
ATTACHABLE = (VM_STATE.POWEROFF, VM_STATE.UNDEPLOYED)  # besides RUNNING: where oned hot-plugs a disk
HOTPLUG_WAIT = 10  # seconds an action waits for oned to end a VM's disk work before it starts its own
# seconds DetachVolume and DeleteVolume wait for oned to have done it before they answer: a client then
# seldom waits out a waiter's first delay (botocore's volume waiters poll every 15 s) for a moment's work
SETTLE_WAIT = 2
LOCK_WAIT = 2  # seconds a request waits for another one's work on the same VM or volume, then answers busy


def is_volume(image: Image) -> bool:
    return image.template.get("EBS_VOLUME", "").upper() == "YES"


def is_own_volume(ctx: Context, image: Image) -> bool:
    """A volume of the requesting user: an EC2 volume is never shared, so another user's is none to it
    (though oned lets it use one its group may use)."""
    return is_volume(image) and image.uid == ctx.session.uid


def get_volume(ctx: Context, text: str) -> Image:
    """The volume *text* names, among the user's own images."""
    image = ids.read(text, "vol", ctx.session.image)
    if not is_own_volume(ctx, image):
        raise ids.not_found("vol", text)
    return image


def copying(image: Image) -> bool:
    """oned copies the (persistent) image for a snapshot or a volume: it refuses to attach or delete it
    meanwhile, which EC2 would do."""
    return image.state == IMAGE_STATES.CLONE


def is_snapshot(image: Image) -> bool:
    return image.template.get("EBS_SNAPSHOT", "").upper() == "YES"


def get_snapshot(ctx: Context, text: str) -> Image:
    """The snapshot *text* names (CreateVolume's, and the snapshot actions')."""
    image = ids.read(text, "snap", ctx.session.image)
    if not is_snapshot(image):
        raise ids.not_found("snap", text)
    return image


def size_gib(image: Image) -> int:
    return max(1, -(-image.size // MIB))


def when(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def volume_state(image: Image) -> str:
    if image.state == IMAGE_STATES.DELETE:
        return "deleting"
    if image.state in (IMAGE_STATES.ERROR, IMAGE_STATES.DISABLED):
        return "error"
    if image.state in (IMAGE_STATES.INIT, IMAGE_STATES.LOCKED):  # the datastore driver is making it
        return "creating"
    return "in-use" if image.vms else "available"


# ---------------------------------------------------------------- a VM's volumes


def noted(vm: VM) -> dict[str, list]:
    """The VM's ``EC2_VOLUMES``: volume id -> [device, attach time] of the volumes econe attached."""
    text = vm.user_template.get("EC2_VOLUMES")
    if not text:  # most VMs: no JSON to read
        return {}
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):  # a value its user wrote in OpenNebula itself
        return {}
    return record if isinstance(record, dict) else {}


def block_devices(vm: VM) -> list[dict]:
    """The instance's BlockDeviceMappings: the volumes econe attached that the VM still has a disk of
    (none once it is DONE: oned has let its images go)."""
    out: list[dict] = []
    if vm.state == VM_STATE.DONE:
        return out
    for vid, entry in sorted(noted(vm).items()):
        try:
            device, attached = str(entry[0]), int(entry[1])
            held = ids.parse(vid, "vol") in vm.image_ids
        except (EC2Error, TypeError, ValueError, IndexError):
            continue
        if held:
            ebs = {"AttachTime": when(attached), "DeleteOnTermination": False, "Status": "attached", "VolumeId": vid}
            out.append({"DeviceName": device, "Ebs": ebs})
    return out


def _note(ctx: Context, vm: VM, record: dict) -> None:
    ctx.session.vm_update(vm.id, tpl.serialize([("EC2_VOLUMES", json.dumps(record, sort_keys=True))]))


def _disks(body: list) -> list[list]:
    return [v for k, v in body if k in ("DISK", "CONTEXT") and isinstance(v, list)]


def disk_of(body: list, image_id: int) -> list | None:
    """The VM's DISK of image *image_id*, from its template pairs."""
    return next((d for d in _disks(body) if tpl.vget(d, "IMAGE_ID") == str(image_id)), None)


def _attachment(image: Image, vm: VM, disk: list | None) -> dict:
    """The VolumeAttachment of *image* to *vm*: ``attaching``/``detaching`` while oned hot-plugs the
    disk (ATTACH=YES on it: which of the two, the VM's own note of the volume tells), else ``attached``."""
    vid = ids.fmt("vol", image.id)
    entry = noted(vm).get(vid)
    state = "attached"
    if disk is not None and tpl.vget(disk, "ATTACH", "").upper() == "YES":
        state = "attaching" if entry else "detaching"
    target = tpl.vget(disk, "TARGET") if disk is not None else None
    try:
        attached = int(entry[1]) if entry else vm.stime
    except (TypeError, ValueError, IndexError):
        attached = vm.stime
    return {
        "VolumeId": vid,
        "InstanceId": ids.fmt("i", vm.id),
        "Device": f"/dev/{target}" if target else None,
        "State": state,
        "AttachTime": when(attached),
        "DeleteOnTermination": False,
    }


def _attachments(ctx: Context, image: Image, read: dict) -> list[dict]:
    """The image's attachments; *read* keeps the VMs (and their templates) this request has read."""
    out = []
    for vmid in image.vms:
        if vmid not in read:
            try:
                read[vmid] = ctx.session.vm_with_template(vmid)
            except EC2Error as e:  # another user's VM uses it: the instance is all there is to show
                if e.status >= 500:
                    raise
                read[vmid] = None
        if read[vmid] is None:
            out.append({"VolumeId": ids.fmt("vol", image.id), "InstanceId": ids.fmt("i", vmid), "State": "attached",
                        "DeleteOnTermination": False})  # fmt: skip
            continue
        vm, body = read[vmid]
        out.append(_attachment(image, vm, disk_of(body, image.id)))
    return out


def describe(image: Image, attachments: list[dict]) -> dict:
    t = image.template
    return {
        "VolumeId": ids.fmt("vol", image.id),
        "Size": size_gib(image),
        "SnapshotId": t.get("EC2_SNAPSHOT_ID") or "",
        "AvailabilityZone": ZONE,
        "State": volume_state(image),
        "CreateTime": when(image.regtime),
        "Attachments": attachments,
        "Encrypted": False,
        "VolumeType": t.get("EC2_VOLUME_TYPE") or "standard",
        "MultiAttachEnabled": False,
        "Tags": tagging.as_list(tagging.load(t.get("EC2_TAGS"))),
    }


# ---------------------------------------------------------------- CreateVolume


def _size(p: dict, snapshot: Image | None) -> int:
    """The new volume's size in GiB: Size, or the snapshot's. oned copies an image as it is and has no
    call that grows one, so a volume from a snapshot has the snapshot's size here."""
    size = p.get("Size")
    if snapshot is None:
        if size is None:
            raise missing("Size")
        if not 1 <= size <= MAX_GIB:
            raise invalid("Size", size, f"A volume is 1 to {MAX_GIB} GiB.")
        return size
    own = size_gib(snapshot)
    if size is not None and size != own:
        raise invalid("Size", size, f"A volume made from a snapshot has its size here: {own} GiB.")
    return own


def _check_create(p: dict) -> str:
    zone = p.get("AvailabilityZone")
    if zone is None:
        raise missing("AvailabilityZone")
    if zone != ZONE:
        raise invalid("AvailabilityZone", zone, f"The only zone is {ZONE}.")
    vtype = p.get("VolumeType") or "standard"
    if vtype not in VOLUME_TYPES:
        raise invalid("VolumeType", vtype, f"It must be one of {', '.join(VOLUME_TYPES)}.")
    if p.get("Encrypted"):  # encryption at rest is the datastore's, which a user cannot choose
        raise EC2Error("UnsupportedOperation", "Encrypted volumes are not supported on this cloud.")
    return vtype


@action(
    "CreateVolume",
    reads=("AvailabilityZone", "Size", "SnapshotId", "VolumeType", "TagSpecifications", "Encrypted", "ClientToken"),
    ignored=("Iops", "Throughput"),  # provisioned performance: the datastore's, nothing a volume asks for here
    stored=("TagSpecifications", "ClientToken"),
    changes=True,
)
def create_volume(ctx: Context, p: dict) -> dict:
    vtype = _check_create(p)
    snapshot = get_snapshot(ctx, p["SnapshotId"]) if p.get("SnapshotId") else None
    if snapshot is not None and snapshot.state not in (IMAGE_STATES.READY, IMAGE_STATES.USED, IMAGE_STATES.CLONE):
        raise EC2Error("IncorrectState", f"Snapshot is in invalid state: {p['SnapshotId']} is not completed.")
    size = _size(p, snapshot)
    tags = tagging.from_specifications(p.get("TagSpecifications", []), "volume")
    token = p.get("ClientToken")
    if ctx.dry_run:  # the user may create images, use the snapshot, and create the token's claim (a template)
        needs = [("CREATE", "IMAGE", None)] + ([("USE", "IMAGE", snapshot.id)] if snapshot else [])
        ctx.session.decide_dry_run(needs + ([("CREATE", "TEMPLATE", None)] if token else []))

    def make() -> dict:
        return describe(ctx.session.image(_create(ctx, vtype, size, snapshot, tags, token)), [])

    if not token:
        return make()
    asked = (size, vtype, ids.fmt("snap", snapshot.id) if snapshot else "")

    def find() -> dict | None:  # the same ClientToken again (boto3 sends one with every call) is the same volume
        mine = ctx.session.images(mine=True)  # a pool call: as oned has them now
        made = [i for i in mine if i.template.get("EC2_CLIENT_TOKEN") == token and is_volume(i)]
        if not made:
            return None
        if _asked_for(made[0]) != asked:
            why = f"The ClientToken '{token}' was used for a volume of other parameters."
            raise EC2Error("IdempotentParameterMismatch", why)
        return describe(made[0], [])

    return claims.once(ctx, "vol", token, find, make)


def _asked_for(image: Image) -> tuple[int, str, str]:
    """What the CreateVolume that made the volume asked for (the zone is the only one): size, type, snapshot."""
    t = image.template
    return size_gib(image), t.get("EC2_VOLUME_TYPE") or "standard", t.get("EC2_SNAPSHOT_ID") or ""


def _create(ctx: Context, vtype: str, size: int, snapshot: Image | None, tags: dict, token: str | None) -> int:
    # a copy's template is its source's: what no request gave is written empty, which the readers take as absent
    marks = [("EBS_VOLUME", "YES"), ("EC2_VOLUME_TYPE", vtype), ("EC2_TAGS", tagging.dump(tags))]
    marks.append(("EC2_CLIENT_TOKEN", token or ""))
    name = f"ec2-vol-{uuid.uuid4().hex}"  # oned's image names are unique per owner
    if snapshot is None:
        body = [("NAME", name), ("TYPE", "DATABLOCK"), ("PERSISTENT", "YES"), ("SIZE", str(size * MIB))]
        if ctx.config.ebs_fstype:
            body.append(("FS", ctx.config.ebs_fstype))
        return ctx.session.image_allocate(tpl.serialize(body + marks), ctx.config.datastore_id)
    # the copy has the snapshot's template: what made it a snapshot is undone, by a merge
    image_id = ctx.session.image_clone(snapshot.id, name)
    undo = [("EBS_SNAPSHOT", "NO"), ("EC2_AMI", "NO"), ("EC2_VOLUME_ID", ""), ("DESCRIPTION", "")]
    origin = [("EC2_SNAPSHOT_ID", ids.fmt("snap", snapshot.id))]
    with dropped_if_failed(ctx, image_id):
        ctx.session.image_update(image_id, tpl.serialize(marks + undo + origin))
        ctx.session.image_persistent(image_id, True)
    return image_id


@contextlib.contextmanager
def dropped_if_failed(ctx: Context, image_id: int):
    """A copy oned made whose marking failed is removed: half a volume (or snapshot) is none."""
    try:
        yield
    except EC2Error:
        with contextlib.suppress(EC2Error):
            ctx.session.image_delete(image_id)
        raise


# ---------------------------------------------------------------- DescribeVolumes


def _attached(key: str):
    """A filter on every attachment's *key*."""
    return lambda v: [str(a[key]) for a in v["Attachments"] if a.get(key) is not None]


_FILTERS = {
    "volume-id": lambda v: [v["VolumeId"]],
    "status": lambda v: [v["State"]],
    "size": lambda v: [str(v["Size"])],
    "volume-type": lambda v: [v["VolumeType"]],
    "availability-zone": lambda v: [v["AvailabilityZone"]],
    "snapshot-id": lambda v: present(v["SnapshotId"]),
    "create-time": lambda v: [v["CreateTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z")],
    "encrypted": lambda v: flag(v["Encrypted"]),
    "multi-attach-enabled": lambda v: flag(v["MultiAttachEnabled"]),
    "fast-restored": lambda v: flag(False),
    "attachment.instance-id": _attached("InstanceId"),
    "attachment.device": _attached("Device"),
    "attachment.status": _attached("State"),
    "attachment.attach-time": lambda v: [
        a["AttachTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z") for a in v["Attachments"] if a.get("AttachTime")
    ],  # fmt: skip
    "attachment.delete-on-termination": lambda v: [flag(False)[0] for _ in v["Attachments"]],
    "tag-key": lambda v: [t["Key"] for t in v["Tags"] or []],
}


@action("DescribeVolumes", reads=("VolumeIds", "Filters", "MaxResults", "NextToken"))
def describe_volumes(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _FILTERS)
    limit = paging.max_results(p, MIN_RESULTS, MAX_RESULTS)
    offset = paging.offset(p.get("NextToken"))
    if p.get("VolumeIds"):
        if limit is not None:
            raise EC2Error("InvalidParameterCombination", "VolumeIds cannot be combined with MaxResults.")
        images = {i.id: i for i in (get_volume(ctx, text) for text in p["VolumeIds"])}.values()
    else:
        images = [i for i in ctx.session.images(mine=True) if is_volume(i)]
    read: dict = {}
    keep = matcher(filters, _FILTERS)
    items = [d for i in sorted(images, key=lambda i: i.id) if keep(d := describe(i, _attachments(ctx, i, read)))]
    if not limit:
        return {"Volumes": items[offset:]}
    more = len(items) > offset + limit
    return {"Volumes": items[offset : offset + limit], "NextToken": paging.token(offset + limit) if more else None}


# ---------------------------------------------------------------- AttachVolume, DetachVolume


def _target(device: str) -> str:
    m = DEVICE.fullmatch(device or "")
    if not m:
        raise invalid("Device", device, f"{device} is not a valid EBS device name: use /dev/sdX or /dev/xvdX.")
    return m.group(1)


def _busy(what: str) -> EC2Error:
    return EC2Error("IncorrectInstanceState", f"{what} is busy with another request: try again.")


@contextlib.contextmanager
def held(keys: list[tuple], what: str = "The volume"):
    """The locks of *keys* (`locks.holding`'s order), each waited for LOCK_WAIT seconds at most: a
    request queued behind another's wait on oned answers busy rather than hold a worker too."""
    with contextlib.ExitStack() as stack:
        for key in sorted(set(keys)):
            if not (taken := lock(*key)).acquire(timeout=LOCK_WAIT):
                raise _busy(what)
            stack.callback(taken.release)
        yield


def settled(ctx: Context, vmid: int) -> tuple[VM, list]:
    """The VM and its template once oned has ended the disk work it is doing (a hot-plug, a save):
    oned refuses another meanwhile, which EC2 would take. HOTPLUG_WAIT seconds at most, then as it is;
    busy at once when enough other requests wait already."""
    read = ctx.session.vm_with_template(vmid)
    if not _hotplugging(read[0]):
        return read

    def done() -> bool:
        nonlocal read
        read = ctx.session.vm_with_template(vmid)
        return not _hotplugging(read[0])

    if waits.until(done, HOTPLUG_WAIT, poll=0.2) is None:
        raise _busy(f"The instance '{ids.fmt('i', vmid)}'")
    return read


def _hotplugging(vm: VM) -> bool:
    return vm.state == VM_STATE.ACTIVE and states.LCM_SHORT.get(vm.lcm_state) in ("hotp", "snap")


def _check_instance_state(vm: VM) -> None:
    running = vm.state == VM_STATE.ACTIVE and vm.lcm_state == LCM_STATE.RUNNING
    if not running and vm.state not in ATTACHABLE:
        raise EC2Error(
            "IncorrectInstanceState",
            f"The instance '{ids.fmt('i', vm.id)}' is not 'running' or 'stopped': disks are attached and"
            " detached here only then.",
        )


def _locks(vmid: int, image_id: int) -> list[tuple]:
    """The VM's (its EC2_VOLUMES is read, changed and written) and the volume's (checked, then attached)."""
    return [("vm-volumes", vmid), ("volume", image_id)]


@action("AttachVolume", reads=("VolumeId", "InstanceId", "Device"), changes=True)
def attach_volume(ctx: Context, p: dict) -> dict:
    text, instance, device = p["VolumeId"], p["InstanceId"], p["Device"]
    target = _target(device)
    volume = get_volume(ctx, text)
    vm = ids.read(instance, "i", ctx.session.vm)
    vid = ids.fmt("vol", volume.id)
    with held(_locks(vm.id, volume.id), f"The instance '{ids.fmt('i', vm.id)}'"):
        vm, body = settled(ctx, vm.id)
        volume = ctx.session.image(volume.id)  # as it is now, under its lock
        if volume.vms:
            raise EC2Error("VolumeInUse", f"{vid} is already attached to an instance")
        if volume_state(volume) != "available":
            raise EC2Error("IncorrectState", f"The volume '{vid}' is not 'available'.")
        if copying(volume):
            raise EC2Error("IncorrectState", f"A snapshot of the volume '{vid}' is being made: try again once it is.")
        _check_instance_state(vm)
        if any(tpl.vget(d, "TARGET") == target for d in _disks(body)):
            raise invalid("Device", device, f"Attachment point {device} is already in use.")
        if ctx.dry_run:
            ctx.session.decide_dry_run([("MANAGE", "VM", vm.id), ("USE", "IMAGE", volume.id)])
        now = int(time.time())
        record = noted(vm)
        # noted first, so that the disk oned marks ATTACH reads as attaching; taken back if oned refuses
        _note(ctx, vm, {**record, vid: [device, now]})
        try:
            ctx.session.vm_attach(vm.id, tpl.serialize([("DISK", [("IMAGE_ID", str(volume.id)), ("TARGET", target)])]))
        except EC2Error:
            _note(ctx, vm, record)
            raise
        finally:
            ctx.session.vm(vm.id)  # the listings' copy of the VM's EC2 attributes
    attachment = {"VolumeId": vid, "InstanceId": ids.fmt("i", vm.id), "Device": device, "State": "attaching"}
    return {**attachment, "AttachTime": when(now), "DeleteOnTermination": False}


@action("DetachVolume", reads=("VolumeId", "InstanceId", "Device"), ignored=("Force",), changes=True)
def detach_volume(ctx: Context, p: dict) -> dict:
    """oned detaches a disk without asking the guest (``one.vm.detach``): every detach is as forced as
    OpenNebula makes it, so ``Force`` changes nothing."""
    text, instance, device = p["VolumeId"], p.get("InstanceId"), p.get("Device")
    volume = get_volume(ctx, text)
    vid = ids.fmt("vol", volume.id)
    if not volume.vms:
        raise EC2Error("IncorrectState", f"Volume '{vid}' is in the '{volume_state(volume)}' state.")
    vmid = volume.vms[0]
    if instance is not None and ids.parse(instance, "i") != vmid:
        raise _no_attachment(vid, instance)
    with held(_locks(vmid, volume.id), f"The instance '{ids.fmt('i', vmid)}'"):
        vm, body = settled(ctx, vmid)
        disk = disk_of(body, volume.id)
        attachment = _attachment(volume, vm, disk)
        if disk is None or (device is not None and device != attachment["Device"]):
            raise _no_attachment(vid, device or ids.fmt("i", vmid))
        _check_instance_state(vm)
        if ctx.dry_run:
            ctx.session.decide_dry_run([("MANAGE", "VM", vm.id)])
        record = noted(vm)
        if vid in record:  # first: the disk oned marks ATTACH then reads as detaching
            _note(ctx, vm, {k: v for k, v in record.items() if k != vid})
        try:
            ctx.session.vm_detach(vm.id, int(tpl.vget(disk, "DISK_ID")))
        except EC2Error:
            if vid in record:
                _note(ctx, vm, record)
            raise
        finally:
            ctx.session.vm(vm.id)
    waits.until(lambda: not _still(ctx, volume.id, lambda image: image.vms), SETTLE_WAIT)
    return {**attachment, "State": "detaching"}


def _still(ctx: Context, image_id: int, test) -> bool:
    """Whether the image is still there and passes *test*."""
    try:
        return bool(test(ctx.session.image(image_id)))
    except EC2Error as e:
        if e.status >= 500:
            raise
        return False


def _no_attachment(vid: str, other: str) -> EC2Error:
    return EC2Error("InvalidAttachment.NotFound", f"The volume '{vid}' is not attached to '{other}'.")


# ---------------------------------------------------------------- DeleteVolume


@action("DeleteVolume", reads=("VolumeId",), changes=True)
def delete_volume(ctx: Context, p: dict) -> dict:
    volume = get_volume(ctx, p["VolumeId"])
    vid = ids.fmt("vol", volume.id)
    if volume.vms:
        raise EC2Error("VolumeInUse", f"Volume {vid} is currently attached to {ids.fmt('i', volume.vms[0])}")
    if copying(volume):  # EC2 deletes it and completes the snapshot; oned cannot
        raise EC2Error("IncorrectState", f"A snapshot of the volume '{vid}' is being made: delete it once it is.")
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "IMAGE", volume.id)])
    if volume.state != IMAGE_STATES.DELETE:  # already going: as EC2, deleting a deleting volume succeeds
        ctx.session.image_delete(volume.id)
    waits.until(lambda: not _still(ctx, volume.id, lambda image: True), SETTLE_WAIT)
    return {}

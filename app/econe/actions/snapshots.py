"""CreateSnapshot, DescribeSnapshots, DeleteSnapshot.

A snapshot ``snap-%08d`` is an image marked ``EBS_SNAPSHOT="YES"``, not persistent, with the volume it
was taken of in ``EC2_VOLUME_ID`` and its description in ``DESCRIPTION``: a copy of a detached volume
(``one.image.clone``), or the disk of the VM an attached one is in (``one.vm.disksaveas``). The marks
are merged into the copy's template, which oned copied from the volume. An image CreateImage made is
a snapshot too (``EC2_AMI`` and ``EBS_SNAPSHOT``), as an EBS-backed AMI's disk is."""

from __future__ import annotations

import uuid

from one import template as tpl
from one.codes import IMAGE_STATES

from .. import ids
from ..errors import EC2Error
from ..objects import Image
from . import paging, tagging
from .filters import check_names, flag, matcher, present
from .images import owned_by, usable_by
from .registry import Context, action
from .volumes import (
    disk_of,
    dropped_if_failed,
    get_snapshot,
    get_volume,
    is_snapshot,
    settled,
    size_gib,
    volume_state,
    when,
)

MIN_RESULTS, MAX_RESULTS = 5, 1000  # DescribeSnapshots' bounds of MaxResults
_PENDING = (IMAGE_STATES.INIT, IMAGE_STATES.LOCKED, IMAGE_STATES.LOCKED_USED, IMAGE_STATES.LOCKED_USED_PERS)


def snapshot_state(image: Image) -> str | None:
    """pending while oned copies the disk, error when it failed, completed after; None: being deleted."""
    if image.state == IMAGE_STATES.DELETE:
        return None
    if image.state in _PENDING:
        return "pending"
    if image.state in (IMAGE_STATES.ERROR, IMAGE_STATES.DISABLED):
        return "error"
    return "completed"


def describe(image: Image) -> dict | None:
    state = snapshot_state(image)
    if state is None:
        return None
    t = image.template
    return {
        "SnapshotId": ids.fmt("snap", image.id),
        "VolumeId": t.get("EC2_VOLUME_ID") or None,
        "State": state,
        "StartTime": when(image.regtime),
        "Progress": "100%" if state == "completed" else "0%",
        "OwnerId": str(image.uid),
        "Description": t.get("DESCRIPTION", ""),
        "VolumeSize": size_gib(image),
        "Encrypted": False,
        "Tags": tagging.as_list(tagging.load(t.get("EC2_TAGS"))),
    }


# ---------------------------------------------------------------- CreateSnapshot


@action(
    "CreateSnapshot",
    reads=("VolumeId", "Description", "TagSpecifications"),
    stored=("Description", "TagSpecifications"),
    changes=True,
)
def create_snapshot(ctx: Context, p: dict) -> dict:
    text, description = p["VolumeId"], p.get("Description") or ""
    tags = tagging.from_specifications(p.get("TagSpecifications", []), "snapshot")
    volume = get_volume(ctx, text)
    vid = ids.fmt("vol", volume.id)
    if volume_state(volume) not in ("available", "in-use"):
        raise EC2Error("IncorrectState", f"The volume '{vid}' is '{volume_state(volume)}'.")
    name = f"ec2-snap-{uuid.uuid4().hex}"  # oned's image names are unique per owner
    if volume.vms:  # attached: the disk as the VM has it
        vmid = volume.vms[0]
        disk = disk_of(settled(ctx, vmid)[1], volume.id)
        if disk is None:
            raise EC2Error("IncorrectState", f"The volume '{vid}' is being attached or detached.")
        if ctx.dry_run:
            ctx.session.decide_dry_run([("MANAGE", "VM", vmid), ("CREATE", "IMAGE", None)])
        image_id = ctx.session.vm_disksaveas(vmid, int(tpl.vget(disk, "DISK_ID")), name)
    else:
        if ctx.dry_run:
            ctx.session.decide_dry_run([("USE", "IMAGE", volume.id), ("CREATE", "IMAGE", None)])
        image_id = ctx.session.image_clone(volume.id, name)
    marks = [
        ("EBS_VOLUME", "NO"),
        ("EBS_SNAPSHOT", "YES"),
        ("EC2_AMI", "NO"),
        ("EC2_VOLUME_ID", vid),
        ("DESCRIPTION", description),
        ("EC2_TAGS", tagging.dump(tags)),
        ("EC2_CLIENT_TOKEN", ""),  # the volume's, which oned copied: empty is absent to the readers
        ("EC2_SNAPSHOT_ID", ""),
    ]
    with dropped_if_failed(ctx, image_id):
        ctx.session.image_update(image_id, tpl.serialize(marks))
        if ctx.session.image(image_id).persistent:  # oned's copy of a persistent volume is persistent too
            ctx.session.image_persistent(image_id, False)
    return describe(ctx.session.image(image_id)) or {}


# ---------------------------------------------------------------- DescribeSnapshots

_FILTERS = {
    "snapshot-id": lambda s: [s["SnapshotId"]],
    "volume-id": lambda s: present(s["VolumeId"]),
    "status": lambda s: [s["State"]],
    "owner-id": lambda s: [s["OwnerId"]],
    "description": lambda s: present(s["Description"]),
    "progress": lambda s: [s["Progress"]],
    "start-time": lambda s: [s["StartTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z")],
    "volume-size": lambda s: [str(s["VolumeSize"])],
    "encrypted": lambda s: flag(s["Encrypted"]),
    "tag-key": lambda s: [t["Key"] for t in s["Tags"] or []],
}


@action(
    "DescribeSnapshots",
    reads=("SnapshotIds", "OwnerIds", "RestorableByUserIds", "Filters", "MaxResults", "NextToken"),
)
def describe_snapshots(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _FILTERS)
    limit = paging.max_results(p, MIN_RESULTS, MAX_RESULTS)
    offset = paging.offset(p.get("NextToken"))
    owners, users = p.get("OwnerIds", []), p.get("RestorableByUserIds", [])
    uid = ctx.session.whoami()[0] if owners or users else -1
    restorable = usable_by(users, uid, "RestorableBy")
    if p.get("SnapshotIds"):
        if limit is not None:
            raise EC2Error("InvalidParameterCombination", "SnapshotIds cannot be combined with MaxResults.")
        images = []
        for text in p["SnapshotIds"]:
            image = get_snapshot(ctx, text)
            if snapshot_state(image) is None:
                raise ids.not_found("snap", text)
            images.append(image)
        images = list({i.id: i for i in images}.values())
    else:
        images = [i for i in ctx.session.images() if is_snapshot(i)]
    if owners:
        images = [i for i in images if any(owned_by(i, o, uid) for o in owners)]
    if users:
        images = [i for i in images if restorable(i)]
    keep = matcher(filters, _FILTERS)
    items = [d for i in sorted(images, key=lambda i: i.id) if (d := describe(i)) and keep(d)]
    if not limit:
        return {"Snapshots": items[offset:]}
    more = len(items) > offset + limit
    return {"Snapshots": items[offset : offset + limit], "NextToken": paging.token(offset + limit) if more else None}


# ---------------------------------------------------------------- DeleteSnapshot


@action("DeleteSnapshot", reads=("SnapshotId",), changes=True)
def delete_snapshot(ctx: Context, p: dict) -> dict:
    image = get_snapshot(ctx, p["SnapshotId"])
    sid = ids.fmt("snap", image.id)
    if image.template.get("EC2_AMI", "").upper() == "YES":  # as EC2: deregister the AMI first
        raise EC2Error("InvalidSnapshot.InUse", f"The snapshot {sid} is currently in use by {ids.fmt('ami', image.id)}")
    if image.vms:
        raise EC2Error("InvalidSnapshot.InUse", f"The snapshot {sid} is currently in use by an instance")
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "IMAGE", image.id)])
    if image.state != IMAGE_STATES.DELETE:
        ctx.session.image_delete(image.id)
    return {}


# ---------------------------------------------------------------- DescribeSnapshotAttribute


@action("DescribeSnapshotAttribute", reads=("SnapshotId", "Attribute"))
def describe_snapshot_attribute(ctx: Context, p: dict) -> dict:
    """``createVolumePermission``: ``all`` when anyone may use the image (OTHER use permission); the
    users and groups OpenNebula also lets use it are its permissions and ACLs, not listed here.
    ``productCodes``: none."""
    attribute = p["Attribute"]
    image = get_snapshot(ctx, p["SnapshotId"])
    out = {"SnapshotId": ids.fmt("snap", image.id)}
    if attribute == "createVolumePermission":
        return {**out, "CreateVolumePermissions": [{"Group": "all"}] if image.public else []}
    if attribute == "productCodes":
        return {**out, "ProductCodes": []}
    raise EC2Error("InvalidParameterValue", f"Value ({attribute}) for parameter attribute is invalid.")

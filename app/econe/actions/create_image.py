"""CreateImage and DeregisterImage: an AMI saved from an instance's first disk, as an EBS-backed one.

CreateImage saves DISK_ID 0 of the VM with ``one.vm.disksaveas`` as a new image of the requesting user,
named as the request names it (oned keeps image names unique per owner), and marks it ``EC2_AMI`` and
``EBS_SNAPSHOT``: the image is the AMI and also the snapshot its root device names. DeregisterImage
marks it ``EC2_AMI="NO"``: it stays a snapshot, unless DeleteAssociatedSnapshots removes it."""

from __future__ import annotations

import re

from one import template as tpl
from one.codes import LCM_STATE, VM_STATE

from .. import ids
from ..errors import EC2Error, invalid
from . import tagging
from .images import get_ami
from .registry import Context, action
from .volumes import dropped_if_failed, is_snapshot

# EC2's rule for an AMI name; oned refuses two of its characters in any name (PoolObjectSQL::name_is_valid)
NAME = re.compile(r"[A-Za-z0-9()\[\] ./\-'@_]{3,128}")
ONED_REFUSES = "/'"
MAX_DESCRIPTION = 255  # characters, as EC2
ROOT_DISK = 0  # RunInstances puts the AMI's disk first: DISK_ID 0
# VirtualMachine::set_saveas_state: oned saves a disk of a VM in these states, and of no other
SAVABLE = {VM_STATE.POWEROFF, VM_STATE.SUSPENDED, VM_STATE.UNDEPLOYED, VM_STATE.STOPPED}
TAGGABLE = ("image", "snapshot")  # both go on the one image: it is the AMI and its snapshot


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise invalid(
            "Name", name, "An AMI name is 3 to 128 characters of letters, digits and ( ) [ ] . / - ' @ _ or space."
        )
    if any(c in ONED_REFUSES for c in name):
        raise invalid("Name", name, "OpenNebula names may not hold / or '.")
    return name


def tags_of(specs: list[dict]) -> dict[str, str]:
    """The tags TagSpecification.N gives the image and its snapshot, which are one image: a key given
    two values cannot be kept."""
    for spec in specs:
        if spec.get("ResourceType") not in TAGGABLE:
            kind = spec.get("ResourceType")
            raise EC2Error(
                "InvalidParameterValue", f"'{kind}' is not a valid taggable resource type for this operation."
            )
    tags: dict[str, str] = {}
    for kind in TAGGABLE:
        for key, value in tagging.from_specifications([s for s in specs if s["ResourceType"] == kind], kind).items():
            if tags.setdefault(key, value) != value:
                raise invalid("TagSpecification", key, "The image is its own snapshot: a tag has one value.")
    tagging.check(tags)
    return tags


def savable(state: int, lcm_state: int) -> bool:
    return (state == VM_STATE.ACTIVE and lcm_state == LCM_STATE.RUNNING) or state in SAVABLE


@action(
    "CreateImage",
    reads=("InstanceId", "Name", "Description", "BlockDeviceMappings", "TagSpecifications"),
    ignored=("NoReboot",),  # the disk is saved as it is, never with a reboot (the README's CreateImage row)
    stored=("Name", "Description", "TagSpecifications"),
    changes=True,
)
def create_image(ctx: Context, p: dict) -> dict:
    name = check_name(p["Name"])
    description = p.get("Description") or ""
    if len(description) > MAX_DESCRIPTION:
        raise invalid("Description", "...", f"A description is at most {MAX_DESCRIPTION} characters.")
    if p.get("BlockDeviceMappings"):
        raise EC2Error(
            "InvalidBlockDeviceMapping",
            "Only the instance's root disk is saved here: BlockDeviceMappings cannot be honoured.",
        )
    tags = tags_of(p.get("TagSpecifications", []))
    vm, template = ids.read(p["InstanceId"], "i", ctx.session.vm_with_template)
    if not savable(vm.state, vm.lcm_state):
        raise EC2Error(
            "IncorrectInstanceState",
            f"The instance '{p['InstanceId']}' is not in a state from which its disk can be saved.",
        )
    disks = [dict(v) for k, v in template if k == "DISK" and isinstance(v, list)]
    if not any(d.get("DISK_ID") == str(ROOT_DISK) and d.get("IMAGE_ID") for d in disks):
        raise EC2Error("UnsupportedOperation", f"The instance '{p['InstanceId']}' has no root disk made from an image.")
    uid = ctx.session.whoami()[0]
    if any(i.uid == uid and i.name == name for i in ctx.session.images()):
        raise EC2Error("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by an image of this account.")
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "VM", vm.id), ("CREATE", "IMAGE", None)])
    image_id = ctx.session.vm_disksaveas(vm.id, ROOT_DISK, name)
    marks = [("EC2_AMI", "YES"), ("EBS_SNAPSHOT", "YES")]
    marks += [("DESCRIPTION", description)] if description else []
    marks += [("EC2_TAGS", tagging.dump(tags))] if tags else []
    with dropped_if_failed(ctx, image_id):  # half an AMI is none
        ctx.session.image_update(image_id, tpl.serialize(marks))
    return {"ImageId": ids.fmt("ami", image_id)}


@action("DeregisterImage", reads=("ImageId", "DeleteAssociatedSnapshots"), changes=True)
def deregister_image(ctx: Context, p: dict) -> dict:
    image = get_ami(ctx, p["ImageId"])
    remove = bool(p.get("DeleteAssociatedSnapshots"))
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "IMAGE", image.id)])
    ctx.session.image_update(image.id, tpl.serialize([("EC2_AMI", "NO")]))
    if not (remove and is_snapshot(image)):
        return {"Return": True}
    try:
        ctx.session.image_delete(image.id)
        code = "success"
    except EC2Error as e:  # a VM still uses it: it stays a snapshot, and the answer says so
        if e.status >= 500:
            raise
        ctx.log.info("the snapshot of %s was not deleted: %s", p["ImageId"], e.detail or e.code)
        code = "client-error"
    return {"Return": True, "DeleteSnapshotResults": [{"SnapshotId": ids.fmt("snap", image.id), "ReturnCode": code}]}

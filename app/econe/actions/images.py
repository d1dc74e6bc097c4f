"""DescribeImages, RegisterImage, and the OpenNebula-only UploadImage."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from one import template as tpl
from one.codes import IMAGE_STATES

from .. import ids, states
from ..errors import EC2Error
from ..objects import Image
from . import tagging
from .filters import wildcards
from .registry import Context, action
from .volumes import is_snapshot, is_volume, size_gib

LOCKED = IMAGE_STATES.LOCKED  # oned's image state while it copies the file
READY_WAIT = 600  # seconds an upload waits for oned to finish copying the staged file
ARCHITECTURE = "x86_64"  # when the image's template names none


def describe(image: Image) -> dict | None:
    state = states.image_state(image.state)
    if state is None:
        return None
    return {
        **_root_device(image),
        "ImageId": ids.fmt("ami", image.id),
        "ImageLocation": image.name,
        "State": state,
        "OwnerId": str(image.uid),
        "CreationDate": datetime.fromtimestamp(image.regtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "Public": image.public,
        "Architecture": image.arch or ARCHITECTURE,
        "ImageType": "machine",
        "Name": image.name,
        "Description": image.template.get("DESCRIPTION") or None,
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "Tags": tagging.as_list(tagging.load(image.template.get("EC2_TAGS"))),
    }


def _root_device(image: Image) -> dict:
    """An image CreateImage made is also its own snapshot (``EBS_SNAPSHOT``): EBS-backed, its root device
    the snapshot ``snap-<same id>``, named as oned names the first disk of a VM launched from it (its
    DEV_PREFIX and ``a``). Any other image is the VM's copy of a file: ``instance-store``."""
    if not is_snapshot(image):
        return {"RootDeviceType": "instance-store"}
    device = f"/dev/{image.template.get('DEV_PREFIX') or 'sd'}a"
    ebs = {"SnapshotId": ids.fmt("snap", image.id), "VolumeSize": size_gib(image),
           "DeleteOnTermination": True, "VolumeType": "standard", "Encrypted": False}  # fmt: skip
    return {
        "RootDeviceType": "ebs",
        "RootDeviceName": device,
        "BlockDeviceMappings": [{"DeviceName": device, "Ebs": ebs}],
    }


def is_ami(image: Image) -> bool:
    """What an id names as an AMI: a registered image, or one never marked either way (the original
    described any image by id); not one deregistered (``EC2_AMI="NO"``), nor a volume or snapshot
    that is not also an AMI."""
    mark = image.template.get("EC2_AMI", "").upper()
    return mark == "YES" or (mark != "NO" and not is_volume(image) and not is_snapshot(image))


def _filters(filters: list[dict]):
    fields = {
        "image-id": "ImageId",
        "name": "Name",
        "state": "State",
        "owner-id": "OwnerId",
        "architecture": "Architecture",
        "image-type": "ImageType",
    }
    for f in filters:
        name = f.get("Name") or ""
        if name not in fields and name != "tag-key" and not name.startswith("tag:"):
            raise EC2Error("InvalidParameterValue", f"The filter '{f.get('Name')}' is invalid")

    def values(name: str, item: dict) -> list[str]:
        tags = item["Tags"] or []
        if name == "tag-key":
            return [t["Key"] for t in tags]
        if name.startswith("tag:"):
            return [t["Value"] for t in tags if t["Key"] == name[4:]]
        return [str(item[fields[name]])]

    tests = [(f["Name"], wildcards(f.get("Values", []))) for f in filters]

    def keep(item: dict) -> bool:
        return all(any(map(test, values(name, item))) for name, test in tests)

    return keep


@action(
    "DescribeImages",
    reads=("ImageIds", "Owners", "Filters", "ExecutableUsers"),
    ignored=("IncludeDeprecated", "IncludeDisabled"),
)
def describe_images(ctx: Context, p: dict) -> dict:
    keep = _filters(p.get("Filters", []))
    owners, users = p.get("Owners", []), p.get("ExecutableUsers", [])
    uid = ctx.session.whoami()[0] if owners or users else None
    executable = usable_by(users, uid)
    if p.get("ImageIds"):
        images = [i for i in (get_image(ctx, text) for text in p["ImageIds"]) if is_ami(i)]
    else:
        images = [i for i in ctx.session.images() if i.template.get("EC2_AMI", "").upper() == "YES"]
    if owners:
        images = [i for i in images if any(owned_by(i, o, uid) for o in owners)]
    if users:
        images = [i for i in images if executable(i)]
    items = [d for i in sorted(images, key=lambda i: i.id) if (d := describe(i)) and keep(d)]
    return {"Images": items}


def owned_by(image: Image, owner: str, uid: int) -> bool:
    """Owner.N: ``self``, a numeric user id or a user name; anything else matches nothing, as on EC2."""
    return (owner == "self" and image.uid == uid) or owner in (str(image.uid), image.uname)


def usable_by(users: list[str], uid: int | None, parameter: str = "ExecutableBy"):
    """ExecutableUsers.N (RestorableByUserIds.N of snapshots): every image a user is shown is one it may
    use (oned lists what it may USE), so ``self`` and the caller's own id keep them all and ``all``
    keeps the public ones. Other accounts' rights are OpenNebula permissions this service cannot read:
    refused."""
    for user in users:
        if user not in ("self", "all", str(uid)):
            raise EC2Error(
                "InvalidParameterValue",
                f"{parameter} '{user}' is not supported on this cloud: use self, all or your own account id ({uid}).",
            )
    if "self" in users or str(uid) in users:
        return lambda image: True
    return lambda image: image.public


def get_image(ctx: Context, text: str) -> Image:
    return ids.read(text, "ami", ctx.session.image)


@action(
    "RegisterImage",
    reads=("ImageLocation", "Description"),
    ignored=("Name", "Architecture", "RootDeviceName", "VirtualizationType"),  # the image keeps its own
    optional=("Name",),
    stored=("Description",),
    changes=True,
)
def register_image(ctx: Context, p: dict) -> dict:
    location = p.get("ImageLocation")
    if not location:
        raise EC2Error("MissingParameter", "The request must contain the parameter ImageLocation")
    image = get_image(ctx, location)
    if image.template.get("EBS_VOLUME") == "YES" or image.template.get("EBS_SNAPSHOT") == "YES":
        raise EC2Error("InvalidParameterValue", f"{location} is a volume or snapshot, not a machine image.")
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "IMAGE", image.id)])
    attrs = [("EC2_AMI", "YES")]
    if p.get("Description"):
        attrs.append(("DESCRIPTION", p["Description"]))
    ctx.session.image_update(image.id, tpl.serialize(attrs))
    return {"ImageId": ids.fmt("ami", image.id)}


@action("UploadImage", changes=True, takes_file=True)
def upload_image(ctx: Context, p: dict) -> dict:
    """The uploaded file (staged in tmpdir; the web layer removes it once this returns, by when oned
    has copied it) as a new image of the user. OpenNebula's own action: botocore does not model it,
    and it takes no other parameter."""
    body = [("NAME", f"ec2-{uuid.uuid4()}"), ("TYPE", "OS"), ("PATH", p["File"]), ("EC2_AMI", "YES")]
    image_id = ctx.session.image_allocate(tpl.serialize(body), ctx.config.datastore_id)
    deadline = time.time() + READY_WAIT
    while ctx.session.image(image_id).state == LOCKED and time.time() < deadline:
        time.sleep(0.2)  # a real oned copies the file in the background: keep it until then
    return {"imageId": ids.fmt("ami", image_id)}


def get_ami(ctx: Context, text: str) -> Image:
    """The image *text* names, when it is an AMI (`is_ami`); else ``InvalidAMIID.NotFound``, as EC2
    answers for an image deregistered."""
    image = get_image(ctx, text)
    if not is_ami(image):
        raise ids.not_found("ami", text)
    return image

"""one.image.* and one.imagepool.info. Files given by PATH are copied into the datastore."""

from __future__ import annotations

import math
import os
import shutil
import uuid

from one import template as tpl
from one.codes import IMAGE_STATES

from .. import snapshots
from ..cloud import Call
from ..errors import ACTION, ALLOCATE, INTERNAL, OneError, not_authorized
from ..registry import method
from . import common

TYPES = {"OS": 0, "CDROM": 1, "DATABLOCK": 2, "KERNEL": 3, "RAMDISK": 4, "CONTEXT": 5}
STEP = 0.03  # the datastore driver's copy or removal, as fast as oned's dummy driver
READY, USED, DISABLED, LOCKED, ERROR, CLONE, DELETE, USED_PERS = (
    IMAGE_STATES.READY,
    IMAGE_STATES.USED,
    IMAGE_STATES.DISABLED,
    IMAGE_STATES.LOCKED,
    IMAGE_STATES.ERROR,
    IMAGE_STATES.CLONE,
    IMAGE_STATES.DELETE,
    IMAGE_STATES.USED_PERS,
)
_RESERVED = ("NAME", "TYPE", "PATH", "SIZE", "FORMAT", "PERSISTENT", "SOURCE", "FS")


def _datastore_for(call: Call, ds_id: int) -> dict:
    ds = call.get("datastore", ds_id)
    if ds["TYPE"] == 1:
        raise OneError(INTERNAL, "New images cannot be allocated in a system datastore.")
    return ds


def _safe_path(ds: dict, path: str) -> str:
    """oned's SAFE_DIRS: an image file must come from one of them (never from onelite's own data)."""
    real = os.path.realpath(path)
    safe = (tpl.get(ds["TEMPLATE"], "SAFE_DIRS") or "").split()
    if not any(real == d or real.startswith(d.rstrip("/") + "/") for d in map(os.path.realpath, safe)):
        raise OneError(INTERNAL, f"Not allowed to copy image file {path}")
    if not os.path.isfile(real):
        raise OneError(INTERNAL, f"Cannot read image file {path}")
    return real


def copy_in(call: Call, ds: dict, src: str) -> tuple[str, int]:
    """Copy *src* into the datastore directory; (SOURCE, size in MiB)."""
    target_dir = os.path.join(call.cloud.image_dir, str(ds["ID"]))
    os.makedirs(target_dir, exist_ok=True)
    dest = os.path.join(target_dir, uuid.uuid4().hex)
    try:
        shutil.copyfile(src, dest)
    except OSError as e:
        if os.path.exists(dest):
            os.unlink(dest)
        raise OneError(INTERNAL, f"Cannot copy image file: {e.strerror}") from None
    return dest, max(1, math.ceil(os.path.getsize(dest) / 1048576))


def new_image(
    call: Call,
    name: str,
    ds: dict,
    itype: int,
    size: int,
    source: str,
    path: str,
    fmt: str,
    template: tpl.Template,
    persistent: int = 0,
    state: int = READY,
) -> dict:
    oid = call.db.next_id("image", 0)
    image = {
        "ID": oid,
        "NAME": name,
        "UID": call.uid,
        "GID": call.user["GID"],
        "PERMS": common.default_perms(call),
        "TYPE": itype,
        "PERSISTENT": persistent,
        "REGTIME": call.cloud.now(),
        "SOURCE": source,
        "PATH": path,
        "FORMAT": fmt,
        "SIZE": size,
        "STATE": state,
        "CLONING_ID": -1,
        "DATASTORE_ID": ds["ID"],
        "DATASTORE": ds["NAME"],
        "VMS": [],
        "CLONES": [],
        "TEMPLATE": tpl.merge([("DEV_PREFIX", "sd")], template),
        "_FRESH": True,  # not written since it was made (records: PREV_STATE)
    }
    call.db.put("image", image)
    ds["IMAGES"] = sorted(ds["IMAGES"] + [oid])
    call.db.put("datastore", ds)
    return image


def check_new_name(call: Call, name) -> None:
    """ImagePool::allocate's checks of a new image's name: every way of making one answers them."""
    prefix = "Error allocating a new image. "
    common.check_name(name, ALLOCATE, prefix)
    for other in call.db.by_name("image", name):
        if other["UID"] == call.uid:
            raise OneError(ALLOCATE, f"{prefix}NAME is already taken by IMAGE {other['ID']}.")


@method("one.image.allocate", str, int, bool, required=2)
def image_allocate(call: Call, text: str, ds_id: int, check_capacity: bool = True) -> int:
    t = common.parse_template(text)
    ds = _datastore_for(call, ds_id)
    call.authorize_create("image")
    call.authorize("datastore", ds, "USE")
    name = tpl.get(t, "NAME")
    check_new_name(call, name)
    type_name = (tpl.get(t, "TYPE") or "OS").upper()
    if type_name not in TYPES:
        raise OneError(INTERNAL, f"Wrong image type: {type_name}")
    path = tpl.get(t, "PATH") or ""
    persistent = 1 if str(tpl.get(t, "PERSISTENT", "NO")).upper() in ("YES", "1") else 0
    fmt = tpl.get(t, "FORMAT") or "raw"
    if path:
        source, size = copy_in(call, ds, _safe_path(ds, path))
    elif type_name == "DATABLOCK" and tpl.get(t, "SIZE"):
        try:
            size = int(tpl.get(t, "SIZE"))
        except ValueError:
            raise OneError(INTERNAL, "Wrong SIZE for image") from None
        source = "dummy_path"
    else:
        raise OneError(INTERNAL, "No PATH in template.")
    body = [(k, v) for k, v in t if k not in _RESERVED]
    # oned shows no SOURCE until the datastore driver has made the image (LOCKED, then READY)
    image = new_image(call, name, ds, TYPES[type_name], size, "", path, fmt, body, persistent, LOCKED)
    image["FS"] = tpl.get(t, "FS") or ""  # Image::insert keeps it out of the template, for the driver's mkfs
    driver_makes(call, image, SOURCE=source)
    return image["ID"]


def driver_makes(call: Call, image: dict, delay: float = STEP, **when_done) -> None:
    """The datastore driver is at work on *image*: what it sets when done waits in ``_DONE``."""
    image["_DONE"] = when_done
    call.db.put("image", image)
    call.cloud.owe(call.db, "image", image["ID"], call.cloud.clock() + delay)


def _drop_file(call: Call, image: dict) -> None:
    src = image["SOURCE"]
    if src.startswith(call.cloud.image_dir + os.sep) and os.path.isfile(src):
        os.unlink(src)


@method("one.image.delete", int, bool, required=1)
def image_delete(call: Call, oid: int, force: bool = False) -> int:
    image = call.get("image", oid)
    call.authorize("image", image, "MANAGE")
    if image["STATE"] == CLONE:  # ImageManager::delete_image
        raise OneError(ACTION, f"Cannot delete image. There are {len(image['CLONES'])} active clone operations.")
    if image["VMS"] or image["STATE"] in (USED, USED_PERS):
        raise OneError(ACTION, f"Cannot delete image. There are {len(image['VMS'])} VMs using it.")
    image["STATE"] = DELETE
    call.db.put("image", image)
    call.cloud.owe(call.db, "image", oid, call.cloud.clock() + STEP)
    return oid


def finish_delete(call: Call, image: dict) -> None:
    """The datastore driver removed the file: the image disappears."""
    _drop_file(call, image)
    ds = call.db.get("datastore", image["DATASTORE_ID"])
    if ds:
        ds["IMAGES"] = [i for i in ds["IMAGES"] if i != image["ID"]]
        call.db.put("datastore", ds)
    if image["CLONING_ID"] >= 0:
        release_clone(call, image)
    call.db.delete("image", image["ID"])


def release_clone(call: Call, image: dict) -> None:
    """ImageManager::release_cloning_resource: the source is READY again when no copy and no VM uses it."""
    src = call.db.get("image", image["CLONING_ID"])
    if src:
        src["CLONES"] = [c for c in src["CLONES"] if c != image["ID"]]
        if src["STATE"] in (USED, CLONE) and not src["CLONES"] and not src["VMS"]:
            src["STATE"] = READY
        call.db.put("image", src)


@method("one.image.info", int, bool, required=1)
def image_info(call: Call, oid: int, decrypt: bool = False) -> str:
    return common.info(call, "image", oid)


@method("one.imagepool.info", int, int, int)
def imagepool_info(call: Call, flag: int, start: int, end: int) -> str:
    def render(i):
        return common.render(call, "image", i)

    return "<IMAGE_POOL>" + common.owned_pool(call, "image", flag, start, end, render) + "</IMAGE_POOL>"


@method("one.image.update", int, str, int, required=2)
def image_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    return common.update(call, "image", oid, text, mode)


@method("one.image.chown", int, int, int)
def image_chown(call: Call, oid: int, uid: int, gid: int) -> int:
    return common.chown(call, "image", oid, uid, gid)


@method("one.image.chmod", int, int, int, int, int, int, int, int, int, int)
def image_chmod(call: Call, oid: int, *bits: int) -> int:
    return common.chmod(call, "image", oid, list(bits))


@method("one.image.rename", int, str)
def image_rename(call: Call, oid: int, name: str) -> int:
    return common.rename(call, "image", oid, name)


@method("one.image.enable", int, bool)
def image_enable(call: Call, oid: int, enable: bool) -> int:
    image = call.get("image", oid)
    call.authorize("image", image, "MANAGE")
    if image["STATE"] not in (READY, DISABLED):
        verb = "enable" if enable else "disable"
        raise OneError(
            INTERNAL, f"Could not {verb} image: Image cannot be in state {IMAGE_STATES(image['STATE']).name}."
        )
    image["STATE"] = READY if enable else DISABLED
    call.db.put("image", image)
    return oid


@method("one.image.persistent", int, bool)
def image_persistent(call: Call, oid: int, persistent: bool) -> int:
    image = call.get("image", oid)
    call.authorize("image", image, "MANAGE")
    # Image::persistent (Image.h): refused only while VMs use or clone it; a copy still being made
    # (LOCKED) may change, as econe's snapshots and volumes from snapshots do right after the clone
    if image["STATE"] not in (READY, DISABLED, LOCKED, ERROR, DELETE, IMAGE_STATES.INIT):
        what = "persistent" if persistent else "non-persistent"
        raise OneError(
            INTERNAL,
            f"Could not make image {what}: Image cannot be in state {IMAGE_STATES(image['STATE']).name}.",
        )
    image["PERSISTENT"] = int(persistent)
    call.db.put("image", image)
    return oid


@method("one.image.clone", int, str, int, required=2)
def image_clone(call: Call, oid: int, name: str, ds_id: int = -1) -> int:
    """ImageClone: the copy takes the source's template, type, format, size and persistence
    (Image::clone_template); an image with snapshots cannot be cloned."""
    src = call.get("image", oid)
    call.authorize("image", src, "USE")
    if src["TYPE"] not in (TYPES["OS"], TYPES["DATABLOCK"], TYPES["CDROM"]):
        raise OneError(ACTION, "KERNEL, RAMDISK, BACKUP and CONTEXT cannot be cloned.")
    if src.get("SNAPSHOTS", {}).get("SNAPSHOT"):
        raise OneError(ACTION, "Cannot clone images with snapshots")
    call.authorize_create("image")
    ds = _datastore_for(call, src["DATASTORE_ID"] if ds_id < 0 else ds_id)
    check_new_name(call, name)
    if src["STATE"] not in (READY, USED, CLONE):  # ImageManager::can_clone_image
        state = IMAGE_STATES(src["STATE"]).name
        raise OneError(ALLOCATE, f"Error allocating a new image. Cannot clone image in state: {state}")
    source = src["SOURCE"]
    if os.path.isfile(source):
        source, _ = copy_in(call, ds, source)
    clone = new_image(
        call,
        name,
        ds,
        src["TYPE"],
        src["SIZE"],
        "",  # oned shows no SOURCE until the copy is done, and the origin as PATH
        src["SOURCE"],
        src["FORMAT"],
        src["TEMPLATE"],
        src["PERSISTENT"],
        LOCKED,
    )
    clone["CLONING_ID"] = oid
    driver_makes(call, clone, SOURCE=source)
    src["CLONES"] = sorted(src["CLONES"] + [clone["ID"]])
    if src["STATE"] == READY:  # ImageManager::set_clone_state: busy while copied
        src["STATE"] = CLONE if src["PERSISTENT"] else USED
    call.db.put("image", src)
    return clone["ID"]


_DISK_TYPES, _FILE_TYPES = {"OS", "DATABLOCK", "CDROM"}, {"KERNEL", "RAMDISK", "CONTEXT"}


@method("one.image.chtype", int, str)
def image_chtype(call: Call, oid: int, type_name: str) -> int:
    """ImageChangeType: within the disk types or within the file types, in any state."""
    image = call.get("image", oid)
    call.authorize("image", image, "MANAGE")
    wanted = type_name.upper()
    current = next(k for k, v in TYPES.items() if v == image["TYPE"])
    group = _DISK_TYPES if current in _DISK_TYPES else _FILE_TYPES
    if (wanted if wanted in TYPES else "OS") not in group:  # Image::str_to_type reads an unknown name as OS
        raise OneError(ACTION, "Cannot change image type to an incompatible type for the current datastore.")
    if wanted not in ("OS", "DATABLOCK") and image.get("SNAPSHOTS", {}).get("SNAPSHOT"):
        raise OneError(INTERNAL, "Image with snapshots can be only of type OS or DATABLOCK")
    if wanted not in TYPES:
        raise OneError(INTERNAL, "Unknown type")  # oned's own text here is garbled (a C++ pointer sum)
    image["TYPE"] = TYPES[wanted]
    call.db.put("image", image)
    return oid


# ---------------------------------------------------------------- an image's own snapshots


def _snapshot_target(call: Call, oid: int, sid: int, verb: str) -> dict:
    """ImageManager's checks before a snapshot operation: an OS or DATABLOCK image, READY."""
    image = call.get("image", oid)
    call.authorize("image", image, "MANAGE")
    if image["TYPE"] not in (TYPES["OS"], TYPES["DATABLOCK"]):
        raise OneError(ACTION, "IMAGES of type KERNEL, RAMDISK, BACKUP and CONTEXT does not have snapshots.")
    if image["STATE"] != READY:
        raise OneError(ACTION, f"Cannot {verb} in state {IMAGE_STATES(image['STATE']).name}")
    return image


@method("one.image.snapshotdelete", int, int)
def image_snapshotdelete(call: Call, oid: int, sid: int) -> int:
    image = _snapshot_target(call, oid, sid, "delete snapshot")
    error = snapshots.image_delete_error(image.get("SNAPSHOTS", {}), sid)
    if error:
        raise OneError(ACTION, error)
    image["STATE"] = LOCKED
    driver_makes(call, image, SNAPSHOTS=snapshots.delete(image["SNAPSHOTS"], sid))
    return sid


@method("one.image.snapshotrevert", int, int)
def image_snapshotrevert(call: Call, oid: int, sid: int) -> int:
    image = _snapshot_target(call, oid, sid, "revert to snapshot")
    if not snapshots.exists(image.get("SNAPSHOTS", {}), sid):
        raise OneError(ACTION, "Snapshot does not exist")
    image["STATE"] = LOCKED
    driver_makes(call, image, SNAPSHOTS=snapshots.activate(image["SNAPSHOTS"], sid))
    return sid


@method("one.image.snapshotflatten", int, int)
def image_snapshotflatten(call: Call, oid: int, sid: int) -> int:
    """The snapshot becomes the image; the list is cleared (oned then writes an empty SNAPSHOTS)."""
    image = _snapshot_target(call, oid, sid, "flatten snapshot")
    if not snapshots.exists(image.get("SNAPSHOTS", {}), sid):
        raise OneError(ACTION, "Snapshot does not exist")
    image["STATE"] = LOCKED
    driver_makes(call, image, SNAPSHOTS={})
    return sid


def settle(call: Call, image: dict) -> None:
    """The datastore driver finished: a LOCKED image becomes READY, a DELETE one disappears."""
    if image["STATE"] == DELETE:
        finish_delete(call, image)
        return
    if image["STATE"] != LOCKED:
        return
    if image["CLONING_ID"] >= 0:
        release_clone(call, image)
    image.update(image.pop("_DONE", {}))
    image.pop("_FRESH", None)
    image["TEMPLATE"] = tpl.remove(image["TEMPLATE"], "SAVE_AS_HOT")  # a disk save is done
    image["CLONING_ID"] = -1
    image["STATE"] = USED_PERS if image["VMS"] and image["PERSISTENT"] else USED if image["VMS"] else READY
    call.db.put("image", image)


def use(call: Call, image: dict, vmid: int, attach: bool = False) -> None:
    """ImageManager::acquire_image: a VM takes the image, USED (or USED_PERS), RUNNING_VMS grows."""
    state, oid = image["STATE"], image["ID"]
    if image["TYPE"] not in (TYPES["OS"], TYPES["DATABLOCK"], TYPES["CDROM"]):
        type_name = next(k for k, v in TYPES.items() if v == image["TYPE"])
        raise OneError(INTERNAL, f"Image {oid} ({image['NAME']}) of type {type_name} cannot be used as DISK.")
    if state == USED_PERS and tpl.get(image["TEMPLATE"], "PERSISTENT_TYPE", "").upper() != "SHAREABLE":
        raise OneError(INTERNAL, f"Cannot acquire image {oid}, it is persistent and already in use")
    if state == LOCKED and attach:
        raise OneError(INTERNAL, f"Cannot acquire image {oid}, it is locked")
    if state not in (READY, USED, USED_PERS, LOCKED):
        raise OneError(INTERNAL, f"Cannot acquire image {oid}, it is in state: {IMAGE_STATES(state).name}")
    image["VMS"] = sorted(set(image["VMS"]) | {vmid})
    if state != LOCKED:  # a locked one is used once the driver is done (settle)
        image["STATE"] = USED_PERS if image["PERSISTENT"] else USED
    call.db.put("image", image)


def unuse(call: Call, image_id: int, vmid: int) -> None:
    image = call.db.get("image", image_id)
    if not image or vmid not in image["VMS"]:
        return
    image["VMS"] = [v for v in image["VMS"] if v != vmid]
    if not image["VMS"] and not image["CLONES"] and image["STATE"] in (USED, USED_PERS):
        image["STATE"] = READY
    call.db.put("image", image)


def check_use(call: Call, image: dict) -> None:
    if not call.can("image", image, "USE"):
        raise not_authorized(call.uid, "USE", "IMAGE", image["ID"])

"""CreateTags, DeleteTags, DescribeTags on instances (the VM's user template), images (the image's
template), security groups (the group's template), key pairs (their vector in the user's
template) and elastic IPs (their reservation network's template). Tags are kept as ``tagging``
says; an instance's ``Name`` tag also names the VM, as RunInstances does."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from one import template as tpl

from .. import ids
from ..errors import EC2Error, missing
from . import addresses, images, instances, keypairs, paging, secgroups, tagging, volumes
from .filters import check_names, wildcards
from .locks import holding
from .registry import Context, action

# EC2's resource type of each id prefix taggable here, in the order DescribeTags lists them
KINDS = {
    "i": "instance",
    "ami": "image",
    "vol": "volume",
    "snap": "snapshot",
    "sg": "security-group",
    "key": "key-pair",
    "eipalloc": "elastic-ip",
}


@dataclass
class Target:
    """A resource, its tags, the right oned asks to change them (None: the user's own), and how to write them."""

    id: str
    kind: str
    tags: dict
    need: tuple | None
    write: Callable[[dict, dict], None]  # (old tags, new tags)


def _kind(rid: str) -> str:
    prefix, dash, _ = rid.partition("-")
    if not dash or prefix not in KINDS:
        raise EC2Error("InvalidID", f"The ID '{rid}' is not valid, or is not a resource this cloud can tag.")
    return KINDS[prefix]


def _instance(ctx: Context, rid: str) -> Target:
    vm = instances.get_vm(ctx, rid)

    def write(old: dict, new: dict) -> None:
        if new.get("Name") and new["Name"] != old.get("Name"):  # first: oned may refuse the name
            ctx.session.vm_rename(vm.id, new["Name"])
        ctx.session.vm_update(vm.id, tpl.serialize([("EC2_TAGS", tagging.dump(new))]))
        ctx.session.vm(vm.id)  # remember the VM's new EC2 attributes for the listings

    tags = tagging.load(vm.user_template.get("EC2_TAGS"))
    return Target(ids.fmt("i", vm.id), "instance", tags, ("MANAGE", "VM", vm.id), write)


def _image(ctx: Context, rid: str) -> Target:
    image = images.get_image(ctx, rid)

    def write(old: dict, new: dict) -> None:
        ctx.session.image_update(image.id, tpl.serialize([("EC2_TAGS", tagging.dump(new))]))

    tags = tagging.load(image.template.get("EC2_TAGS"))
    return Target(ids.fmt("ami", image.id), "image", tags, ("MANAGE", "IMAGE", image.id), write)


def _ebs(kind: str, prefix: str, get: Callable):
    """The target maker of volumes or snapshots: images, tagged in their template as AMIs are."""

    def target(ctx: Context, rid: str) -> Target:
        image = get(ctx, rid)

        def write(old: dict, new: dict) -> None:
            ctx.session.image_update(image.id, tpl.serialize([("EC2_TAGS", tagging.dump(new))]))

        tags = tagging.load(image.template.get("EC2_TAGS"))
        return Target(ids.fmt(prefix, image.id), kind, tags, ("MANAGE", "IMAGE", image.id), write)

    return target


def _secgroup(ctx: Context, rid: str) -> Target:
    group = secgroups.get_group(ctx, rid)

    def write(old: dict, new: dict) -> None:  # a merge: the group's rules are left as they are
        ctx.session.secgroup_update(group.id, tpl.serialize([("EC2_TAGS", tagging.dump(new))]), merge=True)

    tags = tagging.load(tpl.get(group.template, "EC2_TAGS"))
    return Target(ids.fmt("sg", group.id), "security-group", tags, ("MANAGE", "SECGROUP", group.id), write)


def _key_pair(ctx: Context, rid: str) -> Target:
    pair = keypairs.by_id(ctx, rid)
    return Target(rid, "key-pair", pair.tags, None, lambda old, new: keypairs.retag(ctx, rid, lambda _: new))


def _address(ctx: Context, rid: str) -> Target:
    """An elastic IP: its reservation network's template (a merge)."""
    wanted = ids.parse(rid, "eipalloc")
    address = next((a for a in addresses.reservations(ctx) if a.vnet == wanted), None)
    if address is None:
        raise ids.not_found("eipalloc", rid)

    def write(old: dict, new: dict) -> None:
        ctx.session.vn_update(address.vnet, tpl.serialize([("EC2_TAGS", tagging.dump(new))]))

    return Target(ids.fmt("eipalloc", address.vnet), "elastic-ip", address.tags, ("MANAGE", "NET", address.vnet), write)


_TARGETS = {
    "instance": _instance,
    "image": _image,
    "volume": _ebs("volume", "vol", volumes.get_volume),
    "snapshot": _ebs("snapshot", "snap", volumes.get_snapshot),
    "security-group": _secgroup,
    "key-pair": _key_pair,
    "elastic-ip": _address,
}


def _target(ctx: Context, rid: str) -> Target:
    return _TARGETS[_kind(rid)](ctx, rid)


def _locks(ctx: Context, rids: list[str]) -> list[tuple]:
    """The locks a tag change of *rids* holds: the user's (its instances, images and key pairs), and
    each security group's, which AuthorizeSecurityGroupIngress and the like also take."""
    keys = [("user", ctx.user)]
    for rid in rids:
        if rid.startswith("sg-"):
            with contextlib.suppress(EC2Error):  # a malformed id: _target refuses it
                keys.append(("sg", ids.parse(rid, "sg")))
    return keys


def _change(ctx: Context, p: dict, change: Callable[[dict], dict]) -> None:
    """Give every resource of ``Resources`` the tags *change* makes of its own: all are read and checked
    before any is written."""
    rids = list(dict.fromkeys(p.get("Resources") or []))
    if not rids:
        raise missing("ResourceId.1")
    with holding(_locks(ctx, rids)):  # a tag change rewrites the resource's whole set
        targets = [_target(ctx, rid) for rid in rids]
        changes = [(t, change(dict(t.tags))) for t in targets]
        for _, new in changes:
            tagging.check(new)
        if ctx.dry_run:
            ctx.session.decide_dry_run([t.need for t in targets if t.need])
        for target, new in changes:
            if new != target.tags:
                target.write(target.tags, new)


@action("CreateTags", reads=("Resources", "Tags"), stored=("Tags",), changes=True)
def create_tags(ctx: Context, p: dict) -> dict:
    tags = tagging.pairs(p["Tags"], "Tag")
    if not tags:
        raise missing("Tag.1.Key")
    _change(ctx, p, lambda old: old | tags)
    return {}


def _deleted(spec: list[dict] | None):
    """DeleteTags' Tag.N: a Key alone deletes that tag, a Key with a Value (the empty one too) only
    when the resource's value is that one; no Tag.N at all deletes every tag."""
    if spec is None:
        return lambda old: {}
    for tag in spec:
        if "Key" not in tag:
            raise missing("Tag.N.Key")

    def change(old: dict) -> dict:
        for tag in spec:
            key = tag["Key"]
            if key in old and ("Value" not in tag or tag["Value"] == old[key]):
                del old[key]
        return old

    return change


@action("DeleteTags", reads=("Resources", "Tags"), changes=True)
def delete_tags(ctx: Context, p: dict) -> dict:
    _change(ctx, p, _deleted(p.get("Tags")))
    return {}


# ---------------------------------------------------------------- DescribeTags

_FILTERS = {
    "resource-id": lambda t: [t["ResourceId"]],
    "resource-type": lambda t: [t["ResourceType"]],
    "key": lambda t: [t["Key"]],
    "value": lambda t: [t["Value"]],
}


def _values(name: str, item: dict) -> list[str]:
    if name.startswith("tag:"):  # tag:KEY: the tags of key KEY whose value matches
        return [item["Value"]] if item["Key"] == name[4:] else []
    return _FILTERS[name](item)


def _exact(values: list[str]) -> bool:
    return all(not any(c in v for c in "*?\\") for v in values)


def _resources(ctx: Context, filters: list[dict]) -> tuple[list[tuple[str, str, dict]], bool]:
    """(id, kind, tags) of the resources the filters may keep, and whether the ``resource-id`` filter
    has been applied: those named by an exact one (read one by one, so ``i-7`` names i-00000007; one
    that is not there has no tags), else every one of the kinds that a ``resource-type`` filter lets
    through, read as pools."""
    named = [v for f in filters if f["Name"] == "resource-id" for v in f.get("Values", [])]
    if named and _exact(named) and sum(f["Name"] == "resource-id" for f in filters) == 1:
        found = {}
        for rid in dict.fromkeys(named):
            try:
                target = _target(ctx, rid)
            except EC2Error as e:
                if e.status >= 500:
                    raise
                continue
            found[target.id] = (target.id, target.kind, target.tags)  # i-7 and i-00000007 are one
        return list(found.values()), True
    kinds = list(KINDS.values())
    for f in filters:
        if f["Name"] == "resource-type":
            match = wildcards(f.get("Values", []))
            kinds = [k for k in kinds if match(k)]
    out: list[tuple[str, str, dict]] = []
    if "instance" in kinds:
        out += [(ids.fmt("i", vm.id), "instance", tagging.load(vm.user_template.get("EC2_TAGS")))
                for vm in ctx.session.vms(False)]  # fmt: skip
    pool = ctx.session.images() if {"image", "volume", "snapshot"} & set(kinds) else []
    for kind, prefix, member in (("image", "ami", images.is_ami),
                                 ("volume", "vol", lambda i: volumes.is_own_volume(ctx, i)),
                                 ("snapshot", "snap", volumes.is_snapshot)):  # fmt: skip
        if kind in kinds:  # an image CreateImage made is an AMI and a snapshot, and listed as both
            out += [(ids.fmt(prefix, i.id), kind, tagging.load(i.template.get("EC2_TAGS")))
                    for i in pool if member(i)]  # fmt: skip
    if "security-group" in kinds:
        out += [(ids.fmt("sg", g.id), "security-group", tagging.load(tpl.get(g.template, "EC2_TAGS")))
                for g in ctx.session.secgroups()]  # fmt: skip
    if "key-pair" in kinds:
        out += [(kp.id, "key-pair", kp.tags) for kp in keypairs.all_pairs(ctx)]
    if "elastic-ip" in kinds:
        out += [(ids.fmt("eipalloc", a.vnet), "elastic-ip", a.tags) for a in addresses.reservations(ctx)]
    return out, False


@action("DescribeTags", reads=("Filters", "MaxResults", "NextToken"))
def describe_tags(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _FILTERS)
    limit = paging.max_results(p)
    offset = paging.offset(p.get("NextToken"))
    resources, by_id = _resources(ctx, filters)
    items = [
        {"ResourceId": rid, "ResourceType": kind, "Key": key, "Value": value}
        for rid, kind, tags in resources
        for key, value in sorted(tags.items())
    ]
    tests = [(f["Name"], wildcards(f.get("Values", []))) for f in filters if not (by_id and f["Name"] == "resource-id")]
    items = [t for t in items if all(any(map(test, _values(name, t))) for name, test in tests)]
    if not limit:
        return {"Tags": items[offset:]}
    more = len(items) > offset + limit
    return {"Tags": items[offset : offset + limit], "NextToken": paging.token(offset + limit) if more else None}

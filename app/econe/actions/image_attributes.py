"""DescribeImageAttribute and ModifyImageAttribute: an AMI's ``description`` is its image's DESCRIPTION,
its ``launchPermission`` the image's USE permissions: Group ``all`` is OTHER_U (anyone may launch it),
and the image's own OpenNebula group, named as a Group, is GROUP_U. OpenNebula cannot let one other
account use an image (that takes an ACL rule, an administrator's): a UserId is refused, as are
organizations."""

from __future__ import annotations

from one import template as tpl

from ..errors import EC2Error, invalid
from .create_image import MAX_DESCRIPTION
from .images import describe, get_ami
from .registry import Context, action

EVERYONE = "all"
DESCRIBED = ("description", "launchPermission", "productCodes", "blockDeviceMapping")
MODIFIED = ("description", "launchPermission")


@action("DescribeImageAttribute", reads=("ImageId", "Attribute"))
def describe_image_attribute(ctx: Context, p: dict) -> dict:
    image = get_ami(ctx, p["ImageId"])
    attribute = p["Attribute"]
    out: dict = {"ImageId": p["ImageId"]}
    if attribute == "description":
        text = image.template.get("DESCRIPTION")
        out["Description"] = {"Value": text} if text else {}
    elif attribute == "launchPermission":
        group, group_use, other_use = ctx.session.image_sharing(image.id)
        out["LaunchPermissions"] = [{"Group": EVERYONE}] * other_use + [{"Group": group}] * group_use
    elif attribute == "productCodes":
        out["ProductCodes"] = []  # none: OpenNebula sells nothing
    elif attribute == "blockDeviceMapping":
        out["BlockDeviceMappings"] = (describe(image) or {}).get("BlockDeviceMappings", [])
    else:
        raise _unsupported(attribute, DESCRIBED)
    return out


def _unsupported(attribute: str, supported: tuple[str, ...]) -> EC2Error:
    return invalid("Attribute", attribute, f"This cloud has {', '.join(supported)}.")


def launch_changes(launch: dict, operation: str | None, groups: list[str], users: list[str]) -> tuple[set, set]:
    """The groups (``all`` or an OpenNebula group's name) to add and to remove, from either form of the
    request: LaunchPermission's Add and Remove, or OperationType with UserGroups and UserIds."""
    add, remove = list(launch.get("Add", [])), list(launch.get("Remove", []))
    if groups or users:
        if operation not in ("add", "remove"):
            raise invalid("OperationType", operation, "UserGroups and UserIds need OperationType add or remove.")
        (add if operation == "add" else remove).extend([{"Group": g} for g in groups] + [{"UserId": u} for u in users])
    for item in add + remove:
        if set(item) != {"Group"}:
            raise invalid(
                "LaunchPermission",
                ",".join(sorted(item)),
                "OpenNebula shares an image with its group or with everyone (Group all), not with one account"
                " or an organization.",
            )
    added, removed = {i["Group"] for i in add}, {i["Group"] for i in remove}
    if added & removed:
        raise EC2Error("InvalidParameterCombination", "A launch permission cannot be added and removed at once.")
    return added, removed


@action(
    "ModifyImageAttribute",
    reads=(
        "ImageId",
        "Attribute",
        "Description",
        "LaunchPermission",
        "OperationType",
        "UserGroups",
        "UserIds",
        "Value",
    ),
    stored=("Description", "Value"),
    changes=True,
)
def modify_image_attribute(ctx: Context, p: dict) -> dict:
    image = get_ami(ctx, p["ImageId"])
    attribute, value = p.get("Attribute"), p.get("Value")
    description = (p.get("Description") or {}).get("Value")
    added, removed = launch_changes(
        p.get("LaunchPermission") or {}, p.get("OperationType"), p.get("UserGroups", []), p.get("UserIds", [])
    )
    if attribute not in (None, *MODIFIED):
        raise _unsupported(attribute, MODIFIED)
    if attribute == "description" and description is None:
        description = value
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise invalid("Description", "...", f"A description is at most {MAX_DESCRIPTION} characters.")
    if description is None and not (added or removed):
        raise EC2Error("MissingParameter", "The request must name a launch permission or a description.")
    use, group = {}, ""
    if added or removed:
        group = ctx.session.image_sharing(image.id)[0]
        for name in added | removed:
            if name not in (EVERYONE, group):
                raise invalid("Group", name, f"An image is shared with everyone (all) or with its group, {group}.")
        use = {name: 1 if name in added else 0 for name in added | removed}
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "IMAGE", image.id)])
    if use:
        ctx.session.image_chmod(image.id, use.get(group, -1), use.get(EVERYONE, -1))
    if description is not None:
        ctx.session.image_update(image.id, tpl.serialize([("DESCRIPTION", description)]))
    return {}

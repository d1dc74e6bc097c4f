"""EC2 tags as econe keeps them: a JSON object with sorted keys, in an ``EC2_TAGS`` attribute of the
object's template (a key pair's in its vector's ``TAGS``), and EC2's rules for what a tag may be.
Pure functions, shared by the families that tag on creation and by the tags API."""

from __future__ import annotations

import json

from ..errors import EC2Error, missing
from .registry import MAX_TAG_KEY, MAX_TAG_VALUE

MAX_TAGS = 50  # per resource, as EC2


def load(text: str | None) -> dict[str, str]:
    """The tags in an EC2_TAGS value; none when it is absent or not one econe wrote."""
    try:
        tags = json.loads(text or "{}")
    except (ValueError, RecursionError):  # a value its user wrote in OpenNebula itself
        return {}
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}


def dump(tags: dict[str, str]) -> str:
    # ASCII JSON: oned stores it exactly whatever the values hold (registry.check_stored has refused
    # those a template could not carry, so what is stored is also what any value would be)
    return json.dumps(tags, sort_keys=True)


def as_list(tags: dict[str, str]) -> list[dict] | None:
    """EC2's TagList, or None (left out of the answer) when there is no tag."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())] or None


def check(tags: dict[str, str]) -> None:
    """EC2's rules for a resource's tags."""
    if len(tags) > MAX_TAGS:
        raise EC2Error("TagLimitExceeded", f"The maximum number of tags per resource is {MAX_TAGS}.")
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_KEY:
            raise EC2Error("InvalidParameterValue", f"A tag key must be 1 to {MAX_TAG_KEY} characters long.")
        if key.lower().startswith("aws:"):
            raise EC2Error("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use.")
        if len(value) > MAX_TAG_VALUE:
            raise EC2Error("InvalidParameterValue", f"A tag value is at most {MAX_TAG_VALUE} characters long.")


def pairs(tags: list[dict], name: str) -> dict[str, str]:
    """A Tag.N list as a dict: Key required, an absent Value is the empty string, as EC2 sets it."""
    out: dict[str, str] = {}
    for tag in tags:
        if "Key" not in tag:
            raise missing(f"{name}.N.Key")
        out[tag["Key"]] = tag.get("Value", "")
    return out


def from_specifications(specs: list[dict], resource_type: str) -> dict[str, str]:
    """The tags TagSpecification.N gives a new resource of *resource_type* (the only type it may name)."""
    tags: dict[str, str] = {}
    for spec in specs:
        kind = spec.get("ResourceType")
        if kind != resource_type:
            raise EC2Error(
                "InvalidParameterValue",
                f"'{kind}' is not a valid taggable resource type for this operation: use {resource_type}.",
            )
        tags.update(pairs(spec.get("Tags", []), "TagSpecification.N.Tag"))
    check(tags)
    return tags

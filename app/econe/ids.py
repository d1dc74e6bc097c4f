"""EC2 ids of OpenNebula objects: ``i-%08d``, ``ami-%08d`` (lenient on input: ``ami-7`` and ``7``);
``subnet-%08d`` of a virtual network, ``sg-%08d`` of a security group, and the one VPC ``vpc-00000000``;
``vol-%08d`` and ``snap-%08d`` of images, ``eipalloc-%08d`` of an address reservation (a virtual network)
and ``eipassoc-%08d%04d`` of a VM's id and its NIC_ID."""

from __future__ import annotations

import re

from .errors import EC2Error

_ID = re.compile(r"(?:(?P<prefix>[a-z]+)-)?(?P<number>[0-9]{1,10})")

KINDS = {  # prefix: (the Malformed code's stem, what it names, the NotFound code's stem when it differs)
    "i": ("InvalidInstanceID", "an instance ID"),
    "ami": ("InvalidAMIID", "an image ID"),
    "vpc": ("InvalidVpcID", "a VPC ID"),
    "subnet": ("InvalidSubnetID", "a subnet ID"),
    "sg": ("InvalidGroupId", "a security group ID"),  # not found: InvalidGroup.NotFound (actions.secgroups)
    "vol": ("InvalidVolumeID", "a volume ID", "InvalidVolume"),
    "snap": ("InvalidSnapshotID", "a snapshot ID", "InvalidSnapshot"),
    "eipalloc": ("InvalidAllocationID", "an allocation ID"),
    "eipassoc": ("InvalidAssociationID", "an association ID"),
}


def parse(text: str, prefix: str) -> int:
    """The OpenNebula id in *text*; ``InvalidInstanceID.Malformed`` and the like when it is not one."""
    code, noun = KINDS[prefix][:2]
    m = _ID.fullmatch(text or "")
    if not m or (m.group("prefix") not in (None, prefix)) or int(m.group("number")) > 2**31 - 1:
        raise EC2Error(f"{code}.Malformed", f'Invalid id: "{text}" (expecting {noun} like {prefix}-00000001)')
    return int(m.group("number"))


def read(text: str, prefix: str, read, missing: EC2Error | None = None):
    """What *read* (a user session's) answers for the object *text* names; oned's not-found becomes
    EC2's NotFound of that id as the request wrote it (*missing*, or the kind's own)."""
    oid = parse(text, prefix)
    try:
        return read(oid)
    except EC2Error as e:
        if e.code.endswith(".NotFound"):
            raise (missing or not_found(prefix, text)) from None
        raise


def fmt(prefix: str, oid: int) -> str:
    return f"{prefix}-{oid:08d}"


def not_found(prefix: str, text: str) -> EC2Error:
    code, noun, *found = KINDS[prefix]
    code = found[0] if found else code
    return EC2Error(f"{code}.NotFound", f"The {noun.split(' ', 1)[1]} '{text}' does not exist")

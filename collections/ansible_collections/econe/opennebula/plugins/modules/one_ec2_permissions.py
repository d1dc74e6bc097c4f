#!/usr/bin/python
"""Ansible module: owner, group and permission bits of an OpenNebula vnet, template or image."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_permissions
short_description: Give an OpenNebula object to a group and set its permission bits
version_added: 0.1.0
author: econe maintainers (!UNKNOWN)
description:
  - Sets the group (and optionally the owner) and the nine permission bits of a virtual network, VM template or
    image, found by name among the objects of the account the module runs as (or of O(owner)).
extends_documentation_fragment:
  - econe.opennebula.one_ec2
  - econe.opennebula.one_ec2.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows owner, group and the nine permission bits before and after.
options:
  kind:
    description: Object kind.
    type: str
    choices: [vnet, template, image]
    required: true
  name:
    description: Object name.
    type: str
    required: true
  group:
    description: Name of the group to give it to.
    type: str
  owner:
    description: Name of the user to give it to.
    type: str
  mode:
    description: Octal permissions as in C(onevnet chmod), owner, group, other (4 use, 2 manage, 1 admin), e.g. V(640).
    type: str
"""

EXAMPLES = r"""
- name: The ec2 group may use the instance type, nobody else
  econe.opennebula.one_ec2_permissions:
    kind: template
    name: m1.small
    group: ec2
    mode: "640"
"""

RETURN = r"""
id:
  description: The object's id.
  type: int
  returned: always
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.econe.opennebula.plugins.module_utils.one_ec2 import (  # noqa: E402
    CONNECTION_ARGS,
    connect,
    find_by_name,
    own_id,
)

POOLS = {"vnet": ("vnpool", "VNET", "vn"), "template": ("templatepool", "VMTEMPLATE", "template"),
         "image": ("imagepool", "IMAGE", "image")}  # fmt: skip
BITS = ("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A", "OTHER_U", "OTHER_M", "OTHER_A")


def bits_of(mode: str) -> list[int]:
    digits = [int(c) for c in mode.zfill(3)[-3:]]
    return [int(bool(d & m)) for d in digits for m in (4, 2, 1)]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", choices=list(POOLS), required=True),
            name=dict(type="str", required=True),
            group=dict(type="str"),
            owner=dict(type="str"),
            mode=dict(type="str"),
            **CONNECTION_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["mode"] and (len(p["mode"]) > 4 or any(c not in "01234567" for c in p["mode"])):
        module.fail_json(msg=f"mode must be octal like 640, got {p['mode']!r}")
    one = connect(module)
    pool_name, element, api = POOLS[p["kind"]]
    owner = None
    if p["owner"]:
        owner = find_by_name(getattr(one.userpool.info(), "USER", []), p["owner"])
        if owner is None:
            module.fail_json(msg=f"user {p['owner']} does not exist")
    owners = {own_id(one)} | ({owner.ID} if owner else set())  # the role's, or given away by an earlier run
    obj = find_by_name(getattr(getattr(one, pool_name).info(-2, -1, -1), element, []), p["name"], owners)
    if obj is None:
        module.fail_json(msg=f"{p['kind']} {p['name']} does not exist")
    calls = getattr(one, api)
    uid, gid = -1, -1
    if owner:
        uid = owner.ID if owner.ID != obj.UID else -1
    if p["group"]:
        group = find_by_name(getattr(one.grouppool.info(), "GROUP", []), p["group"])
        if group is None:
            module.fail_json(msg=f"group {p['group']} does not exist")
        gid = group.ID if group.ID != obj.GID else -1
    current = [int(getattr(obj.PERMISSIONS, b)) for b in BITS]
    wanted = bits_of(p["mode"]) if p["mode"] else current
    before = {"owner": obj.UNAME, "group": obj.GNAME, "mode": current}
    after = {"owner": p["owner"] or obj.UNAME, "group": p["group"] or obj.GNAME, "mode": wanted}
    changed = uid >= 0 or gid >= 0 or wanted != current
    if changed and not module.check_mode:
        if uid >= 0 or gid >= 0:
            calls.chown(obj.ID, uid, gid)
        if wanted != current:
            calls.chmod(obj.ID, *wanted)
    module.exit_json(changed=changed, id=obj.ID, diff={"before": before, "after": after})


if __name__ == "__main__":
    main()

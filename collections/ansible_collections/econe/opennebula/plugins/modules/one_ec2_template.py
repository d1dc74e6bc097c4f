#!/usr/bin/python
"""Ansible module: an OpenNebula VM template or virtual network, from attributes, idempotent and check-mode honest."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_template
short_description: Manage an OpenNebula VM template or virtual network from attributes
version_added: 0.1.0
author: econe maintainers (!UNKNOWN)
description:
  - Creates, updates or deletes a VM template (O(kind=template)) or a virtual network (O(kind=vnet)) by name,
    among the objects of the account the module runs as.
  - Attributes are given as a mapping; a mapping value is a vector (C(NIC), C(AR)), a list repeats the attribute.
    Every value is written as a quoted OpenNebula string that oned reads back exactly, so no value can
    add an attribute; a value oned cannot store exactly (ending in a backslash, holding C(]]>) or a
    carriage return) fails the task before anything is changed.
  - Only attributes whose value differs are changed (merged into the template), so a second run and check mode
    report no change. A vnet's address ranges (C(AR)) are set when it is created; later changes to them are not
    applied.
extends_documentation_fragment:
  - econe.opennebula.one_ec2
  - econe.opennebula.one_ec2.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the attributes that change, before and after; attributes not given are not shown.
options:
  kind:
    description: What to manage.
    type: str
    choices: [template, vnet]
    required: true
  name:
    description: Its name.
    type: str
    required: true
  attributes:
    description: Its attributes (without C(NAME)).
    type: dict
    default: {}
  cluster:
    description: The cluster a vnet is created in (-1, oned's default cluster); not changed once it exists.
    type: int
    default: -1
  state:
    description: Whether it exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The m1.small instance type
  econe.opennebula.one_ec2_template:
    kind: template
    name: m1.small
    attributes:
      CPU: "0.5"
      MEMORY: 512
      EC2_INSTANCE_TYPE: m1.small
      NIC: {NETWORK: ec2net, NETWORK_UNAME: oneadmin}
"""

RETURN = r"""
id:
  description: Its id (-1 when absent, or when check mode would create it).
  type: int
  returned: always
  sample: 12
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.econe.opennebula.plugins.module_utils.one_ec2 import (  # noqa: E402
    CONNECTION_ARGS,
    connect,
    find_by_name,
    own_id,
    quote,
)

KINDS = {"template": ("templatepool", "VMTEMPLATE", "template"), "vnet": ("vnpool", "VNET", "vn")}


def render(attributes: dict) -> str:
    lines = []
    for key, value in attributes.items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, dict):
                inner = ", ".join(f"{k.upper()} = {quote(x)}" for k, x in v.items())
                lines.append(f"{key.upper()} = [ {inner} ]")
            else:
                lines.append(f"{key.upper()} = {quote(v)}")
    return "\n".join(lines) + "\n"


def normal(value):
    """Attribute values as strings, vectors as dicts, repeated ones as lists: comparable both ways."""
    if isinstance(value, dict):
        return {k.upper(): normal(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [normal(v) for v in value]
        return items[0] if len(items) == 1 else items
    return "" if value is None else str(value)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kind=dict(type="str", choices=list(KINDS), required=True),
            name=dict(type="str", required=True),
            attributes=dict(type="dict", default={}),
            cluster=dict(type="int", default=-1),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **CONNECTION_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        render(p["attributes"])
    except ValueError as e:  # before anything is done: a value oned would store changed, or not at all
        module.fail_json(msg=f"An attribute of {p['name']} cannot be stored in an OpenNebula template: {e}")
    one = connect(module)
    pool, element, api = KINDS[p["kind"]]
    calls = getattr(one, api)
    obj = find_by_name(getattr(getattr(one, pool).info(-2, -1, -1), element, []), p["name"], {own_id(one)})
    if p["state"] == "absent":
        if obj and not module.check_mode:
            calls.delete(obj.ID)
        module.exit_json(
            changed=bool(obj),
            id=-1,
            diff={"before": {"state": "present" if obj else "absent"}, "after": {"state": "absent"}},
        )
    desired = {k.upper(): normal(v) for k, v in p["attributes"].items()}
    if obj is None:
        oid = -1
        if not module.check_mode:
            text = render({"NAME": p["name"], **p["attributes"]})
            oid = calls.allocate(text, p["cluster"]) if p["kind"] == "vnet" else calls.allocate(text)
        module.exit_json(changed=True, id=oid, diff={"before": {}, "after": desired})
    current = {k.upper(): normal(v) for k, v in (obj.TEMPLATE or {}).items()}
    changes = {k: v for k, v in desired.items() if current.get(k) != v and not (p["kind"] == "vnet" and k == "AR")}
    if changes and not module.check_mode:
        calls.update(obj.ID, render({k: p["attributes"][k] for k in p["attributes"] if k.upper() in changes}), 1)
    module.exit_json(
        changed=bool(changes), id=obj.ID, diff={"before": {k: current.get(k) for k in changes}, "after": changes}
    )


if __name__ == "__main__":
    main()

#!/usr/bin/python
"""Ansible module: an OpenNebula group, with the CREATE rule a fresh group lacks."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_group
short_description: Manage an OpenNebula group and its CREATE right
description:
  - Creates or deletes a group through oned's XML-RPC API (pyone).
  - oned's C(one.group.allocate) adds the default VDC rules but no CREATE right; this module also keeps the rule
    C(@gid <create_types>/* CREATE) in place, so that the group's users can create VMs, networks, images and templates.
options:
  name: {description: Group name., type: str, required: true}
  state: {description: Whether the group exists., type: str, choices: [present, absent], default: present}
  create_types:
    description: Resource types the group may create (an empty list adds no rule).
    type: list
    elements: str
    default: [VM, NET, IMAGE, TEMPLATE]
  hosts:
    description: Hosts (names or ids) the group's users may run VMs on; a rule C(@gid HOST/#id USE) each.
    type: list
    elements: str
    default: []
  api_url: {description: "oned's XML-RPC URL; default C(ONE_XMLRPC) or http://localhost:2633/RPC2.", type: str}
  api_username: {description: An oneadmin-group user; default from C(ONE_AUTH)., type: str}
  api_password: {description: Its password., type: str}
requirements: [pyone]
author: econe
"""

EXAMPLES = r"""
- name: The ec2 group
  one_ec2_group:
    name: ec2
    api_url: http://frontend:2633/RPC2
    api_username: oneadmin
    api_password: "{{ oneadmin_password }}"
"""

RETURN = r"""
id: {description: The group's id (-1 when absent)., type: int, returned: always}
rules: {description: The group's rules as oned writes them., type: list, returned: when present}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.one_ec2 import CONNECTION_ARGS, connect, find_by_name, find_rule, rule_hex  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            create_types=dict(type="list", elements="str", default=["VM", "NET", "IMAGE", "TEMPLATE"]),
            hosts=dict(type="list", elements="str", default=[]),
            **CONNECTION_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    one = connect(module)
    group = find_by_name(getattr(one.grouppool.info(), "GROUP", []), p["name"])
    changed = False
    diff = {"before": {"state": "present" if group else "absent"}, "after": {"state": p["state"]}}
    if p["state"] == "absent":
        if group:
            changed = True
            if not module.check_mode:
                one.group.delete(group.ID)
        module.exit_json(changed=changed, id=-1, diff=diff)
    gid = group.ID if group else -1
    if not group:
        changed = True
        if not module.check_mode:
            gid = one.group.allocate(p["name"])
    rules = [f"@{gid} {'+'.join(t.upper() for t in p['create_types'])}/* CREATE"] if p["create_types"] else []
    hosts = {h.NAME: h.ID for h in getattr(one.hostpool.info(), "HOST", [])}
    for host in p["hosts"]:
        hid = int(host) if host.isdigit() else hosts.get(host)
        if hid is None:
            module.fail_json(msg=f"host {host} does not exist")
        rules.append(f"@{gid} HOST/#{hid} USE")
    present = [r for r in rules if gid >= 0 and find_rule(one, r) is not None]
    diff["before"]["rules"], diff["after"]["rules"] = present, rules
    for rule in rules:
        if rule not in present:
            changed = True
            if not module.check_mode:
                one.acl.addrule(*rule_hex(rule))
    module.exit_json(changed=changed, id=gid, rules=rules, diff=diff)


if __name__ == "__main__":
    main()

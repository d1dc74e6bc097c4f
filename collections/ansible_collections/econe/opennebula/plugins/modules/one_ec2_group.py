#!/usr/bin/python
"""Ansible module: an OpenNebula group, with the CREATE rule a fresh group lacks."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_group
short_description: Manage an OpenNebula group, its CREATE right and the hosts it may use
version_added: 0.1.0
author: econe maintainers (!UNKNOWN)
description:
  - Creates or deletes a group through oned's XML-RPC API (pyone).
  - oned's C(one.group.allocate) adds the default VDC rules but no CREATE right; this module also keeps the rule
    C(@gid <create_types>/* CREATE) in place, so that the group's users can create VMs, networks, images and templates.
  - O(hosts) is declarative. Each listed host gets the rule C(@gid HOST/#id USE); a rule of that form for a host no
    longer listed is removed. Other rules of the group (another zone, other rights, a cluster) are left alone.
extends_documentation_fragment:
  - econe.opennebula.one_ec2
  - econe.opennebula.one_ec2.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the group's state and its CREATE and host rules before and after.
options:
  name:
    description: Group name.
    type: str
    required: true
  state:
    description: Whether the group exists.
    type: str
    choices: [present, absent]
    default: present
  create_types:
    description: Resource types the group may create (an empty list adds no rule).
    type: list
    elements: str
    default: [VM, NET, IMAGE, TEMPLATE]
  hosts:
    description:
      - Hosts (names or ids) the group's users may run VMs on, a rule C(@gid HOST/#id USE) each.
      - The group's rules of that form for other hosts are removed.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: The ec2 group, which may create VMs and networks and run them on host0
  econe.opennebula.one_ec2_group:
    name: ec2
    create_types: [VM, NET]
    hosts: [host0]
    api_url: http://frontend:2633/RPC2
    api_username: oneadmin
    api_password: "{{ oneadmin_password }}"
"""

RETURN = r"""
id:
  description: The group's id (-1 when absent, or when check mode would create it).
  type: int
  returned: always
  sample: 100
rules:
  description: The group's CREATE and host rules, as this module writes them.
  type: list
  elements: str
  returned: when O(state=present)
  sample: ["@100 VM+NET/* CREATE", "@100 HOST/#0 USE"]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.econe.opennebula.plugins.module_utils.one_ec2 import (  # noqa: E402
    CONNECTION_ARGS,
    acl_rules,
    connect,
    find_by_name,
    find_rule,
    rule_hex,
)

_LOW = 0xFFFFFFFF  # an ACL rule's object id is the low 32 bits of its resource


def host_rule(gid: int, hid: int) -> str:
    return f"@{gid} HOST/#{hid} USE"


def host_rules(one, gid: int) -> dict[int, int]:
    """{host id: rule id} of the group's rules this module makes, `@gid HOST/#id USE` in zone #0: the same
    user, rights and zone as that rule, and a resource of one host by id (not a cluster, not HOST+NET)."""
    user, resource, rights, zone = (int(h, 16) for h in rule_hex(host_rule(gid, 0)))
    found = {}
    for rid, *values in acl_rules(one):
        u, r, ri, z = (int(v, 16) for v in values)
        if (u, ri, z) == (user, rights, zone) and r & ~_LOW == resource:
            found[r & _LOW] = rid
    return found


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
    creates = [f"@{gid} {'+'.join(t.upper() for t in p['create_types'])}/* CREATE"] if p["create_types"] else []
    hosts = {h.NAME: h.ID for h in getattr(one.hostpool.info(), "HOST", [])}
    wanted = set()
    for host in p["hosts"]:
        hid = int(host) if host.isdigit() else hosts.get(host)
        if hid is None:
            module.fail_json(msg=f"host {host} does not exist")
        wanted.add(hid)
    existing = host_rules(one, gid) if gid >= 0 else {}
    rules = creates + [host_rule(gid, h) for h in sorted(wanted)]
    present = [r for r in creates if gid >= 0 and find_rule(one, r) is not None]
    present += [host_rule(gid, h) for h in sorted(existing)]
    diff["before"]["rules"], diff["after"]["rules"] = present, rules
    for rule in rules:
        if rule not in present:
            changed = True
            if not module.check_mode:
                one.acl.addrule(*rule_hex(rule))
    for hid in sorted(set(existing) - wanted):  # declarative: a host no longer listed loses its rule
        changed = True
        if not module.check_mode:
            one.acl.delrule(existing[hid])
    module.exit_json(changed=changed, id=gid, rules=rules, diff=diff)


if __name__ == "__main__":
    main()

#!/usr/bin/python
"""Ansible module: an OpenNebula ACL rule, written as oned prints it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_acl
short_description: Manage an OpenNebula ACL rule
description:
  - Adds or removes an ACL rule given in oned's string form, e.g. C(@100 HOST/#0 USE) (zone C(#0) unless given).
options:
  rule: {description: The rule., type: str, required: true}
  state: {description: Whether the rule exists., type: str, choices: [present, absent], default: present}
  api_url: {description: "oned's XML-RPC URL.", type: str}
  api_username: {description: An oneadmin-group user., type: str}
  api_password: {description: Its password., type: str}
requirements: [pyone]
author: econe
"""

EXAMPLES = r"""
- name: The ec2 group may use host 0
  one_ec2_acl:
    rule: "@100 HOST/#0 USE"
"""

RETURN = r"""
id: {description: The rule's id (-1 when absent)., type: int, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.one_ec2 import CONNECTION_ARGS, connect, find_rule, rule_hex  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            rule=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **CONNECTION_ARGS,
        ),
        supports_check_mode=True,
    )
    p = module.params
    one = connect(module)
    try:
        hexes = rule_hex(p["rule"])
    except Exception as e:  # pyone's parser raises plain exceptions
        module.fail_json(msg=f"malformed ACL rule {p['rule']!r}: {e}")
    rid = find_rule(one, p["rule"])
    diff = {"before": p["rule"] if rid is not None else "", "after": p["rule"] if p["state"] == "present" else ""}
    if p["state"] == "present" and rid is None:
        if not module.check_mode:
            rid = one.acl.addrule(*hexes)
        module.exit_json(changed=True, id=rid if rid is not None else -1, diff=diff)
    if p["state"] == "absent" and rid is not None:
        if not module.check_mode:
            one.acl.delrule(rid)
        module.exit_json(changed=True, id=-1, diff=diff)
    module.exit_json(changed=False, id=rid if rid is not None else -1, diff=diff)


if __name__ == "__main__":
    main()

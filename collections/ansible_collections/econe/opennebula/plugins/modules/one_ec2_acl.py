#!/usr/bin/python
"""Ansible module: an OpenNebula ACL rule, written as oned prints it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_acl
short_description: Manage an OpenNebula ACL rule
version_added: 0.1.0
author: econe maintainers (!UNKNOWN)
description:
  - Adds or removes an ACL rule given in oned's string form, e.g. C(@100 HOST/#0 USE) (zone C(#0) unless given).
extends_documentation_fragment:
  - econe.opennebula.one_ec2
  - econe.opennebula.one_ec2.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the rule, or nothing where there is none.
options:
  rule:
    description: The rule, as C(oneacl create) takes it.
    type: str
    required: true
  state:
    description: Whether the rule exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The group 100 may use host 0
  econe.opennebula.one_ec2_acl:
    rule: "@100 HOST/#0 USE"
"""

RETURN = r"""
id:
  description: The rule's id (-1 when absent, or when check mode would add it).
  type: int
  returned: always
  sample: 7
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.econe.opennebula.plugins.module_utils.one_ec2 import (  # noqa: E402
    CONNECTION_ARGS,
    connect,
    find_rule,
    rule_hex,
)


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

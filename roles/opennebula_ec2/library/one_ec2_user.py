#!/usr/bin/python
"""Ansible module: an OpenNebula user in a group, with its password kept as given."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_user
short_description: Manage an OpenNebula user for EC2 access
description:
  - Creates, updates or deletes a user through oned's XML-RPC API (pyone). Its primary group and password are kept
    as given; a changed password is applied. The EC2 secret key of a C(core) user is the SHA-256 hex of its password.
options:
  name: {description: User name (the EC2 access key)., type: str, required: true}
  password: {description: Password; required when the user is present., type: str}
  group: {description: Name of the primary group., type: str}
  auth_driver: {description: Authentication driver., type: str, default: core}
  state: {description: Whether the user exists., type: str, choices: [present, absent], default: present}
  api_url: {description: "oned's XML-RPC URL.", type: str}
  api_username: {description: An oneadmin-group user., type: str}
  api_password: {description: Its password., type: str}
requirements: [pyone]
author: econe
"""

EXAMPLES = r"""
- name: An EC2 user
  one_ec2_user:
    name: alice
    password: "{{ vault_alice_password }}"
    group: ec2
"""

RETURN = r"""
id: {description: The user's id (-1 when absent)., type: int, returned: always}
"""

import hashlib  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.one_ec2 import CONNECTION_ARGS, connect, find_by_name  # noqa: E402


def stored(driver: str, password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest() if driver == "core" else password


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            group=dict(type="str"),
            auth_driver=dict(type="str", default="core"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **CONNECTION_ARGS,
        ),
        required_if=[("state", "present", ["password"])],
        supports_check_mode=True,
    )
    p = module.params
    one = connect(module)
    user = find_by_name(getattr(one.userpool.info(), "USER", []), p["name"])
    before = {"state": "present" if user else "absent"}
    if user:
        before.update(group=user.GNAME, auth_driver=user.AUTH_DRIVER)
    if p["state"] == "absent":
        if user and not module.check_mode:
            one.user.delete(user.ID)
        module.exit_json(changed=bool(user), id=-1, diff={"before": before, "after": {"state": "absent"}})
    gid = None
    if p["group"]:
        group = find_by_name(getattr(one.grouppool.info(), "GROUP", []), p["group"])
        if group is None:
            module.fail_json(msg=f"group {p['group']} does not exist")
        gid = group.ID
    after = {
        "state": "present",
        "group": p["group"] or (user.GNAME if user else "users"),
        "auth_driver": p["auth_driver"],
    }
    changed, password_changed = False, False
    uid = user.ID if user else -1
    if not user:
        changed = True
        if not module.check_mode:
            uid = one.user.allocate(p["name"], p["password"], p["auth_driver"], [gid] if gid is not None else [])
    else:
        if user.AUTH_DRIVER != p["auth_driver"]:
            changed = True
            if not module.check_mode:
                one.user.chauth(uid, p["auth_driver"], p["password"])
        elif user.PASSWORD != stored(p["auth_driver"], p["password"]):
            changed = password_changed = True
            if not module.check_mode:
                one.user.passwd(uid, p["password"])
        if gid is not None and user.GID != gid:
            changed = True
            if not module.check_mode:
                one.user.chgrp(uid, gid)
    if password_changed:
        before["password"], after["password"] = "(old)", "(new)"
    module.exit_json(
        changed=changed,
        id=uid,
        diff={"before": before, "after": after},
    )


if __name__ == "__main__":
    main()

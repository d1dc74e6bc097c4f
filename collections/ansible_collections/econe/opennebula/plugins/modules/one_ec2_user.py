#!/usr/bin/python
"""Ansible module: an OpenNebula user in a group, with its password kept as given."""

from __future__ import annotations

DOCUMENTATION = r"""
module: one_ec2_user
short_description: Manage an OpenNebula user for EC2 access
version_added: 0.1.0
author: econe maintainers (!UNKNOWN)
description:
  - Creates, updates or deletes a user through oned's XML-RPC API (pyone). Its primary group, driver and password
    are kept as given; a changed password is applied. The EC2 secret key of a C(core) user is the SHA-256 hex of its
    password.
  - An C(x509) user (O(dn)) has the subject DNs of its client certificates as its password, as OpenNebula keeps
    them (each whitespace character escaped as a backslash and its hex code, several joined with C(|)); a changed
    DN, or another driver made C(x509), is applied with C(one.user.chauth).
extends_documentation_fragment:
  - econe.opennebula.one_ec2
  - econe.opennebula.one_ec2.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the state, group, driver and an x509 user's DNs; a changed password shows as C((old)) and
        C((new)), never the password.
options:
  name:
    description: User name (the EC2 access key).
    type: str
    required: true
  password:
    description: Password; a present user needs it or O(dn).
    type: str
  dn:
    description:
      - "The subject DN of the user's certificate, or a list of them, in OpenSSL's slash form as
        C(openssl x509 -noout -subject -nameopt compat) prints it without C(subject=): C(/C=ES/O=Example/CN=Carol Doe)."
      - Only with O(auth_driver=x509); excludes O(password).
    type: raw
  group:
    description: Name of the primary group (a new user without it goes to C(users)).
    type: str
  auth_driver:
    description: Authentication driver (C(x509) for O(dn)).
    type: str
    default: core
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: An EC2 user
  econe.opennebula.one_ec2_user:
    name: alice
    password: "{{ vault_alice_password }}"
    group: ec2

- name: An x509 user (econe_server_auth with x509, and a proxy that verifies client certificates)
  econe.opennebula.one_ec2_user:
    name: carol
    auth_driver: x509
    dn: /C=ES/O=Example/CN=Carol Doe
    group: ec2
"""

RETURN = r"""
id:
  description: The user's id (-1 when absent, or when check mode would create it).
  type: int
  returned: always
  sample: 5
"""

import hashlib  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.econe.opennebula.plugins.module_utils.one_ec2 import (  # noqa: E402
    CONNECTION_ARGS,
    connect,
    escape_dn,
    find_by_name,
)


def stored(driver: str, password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest() if driver == "core" else password


def dn_password(dn) -> str:
    """The password of an x509 user with the certificate subject(s) *dn*; ValueError for a DN that no
    certificate could match (oned's driver compares the slash form, and splits the password on |)."""
    dns = [dn] if isinstance(dn, str) else dn
    if not isinstance(dns, list) or not dns:
        raise ValueError("dn must be a DN or a non-empty list of DNs")
    for one in dns:
        if not isinstance(one, str) or not one.startswith("/") or "=" not in one or "|" in one:
            raise ValueError(
                f"dn {one!r} is not in OpenSSL's slash form, as `openssl x509 -noout -subject -nameopt compat` "
                "prints it without subject= (/C=ES/O=Example/CN=Carol Doe), or it holds a |"
            )
    return "|".join(escape_dn(one) for one in dns)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            password=dict(type="str", no_log=True),
            dn=dict(type="raw"),  # not list: Ansible would split a string on its commas
            group=dict(type="str"),
            auth_driver=dict(type="str", default="core"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            **CONNECTION_ARGS,
        ),
        mutually_exclusive=[("password", "dn")],
        supports_check_mode=True,
    )
    p = module.params
    x509 = p["auth_driver"] == "x509"
    if p["dn"] is not None and not x509:
        module.fail_json(msg="dn is for x509 users: give auth_driver x509 (the role's driver: x509)")
    if p["state"] == "present":
        if x509 and p["dn"] is None:
            module.fail_json(msg=f"the x509 user {p['name']} needs dn, its certificate's subject DN")
        if not x509 and not p["password"]:
            module.fail_json(msg=f"the user {p['name']} needs a password")
        if x509:
            try:
                p["password"] = dn_password(p["dn"])
            except ValueError as e:
                module.fail_json(msg=str(e))
    one = connect(module)
    user = find_by_name(getattr(one.userpool.info(), "USER", []), p["name"])
    before = {"state": "present" if user else "absent"}
    if user:
        before.update(group=user.GNAME, auth_driver=user.AUTH_DRIVER)
        if user.AUTH_DRIVER == "x509":  # a DN is no secret: the diff shows it
            before["dn"] = user.PASSWORD.split("|")
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
    if x509:
        after["dn"] = p["password"].split("|")
    changed, password_changed = False, False
    uid = user.ID if user else -1
    if not user:
        changed = True
        if not module.check_mode:
            uid = one.user.allocate(p["name"], p["password"], p["auth_driver"], [gid] if gid is not None else [])
    else:
        if user.AUTH_DRIVER != p["auth_driver"] or (x509 and user.PASSWORD != p["password"]):
            # chauth sets driver and password at once: a switch of driver, or an x509 user's new DN
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

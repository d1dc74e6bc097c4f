"""Documentation the econe.opennebula modules share: how they reach oned, and what check and diff mode mean."""

from __future__ import annotations


class ModuleDocFragment:
    # econe.opennebula.one_ec2: the connection options (module_utils/one_ec2.py CONNECTION_ARGS)
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - oned's XML-RPC endpoint.
      - If not given, the E(ONE_XMLRPC) environment variable, else V(http://localhost:2633/RPC2).
    type: str
    aliases: [one_url]
  api_username:
    description:
      - A user of the oneadmin group.
      - If O(api_username) or O(api_password) is not given, both are read from the file E(ONE_AUTH) names
        (C(user:password)), else from C(~/.one/one_auth).
    type: str
  api_password:
    description:
      - Its password.
    type: str
requirements:
  - pyone (on the host that runs the module)
notes:
  - The modules run where oned is reachable, usually the frontend, with a Python that has pyone.
"""

    # econe.opennebula.one_ec2.attributes: what the attributes mean; each module says its support
    ATTRIBUTES = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Returns details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
"""

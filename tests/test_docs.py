"""The README's Variables table says what the roles' argument specs say."""

from __future__ import annotations

import re

import yaml

from .conftest import ROOT

ROLES = ("opennebula_ec2", "econe_server", "snakeoil_cert", "lighttpd_ssl_proxy")


def test_variables_table_matches_the_argument_specs():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| \w+ \| `(\w+)` \|", readme, re.M))
    specified, defaults = set(), set()
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        specified |= set(spec["argument_specs"]["main"]["options"])
        defaults |= set(yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()))
    assert documented == specified
    assert defaults <= specified, defaults - specified

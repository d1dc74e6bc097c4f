"""The README's Variables table says what the roles' argument specs say: names, defaults, meanings."""

from __future__ import annotations

import json
import re

import yaml

from .conftest import ROOT

ROLES = ("opennebula_ec2", "econe_server", "snakeoil_cert", "lighttpd_ssl_proxy")


def _default(option: dict) -> str:
    """A default as the table writes it: — for none or empty, JSON for lists and maps."""
    value = option.get("default")
    if value in (None, ""):
        return "—"
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) else str(value)
    return "`" + text.replace("|", "\\|") + "`"


def _specified_rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        for name, option in spec["argument_specs"]["main"]["options"].items():
            rows.append((role, f"`{name}`", _default(option), option["description"].replace("|", "\\|")))
    return rows


def test_variables_table_matches_the_argument_specs():
    readme = (ROOT / "README.md").read_text()
    documented = re.findall(r"^\| (\w+) \| (`\w+`) \| (.*?) \| (.*?) \|$", readme, re.M)
    assert documented == _specified_rows()


def test_every_default_is_specified():
    for role in ROLES:
        spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
        defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
        assert set(defaults) <= set(spec["argument_specs"]["main"]["options"]), role

"""The README's Variables table says what the roles' argument specs say: names, defaults, meanings;
its action tables say what the action registry says."""

from __future__ import annotations

import json
import re

import yaml

from econe.actions import ACTIONS

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


# ---------------------------------------------------------------- the actions


def _table(header: str) -> list[str]:
    """The rows of the README table under *header*, up to the blank line that ends it."""
    readme = (ROOT / "README.md").read_text()
    _, found, rest = readme.partition(f"\n{header}\n")
    assert found, f"the README has no table {header}"
    rows = rest.split("\n\n", 1)[0].splitlines()
    return rows[1:]  # after the |---| line


def _names(members) -> str:
    return ", ".join(f"`{m}`" for m in sorted(members)) or "—"


def _parameter_rows() -> list[str]:
    """The README's parameter table as the registry says it (app/econe/actions/registry.py)."""
    rows = []
    for name, act in sorted(ACTIONS.items()):
        reads = "its multipart `file` part" if act.takes_file else _names(act.reads)
        rows.append(f"| `{name}` | {reads} | {_names(act.ignored)} |")
    return rows


def test_the_parameter_table_is_the_registry():
    expected = _parameter_rows()
    assert _table("| action | reads | accepts and ignores |") == expected, (
        "the README's table should be:\n" + "\n".join(expected)
    )


def test_the_mapping_table_names_every_action_once():
    named = [
        name.strip("`") for row in _table("| action | OpenNebula |") for name in row.split(" | ")[0][2:].split(", ")
    ]
    assert sorted(named) == sorted(ACTIONS)

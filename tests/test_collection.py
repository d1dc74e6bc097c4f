"""The collection econe.opennebula (issue #15): its modules run by FQCN from a playbook and inventory
outside this repository, with nothing but ANSIBLE_COLLECTIONS_PATH pointing at it; ansible-doc
renders each with its attributes; one_ec2_group is declarative for hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyone
import pyone.acl
import pytest
import yaml

from .conftest import ROOT

COLLECTIONS = ROOT / "collections"
MODULES = sorted(p.stem for p in (COLLECTIONS / "ansible_collections/econe/opennebula/plugins/modules").glob("*.py"))
BIN = ROOT / ".venv" / "bin"


def _env(tmp_path) -> dict:
    """An operator's environment: their own (empty) ansible.cfg, the collection found by the path alone."""
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_NOCOLOR": "1",
    }


def play(tmp_path, cloud, tasks: list[dict], *args: str) -> list[dict]:
    """Run *tasks* on localhost from tmp_path (a playbook and inventory of its own); each task's result."""
    user, _, password = cloud.admin_session.partition(":")
    (tmp_path / "inventory").write_text(
        f"[frontend]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{
        "hosts": "frontend", "gather_facts": False, "tasks": tasks,
        "module_defaults": {"group/econe.opennebula.one_ec2": {
            "api_url": cloud.url, "api_username": user, "api_password": password}},
    }]))  # fmt: skip
    done = subprocess.run([str(BIN / "ansible-playbook"), "-i", "inventory", "play.yml", *args],
                          capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert password not in done.stdout + done.stderr
    return [t["hosts"]["localhost"] for t in json.loads(done.stdout)["plays"][0]["tasks"]]


@pytest.fixture
def admin(cloud):
    return pyone.OneServer(cloud.url, session=cloud.admin_session)


def _rules(admin) -> list[str]:
    return [a.STRING for a in admin.acl.info().ACL]


def test_a_host_no_longer_listed_loses_its_use_rule(tmp_path, cloud, admin):
    """hosts [a, b], then [a]: b's `@gid HOST/#b USE` goes (check mode only says so), other rules of the
    group on b stay, and a rerun changes nothing."""
    a = cloud.host
    b = admin.host.allocate(cloud.name("host-b"), "dummy", "dummy", -1)
    group = {"name": cloud.name("ec2"), "create_types": ["VM"]}
    (made,) = play(tmp_path, cloud, [{"econe.opennebula.one_ec2_group": {**group, "hosts": [str(a), str(b)]}}])
    gid = made["id"]
    assert made["changed"] and {f"@{gid} HOST/#{a} USE #0", f"@{gid} HOST/#{b} USE #0"} <= set(_rules(admin))
    # a rule of the group on b that this module does not make (other rights): it stays
    kept = admin.acl.addrule(*pyone.acl.OneAcl().parse_rule(f"@{gid} HOST/#{b} MANAGE #0"))

    only_a = [{"econe.opennebula.one_ec2_group": {**group, "hosts": [str(a)]}}]
    (checked,) = play(tmp_path, cloud, only_a, "--check", "--diff")
    assert checked["changed"], checked
    assert f"@{gid} HOST/#{b} USE" in checked["diff"]["before"]["rules"]
    assert f"@{gid} HOST/#{b} USE" not in checked["diff"]["after"]["rules"]
    assert f"@{gid} HOST/#{b} USE #0" in _rules(admin)  # check mode left it

    (applied,) = play(tmp_path, cloud, only_a)
    assert applied["changed"]
    rules = _rules(admin)
    assert f"@{gid} HOST/#{b} USE #0" not in rules
    assert f"@{gid} HOST/#{a} USE #0" in rules and f"@{gid} VM/* CREATE #0" in rules
    assert kept in [rule.ID for rule in admin.acl.info().ACL]
    (again,) = play(tmp_path, cloud, only_a, "--check", "--diff")
    assert not again["changed"], again
    (again,) = play(tmp_path, cloud, only_a)
    assert not again["changed"], again


def test_ansible_doc_renders_each_module_with_its_attributes(tmp_path):
    """As community.general documents modules: version_added, author, check and diff mode support stated,
    examples by FQCN, return values; the text rendering too."""
    names = [f"econe.opennebula.{m}" for m in MODULES]
    assert len(names) == 5
    done = subprocess.run([str(BIN / "ansible-doc"), "--json", *names], capture_output=True, text=True,
                          env=_env(tmp_path), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = json.loads(done.stdout)
    assert sorted(docs) == names
    for name, entry in docs.items():
        doc = entry["doc"]
        assert doc["version_added"] == "0.1.0" and doc["author"], name
        assert {a: doc["attributes"][a]["support"] for a in ("check_mode", "diff_mode")} == {
            "check_mode": "full", "diff_mode": "full"}, name  # fmt: skip
        assert {"api_url", "api_username", "api_password"} <= set(doc["options"]), name
        assert f"{name}:" in entry["examples"] and "id" in entry["return"], name
    text = subprocess.run([str(BIN / "ansible-doc"), names[1]], capture_output=True, text=True,
                          env={**_env(tmp_path), "PAGER": "cat"}, cwd=tmp_path)  # fmt: skip
    assert text.returncode == 0 and "ATTRIBUTES" in text.stdout and "support: full" in text.stdout, text.stderr


def test_every_module_runs_by_fqcn_from_an_outside_inventory(tmp_path, cloud, admin):
    """The role's whole chain, from a playbook that is not in this repository: a group, a user in it, a vnet
    given to the group, an ACL rule; a second run changes nothing."""
    group, user, vnet = cloud.name("ec2"), cloud.name("alice"), cloud.name("ec2net")
    tasks = [
        {"econe.opennebula.one_ec2_group": {"name": group, "hosts": [str(cloud.host)]}, "register": "made"},
        {"econe.opennebula.one_ec2_user": {"name": user, "password": "alicepw", "group": group}},
        {"econe.opennebula.one_ec2_template": {"kind": "vnet", "name": vnet, "cluster": cloud.cluster,
                                               "attributes": {"BRIDGE": "br0", "VN_MAD": "dummy"}}},
        {"econe.opennebula.one_ec2_permissions": {"kind": "vnet", "name": vnet, "group": group, "mode": "640"}},
        {"econe.opennebula.one_ec2_acl": {"rule": "@{{ made.id }} NET/* CREATE"}},
    ]  # fmt: skip
    first = play(tmp_path, cloud, tasks)
    assert [t["changed"] for t in first] == [True] * 5, first
    assert [t["changed"] for t in play(tmp_path, cloud, tasks)] == [False] * 5
    (found,) = [u for u in admin.userpool.info().USER if u.NAME == user]
    assert found.GNAME == group
    assert f"@{first[0]['id']} NET/* CREATE #0" in _rules(admin)

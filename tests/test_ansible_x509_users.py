"""x509 users from the opennebula_ec2 role (#10): an entry with ``driver: x509`` and ``dn`` becomes an
OpenNebula user of the x509 driver whose password is the DN as OpenNebula keeps it (escape_dn, several
joined with ``|``), created or changed idempotently, honest in check mode, against a fresh onelite (or
an existing oned with --conformance)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pyone
import pytest

from one.x509 import escape_dn

from .conftest import ROOT
from .test_ansible_opennebula_ec2 import play

CAROL_DN = "/C=ES/O=Example/CN=Carol Doe"
CAROL_STORED = r"/C=ES/O=Example/CN=Carol\20Doe"
# a user with two certificates (a renewed one beside the old one, say)
DAVE_DNS = ["/C=ES/O=Example/CN=Dave Roe", "/C=ES/O=Example Two/OU=Ops\tTeam/CN=Dave Roe"]
DAVE_STORED = r"/C=ES/O=Example/CN=Dave\20Roe|/C=ES/O=Example\20Two/OU=Ops\9Team/CN=Dave\20Roe"


@pytest.fixture
def admin(cloud):
    return pyone.OneServer(cloud.url, session=cloud.admin_session)


def _users(admin) -> dict:
    return {u.NAME: u for u in admin.userpool.info().USER}


def _x509_play(tmp_path, cloud, users, extra_args=()):
    """The role with these users only, and no instance types (not what this is about, and faster)."""
    return play(tmp_path, cloud, extra_args, opennebula_ec2_users=users, opennebula_ec2_instance_types=[])


def test_x509_users_are_created_with_the_escaped_dn_and_a_second_run_changes_nothing(tmp_path, cloud, admin):
    carol, dave = cloud.name("carol"), cloud.name("dave")
    users = [
        {"name": cloud.name("alice"), "password": "alicepw"},
        {"name": carol, "driver": "x509", "dn": CAROL_DN},
        {"name": dave, "driver": "x509", "dn": DAVE_DNS},
    ]
    first = _x509_play(tmp_path, cloud, users)
    assert first["changed"] > 0 and first["failures"] == 0
    found = _users(admin)
    assert (found[carol].AUTH_DRIVER, found[carol].PASSWORD) == ("x509", CAROL_STORED)
    assert (found[dave].AUTH_DRIVER, found[dave].PASSWORD) == ("x509", DAVE_STORED)
    group = next(g for g in admin.grouppool.info().GROUP if g.NAME == cloud.name("ec2"))
    assert found[carol].GID == found[dave].GID == group.ID
    second = _x509_play(tmp_path, cloud, users, ("--diff",))
    assert second["changed"] == 0, second


def test_a_changed_dn_and_a_core_user_made_x509_are_applied_and_check_mode_changes_nothing(tmp_path, cloud, admin):
    carol, erin = cloud.name("carol"), cloud.name("erin")
    _x509_play(tmp_path, cloud, [{"name": carol, "driver": "x509", "dn": CAROL_DN},
                                 {"name": erin, "password": "erinpw"}])  # fmt: skip
    new_dn = "/C=ES/O=Example/OU=Cloud Team/CN=Carol Doe"
    users = [{"name": carol, "driver": "x509", "dn": new_dn}, {"name": erin, "driver": "x509", "dn": "/CN=Erin"}]
    checked = _x509_play(tmp_path, cloud, users, ("--check", "--diff"))
    assert checked["changed"] == 1, checked  # one task, the x509 users', for both
    found = _users(admin)
    assert (found[carol].AUTH_DRIVER, found[carol].PASSWORD) == ("x509", CAROL_STORED)  # check mode left them
    assert found[erin].AUTH_DRIVER == "core"
    _x509_play(tmp_path, cloud, users)
    found = _users(admin)
    new_stored = r"/C=ES/O=Example/OU=Cloud\20Team/CN=Carol\20Doe"
    assert (found[carol].AUTH_DRIVER, found[carol].PASSWORD) == ("x509", new_stored)
    assert (found[erin].AUTH_DRIVER, found[erin].PASSWORD) == ("x509", "/CN=Erin")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"driver": "x509", "dn": "subject=/C=ES/CN=Carol Doe"}, "OpenSSL's slash form"),
        ({"driver": "x509", "dn": "CN=Carol Doe,O=Example,C=ES"}, "OpenSSL's slash form"),
        ({"driver": "x509", "dn": ["/CN=a|/CN=b"]}, "OpenSSL's slash form"),
        ({"driver": "x509"}, "missing: dn"),
        ({"dn": "/CN=Carol"}, "auth_driver x509"),
    ],
    ids=["openssl-prefix", "rfc2253", "separator", "no-dn", "dn-of-core"],
)
def test_a_dn_oned_could_never_match_fails_with_its_reason(tmp_path, cloud, admin, entry, message):
    with pytest.raises(AssertionError, match=message):
        _x509_play(tmp_path, cloud, [{"name": cloud.name("carol"), **entry}])
    assert cloud.name("carol") not in _users(admin)


def test_the_roles_escape_is_opennebulas():
    """The module cannot import app/one: its copy of escape_dn must agree with app/one/x509.py."""
    path = ROOT / "collections/ansible_collections/econe/opennebula/plugins/module_utils/one_ec2.py"
    spec = importlib.util.spec_from_file_location("role_one_ec2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for dn in (CAROL_DN, *DAVE_DNS, "/CN=a\nb\rc\vd\fe", "/CN=ü ü", "/CN=a\u00a0b"):
        assert module.escape_dn(dn) == escape_dn(dn), dn


def test_site_refuses_x509_without_a_client_ca(tmp_path):
    """x509 on and no CA for the proxy: site.yml stops before any role, saying what is missing."""
    inventory = tmp_path / "inventory"
    inventory.write_text(
        f"[frontend]\nlocalhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    run = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(inventory), str(ROOT / "playbooks" / "site.yml"),
           "--check", "-e", '{"ansible_become": false, "econe_server_auth": ["ec2", "x509"]}']  # fmt: skip
    done = subprocess.run(run, capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode != 0 and "lighttpd_ssl_proxy_client_ca is empty" in done.stdout, done.stdout[-2000:]
    assert "ok=1 " in done.stdout and "changed=0" in done.stdout  # the facts, then the assert failed

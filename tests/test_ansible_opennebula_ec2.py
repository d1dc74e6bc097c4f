"""The opennebula_ec2 role against a cloud (a fresh onelite, or an existing oned with --conformance):
it provisions what econe needs, a second run changes nothing, check mode reports nothing to do, and
the users it makes can use econe."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import pyone
import pytest
import yaml

from demo import wait_ready

from .cloud import Cloud
from .conftest import ROOT, free_port, start_econe


def play(tmp_path, cloud: Cloud, extra_args=(), **overrides) -> dict:
    """Run the role on localhost; the PLAY RECAP counts of the json callback."""
    pinned = {"SCHED_REQUIREMENTS": f'ID="{cloud.host}"'}  # on a real oned the group may manage every host
    variables = {
        "opennebula_ec2_api_url": cloud.url,
        "opennebula_ec2_api_username": cloud.admin_name,
        "opennebula_ec2_auth_file": str(cloud.admin_auth),
        "opennebula_ec2_python": sys.executable,
        "opennebula_ec2_install_pyone": False,
        "ansible_python_interpreter": sys.executable,
        "opennebula_ec2_hosts": [ET.fromstring(cloud.admin()("one.host.info", cloud.host, False)).findtext("NAME")],
        "opennebula_ec2_group": cloud.name("ec2"),
        "opennebula_ec2_vnet_name": cloud.name("ec2net"),
        "opennebula_ec2_vnet_cluster": cloud.cluster,
        "opennebula_ec2_instance_types": [
            {"name": cloud.name(name), "cpu": cpu, "vcpu": 1, "memory": memory, "attributes": pinned}
            for name, cpu, memory in (("m1.small", "0.5", 512), ("m1.medium", "1", 1024))
        ],
        "opennebula_ec2_users": [
            {"name": cloud.name("alice"), "password": "alicepw"},
            {"name": cloud.name("bob"), "password": "bobpw"},
        ],
        **overrides,
    }
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "roles": [{"role": "opennebula_ec2", "vars": variables}]}]))  # fmt: skip
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}  # fmt: skip
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(book),
                           *extra_args], capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for user in variables["opennebula_ec2_users"]:  # neither a password nor the EC2 secret it makes
        if "password" in user:
            secrets = (user["password"], hashlib.sha256(user["password"].encode()).hexdigest())
            out = done.stdout + done.stderr
            found = [out[max(0, out.find(s) - 300) : out.find(s) + 80] for s in secrets if s in out]
            assert not found, f"{user['name']}'s secret in the output: {found}"
    return json.loads(done.stdout)["stats"]["localhost"]


@pytest.fixture
def admin(cloud):
    return pyone.OneServer(cloud.url, session=cloud.admin_session)


def test_role_provisions_idempotently(tmp_path, cloud, admin):
    first = play(tmp_path, cloud)
    assert first["changed"] > 0 and first["failures"] == 0
    second = play(tmp_path, cloud)
    assert second["changed"] == 0, second
    checked = play(tmp_path, cloud, ("--check", "--diff"))
    assert checked["changed"] == 0, checked

    group = next(g for g in admin.grouppool.info().GROUP if g.NAME == cloud.name("ec2"))
    rules = [a.STRING for a in admin.acl.info().ACL]
    assert f"@{group.ID} VM+NET+IMAGE+TEMPLATE+DOCUMENT+SECGROUP/* CREATE #0" in rules
    assert f"@{group.ID} HOST/#{cloud.host} USE #0" in rules
    alice = next(u for u in admin.userpool.info().USER if u.NAME == cloud.name("alice"))
    assert alice.GID == group.ID and alice.PASSWORD == hashlib.sha256(b"alicepw").hexdigest()
    vnet = next(v for v in admin.vnpool.info(-2, -1, -1).VNET if v.NAME == cloud.name("ec2net"))
    assert vnet.GID == group.ID and (vnet.PERMISSIONS.GROUP_U, vnet.PERMISSIONS.OTHER_U) == (1, 1)
    small = next(t for t in admin.templatepool.info(-2, -1, -1).VMTEMPLATE if t.NAME == cloud.name("m1.small"))
    assert small.GID == group.ID and small.TEMPLATE["EC2_INSTANCE_TYPE"] == cloud.name("m1.small")
    assert [small.PERMISSIONS.GROUP_U, small.PERMISSIONS.OTHER_U] == [1, 0]


def test_a_changed_password_is_applied_and_check_mode_changes_nothing(tmp_path, cloud, admin):
    play(tmp_path, cloud)
    alice, bob = cloud.name("alice"), cloud.name("bob")
    users = [{"name": alice, "password": "newpw"}, {"name": bob, "state": "absent"}]
    checked = play(tmp_path, cloud, ("--check",), opennebula_ec2_users=users)
    assert checked["changed"] > 0
    found = next(u for u in admin.userpool.info().USER if u.NAME == alice)
    assert found.PASSWORD == hashlib.sha256(b"alicepw").hexdigest()  # check mode left it alone
    play(tmp_path, cloud, opennebula_ec2_users=users)
    names = {u.NAME: u for u in admin.userpool.info().USER}
    assert names[alice].PASSWORD == hashlib.sha256(b"newpw").hexdigest() and bob not in names


def test_users_it_makes_can_use_econe(tmp_path, cloud, admin):
    play(tmp_path, cloud)
    body = f'NAME="{cloud.name("img")}"\nTYPE="OS"\nPATH="{_disk(tmp_path)}"\nEC2_AMI="YES"\n'
    image = admin.image.allocate(body, cloud.datastore, False)
    group = next(g for g in admin.grouppool.info().GROUP if g.NAME == cloud.name("ec2"))
    admin.image.chown(image, -1, group.ID)
    admin.image.chmod(image, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    econe = start_econe(tmp_path, cloud.url, cloud.server_auth, datastore_id=cloud.datastore)
    try:
        ec2 = boto3.client("ec2", endpoint_url=econe.url, region_name="opennebula",
                           aws_access_key_id=cloud.name("alice"),
                           aws_secret_access_key=hashlib.sha256(b"alicepw").hexdigest())  # fmt: skip
        wait_ready(cloud.admin(), image)
        vm = ec2.run_instances(ImageId=f"ami-{image:08d}", InstanceType=cloud.name("m1.small"), MinCount=1, MaxCount=1)
        vmid = vm["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[vmid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
        ec2.terminate_instances(InstanceIds=[vmid])
    finally:
        econe.stop()


def _disk(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 1024 * 1024)
    return path


def test_unreachable_oned_fails_with_a_clear_message(tmp_path, cloud):
    book = tmp_path / "play.yml"
    with pytest.raises(AssertionError, match="cannot reach oned"):
        play(tmp_path, cloud, opennebula_ec2_api_url=f"http://127.0.0.1:{free_port()}/RPC2")  # nothing listens
    assert book.exists()


# ---------------------------------------------------------------- elastic IPs (issue #14)


def test_the_elastic_ip_network_is_the_groups_to_reserve_from(tmp_path, cloud, admin):
    """Off by default; asked for, a network the group may USE (reserve addresses of) and others may not,
    made once (a rerun and check mode change nothing), from which econe's users get addresses. A user's
    reservation of the same name (oned's names are unique per owner) is not taken for it."""
    name = cloud.name("elastic-ips")
    play(tmp_path, cloud)
    assert all(v.NAME != name for v in admin.vnpool.info(-2, -1, -1).VNET)
    alice = pyone.OneServer(cloud.url, session=f"{cloud.name('alice')}:alicepw")
    ec2net = next(v for v in admin.vnpool.info(-2, -1, -1).VNET if v.NAME == cloud.name("ec2net"))
    hers = alice.vn.reserve(ec2net.ID, f'SIZE="1"\nNAME="{name}"\n')
    wait_ready(cloud.admin(), hers, "vnet")
    eips = {
        "opennebula_ec2_elastic_ips_name": name,
        "opennebula_ec2_elastic_ips_attributes": {"BRIDGE": "br1", "VN_MAD": "dummy",
                                                  "AR": {"TYPE": "IP4", "IP": "198.51.100.10", "SIZE": 2}},
    }  # fmt: skip
    assert play(tmp_path, cloud, **eips)["changed"] > 0
    assert play(tmp_path, cloud, **eips)["changed"] == 0
    assert play(tmp_path, cloud, ("--check", "--diff"), **eips)["changed"] == 0
    group = next(g for g in admin.grouppool.info().GROUP if g.NAME == cloud.name("ec2"))
    (vnet,) = [v for v in admin.vnpool.info(-2, -1, -1).VNET if v.NAME == name and v.ID != hers]
    assert vnet.UID == admin.user.info(-1).ID
    assert vnet.GID == group.ID and (vnet.PERMISSIONS.GROUP_U, vnet.PERMISSIONS.OTHER_U) == (1, 0)
    assert admin.vn.info(hers).PERMISSIONS.GROUP_U == 0  # hers is left as she made it
    alice.vn.delete(hers)
    wait_ready(cloud.admin(), vnet.ID, "vnet")
    econe = start_econe(tmp_path, cloud.url, cloud.server_auth, datastore_id=cloud.datastore,
                        elasticips_vnet_id=vnet.ID)  # fmt: skip
    try:
        ec2 = boto3.client("ec2", endpoint_url=econe.url, region_name="opennebula",
                           aws_access_key_id=cloud.name("alice"),
                           aws_secret_access_key=hashlib.sha256(b"alicepw").hexdigest())  # fmt: skip
        address = ec2.allocate_address(Domain="vpc")
        assert address["PublicIp"] in ("198.51.100.10", "198.51.100.11")
        ec2.release_address(AllocationId=address["AllocationId"])
    finally:
        econe.stop()


def _econe_conf(tmp_path, registered: dict, inventory: str = "") -> int | None:
    """elasticips_vnet_id of econe.conf as the econe_server role writes it: its defaults and template (in a
    role of their own here), *registered* as opennebula_ec2's registered result, *inventory* host variables."""
    role = tmp_path / "roles" / "econe_conf"
    for part, source in (("defaults", "defaults/main.yml"), ("templates", "templates/econe.conf.j2")):
        (role / part).mkdir(parents=True, exist_ok=True)
        (role / part / Path(source).name).write_text((ROOT / "roles" / "econe_server" / source).read_text())
    (role / "tasks").mkdir(exist_ok=True)
    (role / "tasks" / "main.yml").write_text(yaml.safe_dump([
        {"ansible.builtin.template": {"src": "econe.conf.j2", "dest": str(tmp_path / "econe.conf")}}
    ]))  # fmt: skip
    book = tmp_path / "conf.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                     "vars": {"opennebula_ec2_elastic_ips_vnet": registered},
                                     "roles": ["econe_conf"]}]))  # fmt: skip
    hosts = tmp_path / "hosts"
    hosts.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable} {inventory}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_ROLES_PATH": str(tmp_path / "roles"),
           "ANSIBLE_LOCALHOST_WARNING": "false"}  # fmt: skip
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", str(hosts), str(book)],
                          capture_output=True, text=True, env=env, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return yaml.safe_load((tmp_path / "econe.conf").read_text()).get(":elasticips_vnet_id")


def test_econe_conf_names_the_elastic_ip_network_the_role_made(tmp_path):
    """econe_server writes the id opennebula_ec2 registered (a variable of the inventory overrides it);
    none when no network was made (the task skipped) or -1 is set."""
    made = {"changed": False, "id": 7}
    assert _econe_conf(tmp_path, made) == 7
    assert _econe_conf(tmp_path, made, "econe_server_elasticips_vnet_id=9") == 9
    assert _econe_conf(tmp_path, {"skipped": True}) is None
    assert _econe_conf(tmp_path, made, "econe_server_elasticips_vnet_id=-1") is None

"""Issue #12's acceptance: Ansible's amazon.aws collection, written as its users write it, against econe
on onelite. Key pairs, a security group with rules, an instance made by name with a key, groups and tags,
its reruns, stop/start, the tag module, the info modules, the aws_ec2 inventory plugin, and removal by
name. Each step is a playbook run whose results are read from the json callback; a rerun must report
no change, as Ansible's idempotence asks."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .aws_play import BIN, aws_env, play
from .test_econe_e2e import stack  # noqa: F401


def _openssh_ed25519() -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.fixture(scope="module")
def names(stack):  # noqa: F811
    return {k: stack.cloud.name(k) for k in ("made-key", "own-key", "web", "web1")}


@pytest.fixture(scope="module")
def own_key() -> str:
    return _openssh_ed25519()


def _group(names) -> dict:
    rules = [
        {"proto": "tcp", "ports": [22], "cidr_ip": "0.0.0.0/0"},
        {"proto": "tcp", "from_port": 80, "to_port": 81, "cidr_ip": "10.0.0.0/24"},
        {"proto": "icmp", "icmp_type": 8, "icmp_code": -1, "cidr_ip": "0.0.0.0/0"},
    ]
    return {"name": names["web"], "description": "web servers", "rules": rules}


def test_key_pairs(stack, tmp_path, names, own_key):  # noqa: F811
    made, own, public = names["made-key"], names["own-key"], own_key
    created, again, imported, listed, removed, removed_again, after = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_key": {"name": made}},
        {"amazon.aws.ec2_key": {"name": made}},
        {"amazon.aws.ec2_key": {"name": own, "key_material": public}},
        {"amazon.aws.ec2_key_info": {"names": [made, own]}},
        {"amazon.aws.ec2_key": {"name": made, "state": "absent"}},
        {"amazon.aws.ec2_key": {"name": made, "state": "absent"}},
        {"amazon.aws.ec2_key_info": {"filters": {"key-name": [made, own]}}},
    )
    assert created["changed"] and created["key"]["private_key"].startswith("-----BEGIN")
    assert created["key"]["name"] == made and created["key"]["id"].startswith("key-")
    assert not again["changed"] and "private_key" not in again["key"]  # returned once, never stored
    assert imported["changed"] and imported["key"]["name"] == own
    pairs = {k["key_name"]: k for k in listed["keypairs"]}
    assert set(pairs) == {made, own} and pairs[own]["key_type"] == "ed25519"
    assert pairs[made]["key_fingerprint"] == created["key"]["fingerprint"]
    assert removed["changed"] and not removed_again["changed"]
    assert [k["key_name"] for k in after["keypairs"]] == [own]


def test_security_group(stack, tmp_path, names):  # noqa: F811
    group = _group(names)
    created, again, info = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_security_group": group},
        {"amazon.aws.ec2_security_group": group},
        {"amazon.aws.ec2_security_group_info": {"filters": {"group-name": names["web"]}}},
    )
    assert created["changed"] and created["group_id"].startswith("sg-")
    assert not again["changed"], again
    (sg,) = info["security_groups"]
    assert sg["group_id"] == created["group_id"] and sg["description"] == "web servers"
    ports = sorted((p["ip_protocol"], p.get("from_port"), p.get("to_port")) for p in sg["ip_permissions"])
    assert ports == [("icmp", 8, -1), ("tcp", 22, 22), ("tcp", 80, 81)]
    # what oned holds: the group's RULE vectors, 0.0.0.0/0 as every IPv4 address (no IP would be IPv6 too)
    sgid = int(created["group_id"][3:])
    body = ET.fromstring(stack.admin("one.secgroup.info", sgid, False))
    inbound = sorted(
        (r.findtext("PROTOCOL"), r.findtext("RANGE"), r.findtext("IP"), r.findtext("SIZE"))
        for r in body.iter("RULE")
        if r.findtext("RULE_TYPE").lower() == "inbound"
    )
    any_v4 = ("0.0.0.0", "4294967295")
    assert inbound == [("ICMP", None, *any_v4), ("TCP", "22:22", *any_v4), ("TCP", "80:81", "10.0.0.0", "256")]


def test_instance_lifecycle_by_name(stack, tmp_path, names, own_key):  # noqa: F811
    instance = {
        "name": names["web1"],
        "image_id": f"ami-{stack.demo.image:08d}",
        "instance_type": stack.demo.itype,
        "key_name": names["own-key"],
        "security_groups": [names["web"]],
        "tags": {"env": "test"},
        "wait": True,
    }
    _, _, created, again = play(  # the key and the group as a user's play ensures them (unchanged if there)
        stack,
        tmp_path,
        {"amazon.aws.ec2_key": {"name": names["own-key"], "key_material": own_key}},
        {"amazon.aws.ec2_security_group": _group(names)},
        {"amazon.aws.ec2_instance": instance},
        {"amazon.aws.ec2_instance": instance},
    )
    assert created["changed"], created
    (iid,) = created["instance_ids"]
    assert not again["changed"], again
    vm = ET.fromstring(stack.admin("one.vm.info", int(iid[2:]), False))
    assert vm.findtext("TEMPLATE/CONTEXT/SSH_PUBLIC_KEY") == own_key
    groups = vm.findtext("TEMPLATE/NIC/SECURITY_GROUPS").split(",")
    sg = play(stack, tmp_path, {"amazon.aws.ec2_security_group_info": {"filters": {"group-name": names["web"]}}})
    assert str(int(sg[0]["security_groups"][0]["group_id"][3:])) in groups

    tagged, by_tag, vpcs, subnets = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_tag": {"resource": iid, "tags": {"team": "ops"}}},
        {"amazon.aws.ec2_instance_info": {"filters": {"tag:team": "ops", "instance-state-name": "running"}}},
        {"amazon.aws.ec2_vpc_net_info": {}},
        {"amazon.aws.ec2_vpc_subnet_info": {}},
    )
    assert tagged["changed"] and tagged["tags"] == {"Name": names["web1"], "env": "test", "team": "ops"}
    (found,) = by_tag["instances"]
    assert found["instance_id"] == iid and found["key_name"] == names["own-key"]
    assert [g["group_name"] for g in found["security_groups"]] == [names["web"]]
    (vpc,) = vpcs["vpcs"]
    assert vpc["is_default"] and found["vpc_id"] == vpc["vpc_id"]
    assert found["subnet_id"] in [s["subnet_id"] for s in subnets["subnets"]]

    _inventory_has(stack, tmp_path, names["web1"], found["private_ip_address"])

    by_name = {"amazon.aws.ec2_instance_info": {"filters": {"tag:Name": names["web1"]}}}
    stopped, when_stopped, started, when_started = play(  # ec2_instance answers with what it found before
        stack,
        tmp_path,
        {"amazon.aws.ec2_instance": {**instance, "state": "stopped"}},
        by_name,
        {"amazon.aws.ec2_instance": {**instance, "state": "running"}},
        by_name,
    )
    assert stopped["changed"] and [i["state"]["name"] for i in when_stopped["instances"]] == ["stopped"]
    assert started["changed"] and [i["state"]["name"] for i in when_started["instances"]] == ["running"]
    gone, gone_again, left = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_instance": {"name": names["web1"], "state": "absent", "wait": True}},
        {"amazon.aws.ec2_instance": {"name": names["web1"], "state": "absent", "wait": True}},
        {"amazon.aws.ec2_instance_info": {"filters": {"tag:Name": names["web1"], "instance-state-name": "running"}}},
    )
    assert gone["changed"] and not gone_again["changed"] and left["instances"] == []


def _inventory_has(stack, tmp_path, name: str, address: str) -> None:  # noqa: F811
    """The aws_ec2 inventory plugin lists the instance under its Name tag, with its address."""
    source = tmp_path / "demo.aws_ec2.yml"
    source.write_text(yaml.safe_dump({
        "plugin": "amazon.aws.aws_ec2",
        "endpoint_url": stack.econe.url,
        "regions": ["opennebula"],
        "hostnames": ["tag:Name"],
        "compose": {"ansible_host": "private_ip_address"},
        "keyed_groups": [{"key": "tags.env", "prefix": "env"}],
    }))  # fmt: skip
    env = {**aws_env(stack), "ANSIBLE_INVENTORY_ENABLED": "amazon.aws.aws_ec2"}
    done = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(source), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    inventory = json.loads(done.stdout)
    host = inventory["_meta"]["hostvars"][name]["ansible_host"]
    assert (
        host.get("__ansible_unsafe") if isinstance(host, dict) else host
    ) == address  # data from the cloud is unsafe
    assert name in inventory["env_test"]["hosts"]

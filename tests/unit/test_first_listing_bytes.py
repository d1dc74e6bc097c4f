"""A first listing's answer, byte for byte: DescribeInstances (and DescribeNetworkInterfaces) of VMs econe
reads for the first time, from a varied short pool answer written as oned writes one, against golden
files the code on main wrote before the first listing was made cheaper (issue #13). The work on the
cost of a first-seen VM (parse, describe, write) must not change one byte of what a client reads.
Also, against econe on onelite: EC2 attributes a user wrote in OpenNebula itself do not fail a listing.

`python -m tests.unit.test_first_listing_bytes` writes the golden files again (see their README)."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
import xmlrpc.client
from pathlib import Path

from econe import model
from econe.actions import instances, nics
from econe.gateway import Gateway
from econe.objects import SecGroup, parse_ec2_attrs, parse_vm_pool, parse_vm_records, split_vm_pool, xml
from one import template as tpl

from ..test_econe_e2e import signed_v2, stack  # noqa: F401

GOLDEN = Path(__file__).parent.parent / "fixtures" / "golden" / "first_listing"
VERSION, REQUEST_ID = "2016-11-15", "5ea1f00d-0000-4000-8000-000000000013"
ELASTIC = 40  # the elastic IPs' network; the user's reservations of it: networks 41 and 42


def _cdata(tag: str, value: str) -> str:
    return f"<{tag}><![CDATA[{value}]]></{tag}>"


def _vector(tag: str, **values: str) -> str:
    return f"<{tag}>" + "".join(_cdata(k, v) for k, v in values.items()) + f"</{tag}>"


def _disk(image: int) -> str:
    return _vector("DISK", DISK_ID="0", DATASTORE="default", IMAGE="img", IMAGE_ID=str(image), SIZE="2", TYPE="FILE")


def _nic(nic_id: int, ip: str | None, network_id: str | None, groups: str | None, mac: str = "") -> str:
    values = {"IP": ip, "MAC": mac or f"02:00:0a:00:00:{nic_id:02x}", "NETWORK": "net & <co>",
              "NETWORK_ID": network_id, "NIC_ID": str(nic_id), "SECURITY_GROUPS": groups}  # fmt: skip
    return _vector("NIC", **{k: v for k, v in values.items() if v is not None})


def _vm(vmid, state, lcm, parts="", user=None, name="vm", stime=1795673363, etime=0, cpu="<CPU>0.1</CPU>") -> str:
    """A VM element of oned's short pool answer: top-level texts escaped, template values in CDATA."""
    user_template = "".join(_cdata(k, v) for k, v in (user or {}).items())
    return (
        f"<VM><ID>{vmid}</ID><UID>13</UID><GID>104</GID><UNAME>u1</UNAME><GNAME>g</GNAME><NAME>{name}</NAME>"
        f"<LAST_POLL>0</LAST_POLL><STATE>{state}</STATE><LCM_STATE>{lcm}</LCM_STATE><RESCHED>0</RESCHED>"
        f"<STIME>{stime}</STIME><ETIME>{etime}</ETIME><DEPLOY_ID>h:vm:dummy</DEPLOY_ID>"
        f"<TEMPLATE>{cpu}<MEMORY>64</MEMORY>{parts}"
        f"{_vector('GRAPHICS', LISTEN='0.0.0.0', TYPE='VNC')}</TEMPLATE><MONITORING/>"
        + (f"<USER_TEMPLATE>{user_template}</USER_TEMPLATE>" if user_template else "<USER_TEMPLATE/>")
        + "<HISTORY_RECORDS/></VM>"
    )


def _tags(tags: dict) -> str:
    return json.dumps(tags, sort_keys=True)


def short_pool() -> str:
    """Twelve VMs: two of one reservation, tags (escaped characters, a control character, bad JSON),
    key names, types from the user template or the template, several NICs with and without groups,
    an elastic IP, a global address, noted volumes (held, let go, malformed), DONE VMs, CDATA values
    that read like XML, and VMs with no NIC, no disk or no user template."""
    run = {"EC2_IMAGE_ID": "ami-00000003", "EC2_INSTANCE_TYPE": "m1.small", "EC2_RESERVATION_ID": "r-0a1b2c3d4e5f60718"}
    vms = [
        _vm(5012, 3, 3, _disk(3) + _disk(17) + _nic(0, "10.77.0.12", "3", "0,100") + _nic(1, "10.78.0.4", "4", "0"),
            {**run, "EC2_LAUNCH_INDEX": "0", "EC2_KEYNAME": "ops key", "EC2_CLIENT_TOKEN": "tok-1",
             "EC2_TAGS": _tags({"Name": "web <1> & \"co\"", "env": "prod", "é": "ünï"}),
             "EC2_VOLUMES": json.dumps({"vol-00000017": ["/dev/sdb", 1795673400], "vol-00000018": ["/dev/sdc", 1],
                                        "vol-bad": ["/dev/sdd", 2], "vol-00000003": "x"}),
             "LABELS": "a,b"}, name="web &lt;1&gt;"),
        _vm(5013, 3, 3, _disk(3) + _nic(0, "8.8.4.4", "3", "101,102"),
            {**run, "EC2_LAUNCH_INDEX": "1", "EC2_TAGS": _tags({"Name": "line\nbreak\ttab\u0001ctl"})}),
        _vm(5014, 6, 0, _disk(3) + _nic(0, "10.77.0.14", "3", "0,100"),
            {"EC2_IMAGE_ID": "ami-00000003", "EC2_INSTANCE_TYPE": "m1.large", "EC2_TAGS": _tags({"gone": "yes"}),
             "EC2_VOLUMES": json.dumps({"vol-00000003": ["/dev/sdb", 5]})}, etime=1795673999),
        _vm(5015, 8, 0, _disk(9), None, cpu="<CPU>1</CPU><EC2_INSTANCE_TYPE>t1.micro</EC2_INSTANCE_TYPE>"),
        _vm(5016, 3, 3, _disk(3) + _nic(0, "192.0.2.7", "41", "0") + _nic(1, "10.77.0.16", "3", None),
            {"EC2_INSTANCE_TYPE": "m1.small", "EC2_TAGS": "{not json", "EC2_LAUNCH_INDEX": ""}, stime=0),
        _vm(5017, 3, 3, _disk(3) + _nic(0, "10.77.0.17", "3", "100")
            + _vector("CONTEXT", NETWORK="YES", SSH_PUBLIC_KEY="ssh-ed25519 AAAA <x>]]&gt;"),
            {"EC2_TAGS": _tags({"xml": "</TEMPLATE></VM><VM><NAME>8</NAME>", "cdata": "<![CDATA[x", "amp": "&amp;"}),
             "DESCRIPTION": "</USER_TEMPLATE></VM><VM>", "EC2_KEYNAME": "k&<>"}),
        _vm(5018, 1, 0, _disk(3) + _nic(0, "", "3", "0", mac="02:00:0a:00:00:99"), {"EC2_LAUNCH_INDEX": "3"}),
        _vm(5019, 3, 17, _disk(3) + _nic(0, "10.77.0.19", None, "0,100,101"), {"EC2_INSTANCE_TYPE": "c1.medium"}),
        _vm(5020, 3, 3, _disk(3) + _vector("NIC", IP="10.77.0.20", NETWORK_ID="3", SECURITY_GROUPS="0")
            + _nic(1, "192.0.2.8", "42", "100,101"), {"EC2_TAGS": _tags({})}),
        _vm(5021, 6, 0, _disk(3) + _nic(0, "8.8.8.8", "41", "0"), {"EC2_RESERVATION_ID": "r-0000000000000dead"},
            etime=1795674000),
        _vm(5022, 4, 0, "", {"EC2_SHUTDOWN_BEHAVIOR": "stop", "EC2_DISABLE_API_TERMINATION": "true"}),
        _vm(5023, 3, 3, _disk(3) + _nic(0, "10.77.0.23", "3", "0") + _nic(1, "10.78.0.23", "4", "0,102")
            + _nic(2, "10.79.0.23", "5", "0"), {**run, "EC2_LAUNCH_INDEX": "2"}),
    ]  # fmt: skip
    return "<VM_POOL>" + "".join(vms) + "</VM_POOL>"


def extended_pool() -> str:
    """The extended answer's EC2 attributes and OS/ARCH of some of the VMs (the short answer has no OS)."""

    def vm(vmid: int, arch: str, user: dict) -> str:
        os_ = _vector("OS", ARCH=arch) if arch else ""
        attrs = "".join(_cdata(k, v) for k, v in user.items())
        return f"<VM><ID>{vmid}</ID><TEMPLATE>{os_}</TEMPLATE><USER_TEMPLATE>{attrs}</USER_TEMPLATE></VM>"

    return (
        "<VM_POOL>"
        + vm(5012, "aarch64", {"EC2_KEYNAME": "ops & key", "EC2_SHUTDOWN_BEHAVIOR": "terminate"})
        + vm(5013, "i686", {})
        + vm(5018, "", {"EC2_CLIENT_TOKEN": "tok <2>", "EC2_IMAGE_ID": "ami-00000009"})
        + vm(5020, "x86_64", {"EC2_TAGS": _tags({"Name": "from extended"})})
        + "</VM_POOL>"
    )


class Session:
    """What GroupNames asks of a user's session, as oned answers it: the security groups the user sees,
    and its own networks (reservations of the elastic IPs' network among them)."""

    def secgroups(self) -> list[SecGroup]:
        return [SecGroup(0, "default", 0, [], []), SecGroup(100, "web & <admin>", 13, [], []),
                SecGroup(101, "db", 13, [], [])]  # fmt: skip

    def own_vnets(self) -> list:
        def vnet(vnid: int, parent: str) -> str:
            return f"<VNET><ID>{vnid}</ID><PARENT_NETWORK_ID>{parent}</PARENT_NETWORK_ID></VNET>"

        return list(xml(f"<VNET_POOL>{vnet(41, '40')}{vnet(42, '40')}{vnet(4, '')}</VNET_POOL>").iterfind("VNET"))


def _vms(parse) -> list:
    attrs = parse_ec2_attrs(extended_pool())
    return [Gateway.with_attrs(vm, *attrs.get(vm.id, ({}, ""))) for vm in parse(short_pool())]


def describe_instances(parse, written: bool = True) -> bytes:
    """DescribeInstances of the VMs as econe answers a first listing: each instance written once
    (`_written`), or (*written* False) as a description the answer's writer writes (RunInstances')."""
    names = nics.GroupNames(Session(), ELASTIC)
    vms = _vms(parse)
    items = [(vm, instances._written(vm, names) if written else instances.describe(vm, names)) for vm in vms]
    result = {"Reservations": instances._reservations(items)}
    return model.serialize(model.operation("DescribeInstances"), result, VERSION, REQUEST_ID)


def describe_network_interfaces(parse) -> bytes:
    names = nics.GroupNames(Session(), ELASTIC)
    enis = [nics.interface(vm, nic, names, standalone=True) for vm in _vms(parse) if vm.state != 6 for nic in vm.nics]
    op = model.operation("DescribeNetworkInterfaces")
    return model.serialize(op, {"NetworkInterfaces": enis}, VERSION, REQUEST_ID)


def _records(text: str) -> list:
    records = split_vm_pool(text)
    assert records is not None
    return parse_vm_records(records)


ANSWERS = {
    "DescribeInstances.xml": lambda: describe_instances(_records),
    "DescribeNetworkInterfaces.xml": lambda: describe_network_interfaces(_records),
}


def test_the_pool_is_varied_and_splits_into_its_vms():
    text = short_pool()
    assert len(split_vm_pool(text)) == text.count("<VM><ID>") == 12
    vms = _vms(parse_vm_pool)
    assert {vm.state for vm in vms} >= {1, 3, 4, 6, 8} and max(len(vm.nics) for vm in vms) == 3
    assert [vm.id for vm in vms] == [vm.id for vm in _vms(_records)]


def test_a_first_listing_answers_as_main_did():
    """Every path to the answer gives the golden bytes: the pieces split, the whole answer parsed, and the
    instances written as fragments or as descriptions within the answer."""
    golden = (GOLDEN / "DescribeInstances.xml").read_bytes()
    assert describe_instances(_records) == golden
    assert describe_instances(parse_vm_pool) == golden
    assert describe_instances(_records, written=False) == golden
    for needed in (b"ops &amp; key", b"web &amp; &lt;admin&gt;", b"\xef\xbf\xbd", b"<publicIp>192.0.2.7</publicIp>",
                   b"vol-00000017", b"User initiated", b"<architecture>aarch64</architecture>"):  # fmt: skip
        assert needed in golden


def test_a_first_listing_of_network_interfaces_answers_as_main_did():
    golden = (GOLDEN / "DescribeNetworkInterfaces.xml").read_bytes()
    assert describe_network_interfaces(_records) == golden
    assert describe_network_interfaces(parse_vm_pool) == golden


def test_ec2_attributes_written_in_opennebula_that_are_no_ec2_values_list_the_instance(stack):  # noqa: F811
    """A user writes its VM's user template in OpenNebula itself: EC2_TAGS that are no JSON object and an
    EC2_LAUNCH_INDEX that is no number are no tags and index 0, as for a security group's tags, not a
    listing that fails (an InternalError before) for the user and every user who may see the VM."""
    body = [("NAME", stack.cloud.name("by-hand")), ("CPU", "0.1"), ("MEMORY", "64"), ("EC2_TAGS", "[1]"),
            ("EC2_LAUNCH_INDEX", "x")]  # fmt: skip
    owner = f"{stack.demo.user}:{stack.demo.password}"
    ok, vmid, *_ = xmlrpc.client.ServerProxy(stack.cloud.url).one.vm.allocate(owner, tpl.serialize(body), True)
    assert ok, vmid
    try:
        status, root = signed_v2(stack, {"Action": "DescribeInstances", "InstanceId.1": f"i-{vmid:08d}"})
        assert status == 200, ET.tostring(root)
        (instance,) = [el for el in root.iter() if el.tag.endswith("instancesSet")][0]
        fields = {el.tag.split("}")[1]: el for el in instance}
        assert fields["amiLaunchIndex"].text == "0" and "tagSet" not in fields
    finally:
        stack.admin("one.vm.action", "terminate-hard", vmid)


if __name__ == "__main__":  # writes the golden files: only from the code whose answers they hold
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, make in ANSWERS.items():
        (GOLDEN / name).write_bytes(make())
    sys.exit(0)

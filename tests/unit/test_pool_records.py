"""A VM_POOL answer split into its VM elements (`objects.split_vm_pool`), which lets the gateway reuse
what it read from an unchanged VM: held to the pool answers captured from oned 6.10.5, and to answers
whose CDATA sections hold text that looks like a VM element."""

from __future__ import annotations

import xmlrpc.client
from pathlib import Path

import pytest

from econe.gateway import Gateway
from econe.metrics import Metrics
from econe.objects import parse_ec2_attrs, parse_vm_pool, parse_vm_records, split_vm_pool

FIXTURES = Path(__file__).parent.parent / "fixtures" / "oned-6.10.5"
CAPTURED = sorted(p for p in FIXTURES.glob("set*/one.vmpool.info*.xml") if "error" not in p.name)


def _answer(path: Path) -> str:
    ok, text, *_ = xmlrpc.client.loads(path.read_text())[0][0]
    assert ok
    return text


def _same(a, b) -> bool:
    return [(v.id, v.name, v.state, v.lcm_state, v.nics, v.user_template, v.template, v.arch) for v in a] == [
        (v.id, v.name, v.state, v.lcm_state, v.nics, v.user_template, v.template, v.arch) for v in b
    ]


@pytest.mark.parametrize("path", CAPTURED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_captured_pools_split_into_their_vms(path):
    text = _answer(path)
    records = split_vm_pool(text)
    assert records is not None
    assert len(records) == text.count("<VM><ID>")
    assert _same(parse_vm_records(records), parse_vm_pool(text))


def test_the_captures_have_vms_and_cdata():
    texts = [_answer(p) for p in CAPTURED]
    assert sum(t.count("<VM><ID>") for t in texts) >= 20
    assert any("<![CDATA[" in t for t in texts)


def _vm(vmid: int, graphics: str = "") -> str:
    return (
        f"<VM><ID>{vmid}</ID><UID>5</UID><GID>1</GID><UNAME>u</UNAME><GNAME>g</GNAME><NAME>vm{vmid}</NAME>"
        "<LAST_POLL>0</LAST_POLL><STATE>3</STATE><LCM_STATE>3</LCM_STATE><RESCHED>0</RESCHED><STIME>1</STIME>"
        f"<ETIME>0</ETIME><DEPLOY_ID></DEPLOY_ID><TEMPLATE><CPU>1</CPU>{graphics}</TEMPLATE><MONITORING/>"
        "<USER_TEMPLATE/><HISTORY_RECORDS/></VM>"
    )


_GRAPHICS = "<GRAPHICS><TYPE><![CDATA[{}]]></TYPE></GRAPHICS>"


def test_a_vm_element_written_into_a_vector_value_is_no_vm():
    """A user writes, into a vector value of its own VM (oned writes those as CDATA), the text of another
    user's VM as econe last read it: its listing still holds its own VM only, read as oned wrote it."""
    gateway = Gateway("http://127.0.0.1:9/RPC2", "serveradmin", "x", Metrics())
    victim = _vm(7, _GRAPHICS.format("VNC"))
    assert [vm.id for vm in gateway.vm_records(f"<VM_POOL>{victim}</VM_POOL>")] == [7]
    # the value closes the attacker's VM and starts the victim's, up to where the attacker's own text goes on
    value = "</TYPE></GRAPHICS></TEMPLATE></VM>" + victim[: victim.index("VNC")] + "VNC"
    text = f"<VM_POOL>{_vm(9, _GRAPHICS.format(value))}</VM_POOL>"
    for _ in range(2):
        vms = gateway.vm_records(text)
        assert [(vm.id, vm.uid) for vm in vms] == [(9, 5)]


@pytest.mark.parametrize(
    "value",
    ["<VM><ID>", "a<![CDATA[b", "</TYPE></GRAPHICS></TEMPLATE></VM>" + _vm(8), "]]&gt;<VM><ID>8</ID>"],
    ids=["vm-head", "cdata-opener-inside-cdata", "a-whole-vm", "escaped-end"],
)
def test_text_in_cdata_that_looks_like_a_vm_is_no_vm(value):
    gateway = Gateway("http://127.0.0.1:9/RPC2", "serveradmin", "x", Metrics())
    text = f"<VM_POOL>{_vm(9, _GRAPHICS.format(value))}{_vm(6)}</VM_POOL>"
    records = split_vm_pool(text)
    assert records is None or [r[: r.index("<")] for r in records] == ["9", "6"]
    assert [vm.id for vm in gateway.vm_records(text)] == [vm.id for vm in parse_vm_pool(text)] == [9, 6]
    assert [vm.id for vm in gateway.vm_records(text)] == [9, 6]  # and again, from what it kept


@pytest.mark.parametrize("text", ["", "<VM_POOL/>", "<VM_POOL><VM><ID>1</ID></VM_POOL>", "<VM_POOL>x<VM><ID>"])
def test_what_is_not_plainly_a_pool_is_left_to_the_parser(text):
    assert split_vm_pool(text) is None or split_vm_pool(text) == []


def test_an_unchanged_vm_is_the_same_object_and_a_changed_one_is_read_again():
    gateway = Gateway("http://127.0.0.1:9/RPC2", "serveradmin", "x", Metrics())
    first = gateway.vm_records("<VM_POOL>" + _vm(2) + _vm(1) + "</VM_POOL>")
    again = gateway.vm_records("<VM_POOL>" + _vm(2).replace("<STATE>3", "<STATE>8") + _vm(1) + "</VM_POOL>")
    assert again[1] is first[1]
    assert again[0] is not first[0] and again[0].state == 8
    with_attrs = Gateway.with_attrs(first[1], {"EC2_TAGS": "{}"}, "aarch64")
    assert Gateway.with_attrs(first[1], {"EC2_TAGS": "{}"}, "aarch64") is with_attrs
    assert with_attrs.user_template["EC2_TAGS"] == "{}" and "EC2_TAGS" not in first[1].user_template
    assert Gateway.with_attrs(first[1], {"EC2_TAGS": '{"a":"b"}'}, "aarch64") is not with_attrs


def test_the_extended_answer_gives_each_vms_ec2_attributes_and_arch():
    text = _answer(FIXTURES / "set1" / "one.vmpool.infoextended.xml")
    attrs = parse_ec2_attrs(text)
    full = {vm.id: vm for vm in parse_vm_pool(text)}
    assert attrs.keys() == full.keys() and attrs
    for vmid, (ec2, arch) in attrs.items():
        assert ec2 == {k: v for k, v in full[vmid].user_template.items() if k.startswith("EC2_")}
        assert arch == full[vmid].arch


def test_the_vms_kept_are_bounded_by_the_size_of_their_elements(monkeypatch):
    from econe import gateway as gw

    one = len(_vm(10)) - len("<VM><ID>")  # the length of a piece of 2-digit id
    monkeypatch.setattr(gw, "VM_RECORDS_BYTES", 5 * one)
    gateway = Gateway("http://127.0.0.1:9/RPC2", "serveradmin", "x", Metrics())
    text = "<VM_POOL>" + "".join(_vm(i) for i in range(10, 30)) + "</VM_POOL>"
    assert [vm.id for vm in gateway.vm_records(text)] == list(range(10, 30))
    assert 0 < gateway._records_size <= 5 * one and len(gateway._records) <= 5
    assert {vm.id for vm in gateway._records.values()} <= set(range(25, 30))  # the newest are the ones kept

    monkeypatch.setattr(gw, "VM_RECORD_MAX", one - 1)  # every element too large to keep: read each time
    gateway = Gateway("http://127.0.0.1:9/RPC2", "serveradmin", "x", Metrics())
    assert [vm.id for vm in gateway.vm_records(text)] == list(range(10, 30)) and not gateway._records

"""DescribeInstances reuses what it read from a VM whose pool element has not changed since the last
listing (the gateway keeps the VM read from each element, and the instance's EC2 description with it).
Against econe on onelite (or a real oned, make conformance): what changes in OpenNebula shows at the
next listing, and what a user writes into its own VM cannot make any other VM appear in its listing."""

from __future__ import annotations

import hashlib
import xmlrpc.client

import pytest

from one import template as tpl

from .test_econe_e2e import stack, wait_for  # noqa: F401


def _listed(client) -> dict[str, dict]:
    return {i["InstanceId"]: i for r in client.describe_instances()["Reservations"] for i in r["Instances"]}


def _group_names(instance: dict) -> list[str]:
    return [g["GroupName"] for g in instance["SecurityGroups"]]


def test_what_changes_in_opennebula_shows_at_the_next_listing(stack):  # noqa: F811
    ec2 = stack.client()
    name, renamed = stack.cloud.name("listed"), stack.cloud.name("renamed")
    sg = ec2.create_security_group(GroupName=name, Description="listing")["GroupId"]
    iid = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1,
        SecurityGroupIds=[sg],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    try:
        wait_for(ec2, "instance_running", [iid])
        for _ in range(2):  # the second listing from what econe kept
            assert _listed(ec2)[iid]["State"]["Name"] == "running"
            assert _group_names(_listed(ec2)[iid]) == [name]
        stack.admin("one.secgroup.rename", int(sg[3:]), renamed)
        assert _group_names(_listed(ec2)[iid]) == [renamed]
        stack.admin("one.vm.action", "poweroff", int(iid[2:]))
        wait_for(ec2, "instance_stopped", [iid])
        assert _listed(ec2)[iid]["State"]["Name"] == "stopped"
    finally:
        ec2.terminate_instances(InstanceIds=[iid])
        wait_for(ec2, "instance_terminated", [iid])
        ec2.delete_security_group(GroupId=sg)


@pytest.mark.parametrize(
    "value",
    [
        "<VM><ID>",
        "</LISTEN></GRAPHICS></TEMPLATE></VM><VM><ID>{other}</ID><UID>0</UID><NAME>forged</NAME></VM>",
        "a<![CDATA[<VM><ID>{other}</ID>",
    ],
    ids=["vm-head", "a-whole-vm", "cdata-in-cdata"],
)
def test_a_vm_element_written_into_a_vector_value_is_no_instance(stack, value):  # noqa: F811
    """oned writes a vector's values as CDATA in its pool answers (GRAPHICS here): text there that looks
    like a VM element, of another user's VM, is no instance, in the first listing or the next ones."""
    alice, bob = stack.client(), stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())
    other = alice.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": "alice"}]}],
    )["Instances"][0]["InstanceId"]  # fmt: skip
    text = tpl.serialize(
        [("NAME", stack.cloud.name("graphics")), ("CPU", "0.1"), ("MEMORY", "64"),
         ("GRAPHICS", [("TYPE", "VNC"), ("LISTEN", value.format(other=int(other[2:])))])]
    )  # fmt: skip
    ok, vmid, *_ = xmlrpc.client.ServerProxy(stack.cloud.url).one.vm.allocate(f"{stack.bob_name}:bobpw", text, True)
    assert ok, vmid
    try:
        _listed(alice)  # econe keeps alice's VM as read
        for _ in range(3):
            listed = _listed(bob)
            assert f"i-{vmid:08d}" in listed and other not in listed
            assert all(
                i.get("Tags") is None or {"Key": "owner", "Value": "alice"} not in i["Tags"] for i in listed.values()
            )
    finally:
        stack.admin("one.vm.action", "terminate-hard", vmid)
        alice.terminate_instances(InstanceIds=[other])

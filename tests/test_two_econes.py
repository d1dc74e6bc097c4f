"""Two econe servers on one OpenNebula, as operators run them behind one proxy: what a user changes
through one (tags, the instance type, termination protection) is what the other shows and enforces.
Each server keeps a copy of the VMs' EC2 attributes (the short pool answer lacks them); its
``cache_ttl`` bounds how long the other's change takes to show there. Protection is read from oned
itself when it is enforced, so it holds at once."""

from __future__ import annotations

import time

import botocore.exceptions
import pytest

from .conftest import start_econe
from .test_econe_e2e import stack, wait_for  # noqa: F401

TTL = 1  # the second server's cache_ttl: short, so the test waits little


@pytest.fixture(scope="module")
def other(stack):  # noqa: F811
    econe = start_econe(stack.workdir / "other", stack.cloud.url, stack.cloud.server_auth, cache_ttl=TTL)
    yield econe
    econe.stop()


def _listed_tags(client, iid: str) -> dict:
    """The instance's tags as the whole listing shows them (from the server's copy of the attributes)."""
    (found,) = [
        i for r in client.describe_instances()["Reservations"] for i in r["Instances"] if i["InstanceId"] == iid
    ]
    return {t["Key"]: t["Value"] for t in found.get("Tags", [])}


def test_a_change_through_one_server_shows_on_the_other(stack, other):  # noqa: F811
    one, two = stack.client(), stack.client(url=other.url)
    iid = one.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    assert _listed_tags(two, iid) == {}  # the other server now holds the VM's attributes
    one.create_tags(Resources=[iid], Tags=[{"Key": "env", "Value": "prod"}])
    deadline = time.monotonic() + TTL + 5
    while _listed_tags(two, iid) != {"env": "prod"}:
        assert time.monotonic() < deadline, _listed_tags(two, iid)
        time.sleep(0.2)

    one.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})
    with pytest.raises(botocore.exceptions.ClientError) as e:  # enforced by the other at once
        two.terminate_instances(InstanceIds=[iid])
    assert e.value.response["Error"]["Code"] == "OperationNotPermitted"
    one.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
    two.terminate_instances(InstanceIds=[iid])
    wait_for(one, "instance_terminated", [iid])


def test_a_server_that_keeps_no_copy_still_lists_everything(stack):  # noqa: F811
    """cache_ttl 0: every listing reads the attributes again, and shows them (not an expired copy)."""
    econe = start_econe(stack.workdir / "nocache", stack.cloud.url, stack.cloud.server_auth, cache_ttl=0)
    try:
        ec2 = stack.client(url=econe.url)
        tags = [{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}]
        made = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype,
                                 MinCount=1, MaxCount=1, TagSpecifications=tags)  # fmt: skip
        (instance,) = made["Instances"]
        assert instance["InstanceType"] == stack.demo.itype and made["ReservationId"] != "r-00000000"
        listed = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        (again,) = [i for i in listed if i["InstanceId"] == instance["InstanceId"]]
        assert (again["InstanceType"], again["Tags"]) == (stack.demo.itype, [{"Key": "k", "Value": "v"}])
        ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    finally:
        econe.stop()

"""oned's own failures are not the client's (issue #8 item 13): a cloud out of addresses is
``InsufficientInstanceCapacity``, a failure of oned or of the operator's set-up ``InternalError``, each
in EC2's words with oned's in the server log; RunInstances launches MinCount or nothing."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import botocore.config
import botocore.exceptions
import pytest

from econe import gateway
from one import template as tpl

from . import test_econe_e2e as e2e

stack = e2e.stack  # the end-to-end tests' fixture: onelite, the demo, econe-server


def _client(stack):
    """boto3 without its retries: it would retry a 500 (as it should), and each try launches again."""
    return stack.client(retries={"total_max_attempts": 1})


def _failure(call) -> tuple[int, str, str, str]:
    """(HTTP status, code, message, request id) of an EC2 error."""
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    r = e.value.response
    meta = r["ResponseMetadata"]
    return meta["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"], meta["RequestId"]


def _vnet_of(stack, template: int) -> int:
    body = ET.fromstring(stack.admin("one.template.info", template, False))
    return int(body.findtext("TEMPLATE/NIC/NETWORK_ID"))


def _used_leases(stack, vnet: int) -> int:
    return int(ET.fromstring(stack.admin("one.vn.info", vnet, False)).findtext("USED_LEASES"))


def test_a_vnet_out_of_addresses_is_insufficient_capacity_and_leaves_nothing(stack):
    vnet = _vnet_of(stack, e2e._instance_type(stack, "t1.single", "10.8.0.1", 1))  # one address for two VMs
    ec2 = _client(stack)
    run = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": stack.cloud.name("t1.single")}
    before = e2e._all_vm_ids(stack)

    status, code, message, request_id = _failure(
        lambda: ec2.run_instances(**run, MinCount=2, MaxCount=2, ClientToken="capacity-1")
    )
    assert (status, code) == (500, "InsufficientInstanceCapacity")
    assert "[one." not in message and "virtual network" not in message  # EC2's words, not oned's
    log = stack.econe.log.read_text()
    assert re.search(rf"\[{request_id}\] .*InsufficientInstanceCapacity.*Cannot get IP/MAC lease", log)

    # all or nothing: the VM made before the vnet ran out is removed, and gives its address back
    tried = sorted(e2e._all_vm_ids(stack) - before)
    assert len(tried) == 1
    e2e.wait_for(ec2, "instance_terminated", [f"i-{tried[0]:08d}"])
    assert _used_leases(stack, vnet) == 0

    # the failed request left no ClientToken behind: the same token launches now, and nothing old
    made = ec2.run_instances(**run, MinCount=1, MaxCount=1, ClientToken="capacity-1")["Instances"]
    assert [i["State"]["Name"] for i in made] == ["pending"]
    assert int(made[0]["InstanceId"][2:]) not in tried
    ec2.terminate_instances(InstanceIds=[made[0]["InstanceId"]])


def test_an_instance_type_oned_cannot_build_is_an_internal_error(stack):
    """The operator's template names a vnet that does not exist: the service is broken, not the request."""
    template = stack.admin(
        "one.template.allocate",
        tpl.serialize(
            [
                ("NAME", stack.cloud.name("t1.broken")),
                ("CPU", "0.1"),
                ("MEMORY", "32"),
                ("EC2_INSTANCE_TYPE", stack.cloud.name("t1.broken")),
                ("NIC", [("NETWORK_ID", "99999")]),
            ]
        ),
    )
    stack.admin("one.template.chown", template, -1, stack.demo.gid)
    stack.admin("one.template.chmod", template, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    before = e2e._all_vm_ids(stack)
    status, code, message, request_id = _failure(
        lambda: _client(stack).run_instances(
            ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.cloud.name("t1.broken"), MinCount=1, MaxCount=1
        )
    )
    assert (status, code) == (500, "InternalError")
    assert "99999" not in message and "[one." not in message
    assert re.search(
        rf"\[{request_id}\] .*InternalError.*Virtual network with ID: 99999 does not exist", stack.econe.log.read_text()
    )
    assert e2e._all_vm_ids(stack) == before


# what oned 6.10.5 answers, from its source (src/rm/Request.cc failure_message, the messages of
# src/vnm/VirtualNetworkPool.cc, src/um/UserPool.cc, src/rm/RequestManagerVirtualMachine.cc), and
# the EC2 error each is to the client
ONED_ANSWERS = [
    (0x2000, "[one.vm.allocate] Cannot get IP/MAC lease from virtual network 0.", "InsufficientInstanceCapacity", 500),
    (
        0x4000,
        "[one.template.instantiate] Error allocating a new virtual machine template. "
        "Cannot get IP/MAC lease from virtual network 3.",
        "InsufficientInstanceCapacity",
        500,
    ),
    (0x2000, "[one.vm.action] Cannot process request, oned cluster in election mode", "Unavailable", 503),
    (0x2000, "[one.vmpool.info] Cannot process request, no leader found", "Unavailable", 503),
    (0x0100, "[one.vm.info] User couldn't be authenticated, aborting call.", "AuthFailure", 401),
    (0x0200, "[one.vm.action] User [4] : Not authorized to perform MANAGE VM [7].", "UnauthorizedOperation", 403),
    (0x0800, "[one.vm.action] This action is not available for state PENDING", "IncorrectInstanceState", 400),
    (0x8000, "[one.vm.action] The resource virtual machine is locked. [7].", "OperationNotPermitted", 400),
    (0x0800, "[one.image.allocate] Not enough space in datastore", "InsufficientCapacity", 500),
    (0x1000, "[one.vmpool.info] Incorrect filter_flag, state", "InternalError", 500),
    (
        0x4000,
        "[one.template.instantiate] Error allocating a new virtual machine template. Virtual network with ID: 9 does "
        "not exist",
        "InternalError",
        500,
    ),
    (
        0x4000,
        "[one.template.instantiate] Error allocating a new virtual machine template. Invalid NAME, char '&' is not "
        "allowed",
        "InvalidParameterValue",
        400,
    ),
    (
        0x4000,
        "[one.image.allocate] Error allocating a new image. NAME is already taken by IMAGE 7.",
        "InternalError",
        500,
    ),
]


@pytest.mark.parametrize(("code", "message", "ec2_code", "status"), ONED_ANSWERS)
def test_one_table_from_oned_errors_to_ec2_errors(code, message, ec2_code, status):
    error = gateway.ec2_error(code, message)
    assert (error.code, error.status) == (ec2_code, status)
    assert message not in error.message and message in error.detail  # oned's words go to the log only

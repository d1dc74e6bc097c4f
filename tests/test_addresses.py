"""Issue #14's elastic IPs: AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress and
DescribeAddresses on an econe whose ``elasticips_vnet_id`` names a network the stack's admin made (named
with the stack's prefix, its group given USE), driven by amazon.aws's ec2_eip / ec2_eip_info and by boto3.
An address is the user's own reservation of one address of that network, an association the
instance's NIC on it (see app/econe/actions/addresses.py); each runs on a real oned too (``--conformance``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
import xml.etree.ElementTree as ET

import botocore.exceptions
import pytest

from demo import _One, wait_ready

from .aws_play import play
from .conftest import start_econe
from .test_econe_e2e import stack, wait_for  # noqa: F401

SIZE = 6  # addresses of the elastic-IP network
FIRST = "198.51.100.10"


@pytest.fixture(scope="module")
def eip(stack):  # noqa: F811
    """(econe with elastic IPs, the elastic-IP network's id)."""
    admin = stack.admin
    text = (
        f'NAME="{stack.cloud.name("elastic-ips")}"\nBRIDGE="br-eip"\nVN_MAD="dummy"\n'
        f'AR=[TYPE="IP4",IP="{FIRST}",SIZE="{SIZE}"]\n'
    )
    vnet = admin("one.vn.allocate", text, stack.cloud.cluster)
    admin("one.vn.chown", vnet, -1, stack.demo.gid)
    admin("one.vn.chmod", vnet, 1, 1, 0, 1, 0, 0, 0, 0, 0)  # the group may USE it (reserve from it)
    wait_ready(admin, vnet, "vnet")
    econe = start_econe(
        stack.workdir, stack.cloud.url, stack.cloud.server_auth, datastore_id=stack.cloud.datastore,
        elasticips_vnet_id=vnet,
    )  # fmt: skip
    yield econe, vnet
    econe.stop()
    admin("one.vn.delete", vnet)  # every test released what it reserved: oned refuses while any is held


def _alice(stack, eip):  # noqa: F811
    return stack.client(url=eip[0].url)


def _bob(stack, eip):  # noqa: F811
    return stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest(), url=eip[0].url)


def _code(call, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, e.value.response
    return e.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def instances(stack, eip):  # noqa: F811
    """Two running instances of the demo user."""
    ec2 = _alice(stack, eip)
    run = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=2,
                            MaxCount=2)  # fmt: skip
    made = [i["InstanceId"] for i in run["Instances"]]
    wait_for(ec2, "instance_running", made)
    yield made
    ec2.terminate_instances(InstanceIds=made)


def _public_ip(ec2, instance: str) -> str | None:
    return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0].get("PublicIpAddress")


def _account_limit(ec2) -> str:
    (found,) = ec2.describe_account_attributes(AttributeNames=["vpc-max-elastic-ips"])["AccountAttributes"]
    return found["AttributeValues"][0]["AttributeValue"]


def test_without_an_elastic_network_no_address_is_offered(stack, eip):  # noqa: F811
    ec2 = stack.client()
    assert _code(ec2.allocate_address, Domain="vpc") == "UnsupportedOperation"
    assert ec2.describe_addresses()["Addresses"] == []
    assert _account_limit(ec2) == "0" and _account_limit(_alice(stack, eip)) == str(SIZE)


def test_ec2_eip_allocates_associates_and_releases(stack, eip, instances, tmp_path):  # noqa: F811
    ours = dataclasses.replace(stack, econe=eip[0])
    made, again, info = play(
        ours,
        tmp_path,
        {"amazon.aws.ec2_eip": {"device_id": instances[0], "in_vpc": True, "tags": {"role": "web"}}},
        {"amazon.aws.ec2_eip": {"device_id": instances[0], "in_vpc": True, "tags": {"role": "web"}}},
        {"amazon.aws.ec2_eip_info": {}},
    )
    assert made["changed"] and made["public_ip"].startswith("198.51.100.")
    assert not again["changed"] and again["public_ip"] == made["public_ip"]
    (listed,) = info["addresses"]
    assert listed["public_ip"] == made["public_ip"] and listed["instance_id"] == instances[0]
    assert listed["allocation_id"] == made["allocation_id"] and listed["association_id"].startswith("eipassoc-")
    assert listed["tags"] == {"role": "web"}
    ec2 = _alice(stack, eip)
    assert _public_ip(ec2, instances[0]) == made["public_ip"]
    (described,) = ec2.describe_instances(InstanceIds=[instances[0]])["Reservations"][0]["Instances"]
    carrying = [n for n in described["NetworkInterfaces"] if "Association" in n]
    assert [n["Association"]["PublicIp"] for n in carrying] == [made["public_ip"]]
    gone, after = play(
        ours,
        tmp_path,
        {
            "amazon.aws.ec2_eip": {
                "device_id": instances[0],
                "in_vpc": True,
                "state": "absent",
                "release_on_disassociation": True,
            }
        },  # fmt: skip
        {"amazon.aws.ec2_eip_info": {}},
    )
    assert gone["changed"] and gone["disassociated"] and gone["released"]
    assert after["addresses"] == []
    assert _public_ip(ec2, instances[0]) is None


def test_in_use_reassociation_and_instance_states(stack, eip, instances):  # noqa: F811
    ec2 = _alice(stack, eip)
    address = ec2.allocate_address(Domain="standard")  # the same as vpc here
    allocation, ip = address["AllocationId"], address["PublicIp"]
    assert address["Domain"] == "vpc"
    first = ec2.associate_address(AllocationId=allocation, InstanceId=instances[0])["AssociationId"]
    assert ec2.associate_address(PublicIp=ip, InstanceId=instances[0])["AssociationId"] == first  # already there
    assert _code(ec2.release_address, AllocationId=allocation) == "InvalidIPAddress.InUse"
    assert _code(ec2.associate_address, AllocationId=allocation, InstanceId=instances[1]) == (
        "Resource.AlreadyAssociated"
    )
    moved = ec2.associate_address(AllocationId=allocation, InstanceId=instances[1], AllowReassociation=True)
    (found,) = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert (found["InstanceId"], found["AssociationId"], found["PrivateIpAddress"]) == (
        instances[1], moved["AssociationId"], ip
    )  # fmt: skip
    assert _public_ip(ec2, instances[0]) is None and _public_ip(ec2, instances[1]) == ip
    assert ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": ["eip-*"]}])["Subnets"] == []  # no subnet
    for name, value in [("instance-id", instances[1]), ("association-id", moved["AssociationId"]), ("public-ip", ip),
                        ("domain", "vpc"), ("network-interface-id", found["NetworkInterfaceId"])]:  # fmt: skip
        assert ec2.describe_addresses(Filters=[{"Name": name, "Values": [value]}])["Addresses"] == [found], name
    assert ec2.describe_addresses(Filters=[{"Name": "instance-id", "Values": [instances[0]]}])["Addresses"] == []
    ec2.disassociate_address(AssociationId=moved["AssociationId"])
    assert "AssociationId" not in ec2.describe_addresses(PublicIps=[ip])["Addresses"][0]
    assert _code(ec2.disassociate_address, AssociationId=moved["AssociationId"]) == "InvalidAssociationID.NotFound"
    ec2.release_address(AllocationId=allocation)
    assert _code(ec2.describe_addresses, AllocationIds=[allocation]) == "InvalidAllocationID.NotFound"
    assert _code(ec2.describe_addresses, PublicIps=[ip]) == "InvalidAddress.NotFound"


def test_two_associations_racing_for_one_address(stack, eip, instances):  # noqa: F811
    """Two requests at once for one address: one associates it, the other is told it is already
    associated (400), not that the cloud failed. Which check stops the second one (econe's read of the
    address, or oned leasing it to one NIC only) the test does not tell: it shows only the answers."""
    ec2 = _alice(stack, eip)
    allocation = ec2.allocate_address()["AllocationId"]
    outcomes: list[str] = []

    def associate(instance: str):
        try:
            _alice(stack, eip).associate_address(AllocationId=allocation, InstanceId=instance)
            outcomes.append("associated")
        except botocore.exceptions.ClientError as e:
            outcomes.append(f"{e.response['ResponseMetadata']['HTTPStatusCode']} {e.response['Error']['Code']}")

    try:
        for _ in range(3):
            threads = [threading.Thread(target=associate, args=(i,)) for i in instances]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            (found,) = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
            ec2.disassociate_address(AssociationId=found["AssociationId"])
        assert sorted(outcomes) == ["400 Resource.AlreadyAssociated"] * 3 + ["associated"] * 3, outcomes
    finally:
        ec2.release_address(AllocationId=allocation)


def test_an_instance_oned_cannot_plug_into_is_refused(stack, eip):  # noqa: F811
    """A stopped instance (POWEROFF: oned plugs the NIC at once) takes an address; one shutting down
    or terminated does not."""
    ec2 = _alice(stack, eip)
    run = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1,
                            MaxCount=1)  # fmt: skip
    instance = run["Instances"][0]["InstanceId"]
    address = ec2.allocate_address()
    allocation, ip = address["AllocationId"], address["PublicIp"]
    try:
        wait_for(ec2, "instance_running", [instance])
        ec2.stop_instances(InstanceIds=[instance])
        wait_for(ec2, "instance_stopped", [instance])
        association = ec2.associate_address(AllocationId=allocation, InstanceId=instance)["AssociationId"]
        assert _public_ip(ec2, instance) == ip
        ec2.disassociate_address(AssociationId=association)
        assert _public_ip(ec2, instance) is None
        ec2.terminate_instances(InstanceIds=[instance])
        assert _code(ec2.associate_address, AllocationId=allocation, InstanceId=instance) in (
            "IncorrectInstanceState", "InvalidInstanceID.NotFound"
        )  # fmt: skip
        assert "AssociationId" not in ec2.describe_addresses(AllocationIds=[allocation])["Addresses"][0]
    finally:
        ec2.release_address(AllocationId=allocation)


def test_someone_elses_address_is_not_found(stack, eip, instances):  # noqa: F811
    alice, bob = _alice(stack, eip), _bob(stack, eip)
    mine = alice.allocate_address()
    allocation, ip = mine["AllocationId"], mine["PublicIp"]
    try:
        assert bob.describe_addresses()["Addresses"] == []
        assert _code(bob.associate_address, AllocationId=allocation, InstanceId=instances[0]) == (
            "InvalidAllocationID.NotFound"
        )
        assert _code(bob.associate_address, PublicIp=ip, InstanceId=instances[0]) == "InvalidAddress.NotFound"
        assert _code(bob.release_address, AllocationId=allocation) == "InvalidAllocationID.NotFound"
        assert _code(bob.describe_addresses, AllocationIds=[allocation]) == "InvalidAllocationID.NotFound"
        association = alice.associate_address(AllocationId=allocation, InstanceId=instances[0])["AssociationId"]
        assert _code(bob.disassociate_address, AssociationId=association) == "InvalidAssociationID.NotFound"
        assert alice.describe_addresses(AllocationIds=[allocation])["Addresses"][0]["AssociationId"] == association
        alice.disassociate_address(PublicIp=ip)
    finally:
        alice.release_address(AllocationId=allocation)


def test_tags_of_an_address(stack, eip):  # noqa: F811
    """Kept in the reservation network's template (EC2_TAGS): given at allocation, changed with the
    tags API, listed by DescribeTags and DescribeAddresses; another user's address cannot be tagged."""
    ec2 = _alice(stack, eip)
    spec = [{"ResourceType": "elastic-ip", "Tags": [{"Key": "env", "Value": "test"}]}]
    allocation = ec2.allocate_address(TagSpecifications=spec)["AllocationId"]
    try:
        (found,) = ec2.describe_addresses(Filters=[{"Name": "tag:env", "Values": ["test"]}])["Addresses"]
        assert found["AllocationId"] == allocation and found["Tags"] == [{"Key": "env", "Value": "test"}]
        ec2.create_tags(Resources=[allocation], Tags=[{"Key": "owner", "Value": "alice"}])
        listed = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["elastic-ip"]}])["Tags"]
        assert [(t["ResourceId"], t["Key"], t["Value"]) for t in listed] == [
            (allocation, "env", "test"), (allocation, "owner", "alice")
        ]  # fmt: skip
        ec2.delete_tags(Resources=[allocation], Tags=[{"Key": "env"}])
        assert ec2.describe_addresses(Filters=[{"Name": "tag-key", "Values": ["env"]}])["Addresses"] == []
        assert _code(_bob(stack, eip).create_tags, Resources=[allocation], Tags=[{"Key": "k", "Value": "v"}]) == (
            "InvalidAllocationID.NotFound"
        )
        assert _code(ec2.allocate_address, TagSpecifications=[{"ResourceType": "instance", "Tags": []}]) == (
            "InvalidParameterValue"
        )
    finally:
        ec2.release_address(AllocationId=allocation)


def test_malformed_ids(stack, eip, instances):  # noqa: F811
    ec2 = _alice(stack, eip)
    assert _code(ec2.associate_address, AllocationId="eipalloc-x", InstanceId=instances[0]) == (
        "InvalidAllocationID.Malformed"
    )
    assert _code(ec2.disassociate_address, AssociationId="eipassoc-1") == "InvalidAssociationID.Malformed"
    assert _code(ec2.describe_addresses, AllocationIds=["i-00000001"]) == "InvalidAllocationID.Malformed"
    assert _code(ec2.release_address, AllocationId="eipalloc-99999999") == "InvalidAllocationID.NotFound"
    assert _code(ec2.allocate_address, Domain="classic") == "InvalidParameterValue"
    assert _code(ec2.associate_address, AllocationId="eipalloc-99999999") == "MissingParameter"


def test_dry_run_changes_nothing(stack, eip, instances):  # noqa: F811
    ec2 = _alice(stack, eip)
    assert _code(ec2.allocate_address, DryRun=True) == "DryRunOperation"
    assert ec2.describe_addresses()["Addresses"] == []
    allocation = ec2.allocate_address()["AllocationId"]
    try:
        assert _code(ec2.associate_address, AllocationId=allocation, InstanceId=instances[0], DryRun=True) == (
            "DryRunOperation"
        )
        assert "AssociationId" not in ec2.describe_addresses()["Addresses"][0]
        association = ec2.associate_address(AllocationId=allocation, InstanceId=instances[0])["AssociationId"]
        assert _code(ec2.disassociate_address, AssociationId=association, DryRun=True) == "DryRunOperation"
        assert ec2.describe_addresses()["Addresses"][0]["AssociationId"] == association
        ec2.disassociate_address(AssociationId=association)
        assert _code(ec2.release_address, AllocationId=allocation, DryRun=True) == "DryRunOperation"
        assert [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]] == [allocation]
    finally:
        ec2.release_address(AllocationId=allocation)
    assert ec2.describe_addresses()["Addresses"] == []


def test_two_users_racing_never_share_an_address(stack, eip):  # noqa: F811
    """Both users ask for more addresses than the network has, at once: each address goes to one of them,
    every address is given, and the rest are AddressLimitExceeded."""
    clients = {"alice": _alice(stack, eip), "bob": _bob(stack, eip)}
    got: dict[str, list[tuple[str, str]]] = {"alice": [], "bob": []}
    refused: list[str] = []

    def grab(who: str):
        for _ in range(SIZE):
            try:
                a = clients[who].allocate_address(Domain="vpc")
                got[who].append((a["PublicIp"], a["AllocationId"]))
            except botocore.exceptions.ClientError as e:
                refused.append(e.response["Error"]["Code"])

    threads = [threading.Thread(target=grab, args=(who,)) for who in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        ips = [ip for who in got for ip, _ in got[who]]
        assert sorted(ips) == sorted(f"198.51.100.{10 + i}" for i in range(SIZE))  # each once, all given
        assert refused == ["AddressLimitExceeded"] * SIZE
        for who, client in clients.items():
            assert sorted(a["PublicIp"] for a in client.describe_addresses()["Addresses"]) == sorted(
                ip for ip, _ in got[who]
            )
    finally:
        for who, client in clients.items():
            for _, allocation in got[who]:
                client.release_address(AllocationId=allocation)


def test_an_address_released_as_soon_as_it_is_allocated(stack, eip):  # noqa: F811
    """oned refuses to delete a network its driver is still making (a reservation is LOCK_CREATE for
    a moment): ReleaseAddress right after AllocateAddress waits for it, as a client expects."""
    ec2 = _alice(stack, eip)
    for _ in range(3):
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        ec2.release_address(AllocationId=allocation)
        assert _code(ec2.describe_addresses, AllocationIds=[allocation]) == "InvalidAllocationID.NotFound"


def test_an_address_released_is_free_when_the_release_answers(stack, eip):  # noqa: F811
    """oned gives a released address back to the network once its driver has deleted the reservation:
    with every address taken, an AllocateAddress right after a ReleaseAddress gets the one released."""
    ec2 = _alice(stack, eip)
    held = []
    try:
        while True:
            try:
                held.append(ec2.allocate_address(Domain="vpc")["AllocationId"])
            except botocore.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "AddressLimitExceeded", e.response
                break
        assert held, "no address was free"
        for _ in range(3):
            ec2.release_address(AllocationId=held.pop())
            held.append(ec2.allocate_address(Domain="vpc")["AllocationId"])
    finally:
        for allocation in held:
            ec2.release_address(AllocationId=allocation)


def _as(stack, user: str, password: str) -> _One:  # noqa: F811
    return _One(stack.cloud.url, f"{user}:{password}")


def _settle(one: _One, vmid: int) -> None:
    """Until oned's driver is done plugging or unplugging a NIC (LCM_STATE HOTPLUG_NIC is 25)."""
    wait_until(lambda: ET.fromstring(one("one.vm.info", vmid, False)).findtext("LCM_STATE") != "25")


def _drop(ec2, allocation: str) -> None:
    """Disassociate (if need be) and release an address, whatever a failed test left."""
    (found,) = ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    if "AssociationId" in found:
        ec2.disassociate_address(AssociationId=found["AssociationId"])
    ec2.release_address(AllocationId=allocation)


def wait_until(ready, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_dry_run_of_an_association_already_there(stack, eip, instances):  # noqa: F811
    ec2 = _alice(stack, eip)
    allocation = ec2.allocate_address()["AllocationId"]
    try:
        ec2.associate_address(AllocationId=allocation, InstanceId=instances[0])
        assert _code(ec2.associate_address, AllocationId=allocation, InstanceId=instances[0], DryRun=True) == (
            "DryRunOperation"
        )
        ec2.disassociate_address(PublicIp=ec2.describe_addresses()["Addresses"][0]["PublicIp"])
    finally:
        _drop(ec2, allocation)


def test_an_instance_the_user_does_not_own_is_not_found(stack, eip):  # noqa: F811
    """bob lets his group MANAGE his VM: alice could plug her address into it, but her addresses list
    only her own instances, so the address would look free and be stuck; EC2 names no such instance."""
    ec2, bob = _alice(stack, eip), _bob(stack, eip)
    run = bob.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1,
                            MaxCount=1)  # fmt: skip
    his = run["Instances"][0]["InstanceId"]
    stack.admin("one.vm.chmod", int(his[2:]), 1, 1, 0, 1, 1, 0, 0, 0, 0)  # the group may USE and MANAGE it
    allocation = ec2.allocate_address()["AllocationId"]
    try:
        wait_for(bob, "instance_running", [his])
        assert _code(ec2.associate_address, AllocationId=allocation, InstanceId=his) == "InvalidInstanceID.NotFound"
        assert "AssociationId" not in ec2.describe_addresses()["Addresses"][0]
    finally:
        _drop(ec2, allocation)
        bob.terminate_instances(InstanceIds=[his])


def test_public_address_is_a_lease_of_the_elastic_network_whatever_its_name(stack, eip, instances):  # noqa: F811
    """A reservation the user made of the ordinary network, named like an address, is a subnet of its own
    and gives no public address; one of the elastic-IP network named otherwise is an address."""
    ec2 = _alice(stack, eip)
    alice = _as(stack, stack.demo.user, stack.demo.password)
    vmid = int(instances[0][2:])
    ordinary = alice("one.vn.reserve", stack.demo.vnet, f'SIZE="1"\nNAME="eip-{"ab" * 16}"\n')
    elastic = alice("one.vn.reserve", eip[1], 'SIZE="1"\nNAME="mine"\n')
    try:
        wait_ready(stack.admin, ordinary, "vnet")
        subnets = ec2.describe_subnets(SubnetIds=[f"subnet-{ordinary:08d}"])["Subnets"]
        assert [s["SubnetId"] for s in subnets] == [f"subnet-{ordinary:08d}"]  # the user's own, usable
        alice("one.vm.attachnic", vmid, f'NIC=[NETWORK_ID="{ordinary}"]')
        _settle(alice, vmid)
        assert _public_ip(ec2, instances[0]) is None
        (address,) = ec2.describe_addresses()["Addresses"]
        alice("one.vm.attachnic", vmid, f'NIC=[NETWORK_ID="{elastic}"]')
        _settle(alice, vmid)
        assert _public_ip(ec2, instances[0]) == address["PublicIp"]
        (described,) = ec2.describe_instances(InstanceIds=[instances[0]])["Reservations"][0]["Instances"]
        carrying = [n["Association"]["PublicIp"] for n in described["NetworkInterfaces"] if "Association" in n]
        assert carrying == [address["PublicIp"]]
    finally:
        vm = ET.fromstring(alice("one.vm.info", vmid, False))
        for nic in vm.iterfind("TEMPLATE/NIC"):
            if nic.findtext("NETWORK_ID") in (str(ordinary), str(elastic)):
                alice("one.vm.detachnic", vmid, int(nic.findtext("NIC_ID")))
                _settle(alice, vmid)
        for vnet in (ordinary, elastic):
            wait_until(lambda v=vnet: ET.fromstring(alice("one.vn.info", v, False)).findtext("STATE") == "1")
            alice("one.vn.delete", vnet)


def test_releasing_an_address_someone_else_leases_is_in_use(stack, eip):  # noqa: F811
    """alice lets her group USE her address and bob plugs it into his VM: alice's instances do not show
    it, so ReleaseAddress goes to oned, which refuses while the address is leased (as a Release racing
    an Associate would meet)."""
    ec2, bob = _alice(stack, eip), _bob(stack, eip)
    address = ec2.allocate_address()
    rid = int(address["AllocationId"].split("-")[1])
    stack.admin("one.vn.chmod", rid, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    run = bob.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1,
                            MaxCount=1)  # fmt: skip
    his = run["Instances"][0]["InstanceId"]
    bob_one = _as(stack, stack.bob_name, "bobpw")
    try:
        wait_for(bob, "instance_running", [his])
        bob_one("one.vm.attachnic", int(his[2:]), f'NIC=[NETWORK_ID="{rid}"]')
        _settle(bob_one, int(his[2:]))
        assert _code(ec2.release_address, AllocationId=address["AllocationId"]) == "InvalidIPAddress.InUse"
    finally:
        bob.terminate_instances(InstanceIds=[his])
        wait_for(bob, "instance_terminated", [his])
        ec2.release_address(AllocationId=address["AllocationId"])


def test_reassociation_to_an_instance_that_cannot_take_it_leaves_it_where_it_is(stack, eip, instances):  # noqa: F811
    """An instance on hold (not RUNNING nor POWEROFF) cannot take a NIC: the address stays on the first."""
    ec2 = _alice(stack, eip)
    alice = _as(stack, stack.demo.user, stack.demo.password)
    text = f'NAME="held"\nCPU="0.1"\nMEMORY="32"\nNIC=[NETWORK_ID="{stack.demo.vnet}"]\n'
    held = alice("one.vm.allocate", text, True)
    allocation = ec2.allocate_address()["AllocationId"]
    try:
        first = ec2.associate_address(AllocationId=allocation, InstanceId=instances[0])["AssociationId"]
        assert _code(ec2.associate_address, AllocationId=allocation, InstanceId=f"i-{held:08d}",
                     AllowReassociation=True) == "IncorrectInstanceState"  # fmt: skip
        assert ec2.describe_addresses()["Addresses"][0].get("AssociationId") == first
        ec2.disassociate_address(AssociationId=first)
    finally:
        _drop(ec2, allocation)
        alice("one.vm.action", "terminate-hard", held)


def test_a_missing_elastic_network_is_unsupported(stack):  # noqa: F811
    econe = start_econe(stack.workdir, stack.cloud.url, stack.cloud.server_auth, datastore_id=stack.cloud.datastore,
                        elasticips_vnet_id=99999)  # fmt: skip
    try:
        assert _code(stack.client(url=econe.url).allocate_address) == "UnsupportedOperation"
    finally:
        econe.stop()

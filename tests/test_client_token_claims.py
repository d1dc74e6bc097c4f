"""A ClientToken claimed in OpenNebula (issue #15): two econe servers on one oned, as the role runs
them behind one proxy, make one instance (one volume) for one token, however the requests race.

The claim is a VM template of the user named from the token (`econe.actions.claims`): these tests
count what oned holds, as the admin sees it, not what either server answers."""

from __future__ import annotations

import json
import threading
import time
import uuid
import xml.etree.ElementTree as ET

import botocore.exceptions
import pytest

from demo import _One
from econe.actions import claims
from one import template as tpl

from . import test_econe_e2e as e2e
from .conftest import start_econe

stack = e2e.stack  # the end-to-end tests' fixture: a cloud, the demo user, an econe-server
RACERS = 12


@pytest.fixture(scope="module")
def other(stack):
    """A second econe-server on the same oned."""
    econe = start_econe(stack.workdir / "other", stack.cloud.url, stack.cloud.server_auth)
    yield econe
    econe.stop()


def _clients(stack, other):
    """boto3 on each server, without retries: every answer counts as given."""
    return [stack.client(url=url, retries={"total_max_attempts": 1}) for url in (stack.econe.url, other.url)]


def _token() -> str:
    return f"claim-test-{uuid.uuid4().hex}"


def _run(stack) -> dict:
    return {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": stack.demo.itype, "MinCount": 1, "MaxCount": 1}


def _race(call, clients) -> list:
    """*call*(client) from RACERS threads at once, through the servers alternately: each answer or error."""
    start = threading.Barrier(RACERS)
    out: list = [None] * RACERS

    def one(i: int) -> None:
        start.wait()
        try:
            out[i] = call(clients[i % len(clients)])
        except botocore.exceptions.ClientError as e:
            out[i] = e.response["Error"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def _vms_with_token(stack, token: str) -> list[int]:
    """The VMs oned holds (DONE ones too) whose user template carries *token*."""
    pool = ET.fromstring(stack.admin("one.vmpool.infoextended", stack.demo.uid, -1, -1, -2))
    return [int(vm.findtext("ID")) for vm in pool.iter("VM") if vm.findtext("USER_TEMPLATE/EC2_CLIENT_TOKEN") == token]


def _images_with_token(stack, token: str) -> list[int]:
    pool = ET.fromstring(stack.admin("one.imagepool.info", stack.demo.uid, -1, -1))
    return [int(i.findtext("ID")) for i in pool.iter("IMAGE") if i.findtext("TEMPLATE/EC2_CLIENT_TOKEN") == token]


def _claims_left(stack) -> list[str]:
    """The names of the demo user's templates that are claims (`onetemplate list` of the user)."""
    pool = ET.fromstring(stack.admin("one.templatepool.info", stack.demo.uid, -1, -1))
    return [t.findtext("NAME") for t in pool.iter("VMTEMPLATE") if t.findtext("NAME").startswith(claims.PREFIX)]


def _as_user(stack) -> _One:
    return _One(stack.cloud.url, f"{stack.demo.user}:{stack.demo.password}")


def _plant_claim(stack, kind: str, token: str, until: float) -> int:
    """A claim as a request would leave it, held until *until* (a process that died: a past time)."""
    body = tpl.serialize([("NAME", claims.name(kind, token)), (claims.UNTIL, str(int(until)))])
    return _as_user(stack)("one.template.allocate", body)


def _delete_volume(ec2, vol: str) -> None:
    """Delete the volume once oned has made it (a real oned's datastore driver takes a moment)."""
    deadline = time.monotonic() + 60
    while ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    ec2.delete_volume(VolumeId=vol)


def test_one_token_raced_through_two_servers_makes_one_instance(stack, other):
    token = _token()
    answers = _race(lambda ec2: ec2.run_instances(**_run(stack), ClientToken=token), _clients(stack, other))
    made = _vms_with_token(stack, token)
    assert len(made) == 1, (made, answers)
    instance = f"i-{made[0]:08d}"
    named = [[i["InstanceId"] for i in a["Instances"]] if "Instances" in a else a["Code"] for a in answers]
    # a request past the server's wait slots (waits.SLOTS) is told to try again; every other names the one
    assert [instance] in named and all(n in ([instance], "RequestLimitExceeded") for n in named), answers
    assert len({a["ReservationId"] for a in answers if "ReservationId" in a}) == 1
    assert _claims_left(stack) == []  # a claim lives while its request makes the instances
    stack.client().terminate_instances(InstanceIds=[f"i-{made[0]:08d}"])


def test_clients_that_retry_as_the_sdks_do_all_get_the_one_instance(stack, other):
    """boto3's own retries (standard mode) take RequestLimitExceeded as EC2's throttling: every racing
    request ends with the same instance."""
    token = _token()
    clients = [
        stack.client(url=url, retries={"mode": "standard", "max_attempts": 5}) for url in (stack.econe.url, other.url)
    ]
    answers = _race(lambda ec2: ec2.run_instances(**_run(stack), ClientToken=token), clients)
    made = _vms_with_token(stack, token)
    assert len(made) == 1 and len(answers) == 12, (made, answers)
    assert all([i["InstanceId"] for i in a.get("Instances", [])] == [f"i-{made[0]:08d}"] for a in answers), answers
    stack.client().terminate_instances(InstanceIds=[f"i-{made[0]:08d}"])


def test_one_token_raced_through_two_servers_makes_one_volume(stack, other):
    token = _token()
    answers = _race(
        lambda ec2: ec2.create_volume(AvailabilityZone="opennebula", Size=1, ClientToken=token), _clients(stack, other)
    )
    made = _images_with_token(stack, token)
    assert len(made) == 1, (made, answers)
    named = [a.get("VolumeId", a.get("Code")) for a in answers]
    assert f"vol-{made[0]:08d}" in named and set(named) <= {f"vol-{made[0]:08d}", "RequestLimitExceeded"}, answers
    assert _claims_left(stack) == []
    _delete_volume(stack.client(), f"vol-{made[0]:08d}")


def test_the_same_token_with_other_parameters_is_a_mismatch(stack, other):
    one, two = _clients(stack, other)
    token = _token()
    first = one.run_instances(**_run(stack), ClientToken=token)["Instances"][0]["InstanceId"]
    # the same request again, through the other server: the same instance
    assert two.run_instances(**_run(stack), ClientToken=token)["Instances"][0]["InstanceId"] == first
    for changed in ({"MaxCount": 2}, {"TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "k"}]}]}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            two.run_instances(**{**_run(stack), **changed}, ClientToken=token)
        assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatch", changed
    assert _vms_with_token(stack, token) == [int(first[2:])]
    one.terminate_instances(InstanceIds=[first])

    token = _token()
    vol = one.create_volume(AvailabilityZone="opennebula", Size=1, ClientToken=token)["VolumeId"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        two.create_volume(AvailabilityZone="opennebula", Size=2, ClientToken=token)
    assert e.value.response["Error"]["Code"] == "IdempotentParameterMismatch"
    assert two.create_volume(AvailabilityZone="opennebula", Size=1, ClientToken=token)["VolumeId"] == vol
    _delete_volume(one, vol)


def test_a_failed_run_leaves_no_claim_and_a_retry_launches(stack, other):
    itype = stack.cloud.name("t1.claim")
    e2e._instance_type(stack, "t1.claim", "10.7.0.1", 1)  # one address: a second VM cannot be made
    one, two = _clients(stack, other)
    token = _token()
    run = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": itype}
    before = e2e._all_vm_ids(stack)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        one.run_instances(**run, MinCount=2, MaxCount=2, ClientToken=token)
    assert e.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    assert _claims_left(stack) == [] and _vms_with_token(stack, token) == []
    (tried,) = e2e._all_vm_ids(stack) - before  # the VM made before the vnet ran out, removed
    e2e.wait_for(one, "instance_terminated", [f"i-{tried:08d}"])  # its lease back
    made = two.run_instances(**run, MinCount=1, MaxCount=1, ClientToken=token)["Instances"]
    assert [i["InstanceId"] for i in made] == [f"i-{vm:08d}" for vm in _vms_with_token(stack, token)]
    two.terminate_instances(InstanceIds=[made[0]["InstanceId"]])


def test_a_request_waits_while_another_holds_the_claim(stack, other):
    one, _ = _clients(stack, other)
    token = _token()
    held = _plant_claim(stack, "run", token, time.time() + 600)
    answer: dict = {}
    waiting = threading.Thread(target=lambda: answer.update(one.run_instances(**_run(stack), ClientToken=token)))
    waiting.start()
    time.sleep(1)
    assert waiting.is_alive() and _vms_with_token(stack, token) == []  # the claim is another request's
    _as_user(stack)("one.template.delete", held, False)  # that request failed, and released it
    waiting.join(15)
    made = [f"i-{vm:08d}" for vm in _vms_with_token(stack, token)]
    assert [i["InstanceId"] for i in answer["Instances"]] == made and len(made) == 1
    one.terminate_instances(InstanceIds=made)


def test_a_stale_claim_is_taken_over(stack, other):
    """A claim whose process died (its time is past) blocks its token no longer: the next request takes it over."""
    one, two = _clients(stack, other)
    token = _token()
    stale = _plant_claim(stack, "run", token, time.time() - 1)
    (made,) = two.run_instances(**_run(stack), ClientToken=token)["Instances"]
    assert [made["InstanceId"]] == [f"i-{vm:08d}" for vm in _vms_with_token(stack, token)]
    assert _claims_left(stack) == []
    with pytest.raises(RuntimeError):  # the stale claim itself was removed
        stack.admin("one.template.info", stale, False)
    one.terminate_instances(InstanceIds=[made["InstanceId"]])

    token = _token()
    _plant_claim(stack, "vol", token, time.time() - 1)
    vol = one.create_volume(AvailabilityZone="opennebula", Size=1, ClientToken=token)["VolumeId"]
    assert [vol] == [f"vol-{i:08d}" for i in _images_with_token(stack, token)]
    assert _claims_left(stack) == []
    _delete_volume(one, vol)


def test_claims_show_in_no_listing_and_a_dry_run_claims_nothing(stack):
    ec2 = stack.client(retries={"total_max_attempts": 1})
    token = _token()
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.run_instances(**_run(stack), ClientToken=token, DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperation"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.create_volume(AvailabilityZone="opennebula", Size=1, ClientToken=token, DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperation"
    assert _claims_left(stack) == []

    claim = _plant_claim(stack, "run", token, time.time() + 600)  # a request making its instances now
    try:
        name = claims.name("run", token)
        listings = [
            ec2.describe_images(Owners=["self"]),
            ec2.describe_images(ExecutableUsers=["self"]),
            ec2.describe_images(),
            ec2.describe_instance_types(),
            ec2.describe_instances(),
            ec2.describe_security_groups(),
            ec2.describe_subnets(),
            ec2.describe_volumes(),
            ec2.describe_snapshots(OwnerIds=["self"]),
            ec2.describe_tags(),
        ]
        for listing in listings:
            text = json.dumps(listing, default=str)
            assert name not in text and claims.UNTIL not in text
    finally:
        _as_user(stack)("one.template.delete", claim, False)


def test_a_request_with_any_token_removes_the_claims_left_past_their_time(stack, other):
    """A process that died leaves its claim; boto3 makes a new token per call, so that token may never
    come again: any claiming request of the user removes every claim whose time is past."""
    one, _ = _clients(stack, other)
    left = [_plant_claim(stack, kind, _token(), time.time() - 1) for kind in ("run", "vol")]
    standing = _plant_claim(stack, "run", _token(), time.time() + 600)  # a request at work: it stays
    try:
        made = one.run_instances(**_run(stack), ClientToken=_token())["Instances"][0]["InstanceId"]
        for claim in left:
            with pytest.raises(RuntimeError):
                stack.admin("one.template.info", claim, False)
        stack.admin("one.template.info", standing, False)
        one.terminate_instances(InstanceIds=[made])
    finally:
        _as_user(stack)("one.template.delete", standing, False)


def test_requests_waiting_for_one_token_hold_no_more_workers_than_the_wait_slots(stack, other):
    """The requests of one token that wait on one server, for its lock there or for the claim in oned,
    count against the server's wait slots (waits.SLOTS, 4): past them a request answers
    RequestLimitExceeded (503, which the SDKs retry) at once instead of holding one more worker."""
    ec2 = stack.client(retries={"total_max_attempts": 1})
    token = _token()
    held = _plant_claim(stack, "run", token, time.time() + 600)  # another request makes it meanwhile
    answers: list = []
    started = time.monotonic()

    def call():
        try:
            answers.append(ec2.run_instances(**_run(stack), ClientToken=token)["Instances"][0]["InstanceId"])
        except botocore.exceptions.ClientError as e:
            answers.append((e.response["Error"]["Code"], time.monotonic() - started))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(2)
    refused = [a for a in answers if isinstance(a, tuple)]
    _as_user(stack)("one.template.delete", held, False)  # that request ends; the waiting ones find what it made
    for t in threads:
        t.join(15)
    assert len(refused) >= 4 and all(code == "RequestLimitExceeded" and s < 2 for code, s in refused), answers
    made = [f"i-{vm:08d}" for vm in _vms_with_token(stack, token)]
    assert len(made) == 1 and set(answers) - set(refused) == set(made), answers
    ec2.terminate_instances(InstanceIds=made)

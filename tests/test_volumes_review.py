"""Issue #14, a stranger's review of the volumes and snapshots: what another user, a second client at
the same moment, or an old ClientToken could get out of them. boto3 against econe on onelite (or a
real oned with --conformance), read back with the admin's pyone."""

from __future__ import annotations

import functools
import threading
import time

import botocore.exceptions
import pytest

from .test_econe_e2e import stack, wait_for  # noqa: F401
from .test_volumes import BOB_SECRET, FAST, _code, _image, _instance, _volume


@pytest.fixture(scope="module")
def instances(stack):  # noqa: F811
    made = [_instance(stack), _instance(stack)]
    yield made
    stack.client().terminate_instances(InstanceIds=made)


def test_a_volume_shared_by_its_owner_group_stays_its_owners(stack):  # noqa: F811
    """oned lets bob USE an image his group may use; an EC2 volume is never shared, so bob neither
    sees it nor attaches, snapshots, deletes it or gets it back for a ClientToken."""
    ec2 = stack.client()
    bob = stack.client(stack.bob_name, BOB_SECRET)
    vol = _volume(ec2, ClientToken="shared-token")
    ec2.create_tags(Resources=[vol], Tags=[{"Key": "owner", "Value": "demo"}])
    stack.pyone_admin().image.chmod(int(vol[4:]), -1, -1, -1, 1, -1, -1, -1, -1, -1)  # GROUP_U
    assert bob.describe_tags(Filters=[{"Name": "key", "Values": ["owner"]}])["Tags"] == []
    assert vol not in [v["VolumeId"] for v in bob.describe_volumes()["Volumes"]]
    assert _code(bob.describe_volumes, VolumeIds=[vol]) == "InvalidVolume.NotFound"
    assert _code(bob.create_snapshot, VolumeId=vol) == "InvalidVolume.NotFound"
    assert _code(bob.delete_volume, VolumeId=vol) == "InvalidVolume.NotFound"
    assert _code(bob.attach_volume, VolumeId=vol, InstanceId="i-00000000", Device="/dev/sdf") == (
        "InvalidVolume.NotFound"
    )
    assert _code(bob.create_tags, Resources=[vol], Tags=[{"Key": "a", "Value": "b"}]) == "InvalidVolume.NotFound"
    own = bob.create_volume(AvailabilityZone="opennebula", Size=1, ClientToken="shared-token")["VolumeId"]
    assert own != vol and _image(stack, own).UNAME == stack.bob_name
    ec2.delete_volume(VolumeId=vol)
    bob.get_waiter("volume_available").wait(VolumeIds=[own], WaiterConfig=FAST)
    bob.delete_volume(VolumeId=own)


def test_a_client_token_names_one_request(stack):  # noqa: F811
    """The same ClientToken with other parameters is IdempotentParameterMismatch, as on EC2; and a copy
    (a snapshot, a volume from it) does not inherit its volume's token or origin."""
    ec2 = stack.client()
    first = _volume(ec2, 1, ClientToken="tok-a", VolumeType="gp2")
    assert ec2.create_volume(AvailabilityZone="opennebula", Size=1, VolumeType="gp2", ClientToken="tok-a")[
        "VolumeId"
    ] == first  # fmt: skip
    for other in ({"Size": 2, "VolumeType": "gp2"}, {"Size": 1, "VolumeType": "io1"}):
        assert _code(ec2.create_volume, AvailabilityZone="opennebula", ClientToken="tok-a", **other) == (
            "IdempotentParameterMismatch"
        )
    sid = ec2.create_snapshot(VolumeId=first)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
    assert not _image(stack, sid).TEMPLATE.get("EC2_CLIENT_TOKEN")  # pyone reads "" as None
    assert _code(ec2.create_volume, AvailabilityZone="opennebula", SnapshotId=sid, ClientToken="tok-a") == (
        "IdempotentParameterMismatch"
    )
    copy = ec2.create_volume(AvailabilityZone="opennebula", SnapshotId=sid)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[copy], WaiterConfig=FAST)
    assert _image(stack, copy).TEMPLATE.get("EC2_CLIENT_TOKEN") != "tok-a"  # boto3's own token of that call
    again = ec2.create_snapshot(VolumeId=copy)["SnapshotId"]  # a snapshot of a restored volume
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[again], WaiterConfig=FAST)
    assert not _image(stack, again).TEMPLATE.get("EC2_SNAPSHOT_ID")  # pyone reads "" as None
    ec2.delete_volume(VolumeId=first)
    # the token is free again once its volume is gone: a new volume, not the copy
    fresh = ec2.create_volume(AvailabilityZone="opennebula", Size=1, VolumeType="gp2", ClientToken="tok-a")
    assert fresh["VolumeId"] not in (first, copy) and fresh.get("SnapshotId", "") == ""
    ec2.get_waiter("volume_available").wait(VolumeIds=[fresh["VolumeId"]], WaiterConfig=FAST)
    for s in (sid, again):
        ec2.delete_snapshot(SnapshotId=s)
    for v in (copy, fresh["VolumeId"]):
        ec2.delete_volume(VolumeId=v)


def _answer(call, **kw):
    """The call's answer, or its ClientError's code (which must be a 4xx)."""
    try:
        return call(**kw)
    except botocore.exceptions.ClientError as e:
        assert 400 <= e.response["ResponseMetadata"]["HTTPStatusCode"] < 500, e.response
        return e.response["Error"]["Code"]


def _at_once(calls) -> list:
    """Each call's answer (or its ClientError's code), the calls made together."""
    start = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i, call):
        start.wait()
        out[i] = _answer(call)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_one_volume_attached_to_two_instances_at_once(stack, instances):  # noqa: F811
    """The loser of two simultaneous AttachVolume of one volume is told VolumeInUse, whichever of econe's
    check and oned's refusal it meets."""
    ec2 = stack.client()
    vol = _volume(ec2)
    for round_ in range(4):
        answers = _at_once(
            [lambda i=i: ec2.attach_volume(VolumeId=vol, InstanceId=i, Device="/dev/sdk") for i in instances]
        )
        codes = sorted(a if isinstance(a, str) else "ok" for a in answers)
        assert codes == ["VolumeInUse", "ok"], (round_, answers)
        ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
        ec2.detach_volume(VolumeId=vol)
        ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    ec2.delete_volume(VolumeId=vol)


@pytest.mark.onelite_only("oned's dummy datastore driver copies an image within milliseconds: a client is not faster")
def test_a_volume_being_snapshotted(stack, instances):  # noqa: F811
    """While oned copies a detached volume for a snapshot (image state CLONE) the volume stays
    ``available``; DeleteVolume and AttachVolume then answer IncorrectState, never an instance's
    state. oned's copy is brief: the test makes it a few times and needs the window once."""
    ec2 = stack.client()
    seen: list[str] = []
    for _ in range(6):
        vol = _volume(ec2)
        sid = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
        answers = [_answer(ec2.attach_volume, VolumeId=vol, InstanceId=instances[0], Device="/dev/sdj")]
        answers.append(_answer(ec2.delete_volume, VolumeId=vol))
        seen += [a for a in answers if isinstance(a, str)]
        assert set(seen) <= {"IncorrectState", "VolumeInUse"}, answers
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
        ec2.delete_snapshot(SnapshotId=sid)
        if not isinstance(answers[0], str):  # attached: let it go, then delete it
            ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
            ec2.detach_volume(VolumeId=vol)
            ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
        if ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [vol]}])["Volumes"]:
            ec2.delete_volume(VolumeId=vol)
        if "IncorrectState" in seen:
            break
    assert "IncorrectState" in seen, seen


def test_describe_tags_lists_no_deregistered_image(stack):  # noqa: F811
    """DescribeTags lists as images what DescribeImages does: not an image deregistered (EC2_AMI="NO")."""
    ec2 = stack.client()
    admin = stack.pyone_admin()
    oid = admin.image.allocate(f'NAME="{stack.cloud.name("plain")}" TYPE="DATABLOCK" SIZE="1"', stack.cloud.datastore)
    admin.image.chown(oid, stack.demo.uid, -1)
    ami = ec2.register_image(ImageLocation=f"ami-{oid:08d}", Name="plain")["ImageId"]
    ec2.create_tags(Resources=[ami], Tags=[{"Key": "gone", "Value": "soon"}])
    listed = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["gone"]}])["Tags"]
    assert [(t["ResourceId"], t["ResourceType"]) for t in listed] == [(ami, "image")]
    ec2.deregister_image(ImageId=ami)
    assert ec2.describe_images(ImageIds=[ami])["Images"] == []
    assert ec2.describe_tags(Filters=[{"Name": "key", "Values": ["gone"]}])["Tags"] == []
    admin.image.delete(oid)


def test_requests_queued_on_one_instance_answer_busy(stack):  # noqa: F811
    """16 AttachVolume at once on one instance: each waits for the one before (the VM's lock, then
    oned's hot-plug, about 0.2 s each here), so the later ones would hold a worker for seconds. Those
    that cannot have the lock within 2 s answer IncorrectInstanceState "busy, try again" instead."""
    ec2 = stack.client()
    iid = _instance(stack)
    vols = [_volume(ec2) for _ in range(16)]

    def attach(vol: str, device: str):
        start = time.monotonic()
        answer = _answer(ec2.attach_volume, VolumeId=vol, InstanceId=iid, Device=device)
        return ("ok" if isinstance(answer, dict) else answer), time.monotonic() - start

    answers = _at_once([functools.partial(attach, v, f"/dev/sd{c}") for v, c in zip(vols, "fghijklmnopqrstu")])
    codes = [code for code, _ in answers]
    assert set(codes) == {"ok", "IncorrectInstanceState"}, answers
    assert max(took for code, took in answers if code != "ok") < 4, answers  # 2 s for the lock, and the reads
    ec2.terminate_instances(InstanceIds=[iid])  # oned lets the volumes go at DONE
    wait_for(ec2, "instance_terminated", [iid])
    ec2.get_waiter("volume_available").wait(VolumeIds=vols, WaiterConfig=FAST)
    for vol in vols:
        ec2.delete_volume(VolumeId=vol)

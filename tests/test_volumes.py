"""Issue #14, volumes and snapshots: boto3 against econe, which keeps them as OpenNebula images (a
volume a persistent DATABLOCK marked EBS_VOLUME, a snapshot a copy marked EBS_SNAPSHOT), read back
with the admin's pyone to see that they are what the contract says."""

from __future__ import annotations

import hashlib

import botocore.exceptions
import pytest

from .conftest import start_econe
from .test_econe_e2e import stack, wait_for  # noqa: F401

BOB_SECRET = hashlib.sha256(b"bobpw").hexdigest()  # the stack's second user: oned keeps its password's SHA-256
FAST = {"Delay": 0.2, "MaxAttempts": 300}  # a minute: a real oned's datastore driver takes its time


def _code(call, *args, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(*args, **kw)
    status = e.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert 400 <= status < 500, e.value.response
    return e.value.response["Error"]["Code"]


def _image(stack, text: str):  # noqa: F811
    return stack.pyone_admin().image.info(int(text.split("-")[1]))


def _instance(stack) -> str:  # noqa: F811
    ec2 = stack.client()
    run = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1
    )
    iid = run["Instances"][0]["InstanceId"]
    wait_for(ec2, "instance_running", [iid])
    return iid


@pytest.fixture(scope="module")
def instance(stack):  # noqa: F811
    iid = _instance(stack)
    yield iid
    stack.client().terminate_instances(InstanceIds=[iid])


def _volume(ec2, size: int = 1, **kw) -> str:
    vol = ec2.create_volume(AvailabilityZone="opennebula", Size=size, **kw)["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    return vol


def test_volume_lifecycle_with_waiters(stack, instance):  # noqa: F811
    ec2 = stack.client()
    made = ec2.create_volume(
        AvailabilityZone="opennebula",
        Size=2,
        VolumeType="gp2",
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "data"}]}],
    )
    vol = made["VolumeId"]
    assert vol.startswith("vol-") and len(vol) == 12
    assert made["Size"] == 2 and made["State"] in ("creating", "available") and made["VolumeType"] == "gp2"
    assert made["AvailabilityZone"] == "opennebula" and made["Encrypted"] is False
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    image = _image(stack, vol)  # a persistent DATABLOCK of 2048 MiB marked as a volume
    assert image.TYPE == 2 and image.PERSISTENT == 1 and image.SIZE == 2048
    assert image.UNAME == stack.demo.user and image.NAME.startswith("ec2-vol-")
    assert image.TEMPLATE["EBS_VOLUME"] == "YES" and image.TEMPLATE["EC2_VOLUME_TYPE"] == "gp2"

    attached = ec2.attach_volume(VolumeId=vol, InstanceId=instance, Device="/dev/sdf")
    assert attached["State"] == "attaching" and attached["Device"] == "/dev/sdf"
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
    (described,) = ec2.describe_volumes(VolumeIds=[vol])["Volumes"]
    assert described["State"] == "in-use" and described["Tags"] == [{"Key": "Name", "Value": "data"}]
    (att,) = described["Attachments"]
    assert (att["InstanceId"], att["Device"], att["DeleteOnTermination"]) == (instance, "/dev/sdf", False)
    assert att["State"] in ("attaching", "attached") and att["VolumeId"] == vol
    assert _image(stack, vol).VMS.ID == [int(instance[2:])]  # oned's own record of the attachment
    found = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    mapping = {m["DeviceName"]: m["Ebs"] for m in found["BlockDeviceMappings"]}
    assert mapping["/dev/sdf"]["VolumeId"] == vol and mapping["/dev/sdf"]["DeleteOnTermination"] is False

    assert _code(ec2.delete_volume, VolumeId=vol) == "VolumeInUse"
    detached = ec2.detach_volume(VolumeId=vol, InstanceId=instance)
    assert (detached["State"], detached["Device"], detached["InstanceId"]) == ("detaching", "/dev/sdf", instance)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Attachments"] == []
    found = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    assert found.get("BlockDeviceMappings", []) == []
    ec2.delete_volume(VolumeId=vol)
    ec2.get_waiter("volume_deleted").wait(VolumeIds=[vol], WaiterConfig=FAST)
    assert _code(ec2.describe_volumes, VolumeIds=[vol]) == "InvalidVolume.NotFound"


def test_refusals(stack, instance):  # noqa: F811
    ec2 = stack.client()
    vol = _volume(ec2)
    assert _code(ec2.attach_volume, VolumeId=vol, InstanceId="i-09999999", Device="/dev/sdg") == (
        "InvalidInstanceID.NotFound"
    )
    assert _code(ec2.attach_volume, VolumeId="vol-x1", InstanceId=instance, Device="/dev/sdg") == (
        "InvalidVolumeID.Malformed"
    )
    assert _code(ec2.describe_volumes, VolumeIds=["vol-09999999"]) == "InvalidVolume.NotFound"
    assert _code(ec2.attach_volume, VolumeId=vol, InstanceId=instance, Device="sdg") == "InvalidParameterValue"
    assert _code(ec2.create_volume, AvailabilityZone="elsewhere", Size=1) == "InvalidParameterValue"
    assert _code(ec2.create_volume, AvailabilityZone="opennebula") == "MissingParameter"
    assert _code(ec2.create_volume, AvailabilityZone="opennebula", Size=0) == "InvalidParameterValue"
    assert _code(ec2.create_volume, AvailabilityZone="opennebula", Size=1, VolumeType="fast") == (
        "InvalidParameterValue"
    )
    assert _code(ec2.create_volume, AvailabilityZone="opennebula", Size=1, Encrypted=True) == ("UnsupportedOperation")
    # someone else's volume is as absent as a missing one
    bob = stack.client(stack.bob_name, BOB_SECRET)
    assert _code(bob.describe_volumes, VolumeIds=[vol]) == "InvalidVolume.NotFound"
    assert _code(bob.delete_volume, VolumeId=vol) == "InvalidVolume.NotFound"
    assert vol not in [v["VolumeId"] for v in bob.describe_volumes()["Volumes"]]
    # DryRun decides and changes nothing
    before = sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"])
    assert _code(ec2.create_volume, AvailabilityZone="opennebula", Size=1, DryRun=True) == "DryRunOperation"
    assert _code(ec2.attach_volume, VolumeId=vol, InstanceId=instance, Device="/dev/sdg", DryRun=True) == (
        "DryRunOperation"
    )
    assert _code(ec2.delete_volume, VolumeId=vol, DryRun=True) == "DryRunOperation"
    assert _code(ec2.create_snapshot, VolumeId=vol, DryRun=True) == "DryRunOperation"
    assert sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]) == before
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "available"
    assert _code(ec2.detach_volume, VolumeId=vol) == "IncorrectState"  # not attached

    ec2.attach_volume(VolumeId=vol, InstanceId=instance, Device="/dev/sdg")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
    other = _volume(ec2)
    assert _code(ec2.attach_volume, VolumeId=other, InstanceId=instance, Device="/dev/sdg") == (
        "InvalidParameterValue"  # the device is taken on the instance
    )
    assert _code(ec2.attach_volume, VolumeId=vol, InstanceId=instance, Device="/dev/sdh") == "VolumeInUse"
    assert _code(ec2.delete_volume, VolumeId=vol) == "VolumeInUse"
    assert _code(ec2.detach_volume, VolumeId=vol, InstanceId="i-09999999") == "InvalidAttachment.NotFound"
    assert _code(ec2.detach_volume, VolumeId=vol, Device="/dev/sdz") == "InvalidAttachment.NotFound"
    assert _code(ec2.detach_volume, VolumeId=vol, DryRun=True) == "DryRunOperation"
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"] == "in-use"
    ec2.detach_volume(VolumeId=vol, Force=True)
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)
    for v in (vol, other):
        ec2.delete_volume(VolumeId=v)


def test_filters_and_paging(stack, instance):  # noqa: F811
    ec2 = stack.client()
    tagged = [_volume(ec2, 1, TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "set", "Value": "p"}]}])
              for _ in range(3)]  # fmt: skip
    big = _volume(ec2, 3, VolumeType="io1")
    ec2.attach_volume(VolumeId=tagged[0], InstanceId=instance, Device="/dev/xvdk")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[tagged[0]], WaiterConfig=FAST)

    def listed(*filters):
        got = ec2.describe_volumes(Filters=[{"Name": n, "Values": v} for n, v in filters])["Volumes"]
        return sorted(v["VolumeId"] for v in got)

    assert listed(("tag:set", ["p"])) == sorted(tagged)
    assert listed(("tag-key", ["set"]), ("status", ["in-use"])) == [tagged[0]]
    assert listed(("attachment.instance-id", [instance]), ("attachment.device", ["/dev/xvd?"])) == [tagged[0]]
    assert listed(("attachment.status", ["attach*"]), ("tag:set", ["p"])) == [tagged[0]]
    assert listed(("size", ["3"]), ("volume-type", ["io1"])) == [big]
    assert listed(("volume-id", [big, tagged[1]]), ("availability-zone", ["opennebula"])) == sorted([big, tagged[1]])
    assert listed(("status", ["available"]), ("tag:set", ["p"])) == sorted(tagged[1:])
    assert _code(ec2.describe_volumes, Filters=[{"Name": "colour", "Values": ["x"]}]) == "InvalidParameterValue"

    pages, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = ec2.describe_volumes(MaxResults=5, Filters=[{"Name": "tag:set", "Values": ["p"]}], **kw)
        pages.append([v["VolumeId"] for v in page["Volumes"]])
        token = page.get("NextToken")
        if not token:
            break
    every = [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]]
    pages, token = [], None
    while True:
        kw = {"NextToken": token} if token else {}
        page = ec2.describe_volumes(MaxResults=5, **kw)
        assert len(page["Volumes"]) <= 5
        pages += [v["VolumeId"] for v in page["Volumes"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == every and len(every) >= 4
    assert _code(ec2.describe_volumes, MaxResults=2) == "InvalidParameterValue"
    assert _code(ec2.describe_volumes, NextToken="garbage!") == "InvalidPaginationToken"

    ec2.detach_volume(VolumeId=tagged[0])
    ec2.get_waiter("volume_available").wait(VolumeIds=[tagged[0]], WaiterConfig=FAST)
    for v in [*tagged, big]:
        ec2.delete_volume(VolumeId=v)


def test_snapshots_and_a_volume_from_one(stack, instance):  # noqa: F811
    ec2 = stack.client()
    vol = _volume(ec2, 2)
    snap = ec2.create_snapshot(
        VolumeId=vol,
        Description="nightly",
        TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "when", "Value": "night"}]}],
    )
    sid = snap["SnapshotId"]
    assert sid.startswith("snap-") and snap["VolumeId"] == vol and snap["VolumeSize"] == 2
    assert snap["State"] in ("pending", "completed") and snap["Description"] == "nightly"
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
    image = _image(stack, sid)  # a copy of the volume, marked as a snapshot of it, not persistent
    assert image.PERSISTENT == 0 and image.NAME.startswith("ec2-snap-")
    assert image.TEMPLATE["EBS_SNAPSHOT"] == "YES" and image.TEMPLATE["EBS_VOLUME"] == "NO"
    assert image.TEMPLATE["EC2_VOLUME_ID"] == vol and image.TEMPLATE["DESCRIPTION"] == "nightly"
    (described,) = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"]
    owner = str(stack.demo.uid)
    assert (described["State"], described["Progress"], described["OwnerId"]) == ("completed", "100%", owner)
    assert described["Tags"] == [{"Key": "when", "Value": "night"}] and described["VolumeSize"] == 2
    mine = ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert sid in [s["SnapshotId"] for s in mine]
    assert ec2.describe_snapshots(OwnerIds=["amazon"])["Snapshots"] == []
    assert [s["SnapshotId"] for s in ec2.describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]].count(sid) == 1
    for name, value in (("volume-id", vol), ("snapshot-id", sid), ("status", "completed"), ("owner-id", owner),
                        ("tag:when", "night"), ("description", "night*")):  # fmt: skip
        got = ec2.describe_snapshots(Filters=[{"Name": name, "Values": [value]}])["Snapshots"]
        assert [s["SnapshotId"] for s in got] == [sid], name
    assert _volumes_of(ec2, sid) == []  # a snapshot is no volume
    assert _code(ec2.describe_volumes, VolumeIds=["vol" + sid[4:]]) == "InvalidVolume.NotFound"
    assert _code(ec2.describe_snapshots, SnapshotIds=["snap-09999999"]) == "InvalidSnapshot.NotFound"
    assert _code(ec2.describe_snapshots, SnapshotIds=["snap-zz"]) == "InvalidSnapshotID.Malformed"
    bob = stack.client(stack.bob_name, BOB_SECRET)
    assert _code(bob.describe_snapshots, SnapshotIds=[sid]) == "InvalidSnapshot.NotFound"

    # a volume from the snapshot: its size, or the snapshot's when none is given
    assert _code(ec2.create_volume, AvailabilityZone="opennebula", SnapshotId=sid, Size=1) == "InvalidParameterValue"
    restored = ec2.create_volume(AvailabilityZone="opennebula", SnapshotId=sid)
    rid = restored["VolumeId"]
    assert restored["SnapshotId"] == sid and restored["Size"] == 2
    ec2.get_waiter("volume_available").wait(VolumeIds=[rid], WaiterConfig=FAST)
    image = _image(stack, rid)
    assert image.PERSISTENT == 1 and image.TEMPLATE["EBS_VOLUME"] == "YES"
    assert image.TEMPLATE.get("EBS_SNAPSHOT", "NO") == "NO"
    (described,) = ec2.describe_volumes(VolumeIds=[rid])["Volumes"]
    assert described["SnapshotId"] == sid and described.get("Tags") is None  # the snapshot's tags stay its own

    # a snapshot of an attached volume: the disk the VM has, saved
    ec2.attach_volume(VolumeId=rid, InstanceId=instance, Device="/dev/sdm")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[rid], WaiterConfig=FAST)
    hot = ec2.create_snapshot(VolumeId=rid)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[hot], WaiterConfig=FAST)
    image = _image(stack, hot)
    assert image.TEMPLATE["EBS_SNAPSHOT"] == "YES" and image.TEMPLATE["EC2_VOLUME_ID"] == rid
    assert image.TEMPLATE["SAVED_VM_ID"] == str(int(instance[2:]))

    # an image that is also a registered AMI cannot be deleted as a snapshot
    stack.pyone_admin().image.update(int(hot[5:]), 'EC2_AMI="YES"', 1)
    assert _code(ec2.delete_snapshot, SnapshotId=hot) == "InvalidSnapshot.InUse"
    stack.pyone_admin().image.update(int(hot[5:]), 'EC2_AMI="NO"', 1)
    assert _code(ec2.delete_snapshot, SnapshotId=hot, DryRun=True) == "DryRunOperation"
    for s in (hot, sid):
        ec2.delete_snapshot(SnapshotId=s)
    assert _code(ec2.delete_snapshot, SnapshotId="snap-09999999") == "InvalidSnapshot.NotFound"
    ec2.detach_volume(VolumeId=rid)
    ec2.get_waiter("volume_available").wait(VolumeIds=[rid], WaiterConfig=FAST)
    for v in (rid, vol):
        ec2.delete_volume(VolumeId=v)


def _volumes_of(ec2, sid: str) -> list[str]:
    return [v["VolumeId"] for v in ec2.describe_volumes()["Volumes"] if v["VolumeId"][4:] == sid[5:]]


def test_tags_of_volumes_and_snapshots(stack):  # noqa: F811
    ec2 = stack.client()
    vol = _volume(ec2)
    sid = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.create_tags(Resources=[vol, sid], Tags=[{"Key": "team", "Value": "blue"}])
    tags = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["team"]}])["Tags"]
    assert sorted((t["ResourceId"], t["ResourceType"]) for t in tags) == [(sid, "snapshot"), (vol, "volume")]
    only = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["snapshot"]}])["Tags"]
    assert [(t["ResourceId"], t["Key"]) for t in only] == [(sid, "team")]
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["Tags"] == [{"Key": "team", "Value": "blue"}]
    ec2.delete_tags(Resources=[vol], Tags=[{"Key": "team"}])
    assert ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0].get("Tags") is None
    assert _code(ec2.create_tags, Resources=["vol-09999999"], Tags=[{"Key": "a", "Value": "b"}]) == (
        "InvalidVolume.NotFound"
    )
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig=FAST)
    ec2.delete_snapshot(SnapshotId=sid)
    ec2.delete_volume(VolumeId=vol)


def test_a_stopped_instance_takes_a_volume_and_lets_it_go_when_terminated(stack):  # noqa: F811
    ec2 = stack.client()
    iid = _instance(stack)
    ec2.stop_instances(InstanceIds=[iid])
    wait_for(ec2, "instance_stopped", [iid])
    vol = _volume(ec2)
    ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/xvdf")
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[vol], WaiterConfig=FAST)
    found = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert [(m["DeviceName"], m["Ebs"]["VolumeId"]) for m in found["BlockDeviceMappings"]] == [("/dev/xvdf", vol)]
    ec2.terminate_instances(InstanceIds=[iid])
    wait_for(ec2, "instance_terminated", [iid])
    ec2.get_waiter("volume_available").wait(VolumeIds=[vol], WaiterConfig=FAST)  # oned lets it go at DONE
    found = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert found.get("BlockDeviceMappings", []) == []
    assert _code(ec2.attach_volume, VolumeId=vol, InstanceId=iid, Device="/dev/xvdf") == "IncorrectInstanceState"
    ec2.delete_volume(VolumeId=vol)


def test_ebs_fstype_is_the_filesystem_a_new_volume_gets(stack, tmp_path):  # noqa: F811
    """econe.conf's ebs_fstype (the original's key) becomes the FS of each new DATABLOCK: oned keeps it
    as the image's FS element (Image::insert), for the datastore driver to make that filesystem."""
    econe = start_econe(tmp_path, stack.cloud.url, stack.cloud.server_auth, ebs_fstype="ext4")
    try:
        ec2 = stack.client(url=econe.url)
        vol = _volume(ec2)
        image = stack.pyone_admin().image.info(int(vol[4:]))
        assert (image.FS, image.TYPE, image.PERSISTENT) == ("ext4", 2, 1)
        ec2.delete_volume(VolumeId=vol)
    finally:
        econe.stop()

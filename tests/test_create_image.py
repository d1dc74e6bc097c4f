"""Issue #14, images from instances: CreateImage saves an instance's first disk as a new image of its
user (an EBS-backed AMI: the image is also its own snapshot), DescribeImages shows it pending then
available, DeregisterImage leaves it as a snapshot (or removes it with DeleteAssociatedSnapshots), and
the launchPermission and description attributes are the image's permissions and DESCRIPTION. Driven
with boto3 and amazon.aws against econe on onelite (or a real oned with --conformance)."""

from __future__ import annotations

import hashlib
import math
import time
import xml.etree.ElementTree as ET
import xmlrpc.client

import botocore.exceptions
import pytest

from econe import gateway, objects
from econe.actions import images

from .aws_play import play
from .conftest import FIXTURES
from .test_econe_e2e import error_code, signed_v2, stack, wait_for  # noqa: F401

WAIT = {"Delay": 0.2, "MaxAttempts": 300}


@pytest.fixture(scope="module")
def ec2(stack):  # noqa: F811
    return stack.client()


@pytest.fixture(scope="module")
def bob(stack):  # noqa: F811
    return stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())


@pytest.fixture(scope="module")
def instance(stack, ec2):  # noqa: F811
    """A running instance of the demo user, from the demo AMI."""
    vm = _run(stack, ec2)
    wait_for(ec2, "instance_running", [vm])
    yield vm
    ec2.terminate_instances(InstanceIds=[vm])


def _run(stack, ec2) -> str:  # noqa: F811
    ami = f"ami-{stack.demo.image:08d}"
    run = ec2.run_instances(ImageId=ami, InstanceType=stack.demo.itype, MinCount=1, MaxCount=1)
    return run["Instances"][0]["InstanceId"]


def _code(call) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def _image(stack, oid: int) -> ET.Element:  # noqa: F811
    return ET.fromstring(stack.admin("one.image.info", oid, False))


def _create(stack, ec2, vm: str, base: str, **params) -> str:  # noqa: F811
    """A new AMI of *vm*, once available; the instance is running again by then."""
    ami = ec2.create_image(InstanceId=vm, Name=stack.cloud.name(base), **params)["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig=WAIT)
    wait_for(ec2, "instance_running", [vm])  # oned saved the disk hot: (3,26) then RUNNING again
    return ami


def _remove(stack, ami: str) -> None:  # noqa: F811
    stack.admin("one.image.delete", int(ami[4:]), False)


def test_create_image_saves_the_first_disk_as_an_ebs_backed_ami(stack, ec2, instance):  # noqa: F811
    tags = [{"Key": "role", "Value": "web"}]
    ami = _create(
        stack,
        ec2,
        instance,
        "img-a",
        Description="web server",
        NoReboot=True,
        TagSpecifications=[{"ResourceType": "image", "Tags": tags}, {"ResourceType": "snapshot", "Tags": tags}],
    )
    [shown] = ec2.describe_images(ImageIds=[ami])["Images"]
    assert shown["State"] == "available" and shown["Name"] == stack.cloud.name("img-a")
    assert shown["Description"] == "web server" and shown["Tags"] == tags
    assert (shown["ImageType"], shown["RootDeviceType"], shown["RootDeviceName"]) == ("machine", "ebs", "/dev/sda")
    assert shown["CreationDate"].endswith("Z") and shown["OwnerId"] == str(stack.demo.uid)
    [root] = shown["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/sda"
    size = int(_image(stack, int(ami[4:])).findtext("SIZE"))  # MiB, as the VM's disk was
    assert root["Ebs"]["SnapshotId"] == f"snap-{ami[4:]}" and root["Ebs"]["VolumeSize"] == max(
        1, math.ceil(size / 1024)
    )
    assert ami in [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    # the AMI's disk is a snapshot too, which cannot go while the AMI is registered (as on EC2)
    [snap] = ec2.describe_snapshots(SnapshotIds=[root["Ebs"]["SnapshotId"]])["Snapshots"]
    assert snap["State"] == "completed"
    assert _code(lambda: ec2.delete_snapshot(SnapshotId=snap["SnapshotId"])) == "InvalidSnapshot.InUse"
    # in OpenNebula: a new image of the user, saved from disk 0 of the VM, marked as the contract says
    held = _image(stack, int(ami[4:]))
    assert held.findtext("UNAME") == stack.demo.user and held.findtext("NAME") == stack.cloud.name("img-a")
    marks = held.find("TEMPLATE")
    assert (marks.findtext("EC2_AMI"), marks.findtext("EBS_SNAPSHOT"), marks.findtext("DESCRIPTION")) == (
        "YES",
        "YES",
        "web server",
    )
    assert (marks.findtext("SAVED_VM_ID"), marks.findtext("SAVED_DISK_ID")) == (str(int(instance[2:])), "0")
    # and it launches
    vm = ec2.run_instances(ImageId=ami, InstanceType=stack.demo.itype, MinCount=1, MaxCount=1)["Instances"][0]
    wait_for(ec2, "instance_running", [vm["InstanceId"]])
    assert vm["ImageId"] == ami
    launched = ET.fromstring(stack.admin("one.vm.info", int(vm["InstanceId"][2:]), False))
    assert launched.findtext("TEMPLATE/DISK/TARGET") == "sda"  # the root device DescribeImages names
    # while a VM uses it, oned keeps the image: deregistered, it stays a snapshot, and the answer says so
    answer = ec2.deregister_image(ImageId=ami, DeleteAssociatedSnapshots=True)
    assert answer["DeleteSnapshotResults"] == [{"SnapshotId": f"snap-{ami[4:]}", "ReturnCode": "client-error"}]
    assert _image(stack, int(ami[4:])).findtext("TEMPLATE/EC2_AMI") == "NO"
    ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])
    wait_for(ec2, "instance_terminated", [vm["InstanceId"]])
    _remove(stack, ami)


def test_image_attributes_are_its_permissions_and_description(stack, ec2, instance):  # noqa: F811
    ami = _create(stack, ec2, instance, "img-attr")
    oid = int(ami[4:])
    group = _image(stack, oid).findtext("GNAME")

    def perms() -> tuple[str, str]:
        held = _image(stack, oid)
        return held.findtext("PERMISSIONS/GROUP_U"), held.findtext("PERMISSIONS/OTHER_U")

    def shown() -> list[dict]:
        return ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")["LaunchPermissions"]

    assert shown() == [] and perms() == ("0", "0")
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
    assert shown() == [{"Group": "all"}] and perms() == ("0", "1")
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Public"] is True
    # the classic form: OperationType and UserGroups; the image's own OpenNebula group is its GROUP_U
    ec2.modify_image_attribute(ImageId=ami, Attribute="launchPermission", OperationType="add", UserGroups=[group])
    assert perms() == ("1", "1") and {p["Group"] for p in shown()} == {"all", group}
    ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Remove": [{"Group": "all"}, {"Group": group}]})
    assert shown() == [] and perms() == ("0", "0")
    # what OpenNebula cannot give: launch rights of one account, another group, organizations
    for refused in ({"UserId": "123456789012"}, {"Group": "nosuchgroup"}, {"OrganizationArn": "arn:aws:o::1:x"}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [refused]})
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert perms() == ("0", "0")
    ec2.modify_image_attribute(ImageId=ami, Description={"Value": "second"})
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="description")["Description"] == {"Value": "second"}
    assert _image(stack, oid).findtext("TEMPLATE/DESCRIPTION") == "second"
    assert ec2.describe_image_attribute(ImageId=ami, Attribute="productCodes")["ProductCodes"] == []
    mapping = ec2.describe_image_attribute(ImageId=ami, Attribute="blockDeviceMapping")["BlockDeviceMappings"]
    assert mapping == ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"] and len(mapping) == 1
    _remove(stack, ami)


def test_deregister_leaves_the_snapshot_unless_asked(stack, ec2, instance):  # noqa: F811
    kept, gone = _create(stack, ec2, instance, "img-kept"), _create(stack, ec2, instance, "img-gone")
    assert ec2.deregister_image(ImageId=kept)["Return"] is True
    assert ec2.describe_images(ImageIds=[kept])["Images"] == []
    assert kept not in [i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]]
    marks = _image(stack, int(kept[4:])).find("TEMPLATE")
    assert (marks.findtext("EC2_AMI"), marks.findtext("EBS_SNAPSHOT")) == ("NO", "YES")  # still a snapshot
    assert _code(lambda: ec2.deregister_image(ImageId=kept)) == "InvalidAMIID.NotFound"
    launch = {"ImageId": kept, "InstanceType": stack.demo.itype, "MinCount": 1, "MaxCount": 1}
    assert _code(lambda: ec2.run_instances(**launch)) == "InvalidAMIID.NotFound"  # as on EC2
    answer = ec2.deregister_image(ImageId=gone, DeleteAssociatedSnapshots=True)
    assert answer["DeleteSnapshotResults"] == [{"SnapshotId": f"snap-{gone[4:]}", "ReturnCode": "success"}]
    deadline = time.time() + 30
    while time.time() < deadline and int(gone[4:]) in _image_ids(stack):
        time.sleep(0.2)  # oned's datastore driver removes it
    assert int(gone[4:]) not in _image_ids(stack)
    _remove(stack, kept)


def _image_ids(stack) -> set[int]:  # noqa: F811
    pool = ET.fromstring(stack.admin("one.imagepool.info", -2, -1, -1))
    return {int(i.findtext("ID")) for i in pool.iterfind("IMAGE")}


def test_create_image_errors(stack, ec2, bob, instance):  # noqa: F811
    before = _image_ids(stack)
    name = stack.cloud.name("img-err")
    assert _code(lambda: ec2.create_image(InstanceId="i-09999999", Name=name)) == "InvalidInstanceID.NotFound"
    assert _code(lambda: ec2.create_image(InstanceId="i-x", Name=name)) == "InvalidInstanceID.Malformed"
    assert _code(lambda: bob.create_image(InstanceId=instance, Name=name)) == "InvalidInstanceID.NotFound"
    for bad in ("ab", "x" * 129):  # botocore refuses these itself
        status, answer = signed_v2(stack, {"Action": "CreateImage", "InstanceId": instance, "Name": bad})
        assert (status, error_code(answer)) == (400, "InvalidParameterValue")
    for bad in ("semi;colon", "star*", "a/b"):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ec2.create_image(InstanceId=instance, Name=bad)
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue", bad
    mapping = [{"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 2}}]
    assert _code(lambda: ec2.create_image(InstanceId=instance, Name=name, BlockDeviceMappings=mapping)) == (
        "InvalidBlockDeviceMapping"
    )
    wrong = [{"ResourceType": "instance", "Tags": [{"Key": "a", "Value": "b"}]}]
    assert _code(lambda: ec2.create_image(InstanceId=instance, Name=name, TagSpecifications=wrong)) == (
        "InvalidParameterValue"
    )
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.create_image(InstanceId=instance, Name=name, DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperation"
    assert _code(lambda: bob.create_image(InstanceId="i-09999999", Name=name, DryRun=True)) == (
        "InvalidInstanceID.NotFound"
    )
    time.sleep(0.3)  # what an action had started would show by now
    assert _image_ids(stack) <= before  # nothing was made (an image removed before may be gone since)
    # a name the user already has for an image
    ami = _create(stack, ec2, instance, "img-err")
    assert _code(lambda: ec2.create_image(InstanceId=instance, Name=name)) == "InvalidAMIName.Duplicate"
    for call in (
        lambda: ec2.deregister_image(ImageId="ami-x"),
        lambda: ec2.describe_image_attribute(ImageId="ami-x", Attribute="description"),
        lambda: ec2.modify_image_attribute(ImageId="ami-x", Description={"Value": "v"}),
    ):
        assert _code(call) == "InvalidAMIID.Malformed"
    assert _code(lambda: ec2.deregister_image(ImageId="ami-09999999")) == "InvalidAMIID.NotFound"
    # DryRun changes nothing
    for call in (
        lambda: ec2.deregister_image(ImageId=ami, DryRun=True),
        lambda: ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]}, DryRun=True),
    ):
        assert _code(call) == "DryRunOperation"
    held = _image(stack, int(ami[4:]))
    assert (held.findtext("TEMPLATE/EC2_AMI"), held.findtext("PERMISSIONS/OTHER_U")) == ("YES", "0")
    # an attribute an AMI of this cloud has not, of an image that is there
    assert _code(lambda: ec2.describe_image_attribute(ImageId=ami, Attribute="kernel")) == "InvalidParameterValue"
    assert _code(lambda: ec2.modify_image_attribute(ImageId=ami, Attribute="kernel", Value="x")) == (
        "InvalidParameterValue"
    )
    _remove(stack, ami)


def test_a_stopped_instance_is_saved_and_stays_stopped(stack, ec2):  # noqa: F811
    """What the README advises for a consistent image: stop the instance, then save its disk."""
    vm = _run(stack, ec2)
    wait_for(ec2, "instance_running", [vm])
    ec2.stop_instances(InstanceIds=[vm])
    wait_for(ec2, "instance_stopped", [vm])
    ami = ec2.create_image(InstanceId=vm, Name=stack.cloud.name("img-stopped"))["ImageId"]
    ec2.get_waiter("image_available").wait(ImageIds=[ami], WaiterConfig=WAIT)
    wait_for(ec2, "instance_stopped", [vm])
    assert ec2.describe_images(ImageIds=[ami])["Images"][0]["RootDeviceType"] == "ebs"
    ec2.terminate_instances(InstanceIds=[vm])
    wait_for(ec2, "instance_terminated", [vm])
    _remove(stack, ami)


def test_create_image_of_a_terminated_instance_is_refused(stack, ec2):  # noqa: F811
    vm = _run(stack, ec2)
    wait_for(ec2, "instance_running", [vm])
    ec2.terminate_instances(InstanceIds=[vm])
    wait_for(ec2, "instance_terminated", [vm])
    assert _code(lambda: ec2.create_image(InstanceId=vm, Name=stack.cloud.name("img-done"))) == (
        "IncorrectInstanceState"
    )


def test_ec2_ami_creates_lists_shares_and_removes_an_image(stack, ec2, instance, tmp_path):  # noqa: F811
    """One play (ansible's start costs seconds): the tasks after the first name the image it made.
    ec2_ami's wait polls every 15 s: the image is seldom available at its first poll."""
    name = stack.cloud.name("img-ansible")
    made = "{{ made.image_id }}"
    created, info, again, shared, removed = play(
        stack,
        tmp_path,
        {
            "amazon.aws.ec2_ami": {
                "instance_id": instance,
                "name": name,
                "description": "from ansible",
                "wait": True,
                "tags": {"made-by": "ansible"},
            },
            "register": "made",
        },
        {"amazon.aws.ec2_ami_info": {"owners": ["self"], "filters": {"name": name}}},
        {"amazon.aws.ec2_ami": {"image_id": made, "description": "from ansible"}},
        {"amazon.aws.ec2_ami": {"image_id": made, "launch_permissions": {"group_names": ["all"]}}},
        {"amazon.aws.ec2_ami": {"image_id": made, "state": "absent", "wait": True}},
    )
    ami = created["image_id"]
    assert created["changed"] and created["state"] == "available" and created["name"] == name
    assert created["root_device_type"] == "ebs" and created["tags"] == {"made-by": "ansible"}
    assert [i["image_id"] for i in info["images"]] == [ami]
    assert not again["changed"]
    assert shared["changed"] and shared["launch_permissions"] == [{"group": "all"}]
    assert removed["changed"] and ec2.describe_images(ImageIds=[ami])["Images"] == []
    _remove(stack, ami)


# what oned 6.10.5 answers when the checks CreateImage makes first are overtaken (another request made
# an image of that name, or the VM left its state meanwhile), from its source (Request.cc failure_message,
# ImagePool::allocate, RequestManagerVirtualMachine.cc VirtualMachineDiskSaveas)
@pytest.mark.parametrize(
    ("code", "message", "ec2_code"),
    [
        (
            0x4000,
            "[one.vm.disksaveas] Error allocating a new image. NAME is already taken by IMAGE 7.",
            "InvalidAMIName.Duplicate",
        ),
        (0x2000, "VM has to be RUNNING, POWEROFF or SUSPENDED to save disks.", "IncorrectInstanceState"),
        (
            0x4000,
            "[one.image.allocate] Error allocating a new image. NAME is already taken by IMAGE 7.",
            "InternalError",
        ),
    ],
)
def test_oned_refusals_of_a_disk_save_are_ec2_errors(code, message, ec2_code):
    assert gateway.ec2_error(code, message).code == ec2_code


def test_the_captured_disk_save_is_pending_then_available():
    """oned 6.10.5's own answers for an image one.vm.disksaveas made (set3, image 2 of VM 0's disk 2),
    with the marks CreateImage writes: pending while LOCKED, then available, an EBS root of 1 GiB."""
    shown = []
    for capture in ("one.image.info.saved.immediate", "one.image.info.saved.settled"):
        ok, text, _ = xmlrpc.client.loads((FIXTURES / "set3" / f"{capture}.xml").read_text())[0][0]
        image = objects.parse_image(objects.xml(text))
        image.template.update(EC2_AMI="YES", EBS_SNAPSHOT="YES")
        shown.append(images.describe(image))
    assert [d["State"] for d in shown] == ["pending", "available"]
    root = {"DeviceName": "/dev/sda", "Ebs": {"SnapshotId": "snap-00000002", "VolumeSize": 1,
            "DeleteOnTermination": True, "VolumeType": "standard", "Encrypted": False}}  # fmt: skip
    assert [(d["RootDeviceType"], d["RootDeviceName"], d["BlockDeviceMappings"]) for d in shown] == [
        ("ebs", "/dev/sda", [root])
    ] * 2


def test_ec2_ami_delete_snapshot_removes_the_image(stack, ec2, instance, tmp_path):  # noqa: F811
    ami = _create(stack, ec2, instance, "img-ansible-gone")
    [removed] = play(
        stack, tmp_path, {"amazon.aws.ec2_ami": {"image_id": ami, "state": "absent", "delete_snapshot": True}}
    )
    assert removed["changed"] and removed["snapshots_deleted"] == [f"snap-{ami[4:]}"]
    deadline = time.time() + 30
    while time.time() < deadline and int(ami[4:]) in _image_ids(stack):
        time.sleep(0.2)  # oned's datastore driver removes it
    assert int(ami[4:]) not in _image_ids(stack)

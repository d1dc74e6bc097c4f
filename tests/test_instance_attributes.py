"""Instance status, attributes and types, against econe-server and onelite as real processes (boto3),
and onelite's one.vm.resize and one.vm.updateconf held to what oned 6.10.5 answered (set3)."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
import xmlrpc.client

import botocore.config
import botocore.exceptions
import pytest

from one import template as tpl

from . import test_econe_e2e as e2e
from .conftest import FIXTURES
from .test_econe_e2e import signed_v2, stack, start_file_templates, wait_for  # noqa: F401

SET3 = FIXTURES / "set3"


@pytest.fixture(scope="module")
def ec2(stack):  # noqa: F811
    return stack.client()


def _code(call, **params) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**params)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] < 500
    return e.value.response["Error"]["Code"]


def _run(stack, ec2, **extra) -> str:  # noqa: F811
    params = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": stack.demo.itype, "MinCount": 1, "MaxCount": 1}
    run = ec2.run_instances(**{**params, **extra})
    return run["Instances"][0]["InstanceId"]


def _vm(stack, iid: str) -> ET.Element:  # noqa: F811
    return ET.fromstring(stack.admin("one.vm.info", int(iid[2:])))


def _state(ec2, iid: str) -> str:
    return ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]


def _stopped(ec2, iid: str) -> None:
    wait_for(ec2, "instance_running", [iid])
    ec2.stop_instances(InstanceIds=[iid])
    wait_for(ec2, "instance_stopped", [iid])


# ---------------------------------------------------------------- onelite, held to set3


def _captured(name: str) -> list:
    (answer,), _ = xmlrpc.client.loads((SET3 / f"{name}.xml").read_bytes())
    return list(answer)


@pytest.mark.onelite_only("compares onelite's answers with oned's captured ones on the dummy driver")
def test_onelite_resize_and_updateconf_answer_as_oned_did(stack, ec2):  # noqa: F811
    iid = _run(stack, ec2, UserData="hello")
    vmid = int(iid[2:])
    one = xmlrpc.client.ServerProxy(stack.cloud.url)
    session = f"{stack.demo.user}:{stack.demo.password}"  # the cloud user, as in the captures
    wait_for(ec2, "instance_running", [iid])
    assert _vm(stack, iid).findtext("LCM_STATE") == "3"
    # RUNNING on the dummy driver: no hotplug resize; an update type other than 0 and 1
    assert list(one.one.vm.resize(session, vmid, 'CPU="1"\nMEMORY="256"', False)) == _captured(
        "error.one.vm.resize.running"
    )
    assert list(one.one.vm.updateconf(session, vmid, 'CONTEXT=[BAR="baz"]', 7)) == _captured(
        "error.one.vm.updateconf.bad_type"
    )
    _stopped(ec2, iid)
    before = len(_vm(stack, iid).findall("HISTORY_RECORDS/HISTORY"))
    answer = list(one.one.vm.resize(session, vmid, 'CPU="1"\nMEMORY="256"', False))
    assert answer == [True, vmid, 0] and _captured("one.vm.resize") == [True, 0, 0]  # the capture's VM is 0
    assert list(one.one.vm.resize(session, vmid, 'VCPU="2"', True)) == [True, vmid, 0]
    vm = _vm(stack, iid)
    assert [vm.findtext(f"TEMPLATE/{k}") for k in ("CPU", "MEMORY", "VCPU")] == ["1", "256", "2"]
    # each resize ended the open history record naming it (35) and went on in a copy that keeps the
    # poweroff's action (19) as oned's own (UID -1): set3's one.vm.info.after_updateconf_context
    history = vm.findall("HISTORY_RECORDS/HISTORY")
    assert len(history) == before + 2
    assert [(h.findtext("ACTION"), h.findtext("UID")) for h in history[-3:]] == [
        ("35", str(stack.demo.uid)),
        ("35", str(stack.demo.uid)),
        ("19", "-1"),
    ]
    assert history[-1].findtext("ETIME") == "0" and history[-1].findtext("RETIME") != "0"
    # three parameters: a replace; then a merge keeps SSH_PUBLIC_KEY and FOO (set3's after_updateconf_append)
    new = 'CONTEXT=[SSH_PUBLIC_KEY="ssh-ed25519 ZZZZ k9",NETWORK="YES",FOO="bar"]'
    assert list(one.one.vm.updateconf(session, vmid, new)) == [True, vmid, 0]
    assert list(one.one.vm.updateconf(session, vmid, 'CONTEXT=[BAR="baz"]', 1)) == [True, vmid, 0]
    context = _vm(stack, iid).find("TEMPLATE/CONTEXT")
    assert {k: context.findtext(k) for k in ("BAR", "FOO", "SSH_PUBLIC_KEY", "NETWORK", "EC2_USER_DATA")} == {
        "BAR": "baz",
        "FOO": "bar",
        "SSH_PUBLIC_KEY": "ssh-ed25519 ZZZZ k9",
        "NETWORK": "YES",
        "EC2_USER_DATA": None,  # the replace dropped it
    }
    assert context.findtext("TARGET") and context.findtext("ETH0_IP")  # kept: oned's own
    assert len(_vm(stack, iid).findall("HISTORY_RECORDS/HISTORY")) == before + 2  # no record for updateconf
    ec2.terminate_instances(InstanceIds=[iid])


# ---------------------------------------------------------------- termination protection


def test_disable_api_termination_is_stored_and_enforced(stack, ec2):  # noqa: F811
    guarded = _run(stack, ec2, DisableApiTermination=True, InstanceInitiatedShutdownBehavior="terminate")
    free = _run(stack, ec2)
    user = _vm(stack, guarded).find("USER_TEMPLATE")
    assert (user.findtext("EC2_DISABLE_API_TERMINATION"), user.findtext("EC2_SHUTDOWN_BEHAVIOR")) == (
        "true",
        "terminate",
    )

    def attribute(iid, name):
        return ec2.describe_instance_attribute(InstanceId=iid, Attribute=name)

    assert attribute(guarded, "disableApiTermination")["DisableApiTermination"]["Value"] is True
    assert attribute(free, "disableApiTermination")["DisableApiTermination"]["Value"] is False
    assert attribute(guarded, "instanceInitiatedShutdownBehavior")["InstanceInitiatedShutdownBehavior"] == {
        "Value": "terminate"
    }
    assert attribute(free, "instanceInitiatedShutdownBehavior")["InstanceInitiatedShutdownBehavior"] == {
        "Value": "stop"
    }
    wait_for(ec2, "instance_running", [guarded, free])
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.terminate_instances(InstanceIds=[free, guarded])
    assert e.value.response["Error"] == {
        "Code": "OperationNotPermitted",
        "Message": f"The instance '{guarded}' may not be terminated. Modify its 'disableApiTermination'"
        " instance attribute and try again.",
    }
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert _code(ec2.terminate_instances, InstanceIds=[guarded], DryRun=True) == "OperationNotPermitted"
    assert (_state(ec2, free), _state(ec2, guarded)) == ("running", "running")  # neither was terminated
    # the value form (Attribute, Value) and the structured form, as botocore sends both
    ec2.modify_instance_attribute(InstanceId=free, Attribute="disableApiTermination", Value="true")
    assert _code(ec2.terminate_instances, InstanceIds=[free]) == "OperationNotPermitted"
    ec2.modify_instance_attribute(InstanceId=guarded, DisableApiTermination={"Value": False})
    ec2.modify_instance_attribute(InstanceId=free, DisableApiTermination={"Value": False})
    ec2.modify_instance_attribute(InstanceId=free, InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    assert attribute(free, "instanceInitiatedShutdownBehavior")["InstanceInitiatedShutdownBehavior"] == {
        "Value": "terminate"
    }
    done = ec2.terminate_instances(InstanceIds=[free, guarded])["TerminatingInstances"]
    assert {i["CurrentState"]["Name"] for i in done} <= {"shutting-down", "terminated"}


def test_a_failed_launch_removes_its_protected_instances(stack):  # noqa: F811
    """MinCount not met: RunInstances removes what it made, DisableApiTermination or not. The scheduler
    deploys some of them while they are removed (the removal waits for the drivers, then terminates
    again): that second try refused them as protected and left them running."""
    # the removal (a token cleared and a terminate per VM) outlasts onelite's scheduler interval: it
    # meets VMs being deployed (it did in 5 runs of 5 before the fix)
    size = 32
    e2e._instance_type(stack, "t2.guarded", "10.7.0.1", size)
    ec2 = stack.client(retries={"total_max_attempts": 1})
    before = e2e._all_vm_ids(stack)
    run = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": stack.cloud.name("t2.guarded")}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.run_instances(**run, MinCount=size + 1, MaxCount=size + 1, DisableApiTermination=True, ClientToken="g")
    assert e.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    made = [f"i-{vmid:08d}" for vmid in sorted(e2e._all_vm_ids(stack) - before)]
    assert len(made) == size
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances(InstanceIds=made)["Reservations"]
              for i in r["Instances"]}  # fmt: skip
    assert {iid: s for iid, s in states.items() if s not in ("shutting-down", "terminated")} == {}


# ---------------------------------------------------------------- type and user data while stopped


def _bigger_type(stack) -> str:  # noqa: F811
    """A second instance type of the demo's group: CPU 1, VCPU 2, MEMORY 256."""
    name = stack.cloud.name("m1.attrs")
    one = stack.admin
    template = one(
        "one.template.allocate",
        tpl.serialize(
            [
                ("NAME", name),
                ("CPU", "1"),
                ("VCPU", "2"),
                ("MEMORY", "256"),
                ("EC2_INSTANCE_TYPE", name),
                ("NIC", [("NETWORK_ID", str(stack.demo.vnet))]),
                ("SCHED_REQUIREMENTS", f'ID="{stack.demo.host}"'),
            ]
        ),
    )
    one("one.template.chown", template, -1, stack.demo.gid)
    one("one.template.chmod", template, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    return name


def test_instance_type_and_user_data_change_while_stopped(stack, ec2):  # noqa: F811
    bigger = _bigger_type(stack)
    iid = _run(stack, ec2, UserData="first")
    wait_for(ec2, "instance_running", [iid])
    assert _code(ec2.modify_instance_attribute, InstanceId=iid, InstanceType={"Value": bigger}) == (
        "IncorrectInstanceState"
    )
    assert _code(ec2.modify_instance_attribute, InstanceId=iid, UserData={"Value": b"x"}) == "IncorrectInstanceState"
    _stopped(ec2, iid)
    assert _code(ec2.modify_instance_attribute, InstanceId=iid, InstanceType={"Value": "x9.none"}) == (
        "InvalidParameterValue"
    )
    ec2.modify_instance_attribute(InstanceId=iid, InstanceType={"Value": bigger})
    ec2.modify_instance_attribute(InstanceId=iid, UserData={"Value": b"second \x00 data"})
    vm = _vm(stack, iid)
    assert [vm.findtext(f"TEMPLATE/{k}") for k in ("CPU", "VCPU", "MEMORY")] == ["1", "2", "256"]
    assert vm.findtext("USER_TEMPLATE/EC2_INSTANCE_TYPE") == bigger
    encoded = base64.b64encode(b"second \x00 data").decode()
    assert vm.findtext("TEMPLATE/CONTEXT/EC2_USER_DATA") == encoded
    described = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert described["InstanceType"] == bigger
    assert ec2.describe_instances(Filters=[{"Name": "instance-type", "Values": [bigger]}])["Reservations"]
    got = ec2.describe_instance_attribute(InstanceId=iid, Attribute="instanceType")["InstanceType"]
    assert got == {"Value": bigger}
    got = ec2.describe_instance_attribute(InstanceId=iid, Attribute="userData")["UserData"]
    assert got == {"Value": encoded}
    ec2.start_instances(InstanceIds=[iid])
    wait_for(ec2, "instance_running", [iid])
    ec2.terminate_instances(InstanceIds=[iid])


def test_modify_refusals_are_ec2_errors(stack, ec2):  # noqa: F811
    iid = _run(stack, ec2)  # no user data: the demo's type has no CONTEXT
    _stopped(ec2, iid)
    cases = [
        ({"Groups": ["sg-00000000"]}, "UnsupportedOperation"),
        ({"Kernel": {"Value": "aki-1"}}, "UnsupportedOperation"),
        ({"SourceDestCheck": {"Value": False}}, "UnsupportedOperation"),
        ({"Attribute": "rootDeviceName", "Value": "/dev/sdb"}, "InvalidParameterValue"),
        ({"Attribute": "disableApiTermination", "Value": "maybe"}, "InvalidParameterValue"),
        ({"InstanceInitiatedShutdownBehavior": {"Value": "reboot"}}, "InvalidParameterValue"),
        ({"DisableApiTermination": {"Value": True}, "EbsOptimized": {"Value": False}}, "InvalidParameterCombination"),
        ({}, "MissingParameter"),
        ({"UserData": {"Value": b"data"}}, "UnsupportedOperation"),  # oned adds no CONTEXT to a VM
    ]
    for params, code in cases:
        assert _code(ec2.modify_instance_attribute, InstanceId=iid, **params) == code, params
    ec2.modify_instance_attribute(InstanceId=iid, SourceDestCheck={"Value": True})  # what it is: nothing to do
    assert _code(ec2.modify_instance_attribute, InstanceId="i-09999999", DisableApiTermination={"Value": True}) == (
        "InvalidInstanceID.NotFound"
    )
    assert _code(ec2.modify_instance_attribute, InstanceId=iid, DisableApiTermination={"Value": True}, DryRun=True) == (
        "DryRunOperation"
    )
    assert _vm(stack, iid).findtext("USER_TEMPLATE/EC2_DISABLE_API_TERMINATION") is None  # the dry run changed nothing
    status, root = signed_v2(stack, {"Action": "RunInstances", "ImageId": f"ami-{stack.demo.image:08d}",
                                     "InstanceType": stack.demo.itype, "MinCount": "1", "MaxCount": "1",
                                     "InstanceInitiatedShutdownBehavior": "halt"})  # fmt: skip
    assert (status, root.findtext("Errors/Error/Code")) == (400, "InvalidParameterValue")
    ec2.terminate_instances(InstanceIds=[iid])


def test_describe_instance_attribute_answers_every_attribute(stack, ec2):  # noqa: F811
    iid = _run(stack, ec2)
    names = ec2.meta.service_model.shape_for("InstanceAttributeName").enum
    for name in names:
        answer = ec2.describe_instance_attribute(InstanceId=iid, Attribute=name)
        assert answer["InstanceId"] == iid, name
    groups = ec2.describe_instance_attribute(InstanceId=iid, Attribute="groupSet")["Groups"]
    nic = _vm(stack, iid).find("TEMPLATE/NIC")
    expected = [f"sg-{int(g):08d}" for g in (nic.findtext("SECURITY_GROUPS") or "").split(",") if g]
    assert expected and [g["GroupId"] for g in groups] == expected
    names = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups(GroupIds=expected)["SecurityGroups"]}
    assert [(g["GroupId"], g["GroupName"]) for g in groups] == [(i, names[i]) for i in expected]
    assert names.get("sg-00000000", "default") == "default"  # OpenNebula's default group, as EC2 names it
    assert ec2.describe_instance_attribute(InstanceId=iid, Attribute="sourceDestCheck")["SourceDestCheck"] == {
        "Value": True
    }
    assert _code(ec2.describe_instance_attribute, InstanceId=iid, Attribute="bogus") == "InvalidParameterValue"
    assert _code(ec2.describe_instance_attribute, InstanceId="i-x", Attribute="userData") == (
        "InvalidInstanceID.Malformed"
    )
    ec2.terminate_instances(InstanceIds=[iid])


# ---------------------------------------------------------------- DescribeInstanceStatus


def _statuses(ec2, **params) -> dict[str, tuple[str, str, str]]:
    out = ec2.describe_instance_status(**params)["InstanceStatuses"]
    return {
        s["InstanceId"]: (s["InstanceState"]["Name"], s["InstanceStatus"]["Status"], s["SystemStatus"]["Status"])
        for s in out
    }


def test_describe_instance_status(stack, ec2):  # noqa: F811
    running, stopped = _run(stack, ec2), _run(stack, ec2)
    _stopped(ec2, stopped)
    wait_for(ec2, "instance_running", [running])
    mine = [running, stopped]
    assert _statuses(ec2, InstanceIds=mine) == {running: ("running", "ok", "ok")}  # running ones by default
    assert _statuses(ec2, InstanceIds=mine, IncludeAllInstances=True) == {
        running: ("running", "ok", "ok"),
        stopped: ("stopped", "not-applicable", "not-applicable"),
    }
    one = ec2.describe_instance_status(InstanceIds=[running])["InstanceStatuses"][0]
    assert one["InstanceStatus"]["Details"] == [{"Name": "reachability", "Status": "passed"}]
    assert one["AvailabilityZone"] == "opennebula"
    every = _statuses(ec2, IncludeAllInstances=True)
    assert set(mine) <= set(every)
    filtered = _statuses(
        ec2, IncludeAllInstances=True, Filters=[{"Name": "instance-status.status", "Values": ["not-applicable"]}]
    )
    assert stopped in filtered and running not in filtered
    assert _statuses(ec2, Filters=[{"Name": "event.code", "Values": ["*"]}]) == {}  # no scheduled events
    pages, token = [], None
    while True:
        page = ec2.describe_instance_status(
            IncludeAllInstances=True, MaxResults=5, **({"NextToken": token} if token else {})
        )
        pages += [s["InstanceId"] for s in page["InstanceStatuses"]]
        token = page.get("NextToken")
        if not token:
            break
    assert pages == sorted(every)
    for params, code in [
        ({"InstanceIds": ["i-09999999"]}, "InvalidInstanceID.NotFound"),
        ({"InstanceIds": ["nope"]}, "InvalidInstanceID.Malformed"),
        ({"InstanceIds": [running], "MaxResults": 5}, "InvalidParameterCombination"),
        ({"MaxResults": 2}, "InvalidParameterValue"),
        ({"Filters": [{"Name": "no-such-filter", "Values": ["x"]}]}, "InvalidParameterValue"),
    ]:
        assert _code(ec2.describe_instance_status, **params) == code, params
    ec2.terminate_instances(InstanceIds=mine)


def test_status_and_type_filters_are_matched_or_refused_never_a_500(stack, ec2):  # noqa: F811
    """tag:KEY on DescribeInstanceStatus (a status has no tags here) and on DescribeInstanceTypes match
    nothing; a type filter without a name is EC2's MissingParameter (each was a KeyError, a 500)."""
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "status-web"}]}]
    tagged = _run(stack, ec2, TagSpecifications=tags)
    assert tagged in _statuses(ec2, IncludeAllInstances=True)
    assert _statuses(ec2, IncludeAllInstances=True, Filters=[{"Name": "tag:role", "Values": ["*"]}]) == {}
    for filters in ([{"Values": ["x"]}], [{"Name": "", "Values": ["x"]}]):
        assert _code(ec2.describe_instance_types, Filters=filters) == "MissingParameter", filters
    assert ec2.describe_instance_types(Filters=[{"Name": "tag:role", "Values": ["*"]}])["InstanceTypes"] == []
    ec2.terminate_instances(InstanceIds=[tagged])


@pytest.mark.onelite_only("takes the cloud's host offline")
def test_system_status_follows_the_host(stack, ec2):  # noqa: F811
    iid = _run(stack, ec2)
    wait_for(ec2, "instance_running", [iid])
    try:
        stack.admin("one.host.status", stack.demo.host, 2)  # OFFLINE
        assert _statuses(ec2, InstanceIds=[iid]) == {iid: ("running", "ok", "impaired")}
        stack.admin("one.host.status", stack.demo.host, 1)  # DISABLED: its VMs run on
        assert _statuses(ec2, InstanceIds=[iid]) == {iid: ("running", "ok", "ok")}
    finally:
        stack.admin("one.host.status", stack.demo.host, 0)
    ec2.terminate_instances(InstanceIds=[iid])


# ---------------------------------------------------------------- DescribeInstanceTypes


def test_describe_instance_types_from_the_templates(stack, ec2):  # noqa: F811
    types = {t["InstanceType"]: t for t in ec2.describe_instance_types()["InstanceTypes"]}
    small = types[stack.demo.itype]  # the demo's template: VCPU 1, MEMORY 128
    assert (small["VCpuInfo"]["DefaultVCpus"], small["MemoryInfo"]["SizeInMiB"]) == (1, 128)
    assert small["ProcessorInfo"]["SupportedArchitectures"] == ["x86_64"]
    named = ec2.describe_instance_types(InstanceTypes=[stack.demo.itype])["InstanceTypes"]
    assert [t["InstanceType"] for t in named] == [stack.demo.itype]
    by_memory = ec2.describe_instance_types(Filters=[{"Name": "memory-info.size-in-mib", "Values": ["128"]}])
    assert stack.demo.itype in [t["InstanceType"] for t in by_memory["InstanceTypes"]]
    by_vcpus = ec2.describe_instance_types(Filters=[{"Name": "vcpu-info.default-vcpus", "Values": ["64"]}])
    assert by_vcpus["InstanceTypes"] == []
    assert _code(ec2.describe_instance_types, InstanceTypes=["x9.none"]) == "InvalidInstanceType"
    assert _code(ec2.describe_instance_types, Filters=[{"Name": "network-info.ena-support", "Values": ["x"]}]) == (
        "InvalidParameterValue"
    )
    assert _code(ec2.describe_instance_types, DryRun=True) == "DryRunOperation"


def test_file_template_types_are_described_and_resized_to(stack, tmp_path):  # noqa: F811
    """With file templates (econe.conf :instance_types:), the types and a resize come from the files."""
    templates = {
        name: f'NAME = {{{{ instance_type }}}}\nCPU = "{cpu}"\nVCPU = "{vcpu}"\nMEMORY = "{memory}"\n'
        f'DISK = [ IMAGE_ID = {{{{ img_id }}}} ]\nNIC = [ NETWORK_ID = "{stack.demo.vnet}" ]\n'
        f'SCHED_REQUIREMENTS = "ID=\\"{stack.demo.host}\\""\n'
        for name, cpu, vcpu, memory in (("f1.small", "0.2", "1", "96"), ("f1.large", "0.5", "3", "192"))
    }
    econe = start_file_templates(stack, tmp_path, templates)
    try:
        ec2 = stack.client(url=econe.url)
        types = ec2.describe_instance_types()["InstanceTypes"]
        assert [(t["InstanceType"], t["VCpuInfo"]["DefaultVCpus"], t["MemoryInfo"]["SizeInMiB"]) for t in types] == [
            ("f1.large", 3, 192),
            ("f1.small", 1, 96),
        ]
        # the file's NIC is checked before a dry run decides, as the launch checks it
        launch = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": "f1.small", "MinCount": 1, "MaxCount": 1}
        assert _code(ec2.run_instances, **launch, PrivateIpAddress="10.9.0.50", DryRun=True) == "InvalidParameterValue"
        iid = _run(stack, ec2, InstanceType="f1.small")
        _stopped(ec2, iid)
        ec2.modify_instance_attribute(InstanceId=iid, Attribute="instanceType", Value="f1.large")
        vm = _vm(stack, iid)
        assert [vm.findtext(f"TEMPLATE/{k}") for k in ("CPU", "VCPU", "MEMORY")] == ["0.5", "3", "192"]
        ec2.terminate_instances(InstanceIds=[iid])
    finally:
        econe.stop()

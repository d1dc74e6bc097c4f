"""The VPC view of a user's networks, against econe on onelite: one default VPC, each virtual network
the user may use a subnet, RunInstances choosing the NIC (subnet, security groups, address), and
DescribeInstances / DescribeNetworkInterfaces / DescribeAccountAttributes showing it; and Ansible's
ec2_vpc_net_info, ec2_vpc_subnet_info and ec2_instance's default-VPC path."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

import demo
from one import template as tpl

from .test_econe_e2e import stack, wait_for  # noqa: F401

VPC = "vpc-00000000"


@pytest.fixture(scope="module")
def ec2(stack):  # noqa: F811
    return stack.client()


@pytest.fixture(scope="module")
def net(stack):  # noqa: F811
    """A second network the user's group may use (10.1.0.0/27 holds its 20 addresses), and a security
    group of the user's own."""
    one = stack.admin
    vnet = one(
        "one.vn.allocate",
        tpl.serialize([("NAME", stack.cloud.name("second")), ("BRIDGE", "br1"), ("VN_MAD", "dummy"),
                       ("AR", [("TYPE", "IP4"), ("IP", "10.1.0.4"), ("SIZE", "20")])]),
        stack.cloud.cluster,
    )  # fmt: skip
    one("one.vn.chown", vnet, -1, stack.demo.gid)
    one("one.vn.chmod", vnet, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    demo.wait_ready(one, vnet, "vnet")
    sg = one("one.secgroup.allocate", tpl.serialize([("NAME", stack.cloud.name("web")),
                                                      ("RULE", [("PROTOCOL", "TCP"), ("RULE_TYPE", "inbound"),
                                                                ("RANGE", "22:22")])]))  # fmt: skip
    one("one.secgroup.chown", sg, stack.demo.uid, stack.demo.gid)
    return {"vnet": vnet, "subnet": f"subnet-{vnet:08d}", "sg": sg, "sg_id": f"sg-{sg:08d}",
            "sg_name": stack.cloud.name("web")}  # fmt: skip


def _code(call, **kw) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _nic(stack, iid: str) -> ET.Element:  # noqa: F811
    """The VM's first NIC as oned holds it."""
    return ET.fromstring(stack.admin("one.vm.info", int(iid[2:]), False)).find("TEMPLATE/NIC")


def _run(ec2, stack, **kw) -> dict:  # noqa: F811
    ami = f"ami-{stack.demo.image:08d}"
    return ec2.run_instances(ImageId=ami, InstanceType=stack.demo.itype, MinCount=1, MaxCount=1, **kw)["Instances"][0]


def _describe(ec2, iid: str) -> dict:
    (reservation,) = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
    assert reservation["Groups"] == []  # EC2-VPC: the groups are the instance's
    return reservation["Instances"][0]


def _ids(answer: dict) -> list[str]:
    return sorted(i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"])


# ---------------------------------------------------------------- VPC, subnets, account


def test_one_default_vpc(ec2, net):
    (vpc,) = ec2.describe_vpcs()["Vpcs"]
    assert (vpc["VpcId"], vpc["IsDefault"], vpc["State"]) == (VPC, True, "available")
    block = ipaddress.ip_network(vpc["CidrBlock"])
    for subnet in ec2.describe_subnets()["Subnets"]:  # every subnet lies inside the VPC's block
        assert ipaddress.ip_network(subnet["CidrBlock"]).subnet_of(block)
    assert [a["CidrBlock"] for a in vpc["CidrBlockAssociationSet"]] == [vpc["CidrBlock"]]
    # ec2_instance asks with "isDefault", EC2's older spelling, which EC2 still takes
    for name, value, found in [("isDefault", "true", 1), ("is-default", "false", 0), ("vpc-id", VPC, 1),
                               ("state", "available", 1), ("cidr", vpc["CidrBlock"], 1), ("vpc-id", "vpc-1*", 0),
                               ("tag:Name", "*", 0)]:  # fmt: skip
        assert len(ec2.describe_vpcs(Filters=[{"Name": name, "Values": [value]}])["Vpcs"]) == found, name
    assert ec2.describe_vpcs(VpcIds=[VPC])["Vpcs"][0]["VpcId"] == VPC
    assert _code(ec2.describe_vpcs, VpcIds=["vpc-00000001"]) == ("InvalidVpcID.NotFound", 400)
    assert _code(ec2.describe_vpcs, VpcIds=["vpc-x"]) == ("InvalidVpcID.Malformed", 400)
    assert _code(ec2.describe_vpcs, Filters=[{"Name": "nope", "Values": ["1"]}]) == ("InvalidParameterValue", 400)
    dns = ec2.describe_vpc_attribute(VpcId=VPC, Attribute="enableDnsSupport")
    assert dns["VpcId"] == VPC and dns["EnableDnsSupport"]["Value"] is False  # econe names no instance
    assert _code(ec2.describe_vpc_attribute, VpcId="vpc-00000002", Attribute="enableDnsSupport")[0] == (
        "InvalidVpcID.NotFound"
    )


def test_each_usable_network_is_a_subnet(stack, ec2, net):  # noqa: F811
    subnets = {s["SubnetId"]: s for s in ec2.describe_subnets()["Subnets"]}
    default, second = subnets[f"subnet-{stack.demo.vnet:08d}"], subnets[net["subnet"]]
    # the demo network: 100 addresses from 10.0.0.10; the second: 20 from 10.1.0.4
    assert (default["CidrBlock"], default["DefaultForAz"]) == ("10.0.0.0/25", True)
    assert (second["CidrBlock"], second["DefaultForAz"], second["AvailableIpAddressCount"]) == (
        "10.1.0.0/27",
        False,
        20,
    )
    assert second["VpcId"] == VPC and second["State"] == "available" and second["AvailabilityZone"] == "opennebula"
    assert {"Key": "Name", "Value": stack.cloud.name("second")} in second["Tags"]
    assert [s for s in subnets.values() if s["DefaultForAz"]] == [default]

    def found(*filters) -> list[str]:
        answer = ec2.describe_subnets(Filters=[{"Name": n, "Values": [v]} for n, v in filters])
        return sorted(s["SubnetId"] for s in answer["Subnets"])

    assert found(("default-for-az", "true"), ("vpc-id", VPC), ("state", "available")) == [default["SubnetId"]]
    assert found(("cidr-block", "10.1.0.0/27")) == [net["subnet"]]
    assert found(("subnet-id", net["subnet"]), ("availability-zone", "opennebula")) == [net["subnet"]]
    assert found(("tag:Name", stack.cloud.name("sec*"))) == [net["subnet"]]
    assert ec2.describe_subnets(SubnetIds=[net["subnet"]])["Subnets"] == [second]
    assert _code(ec2.describe_subnets, SubnetIds=["subnet-09999999"]) == ("InvalidSubnetID.NotFound", 400)
    assert _code(ec2.describe_subnets, SubnetIds=["subnet-zz"]) == ("InvalidSubnetID.Malformed", 400)


def test_account_attributes(ec2):
    attrs = {a["AttributeName"]: [v["AttributeValue"] for v in a["AttributeValues"]]
             for a in ec2.describe_account_attributes()["AccountAttributes"]}  # fmt: skip
    assert attrs["supported-platforms"] == ["VPC"] and attrs["default-vpc"] == [VPC]
    assert int(attrs["max-instances"][0]) > 0
    (only,) = ec2.describe_account_attributes(AttributeNames=["default-vpc"])["AccountAttributes"]
    assert only["AttributeName"] == "default-vpc"
    assert _code(ec2.describe_account_attributes, AttributeNames=["no-such"]) == ("InvalidParameterValue", 400)


# ---------------------------------------------------------------- RunInstances chooses the NIC


def test_subnet_and_group_ids_choose_the_nic(stack, ec2, net):  # noqa: F811
    before = ec2.describe_subnets(SubnetIds=[net["subnet"]])["Subnets"][0]["AvailableIpAddressCount"]
    vm = _run(ec2, stack, SubnetId=net["subnet"], SecurityGroupIds=[net["sg_id"]])
    nic = _nic(stack, vm["InstanceId"])
    assert nic.findtext("NETWORK_ID") == str(net["vnet"])
    assert str(net["sg"]) in nic.findtext("SECURITY_GROUPS").split(",")
    assert ec2.describe_subnets(SubnetIds=[net["subnet"]])["Subnets"][0]["AvailableIpAddressCount"] == before - 1
    shown = _describe(ec2, vm["InstanceId"])
    assert (shown["VpcId"], shown["SubnetId"]) == (VPC, net["subnet"])
    # OpenNebula adds its vnet's group 0 to every NIC: EC2 shows the groups asked for
    assert shown["SecurityGroups"] == [{"GroupId": net["sg_id"], "GroupName": net["sg_name"]}]
    (eni,) = shown["NetworkInterfaces"]
    assert eni["NetworkInterfaceId"] == f"eni-{int(vm['InstanceId'][2:]):08d}0000"
    assert (eni["SubnetId"], eni["VpcId"], eni["MacAddress"]) == (net["subnet"], VPC, nic.findtext("MAC"))
    assert eni["PrivateIpAddress"] == nic.findtext("IP") == shown["PrivateIpAddress"]
    assert ipaddress.ip_address(eni["PrivateIpAddress"]) in ipaddress.ip_network("10.1.0.0/27")
    assert eni["Attachment"]["DeviceIndex"] == 0 and eni["Attachment"]["DeleteOnTermination"] is True
    assert eni["Groups"] == shown["SecurityGroups"]
    for name, value in [("subnet-id", net["subnet"]), ("vpc-id", VPC), ("instance.group-id", net["sg_id"]),
                        ("group-name", net["sg_name"]), ("instance.group-name", net["sg_name"]),
                        ("group-id", net["sg_id"]),
                        ("network-interface.network-interface-id", eni["NetworkInterfaceId"])]:  # fmt: skip
        answer = ec2.describe_instances(Filters=[{"Name": name, "Values": [value]}])
        assert _ids(answer) == [vm["InstanceId"]], name
    ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])


def test_group_names_alone_go_on_the_types_nic(stack, ec2, net):  # noqa: F811
    vm = _run(ec2, stack, SecurityGroups=[net["sg_name"]])
    nic = _nic(stack, vm["InstanceId"])
    assert nic.findtext("NETWORK_ID") == str(stack.demo.vnet)  # the instance type's network
    assert str(net["sg"]) in nic.findtext("SECURITY_GROUPS").split(",")
    shown = _describe(ec2, vm["InstanceId"])
    assert shown["SubnetId"] == f"subnet-{stack.demo.vnet:08d}"
    assert [g["GroupName"] for g in shown["SecurityGroups"]] == [net["sg_name"]]
    ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])


def test_an_instance_without_groups_shows_default(stack, ec2):  # noqa: F811
    vm = _run(ec2, stack)
    shown = _describe(ec2, vm["InstanceId"])
    assert shown["SecurityGroups"] == [{"GroupId": "sg-00000000", "GroupName": "default"}]
    assert shown["SubnetId"] == f"subnet-{stack.demo.vnet:08d}" and shown["VpcId"] == VPC
    ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])


def test_network_interfaces_as_ec2_instance_sends_them(stack, ec2, net):  # noqa: F811
    subnet = f"subnet-{stack.demo.vnet:08d}"
    spec = {"DeviceIndex": 0, "SubnetId": subnet, "Groups": [net["sg_id"]], "DeleteOnTermination": True,
            "PrivateIpAddress": "10.0.0.77"}  # fmt: skip
    vm = _run(ec2, stack, NetworkInterfaces=[spec])
    nic = _nic(stack, vm["InstanceId"])
    assert (nic.findtext("NETWORK_ID"), nic.findtext("IP")) == (str(stack.demo.vnet), "10.0.0.77")
    assert str(net["sg"]) in nic.findtext("SECURITY_GROUPS").split(",")
    (eni,) = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [vm["InstanceId"]]}]
    )["NetworkInterfaces"]
    assert (eni["PrivateIpAddress"], eni["SubnetId"], eni["Status"]) == ("10.0.0.77", subnet, "in-use")
    assert eni["Attachment"]["InstanceId"] == vm["InstanceId"]
    assert eni["Groups"] == [{"GroupId": net["sg_id"], "GroupName": net["sg_name"]}]
    one = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])["NetworkInterfaces"]
    assert one == [eni]
    for name, value in [("subnet-id", subnet), ("private-ip-address", "10.0.0.77"), ("group-id", net["sg_id"]),
                        ("vpc-id", VPC), ("network-interface-id", eni["NetworkInterfaceId"])]:  # fmt: skip
        answer = ec2.describe_network_interfaces(Filters=[{"Name": name, "Values": [value]}])
        assert eni in answer["NetworkInterfaces"], name
    # the address is taken now: EC2's answer, not a capacity error
    assert _code(_run, ec2=ec2, stack=stack, PrivateIpAddress="10.0.0.77") == ("InvalidIPAddress.InUse", 400)
    ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])
    wait_for(ec2, "instance_terminated", [vm["InstanceId"]])
    assert _code(ec2.describe_network_interfaces, NetworkInterfaceIds=[eni["NetworkInterfaceId"]]) == (
        "InvalidNetworkInterfaceID.NotFound", 400)  # fmt: skip


def test_describe_network_interfaces_refusals(ec2):
    assert _code(ec2.describe_network_interfaces, NetworkInterfaceIds=["eni-1"]) == (
        "InvalidNetworkInterfaceID.Malformed", 400)  # fmt: skip
    assert _code(ec2.describe_network_interfaces, NetworkInterfaceIds=["eni-099999990000"]) == (
        "InvalidNetworkInterfaceID.NotFound", 400)  # fmt: skip
    assert (
        _code(ec2.describe_network_interfaces, Filters=[{"Name": "x", "Values": ["1"]}])[0] == "InvalidParameterValue"
    )


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"SubnetId": "SUBNET", "NetworkInterfaces": [{"DeviceIndex": 0}]}, "InvalidParameterCombination"),
        ({"SecurityGroupIds": ["SG"], "NetworkInterfaces": [{"DeviceIndex": 0}]}, "InvalidParameterCombination"),
        ({"PrivateIpAddress": "10.0.0.90", "MaxCount": 2}, "InvalidParameterCombination"),
        ({"SubnetId": "subnet-09999999"}, "InvalidSubnetID.NotFound"),
        ({"SubnetId": "net-1"}, "InvalidSubnetID.Malformed"),
        ({"SecurityGroupIds": ["sg-09999999"]}, "InvalidGroup.NotFound"),
        ({"SecurityGroupIds": ["group"]}, "InvalidGroupId.Malformed"),
        ({"SecurityGroups": ["no-such-group"]}, "InvalidGroup.NotFound"),
        ({"NetworkInterfaces": [{"DeviceIndex": 1, "SubnetId": "SUBNET"}]}, "InvalidParameterValue"),
        ({"NetworkInterfaces": [{"DeviceIndex": 0}, {"DeviceIndex": 1}]}, "InvalidParameterValue"),
        ({"NetworkInterfaces": [{"DeviceIndex": 0, "DeleteOnTermination": False}]}, "InvalidParameterValue"),
        ({"NetworkInterfaces": [{"DeviceIndex": 0, "NetworkInterfaceId": "eni-000000010000"}]}, "InvalidParameter"),
        ({"NetworkInterfaces": [{"DeviceIndex": 0, "SecondaryPrivateIpAddressCount": 2}]}, "InvalidParameter"),
        ({"SubnetId": "SUBNET", "PrivateIpAddress": "10.0.0.20"}, "InvalidParameterValue"),  # not in the subnet
        ({"PrivateIpAddress": "10.0.0.256"}, "InvalidParameterValue"),
        ({"PrivateIpAddress": "10.0.0.20\n"}, "InvalidParameterValue"),
    ],
)
def test_run_instances_network_refusals(stack, ec2, net, params, code):  # noqa: F811
    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return {"SUBNET": net["subnet"], "SG": net["sg_id"]}.get(value, value)

    before = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    ami = f"ami-{stack.demo.image:08d}"
    kw = {"ImageId": ami, "InstanceType": stack.demo.itype, "MinCount": 1, "MaxCount": 1, **fill(params)}
    assert _code(ec2.run_instances, **kw) == (code, 400)
    after = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    assert after == before  # nothing was made


def test_a_dry_run_refuses_what_the_launch_refuses(stack, ec2, net):  # noqa: F811
    """A dry run checks the NIC as the launch does before it decides: an address outside the network
    (the type's, or the subnet's) or a subnet that is not among the user's is the launch's 400, not 412."""
    before = _ids(ec2.describe_instances())
    for kw, code in [
        ({"PrivateIpAddress": "10.9.0.50"}, "InvalidParameterValue"),  # the type's network is 10.0.0.10 on
        ({"SubnetId": net["subnet"], "PrivateIpAddress": "10.0.0.20"}, "InvalidParameterValue"),
        ({"SubnetId": "subnet-09999999"}, "InvalidSubnetID.NotFound"),  # none the user may use
    ]:
        assert _code(_run, ec2=ec2, stack=stack, DryRun=True, **kw) == (code, 400), kw
        assert _code(_run, ec2=ec2, stack=stack, **kw) == (code, 400), kw
    allowed = {"SubnetId": net["subnet"], "SecurityGroupIds": [net["sg_id"]], "PrivateIpAddress": "10.1.0.9"}
    assert _code(_run, ec2=ec2, stack=stack, DryRun=True, **allowed) == ("DryRunOperation", 412)
    assert _ids(ec2.describe_instances()) == before


# ---------------------------------------------------------------- Ansible


def _play(stack, tmp_path, *tasks) -> list[dict]:  # noqa: F811
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "module_defaults": {"group/amazon.aws.aws": {"endpoint_url": stack.econe.url}},
                                     "tasks": list(tasks)}]))  # fmt: skip
    env = {**os.environ, "AWS_ACCESS_KEY_ID": stack.demo.user, "AWS_SECRET_ACCESS_KEY": stack.demo.secret,
           "AWS_REGION": "opennebula", "ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}  # fmt: skip
    done = subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", "localhost,", str(book)],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    try:
        results = [t["hosts"]["localhost"] for t in json.loads(done.stdout)["plays"][0]["tasks"]]
    except (ValueError, KeyError, IndexError):
        pytest.fail(done.stdout[-3000:] + done.stderr[-2000:])
    failed = [(r.get("msg"), r.get("error")) for r in results if r.get("failed")]
    assert done.returncode == 0 and not failed, failed or done.stderr[-2000:]
    return results


def test_ansible_vpc_info_and_an_instance_found_in_the_default_subnet(stack, ec2, net, tmp_path):  # noqa: F811
    """ec2_instance without vpc_subnet_id looks the default VPC and subnet up and finds its instances by
    name in that subnet (its create path also needs DescribeInstanceStatus, which is not this module's)."""
    name = stack.cloud.name("vpc-web")
    made = _run(ec2, stack, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
    wait_for(ec2, "instance_running", [made["InstanceId"]])
    vpcs, subnets, gone, gone_again = _play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_vpc_net_info": {"filters": {"is-default": "true"}}},
        {"amazon.aws.ec2_vpc_subnet_info": {"filters": {"vpc-id": VPC}}},
        {"amazon.aws.ec2_instance": {"name": name, "state": "absent", "wait": True}},
        {"amazon.aws.ec2_instance": {"name": name, "state": "absent", "wait": True}},
    )
    (vpc,) = vpcs["vpcs"]
    assert vpc["vpc_id"] == VPC and vpc["is_default"] and vpc["enable_dns_support"] is False
    listed = {s["subnet_id"]: s for s in subnets["subnets"]}
    assert listed[net["subnet"]]["tags"] == {"Name": stack.cloud.name("second")}
    assert listed[f"subnet-{stack.demo.vnet:08d}"]["default_for_az"]
    assert gone["changed"] and gone["terminate_success"] == [made["InstanceId"]]
    assert not gone_again["changed"]

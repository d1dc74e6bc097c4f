"""Security groups on OpenNebula's, driven by boto3 and Ansible's amazon.aws ec2_security_group
against econe-server on onelite; what oned stored is read with XML-RPC as oneadmin."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import time
import xml.etree.ElementTree as ET

import pytest

from .aws_play import play
from .test_econe_e2e import _code, _dry, error_code, signed_v2, stack, wait_for  # noqa: F401


@pytest.fixture(scope="module")
def ec2(stack):  # noqa: F811
    return stack.client()


@pytest.fixture(scope="module")
def bob(stack):  # noqa: F811
    return stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())


def _oned(stack, group_id: str) -> ET.Element:  # noqa: F811
    return ET.fromstring(stack.admin("one.secgroup.info", int(group_id[3:]), False))


def _rules(stack, group_id: str) -> list[dict]:  # noqa: F811
    return [{x.tag: x.text for x in r} for r in _oned(stack, group_id).iterfind("TEMPLATE/RULE")]


def _group(ec2, group_id: str) -> dict:
    return ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]


def _all_groups(stack) -> set[int]:  # noqa: F811
    pool = ET.fromstring(stack.admin("one.secgrouppool.info", -2, -1, -1))
    return {int(g.findtext("ID")) for g in pool.iterfind("SECURITY_GROUP")}


ANY_V4 = {"IP": "0.0.0.0", "SIZE": "4294967295"}  # how 0.0.0.0/0 is stored
ALL_OUT_STORED = {"PROTOCOL": "ALL", "RULE_TYPE": "outbound", **ANY_V4}  # a new group's egress rule
ANY_OUT = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [], "PrefixListIds": [],
           "UserIdGroupPairs": []}  # fmt: skip


def _perm(protocol: str, ports=None, v4=(), v6=()) -> dict:
    out = {"IpProtocol": protocol, "IpRanges": [{"CidrIp": c} for c in v4], "Ipv6Ranges": [{"CidrIpv6": c} for c in v6]}
    if ports:
        out["FromPort"], out["ToPort"] = ports
    return out


def _shown(perms: list[dict]) -> list[dict]:
    """A described IpPermissions without the empty lists botocore fills in."""
    return [{k: v for k, v in p.items() if v != []} for p in perms]


def test_a_new_group_lives_in_oned_with_the_default_egress_rule(stack, ec2):  # noqa: F811
    made = ec2.create_security_group(
        GroupName="web", Description="web servers",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "team", "Value": "a b"}]}],
    )  # fmt: skip
    gid = made["GroupId"]
    assert made["Tags"] == [{"Key": "team", "Value": "a b"}]
    group = _group(ec2, gid)
    assert (group["GroupName"], group["Description"], group["VpcId"]) == ("web", "web servers", "vpc-00000000")
    assert group["OwnerId"] == str(stack.demo.uid)
    assert group["IpPermissions"] == [] and _shown(group["IpPermissionsEgress"]) == [_shown([ANY_OUT])[0]]
    assert group["Tags"] == [{"Key": "team", "Value": "a b"}]
    oned = _oned(stack, gid)
    assert (oned.findtext("NAME"), oned.findtext("TEMPLATE/DESCRIPTION")) == ("web", "web servers")
    assert json.loads(oned.findtext("TEMPLATE/EC2_TAGS")) == {"team": "a b"}
    assert _rules(stack, gid) == [ALL_OUT_STORED]  # every IPv4 address: see test_ipv4_any_is_stored_as_…
    # the same name again is refused by oned itself (names are unique per owner)
    assert _code(lambda: ec2.create_security_group(GroupName="web", Description="again")) == "InvalidGroup.Duplicate"
    default = _group(ec2, "sg-00000000")
    assert default["GroupName"] == "default"
    assert [g["GroupId"] for g in ec2.describe_security_groups(GroupNames=["default", "web"])["SecurityGroups"]] == [
        "sg-00000000", gid]  # fmt: skip
    ec2.delete_security_group(GroupName="web")
    assert _code(lambda: _group(ec2, gid)) == "InvalidGroup.NotFound"
    assert int(gid[3:]) not in _all_groups(stack)


def test_rules_round_trip_through_oned(stack, ec2):  # noqa: F811
    gid = ec2.create_security_group(GroupName="rules", Description="round trip")["GroupId"]
    ingress = [
        _perm("tcp", (22, 22), ["0.0.0.0/0"]),
        _perm("tcp", (8000, 8080), ["10.0.0.0/24", "192.168.1.7/32"]),
        _perm("udp", (53, 53), v6=["::/0", "2001:db8::/120"]),
        _perm("icmp", (8, -1), ["10.1.0.0/16"]),
        _perm("icmpv6", (-1, -1), v6=["::/0"]),
    ]
    ingress[0]["IpRanges"][0]["Description"] = "ssh from anywhere"
    answer = ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=ingress)
    assert answer["Return"] and len(answer["SecurityGroupRules"]) == 7
    ec2.authorize_security_group_egress(GroupId=gid, IpPermissions=[_perm("6", (443, 443), ["10.2.0.0/16"])])
    group = _group(ec2, gid)
    assert _shown(group["IpPermissions"]) == _shown(ingress)
    assert _shown(group["IpPermissionsEgress"]) == _shown([ANY_OUT, _perm("tcp", (443, 443), ["10.2.0.0/16"])])
    stored = _rules(stack, gid)
    assert stored[1:4] == [
        {"PROTOCOL": "TCP", "RULE_TYPE": "inbound", "RANGE": "22:22", **ANY_V4, "DESCRIPTION": "ssh from anywhere"},
        {"PROTOCOL": "TCP", "RULE_TYPE": "inbound", "RANGE": "8000:8080", "IP": "10.0.0.0", "SIZE": "256"},
        {"PROTOCOL": "TCP", "RULE_TYPE": "inbound", "RANGE": "8000:8080", "IP": "192.168.1.7", "SIZE": "1"},
    ]
    assert {"PROTOCOL": "ICMP", "RULE_TYPE": "inbound", "ICMP_TYPE": "8", "IP": "10.1.0.0", "SIZE": "65536"} in stored
    assert {"PROTOCOL": "UDP", "RULE_TYPE": "inbound", "RANGE": "53:53", "IP": "2001:db8::", "SIZE": "256"} in stored
    # a rule that exists again: nothing changes
    assert _code(lambda: ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=ingress[:1])) == (
        "InvalidPermission.Duplicate")  # fmt: skip
    # the flat parameters of the original API name one rule
    ec2.authorize_security_group_ingress(GroupId=gid, IpProtocol="tcp", FromPort=25, ToPort=25, CidrIp="10.9.0.0/16")
    assert _shown([_perm("tcp", (25, 25), ["10.9.0.0/16"])])[0] in _shown(_group(ec2, gid)["IpPermissions"])
    ec2.revoke_security_group_ingress(GroupId=gid, IpProtocol="tcp", FromPort=25, ToPort=25, CidrIp="10.9.0.0/16")
    revoked = ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=ingress)
    assert revoked["Return"] and len(revoked["RevokedSecurityGroupRules"]) == 7
    ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[_perm("tcp", (443, 443), ["10.2.0.0/16"])])
    group = _group(ec2, gid)
    assert group["IpPermissions"] == [] and _shown(group["IpPermissionsEgress"]) == _shown([ANY_OUT])
    assert _rules(stack, gid) == [ALL_OUT_STORED]
    assert _code(lambda: ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=ingress[:1])) == (
        "InvalidPermission.NotFound")  # fmt: skip
    ec2.delete_security_group(GroupId=gid)


@pytest.fixture(scope="module")
def group(ec2):
    gid = ec2.create_security_group(GroupName="refusals", Description="x")["GroupId"]
    yield gid
    ec2.delete_security_group(GroupId=gid)


REFUSED = [
    ({"UserIdGroupPairs": [{"GroupId": "sg-00000000"}]}, "InvalidParameterValue"),
    ({"PrefixListIds": [{"PrefixListId": "pl-1"}]}, "InvalidParameterValue"),
    ({"IpRanges": []}, "InvalidParameterValue"),
    ({"IpProtocol": "gre"}, "InvalidParameterValue"),
    ({"FromPort": None}, "InvalidParameterValue"),  # tcp without ports
    ({"FromPort": 90, "ToPort": 80}, "InvalidParameterValue"),
    ({"ToPort": 70000}, "InvalidParameterValue"),
    ({"IpProtocol": "icmp", "FromPort": 8, "ToPort": 0}, "InvalidParameterValue"),  # ICMP codes: OpenNebula has none
    ({"IpRanges": [{"CidrIp": "10.0.0/24"}]}, "InvalidParameterValue"),
    ({"IpRanges": [{"CidrIp": "::/0"}]}, "InvalidParameterValue"),
    ({"IpRanges": [], "Ipv6Ranges": [{"CidrIpv6": "2001:db8::/64"}]}, "InvalidParameterValue"),  # > 2^32-1 addresses
    ({"IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "a\x01b"}]}, "InvalidParameterValue"),  # oned cannot store
]


@pytest.mark.parametrize(("change", "code"), REFUSED)
def test_rules_oned_cannot_express_are_refused(stack, ec2, group, change, code):  # noqa: F811
    perm = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}], **change}
    perm = {k: v for k, v in perm.items() if v is not None}
    before = _rules(stack, group)
    assert _code(lambda: ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[perm])) == code
    assert _rules(stack, group) == before


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"Action": "CreateSecurityGroup", "GroupName": "x"}, "MissingParameter"),
        ({"Action": "CreateSecurityGroup", "GroupName": "default", "GroupDescription": "x"}, "InvalidParameterValue"),
        ({"Action": "CreateSecurityGroup", "GroupName": "sg-1", "GroupDescription": "x"}, "InvalidParameterValue"),
        ({"Action": "CreateSecurityGroup", "GroupName": "a;b", "GroupDescription": "x"}, "InvalidParameterValue"),
        ({"Action": "CreateSecurityGroup", "GroupName": "a", "GroupDescription": "x", "VpcId": "vpc-1"},
         "InvalidVpcID.NotFound"),
        ({"Action": "DeleteSecurityGroup", "GroupId": "sg-00000000"}, "CannotDelete"),
        ({"Action": "DeleteSecurityGroup", "GroupName": "default"}, "CannotDelete"),
        ({"Action": "DeleteSecurityGroup", "GroupId": "sg-x"}, "InvalidGroupId.Malformed"),
        ({"Action": "DeleteSecurityGroup", "GroupId": "sg-09999999"}, "InvalidGroup.NotFound"),
        ({"Action": "DeleteSecurityGroup", "GroupName": "nosuch"}, "InvalidGroup.NotFound"),
        ({"Action": "DeleteSecurityGroup"}, "MissingParameter"),
        ({"Action": "DescribeSecurityGroups", "Filter.1.Name": "nosuch", "Filter.1.Value.1": "x"},
         "InvalidParameterValue"),
        ({"Action": "DescribeSecurityGroups", "MaxResults": "5", "NextToken": "zzz"}, "InvalidPaginationToken"),
        ({"Action": "DescribeSecurityGroups", "MaxResults": "3"}, "InvalidParameterValue"),
        ({"Action": "AuthorizeSecurityGroupIngress", "GroupId": "sg-00000000", "IpProtocol": "tcp", "FromPort": "1",
          "ToPort": "2"}, "MissingParameter"),
        ({"Action": "AuthorizeSecurityGroupIngress", "GroupId": "sg-00000000", "IpProtocol": "tcp", "FromPort": "1",
          "ToPort": "2", "CidrIp": "1.0.0.0/8", "SourceSecurityGroupName": "web"}, "InvalidParameterValue"),
    ],
)  # fmt: skip
def test_client_mistakes_get_ec2_errors(stack, params, code):  # noqa: F811
    before = _all_groups(stack)
    status, root = signed_v2(stack, params)
    assert (status, root.findtext("Errors/Error/Code")) == (400, code)
    assert _all_groups(stack) == before


def test_another_users_group_is_invisible_and_untouchable(stack, ec2, bob):  # noqa: F811
    gid = ec2.create_security_group(GroupName="mine", Description="alice's")["GroupId"]
    assert gid not in [g["GroupId"] for g in bob.describe_security_groups()["SecurityGroups"]]
    assert "sg-00000000" in [g["GroupId"] for g in bob.describe_security_groups()["SecurityGroups"]]
    perm = [_perm("tcp", (22, 22), ["0.0.0.0/0"])]
    for call in (
        lambda: bob.describe_security_groups(GroupIds=[gid]),
        lambda: bob.authorize_security_group_ingress(GroupId=gid, IpPermissions=perm),
        lambda: bob.revoke_security_group_egress(GroupId=gid, IpPermissions=[ANY_OUT]),
        lambda: bob.delete_security_group(GroupId=gid),
        lambda: bob.delete_security_group(GroupName="mine"),
    ):
        assert _code(call) == "InvalidGroup.NotFound"
    # bob's own group of the same name is his
    bobs = bob.create_security_group(GroupName="mine", Description="bob's")["GroupId"]
    assert bobs != gid and _rules(stack, gid) == [ALL_OUT_STORED]
    bob.delete_security_group(GroupName="mine")
    assert _group(ec2, gid)["Description"] == "alice's"
    ec2.delete_security_group(GroupId=gid)


def test_a_dry_run_decides_and_changes_nothing(stack, ec2, bob):  # noqa: F811
    gid = ec2.create_security_group(GroupName="dry", Description="dry")["GroupId"]
    groups, rules = _all_groups(stack), _rules(stack, gid)
    perm = [_perm("tcp", (22, 22), ["0.0.0.0/0"])]
    allowed = ("DryRunOperation", 412)
    assert _dry(ec2.create_security_group, GroupName="dry2", Description="x") == allowed
    assert _dry(ec2.authorize_security_group_ingress, GroupId=gid, IpPermissions=perm) == allowed
    assert _dry(ec2.revoke_security_group_egress, GroupId=gid, IpPermissions=[ANY_OUT]) == allowed
    assert _dry(ec2.delete_security_group, GroupId=gid) == allowed
    assert _dry(ec2.describe_security_groups) == allowed
    # what the real call would refuse, the dry run refuses the same way
    assert _dry(ec2.revoke_security_group_ingress, GroupId=gid, IpPermissions=perm)[0] == "InvalidPermission.NotFound"
    assert _dry(bob.delete_security_group, GroupId=gid)[0] == "InvalidGroup.NotFound"
    assert (_all_groups(stack), _rules(stack, gid)) == (groups, rules)
    ec2.delete_security_group(GroupId=gid)


def test_a_group_in_use_cannot_be_deleted(stack, ec2):  # noqa: F811
    gid = ec2.create_security_group(GroupName="used", Description="used")["GroupId"]
    vnet = stack.demo.vnet
    stack.admin("one.vn.update", vnet, f'SECURITY_GROUPS="0,{int(gid[3:])}"', 1)  # the vnet's NICs get it
    try:
        run = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1,
                                MaxCount=1)  # fmt: skip
    finally:
        stack.admin("one.vn.update", vnet, 'SECURITY_GROUPS="0"', 1)
    iid = run["Instances"][0]["InstanceId"]
    vm = ET.fromstring(stack.admin("one.vm.info", int(iid[2:]), False))
    assert gid[3:].lstrip("0") in vm.findtext("TEMPLATE/NIC/SECURITY_GROUPS").split(",")
    assert _dry(ec2.delete_security_group, GroupId=gid)[0] == "DependencyViolation"
    assert _code(lambda: ec2.delete_security_group(GroupId=gid)) == "DependencyViolation"
    ec2.terminate_instances(InstanceIds=[iid])
    wait_for(ec2, "instance_terminated", [iid])
    ec2.delete_security_group(GroupId=gid)


def test_describe_filters_and_pages(stack, ec2):  # noqa: F811
    made = [
        ec2.create_security_group(GroupName=f"f{i}", Description=f"filter {i}",
                                  TagSpecifications=[{"ResourceType": "security-group",
                                                      "Tags": [{"Key": "n", "Value": str(i)}]}])["GroupId"]
        for i in range(6)
    ]  # fmt: skip
    ec2.authorize_security_group_ingress(GroupId=made[0], IpPermissions=[_perm("tcp", (22, 22), ["10.0.0.0/8"])])

    def found(*filters) -> list[str]:
        answer = ec2.describe_security_groups(Filters=[{"Name": n, "Values": v} for n, v in filters])
        return [g["GroupId"] for g in answer["SecurityGroups"]]

    assert found(("group-name", ["f1", "f2"])) == made[1:3]
    assert found(("description", ["filter ?"]), ("tag:n", ["3"])) == [made[3]]
    assert found(("ip-permission.from-port", ["22"])) == [made[0]]
    assert found(("ip-permission.cidr", ["10.*"]), ("ip-permission.protocol", ["tcp"])) == [made[0]]
    assert found(("egress.ip-permission.protocol", ["-1"]), ("tag-key", ["n"])) == made
    assert found(("owner-id", [str(stack.demo.uid)]), ("vpc-id", ["vpc-00000000"]), ("group-id", made[4:])) == made[4:]
    pages, token = [], None
    while True:
        answer = ec2.describe_security_groups(MaxResults=5, **({"NextToken": token} if token else {}))
        pages.append([g["GroupId"] for g in answer["SecurityGroups"]])
        token = answer.get("NextToken")
        if not token:
            break
    everything = [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]]
    assert everything[0] == "sg-00000000" and everything[-6:] == made
    assert [g for page in pages for g in page] == everything and len(pages) == -(-len(everything) // 5)
    for gid in made:
        ec2.delete_security_group(GroupId=gid)


def test_ansible_ec2_security_group(stack, tmp_path):  # noqa: F811
    """amazon.aws.ec2_security_group: create with rules, the same play again changes nothing, absent."""
    group = {"name": "ans-web", "description": "by ansible", "vpc_id": "vpc-00000000",
             "rules": [{"proto": "tcp", "ports": [22, 80], "cidr_ip": "10.0.0.0/8"},
                       {"proto": "udp", "from_port": 53, "to_port": 53, "cidr_ip": "0.0.0.0/0"}],
             }  # fmt: skip
    started = time.monotonic()
    made, again, gone, gone_again = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_security_group": group},
        {"amazon.aws.ec2_security_group": group},
        {"amazon.aws.ec2_security_group": {"name": "ans-web", "state": "absent"}},
        {"amazon.aws.ec2_security_group": {"name": "ans-web", "state": "absent"}},
    )
    assert made["changed"] and not again["changed"], again
    assert gone["changed"] and not gone_again["changed"]
    gid = made["group_id"]
    assert int(gid[3:]) not in _all_groups(stack)
    assert time.monotonic() - started < 60


# ---------------------------------------------------------------- review findings (fix-r1)


def _racing(*calls) -> None:
    """Run the calls at the same time, each from its own thread; every one must succeed."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        for done in [pool.submit(call) for call in calls]:
            done.result()


def test_concurrent_rule_and_tag_changes_are_all_kept(stack, ec2):  # noqa: F811
    """Each change reads the group and writes its whole template back: one at a time, none is lost."""
    gid = ec2.create_security_group(GroupName="raced", Description="raced")["GroupId"]

    def authorize(port: int):
        return lambda: ec2.authorize_security_group_ingress(
            GroupId=gid, IpPermissions=[_perm("tcp", (port, port), ["10.0.0.0/8"])]
        )

    def tag(i: int):
        return lambda: ec2.create_tags(Resources=[gid], Tags=[{"Key": f"k{i}", "Value": str(i)}])

    _racing(*(authorize(1000 + i) for i in range(12)))
    assert len(_rules(stack, gid)) == 1 + 12
    _racing(*(authorize(2000 + i) for i in range(10)), *(tag(i) for i in range(10)))
    assert len(_rules(stack, gid)) == 1 + 12 + 10
    assert json.loads(_oned(stack, gid).findtext("TEMPLATE/EC2_TAGS")) == {f"k{i}": str(i) for i in range(10)}
    ec2.delete_security_group(GroupId=gid)


@pytest.mark.parametrize(
    ("tags", "code"),
    [([{"Key": "aws:x", "Value": "v"}], "InvalidParameterValue"),
     ([{"Key": f"k{i}", "Value": ""} for i in range(60)], "TagLimitExceeded")],
)  # fmt: skip
def test_a_new_groups_tags_follow_ec2s_rules(stack, ec2, tags, code):  # noqa: F811
    before = _all_groups(stack)
    spec = [{"ResourceType": "security-group", "Tags": tags}]
    assert _code(lambda: ec2.create_security_group(GroupName="tagged", Description="x", TagSpecifications=spec)) == code
    assert _all_groups(stack) == before


def test_ec2_tags_written_in_opennebula_that_are_no_object_are_no_tags(stack, ec2):  # noqa: F811
    gid = ec2.create_security_group(GroupName="foreign-tags", Description="x")["GroupId"]
    stack.admin("one.secgroup.update", int(gid[3:]), 'EC2_TAGS = "[1]"', 1)
    assert "Tags" not in _group(ec2, gid)
    assert gid in [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]]
    ec2.create_tags(Resources=[gid], Tags=[{"Key": "k", "Value": "v"}])  # and the tags API starts afresh
    assert _group(ec2, gid)["Tags"] == [{"Key": "k", "Value": "v"}]
    ec2.delete_security_group(GroupId=gid)


def test_ids_and_names_are_bounded_and_each_group_is_listed_once(stack):  # noqa: F811
    def groups(params: list) -> tuple[int, list[str]]:
        status, root = signed_v2(stack, [("Action", "DescribeSecurityGroups"), *params], method="POST")
        return status, [el.text for el in root.iter() if el.tag.endswith("groupId")] or [error_code(root)]

    assert groups([("GroupId.1", "sg-0"), ("GroupId.2", "sg-00000000"), ("GroupName.1", "default")]) == (
        200, ["sg-00000000"])  # fmt: skip
    names = [(f"GroupName.{i}", "default") for i in range(1, 1001)]
    started = time.monotonic()
    assert groups(names) == (200, ["sg-00000000"])
    print(f"1000 GroupNames: {time.monotonic() - started:.2f} s")
    assert groups([*names, ("GroupName.1001", "default")]) == (400, ["InvalidParameterValue"])
    ids = [(f"GroupId.{i}", "sg-00000000") for i in range(1, 1002)]
    assert groups(ids) == (400, ["InvalidParameterValue"])


def test_an_empty_group_name_is_refused_as_ec2_does(stack):  # noqa: F811
    before = _all_groups(stack)
    status, root = signed_v2(stack, {"Action": "CreateSecurityGroup", "GroupName": "", "GroupDescription": "x"})
    assert (status, error_code(root)) == (400, "InvalidParameterValue")
    assert (
        root.findtext("Errors/Error/Message")
        == "Value () for parameter groupName is invalid. The value cannot be empty"
    )
    assert _all_groups(stack) == before


def test_an_ipsec_rule_made_in_opennebula_round_trips(stack, ec2):  # noqa: F811
    gid = ec2.create_security_group(GroupName="ipsec", Description="x")["GroupId"]
    rule = 'RULE = [ PROTOCOL = "IPSEC", RULE_TYPE = "inbound", IP = "10.5.0.0", SIZE = "256" ]'
    stack.admin("one.secgroup.update", int(gid[3:]), rule, 1)  # the group's one RULE now (a merge replaces them)
    assert _shown(_group(ec2, gid)["IpPermissions"]) == _shown([_perm("50", v4=["10.5.0.0/24"])])
    ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[_perm("50", v4=["10.5.0.0/24"])])
    assert _rules(stack, gid) == []
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[_perm("50", v4=["10.6.0.0/16"])])
    assert {"PROTOCOL": "IPSEC", "RULE_TYPE": "inbound", "IP": "10.6.0.0", "SIZE": "65536"} in _rules(stack, gid)
    ec2.delete_security_group(GroupId=gid)


def test_ipv4_any_is_stored_as_every_ipv4_address_and_round_trips(stack, ec2):  # noqa: F811
    """A rule without IP/SIZE is applied to IPv4 and IPv6 (iptables and ip6tables, OpenNebula's
    security_groups_iptables.rb): 0.0.0.0/0 is stored as the IPv4 range it names, and shown back as such."""
    gid = ec2.create_security_group(GroupName="v4-any", Description="x")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[_perm("tcp", (22, 22), ["0.0.0.0/0"])])
    assert _rules(stack, gid) == [
        ALL_OUT_STORED,
        {"PROTOCOL": "TCP", "RULE_TYPE": "inbound", "RANGE": "22:22", **ANY_V4},
    ]
    group = _group(ec2, gid)
    assert _shown(group["IpPermissions"]) == _shown([_perm("tcp", (22, 22), ["0.0.0.0/0"])])
    assert _shown(group["IpPermissionsEgress"]) == _shown([ANY_OUT])
    ec2.revoke_security_group_ingress(GroupId=gid, IpPermissions=[_perm("tcp", (22, 22), ["0.0.0.0/0"])])
    ec2.revoke_security_group_egress(GroupId=gid, IpPermissions=[ANY_OUT])
    assert _rules(stack, gid) == []
    ec2.delete_security_group(GroupId=gid)

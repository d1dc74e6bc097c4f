"""Key pairs (Create/Import/Describe/DeleteKeyPair, RunInstances KeyName) and the tags API
(Create/Delete/DescribeTags) on instances, images, security groups and key pairs, driven with boto3
against econe and onelite as processes. Keys are made here with ``cryptography`` and fingerprints
computed here, independently of the service, as EC2 documents them."""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import xml.etree.ElementTree as ET

import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

import demo

from .conftest import FIXTURES
from .test_econe_e2e import stack, start_file_templates, wait_for  # noqa: F401

# ---------------------------------------------------------------- helpers


def _code(call, **kw) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(**kw)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 412), e.value.response
    return e.value.response["Error"]["Code"]


def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _openssh(public_key) -> str:
    return public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _sha256_fingerprint(openssh: str) -> str:
    blob = base64.b64decode(openssh.split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _user_template(stack) -> dict:  # noqa: F811
    """The demo user's template as oned holds it, read as oneadmin."""
    root = ET.fromstring(stack.admin("one.user.info", stack.demo.uid, False))
    return {el.tag: el for el in root.find("TEMPLATE")}


def _vm_xml(stack, vmid: int) -> ET.Element:  # noqa: F811
    return ET.fromstring(stack.admin("one.vm.info", vmid, False))


@pytest.fixture(scope="module")
def ec2(stack):  # noqa: F811
    return stack.client()


def _run(ec2, stack, **extra) -> str:  # noqa: F811
    run = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1, **extra
    )
    return run["Instances"][0]["InstanceId"]


# ---------------------------------------------------------------- key pairs


def test_created_key_pairs_carry_ec2_fingerprints_and_the_private_key_is_not_kept(stack, ec2):  # noqa: F811
    made = ec2.create_key_pair(KeyName="made-rsa")
    assert made["KeyPairId"].startswith("key-") and len(made["KeyPairId"]) == 21
    private = serialization.load_pem_private_key(made["KeyMaterial"].encode(), None)
    assert isinstance(private, rsa.RSAPrivateKey) and private.key_size == 2048
    pkcs8 = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert made["KeyFingerprint"] == _colons(hashlib.sha1(pkcs8).digest())

    made_ed = ec2.create_key_pair(KeyName="made-ed", KeyType="ed25519")
    private_ed = serialization.load_ssh_private_key(made_ed["KeyMaterial"].encode(), None)
    assert isinstance(private_ed, ed25519.Ed25519PrivateKey)
    public_ed = _openssh(private_ed.public_key())
    assert made_ed["KeyFingerprint"] == _sha256_fingerprint(public_ed)

    pairs = ec2.describe_key_pairs(KeyNames=["made-rsa", "made-ed"], IncludePublicKey=True)["KeyPairs"]
    found = {k["KeyName"]: k for k in pairs}
    assert found["made-rsa"]["KeyType"] == "rsa" and found["made-ed"]["KeyType"] == "ed25519"
    assert found["made-rsa"]["PublicKey"] == _openssh(private.public_key())
    assert found["made-ed"]["PublicKey"] == public_ed
    assert found["made-ed"]["KeyFingerprint"] == made_ed["KeyFingerprint"]
    assert found["made-rsa"]["CreateTime"].year >= 2024
    assert "PublicKey" not in ec2.describe_key_pairs(KeyNames=["made-rsa"])["KeyPairs"][0]

    # oned holds one attribute per key pair, and nothing of the private keys
    template = _user_template(stack)
    attr = template["EC2_KEYPAIR_" + made["KeyPairId"][4:].upper()]
    assert attr.findtext("NAME") == "made-rsa" and attr.findtext("FINGERPRINT") == made["KeyFingerprint"]
    text = stack.admin("one.user.info", stack.demo.uid, False)
    logs = "".join(p.read_text() for p in stack.workdir.glob("econe-*"))  # its log and its output
    for material in (made["KeyMaterial"], made_ed["KeyMaterial"]):
        assert material.splitlines()[1] not in text and material.splitlines()[1] not in logs
    ec2.delete_key_pair(KeyName="made-rsa")
    ec2.delete_key_pair(KeyPairId=made_ed["KeyPairId"])
    assert ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": ["made-*"]}])["KeyPairs"] == []


def test_imported_keys_get_ec2_fingerprints(ec2):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = rsa_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ed_key = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    got = ec2.import_key_pair(KeyName="own-rsa", PublicKeyMaterial=(_openssh(rsa_key) + " me@host\n").encode())
    assert got["KeyFingerprint"] == _colons(hashlib.md5(der).digest())
    got_ed = ec2.import_key_pair(KeyName="own-ed", PublicKeyMaterial=ed_key.encode())
    assert got_ed["KeyFingerprint"] == _sha256_fingerprint(ed_key)
    pairs = ec2.describe_key_pairs(Filters=[{"Name": "key-type", "Values": ["ed25519"]}], IncludePublicKey=True)
    assert [(k["KeyName"], k["PublicKey"]) for k in pairs["KeyPairs"]] == [("own-ed", ed_key)]
    assert _code(ec2.import_key_pair, KeyName="own-ed", PublicKeyMaterial=ed_key.encode()) == "InvalidKeyPair.Duplicate"
    assert _code(ec2.create_key_pair, KeyName="own-rsa") == "InvalidKeyPair.Duplicate"
    ec2.delete_key_pair(KeyName="own-rsa")
    ec2.delete_key_pair(KeyName="own-ed")


@pytest.mark.parametrize(
    "material",
    [
        b"not a key",
        b"ssh-dss AAAAB3NzaC1kc3MAAACBAP== x",
        b"ssh-rsa AAAA",  # a blob cut short
        b"ssh-ed25519 !!!!",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        b"\xff\xfe",
        b"",
    ],
)
def test_anything_but_an_openssh_rsa_or_ed25519_public_key_is_invalid_key_format(ec2, material):
    assert _code(ec2.import_key_pair, KeyName="bad", PublicKeyMaterial=material) == "InvalidKey.Format"


@pytest.mark.parametrize(
    "kw, code",
    [
        ({"KeyName": "ppk", "KeyFormat": "ppk"}, "InvalidParameterValue"),
        ({"KeyName": "dsa", "KeyType": "dsa"}, "InvalidParameterValue"),
        ({"KeyName": "x" * 256}, "InvalidParameterValue"),
        ({"KeyName": "ünïcödé"}, "InvalidParameterValue"),
        ({"KeyName": ""}, "InvalidParameterValue"),
        ({"KeyName": "ends\\"}, "InvalidParameterValue"),  # oned could not store it exactly
        ({"KeyName": "t", "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "a"}]}]},
         "InvalidParameterValue"),
        ({"KeyName": "t", "TagSpecifications": [{"ResourceType": "key-pair", "Tags": [{"Key": "aws:x"}]}]},
         "InvalidParameterValue"),
    ],
)  # fmt: skip
def test_key_pair_mistakes_are_refused_and_nothing_is_stored(stack, ec2, kw, code):  # noqa: F811
    before = set(_user_template(stack))
    assert _code(ec2.create_key_pair, **kw) == code
    assert set(_user_template(stack)) == before


def test_describe_and_delete_key_pairs_as_ec2_does(ec2):
    one = ec2.create_key_pair(
        KeyName="find-me",
        KeyType="ed25519",
        TagSpecifications=[{"ResourceType": "key-pair", "Tags": [{"Key": "team", "Value": "ops"}]}],
    )
    assert one["Tags"] == [{"Key": "team", "Value": "ops"}]
    other = ec2.create_key_pair(KeyName="find-me-not", KeyType="ed25519")
    for name, values in [
        ("key-name", ["find-me"]),
        ("key-pair-id", [one["KeyPairId"]]),
        ("fingerprint", [one["KeyFingerprint"]]),
        ("tag:team", ["o*"]),
        ("tag-key", ["team"]),
    ]:
        found = ec2.describe_key_pairs(Filters=[{"Name": name, "Values": values}])["KeyPairs"]
        assert [k["KeyName"] for k in found] == ["find-me"], name
    assert ec2.describe_key_pairs(KeyPairIds=[other["KeyPairId"]])["KeyPairs"][0]["KeyName"] == "find-me-not"
    assert _code(ec2.describe_key_pairs, KeyNames=["no-such-key"]) == "InvalidKeyPair.NotFound"
    assert _code(ec2.describe_key_pairs, KeyPairIds=["key-0123456789abcdef0"]) == "InvalidKeyPair.NotFound"
    assert _code(ec2.describe_key_pairs, Filters=[{"Name": "no-such", "Values": ["x"]}]) == "InvalidParameterValue"
    assert _code(ec2.delete_key_pair) == "MissingParameter"
    ec2.delete_key_pair(KeyName="find-me")
    ec2.delete_key_pair(KeyName="find-me")  # as on EC2: deleting a missing key pair succeeds
    ec2.delete_key_pair(KeyPairId=other["KeyPairId"])
    assert _code(ec2.describe_key_pairs, KeyNames=["find-me"]) == "InvalidKeyPair.NotFound"


def test_racing_creates_of_one_name_make_one_key_pair(ec2):
    def create(_):
        try:
            return ec2.create_key_pair(KeyName="raced", KeyType="ed25519")["KeyPairId"]
        except botocore.exceptions.ClientError as e:
            return e.response["Error"]["Code"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(create, range(6)))
    made = [a for a in answers if a.startswith("key-")]
    assert len(made) == 1 and answers.count("InvalidKeyPair.Duplicate") == 5
    assert [k["KeyPairId"] for k in ec2.describe_key_pairs(KeyNames=["raced"])["KeyPairs"]] == made
    ec2.delete_key_pair(KeyName="raced")


def test_another_user_neither_sees_nor_deletes_a_key_pair(stack, ec2):  # noqa: F811
    mine = ec2.create_key_pair(KeyName="private-to-me", KeyType="ed25519")
    bob = stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())
    assert bob.describe_key_pairs()["KeyPairs"] == []
    bob.delete_key_pair(KeyPairId=mine["KeyPairId"])
    assert ec2.describe_key_pairs(KeyNames=["private-to-me"])["KeyPairs"][0]["KeyPairId"] == mine["KeyPairId"]
    bob_key = bob.create_key_pair(KeyName="private-to-me", KeyType="ed25519")  # names are unique per user
    assert bob_key["KeyPairId"] != mine["KeyPairId"]
    bob.delete_key_pair(KeyName="private-to-me")
    ec2.delete_key_pair(KeyName="private-to-me")


def test_run_instances_key_name_reaches_the_vm_context(stack, ec2):  # noqa: F811
    public = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    ec2.import_key_pair(KeyName="launch", PublicKeyMaterial=public.encode())
    iid = _run(ec2, stack, KeyName="launch", UserData="hello")
    vm = _vm_xml(stack, int(iid[2:]))
    assert vm.findtext("TEMPLATE/CONTEXT/SSH_PUBLIC_KEY") == public
    assert vm.findtext("TEMPLATE/CONTEXT/EC2_USER_DATA") == base64.b64encode(b"hello").decode()
    assert vm.findtext("USER_TEMPLATE/EC2_KEYNAME") == "launch"
    found = ec2.describe_instances(Filters=[{"Name": "key-name", "Values": ["launch"]}])["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == [iid]
    assert found[0]["Instances"][0]["KeyName"] == "launch"
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.delete_key_pair(KeyName="launch")


def _all_vm_ids(stack) -> set[int]:  # noqa: F811
    pool = ET.fromstring(stack.admin("one.vmpool.info", -2, -1, -1, -2))
    return {int(vm.findtext("ID")) for vm in pool.iter("VM")}


def test_a_missing_key_name_is_not_found_and_dry_run_checks_it(stack, ec2):  # noqa: F811
    before = _all_vm_ids(stack)
    assert _code(_run, ec2=ec2, stack=stack, KeyName="no-such-key") == "InvalidKeyPair.NotFound"
    assert _code(_run, ec2=ec2, stack=stack, KeyName="no-such-key", DryRun=True) == "InvalidKeyPair.NotFound"
    ec2.create_key_pair(KeyName="dry", KeyType="ed25519")
    assert _code(_run, ec2=ec2, stack=stack, KeyName="dry", DryRun=True) == "DryRunOperation"
    assert _all_vm_ids(stack) == before
    ec2.delete_key_pair(KeyName="dry")


def test_dry_run_of_key_pair_actions_changes_nothing(stack, ec2):  # noqa: F811
    ec2.create_key_pair(KeyName="stays", KeyType="ed25519")
    before = ET.tostring(ET.fromstring(stack.admin("one.user.info", stack.demo.uid, False)).find("TEMPLATE"))
    public = _openssh(ed25519.Ed25519PrivateKey.generate().public_key()).encode()
    assert _code(ec2.create_key_pair, KeyName="new", DryRun=True) == "DryRunOperation"
    assert _code(ec2.create_key_pair, KeyName="stays", DryRun=True) == "InvalidKeyPair.Duplicate"
    assert _code(ec2.import_key_pair, KeyName="new", PublicKeyMaterial=public, DryRun=True) == "DryRunOperation"
    assert _code(ec2.delete_key_pair, KeyName="stays", DryRun=True) == "DryRunOperation"
    pair = ec2.describe_key_pairs(KeyNames=["stays"])["KeyPairs"][0]["KeyPairId"]
    tags = [{"Key": "k", "Value": "v"}]
    assert _code(ec2.create_tags, Resources=[pair], Tags=tags, DryRun=True) == "DryRunOperation"
    assert _code(ec2.delete_tags, Resources=[pair], DryRun=True) == "DryRunOperation"
    after = ET.tostring(ET.fromstring(stack.admin("one.user.info", stack.demo.uid, False)).find("TEMPLATE"))
    assert after == before
    ec2.delete_key_pair(KeyName="stays")


# ---------------------------------------------------------------- tags


def _corpus() -> dict[str, str]:
    """Every value a real oned stored in the quoting corpus (tests/fixtures/oned-6.10.5), as tag values."""
    stored = sorted({case["stored"] for case in json.loads((FIXTURES / "template-quoting.json").read_text())
                     if case.get("stored") is not None})  # fmt: skip
    return {f"q{i:02d}": value for i, value in enumerate(stored)} | {'unicode-key ☃ "]\n': "😀"}


@pytest.fixture(scope="module")
def resources(stack, ec2, tmp_path_factory):  # noqa: F811
    """One taggable resource of each kind the demo user owns: instance, image, security group, key pair."""
    iid = _run(ec2, stack)
    disk = tmp_path_factory.mktemp("image") / "own.img"
    disk.write_bytes(b"\0" * 4096)
    body = f'NAME="{stack.cloud.name("tagged")}"\nTYPE="OS"\nPATH="{disk}"\nEC2_AMI="YES"\n'
    image = stack.admin("one.image.allocate", body, stack.cloud.datastore, False)
    demo.wait_ready(stack.admin, image)
    stack.admin("one.image.chown", image, stack.demo.uid, stack.demo.gid)
    group = stack.admin("one.secgroup.allocate", f'NAME="{stack.cloud.name("tagged")}"\n')
    stack.admin("one.secgroup.chown", group, stack.demo.uid, stack.demo.gid)
    key = ec2.create_key_pair(KeyName="tagged", KeyType="ed25519")["KeyPairId"]
    yield {"instance": iid, "image": f"ami-{image:08d}", "security-group": f"sg-{group:08d}",
           "key-pair": key}  # fmt: skip
    ec2.terminate_instances(InstanceIds=[iid])
    ec2.delete_key_pair(KeyPairId=key)
    stack.admin("one.image.delete", image, False)
    stack.admin("one.secgroup.delete", group)


def _described(ec2, rid: str) -> dict[str, str]:
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
    return {t["Key"]: t["Value"] for t in tags}


@pytest.mark.parametrize("kind", ["instance", "image", "security-group", "key-pair"])
def test_every_tag_value_of_the_quoting_corpus_round_trips_on_every_kind(stack, ec2, resources, kind):  # noqa: F811
    rid = resources[kind]
    corpus = _corpus()
    ec2.create_tags(Resources=[rid], Tags=[{"Key": k, "Value": v} for k, v in corpus.items()])
    assert _described(ec2, rid) == corpus
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
    assert {t["ResourceType"] for t in tags} == {kind}
    if kind == "instance":
        shown = ec2.describe_instances(InstanceIds=[rid])["Reservations"][0]["Instances"][0]["Tags"]
    elif kind == "image":
        shown = ec2.describe_images(ImageIds=[rid])["Images"][0]["Tags"]
    elif kind == "key-pair":
        shown = ec2.describe_key_pairs(KeyPairIds=[rid])["KeyPairs"][0]["Tags"]
    else:
        shown = [{"Key": k, "Value": v} for k, v in _secgroup_tags(stack, rid).items()]
    assert {t["Key"]: t["Value"] for t in shown} == corpus
    ec2.delete_tags(Resources=[rid])  # no Tag.N: every tag goes
    assert _described(ec2, rid) == {}


def _secgroup_tags(stack, rid: str) -> dict:  # noqa: F811
    body = ET.fromstring(stack.admin("one.secgroup.info", int(rid[3:]), False))
    return json.loads(body.findtext("TEMPLATE/EC2_TAGS"))


def test_describe_tags_names_a_resource_by_its_full_id(ec2, resources):
    iid = resources["instance"]
    ec2.create_tags(Resources=[f"i-{int(iid[2:])}"], Tags=[{"Key": "short", "Value": "id"}])
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [f"i-{int(iid[2:])}"]}])["Tags"]
    assert tags == [{"Key": "short", "ResourceId": iid, "ResourceType": "instance", "Value": "id"}]
    ec2.delete_tags(Resources=[iid])


def test_delete_tags_by_key_and_by_key_and_value(ec2, resources):
    rid = resources["image"]
    ec2.create_tags(Resources=[rid], Tags=[{"Key": k, "Value": v} for k, v in
                                           {"a": "1", "b": "2", "c": "", "d": "", "e": "5"}.items()])  # fmt: skip
    ec2.delete_tags(Resources=[rid], Tags=[{"Key": "a"}])  # any value
    ec2.delete_tags(Resources=[rid], Tags=[{"Key": "b", "Value": "not 2"}])  # another value: kept
    ec2.delete_tags(Resources=[rid], Tags=[{"Key": "c", "Value": ""}])  # the empty value: deleted
    ec2.delete_tags(Resources=[rid], Tags=[{"Key": "e", "Value": ""}])  # not empty: kept
    assert _described(ec2, rid) == {"b": "2", "d": "", "e": "5"}
    ec2.delete_tags(Resources=[rid])


def test_the_name_tag_renames_the_vm(stack, ec2, resources):  # noqa: F811
    rid = resources["instance"]
    ec2.create_tags(Resources=[rid], Tags=[{"Key": "Name", "Value": "web-1"}])
    assert _vm_xml(stack, int(rid[2:])).findtext("NAME") == "web-1"
    found = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["web-1"]}])["Reservations"]
    assert [i["InstanceId"] for r in found for i in r["Instances"]] == [rid]
    assert _code(ec2.create_tags, Resources=[rid], Tags=[{"Key": "Name", "Value": "a/b"}]) == "InvalidParameterValue"
    assert _described(ec2, rid) == {"Name": "web-1"}
    ec2.delete_tags(Resources=[rid])


@pytest.mark.parametrize(
    "tags, code",
    [
        ([{"Key": f"k{i}", "Value": ""} for i in range(51)], "TagLimitExceeded"),
        ([{"Key": "aws:owner", "Value": "x"}], "InvalidParameterValue"),
        ([{"Key": "k" * 129, "Value": "x"}], "InvalidParameterValue"),
        ([{"Key": "k", "Value": "v" * 257}], "InvalidParameterValue"),
        ([{"Key": "", "Value": "x"}], "InvalidParameterValue"),
        ([{"Key": "k", "Value": "ends\\"}], "InvalidParameterValue"),
        ([{"Key": "k", "Value": "a]]>b"}], "InvalidParameterValue"),
        ([{"Key": "k", "Value": "a\rb"}], "InvalidParameterValue"),
    ],
)
def test_tags_beyond_ec2s_limits_or_oneds_templates_are_refused(ec2, resources, tags, code):
    for rid in resources.values():
        assert _code(ec2.create_tags, Resources=[rid], Tags=tags) == code
        assert _described(ec2, rid) == {}


@pytest.mark.parametrize(
    "rid, code",
    [
        ("rtb-00000001", "InvalidID"),  # a route table: nothing here is one
        ("nothing", "InvalidID"),
        ("i-99999", "InvalidInstanceID.NotFound"),
        ("ami-99999", "InvalidAMIID.NotFound"),
        ("vol-99999", "InvalidVolume.NotFound"),
        ("snap-99999", "InvalidSnapshot.NotFound"),
        ("sg-99999", "InvalidGroup.NotFound"),
        ("key-0123456789abcdef0", "InvalidKeyPair.NotFound"),
    ],
)
def test_unknown_and_missing_resources(ec2, rid, code):
    assert _code(ec2.create_tags, Resources=[rid], Tags=[{"Key": "k", "Value": "v"}]) == code
    assert _code(ec2.delete_tags, Resources=[rid]) == code


def test_create_tags_on_several_resources_checks_them_all_first(ec2, resources):
    with pytest.raises(botocore.exceptions.ClientError):
        ec2.create_tags(Resources=[resources["image"], "i-99999"], Tags=[{"Key": "k", "Value": "v"}])
    assert _described(ec2, resources["image"]) == {}


def test_dry_run_of_tags_changes_nothing(stack, ec2, resources):  # noqa: F811
    for rid in resources.values():
        assert _code(ec2.create_tags, Resources=[rid], Tags=[{"Key": "k"}], DryRun=True) == "DryRunOperation"
        assert _described(ec2, rid) == {}
    bob = stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())
    code = _code(bob.create_tags, Resources=[resources["instance"]], Tags=[{"Key": "k"}], DryRun=True)
    assert code in ("UnauthorizedOperation", "InvalidInstanceID.NotFound")


def test_describe_tags_filters_and_pages(ec2, resources):
    for kind, rid in resources.items():
        ec2.create_tags(Resources=[rid], Tags=[{"Key": "kind", "Value": kind}, {"Key": "x", "Value": f"{kind}-x"}])
    everything = ec2.describe_tags()["Tags"]
    mine = [t for t in everything if t["ResourceId"] in resources.values()]
    assert len(mine) == 8
    by_type = ec2.describe_tags(Filters=[{"Name": "resource-type", "Values": ["key-pair", "image"]}])["Tags"]
    assert {t["ResourceId"] for t in by_type} >= {resources["key-pair"], resources["image"]}
    assert {t["ResourceType"] for t in by_type} <= {"key-pair", "image"}
    by_value = ec2.describe_tags(
        Filters=[{"Name": "key", "Values": ["kind"]}, {"Name": "value", "Values": ["*-group"]}]
    )
    assert [(t["ResourceId"], t["Value"]) for t in by_value["Tags"]] == [
        (resources["security-group"], "security-group")
    ]
    pages, token = [], None
    while True:
        page = ec2.describe_tags(MaxResults=5, **({"NextToken": token} if token else {}))
        pages.append(page["Tags"])
        token = page.get("NextToken")
        if not token:
            break
    assert [t for p in pages for t in p] == everything and all(len(p) <= 5 for p in pages)
    assert _code(ec2.describe_tags, MaxResults=4) == "InvalidParameterValue"
    assert _code(ec2.describe_tags, NextToken="garbage") == "InvalidPaginationToken"
    assert _code(ec2.describe_tags, Filters=[{"Name": "no-such", "Values": ["x"]}]) == "InvalidParameterValue"
    for rid in resources.values():
        ec2.delete_tags(Resources=[rid])


def test_images_show_their_tags_and_filter_on_them(ec2, resources):
    rid = resources["image"]
    ec2.create_tags(Resources=[rid], Tags=[{"Key": "os", "Value": "debian"}])
    assert [i["ImageId"] for i in ec2.describe_images(Filters=[{"Name": "tag:os", "Values": ["deb*"]}])["Images"]] == [
        rid
    ]
    assert [i["ImageId"] for i in ec2.describe_images(Filters=[{"Name": "tag-key", "Values": ["os"]}])["Images"]] == [
        rid
    ]
    assert ec2.describe_images(Filters=[{"Name": "tag:os", "Values": ["arch"]}])["Images"] == []
    ec2.delete_tags(Resources=[rid])


def test_file_templates_get_the_public_key_and_key_name(stack, ec2, tmp_path):  # noqa: F811
    template = (
        'CPU = "0.1"\nMEMORY = "64"\nDISK = [ IMAGE_ID = {{ img_id }} ]\n'
        f'NIC = [ NETWORK_ID = "{stack.demo.vnet}" ]\n'
        "CONTEXT = [ SSH_PUBLIC_KEY = {{ public_key }}, KEY = {{ key_name }} ]\n"
    )
    econe = start_file_templates(stack, tmp_path, {"m1.keyed": template})
    public = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    ec2.import_key_pair(KeyName='file "key"', PublicKeyMaterial=public.encode())
    try:
        client = stack.client(url=econe.url)
        run = client.run_instances(
            ImageId=f"ami-{stack.demo.image:08d}", InstanceType="m1.keyed", MinCount=1, MaxCount=1, KeyName='file "key"'
        )
        iid = run["Instances"][0]["InstanceId"]
        vm = _vm_xml(stack, int(iid[2:]))
        assert vm.findtext("TEMPLATE/CONTEXT/SSH_PUBLIC_KEY") == public
        assert vm.findtext("TEMPLATE/CONTEXT/KEY") == 'file "key"'
        assert run["Instances"][0]["KeyName"] == 'file "key"'
        client.terminate_instances(InstanceIds=[iid])
    finally:
        econe.stop()
        ec2.delete_key_pair(KeyName='file "key"')


def test_tagging_a_security_group_leaves_its_rules(stack, ec2):  # noqa: F811
    sg = ec2.create_security_group(GroupName="tag-rules", Description="rules stay")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="10.0.0.0/8")

    def rules() -> list[bytes]:
        body = ET.fromstring(stack.admin("one.secgroup.info", int(sg[3:]), False))
        return [ET.tostring(r) for r in body.iter("RULE")]

    before = rules()
    ec2.create_tags(Resources=[sg], Tags=[{"Key": "k", "Value": "v"}])
    ec2.delete_tags(Resources=[sg], Tags=[{"Key": "k"}])
    assert len(before) == 2 and rules() == before
    assert ec2.describe_security_groups(GroupIds=[sg])["SecurityGroups"][0].get("Tags", []) == []
    ec2.delete_security_group(GroupId=sg)


# ---------------------------------------------------------------- review findings (fix-r1)


def test_a_key_pair_with_a_created_no_clock_can_show_is_listed_from_1970(stack, ec2):  # noqa: F811
    """A user may write its own template (one.user.update): a CREATED that is no epoch second, or one
    past any date, is read as 0."""
    public = _openssh(ed25519.Ed25519PrivateKey.generate().public_key())
    made = {"key-0000000000000bad1": "²", "key-0000000000000bad2": "9" * 30}
    text = "\n".join(
        f'EC2_KEYPAIR_{kid[4:].upper()} = [ ID="{kid}", NAME="{kid}", PUBLIC_KEY="{public}", CREATED="{created}" ]'
        for kid, created in made.items()
    )
    stack.admin("one.user.update", stack.demo.uid, text, 1)
    try:
        pairs = ec2.describe_key_pairs(KeyPairIds=list(made))["KeyPairs"]
        assert [(k["KeyPairId"], k["CreateTime"].timestamp()) for k in pairs] == [(kid, 0) for kid in made]
    finally:
        for kid in made:
            ec2.delete_key_pair(KeyPairId=kid)
    assert not set(made) & {k["KeyPairId"] for k in ec2.describe_key_pairs()["KeyPairs"]}


@pytest.mark.parametrize("member", ["KeyName", "KeyPairId"])
def test_describe_key_pairs_names_at_most_1000(ec2, member):
    wanted = {"KeyName": "KeyNames", "KeyPairId": "KeyPairIds"}[member]
    assert _code(ec2.describe_key_pairs, **{wanted: [f"key-{i:017x}" for i in range(1001)]}) == "InvalidParameterValue"


def test_tags_change_at_most_1000_resources(ec2, resources):
    rids = [resources["image"]] * 1001
    assert _code(ec2.create_tags, Resources=rids, Tags=[{"Key": "k", "Value": "v"}]) == "InvalidParameterValue"
    assert _code(ec2.delete_tags, Resources=rids) == "InvalidParameterValue"
    assert _described(ec2, resources["image"]) == {}

"""econe-server and onelite as real processes, driven by real EC2 clients: boto3 (SigV4), the AWS
CLI, libcloud's Eucalyptus driver (SigV2), econe-upload, and hand-made requests for the errors."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import botocore.exceptions
import pyone
import pytest

import demo
from demo import _One
from econe.auth import v2_signature, v2_string_to_sign
from one import template as tpl

from .aws_play import play
from .cloud import Cloud
from .conftest import Econe, ec2_client, start_econe, start_onelite


@dataclass
class Stack:
    cloud: Cloud
    econe: Econe
    demo: demo.Demo
    workdir: Path
    bob: int  # the second user's id
    bob_name: str

    @property
    def admin(self) -> _One:
        return self.cloud.admin()

    def pyone_admin(self) -> pyone.OneServer:
        return pyone.OneServer(self.cloud.url, session=self.cloud.admin_session)

    def client(self, user: str | None = None, secret: str | None = None, url: str | None = None, **config):
        """boto3's EC2 client for the demo user (or *user*), on the stack's econe (or the one at *url*)."""
        return ec2_client(url or self.econe.url, user or self.demo.user, secret or self.demo.secret, **config)


@pytest.fixture(scope="module")
def stack(module_cloud, tmp_path_factory):
    cloud = module_cloud
    work = tmp_path_factory.mktemp("stack")
    d = demo.provision(
        cloud.url,
        cloud.admin_session,
        str(work),
        user=cloud.name("ec2user"),
        group=cloud.name("ec2"),
        prefix=cloud.prefix,
        host=cloud.host,
        datastore=cloud.datastore,
        cluster=cloud.cluster,
    )
    bob_name = cloud.name("bob")  # a second user of the same group
    bob = demo.add_user(cloud.url, cloud.admin_session, bob_name, "bobpw", d.gid)
    econe = start_econe(
        work, cloud.url, cloud.server_auth, max_upload_size=8 * 1024 * 1024, datastore_id=cloud.datastore
    )
    yield Stack(cloud, econe, d, work, bob, bob_name)
    econe.stop()


def start_file_templates(stack: Stack, workdir: Path, templates: dict[str, str]) -> Econe:
    """An econe in file-template mode on the stack's cloud: *templates* maps each instance type to its
    Jinja2 text, written as ``<type>.j2`` in *workdir*."""
    for name, text in templates.items():
        (workdir / f"{name}.j2").write_text(text)
    return start_econe(
        workdir,
        stack.cloud.url,
        stack.cloud.server_auth,
        use_file_templates=True,
        template_dir=str(workdir),
        instance_types={name: {"template": f"{name}.j2"} for name in templates},
    )


def wait_for(client, name: str, ids: list[str]):
    config = {"Delay": 0.2, "MaxAttempts": 300}  # a minute: a real oned's scheduler places VMs every few seconds
    client.get_waiter(name).wait(InstanceIds=ids, WaiterConfig=config)


def signed_v2(
    stack: Stack, params: dict | list, secret: str | None = None, when: float | None = None, method: str = "GET"
) -> tuple[int, ET.Element]:
    """A SigV2 request built by hand, for the cases real clients cannot be made to send (*params* as
    pairs may repeat a name)."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    base = {
        "Version": "2016-11-15",
        "AWSAccessKeyId": stack.demo.user,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when or time.time())),
    }
    pairs = [(k, v) for k, v in base.items() if k not in dict(pairs)] + pairs
    host = f"127.0.0.1:{stack.econe.port}"
    pairs.append(("Signature", v2_signature(secret or stack.demo.secret, v2_string_to_sign(method, host, "/", pairs))))
    query = urlencode(pairs)
    req = urllib.request.Request(
        f"{stack.econe.url}/?{query}" if method == "GET" else f"{stack.econe.url}/",
        data=None if method == "GET" else query.encode(),
        method=method,
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, ET.fromstring(r.read())
    except urllib.error.HTTPError as e:
        return e.code, ET.fromstring(e.read())


def error_code(root: ET.Element) -> str:
    return root.findtext("Errors/Error/Code")


# ---------------------------------------------------------------- boto3 (SigV4)


def test_boto3_lifecycle_of_two_instances(stack):
    ec2 = stack.client()
    run = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}",
        InstanceType=stack.demo.itype,
        MinCount=2,
        MaxCount=2,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web"}, {"Key": "tier", "Value": "a"}]}
        ],
    )
    ids = [i["InstanceId"] for i in run["Instances"]]
    assert len(ids) == 2 and all(i.startswith("i-") and len(i) == 10 for i in ids)
    assert {i["State"]["Name"] for i in run["Instances"]} == {"pending"}
    wait_for(ec2, "instance_running", ids)
    found = ec2.describe_instances(InstanceIds=ids)["Reservations"]
    instances = [i for r in found for i in r["Instances"]]
    assert len(found) == 1 and sorted(i["InstanceId"] for i in instances) == sorted(ids)
    for i in instances:
        assert i["State"] == {"Code": 16, "Name": "running"}
        assert i["PrivateIpAddress"].startswith("10.0.0.")
        assert i["InstanceType"] == stack.demo.itype and i["ImageId"] == f"ami-{stack.demo.image:08d}"
        assert {t["Key"]: t["Value"] for t in i["Tags"]} == {"Name": "web", "tier": "a"}
        assert i["Placement"]["AvailabilityZone"] == "opennebula"
    assert sorted(i["AmiLaunchIndex"] for i in instances) == [0, 1]
    tagged = ec2.describe_instances(
        Filters=[{"Name": "tag:tier", "Values": ["a"]}, {"Name": "instance-state-name", "Values": ["running"]}]
    )
    assert sorted(i["InstanceId"] for r in tagged["Reservations"] for i in r["Instances"]) == sorted(ids)
    gone = ec2.terminate_instances(InstanceIds=ids)["TerminatingInstances"]
    assert {g["PreviousState"]["Name"] for g in gone} == {"running"}
    assert {g["CurrentState"]["Name"] for g in gone} <= {"shutting-down", "terminated"}
    wait_for(ec2, "instance_terminated", ids)


def test_client_token_makes_runinstances_idempotent_even_when_racing(stack):
    from concurrent.futures import ThreadPoolExecutor

    def run(_):
        return stack.client().run_instances(
            ImageId=f"ami-{stack.demo.image:08d}",
            InstanceType=stack.demo.itype,
            MinCount=1,
            MaxCount=1,
            ClientToken="tok-123",
        )

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(run, range(4)))
    assert len({a["Instances"][0]["InstanceId"] for a in answers}) == 1
    ec2 = stack.client()
    ec2.terminate_instances(InstanceIds=[answers[0]["Instances"][0]["InstanceId"]])


def test_describe_images_register_and_pagination(stack):
    ec2 = stack.client()
    images = ec2.describe_images()["Images"]
    # the demo AMI, and no other that is not public (a real cloud may publish AMIs of its own)
    assert [i["ImageId"] for i in images if not i["Public"]] == [f"ami-{stack.demo.image:08d}"]
    assert {i["ImageId"]: i["State"] for i in images}[f"ami-{stack.demo.image:08d}"] == "available"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.describe_images(ImageIds=["ami-00009999"])
    assert e.value.response["Error"]["Code"] == "InvalidAMIID.NotFound"
    run = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=7, MaxCount=7
    )
    ids = [i["InstanceId"] for i in run["Instances"]]
    pages = list(ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 5}))
    seen = [i["InstanceId"] for p in pages for r in p["Reservations"] for i in r["Instances"]]
    assert len(pages) >= 2 and set(ids) <= set(seen) and len(seen) == len(set(seen))
    ec2.terminate_instances(InstanceIds=ids)


# ---------------------------------------------------------------- the other clients


def test_aws_cli(stack):
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": stack.demo.user,
        "AWS_SECRET_ACCESS_KEY": stack.demo.secret,
        "AWS_DEFAULT_REGION": "opennebula",
        "AWS_CONFIG_FILE": "/dev/null",
    }
    aws = [str(Path(sys.executable).with_name("aws")), "--endpoint-url", stack.econe.url, "--output", "json", "ec2"]
    images = json.loads(
        subprocess.run([*aws, "describe-images"], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert f"ami-{stack.demo.image:08d}" in [i["ImageId"] for i in images["Images"]]
    run = json.loads(
        subprocess.run(
            [
                *aws,
                "run-instances",
                "--image-id",
                f"ami-{stack.demo.image:08d}",
                "--instance-type",
                stack.demo.itype,
                "--count",
                "1",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    vm = run["Instances"][0]["InstanceId"]
    described = json.loads(
        subprocess.run(
            [*aws, "describe-instances", "--instance-ids", vm], env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    assert described["Reservations"][0]["Instances"][0]["InstanceId"] == vm
    failed = subprocess.run(
        [*aws, "describe-instances", "--instance-ids", "i-0000zzzz"], env=env, capture_output=True, text=True
    )
    assert failed.returncode != 0 and "InvalidInstanceID.Malformed" in failed.stderr
    subprocess.run([*aws, "terminate-instances", "--instance-ids", vm], env=env, capture_output=True, check=True)


def test_libcloud_eucalyptus_driver_sigv2(stack):
    from libcloud.compute.base import NodeSize
    from libcloud.compute.drivers.ec2 import EucNodeDriver

    driver = EucNodeDriver(
        stack.demo.user, stack.demo.secret, secure=False, host="127.0.0.1", port=stack.econe.port, path="/"
    )
    images = driver.list_images()
    images = [i for i in images if i.id == f"ami-{stack.demo.image:08d}"]
    assert len(images) == 1
    size = NodeSize(stack.demo.itype, stack.demo.itype, 128, 1, None, None, driver)
    node = driver.create_node(name="lc-node", image=images[0], size=size)
    assert node.name == "lc-node" and node.private_ips
    assert node.id in [n.id for n in driver.list_nodes()]
    assert driver.destroy_node(node) is True


def test_ansible_amazon_aws_modules(stack, tmp_path):
    """Ansible's own amazon.aws collection: zones, the AMI, an instance found by id and by tag, and
    its termination with ec2_instance."""
    ec2 = stack.client()
    vm = _run_one(
        ec2, stack, TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "ans"}]}]
    )
    wait_for(ec2, "instance_running", [vm["InstanceId"]])
    ami, iid = f"ami-{stack.demo.image:08d}", vm["InstanceId"]
    results = play(
        stack,
        tmp_path,
        {"amazon.aws.aws_az_info": {}},
        {"amazon.aws.ec2_ami_info": {"image_ids": [ami]}},
        {"amazon.aws.ec2_instance_info": {"instance_ids": [iid]}},
        {"amazon.aws.ec2_instance_info": {"filters": {"tag:role": "ans"}}},
        {"amazon.aws.ec2_instance": {"instance_ids": [iid], "state": "terminated", "wait": False}},
    )
    zones, amis, by_id, by_tag, gone = results
    assert [z["zone_name"] for z in zones["availability_zones"]] == ["opennebula"]
    assert [i["image_id"] for i in amis["images"]] == [ami]
    assert [(i["instance_id"], i["state"]["name"]) for i in by_id["instances"]] == [(iid, "running")]
    assert [i["instance_id"] for i in by_tag["instances"]] == [iid]
    assert gone["changed"] and gone["terminate_success"] == [iid]
    wait_for(ec2, "instance_terminated", [iid])


def test_econe_upload_registers_an_image_and_leaves_no_file(stack, tmp_path):
    disk = tmp_path / "disk.raw"
    disk.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("econe-upload")),
            str(disk),
            "-K",
            stack.demo.user,
            "-S",
            stack.demo.secret,
            "-U",
            stack.econe.url + "/",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    ami = done.stdout.strip()
    assert ami.startswith("ami-")
    image = stack.client().describe_images(ImageIds=[ami])["Images"][0]
    assert image["State"] == "available"
    assert list((stack.workdir / "tmp").iterdir()) == []
    wrong = subprocess.run(
        [
            str(Path(sys.executable).with_name("econe-upload")),
            str(disk),
            "-K",
            stack.demo.user,
            "-S",
            "wrong",
            "-U",
            stack.econe.url + "/",
        ],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0 and "AuthFailure" in wrong.stderr


# ---------------------------------------------------------------- errors


def test_a_captured_sigv4_request_cannot_carry_another_body(stack):
    """The attack: a signed DescribeRegions, with the X-Amz-Content-SHA256 header it was signed with,
    resent with a TerminateInstances body. The body must be the one signed."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    vm = _run_one(stack.client(), stack)["InstanceId"]
    signed_body = "Action=DescribeRegions&Version=2016-11-15"
    req = botocore.awsrequest.AWSRequest(
        "POST", f"{stack.econe.url}/", data=signed_body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                 "X-Amz-Content-SHA256": hashlib.sha256(signed_body.encode()).hexdigest()},
    )  # fmt: skip
    creds = botocore.credentials.Credentials(stack.demo.user, stack.demo.secret)
    botocore.auth.SigV4Auth(creds, "ec2", "opennebula").add_auth(req)
    attack = f"Action=TerminateInstances&Version=2016-11-15&InstanceId.1={vm}".encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in req.headers.items() if k.lower() != "content-length")
    status, root = _raw_post(
        stack.econe.port,
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{stack.econe.port}\r\n{head}Content-Length: {len(attack)}\r\n"
        "Connection: close\r\n\r\n".encode(),
        attack,
    )
    assert 400 <= status < 500 and error_code(root) in ("AuthFailure", "XAmzContentSHA256Mismatch"), status
    state = _instances(stack.client().describe_instances(InstanceIds=[vm]))[0]["State"]["Name"]
    assert state in ("pending", "running")
    stack.client().terminate_instances(InstanceIds=[vm])


def test_bad_and_stale_signatures(stack):
    status, root = signed_v2(stack, {"Action": "DescribeInstances"}, secret="not-the-secret")
    assert (status, error_code(root)) == (401, "AuthFailure")
    status, root = signed_v2(stack, {"Action": "DescribeInstances", "AWSAccessKeyId": "nobody"})
    assert (status, error_code(root)) == (401, "AuthFailure")
    status, root = signed_v2(stack, {"Action": "DescribeInstances"}, when=time.time() - 3600)
    assert (status, error_code(root)) == (400, "RequestExpired")
    status, root = signed_v2(stack, {"Action": "DescribeInstances"})
    assert status == 200 and root.tag.endswith("DescribeInstancesResponse")
    assert root.tag == "{http://ec2.amazonaws.com/doc/2016-11-15/}DescribeInstancesResponse"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        stack.client(secret="0" * 64).describe_instances()
    assert e.value.response["Error"]["Code"] == "AuthFailure"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401


def test_presigned_sigv4_query(stack):
    url = stack.client().generate_presigned_url("describe_regions", Params={}, ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert b"opennebula" in r.read()


@pytest.mark.parametrize("body", ["form", "multipart"])
def test_a_presigned_url_cannot_carry_a_body(stack, body):
    """The attack: a presigned TerminateInstances URL for one instance, POSTed with a body naming
    another one. A presigned URL signs its query only: a body is refused and nothing is done."""
    ec2 = stack.client()
    mine, other = (_run_one(ec2, stack)["InstanceId"] for _ in range(2))
    url = ec2.generate_presigned_url("terminate_instances", Params={"InstanceIds": [mine]}, ExpiresIn=60)
    path = url.split(str(stack.econe.port), 1)[1]
    if body == "form":
        payload, ctype = f"InstanceId.1={other}".encode(), "application/x-www-form-urlencoded"
    else:
        payload = (f'--b\r\nContent-Disposition: form-data; name="InstanceId.1"\r\n\r\n{other}\r\n--b--\r\n').encode()
        ctype = "multipart/form-data; boundary=b"
    status, root = _raw_post(
        stack.econe.port,
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.econe.port}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode(),
        payload,
    )
    assert 400 <= status < 500, (status, error_code(root))
    listed = _instances(ec2.describe_instances(InstanceIds=[mine, other]))
    assert {i["State"]["Name"] for i in listed} <= {"pending", "running"}, listed
    ec2.terminate_instances(InstanceIds=[mine, other])


RUN = {
    "Action": "RunInstances",
    "ImageId": "ami-00000000",
    "InstanceType": "m1.small",
    "MinCount": "1",
    "MaxCount": "1",
}


@pytest.mark.parametrize(
    "params, status, code",
    [
        ({"Action": "NoSuchThing"}, 400, "InvalidAction"),
        ({}, 400, "MissingParameter"),
        ({"Action": "DescribeInstances", "InstanceId.1": "i-12x"}, 400, "InvalidInstanceID.Malformed"),
        ({"Action": "DescribeInstances", "InstanceId.1": "i-00999999"}, 400, "InvalidInstanceID.NotFound"),
        ({"Action": "TerminateInstances", "InstanceId.1": "i-00999999"}, 400, "InvalidInstanceID.NotFound"),
        ({"Action": "DescribeImages", "ImageId.1": "ami-x"}, 400, "InvalidAMIID.Malformed"),
        ({"Action": "DescribeInstances", "Bogus": "1"}, 400, "UnknownParameter"),
        # hostile shapes: a Version that would inject into the answer's xmlns, a Unicode digit as
        # index or number (int() takes them), an id with a trailing newline
        ({"Action": "DescribeRegions", "Version": '2016-11-15"><Injected/>'}, 400, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "InstanceId.\u00b2": "i-00000001"}, 400, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "MaxResults": "\u0665"}, 400, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "InstanceId.1": "i-00000001\n"}, 400, "InvalidInstanceID.Malformed"),
        # characters XML 1.0 cannot carry, anywhere: oned would refuse them (a 500), or an answer
        # would carry them (and no client could parse it)
        (
            {"Action": "DescribeInstances", "Filter.1.Name": "tag:x", "Filter.1.Value.1": "\x0b"},
            400,
            "InvalidParameterValue",
        ),
        (
            {**RUN, "ClientToken": "tok\x01"},
            400,
            "InvalidParameterValue",
        ),
        (
            {
                **RUN,
                "TagSpecification.1.ResourceType": "instance",
                "TagSpecification.1.Tag.1.Key": "k",
                "TagSpecification.1.Tag.1.Value": "\uffff",
            },
            400,
            "InvalidParameterValue",
        ),
        ({"Action": "DescribeRegions", "Region\x02Name.1": "x"}, 400, "InvalidParameterValue"),
        # EC2's limits, which bound what one request may cost
        (
            {
                "Action": "DescribeInstances",
                "Filter.1.Name": "tag:x",
                **{f"Filter.1.Value.{i}": "v" for i in range(1, 202)},
            },
            400,
            "FilterLimitExceeded",
        ),
        (
            {"Action": "DescribeInstances", "Filter.1.Name": "tag:x", "Filter.1.Value.1": "v" * 256},
            400,
            "InvalidParameterValue",
        ),
        (
            {"Action": "DescribeInstances", **{f"InstanceId.{i}": f"i-{i:08d}" for i in range(1, 1002)}},
            400,
            "InvalidParameterValue",
        ),
        (
            {
                **RUN,
                "ClientToken": "t" * 65,
            },
            400,
            "InvalidParameterValue",
        ),
        (
            {**RUN, "ClientToken": "t\u00f6k"},
            400,
            "InvalidParameterValue",
        ),
        (
            {
                **RUN,
                "TagSpecification.1.ResourceType": "instance",
                "TagSpecification.1.Tag.1.Key": "k" * 129,
                "TagSpecification.1.Tag.1.Value": "v",
            },
            400,
            "InvalidParameterValue",
        ),
        (
            {**RUN, "MinCount": "101", "MaxCount": "101"},
            400,
            "InstanceLimitExceeded",
        ),
        # numbers int() refuses with an exception (more than 4,300 digits)
        ({"Action": "DescribeInstances", "MaxResults": "9" * 5000}, 400, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", f"InstanceId.{'9' * 5000}": "i-00000001"}, 400, "InvalidParameterValue"),
        ({"Action": "DescribeInstances", "MaxResults": "ten"}, 400, "InvalidParameterValue"),
        (
            {"Action": "DescribeInstances", "Filter.1.Name": "nope", "Filter.1.Value.1": "x"},
            400,
            "InvalidParameterValue",
        ),
        (
            {k: v for k, v in RUN.items() if k != "MaxCount"},
            400,
            "MissingParameter",
        ),
        (
            {**RUN, "InstanceType": "x9.huge"},
            400,
            "InvalidParameterValue",
        ),
        (
            {**RUN, "MinCount": "3", "MaxCount": "2"},
            400,
            "InvalidParameterValue",
        ),
        (
            {
                "Action": "RunInstances",
                "ImageId": "ami-00009999",
                "InstanceType": "m1.small",
                "MinCount": "1",
                "MaxCount": "1",
            },
            400,
            "InvalidAMIID.NotFound",
        ),
        (
            {**RUN, "UserData": 'not"base64\nMEMORY=1'},
            400,
            "InvalidParameterValue",
        ),
        (
            {**RUN, "KernelId": "aki-1"},
            400,
            "InvalidParameter",
        ),
    ],
)
def test_client_mistakes_get_ec2_errors(stack, params, status, code):
    ami = f"ami-{stack.demo.image:08d}"  # the image and type that exist: only the mistake is wrong
    mine = {"ami-00000000": ami, "m1.small": stack.demo.itype}  # the cloud's own names
    got, root = signed_v2(stack, {k: mine.get(v, v) for k, v in params.items()})
    assert (got, error_code(root)) == (status, code), ET.tostring(root)
    assert root.findtext("RequestID")


def test_a_second_user_can_neither_see_nor_touch_the_first_ones_instances(stack):
    alice, bob = stack.client(), stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())
    vm = alice.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1
    )["Instances"][0]["InstanceId"]
    listed = [i["InstanceId"] for r in bob.describe_instances()["Reservations"] for i in r["Instances"]]
    assert vm not in listed
    for call in (lambda: bob.describe_instances(InstanceIds=[vm]), lambda: bob.terminate_instances(InstanceIds=[vm])):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    state = alice.describe_instances(InstanceIds=[vm])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("pending", "running")
    alice.terminate_instances(InstanceIds=[vm])


def test_hostile_values_cannot_add_template_attributes(stack):
    ec2 = stack.client()
    hostile = 'x"\nMEMORY="999999"\nCONTEXT=[ A="b" ]\n#'
    raw_user_data = '"]\nMEMORY=1\n'
    run = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}",
        InstanceType=stack.demo.itype,
        MinCount=1,
        MaxCount=1,
        UserData=raw_user_data,
        ClientToken=hostile,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": hostile, "Value": hostile}]}],
    )
    vmid = int(run["Instances"][0]["InstanceId"][2:])
    vm = stack.pyone_admin().vm.info(vmid)
    assert vm.TEMPLATE["MEMORY"] == "128"
    assert vm.USER_TEMPLATE["EC2_CLIENT_TOKEN"] == hostile
    assert json.loads(vm.USER_TEMPLATE["EC2_TAGS"]) == {hostile: hostile}
    assert vm.TEMPLATE["CONTEXT"]["EC2_USER_DATA"] == base64.b64encode(raw_user_data.encode()).decode()
    ec2.terminate_instances(InstanceIds=[run["Instances"][0]["InstanceId"]])


# tag values a real oned 6.10.5 stored changed, or lost, before the escaper was held to it
HARD_TAGS = {
    "backslash": "a\\b",
    "escaped-quote": 'a\\"b',
    "injection": 'x\\" CPU=\\"64',
    "backslash-n": "a\\nb",
    "quote-last": 'q"',
    "unicode": "ünïcödé ☃ 😀",
    "multi-line": "first\nsecond\n  third",
    "json": '{"json": "v\\"x", "list": [1, "]"]}',
}


def _all_vm_ids(stack) -> set[int]:
    """Every VM of the demo user, DONE ones too, as oned lists them."""
    pool = stack.pyone_admin().vmpool.info(stack.demo.uid, -1, -1, -2)
    return {vm.ID for vm in getattr(pool, "VM", [])}


def test_tag_values_come_back_exactly(stack):
    ec2 = stack.client()
    tags = [{"Key": k, "Value": v} for k, v in HARD_TAGS.items()]
    run = ec2.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}",
        InstanceType=stack.demo.itype,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
    )
    iid = run["Instances"][0]["InstanceId"]
    found = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert {t["Key"]: t["Value"] for t in found["Tags"]} == HARD_TAGS
    vm = stack.pyone_admin().vm.info(int(iid[2:]))
    assert json.loads(vm.USER_TEMPLATE["EC2_TAGS"]) == HARD_TAGS
    assert set(vm.USER_TEMPLATE) == {
        "EC2_CLIENT_TOKEN",  # boto3 sends one of its own
        "EC2_CLIENT_REQUEST",  # with it, a digest of what was asked (IdempotentParameterMismatch)
        "EC2_IMAGE_ID",
        "EC2_INSTANCE_TYPE",
        "EC2_LAUNCH_INDEX",
        "EC2_RESERVATION_ID",
        "EC2_TAGS",
        "SCHED_REQUIREMENTS",  # the instance type's placement, which oned keeps in the user template
    }  # nothing a value could have added
    assert vm.TEMPLATE["CPU"] != "64"
    ec2.terminate_instances(InstanceIds=[iid])


@pytest.mark.parametrize(
    "value, reason",
    [
        ("ends\\", "it ends with a backslash"),
        ("a]]>b", "it contains ]]>"),
        ("a\rb", "it contains a carriage return"),
    ],
    ids=["trailing-backslash", "cdata-close", "carriage-return"],
)
def test_tag_values_oned_cannot_store_are_refused(stack, value, reason):
    ec2 = stack.client()
    before = _all_vm_ids(stack)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.run_instances(
            ImageId=f"ami-{stack.demo.image:08d}",
            InstanceType=stack.demo.itype,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": [{"Key": "ok", "Value": "fine"}, {"Key": "bad", "Value": value}]}
            ],
        )
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert e.value.response["Error"]["Message"] == (
        f"Value for TagSpecification.1.Tag.2.Value cannot be stored in an OpenNebula template: {reason}"
    )
    assert _all_vm_ids(stack) == before


def upload_fields(stack, action: str = "UploadImage", secret: str | None = None, **extra) -> list[tuple[str, str]]:
    """The fields econe-upload sends, SigV2-signed (the file is not part of the signature)."""
    params = {
        **extra,
        "Action": action,
        "Version": "2016-11-15",
        "AWSAccessKeyId": stack.demo.user,
        "SignatureVersion": "2",
        "SignatureMethod": "HmacSHA256",
        "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    host = f"127.0.0.1:{stack.econe.port}"
    to_sign = v2_string_to_sign("POST", host, "/", list(params.items()))
    return [*params.items(), ("Signature", v2_signature(secret or stack.demo.secret, to_sign))]


def _multipart_head(stack, boundary: str, **extra) -> bytes:
    fields = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in upload_fields(stack, **extra)
    )
    return fields + f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'.encode()


def _raw_post(port: int, headers: bytes, body: bytes = b"") -> tuple[int, ET.Element]:
    """Send a request on a plain socket and read the answer even if the server stops reading early."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(headers)
        with contextlib.suppress(OSError):  # the server may refuse before reading it all
            sock.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), ET.fromstring(payload)


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_oversized_upload_is_refused_and_leaves_nothing(stack):
    boundary = "b0undary"
    head, tail = _multipart_head(stack, boundary), f"\r\n--{boundary}--\r\n".encode()

    def request(length: int) -> bytes:
        return (
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
            b"Content-Length: %d\r\n\r\n" % (stack.econe.port, boundary.encode(), length)
        )

    # announced too large: refused before a byte of the body is read
    status, root = _raw_post(stack.econe.port, request(64 * 1024 * 1024))
    assert (status, error_code(root)) == (413, "RequestEntityTooLarge")
    # a file part larger than max_upload_size inside an acceptable body: refused while streaming
    body = head + b"\0" * (8 * 1024 * 1024 + 100) + tail
    status, root = _raw_post(stack.econe.port, request(len(body)), body)
    assert (status, error_code(root)) == (413, "RequestEntityTooLarge")
    assert list((stack.workdir / "tmp").iterdir()) == []


def test_client_disconnect_during_upload_leaves_no_file(stack):
    boundary = "b0undary"
    head = _multipart_head(stack, boundary)
    sock = socket.create_connection(("127.0.0.1", stack.econe.port))
    sock.sendall(
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
        b"Content-Length: %d\r\n\r\n" % (stack.econe.port, boundary.encode(), len(head) + 5 * 1024 * 1024)
    )
    sock.sendall(head + b"\1" * (2 * 1024 * 1024))
    deadline = time.time() + 10
    while not list((stack.workdir / "tmp").iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    assert len(list((stack.workdir / "tmp").iterdir())) == 1  # the upload is streamed to disk as it arrives
    sock.close()
    deadline = time.time() + 10
    while list((stack.workdir / "tmp").iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    assert list((stack.workdir / "tmp").iterdir()) == []
    assert stack.client().describe_regions()["Regions"][0]["RegionName"] == "opennebula"


@pytest.mark.onelite_only("it stops and restarts oned")
def test_oned_going_away_is_unavailable_and_the_service_carries_on(tmp_path):
    one = start_onelite(tmp_path / "one", interval=0.1)
    d = demo.provision(one.url, one.admin_session, str(tmp_path))
    econe = start_econe(tmp_path, one.url, one.data / "ec2_auth")
    try:
        ec2 = ec2_client(econe.url, d.user, d.secret, retries={"max_attempts": 1})
        assert ec2.describe_instances()["Reservations"] == []
        one.stop()
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ec2.describe_instances()
        assert e.value.response["Error"]["Code"] == "Unavailable"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        one = start_onelite(tmp_path / "one", port=one.port, interval=0.1)
        assert ec2.describe_instances()["Reservations"] == []
        assert econe.proc.poll() is None
    finally:
        assert econe.stop() == 0
        one.stop()
    assert "Traceback" not in econe.log.read_text()


def _pinned(stack) -> tuple[str, str]:
    """Keeps a VM on the demo's host: on a real oned the group may manage every host of its VDC."""
    return ("SCHED_REQUIREMENTS", f'ID="{stack.demo.host}"')


def _instance_type(stack, name: str, first_ip: str, size: int, *attrs) -> int:
    """A VM template for the ec2 group, instance type *name* (after the cloud's prefix), on a vnet of
    its own of *size* addresses; its id."""
    one = stack.admin
    vnet = one(
        "one.vn.allocate",
        tpl.serialize(
            [
                ("NAME", stack.cloud.name(f"{name}-net")),
                ("BRIDGE", "br1"),
                ("VN_MAD", "dummy"),
                ("AR", [("TYPE", "IP4"), ("IP", first_ip), ("SIZE", str(size))]),
            ]
        ),
        stack.cloud.cluster,
    )
    one("one.vn.chown", vnet, -1, stack.demo.gid)
    one("one.vn.chmod", vnet, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    demo.wait_ready(one, vnet, "vnet")  # a real oned's VN driver creates it after oned answers
    template = one(
        "one.template.allocate",
        tpl.serialize(
            [
                ("NAME", stack.cloud.name(name)),
                ("CPU", "0.1"),
                ("MEMORY", "32"),
                ("EC2_INSTANCE_TYPE", stack.cloud.name(name)),
                ("NIC", [("NETWORK_ID", str(vnet))]),
                _pinned(stack),
                *attrs,
            ]
        ),
    )
    one("one.template.chown", template, -1, stack.demo.gid)
    one("one.template.chmod", template, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    return template


def test_min_count_not_met_removes_what_was_made(stack):
    _instance_type(stack, "t2.pair", "10.9.0.1", 2)  # the third VM cannot get a lease
    itype = stack.cloud.name("t2.pair")
    ec2 = stack.client(retries={"total_max_attempts": 1})
    before = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    with pytest.raises(botocore.exceptions.ClientError) as e:  # one try: boto3 would retry a 500
        ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=itype, MinCount=3, MaxCount=3)
    assert e.value.response["Error"]["Code"] == "InsufficientInstanceCapacity"
    after = [
        i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"] if i["InstanceId"] not in before
    ]
    assert len(after) == 2 and all(i["State"]["Name"] in ("shutting-down", "terminated") for i in after)
    wait_for(ec2, "instance_terminated", [i["InstanceId"] for i in after])  # DONE gives the leases back
    made = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=itype, MinCount=1, MaxCount=3)
    made = made["Instances"]
    assert len(made) == 2  # as many as MinCount allows, not more than the vnet holds
    ec2.terminate_instances(InstanceIds=[i["InstanceId"] for i in made])


def test_file_template_instance_types(stack, tmp_path):
    template = (
        'NAME = {{ instance_type }}\nCPU = "0.2"\nMEMORY = "96"\nDISK = [ IMAGE_ID = {{ img_id }} ]\n'
        'NIC = [ NETWORK_ID = "VNET" ]\nCONTEXT = [ EC2_USER_DATA = {{ user_data }} ]\n'
        'OS = [ ARCH = "aarch64" ]\nSCHED_REQUIREMENTS = "ID=\\"HOST\\""\n'.replace(
            "VNET", str(stack.demo.vnet)
        ).replace("HOST", str(stack.demo.host))
    )
    econe = start_file_templates(stack, tmp_path, {"m1.file": template})
    try:
        ec2 = stack.client(url=econe.url)
        run = ec2.run_instances(
            ImageId=f"ami-{stack.demo.image:08d}", InstanceType="m1.file", MinCount=1, MaxCount=1, UserData="hello"
        )
        vm = run["Instances"][0]
        assert (vm["InstanceType"], vm["Architecture"]) == ("m1.file", "aarch64")
        rendered = stack.pyone_admin().vm.info(int(vm["InstanceId"][2:]))
        assert (rendered.TEMPLATE["CPU"], rendered.TEMPLATE["MEMORY"]) == ("0.2", "96")
        assert rendered.TEMPLATE["CONTEXT"]["EC2_USER_DATA"] == base64.b64encode(b"hello").decode()  # boto3 encodes
        wait_for(ec2, "instance_running", [vm["InstanceId"]])
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ec2.run_instances(
                ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1
            )
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
        ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])
    finally:
        econe.stop()


def test_config_mistake_stops_the_server_with_file_key_and_reason(tmp_path):
    conf = tmp_path / "econe.conf"
    conf.write_text(":port: abc\n")
    auth = tmp_path / "ec2_auth"
    auth.write_text("serveradmin:x\n")
    done = subprocess.run(
        [sys.executable, "-m", "econe.server", "-c", str(conf), "run"],
        capture_output=True,
        text=True,
        env={**os.environ, "ONE_CIPHER_AUTH": str(auth)},
    )
    assert done.returncode == 2
    assert "econe.conf: :port: must be an integer 1-65535, got 'abc'" in done.stderr


# ---------------------------------------------------------------- helpers for the sections below


@pytest.fixture(scope="module")
def ec2(stack):
    """ec2user's client, shared by the cases below (a client costs tens of milliseconds to make)."""
    return stack.client()


@pytest.fixture(scope="module")
def bob(stack):
    return stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())


def _code(call) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def _instances(answer: dict) -> list[dict]:
    return [i for r in answer["Reservations"] for i in r["Instances"]]


def _run_one(ec2, stack, itype: str | None = None, **extra) -> dict:
    itype = itype or stack.demo.itype
    run = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=itype, MinCount=1, MaxCount=1, **extra)
    return run["Instances"][0]


# ---------------------------------------------------------------- Stop, Start, Reboot


def _history_actions(stack, vmid: int) -> list[int]:
    """The ACTION oned wrote on each history record of the VM (VMActions: 19 poweroff, 20 poweroff-hard)."""
    root = ET.fromstring(stack.admin("one.vm.info", vmid))
    return [int(h.findtext("ACTION")) for h in root.iterfind("HISTORY_RECORDS/HISTORY")]


def _running(stack, ec2, vm: str) -> None:
    """Wait for running as a client does; oned must then be RUNNING too (BOOT is pending), or the
    stop and reboot that follow would be refused."""
    wait_for(ec2, "instance_running", [vm])
    assert ET.fromstring(stack.admin("one.vm.info", int(vm[2:]))).findtext("LCM_STATE") == "3"


def test_stop_start_reboot_as_a_client_and_oned_see_them(stack, ec2):
    vm = _run_one(ec2, stack)["InstanceId"]
    _running(stack, ec2, vm)
    stopping = ec2.stop_instances(InstanceIds=[vm], Hibernate=False)["StoppingInstances"][0]
    assert (stopping["PreviousState"]["Name"], stopping["CurrentState"]["Name"]) == ("running", "stopping")
    wait_for(ec2, "instance_stopped", [vm])
    starting = ec2.start_instances(InstanceIds=[vm])["StartingInstances"][0]
    assert (starting["PreviousState"]["Name"], starting["CurrentState"]["Name"]) == ("stopped", "pending")
    _running(stack, ec2, vm)
    ec2.reboot_instances(InstanceIds=[vm])
    assert _instances(ec2.describe_instances(InstanceIds=[vm]))[0]["State"]["Name"] == "running"
    forced = ec2.stop_instances(InstanceIds=[vm], Force=True)["StoppingInstances"][0]
    assert forced["CurrentState"]["Name"] == "stopping"
    wait_for(ec2, "instance_stopped", [vm])
    # the plain stop closed the first record with poweroff, Force the second with poweroff-hard, and
    # the reboot wrote none: as oned did in the captures (set 1 poweroff: 19; set 2 reboot, then poweroff-hard: 20)
    assert _history_actions(stack, int(vm[2:])) == [19, 20]
    assert _code(lambda: ec2.stop_instances(InstanceIds=[vm], Hibernate=True)) == "UnsupportedOperation"
    ec2.terminate_instances(InstanceIds=[vm])
    wait_for(ec2, "instance_terminated", [vm])
    assert _code(lambda: ec2.stop_instances(InstanceIds=[vm])) == "IncorrectInstanceState"


# ---------------------------------------------------------------- DescribeInstances filters


@pytest.fixture(scope="module")
def pair(stack, ec2):
    """Two running instances of ec2user: "made" by econe (tag tier=abc, a client token), and
    "legacy", made by the user through oned with EC2_KEYNAME, as econe 5.12 made them."""
    made = _run_one(
        ec2,
        stack,
        ClientToken="flt-token",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "tier", "Value": "abc"}]}],
    )["InstanceId"]
    user = _One(stack.cloud.url, f"{stack.demo.user}:{stack.demo.password}")
    legacy = user(
        "one.vm.allocate",
        tpl.serialize(
            [
                ("NAME", "legacy"),
                ("CPU", "0.1"),
                ("MEMORY", "32"),
                ("DISK", [("IMAGE_ID", str(stack.demo.image))]),
                ("NIC", [("NETWORK_ID", str(stack.demo.vnet))]),
                ("EC2_KEYNAME", "oldkey"),
                _pinned(stack),
            ]
        ),
        False,
    )
    ids = {"made": made, "legacy": f"i-{legacy:08d}"}
    wait_for(ec2, "instance_running", list(ids.values()))
    found = {i["InstanceId"]: i for i in _instances(ec2.describe_instances(InstanceIds=list(ids.values())))}
    yield {name: found[vm] for name, vm in ids.items()}
    ec2.terminate_instances(InstanceIds=list(ids.values()))


BOTH = {"made", "legacy"}
FILTER_CASES = [
    # (filter, its values given the pair, which of the pair match)
    ("instance-id", lambda p: [p["made"]["InstanceId"]], {"made"}),
    ("instance-id", lambda p: ["i-0999999?"], set()),
    ("image-id", lambda p: [p["made"]["ImageId"]], BOTH),  # legacy's is read from its DISK
    ("image-id", lambda p: ["ami-09999999"], set()),
    ("instance-type", lambda p: ["*m1.*"], {"made"}),  # the cloud's prefix, if any, comes first
    ("instance-type", lambda p: ["m1.large"], set()),
    ("instance-state-name", lambda p: ["running"], BOTH),
    ("instance-state-name", lambda p: ["pending", "stopped"], set()),
    ("instance-state-code", lambda p: ["16"], BOTH),
    ("instance-state-code", lambda p: ["80"], set()),
    ("private-ip-address", lambda p: [p["legacy"]["PrivateIpAddress"]], {"legacy"}),
    ("private-ip-address", lambda p: ["10.0.0.*"], BOTH),
    ("private-ip-address", lambda p: ["192.168.?.*"], set()),
    ("client-token", lambda p: ["flt-token"], {"made"}),
    ("client-token", lambda p: ["*"], {"made"}),  # no token matches no pattern
    ("client-token", lambda p: ["other"], set()),
    ("key-name", lambda p: ["old*"], {"legacy"}),
    ("key-name", lambda p: ["newkey"], set()),
    ("availability-zone", lambda p: ["opennebula"], BOTH),
    ("availability-zone", lambda p: ["us-east-1a"], set()),
    ("tag-key", lambda p: ["tier"], {"made"}),
    ("tag-key", lambda p: ["Tier"], set()),
    ("tag:tier", lambda p: ["a?c"], {"made"}),
    ("tag:tier", lambda p: ["ab"], set()),
]


@pytest.mark.parametrize(
    "name, values, expected", FILTER_CASES, ids=[f"{c[0]}-{'match' if c[2] else 'none'}" for c in FILTER_CASES]
)
def test_describe_instances_filters(ec2, pair, name, values, expected):
    found = _instances(ec2.describe_instances(Filters=[{"Name": name, "Values": values(pair)}]))
    ids = {i["InstanceId"] for i in found}
    assert {which for which, i in pair.items() if i["InstanceId"] in ids} == expected


def test_a_private_instance_answers_opennebulas_values(stack, ec2, pair):
    made, legacy = pair["made"], pair["legacy"]
    assert made["PrivateIpAddress"].startswith("10.0.0.") and "PublicIpAddress" not in made  # not routable
    assert made["PrivateDnsName"] == made["PublicDnsName"] == ""
    assert made["Architecture"] == "x86_64"  # m1.small has no OS/ARCH: the documented constant
    assert (legacy["KeyName"], legacy["ImageId"]) == ("oldkey", f"ami-{stack.demo.image:08d}")
    owners = {r["OwnerId"] for r in ec2.describe_instances()["Reservations"]}
    assert owners == {str(stack.demo.uid)}


def test_a_terminated_instance_keeps_no_private_address(stack, ec2):
    vm = _run_one(ec2, stack)
    ec2.terminate_instances(InstanceIds=[vm["InstanceId"]])
    wait_for(ec2, "instance_terminated", [vm["InstanceId"]])
    gone = _instances(ec2.describe_instances(InstanceIds=[vm["InstanceId"]]))[0]
    assert "PrivateIpAddress" not in gone and "PublicIpAddress" not in gone
    matching = ec2.describe_instances(Filters=[{"Name": "private-ip-address", "Values": [vm["PrivateIpAddress"]]}])
    assert vm["InstanceId"] not in {i["InstanceId"] for i in _instances(matching)}


def test_architecture_and_public_address_come_from_opennebula(stack, ec2):
    # 8.8.4.0/24 is globally routable (ipaddress' is_global); private and documentation
    # blocks such as 10/8 or 192.0.2.0/24 are not, and never give a PublicIpAddress
    template = _instance_type(stack, "a1.public", "8.8.4.10", 4, ("OS", [("ARCH", "aarch64")]))
    made = _run_one(ec2, stack, stack.cloud.name("a1.public"))
    user = _One(stack.cloud.url, f"{stack.demo.user}:{stack.demo.password}")
    outside = f"i-{user('one.template.instantiate', template, '', False, '', False):08d}"  # as Sunstone would
    ids = [made["InstanceId"], outside]
    wait_for(ec2, "instance_running", ids)
    by_id = _instances(ec2.describe_instances(InstanceIds=ids))  # one.vm.info
    listed = [i for i in _instances(ec2.describe_instances()) if i["InstanceId"] in ids]  # the short pool answer
    assert len(by_id) == len(listed) == 2
    for i in (made, *by_id, *listed):
        assert i["Architecture"] == "aarch64"
        assert i["PublicIpAddress"] == i["PrivateIpAddress"] and i["PublicIpAddress"].startswith("8.8.4.")
        assert i["PrivateDnsName"] == i["PublicDnsName"] == ""
    ec2.terminate_instances(InstanceIds=ids)


# ---------------------------------------------------------------- images: RegisterImage, Owner.N, ExecutableUsers

PRIVATE = (1, 1, 0, 0, 0, 0, 0, 0, 0)  # the owner only


@pytest.fixture(scope="module")
def images(stack):
    """Images made by the admin and handed out, by label. bob registers and lists them, so that
    ec2user's AMI listing, which the tests above count, stays as it was."""

    def image(name: str, owner: int, mode: tuple, *attrs) -> int:
        body = [("NAME", stack.cloud.name(name)), ("TYPE", "DATABLOCK"), ("SIZE", "1"), *attrs]
        oid = stack.admin("one.image.allocate", tpl.serialize(body), stack.cloud.datastore, False)
        stack.admin("one.image.chown", oid, owner, -1)
        stack.admin("one.image.chmod", oid, *mode)
        return oid

    return {
        "bob": image("bob-disk", stack.bob, PRIVATE, ("ARCH", "aarch64")),
        "bob_ami": image("bob-ami", stack.bob, PRIVATE, ("EC2_AMI", "YES")),
        "alice": image("alice-disk", stack.demo.uid, PRIVATE),
        "volume": image("bob-volume", stack.bob, PRIVATE, ("EBS_VOLUME", "YES")),
        "snapshot": image("bob-snapshot", stack.bob, PRIVATE, ("EBS_SNAPSHOT", "YES")),
        "public": image(
            "public-disk", stack.cloud.admin_id, (1, 1, 0, 0, 0, 0, 1, 0, 0), ("OS", [("ARCH", "ppc64le")])
        ),
        "demo": stack.demo.image,  # the admin's, usable by the ec2 group
    }


def _ami(oid: int) -> str:
    return f"ami-{oid:08d}"


def _template_of_image(stack, oid: int) -> ET.Element:
    return ET.fromstring(stack.admin("one.image.info", oid, False)).find("TEMPLATE")


def test_register_image_marks_the_image_in_opennebula(stack, bob, images):
    ami = _ami(images["bob"])
    assert bob.register_image(ImageLocation=ami, Name="ignored", Description="my disk")["ImageId"] == ami
    held = _template_of_image(stack, images["bob"])
    assert (held.findtext("EC2_AMI"), held.findtext("DESCRIPTION")) == ("YES", "my disk")
    listed = {i["ImageId"]: i for i in bob.describe_images()["Images"]}
    assert listed[ami]["Description"] == "my disk" and listed[ami]["Name"] == stack.cloud.name("bob-disk")
    assert (listed[ami]["Architecture"], listed[ami]["OwnerId"], listed[ami]["Public"]) == (
        "aarch64",
        str(stack.bob),
        False,
    )


@pytest.mark.parametrize(
    "location, code",
    [
        (None, "MissingParameter"),
        ("ami-zz", "InvalidAMIID.Malformed"),
        ("ami-09999999", "InvalidAMIID.NotFound"),
        ("alice", "InvalidAMIID.NotFound"),  # another user's image is as absent as a missing one
        ("volume", "InvalidParameterValue"),
        ("snapshot", "InvalidParameterValue"),
    ],
)
def test_register_image_refusals(stack, bob, images, location, code):
    params = {"ImageLocation": _ami(images[location]) if location in images else location}
    assert _code(lambda: bob.register_image(Name="refused", **{k: v for k, v in params.items() if v})) == code
    if location in images:
        assert _template_of_image(stack, images[location]).findtext("EC2_AMI") is None


@pytest.mark.parametrize(
    "owners, expected",
    [
        (["self"], {"bob_ami"}),
        (["{bob}"], {"bob_ami"}),
        (["{bob_name}"], {"bob_ami"}),  # a user name, as images carry UNAME
        (["{alice}"], set()),  # ec2user shares no AMI with bob
        (["self", "{admin}"], {"bob_ami", "demo"}),
        (["{admin_name}"], {"demo"}),
        (["amazon"], set()),
    ],
)
def test_describe_images_owners(stack, bob, images, owners, expected):
    names = {"bob": stack.bob, "alice": stack.demo.uid, "admin": stack.cloud.admin_id}
    names |= {"bob_name": stack.bob_name, "admin_name": stack.cloud.admin_name}
    wanted = [o.format(**names) for o in owners]
    found = {i["ImageId"]: i["OwnerId"] for i in bob.describe_images(Owners=wanted)["Images"]}
    labels = {label for label, oid in images.items() if _ami(oid) in found}
    assert labels & {"bob_ami", "demo"} == expected
    # nothing else slips in: every image listed belongs to one of the owners asked for
    ids = {"self": str(stack.bob), "{bob}": str(stack.bob), "{bob_name}": str(stack.bob)}
    ids |= {"{admin}": str(stack.cloud.admin_id), "{admin_name}": str(stack.cloud.admin_id)}
    assert set(found.values()) <= {ids[o] for o in owners if o in ids}
    owner_ids = {"bob_ami": str(stack.bob), "demo": str(stack.cloud.admin_id)}
    assert all(found[_ami(images[label])] == owner_ids[label] for label in expected)


def test_image_and_instance_owner_ids_agree(stack, ec2, images, pair):
    # ec2user: its instances' reservations and its own image
    image = ec2.describe_images(ImageIds=[_ami(images["alice"])])["Images"][0]
    reservations = ec2.describe_instances(InstanceIds=[pair["made"]["InstanceId"]])["Reservations"]
    assert image["OwnerId"] == reservations[0]["OwnerId"] == str(stack.demo.uid)


@pytest.mark.parametrize(
    "users, expected",
    [
        (["self"], {"bob_ami", "demo", "public"}),  # all bob may launch: his own, his group's, the public one
        (["{bob}"], {"bob_ami", "demo", "public"}),
        (["all"], {"public"}),
    ],
)
def test_describe_images_executable_users(stack, bob, images, users, expected):
    asked = [_ami(images[label]) for label in ("bob_ami", "demo", "public")]
    wanted = [u.format(bob=stack.bob) for u in users]
    found = {i["ImageId"]: i for i in bob.describe_images(ImageIds=asked, ExecutableUsers=wanted)["Images"]}
    assert {label for label, oid in images.items() if _ami(oid) in found} == expected
    public = found[_ami(images["public"])]
    assert public["Public"] is True and public["Architecture"] == "ppc64le"


@pytest.mark.parametrize("user", ["{alice}", "123456789012"])
def test_describe_images_refuses_other_accounts_as_executable_users(stack, bob, user):
    wanted = [user.format(alice=stack.demo.uid)]
    assert _code(lambda: bob.describe_images(ExecutableUsers=wanted)) == "InvalidParameterValue"


# ---------------------------------------------------------------- DescribeAvailabilityZones


def test_describe_availability_zones(ec2):
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    assert [(z["ZoneName"], z["State"], z["RegionName"]) for z in zones] == [("opennebula", "available", "opennebula")]
    named = ec2.describe_availability_zones(ZoneNames=["opennebula"])["AvailabilityZones"]
    assert [z["ZoneName"] for z in named] == ["opennebula"]
    assert _code(lambda: ec2.describe_availability_zones(ZoneNames=["us-east-1a"])) == "InvalidParameterValue"


# ---------------------------------------------------------------- DryRun: decide, change nothing


def _dry(call, **params) -> tuple[str, int]:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call(DryRun=True, **params)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _oned_view(stack, vmid: int) -> tuple:
    """What any action would change in oned: the states and the history records."""
    root = ET.fromstring(stack.admin("one.vm.info", vmid))
    return root.findtext("STATE"), root.findtext("LCM_STATE"), len(root.findall("HISTORY_RECORDS/HISTORY"))


def test_a_dry_run_decides_and_changes_nothing(stack, ec2):
    vm = _run_one(ec2, stack)["InstanceId"]
    _running(stack, ec2, vm)
    before, vms = _oned_view(stack, int(vm[2:])), _all_vm_ids(stack)
    allowed = ("DryRunOperation", 412)
    for call in (ec2.terminate_instances, ec2.stop_instances, ec2.reboot_instances, ec2.start_instances):
        assert _dry(call, InstanceIds=[vm]) == allowed, call  # start: running already, still allowed
    run = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": stack.demo.itype, "MinCount": 2, "MaxCount": 2}
    assert _dry(ec2.run_instances, **run) == allowed
    assert _dry(ec2.describe_instances) == _dry(ec2.describe_images) == _dry(ec2.describe_regions) == allowed
    # what the real call would refuse, a dry run refuses the same way, before deciding
    assert (
        _code(lambda: ec2.terminate_instances(InstanceIds=["i-09999999"], DryRun=True)) == "InvalidInstanceID.NotFound"
    )
    assert (
        _code(lambda: ec2.run_instances(**{**run, "InstanceType": "x9.none"}, DryRun=True)) == "InvalidParameterValue"
    )
    time.sleep(0.5)  # what an action had started would show by now
    assert (_oned_view(stack, int(vm[2:])), _all_vm_ids(stack)) == (before, vms)
    ec2.terminate_instances(InstanceIds=[vm])


def test_a_dry_run_answers_unauthorized_where_oned_would_refuse(stack, ec2, bob):
    """bob sees ec2user's VM (its group may use it) but may not manage it: the dry run and the real
    call both answer UnauthorizedOperation, and the VM lives on."""
    vm = _run_one(ec2, stack)["InstanceId"]
    stack.admin("one.vm.chmod", int(vm[2:]), 1, 1, 0, 1, 0, 0, 0, 0, 0)  # 640
    _running(stack, ec2, vm)
    assert _dry(bob.terminate_instances, InstanceIds=[vm]) == ("UnauthorizedOperation", 403)
    assert _code(lambda: bob.terminate_instances(InstanceIds=[vm])) == "UnauthorizedOperation"
    assert _instances(ec2.describe_instances(InstanceIds=[vm]))[0]["State"]["Name"] == "running"
    assert _dry(ec2.terminate_instances, InstanceIds=[vm]) == ("DryRunOperation", 412)  # its owner may
    ec2.terminate_instances(InstanceIds=[vm])


def test_a_dry_run_without_the_create_right_is_unauthorized(stack, tmp_path):
    """carol's group has no CREATE rule; the image and the instance type are public: only the right
    to create VMs is missing, and the dry run says so as the real call does."""
    template = _instance_type(stack, "p1.public", "10.7.0.1", 2)
    stack.admin("one.template.chmod", template, 1, 1, 0, 1, 0, 0, 1, 0, 0)  # 644
    public = stack.admin(
        "one.image.allocate", tpl.serialize([("NAME", stack.cloud.name("p1-image")), ("TYPE", "DATABLOCK"),
                                             ("SIZE", "1")]), stack.cloud.datastore, False,
    )  # fmt: skip
    stack.admin("one.image.chmod", public, 1, 1, 0, 0, 0, 0, 1, 0, 0)
    gid = stack.admin("one.group.allocate", stack.cloud.name("nocreate"))
    carol = stack.cloud.name("carol")
    demo.add_user(stack.cloud.url, stack.cloud.admin_session, carol, "carolpw", gid)
    client = stack.client(carol, hashlib.sha256(b"carolpw").hexdigest())
    deadline = time.time() + 5  # econe re-reads the users for an unknown name at most once a second
    while _dry(client.describe_regions)[0] == "AuthFailure" and time.time() < deadline:
        time.sleep(0.2)
    run = {"ImageId": f"ami-{public:08d}", "InstanceType": stack.cloud.name("p1.public"), "MinCount": 1, "MaxCount": 1}
    assert _dry(client.run_instances, **run) == ("UnauthorizedOperation", 403)
    assert _code(lambda: client.run_instances(**run)) == "UnauthorizedOperation"
    assert _instances(client.describe_instances()) == []


# ---------------------------------------------------------------- what a request may cost


def test_max_count_is_capped_at_the_configured_limit(stack, tmp_path):
    """As EC2 does: MaxCount beyond the limit makes as many as the limit allows, MinCount beyond it nothing."""
    capped = start_econe(tmp_path, stack.cloud.url, stack.cloud.server_auth, max_count=2)
    try:
        ec2 = stack.client(url=capped.url)
        before = _all_vm_ids(stack)
        run = {"ImageId": f"ami-{stack.demo.image:08d}", "InstanceType": stack.demo.itype}
        assert _code(lambda: ec2.run_instances(**run, MinCount=3, MaxCount=5)) == "InstanceLimitExceeded"
        assert _all_vm_ids(stack) == before
        made = [i["InstanceId"] for i in ec2.run_instances(**run, MinCount=1, MaxCount=5)["Instances"]]
        assert len(made) == 2
        ec2.terminate_instances(InstanceIds=made)
    finally:
        capped.stop()


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_hostile_filters_do_not_grow_the_server(stack, ec2):
    """500 requests, each with 50 distinct filter patterns of EC2's longest: econe's memory stays
    bounded (patterns are compiled per request, not cached for the life of the server)."""
    vm = _run_one(ec2, stack)["InstanceId"]  # an instance whose id every pattern is matched against
    ec2.describe_instances()  # the first listing's own allocations are not the attack's
    before = _rss_mib(stack.econe.proc.pid)
    for n in range(500):
        values = [f"{n:03d}{i:02d}*" + "x" * 248 + "?" for i in range(50)]
        assert _instances(ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": values}])) == []
    grown = _rss_mib(stack.econe.proc.pid) - before
    ec2.terminate_instances(InstanceIds=[vm])
    assert grown < 50, f"RSS grew by {grown:.0f} MiB"


def test_a_repeated_dry_run_is_read_once_and_changes_nothing(stack, ec2):
    """The attack: DryRun=false, then DryRun=true. The flag the session acted on and the one the
    answer reported were read from different copies: the instance was terminated, and the answer
    said it was a dry run."""
    vm = _run_one(ec2, stack)["InstanceId"]
    _running(stack, ec2, vm)
    for flags in (("false", "true"), ("true", "true")):
        pairs = [("Action", "TerminateInstances"), ("InstanceId.1", vm), *(("DryRun", f) for f in flags)]
        status, root = signed_v2(stack, pairs)
        assert (status, error_code(root)) == (412, "DryRunOperation")
        assert _instances(ec2.describe_instances(InstanceIds=[vm]))[0]["State"]["Name"] == "running"
    ec2.terminate_instances(InstanceIds=[vm])


def test_upload_image_refuses_dry_run_and_keeps_nothing(stack):
    boundary = "b0undary"
    body = _multipart_head(stack, boundary, DryRun="true") + b"\0" * 1024 + f"\r\n--{boundary}--\r\n".encode()
    status, root = _raw_post(
        stack.econe.port,
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (stack.econe.port, boundary.encode(), len(body)),
        body,
    )
    assert (status, error_code(root)) == (400, "InvalidParameter")
    assert list((stack.workdir / "tmp").iterdir()) == []

"""The action registry says what each action does with its parameters, and it is true.

Each action declares the input members it reads (``reads``), those it accepts and ignores
(``ignored``); every other member of the botocore model is refused with InvalidParameter before
the action runs. Declaring a member read that the action never reads would let a client believe
a parameter works that silently does nothing; these tests catch that, and the opposite.

How "read" is decided, and why so: each action runs once through the real request path (econe's
web application on its own Cheroot edge in this process, a boto3 or econe-upload client, onelite
or the oned of ``make conformance`` behind it), with the parsed input wrapped in a mapping that
records every member the action asks for (``[]``, ``get``, ``in``) and refuses to be iterated or
copied. What the code asks for is recorded wherever it is asked (in helpers, loops over literal
names, aliases), which a static reading of the functions could not follow soundly. Asking for an
absent member counts (``p.get("Filters", [])`` reads Filters whether or not the client sent it),
so one request per action reaches every read on its path. A read behind a branch the request does
not take would go unrecorded: the test then fails for a parameter that is in fact read, never
passes for one that is not; each action's request below is chosen to take the path that reads
everything.
"""

from __future__ import annotations

import dataclasses
import re
import threading

import boto3
import botocore.exceptions
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from econe import config, model, upload, web
from econe.actions import ACTIONS
from econe.edge import EdgeServer
from econe.gateway import Gateway
from econe.metrics import Metrics

from .conftest import free_port
from .test_econe_e2e import stack  # noqa: F401


class Recording(dict):
    """An action's input that notes each member asked for; iterating it would hide what is read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.asked: set[str] = set()

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)

    def _opaque(self, *_):
        raise AssertionError("an action must ask for its members by name, not iterate or copy its input")

    __iter__ = keys = values = items = copy = __or__ = _opaque


@pytest.fixture(scope="module")
def recorded(stack, tmp_path_factory):  # noqa: F811
    """{action: members it asked for}, from one request per action to an econe in this process."""
    asked: dict[str, set[str]] = {}

    def recorder(name, func):
        def run(ctx, inputs):
            p = Recording(inputs)
            try:
                return func(ctx, p)
            finally:
                asked.setdefault(name, set()).update(p.asked)

        return run

    originals = dict(ACTIONS)
    for name, act in originals.items():
        ACTIONS[name] = dataclasses.replace(act, func=recorder(name, act.func))
    environ = {"ONE_CIPHER_AUTH": str(stack.cloud.server_auth)}
    cfg = dataclasses.replace(config.load(str(stack.econe.conf), environ), port=free_port())
    metrics = Metrics()
    gateway = Gateway(cfg.one_xmlrpc, cfg.server_user, cfg.server_password, metrics, cfg.cache_ttl)
    server = EdgeServer(
        (cfg.host, cfg.port),
        web.make_app(cfg, gateway, metrics),
        threads=2,
        request_timeout=cfg.request_timeout,
        max_body=cfg.max_upload_size + web.MAX_FORM,
        metrics=metrics,
        trusted=cfg.trusted_proxies,
    )
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        _requests(stack, f"http://127.0.0.1:{cfg.port}", tmp_path_factory.mktemp("registry"))
    finally:
        server.stop()
        ACTIONS.update(originals)
    return asked


def _requests(stack, url: str, workdir) -> None:  # noqa: F811
    """One request per action, on the path that reads all it reads (see the module's docstring)."""
    ec2 = boto3.client(
        "ec2",
        endpoint_url=url,
        region_name="opennebula",
        aws_access_key_id=stack.demo.user,
        aws_secret_access_key=stack.demo.secret,
    )
    ami = f"ami-{stack.demo.image:08d}"

    def dry(call, **kw):  # the changing actions read all their members before they decide a dry run
        with pytest.raises(botocore.exceptions.ClientError):
            call(DryRun=True, **kw)

    ec2.describe_images()
    image = workdir / "disk.img"
    image.write_bytes(b"\0" * 4096)
    status, body = upload.upload(url, str(image), stack.demo.user, stack.demo.secret)
    assert status == 200, body
    mine = re.search(rb"ami-[0-9]+", body).group().decode()  # the user may manage its own image
    ec2.register_image(ImageLocation=mine, Name="registry")  # not a dry run: it decides before Description
    ec2.describe_image_attribute(ImageId=mine, Attribute="description")
    dry(ec2.modify_image_attribute, ImageId=mine, Description={"Value": "registry"})
    dry(ec2.deregister_image, ImageId=mine)
    ec2.describe_instances()
    run = ec2.run_instances(ImageId=ami, InstanceType=stack.demo.itype, MinCount=1, MaxCount=1)
    ids = [run["Instances"][0]["InstanceId"]]
    dry(ec2.create_image, InstanceId=ids[0], Name="registry")
    dry(ec2.stop_instances, InstanceIds=ids)
    dry(ec2.start_instances, InstanceIds=ids)
    dry(ec2.reboot_instances, InstanceIds=ids)
    dry(ec2.create_tags, Resources=ids, Tags=[{"Key": "k", "Value": "v"}])
    dry(ec2.delete_tags, Resources=ids)
    ec2.describe_tags()
    ec2.describe_instance_status(IncludeAllInstances=True)
    ec2.describe_instance_attribute(InstanceId=ids[0], Attribute="instanceType")
    # the value form reads Attribute and Value, after asking for every structured member
    dry(ec2.modify_instance_attribute, InstanceId=ids[0], Attribute="disableApiTermination", Value="false")
    ec2.describe_instance_types()
    # volumes and snapshots: ids that name nothing, read before they are looked up
    dry(ec2.create_volume, AvailabilityZone="opennebula", Size=1, VolumeType="gp2")
    ec2.describe_volumes()
    dry(ec2.attach_volume, VolumeId="vol-09999999", InstanceId=ids[0], Device="/dev/sdf")
    dry(ec2.detach_volume, VolumeId="vol-09999999", InstanceId=ids[0], Device="/dev/sdf")
    dry(ec2.delete_volume, VolumeId="vol-09999999")
    dry(ec2.create_snapshot, VolumeId="vol-09999999", Description="registry")
    ec2.describe_snapshots()
    dry(ec2.delete_snapshot, SnapshotId="snap-09999999")
    with pytest.raises(botocore.exceptions.ClientError):
        ec2.describe_snapshot_attribute(SnapshotId="snap-09999999", Attribute="createVolumePermission")
    ec2.terminate_instances(InstanceIds=ids)
    dry(ec2.create_key_pair, KeyName="registry")
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    material = public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    dry(ec2.import_key_pair, KeyName="registry", PublicKeyMaterial=material)
    ec2.describe_key_pairs()
    dry(ec2.delete_key_pair, KeyName="registry")
    ec2.describe_regions()
    ec2.describe_availability_zones()
    ec2.describe_addresses()
    # elastic IPs: this econe has no elastic-IP network, refused once every member is read
    dry(ec2.allocate_address, Domain="vpc")
    dry(ec2.associate_address, AllocationId="eipalloc-00000001", PublicIp="192.0.2.1", InstanceId=ids[0],
        AllowReassociation=True)  # fmt: skip
    dry(ec2.disassociate_address, AssociationId="eipassoc-000000010001", PublicIp="192.0.2.1")
    dry(ec2.release_address, AllocationId="eipalloc-00000001", PublicIp="192.0.2.1")
    ec2.describe_vpcs()
    ec2.describe_vpc_attribute(VpcId="vpc-00000000", Attribute="enableDnsSupport")
    ec2.describe_subnets()
    ec2.describe_network_interfaces()
    ec2.describe_account_attributes()
    boto3.client("sts", endpoint_url=url, region_name="opennebula", aws_access_key_id=stack.demo.user,
                 aws_secret_access_key=stack.demo.secret).get_caller_identity()  # fmt: skip
    # security groups: by name where an action takes GroupId or GroupName (it reads both then)
    sg = ec2.create_security_group(GroupName="registry", Description="registry")["GroupId"]
    perm = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    ec2.authorize_security_group_ingress(GroupName="registry", IpPermissions=perm)
    ec2.authorize_security_group_egress(GroupId=sg, IpPermissions=perm)
    ec2.revoke_security_group_ingress(GroupName="registry", IpPermissions=perm)
    ec2.revoke_security_group_egress(GroupId=sg, IpPermissions=perm)
    ec2.describe_security_groups(MaxResults=5)
    ec2.delete_security_group(GroupName="registry")


def _declared(name: str) -> set[str]:
    act = ACTIONS[name]
    return set(act.reads) | ({"File"} if act.takes_file else set())


def test_every_action_was_run(recorded):
    assert set(recorded) == set(ACTIONS)


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_member_declared_read_is_read(recorded, name):
    assert _declared(name) - recorded[name] == set(), f"{name} declares these read, and never reads them"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_member_read_is_declared_read(recorded, name):
    assert recorded[name] - _declared(name) == set(), f"{name} reads these without declaring them read"


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_the_declaration_names_members_of_the_model(name):
    """Read, ignored, optional and stored members exist in the model (no typo passes for a
    declaration), none is both read and ignored, and a stored member is one the action reads."""
    act = ACTIONS[name]
    op = model.operation(name)
    members = set(op.input_shape.members) if op is not None else set()
    assert act.reads | act.ignored <= members
    assert not act.reads & act.ignored
    assert act.optional <= act.reads | act.ignored
    assert act.stored <= act.reads
    assert "DryRun" not in act.reads | act.ignored  # the web layer reads it, for every action


# ---------------------------------------------------------------- what the fixes make true


def test_describe_addresses_reads_its_filters(stack):  # noqa: F811
    """No address is offered, so every filter matches nothing; a filter EC2 does not have is refused, as EC2 does."""
    ec2 = stack.client()
    for name in ("public-ip", "allocation-id", "instance-id", "tag:Owner", "tag-key"):
        assert ec2.describe_addresses(Filters=[{"Name": name, "Values": ["*"]}])["Addresses"] == []
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ec2.describe_addresses(Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

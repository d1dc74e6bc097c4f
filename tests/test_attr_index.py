"""The index of EC2 attributes (`econe.attr_index`): a server's first listing of a user reads the user's
index document instead of every VM's extended record, and then the VMs themselves. Against econe on
onelite (or a real oned, make conformance), with fresh econe servers as a restart or a second instance
behind the proxy has them."""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request
import xml.etree.ElementTree as ET
import xmlrpc.client

import botocore.exceptions
import pytest

from econe import attr_index
from one import acl
from one import template as tpl

from .conftest import free_port, start_econe
from .test_econe_e2e import stack, wait_for  # noqa: F401


class _User:
    """The demo user's own XML-RPC calls, as its CLI or Sunstone makes them."""

    def __init__(self, stack):  # noqa: F811
        self.proxy = xmlrpc.client.ServerProxy(stack.cloud.url)
        self.session = f"{stack.demo.user}:{stack.demo.password}"

    def __call__(self, method: str, *args):
        ok, value, *_ = getattr(self.proxy, method)(self.session, *args)
        assert ok, value
        return value

    def index(self) -> tuple[dict[int, int], dict, list[int]]:
        return attr_index.parse(self("one.documentpool.info", -3, -1, -1, attr_index.TYPE))

    def forge(self, vmid: int, pairs: list[tuple[str, str]]) -> None:
        """Merge these attributes into the index document that holds *vmid* (made when the user has none)."""
        shard_no = attr_index.shard(vmid)
        doc = self.index()[0].get(shard_no)
        if doc is None:
            self("one.document.allocate", tpl.serialize([("NAME", attr_index.name(shard_no)), *pairs]), attr_index.TYPE)
        else:
            self("one.document.update", doc, tpl.serialize(pairs), 1)


@pytest.fixture(scope="module")
def user(stack):  # noqa: F811
    return _User(stack)


@pytest.fixture
def fresh(stack, tmp_path):  # noqa: F811
    """A server that has read no EC2 attribute yet: a restart, or another instance behind the proxy."""
    servers = []

    def start():
        server = start_econe(tmp_path / f"fresh{len(servers)}", stack.cloud.url, stack.cloud.server_auth)
        servers.append(server)
        return stack.client(url=server.url)

    yield start
    for server in servers:
        server.stop()


def _tags(client) -> dict[str, dict]:
    return {
        i["InstanceId"]: {t["Key"]: t["Value"] for t in i.get("Tags", [])}
        for r in client.describe_instances()["Reservations"]
        for i in r["Instances"]
    }


def _create_rules(stack) -> list[tuple[int, int, int, int]]:  # noqa: F811
    """(id, user, resource, rights) of the demo group's CREATE rules, as oned lists them."""
    pool = ET.fromstring(stack.admin("one.acl.info"))
    rules = [tuple(int(r.findtext(k), 16 if k != "ID" else 10) for k in ("ID", "USER", "RESOURCE", "RIGHTS"))
             for r in pool.iter("ACL")]  # fmt: skip
    return [r for r in rules if r[1] == acl.GROUP | stack.demo.gid and r[3] == acl.RIGHTS["CREATE"]]


def _run(ec2, stack, count: int, tags: dict) -> list[str]:  # noqa: F811
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    made = ec2.run_instances(ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype,
                             MinCount=count, MaxCount=count, TagSpecifications=spec)  # fmt: skip
    return [i["InstanceId"] for i in made["Instances"]]


def _made_quietly(stack, tmp_path, count: int, tags: dict) -> list[str]:  # noqa: F811
    """VMs made through a server stopped before the test goes on: no server's background read of the
    extended answer mends the index while the test writes into it."""
    maker = start_econe(tmp_path / "maker", stack.cloud.url, stack.cloud.server_auth)
    try:
        return _run(stack.client(url=maker.url), stack, count, tags)
    finally:
        maker.stop()


def _gone(ec2, iids: list[str]) -> None:
    ec2.terminate_instances(InstanceIds=iids)
    wait_for(ec2, "instance_terminated", iids)


def test_a_fresh_servers_first_listing_is_the_index_and_the_next_the_vms(stack, user, fresh, tmp_path):  # noqa: F811
    """The first listing shows what econe last saw (the index): it reads no VM's extended record. A tag
    changed in OpenNebula itself meanwhile shows from the next listing on, and the index then holds it."""
    ec2 = stack.client()
    iids = _made_quietly(stack, tmp_path, 3, {"env": "a"})
    try:
        vmid = int(iids[0][2:])
        _, entries, _ = user.index()  # RunInstances wrote its VMs' entries
        assert {int(i[2:]) for i in iids} <= set(entries)
        assert json.loads(entries[vmid][0]["EC2_TAGS"]) == {"env": "a"}
        user("one.vm.update", vmid, tpl.serialize([("EC2_TAGS", json.dumps({"env": "b"}))]), 1)

        other = fresh()
        assert {_tags(other)[i]["env"] for i in iids} == {"a"}  # from the index: no extended record read
        deadline = time.monotonic() + 10
        while _tags(other)[iids[0]] != {"env": "b"}:  # read in the background after the first answer
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert json.loads(user.index()[1][vmid][0]["EC2_TAGS"]) == {"env": "b"}
    finally:
        _gone(ec2, iids)


def test_tags_changed_through_one_server_show_in_anothers_first_listing(stack, user, fresh):  # noqa: F811
    ec2 = stack.client()
    iids = _run(ec2, stack, 2, {"env": "a"})
    try:
        ec2.create_tags(Resources=[iids[0]], Tags=[{"Key": "role", "Value": "db"}])
        ec2.delete_tags(Resources=[iids[1]], Tags=[{"Key": "env"}])
        listed = _tags(fresh())
        assert (listed[iids[0]], listed[iids[1]]) == ({"env": "a", "role": "db"}, {})
    finally:
        _gone(ec2, iids)


def test_a_dry_run_writes_no_index(stack, user, fresh):  # noqa: F811
    """A dry run reads the VM, whose tags changed in OpenNebula itself since its server made it: still
    nothing is written (a CreateTags would write what it read)."""
    ec2 = fresh()
    (iid,) = _run(ec2, stack, 1, {"env": "a"})
    try:
        time.sleep(0.5)  # whatever that server does after RunInstances is done
        user("one.vm.update", int(iid[2:]), tpl.serialize([("EC2_TAGS", json.dumps({"env": "b"}))]), 1)
        before = user.index()
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ec2.create_tags(Resources=[iid], Tags=[{"Key": "dry", "Value": "run"}], DryRun=True)
        assert e.value.response["Error"]["Code"] == "DryRunOperation"
        assert user.index() == before
    finally:
        _gone(ec2, [iid])


def test_a_tag_deleted_through_one_server_stays_deleted_in_anothers_first_listing(stack, fresh):  # noqa: F811
    """The last read of a VM in a request is what the index gets, not the read before the change."""
    ec2 = stack.client()
    (iid,) = _run(ec2, stack, 1, {"env": "a"})
    try:
        fresh().create_tags(Resources=[iid], Tags=[{"Key": "role", "Value": "db"}])
        ec2.delete_tags(Resources=[iid], Tags=[{"Key": "role"}])
        assert _tags(fresh())[iid] == {"env": "a"}
    finally:
        _gone(ec2, [iid])


def test_what_a_user_writes_into_its_index_or_vms_answers_no_5xx(stack, user, fresh, tmp_path):  # noqa: F811
    """JSON nested past Python's recursion limit, a VM id of thousands of digits, characters XML cannot
    carry: listings answer (parsed by boto3), and the requests that change oned answer what they did."""
    ec2 = stack.client()
    iids = _made_quietly(stack, tmp_path, 2, {"env": "a"})
    deep = "[" * 5000 + "]" * 5000
    try:
        odd = json.dumps(["x86_64", {"EC2_TAGS": json.dumps({"k": "\ud800\uffff"})}])  # XML cannot carry these
        first, second = int(iids[0][2:]), int(iids[1][2:])
        user.forge(first, [(f"VM_{first}", deep), ("VM_" + "9" * 4400, '["", {}]'), (f"VM_0{first}", '["", {}]')])
        user.forge(second, [(f"VM_{second}", odd)])
        user("one.vm.update", int(iids[0][2:]), tpl.serialize([("EC2_TAGS", deep), ("EC2_VOLUMES", deep)]), 1)
        other = fresh()
        listed = _tags(other)
        assert listed[iids[0]] == {} and list(listed[iids[1]]) == ["k"]
        other.create_tags(Resources=[iids[1]], Tags=[{"Key": "role", "Value": "db"}])
        made = _run(other, stack, 1, {"env": "b"})
        assert set(made) <= set(_tags(other)) and len(made) == 1
        iids += made
    finally:
        _gone(ec2, iids)


def test_a_locked_index_is_left_alone(stack, user, tmp_path):  # noqa: F811
    """A user who locks its index (or takes its own rights on it) costs econe one refused write, not one
    per request."""
    ec2 = stack.client()
    (iid,) = _run(ec2, stack, 1, {"env": "a"})
    metrics_port = free_port()
    server = start_econe(tmp_path / "metered", stack.cloud.url, stack.cloud.server_auth, metrics_port=metrics_port)
    doc = user.index()[0][attr_index.shard(int(iid[2:]))]
    user("one.document.lock", doc, 2, False)  # MANAGE: no update
    try:
        other = stack.client(url=server.url)
        for value in "bcdef":
            other.create_tags(Resources=[iid], Tags=[{"Key": "env", "Value": value}])
        scrape = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        updates = re.search(r'econe_oned_call_duration_seconds_count\{method="one.document.update"\} (\S+)', scrape)
        assert updates is not None and float(updates.group(1)) == 1
        assert _tags(other)[iid] == {"env": "f"}
    finally:
        user("one.document.unlock", doc)
        server.stop()
        _gone(ec2, [iid])


def test_a_forged_index_changes_no_other_vm_and_breaks_no_listing(stack, user, fresh, tmp_path):  # noqa: F811
    """The user owns its index and may write anything into it: an entry that is not econe's is not used
    (its VM is read from oned), and one naming a VM outside the user's listing shows nowhere."""
    ec2 = stack.client()
    iids = _made_quietly(stack, tmp_path, 2, {"env": "a"})
    theirs = stack.admin("one.vm.allocate", 'NAME="theirs"\nCPU="0.1"\nMEMORY="32"\nEC2_TAGS="{}"', True)
    bob = stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest())
    (bobs,) = _run(bob, stack, 1, {"owner": "bob"})
    try:
        forged = {
            int(iids[0][2:]): "not json",
            int(iids[1][2:]): json.dumps(["x86_64", {"NOT_EC2": "x", "EC2_TAGS": 1}]),
            theirs: json.dumps(["x86_64", {"EC2_TAGS": json.dumps({"forged": "yes"})}]),
            int(bobs[2:]): json.dumps(["x86_64", {"EC2_TAGS": json.dumps({"owner": "forged"})}]),
        }
        for vmid, value in forged.items():
            user.forge(vmid, [(f"VM_{vmid}", value), ("VM_x", "[]")])
        server = fresh()
        listed = _tags(server)
        assert (listed[iids[0]], listed[iids[1]]) == ({"env": "a"}, {"env": "a"})
        assert f"i-{theirs:08d}" not in listed and bobs not in listed
        bob_there = stack.client(stack.bob_name, hashlib.sha256(b"bobpw").hexdigest(), url=server.meta.endpoint_url)
        assert _tags(bob_there)[bobs] == {"owner": "bob"}  # the owner, on the server that read the forged index
    finally:
        stack.admin("one.vm.action", "terminate-hard", theirs)
        _gone(bob, [bobs])
        _gone(ec2, iids)


def test_two_index_documents_the_lowest_counts_and_the_other_goes(stack, user, fresh, tmp_path):  # noqa: F811
    """Two servers' first writes at once make two documents: the lowest id is the index."""
    ec2 = stack.client()
    (iid,) = _made_quietly(stack, tmp_path, 1, {"env": "a"})
    try:
        shard_no = attr_index.shard(int(iid[2:]))
        doc = user.index()[0][shard_no]
        forged = json.dumps(["x86_64", {"EC2_TAGS": json.dumps({"env": "second"})}])
        text = tpl.serialize([("NAME", attr_index.name(shard_no)), (f"VM_{int(iid[2:])}", forged)])
        second = user("one.document.allocate", text, attr_index.TYPE)
        assert second > doc
        assert _tags(fresh())[iid] == {"env": "a"}
        assert user.index()[0][shard_no] == doc and user.index()[2] == []
    finally:
        _gone(ec2, [iid])


def test_without_documents_a_user_lists_as_before(stack, user, fresh):  # noqa: F811
    """A group whose users may not create documents (an older deployment's ACL): no index, the same answers."""
    (rule,) = _create_rules(stack)
    rid, who, what, rights = rule
    stack.admin("one.acl.delrule", rid)
    narrower = stack.admin("one.acl.addrule", *(f"{x:x}" for x in (who, what & ~acl.TYPES["DOCUMENT"], rights)))
    ec2 = fresh()  # the module's server keeps its index (this one learns it may not make one)
    try:
        for doc in user.index()[0].values():
            user("one.document.delete", doc)
        iids = _run(ec2, stack, 2, {"env": "a"})
        ec2.create_tags(Resources=[iids[0]], Tags=[{"Key": "role", "Value": "db"}])
        assert user.index()[0] == {}
        listed = _tags(fresh())
        assert (listed[iids[0]], listed[iids[1]]) == ({"env": "a", "role": "db"}, {"env": "a"})
        _gone(ec2, iids)
    finally:
        stack.admin("one.acl.delrule", narrower)
        stack.admin("one.acl.addrule", *(f"{x:x}" for x in (who, what, rights)))

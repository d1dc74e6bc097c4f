"""Issue #14's acceptance for volumes and snapshots: amazon.aws's ec2_vol, ec2_vol_info, ec2_snapshot
and ec2_snapshot_info, written as their users write them, against econe. Each step is a playbook run
whose results are read from the json callback; a rerun must report no change."""

from __future__ import annotations

import pytest

from .aws_play import play
from .test_econe_e2e import stack  # noqa: F401
from .test_volumes import _instance


@pytest.fixture(scope="module")
def instance(stack):  # noqa: F811
    iid = _instance(stack)
    yield iid
    stack.client().terminate_instances(InstanceIds=[iid])


def test_ec2_vol_attached_to_an_instance(stack, tmp_path, instance):  # noqa: F811
    name = stack.cloud.name("data")
    vol = {"instance": instance, "device_name": "/dev/sdf", "volume_size": 1, "name": name}
    created, again, listed = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_vol": vol},
        {"amazon.aws.ec2_vol": vol},
        {"amazon.aws.ec2_vol_info": {"filters": {"tag:Name": name, "attachment.instance-id": instance}}},
    )
    assert created["changed"] and created["volume_id"].startswith("vol-") and created["device"] == "/dev/sdf"
    assert created["volume"]["attachment_set"][0]["instance_id"] == instance
    assert not again["changed"] and again["volume_id"] == created["volume_id"]
    (info,) = listed["volumes"]
    assert info["id"] == created["volume_id"] and info["size"] == 1 and info["status"] == "in-use"
    assert info["attachment_set"][0]["device"] == "/dev/sdf" and info["tags"] == {"Name": name}

    detached, snapped, snaps, gone, removed, removed_again, after = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_vol": {"id": created["volume_id"], "instance": "None"}},
        {"amazon.aws.ec2_snapshot": {"volume_id": created["volume_id"], "description": "nightly", "wait": True}},
        {"amazon.aws.ec2_snapshot_info": {"owner_ids": ["self"]}},
        {"amazon.aws.ec2_vol_info": {"filters": {"volume-id": created["volume_id"], "status": "available"}}},
        {"amazon.aws.ec2_vol": {"id": created["volume_id"], "state": "absent"}},
        {"amazon.aws.ec2_vol": {"id": created["volume_id"], "state": "absent"}},
        {"amazon.aws.ec2_vol_info": {"filters": {"tag:Name": name}}},
    )
    assert detached["changed"] and detached["volume"]["attachment_set"] == []
    assert snapped["changed"] and snapped["volume_id"] == created["volume_id"] and snapped["volume_size"] == 1
    assert snapped["tags"] == {"Name": name}  # ec2_snapshot names a snapshot after its volume
    (snap,) = [s for s in snaps["snapshots"] if s["volume_id"] == created["volume_id"]]
    assert snap["snapshot_id"] == snapped["snapshot_id"] and snap["state"] == "completed"
    assert snap["description"] == "nightly" and snap["progress"] == "100%"
    assert [v["id"] for v in gone["volumes"]] == [created["volume_id"]]
    assert removed["changed"] and not removed_again["changed"] and after["volumes"] == []

    by_id, deleted, left = play(
        stack,
        tmp_path,
        {"amazon.aws.ec2_snapshot_info": {"snapshot_ids": [snapped["snapshot_id"]]}},
        {"amazon.aws.ec2_snapshot": {"snapshot_id": snapped["snapshot_id"], "state": "absent"}},
        {"amazon.aws.ec2_snapshot_info": {"filters": {"volume-id": created["volume_id"]}}},
    )
    assert [s["snapshot_id"] for s in by_id["snapshots"]] == [snapped["snapshot_id"]]
    assert by_id["snapshots"][0]["create_volume_permissions"] == []  # the user's own, not public
    assert deleted["changed"] and left["snapshots"] == []

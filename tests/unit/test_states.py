"""oned's states by name: the EC2 state of each VM state pyone and oned 6.10 name."""

from __future__ import annotations

import pytest

from econe import states
from one.codes import LCM_STATE, VM_STATE

ACTIVE = VM_STATE.ACTIVE

# LCM states oned 6.10 no longer enters (commented out in VirtualMachine::LcmState)
_RETIRED = {"CANCEL", "FAILURE", "DISK_SNAPSHOT_REVERT", "DISK_SNAPSHOT_REVERT_SUSPENDED"}


@pytest.mark.parametrize(
    "lcm, name",
    [
        ("DISK_SNAPSHOT", "running"),  # a snapshot of a running VM's disk: it runs on
        ("DISK_RESIZE", "running"),
        ("HOTPLUG_RESIZE", "running"),
        ("BACKUP", "running"),
        ("BOOT_STOPPED_FAILURE", "terminated"),  # the failures are all terminated
        ("PROLOG_MIGRATE_SUSPEND_FAILURE", "terminated"),
        ("PROLOG_MIGRATE_POWEROFF", "running"),  # migrating, as PROLOG_MIGRATE
        ("RESTORE", "stopped"),  # a powered-off VM's disks restored from a backup: it stays off
    ],
)
def test_lcm_states_by_name(lcm, name):
    got = states.instance_state(ACTIVE, LCM_STATE[lcm])
    assert got == {"Code": states.EC2_CODES[name], "Name": name}


def test_every_lcm_state_has_a_short_name():
    unnamed = [s.name for s in LCM_STATE if s.name not in _RETIRED and states.short_name(ACTIVE, s) == "unkn"]
    assert unnamed == ["UNKNOWN"]

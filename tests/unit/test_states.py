"""oned's states by name: the EC2 state of each VM state pyone and oned 6.10 name."""

from __future__ import annotations

import pytest

from econe import states
from one.codes import LCM_STATE, VM_STATE

ACTIVE = VM_STATE.ACTIVE


@pytest.mark.parametrize(
    "lcm, name",
    [
        ("DISK_SNAPSHOT", "running"),  # a snapshot of a running VM's disk: it runs on
        ("DISK_RESIZE", "running"),
        ("HOTPLUG_RESIZE", "running"),
        ("BACKUP", "running"),
        ("BOOT_STOPPED_FAILURE", "terminated"),  # the failures are all terminated
        ("PROLOG_MIGRATE_SUSPEND_FAILURE", "terminated"),
        ("PROLOG_MIGRATE", "running"),
        ("PROLOG_MIGRATE_POWEROFF", "stopped"),  # a powered-off VM moved: it stays off
        ("RESTORE", "stopped"),  # a powered-off VM's disks restored from a backup: it stays off
        # work on a VM that is off leaves it off: a client that waited for stopped must not see it run
        ("DISK_RESIZE_POWEROFF", "stopped"),
        ("DISK_RESIZE_UNDEPLOYED", "stopped"),
        ("BACKUP_POWEROFF", "stopped"),
        ("HOTPLUG_SAVEAS_STOPPED", "stopped"),
        ("HOTPLUG_NIC_POWEROFF", "stopped"),
        ("HOTPLUG_PROLOG_POWEROFF", "stopped"),
        ("DISK_SNAPSHOT_POWEROFF", "stopped"),
        ("DISK_SNAPSHOT_SUSPENDED", "stopped"),
        ("SHUTDOWN_POWEROFF", "stopping"),  # not work on an off VM: the VM going off
        ("BOOT_POWEROFF", "pending"),
    ],
)
def test_lcm_states_by_name(lcm, name):
    got = states.instance_state(ACTIVE, LCM_STATE[lcm])
    assert got == {"Code": states.EC2_CODES[name], "Name": name}


def test_every_lcm_state_has_a_short_name():
    unnamed = [s.name for s in LCM_STATE if states.short_name(ACTIVE, s) == "unkn"]
    assert unnamed == ["UNKNOWN"]

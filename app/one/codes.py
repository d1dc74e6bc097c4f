"""oned's names for its numbers: the error codes of its answers, and the states of VMs and images."""

from __future__ import annotations

from enum import IntEnum

# pyone's enums are OpenNebula's own and pyone is a dependency already: re-exported here, not copied
from pyone import HOST_STATES, IMAGE_STATES, VM_STATE
from pyone import LCM_STATE as _PYONE_LCM_STATE

__all__ = [
    "ACTION",
    "ALLOCATE",
    "AUTHENTICATION",
    "AUTHORIZATION",
    "HOST_STATES",
    "IMAGE_STATES",
    "INTERNAL",
    "LCM_STATE",
    "LOCKED",
    "NO_EXISTS",
    "REPLICATION",
    "VM_STATE",
    "XML_RPC_API",
]

# Request::ErrorCode (include/Request.h): the third value of a failed call's answer
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000
LOCKED = 0x8000
REPLICATION = 0x10000

# pyone's list ends at HOTPLUG_SAVEAS_STOPPED (68); oned 6.10 has three more (VirtualMachine::LcmState)
LCM_STATE = IntEnum(
    "LCM_STATE",
    [(s.name, s.value) for s in _PYONE_LCM_STATE] + [("BACKUP", 69), ("BACKUP_POWEROFF", 70), ("RESTORE", 71)],
)

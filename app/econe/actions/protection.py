"""DisableApiTermination and InstanceInitiatedShutdownBehavior: how they are kept in the VM's user
template, read from RunInstances, and how TerminateInstances honours the first.

Pure functions: RunInstances (instances.py) and ModifyInstanceAttribute (instance_attributes.py)
both use them, and neither imports the other's module for it.
"""

from __future__ import annotations

from .. import ids
from ..errors import EC2Error, invalid
from ..objects import VM

NO_TERMINATION = "EC2_DISABLE_API_TERMINATION"  # "true" while TerminateInstances must refuse the instance
SHUTDOWN_BEHAVIOR = "EC2_SHUTDOWN_BEHAVIOR"  # "stop" (EC2's default) or "terminate"
BEHAVIORS = ("stop", "terminate")


def shutdown_behavior(value: str) -> str:
    if value not in BEHAVIORS:
        raise invalid("InstanceInitiatedShutdownBehavior", value, "It must be stop or terminate.")
    return value


def launch_attributes(p: dict) -> list[tuple[str, str]]:
    """The user-template attributes RunInstances' DisableApiTermination and
    InstanceInitiatedShutdownBehavior ask for (checked before anything is made)."""
    out = []
    if p.get("DisableApiTermination"):
        out.append((NO_TERMINATION, "true"))
    behavior = p.get("InstanceInitiatedShutdownBehavior")
    if behavior is not None:
        out.append((SHUTDOWN_BEHAVIOR, shutdown_behavior(behavior)))
    return out


def termination_disabled(vm: VM) -> bool:
    return vm.user_template.get(NO_TERMINATION) == "true"


def refuse_protected(vm: VM) -> None:
    """EC2's answer to terminating an instance whose disableApiTermination is set."""
    if termination_disabled(vm):
        raise EC2Error(
            "OperationNotPermitted",
            f"The instance '{ids.fmt('i', vm.id)}' may not be terminated. Modify its 'disableApiTermination'"
            " instance attribute and try again.",
        )

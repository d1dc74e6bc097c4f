"""DescribeInstanceStatus, DescribeInstanceAttribute, ModifyInstanceAttribute, DescribeInstanceTypes.

An instance's attributes live in its VM: the type in the user template (EC2_INSTANCE_TYPE) and in
TEMPLATE's CPU, VCPU and MEMORY (``one.vm.resize``), the user data in CONTEXT (``one.vm.updateconf``),
the termination protection and shutdown behaviour in the user template (protection.py), the
security groups in the NIC's SECURITY_GROUPS.
"""

from __future__ import annotations

import base64
import binascii

from one import template as tpl
from one.codes import HOST_STATES, LCM_STATE, VM_STATE

from .. import ids, states
from ..errors import EC2Error, invalid, missing
from ..objects import VM
from . import instances, nics, paging, protection
from .filters import check_names, flag, matcher
from .instance_types import render_file_template, template_for
from .regions import ZONE
from .registry import Context, action

# ---------------------------------------------------------------- DescribeInstanceStatus

# a VM oned has given up on (a driver failed, or the monitor lost it): EC2's impaired instance
_FAILED_LCM = {s for s in LCM_STATE if s.name == "UNKNOWN" or s.name.endswith("FAILURE")}
_FAILED_VM = {VM_STATE.FAILED, VM_STATE.CLONING_FAILURE}
# the host's STATE -> the system status of the instances on it: a DISABLED host runs its VMs on (no
# new ones are placed there); ERROR and OFFLINE ones are not monitored, or not there
_SYSTEM = {
    **dict.fromkeys((HOST_STATES.MONITORED, HOST_STATES.MONITORING_MONITORED), "ok"),
    **dict.fromkeys((HOST_STATES.DISABLED, HOST_STATES.MONITORING_DISABLED), "ok"),
    **dict.fromkeys((HOST_STATES.ERROR, HOST_STATES.MONITORING_ERROR, HOST_STATES.OFFLINE), "impaired"),
    **dict.fromkeys((HOST_STATES.INIT, HOST_STATES.MONITORING_INIT), "initializing"),
}
_REACHABILITY = {"ok": "passed", "impaired": "failed", "initializing": "initializing"}


def instance_status(state: int, lcm_state: int) -> str:
    """From the VM's state: RUNNING (and the work oned does on a running VM) ok; deploying
    initializing; a failure state impaired; anything else (stopped, stopping...) not-applicable."""
    if state in _FAILED_VM or (state == VM_STATE.ACTIVE and lcm_state in _FAILED_LCM):
        return "impaired"
    name = states.instance_state(state, lcm_state)["Name"]
    return {"running": "ok", "pending": "initializing"}.get(name, "not-applicable")


def system_status(status: str, host_state: int | None) -> str:
    """From the state of the host the VM is on (None: on none, or a host oned no longer has)."""
    if status == "not-applicable":
        return status
    if host_state is None:
        return "initializing" if status == "initializing" else "insufficient-data"
    return _SYSTEM.get(host_state, "insufficient-data")


def _summary(status: str) -> dict:
    reach = _REACHABILITY.get(status, "insufficient-data")
    details = [] if status == "not-applicable" else [{"Name": "reachability", "Status": reach}]
    return {"Status": status, "Details": details}


# EC2's filters of DescribeInstanceStatus; event.* match nothing (no scheduled events here)
_STATUS_FILTERS = {
    "availability-zone": lambda s: [s["AvailabilityZone"]],
    "instance-state-name": lambda s: [s["InstanceState"]["Name"]],
    "instance-state-code": lambda s: [str(s["InstanceState"]["Code"])],
    "instance-status.status": lambda s: [s["InstanceStatus"]["Status"]],
    "instance-status.reachability": lambda s: [d["Status"] for d in s["InstanceStatus"]["Details"]],
    "system-status.status": lambda s: [s["SystemStatus"]["Status"]],
    "system-status.reachability": lambda s: [d["Status"] for d in s["SystemStatus"]["Details"]],
    **dict.fromkeys(
        (f"event.{e}" for e in ("code", "description", "instance-event-id", "not-after", "not-before")),
        lambda s: [],
    ),
    "event.not-before-deadline": lambda s: [],
}


def _status_item(vm: VM, host_state: int | None) -> dict:
    status = instance_status(vm.state, vm.lcm_state)
    return {
        "InstanceId": ids.fmt("i", vm.id),
        "AvailabilityZone": ZONE,
        "InstanceState": states.instance_state(vm.state, vm.lcm_state),
        "InstanceStatus": _summary(status),
        "SystemStatus": _summary(system_status(status, host_state)),
    }


def _wanted_vms(ctx: Context, wanted: list[str], pool: dict[int, tuple[VM, int]]) -> list[tuple[VM, int]]:
    """The named instances among the user's VMs; one that is not there must exist (and is then
    terminated: no status), or the request is refused with its NotFound."""
    out = []
    for text in wanted:
        vmid = ids.parse(text, "i")
        if vmid in pool:
            out.append(pool[vmid])
        else:
            instances.get_vm(ctx, text)
    return out


@action(
    "DescribeInstanceStatus",
    reads=("InstanceIds", "IncludeAllInstances", "Filters", "MaxResults", "NextToken"),
    ignored=("IncludeManagedResources",),
)
def describe_instance_status(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _STATUS_FILTERS)
    wanted = p.get("InstanceIds", [])
    limit, token = p.get("MaxResults"), p.get("NextToken")
    if wanted and (limit is not None or token):
        raise EC2Error("InvalidParameterCombination", "The parameter instancesSet cannot be used with MaxResults.")
    paging.max_results(p)
    offset = paging.offset(token)
    pool = {vm.id: (vm, hid) for vm, hid in ctx.session.vms_with_hosts(False)}
    chosen = _wanted_vms(ctx, wanted, pool) if wanted else sorted(pool.values(), key=lambda pair: pair[0].id)
    if not p.get("IncludeAllInstances", False):  # EC2's default: running instances only
        chosen = [(vm, hid) for vm, hid in chosen if states.instance_state(vm.state, vm.lcm_state)["Name"] == "running"]
    on_hosts = any(hid >= 0 and instance_status(vm.state, vm.lcm_state) != "not-applicable" for vm, hid in chosen)
    hosts = ctx.session.gateway.host_states() if on_hosts else {}
    # the pool's short answer has no tags (econe caches them for DescribeInstances): tag:KEY matches none
    matches = matcher(filters, _STATUS_FILTERS)
    items = [s for s in (_status_item(vm, hosts.get(hid)) for vm, hid in chosen) if matches(s)]
    more = False
    if limit:
        more = len(items) > offset + limit
        items = items[offset : offset + limit]
    return {"InstanceStatuses": items, "NextToken": paging.token(offset + limit) if more else None}


# ---------------------------------------------------------------- instance types


def _capacity(body: list) -> dict[str, str]:
    """CPU, VCPU and MEMORY of a VM template (those it has)."""
    return {k: tpl.get(body, k) for k in ("CPU", "VCPU", "MEMORY") if isinstance(tpl.get(body, k), str)}


def _type_bodies(ctx: Context) -> dict[str, list]:
    """Each instance type the user may launch -> its template: the VM templates carrying
    EC2_INSTANCE_TYPE (the lowest id of a name), or the file templates rendered as RunInstances does."""
    if ctx.config.use_file_templates:
        return {name: tpl.parse(render_file_template(ctx.config, name, 0, "")) for name in ctx.config.instance_types}
    out: dict[str, list] = {}
    for t in sorted(ctx.session.templates(), key=lambda t: t.id):
        name = tpl.get(t.body, "EC2_INSTANCE_TYPE")
        if isinstance(name, str) and name not in out:
            out[name] = t.body
    return out


def _number(text: str | None, conv, default):
    try:
        return conv(text) if text else default
    except ValueError:
        return default


def _type_info(name: str, body: list) -> dict:
    cap = _capacity(body)
    # EC2's vCPUs are OpenNebula's VCPU (virtual CPUs the guest sees); without one, oned gives the
    # guest one, and CPU (the share of physical CPUs) is no count of them
    vcpus = _number(cap.get("VCPU"), int, 0) or 1
    memory = _number(cap.get("MEMORY"), int, 0)
    return {
        "InstanceType": name,
        "CurrentGeneration": True,
        "FreeTierEligible": False,
        "SupportedUsageClasses": ["on-demand"],
        "SupportedRootDeviceTypes": ["instance-store"],
        "SupportedVirtualizationTypes": ["hvm"],
        "BareMetal": False,
        "Hypervisor": "xen",  # as DescribeInstances says (the model allows only nitro or xen)
        "ProcessorInfo": {"SupportedArchitectures": [instances.arch(body) or instances.ARCHITECTURE]},
        "VCpuInfo": {"DefaultVCpus": vcpus},
        "MemoryInfo": {"SizeInMiB": memory},
        "InstanceStorageSupported": False,
        "HibernationSupported": False,
        "BurstablePerformanceSupported": False,
        "DedicatedHostsSupported": False,
        "AutoRecoverySupported": False,
    }


_TYPE_FILTERS = {
    "instance-type": lambda t: [t["InstanceType"]],
    "current-generation": lambda t: flag(t["CurrentGeneration"]),
    "free-tier-eligible": lambda t: flag(t["FreeTierEligible"]),
    "bare-metal": lambda t: flag(t["BareMetal"]),
    "hypervisor": lambda t: [t["Hypervisor"]],
    "vcpu-info.default-vcpus": lambda t: [str(t["VCpuInfo"]["DefaultVCpus"])],
    "memory-info.size-in-mib": lambda t: [str(t["MemoryInfo"]["SizeInMiB"])],
    "processor-info.supported-architecture": lambda t: t["ProcessorInfo"]["SupportedArchitectures"],
    "supported-root-device-type": lambda t: t["SupportedRootDeviceTypes"],
    "supported-virtualization-type": lambda t: t["SupportedVirtualizationTypes"],
    "supported-usage-class": lambda t: t["SupportedUsageClasses"],
    "instance-storage-supported": lambda t: flag(t["InstanceStorageSupported"]),
    "hibernation-supported": lambda t: flag(t["HibernationSupported"]),
    "burstable-performance-supported": lambda t: flag(t["BurstablePerformanceSupported"]),
    "dedicated-hosts-supported": lambda t: flag(t["DedicatedHostsSupported"]),
    "auto-recovery-supported": lambda t: flag(t["AutoRecoverySupported"]),
}
TYPES_MIN, TYPES_MAX = 5, 100  # EC2's bounds of DescribeInstanceTypes MaxResults


@action(
    "DescribeInstanceTypes",
    reads=("InstanceTypes", "Filters", "MaxResults", "NextToken"),
    ignored=("IncludeUnsupportedInRegion",),
)
def describe_instance_types(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _TYPE_FILTERS)  # EC2's other filters name what OpenNebula has no value for: refused
    limit = paging.max_results(p, TYPES_MIN, TYPES_MAX)
    offset = paging.offset(p.get("NextToken"))
    bodies = _type_bodies(ctx)
    wanted = p.get("InstanceTypes", [])
    unknown = [name for name in wanted if name not in bodies]
    if unknown:
        raise EC2Error(
            "InvalidInstanceType", f"The following supplied instance types do not exist: [{', '.join(unknown)}]"
        )
    items = [_type_info(name, bodies[name]) for name in sorted(set(wanted) or bodies)]
    matches = matcher(filters, _TYPE_FILTERS)  # a type has no tags: tag:KEY matches none
    items = [t for t in items if matches(t)]
    more = False
    if limit:
        more = len(items) > offset + limit
        items = items[offset : offset + limit]
    return {"InstanceTypes": items, "NextToken": paging.token(offset + limit) if more else None}


# ---------------------------------------------------------------- DescribeInstanceAttribute

DEFAULT_BEHAVIOR = "stop"  # EC2's default InstanceInitiatedShutdownBehavior


def _security_groups(ctx: Context, body: list) -> list[dict]:
    """The first NIC's groups as DescribeInstances shows them (nics.GroupNames), so that a client
    comparing the two (amazon.aws ec2_instance on a rerun) sees the same groups."""
    nic = tpl.get(body, "NIC")
    text = tpl.vget(nic, "SECURITY_GROUPS", "") if isinstance(nic, list) else ""
    return nics.GroupNames(ctx.session).groups(text)


def _root_device(body: list) -> str | None:
    disk = tpl.get(body, "DISK")
    target = tpl.vget(disk, "TARGET") if isinstance(disk, list) else None
    return f"/dev/{target}" if target else None


def _context(body: list) -> dict[str, str] | None:
    context = tpl.get(body, "CONTEXT")
    return dict(context) if isinstance(context, list) else None


def _user_data_of(body: list) -> str | None:
    return (_context(body) or {}).get("EC2_USER_DATA") or None


def _value(v) -> dict:
    return {"Value": v} if v is not None else {}


# attribute -> (output member, its value from (context, VM, TEMPLATE pairs)); every name of the model is answered
_ATTRIBUTES = {
    "instanceType": ("InstanceType", lambda ctx, vm, body: _value(vm.user_template.get("EC2_INSTANCE_TYPE"))),
    "kernel": ("KernelId", lambda ctx, vm, body: {}),  # OpenNebula boots the image's own kernel
    "ramdisk": ("RamdiskId", lambda ctx, vm, body: {}),
    "userData": ("UserData", lambda ctx, vm, body: _value(_user_data_of(body))),
    "disableApiTermination": (
        "DisableApiTermination",
        lambda ctx, vm, body: {"Value": protection.termination_disabled(vm)},
    ),
    "instanceInitiatedShutdownBehavior": (
        "InstanceInitiatedShutdownBehavior",
        lambda ctx, vm, body: {"Value": vm.user_template.get(protection.SHUTDOWN_BEHAVIOR) or DEFAULT_BEHAVIOR},
    ),
    "rootDeviceName": ("RootDeviceName", lambda ctx, vm, body: _value(_root_device(body))),
    "blockDeviceMapping": ("BlockDeviceMappings", lambda ctx, vm, body: []),  # instance-store: no EBS mappings
    "productCodes": ("ProductCodes", lambda ctx, vm, body: []),
    "sourceDestCheck": ("SourceDestCheck", lambda ctx, vm, body: {"Value": True}),
    "groupSet": ("Groups", lambda ctx, vm, body: _security_groups(ctx, body)),
    "ebsOptimized": ("EbsOptimized", lambda ctx, vm, body: {"Value": False}),
    "sriovNetSupport": ("SriovNetSupport", lambda ctx, vm, body: {}),
    "enaSupport": ("EnaSupport", lambda ctx, vm, body: {"Value": False}),
    "enclaveOptions": ("EnclaveOptions", lambda ctx, vm, body: {"Enabled": False}),
    "disableApiStop": ("DisableApiStop", lambda ctx, vm, body: {"Value": False}),
}


@action("DescribeInstanceAttribute", reads=("InstanceId", "Attribute"))
def describe_instance_attribute(ctx: Context, p: dict) -> dict:
    attribute = p["Attribute"]
    if attribute not in _ATTRIBUTES:
        raise invalid("Attribute", attribute, f"It must be one of {', '.join(_ATTRIBUTES)}.")
    vm, body = instances.get_vm_with_template(ctx, p["InstanceId"])
    member, read = _ATTRIBUTES[attribute]
    return {"InstanceId": ids.fmt("i", vm.id), member: read(ctx, vm, body)}


# ---------------------------------------------------------------- ModifyInstanceAttribute

# the attribute of the value form (Attribute=...&Value=...) -> the structured member botocore sends
_MEMBERS = {
    "instanceType": "InstanceType",
    "kernel": "Kernel",
    "ramdisk": "Ramdisk",
    "userData": "UserData",
    "disableApiTermination": "DisableApiTermination",
    "instanceInitiatedShutdownBehavior": "InstanceInitiatedShutdownBehavior",
    "groupSet": "Groups",
    "sourceDestCheck": "SourceDestCheck",
    "ebsOptimized": "EbsOptimized",
    "sriovNetSupport": "SriovNetSupport",
    "enaSupport": "EnaSupport",
    "blockDeviceMapping": "BlockDeviceMappings",
    "enclaveOptions": "EnclaveOptions",
    "disableApiStop": "DisableApiStop",
}
_BOOLEANS = {"disableApiTermination", "sourceDestCheck", "ebsOptimized", "enaSupport", "disableApiStop"}
# what this cloud always is: setting it so is accepted (nothing to change), otherwise refused
_FIXED = {"sourceDestCheck": True, "ebsOptimized": False, "enaSupport": False, "disableApiStop": False}
# the attributes that change the VM's capacity or CONTEXT: oned does it while the VM is off (EC2: stopped)
_WHILE_STOPPED = {"instanceType", "userData"}
_STOPPED = (VM_STATE.POWEROFF, VM_STATE.UNDEPLOYED)  # one.vm.resize and updateconf take these (not STOPPED)


def _boolean(attribute: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise invalid("Value", text, f"The {attribute} attribute takes true or false.")
    return text.lower() == "true"


def _requested(p: dict) -> tuple[str, object]:
    """The one attribute a request changes and its new value, from either form EC2 takes."""
    given = [(attr, p[member]) for attr, member in _MEMBERS.items() if member in p]
    if "Attribute" in p:
        attribute = p["Attribute"]
        if attribute not in _MEMBERS:
            raise invalid("Attribute", attribute, "This attribute cannot be modified.")
        if "Value" not in p and attribute not in ("groupSet", "blockDeviceMapping"):
            raise missing("Value")
        given.append((attribute, p.get("Value")))
    if not given:
        raise missing("Attribute")
    if len(given) > 1:
        names = ", ".join(sorted({attr for attr, _ in given}))
        raise EC2Error("InvalidParameterCombination", f"Fields for multiple attribute types specified: {names}")
    attribute, value = given[0]
    if isinstance(value, dict) and set(value) <= {"Value"}:
        value = value.get("Value")  # the structured form: InstanceType.Value=...
        if value is None:
            raise missing(f"{_MEMBERS[attribute]}.Value")
    if attribute in _BOOLEANS and isinstance(value, str):
        value = _boolean(attribute, value)
    if attribute == "userData":
        value = _user_data_value(value)
    return attribute, value


def _user_data_value(value) -> str:
    """User data as RunInstances stores it: base64 text. The structured form arrives decoded (its
    model type is a blob), the value form as the base64 the client sent."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    try:
        base64.b64decode(value or "", validate=True)
    except (ValueError, binascii.Error):
        raise invalid("Value", (value or "")[:40], "User data must be base64.") from None
    return value or ""


def _refuse_unsupported(attribute: str, value) -> None:
    if attribute in _FIXED and value != _FIXED[attribute]:
        raise EC2Error("UnsupportedOperation", f"{attribute} is always {str(_FIXED[attribute]).lower()} on this cloud.")
    if attribute == "groupSet":
        # OpenNebula keeps the groups on the NIC; oned 6.10 changes them only by one.vm.attachsg and
        # one.vm.detachsg, which this version does not use: refused rather than half done
        raise EC2Error(
            "UnsupportedOperation",
            "The security groups of an existing instance cannot be changed on this cloud:"
            " launch an instance with the groups it needs.",
        )
    if attribute in ("kernel", "ramdisk", "sriovNetSupport", "blockDeviceMapping", "enclaveOptions"):
        raise EC2Error("UnsupportedOperation", f"The {attribute} attribute cannot be modified on this cloud.")


def _new_capacity(ctx: Context, itype: str) -> tuple[str, int | None]:
    """The CPU, VCPU and MEMORY of *itype*, as one.vm.resize text; and its VM template's id (None for
    a file template), which a dry run checks the user may use."""
    if ctx.config.use_file_templates:
        body, template_id = tpl.parse(render_file_template(ctx.config, itype, 0, "")), None
    else:
        template = template_for(ctx, itype)
        body, template_id = template.body, template.id
    return tpl.serialize(list(_capacity(body).items())), template_id


@action(
    "ModifyInstanceAttribute",
    reads=("InstanceId", "Attribute", "Value", *_MEMBERS.values()),
    stored=("InstanceType", "UserData", "Value"),
    changes=True,
)
def modify_instance_attribute(ctx: Context, p: dict) -> dict:
    attribute, value = _requested(p)
    _refuse_unsupported(attribute, value)
    vm, body = instances.get_vm_with_template(ctx, p["InstanceId"])
    name = ids.fmt("i", vm.id)
    if vm.state == VM_STATE.DONE:
        raise EC2Error("IncorrectInstanceState", f"The instance '{name}' is terminated.")
    if attribute in _WHILE_STOPPED and vm.state not in _STOPPED:
        raise EC2Error("IncorrectInstanceState", f"The instance '{name}' is not in the 'stopped' state.")
    if attribute == "instanceInitiatedShutdownBehavior":
        value = protection.shutdown_behavior(value)
    needs = [("MANAGE", "VM", vm.id)]
    if attribute == "instanceType":
        capacity, template_id = _new_capacity(ctx, value)
        if template_id is not None:
            needs.append(("USE", "TEMPLATE", template_id))
    if attribute == "userData" and _context(body) is None:
        # oned does not add a CONTEXT to an existing VM ("cannot add a new one")
        raise EC2Error(
            "UnsupportedOperation",
            f"The instance '{name}' was launched without user data or a context: its user data cannot be set.",
        )
    if ctx.dry_run:
        ctx.session.decide_dry_run(needs)
    if attribute == "instanceType":
        ctx.session.vm_resize(vm.id, capacity)
        _set(ctx, vm, "EC2_INSTANCE_TYPE", value)
    elif attribute == "userData":
        ctx.session.vm_updateconf(vm.id, tpl.serialize([("CONTEXT", [("EC2_USER_DATA", value)])]))
    elif attribute == "disableApiTermination":
        _set(ctx, vm, protection.NO_TERMINATION, "true" if value else "false")
    elif attribute == "instanceInitiatedShutdownBehavior":
        _set(ctx, vm, protection.SHUTDOWN_BEHAVIOR, value)
    return {}


def _set(ctx: Context, vm: VM, name: str, text: str) -> None:
    """One attribute of the VM's user template; this server's cache of its EC2 attributes (which
    DescribeInstances reads) learns it without reading the VM again."""
    ctx.session.vm_update(vm.id, tpl.serialize([(name, text)]))
    ctx.session.made(vm.id, {**vm.user_template, name: text}, vm.arch)

"""RunInstances, DescribeInstances, TerminateInstances, Start/Stop/RebootInstances."""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import ipaddress
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from one import template as tpl
from one.codes import LCM_STATE, VM_STATE

from .. import ids, model, states
from ..errors import EC2Error, invalid, missing, unavailable
from ..objects import VM
from . import claims, keypairs, nics, paging, tagging, volumes, waits
from .filters import check_names, matcher, present
from .images import get_ami
from .instance_types import render_file_template, template_for
from .protection import launch_attributes, refuse_protected
from .regions import ZONE
from .registry import Context, action

# oned's VM and LCM states (include/VirtualMachine.h), by the names one.codes gives them
ACTIVE, DONE = VM_STATE.ACTIVE, VM_STATE.DONE
RUNNING, EPILOG = LCM_STATE.RUNNING, LCM_STATE.EPILOG  # EPILOG: the last step of a terminate: nothing to add
# the states oned's resume starts a VM from (DispatchManager::resume, src/dm/DispatchManagerActions.cc)
RESUMABLE = (VM_STATE.POWEROFF, VM_STATE.STOPPED, VM_STATE.SUSPENDED, VM_STATE.UNDEPLOYED)
# those the drivers leave within seconds, in which oned refuses a terminate: a deployment, and the
# work on a disk or NIC (a volume attached to a stopped instance passes through HOTPLUG_PROLOG_POWEROFF,
# which EC2 shows as stopped, so a client that waited for stopped may terminate it meanwhile)
BUSY = {
    LCM_STATE.PROLOG,
    LCM_STATE.BOOT,
    LCM_STATE.PROLOG_RESUME,
    LCM_STATE.BOOT_POWEROFF,
    LCM_STATE.BOOT_SUSPENDED,
    LCM_STATE.BOOT_STOPPED,
    LCM_STATE.PROLOG_UNDEPLOY,
    LCM_STATE.BOOT_UNDEPLOY,
    *(s for s in LCM_STATE if states.LCM_SHORT.get(s) in ("hotp", "snap", "drsz")),
}

TERMINATED_VISIBLE = 900  # seconds a DONE VM stays listed
ARCHITECTURE = "x86_64"  # when the VM's template has no OS/ARCH
ASKED = "EC2_CLIENT_REQUEST"  # a VM's user attribute: the digest of what the RunInstances with a token asked


def vm_tags(vm: VM) -> list[dict] | None:
    """The VM's tags; none when EC2_TAGS is not an object econe wrote (a user may write its VM's user
    template in OpenNebula itself), as for the other resources' tags."""
    text = vm.user_template.get("EC2_TAGS")
    return tagging.as_list(tagging.load(text)) if text else None  # most VMs have none: no JSON to read


def _launch_index(text: str | None) -> int:
    """EC2_LAUNCH_INDEX as RunInstances wrote it; 0 for what it did not write (as for vm_tags)."""
    try:
        return int(text or 0)
    except ValueError:
        return 0


@functools.lru_cache(maxsize=65536)
def _is_global(ip: str) -> bool:
    """A globally routable address: the only kind EC2 would call public."""
    try:
        return ipaddress.ip_address(ip).is_global
    except ValueError:
        return False


def describe(vm: VM, group_names: nics.GroupNames) -> dict:
    """The EC2 Instance of an OpenNebula VM (*group_names*: a security group's name by id)."""
    u = vm.user_template
    # a DONE VM's NICs still name the addresses it had, but their leases are back in the vnet
    ips = [n.ip for n in vm.nics if n.ip] if vm.state != DONE else []
    elastic = [n.ip for n in vm.nics if group_names.is_elastic(n)] if vm.state != DONE else []
    out = {
        "InstanceId": ids.fmt("i", vm.id),
        "ImageId": u.get("EC2_IMAGE_ID") or (ids.fmt("ami", vm.image_ids[0]) if vm.image_ids else ""),
        "State": states.instance_state(vm.state, vm.lcm_state),
        "PrivateDnsName": "",  # no DNS here; EC2 clients take an empty name for none
        "PublicDnsName": "",
        "PrivateIpAddress": ips[0] if ips else None,
        # an elastic IP (addresses.py) first, else a globally routable address of the VM's own
        "PublicIpAddress": elastic[0] if elastic else next((ip for ip in ips if _is_global(ip)), None),
        "InstanceType": u.get("EC2_INSTANCE_TYPE") or vm.template.get("EC2_INSTANCE_TYPE") or "",
        "LaunchTime": nics.utc_time(vm.stime),  # the same object as its NICs' AttachTime
        "Placement": {"AvailabilityZone": ZONE, "Tenancy": "default"},
        "AmiLaunchIndex": _launch_index(u.get("EC2_LAUNCH_INDEX")),
        "Monitoring": {"State": "disabled"},
        "Architecture": vm.arch or ARCHITECTURE,
        "RootDeviceType": "instance-store",
        "BlockDeviceMappings": volumes.block_devices(vm),
        "VirtualizationType": "hvm",
        "Hypervisor": "xen",
        "ClientToken": u.get("EC2_CLIENT_TOKEN") or None,
        "KeyName": u.get("EC2_KEYNAME") or None,
        "Tags": vm_tags(vm),
        **nics.instance_network(vm, group_names),
    }
    if vm.state == DONE:
        out["StateTransitionReason"] = "User initiated"
    return out


def _described(vm: VM, names: nics.GroupNames) -> list:
    """[names of the groups, description, its XML or None until written] of *vm*, kept with the VM
    (`VM.views`; the gateway hands out the same object while the VM is unchanged) as long as its
    groups have the same names."""
    groups = [names.groups(nic.security_groups) for nic in vm.nics] if vm.state != DONE else []
    kept = vm.views.get("instance")
    if kept is None or kept[0] != groups:
        kept = vm.views["instance"] = [groups, describe(vm, names), None]
    return kept


def _written(vm: VM, names: nics.GroupNames) -> model.Fragment:
    kept = _described(vm, names)
    if kept[2] is None:
        kept[2] = model.fragment("Instance", kept[1])
    return kept[2]


def _reservations(described: list[tuple[VM, dict | model.Fragment]]) -> list[dict]:
    """Instances (each VM with its description) grouped by reservation; OwnerId is the owner's numeric
    OpenNebula id, as for images. The reservation of one unchanged instance is kept with its VM."""
    rids = [vm.user_template.get("EC2_RESERVATION_ID") or f"r-{vm.id:08d}" for vm, _ in described]
    sizes = collections.Counter(rids)
    groups: dict[str, dict] = {}
    for (vm, instance), rid in zip(described, rids):
        if sizes[rid] == 1:
            kept = vm.views.get("reservation")
            if kept is None or kept["Instances"][0] is not instance or kept["ReservationId"] != rid:
                kept = vm.views["reservation"] = _reservation(vm, rid, [instance])
            groups[rid] = kept
        elif rid in groups:
            groups[rid]["Instances"].append(instance)
        else:
            groups[rid] = _reservation(vm, rid, [instance])
    return list(groups.values())


def _reservation(vm: VM, rid: str, instances: list) -> dict:
    return {"ReservationId": rid, "OwnerId": str(vm.uid), "Groups": [], "Instances": instances}


# ---------------------------------------------------------------- filters


_FILTERS = {
    "instance-id": lambda d: [d["InstanceId"]],
    "image-id": lambda d: [d["ImageId"]],
    "instance-type": lambda d: [d["InstanceType"]],
    "instance-state-name": lambda d: [d["State"]["Name"]],
    "instance-state-code": lambda d: [str(d["State"]["Code"])],
    "private-ip-address": lambda d: present(d["PrivateIpAddress"]),
    "client-token": lambda d: present(d["ClientToken"]),
    "key-name": lambda d: present(d["KeyName"]),
    "availability-zone": lambda d: [ZONE],
    "tag-key": lambda d: [t["Key"] for t in d["Tags"] or []],
    **nics.INSTANCE_FILTERS,
}


# ---------------------------------------------------------------- DescribeInstances


def _visible(vm: VM, now: float, with_terminated: bool) -> bool:
    if vm.state != DONE:
        return True
    return with_terminated and now - vm.etime <= TERMINATED_VISIBLE


@action("DescribeInstances", reads=("InstanceIds", "Filters", "MaxResults", "NextToken"))
def describe_instances(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _FILTERS)
    wanted = p.get("InstanceIds", [])
    if wanted and ("MaxResults" in p or "NextToken" in p):
        raise EC2Error("InvalidParameterCombination", "The parameter instancesSet cannot be used with MaxResults.")
    limit = paging.max_results(p)
    offset = paging.offset(p.get("NextToken"))
    now = time.time()
    with_done = ctx.config.describe_with_terminated_instances
    more = False
    names = nics.GroupNames(ctx.session, ctx.config.elasticips_vnet_id)
    if wanted:
        items = [get_vm(ctx, text) for text in wanted]
    elif limit and not filters:  # one page of oned's work, not the whole pool
        page = ctx.session.vms(with_done, offset, limit + 1)
        more = len(page) > limit
        items = [vm for vm in page[:limit] if _visible(vm, now, with_done)]
    else:
        items = [vm for vm in ctx.session.vms(with_done) if _visible(vm, now, with_done)]
        if filters:
            matches = matcher(filters, _FILTERS)
            items = [vm for vm in items if matches(_described(vm, names)[1])]
        if limit:
            more = len(items) > offset + limit
            items = items[offset : offset + limit]
    token = paging.token(offset + limit) if more else None
    return {"Reservations": _reservations([(vm, _written(vm, names)) for vm in items]), "NextToken": token}


def get_vm(ctx: Context, text: str) -> VM:
    return _still_listed(text, ids.read(text, "i", ctx.session.vm))


def get_vm_with_template(ctx: Context, text: str) -> tuple[VM, list]:
    """The VM and its whole TEMPLATE, from one one.vm.info, found as get_vm finds it."""
    vm, body = ids.read(text, "i", ctx.session.vm_with_template)
    return _still_listed(text, vm), body


def _still_listed(text: str, vm: VM) -> VM:
    """A terminated instance is NotFound once it has been listed TERMINATED_VISIBLE seconds."""
    if vm.state == DONE and time.time() - vm.etime > TERMINATED_VISIBLE:
        raise ids.not_found("i", text)
    return vm


# ---------------------------------------------------------------- RunInstances


def _user_data(p: dict) -> str:
    data = p.get("UserData")
    if data is None:
        return ""
    try:
        base64.b64decode(data, validate=True)
    except (ValueError, binascii.Error):
        raise invalid("UserData", data[:40], "It must be base64.") from None
    return data


def _instance_tags(p: dict) -> dict[str, str]:
    tags: dict[str, str] = {}
    for spec in p.get("TagSpecifications", []):
        if spec.get("ResourceType", "instance") != "instance":
            continue
        for tag in spec.get("Tags", []):
            if "Key" not in tag:
                raise missing("TagSpecification.N.Tag.N.Key")
            tags[tag["Key"]] = tag.get("Value", "")
    return tags


RUN_READS = (
    "ImageId",
    "InstanceType",
    "MinCount",
    "MaxCount",
    "UserData",
    "ClientToken",
    "TagSpecifications",
    "Placement",
    "KeyName",
    "DisableApiTermination",
    "InstanceInitiatedShutdownBehavior",
    *nics.RUN_READS,
)
RUN_IGNORED = ("Monitoring", "EbsOptimized")
# tags in EC2_TAGS, the Name tag as NAME; KeyName as EC2_KEYNAME
RUN_STORED = ("InstanceType", "UserData", "ClientToken", "TagSpecifications", "KeyName", *nics.RUN_STORED)


@dataclass(frozen=True)
class Launch:
    """What every VM of one RunInstances is made with, besides its instance type and image."""

    user_data: str
    tags: dict[str, str]
    key: keypairs.KeyPair | None  # its public key goes into CONTEXT
    nic: nics.Choice | None  # shapes the first NIC
    attrs: list[tuple[str, str]]  # more user-template attributes (protection, shutdown behaviour, key name)


@action("RunInstances", reads=RUN_READS, ignored=RUN_IGNORED, stored=RUN_STORED, changes=True)
def run_instances(ctx: Context, p: dict) -> dict:
    for name in ("ImageId", "InstanceType"):
        if not p.get(name):
            raise missing(name)
    low, high = p["MinCount"], p["MaxCount"]
    if low < 1 or high < 1:
        raise invalid("MinCount" if low < 1 else "MaxCount", min(low, high), "It must be at least 1.")
    if low > high:
        raise EC2Error("InvalidParameterValue", f"MinCount ({low}) must not be greater than MaxCount ({high}).")
    ceiling = ctx.config.max_count
    if low > ceiling:  # as EC2: as many as the limit allows, but not fewer than MinCount
        raise EC2Error(
            "InstanceLimitExceeded",
            f"You have requested more instances ({low}) than your current instance limit of {ceiling} allows.",
        )
    high = min(high, ceiling)
    zone = p.get("Placement", {}).get("AvailabilityZone")
    if zone not in (None, "", ZONE):
        raise EC2Error("InvalidParameterValue", f"Invalid availability zone: [{zone}]")
    image_id = get_ami(ctx, p["ImageId"]).id
    user_data = _user_data(p)
    tags = _instance_tags(p)
    key = keypairs.by_name(ctx, p["KeyName"]) if "KeyName" in p else None
    attrs = launch_attributes(p) + ([("EC2_KEYNAME", key.name)] if key else [])
    launch = Launch(user_data, tags, key, nics.choose(ctx, p, high), attrs)
    token = p.get("ClientToken")
    if ctx.dry_run:  # the VM is shaped as the launch shapes it (its NIC checked); then the user may use
        # the image and the type's VM template, and create VMs (nics.choose checked the subnet and groups),
        # and a template: the token's claim (claims.py)
        template_id = _maker(ctx, p["InstanceType"], image_id, launch).template_id
        needs = [("USE", "IMAGE", image_id), ("CREATE", "VM", None)]
        needs += [("USE", "TEMPLATE", template_id)] if template_id is not None else []
        ctx.session.decide_dry_run(needs + ([("CREATE", "TEMPLATE", None)] if token else []))
    if not token:
        return _run(ctx, p, image_id, launch, None, low, high)
    asked = _asked(p)

    def find() -> dict | None:
        made = _made_for(ctx, token)
        if not made:
            return None
        if any(vm.user_template.get(ASKED, asked) != asked for vm in made):  # a VM without it: older than the digest
            why = f"The ClientToken '{token}' was used for a RunInstances of other parameters."
            raise EC2Error("IdempotentParameterMismatch", why)
        return _run_answer(ctx, made)

    return claims.once(ctx, "run", token, find, lambda: _run(ctx, p, image_id, launch, (token, asked), low, high))


def _asked(p: dict) -> str:
    """What a RunInstances asks for, as a digest: the same token again must ask the same (EC2 answers
    IdempotentParameterMismatch else), whatever its zone and count of tries."""
    asked = {name: p.get(name) for name in RUN_READS if name not in ("ClientToken", "Placement")}
    asked["Placement"] = {k: v for k, v in (p.get("Placement") or {}).items() if k != "AvailabilityZone"}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()


def _made_for(ctx: Context, token: str) -> list[VM]:
    """The VMs a RunInstances with *token* made, by id, as oned has them now. The listing finds them (a
    VM another server made is read whole there: this server has no copy of its attributes), and each is
    read again: the listing's copy may predate a failed request's removal of its token."""
    listed = sorted(vm.id for vm in ctx.session.vms(True) if vm.user_template.get("EC2_CLIENT_TOKEN") == token)
    return [vm for vm in map(ctx.session.vm, listed) if vm.user_template.get("EC2_CLIENT_TOKEN") == token]


def _run(ctx: Context, p, image_id: int, launch: Launch, claimed: tuple[str, str] | None, low: int, high: int) -> dict:
    """Make the VMs; *claimed*: the ClientToken whose claim this request holds, and the digest of what it asks."""
    reservation = "r-" + secrets.token_hex(9)[:17]
    made: list[int] = []
    maker = _maker(ctx, p["InstanceType"], image_id, launch)
    token = claimed[0] if claimed else None
    stop_at = time.monotonic() + claims.MAKE_WITHIN if claimed else math.inf
    try:
        for index in range(high):
            if time.monotonic() > stop_at:  # oned is slow: past this, the claim may soon be another request's
                raise unavailable(f"RunInstances made {index} VMs in {claims.MAKE_WITHIN} s")
            user_attrs = [
                ("EC2_IMAGE_ID", ids.fmt("ami", image_id)),
                ("EC2_INSTANCE_TYPE", p["InstanceType"]),
                ("EC2_RESERVATION_ID", reservation),
                ("EC2_LAUNCH_INDEX", str(index)),
            ]
            if claimed:
                user_attrs += [("EC2_CLIENT_TOKEN", claimed[0]), (ASKED, claimed[1])]
            if launch.tags:
                user_attrs.append(("EC2_TAGS", json.dumps(launch.tags, sort_keys=True)))
            user_attrs += launch.attrs
            vmid = maker.make(user_attrs, launch.tags.get("Name", ""))
            made.append(vmid)
            ctx.session.made(vmid, dict(user_attrs), maker.arch)
    except EC2Error as e:
        if len(made) >= low:
            ctx.log.warning("RunInstances made %d of %d: %s", len(made), high, e.detail or e.message)
        else:
            remove = _terminator(time.monotonic() + TERMINATE_WAIT)  # the scheduler may be deploying them
            for vmid in made:  # MinCount not met: remove what was made
                try:
                    if token:  # the request failed: its token must not return these when the client retries
                        ctx.session.vm_update(vmid, tpl.serialize([("EC2_CLIENT_TOKEN", "")]))
                    remove(ctx, ctx.session.vm(vmid), "terminate-hard")
                except EC2Error as cleanup:
                    ctx.log.error(
                        "could not remove VM %d after a failed RunInstances: %s",
                        vmid,
                        cleanup.detail or cleanup.message,
                    )
            raise
    return _run_answer(ctx, ctx.session.vms_by_id(made))


def _run_answer(ctx: Context, vms: list[VM]) -> dict:
    names = nics.GroupNames(ctx.session, ctx.config.elasticips_vnet_id)
    reservations = _reservations([(vm, describe(vm, names)) for vm in vms])
    return {
        "ReservationId": reservations[0]["ReservationId"],
        "OwnerId": reservations[0]["OwnerId"],
        "Groups": [],
        "Instances": [i for r in reservations for i in r["Instances"]],
    }


def arch(body: list) -> str:
    """OS/ARCH of a template: the VM made from it has the same."""
    os_ = tpl.get(body, "OS")
    return tpl.vget(os_, "ARCH", "") if isinstance(os_, list) else ""


def _type_nics(body: list) -> list:
    return [v for k, v in body if k == "NIC" and isinstance(v, list)]


@dataclass(frozen=True)
class Maker:
    """What makes one VM of an instance type, resolved once per request."""

    make: Callable[[list, str], int]  # (user attributes, name) -> the new VM's id
    arch: str  # OS/ARCH of its template
    template_id: int | None  # the VM template instantiated (None: a file template is allocated)


def _maker(ctx: Context, itype: str, image_id: int, launch: Launch) -> Maker:
    """The Maker of *itype*'s VMs; the client's error when the VM cannot be shaped as asked (its NIC)."""
    user_data, nic = launch.user_data, launch.nic
    context_values = [("EC2_USER_DATA", user_data)] if user_data else []
    context_values += keypairs.context_values(launch.key)
    if ctx.config.use_file_templates:
        values = keypairs.launch_values(launch.key)
        body = tpl.parse(render_file_template(ctx.config, itype, image_id, user_data, *values))
        if nic is not None:
            body = tpl.remove(body, "NIC") + nics.shape(_type_nics(body), nic)

        def make(user_attrs, name):
            vm = body + user_attrs
            with nics.lease_errors(nic):
                return ctx.session.vm_allocate(tpl.serialize(tpl.replace(vm, "NAME", name) if name else vm))

        return Maker(make, arch(body), None)
    template = template_for(ctx, itype)
    # the extra template replaces DISK and CONTEXT entirely: send the type's own ones along
    disks = [("DISK", [("IMAGE_ID", str(image_id))])] + [(k, v) for k, v in template.body if k == "DISK"]
    context = tpl.get(template.body, "CONTEXT")
    if context_values or isinstance(context, list):
        disks.append(("CONTEXT", tpl.merge(context if isinstance(context, list) else [], context_values)))
    disks += nics.shape(_type_nics(template.body), nic)  # the extra template's NICs replace all of the type's

    def make(user_attrs, name):
        with nics.lease_errors(nic):
            return ctx.session.instantiate(template.id, name, tpl.serialize(disks + user_attrs))

    return Maker(make, arch(template.body), template.id)


# ---------------------------------------------------------------- Terminate/Start/Stop/Reboot


def _act(ctx: Context, vm: VM, op: str) -> None:
    ctx.session.vm_action(op, vm.id)


def _change(ctx: Context, p: dict, choose, act=_act) -> list[dict]:
    wanted = p.get("InstanceIds") or []
    if not wanted:
        raise missing("InstanceId.1")
    vms = [get_vm(ctx, text) for text in wanted]  # every id and state is checked before anything is done
    ops = [choose(vm) for vm in vms]
    if ctx.dry_run:
        ctx.session.decide_dry_run([("MANAGE", "VM", vm.id) for vm, op in zip(vms, ops, strict=True) if op])
    out = []
    for vm, op in zip(vms, ops, strict=True):
        before = states.instance_state(vm.state, vm.lcm_state)
        if op:
            act(ctx, vm, op)
        after = ctx.session.vm(vm.id)
        out.append(
            {"InstanceId": ids.fmt("i", vm.id), "PreviousState": before, "CurrentState": _after_state(op, after)}
        )
    return out


# the transition an action starts: EC2 answers with it
_UNDER_WAY = {
    "terminate": "shutting-down",
    "terminate-hard": "shutting-down",
    "poweroff": "stopping",
    "poweroff-hard": "stopping",
    "resume": "pending",
}


def _after_state(op: str | None, vm: VM) -> dict:
    """Where the action is taking the instance: oned answers before its drivers act, and they may be
    done within milliseconds (a resumed VM reads POWEROFF, then RUNNING 30 ms later). Only DONE is
    final at once (oned terminates a VM that is on no host immediately)."""
    now = states.instance_state(vm.state, vm.lcm_state)
    target = _UNDER_WAY.get(op or "")
    if target and now["Name"] != "terminated":
        return {"Code": states.EC2_CODES[target], "Name": target}
    return now


TERMINATE_WAIT = 10  # seconds one TerminateInstances waits for the drivers, all its instances together


def _terminate_step(vm: VM) -> str | None:
    """The terminate oned takes in the VM's state; None when it is ending already."""
    if vm.state == DONE or (vm.state, vm.lcm_state) == (ACTIVE, EPILOG):
        return None
    return "terminate" if (vm.state, vm.lcm_state) == (ACTIVE, RUNNING) else "terminate-hard"


def _terminate_op(vm: VM) -> str | None:
    """TerminateInstances' choice: every instance named is checked for protection before any is
    terminated (and only here: a failed RunInstances removes its own protected VMs)."""
    op = _terminate_step(vm)
    if op:
        refuse_protected(vm)
    return op


def _busy(vm: VM) -> bool:
    return vm.state == ACTIVE and vm.lcm_state in BUSY


def _terminator(deadline: float):
    """oned refuses to terminate a VM its drivers are deploying (the scheduler may deploy it between
    our read and the call) or plugging a disk into, which a client may terminate on EC2: wait for the drivers
    until *deadline*, in at most a few requests at once; other refusals are the client's answer."""

    def terminate(ctx: Context, vm: VM, op: str) -> None:
        while op:
            try:
                ctx.session.vm_action(op, vm.id)
                return
            except EC2Error as e:
                if e.code != "IncorrectInstanceState" or time.monotonic() > deadline:
                    raise
                was, vm = vm, ctx.session.vm(vm.id)
                # refused in the state it is still in: the client's answer; a VM that has moved on
                # (its hot-plug ended between the refusal and this read) is tried again as it is now
                if not _busy(vm) and (vm.state, vm.lcm_state) == (was.state, was.lcm_state):
                    raise
            if _busy(vm):

                def done() -> bool:
                    nonlocal vm
                    vm = ctx.session.vm(vm.id)
                    return not _busy(vm)

                if waits.until(done, deadline - time.monotonic(), poll=0.2) is None:
                    busy = f"The instance '{ids.fmt('i', vm.id)}' is busy: try again."
                    raise EC2Error("IncorrectInstanceState", busy)
            op = _terminate_step(vm)

    return terminate


@action("TerminateInstances", reads=("InstanceIds",), changes=True)
def terminate_instances(ctx: Context, p: dict) -> dict:
    return {"TerminatingInstances": _change(ctx, p, _terminate_op, _terminator(time.monotonic() + TERMINATE_WAIT))}


def _stop_op(force: bool):
    def choose(vm: VM) -> str | None:
        if (vm.state, vm.lcm_state) == (ACTIVE, RUNNING):
            return "poweroff-hard" if force else "poweroff"
        if vm.state in RESUMABLE:
            return None
        raise EC2Error(
            "IncorrectInstanceState",
            f"The instance '{ids.fmt('i', vm.id)}' is not in a state from which it can be stopped.",
        )

    return choose


def _start_op(vm: VM) -> str | None:
    if vm.state in RESUMABLE:
        return "resume"
    if (vm.state, vm.lcm_state) == (ACTIVE, RUNNING):
        return None
    raise EC2Error(
        "IncorrectInstanceState",
        f"The instance '{ids.fmt('i', vm.id)}' is not in a state from which it can be started.",
    )


@action("StopInstances", reads=("InstanceIds", "Force", "Hibernate"), changes=True)
def stop_instances(ctx: Context, p: dict) -> dict:
    if p.get("Hibernate"):  # no instance here is launched with hibernation enabled
        raise EC2Error("UnsupportedOperation", "Hibernation is not supported on this cloud: stop without Hibernate.")
    return {"StoppingInstances": _change(ctx, p, _stop_op(p.get("Force", False)))}


@action("StartInstances", reads=("InstanceIds",), ignored=("AdditionalInfo",), changes=True)
def start_instances(ctx: Context, p: dict) -> dict:
    return {"StartingInstances": _change(ctx, p, _start_op)}


def _reboot_op(vm: VM) -> str:
    if (vm.state, vm.lcm_state) != (ACTIVE, RUNNING):  # oned reboots a RUNNING VM only
        raise EC2Error("IncorrectInstanceState", f"The instance '{ids.fmt('i', vm.id)}' is not running.")
    return "reboot"


@action("RebootInstances", reads=("InstanceIds",), changes=True)
def reboot_instances(ctx: Context, p: dict) -> dict:
    _change(ctx, p, _reboot_op)
    return {}

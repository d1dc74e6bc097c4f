"""one.system.*, one.host.*, one.hostpool.*, one.datastore.*, one.datastorepool.*"""

from __future__ import annotations

from one import template as tpl

from .. import records
from ..cloud import Call
from ..conf import oned_conf
from ..errors import ACTION, INTERNAL, OneError
from ..names import hostname_error
from ..registry import method
from ..xmlgen import template as template_xml
from . import common

VERSION = "6.10.5"

HOST_INIT, HOST_MONITORED, HOST_DISABLED, HOST_OFFLINE = 0, 2, 4, 8
_STATUS = {0: HOST_MONITORED, 1: HOST_DISABLED, 2: HOST_OFFLINE}


@method("one.system.version")
def system_version(call: Call) -> str:
    return VERSION


@method("one.system.config")
def system_config(call: Call) -> str:
    return template_xml("OPENNEBULA_CONFIGURATION", oned_conf())


# ---------------------------------------------------------------- hosts


@method("one.host.allocate", str, str, str, int, required=3)
def host_allocate(call: Call, name: str, im_mad: str, vm_mad: str, cluster_id: int = -1) -> int:
    call.authorize_create("host")
    error = hostname_error(name)
    if error:
        raise OneError(INTERNAL, error)
    call.check_name_free("host", name, None, "HOST")
    cid = 0 if cluster_id < 0 else cluster_id
    cluster = call.get("cluster", cid)
    hid = call.db.next_id("host", 0)
    call.db.put(
        "host",
        {
            "ID": hid,
            "NAME": name,
            "UID": 0,
            "GID": 0,
            "STATE": HOST_INIT,
            "IM_MAD": im_mad,
            "VM_MAD": vm_mad,
            "CLUSTER_ID": cid,
            "CLUSTER": cluster["NAME"],
            "MEM_USAGE": 0,
            "CPU_USAGE": 0,
            "VMS": [],
            "LAST_MON_TIME": 0,
            "TEMPLATE": [("IM_MAD", im_mad), ("RESERVED_CPU", ""), ("RESERVED_MEM", ""), ("VM_MAD", vm_mad)],
        },
    )
    return hid


# the dummy probe's fixed answers (oned's src/im_mad/remotes/dummy-probes.d, as captured)
KVM_CPU_FEATURES = (
    "vme,ds,acpi,ss,ht,tm,pbe,dtes64,monitor,ds_cpl,vmx,smx,est,tm2,xtpr,pdcm,osxsave,f16c,rdrand,arat,"
    "tsc_adjust,clflushopt,clwb,intel-pt,sha-ni,umip,pku,ospke,waitpkg,gfni,vaes,vpclmulqdq,rdpid,movdiri,"
    "movdir64b,pks,fsrm,md-clear,serialize,arch-lbr,stibp,arch-capabilities,core-capability,ssbd,avx-vnni,"
    "xsaveopt,xsavec,xgetbv1,xsaves,pdpe1gb,abm,invtsc,rdctl-no,ibrs-all,skip-l1dfl-vmentry,mds-no,pschange-mc-no"
)
KVM_CPU_MODELS = (
    "486 pentium pentium2 pentium3 pentiumpro coreduo n270 core2duo qemu32 kvm32 cpu64-rhel5 cpu64-rhel6 kvm64 "
    "Conroe Penryn Nehalem Nehalem-IBRS Westmere Westmere-IBRS SandyBridge SandyBridge-IBRS IvyBridge "
    "IvyBridge-IBRS SapphireRapids SapphireRapids-noTSX Opteron_G1"
)


def monitor(host: dict, now: int) -> dict:
    """What the dummy monitor probe reports: the host becomes MONITORED with its capacity."""
    if host["STATE"] == HOST_INIT:
        host["STATE"] = HOST_MONITORED
    host["LAST_MON_TIME"] = now
    host["TEMPLATE"] = tpl.merge(
        host["TEMPLATE"],
        [
            ("ARCH", "x86_64"),
            ("CPUSPEED", "3200"),
            ("HOSTNAME", host["NAME"]),
            ("HYPERVISOR", "dummy"),
            ("KVM_CPU_FEATURES", KVM_CPU_FEATURES),
            ("KVM_CPU_MODELS", KVM_CPU_MODELS),
            ("MODELNAME", "Dummy(R) Core @ 3.2GHz"),
        ],
    )
    return host


@method("one.host.delete", int)
def host_delete(call: Call, oid: int) -> int:
    h = call.get("host", oid)
    call.authorize("host", h, "ADMIN")
    if h["VMS"]:
        raise OneError(ACTION, f"Can not remove a host with running VMs. Host {oid} has {len(h['VMS'])} VMs.")
    call.db.delete("host", oid)
    return oid


@method("one.host.info", int, bool, required=1)
def host_info(call: Call, oid: int, decrypt: bool = False) -> str:
    h = call.get("host", oid)
    call.authorize("host", h, "USE")
    return records.host(h)


@method("one.hostpool.info")
def hostpool_info(call: Call) -> str:
    hosts = [h for h in call.db.all("host") if call.can("host", h, "USE") or call.can("host", h, "MANAGE")]
    return "<HOST_POOL>" + "".join(records.host(h, pool=True) for h in hosts) + "</HOST_POOL>"


@method("one.host.status", int, int)
def host_status(call: Call, oid: int, status: int) -> int:
    h = call.get("host", oid)
    call.authorize("host", h, "ADMIN")
    if status not in _STATUS:
        raise OneError(INTERNAL, "Wrong status code")
    h["STATE"] = _STATUS[status]
    call.db.put("host", h)
    return oid


# ---------------------------------------------------------------- datastores


@method("one.datastore.info", int, bool, required=1)
def datastore_info(call: Call, oid: int, decrypt: bool = False) -> str:
    return common.info(call, "datastore", oid)


@method("one.datastorepool.info")
def datastorepool_info(call: Call) -> str:
    return (
        "<DATASTORE_POOL>"
        + common.owned_pool(call, "datastore", -2, -1, -1, lambda d: common.render(call, "datastore", d))
        + "</DATASTORE_POOL>"
    )


@method("one.datastore.update", int, str, int, required=2)
def datastore_update(call: Call, oid: int, text: str, mode: int = 0) -> int:
    d = call.get("datastore", oid)
    call.authorize("datastore", d, "ADMIN")
    d["TEMPLATE"] = common.update_template(d["TEMPLATE"], text, mode, "Cannot update template. ", INTERNAL)
    for key in ("DS_MAD", "TM_MAD"):
        value = tpl.get(d["TEMPLATE"], key)
        if isinstance(value, str) and not (key == "DS_MAD" and d["TYPE"] == 1):
            d[key] = value
    if d["TYPE"] == 1:
        d["TEMPLATE"] = tpl.remove(d["TEMPLATE"], "DS_MAD")
    call.db.put("datastore", d)
    return oid

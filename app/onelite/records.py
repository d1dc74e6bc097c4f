"""Every record XML onelite answers with, element for element as oned 6.10 writes it.

Functions here are pure: object dicts (as stored) in, XML strings out.

PREV_STATE (and a VM's PREV_LCM_STATE) equal the current state: oned's pool update copies the state
into them just before every write (``set_prev_state`` in VirtualMachinePool::update and its twins).
"""

from __future__ import annotations

from . import snapshots
from .xmlgen import cd, el, esc, ids, permissions, raw, template

# ---------------------------------------------------------------- owners


def _named(o: dict, uname: str, gname: str) -> str:
    """ID to NAME of an owned object, as oned starts its record."""
    return (
        f"<ID>{o['ID']}</ID><UID>{o['UID']}</UID><GID>{o['GID']}</GID>"
        + el("UNAME", uname)
        + el("GNAME", gname)
        + el("NAME", o["NAME"])
    )


def _owner(o: dict, uname: str, gname: str) -> str:
    return _named(o, uname, gname) + permissions(o["PERMS"])


# ---------------------------------------------------------------- quotas

_VM_QUOTA_KEYS = ("CPU", "MEMORY", "RUNNING_CPU", "RUNNING_MEMORY", "RUNNING_VMS", "SYSTEM_DISK_SIZE", "VMS")


def quotas(q: dict | None) -> str:
    """The four quota sections from usage sums; entries with no usage are not shown (oned cleans them)."""
    q = q or {}
    ds = "".join(
        "<DATASTORE>"
        + cd("ID", i)
        + cd("IMAGES", -1)
        + cd("IMAGES_USED", n)
        + cd("SIZE", -1)
        + cd("SIZE_USED", size)
        + "</DATASTORE>"
        for i, (n, size) in sorted(q.get("ds", {}).items(), key=lambda kv: int(kv[0]))
    )
    net = "".join(
        "<NETWORK>" + cd("ID", i) + cd("LEASES", -1) + cd("LEASES_USED", n) + "</NETWORK>"
        for i, n in sorted(q.get("net", {}).items(), key=lambda kv: int(kv[0]))
    )
    vm = ""
    if q.get("vm"):
        used = q["vm"]
        vm = "<VM>" + "".join(cd(k, -1) + cd(k + "_USED", _fmt(k, used.get(k, 0))) for k in _VM_QUOTA_KEYS) + "</VM>"
    img = "".join(
        "<IMAGE>" + cd("ID", i) + cd("RVMS", -1) + cd("RVMS_USED", n) + "</IMAGE>"
        for i, n in sorted(q.get("img", {}).items(), key=lambda kv: int(kv[0]))
    )
    return raw("DATASTORE_QUOTA", ds) + raw("NETWORK_QUOTA", net) + raw("VM_QUOTA", vm) + raw("IMAGE_QUOTA", img)


def _fmt(key: str, value) -> str:
    return f"{value:.2f}" if key in ("CPU", "RUNNING_CPU") else str(int(value))


EMPTY_QUOTAS = quotas(None)

# ---------------------------------------------------------------- users and groups


def user(u: dict, gname: str, quota: dict | None = None, pool: bool = False) -> str:
    # ordered by token, as oned's std::map keeps them; escaped, where oned writes a user's chosen token raw
    tokens = "".join(
        f"<LOGIN_TOKEN><TOKEN>{esc(t)}</TOKEN><EXPIRATION_TIME>{exp}</EXPIRATION_TIME><EGID>{egid}</EGID></LOGIN_TOKEN>"
        for t, exp, egid in sorted(u["LOGIN_TOKENS"])
    )
    body = (
        f"<ID>{u['ID']}</ID><GID>{u['GID']}</GID>"
        + ids("GROUPS", u["GROUPS"])
        + el("GNAME", gname)
        + el("NAME", u["NAME"])
        + cd("PASSWORD", u["PASSWORD"])
        + cd("AUTH_DRIVER", u["AUTH_DRIVER"])
        + f"<ENABLED>{u['ENABLED']}</ENABLED>"
        + tokens
        + template("TEMPLATE", u["TEMPLATE"])
    )
    if pool:
        return f"<USER>{body}</USER><QUOTAS><ID>{u['ID']}</ID>{quotas(quota)}</QUOTAS>"
    return f"<USER>{body}{quotas(quota)}<DEFAULT_USER_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_USER_QUOTAS></USER>"


def user_pool(items: list[str]) -> str:
    return f"<USER_POOL>{''.join(items)}<DEFAULT_USER_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_USER_QUOTAS></USER_POOL>"


def group(g: dict, quota: dict | None = None, pool: bool = False) -> str:
    body = (
        f"<ID>{g['ID']}</ID>"
        + el("NAME", g["NAME"])
        + template("TEMPLATE", g["TEMPLATE"])
        + ids("USERS", g["USERS"])
        + ids("ADMINS", g["ADMINS"])
    )
    if pool:
        return f"<GROUP>{body}</GROUP><QUOTAS><ID>{g['ID']}</ID>{quotas(quota)}</QUOTAS>"
    return f"<GROUP>{body}{quotas(quota)}<DEFAULT_GROUP_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_GROUP_QUOTAS></GROUP>"


def group_pool(items: list[str]) -> str:
    return f"<GROUP_POOL>{''.join(items)}<DEFAULT_GROUP_QUOTAS>{EMPTY_QUOTAS}</DEFAULT_GROUP_QUOTAS></GROUP_POOL>"


# ---------------------------------------------------------------- ACLs


def acl_rule(rid: int, user: int, resource: int, rights: int, zone: int, string: str) -> str:
    return (
        f"<ACL><ID>{rid}</ID><USER>{user:x}</USER><RESOURCE>{resource:x}</RESOURCE>"
        f"<RIGHTS>{rights:x}</RIGHTS><ZONE>{zone:x}</ZONE><STRING>{string}</STRING></ACL>"
    )


# ---------------------------------------------------------------- hosts and datastores


def _cores(first: int) -> str:
    return "".join(
        "<CORE>"
        + cd("CPUS", ",".join(f"{c + k * 16}:-1" for k in range(4)))
        + cd("DEDICATED", "NO")
        + cd("FREE", 4)
        + cd("ID", c)
        + "</CORE>"
        for c in range(first, first + 8)
    )


_PCI = (
    (
        "0000:02:00:0",
        "02",
        "0300",
        "VGA compatible controller",
        "0863",
        "C79 [GeForce 9400M]",
        "0",
        "1",
        ",".join(f"nvidia-{n}" for n in range(908, 926)),
        "02:00.0",
        "00",
        "10de:0863:0300",
    ),
    (
        "0000:00:06:0",
        "00",
        "0c03",
        "USB controller",
        "0aa7",
        "MCP79 OHCI USB 1.1 Controller",
        "0",
        "1",
        None,
        "00:06.0",
        "06",
        "10de:0aa7:0c03",
    ),
    (
        "0000:00:06:1",
        "00",
        "0c03",
        "USB controller",
        "0aa9",
        "MCP79 EHCI USB 2.0 Controller",
        "1",
        "0",
        None,
        "00:06.1",
        "06",
        "10de:0aa9:0c03",
    ),
)


def _pci(p) -> str:
    addr, bus, cls, cls_name, dev, dev_name, fn, numa, profiles, short, slot, typ = p
    return (
        "<PCI>"
        + cd("ADDRESS", addr)
        + cd("BUS", bus)
        + cd("CLASS", cls)
        + cd("CLASS_NAME", cls_name)
        + cd("DEVICE", dev)
        + cd("DEVICE_NAME", dev_name)
        + cd("DOMAIN", "0000")
        + cd("FUNCTION", fn)
        + cd("NUMA_NODE", numa)
        + (cd("PROFILES", profiles) if profiles else "")
        + cd("SHORT_ADDRESS", short)
        + cd("SLOT", slot)
        + cd("TYPE", typ)
        + cd("VENDOR", "10de")
        + cd("VENDOR_NAME", "NVIDIA Corporation")
        + cd("VMID", -1)
        + "</PCI>"
    )


def _hugepages(fields) -> str:
    return "".join(
        "<HUGEPAGE>" + "".join(cd(k, v) for k, v in fields(size)) + "</HUGEPAGE>" for size in (2048, 1048576)
    )


def _numa_node(n: int) -> str:
    return (
        "<NODE>"
        + _cores(n * 8)
        + _hugepages(lambda s: (("PAGES", 1024), ("SIZE", s), ("USAGE", 0)))
        + "<MEMORY>"
        + cd("DISTANCE", "0 1" if n == 0 else "1 0")
        + cd("TOTAL", 8388608)
        + cd("USAGE", 0)
        + "</MEMORY>"
        + cd("NODE_ID", n)
        + "</NODE>"
    )


def host(h: dict, pool: bool = False) -> str:
    monitored = h["STATE"] != 0
    share = (
        f"<HOST_SHARE><MEM_USAGE>{h['MEM_USAGE']}</MEM_USAGE><CPU_USAGE>{h['CPU_USAGE']}</CPU_USAGE>"
        + (
            "<TOTAL_MEM>16777216</TOTAL_MEM><TOTAL_CPU>800</TOTAL_CPU><MAX_MEM>16777216</MAX_MEM><MAX_CPU>800</MAX_CPU>"
            if monitored
            else "<TOTAL_MEM>0</TOTAL_MEM><TOTAL_CPU>0</TOTAL_CPU><MAX_MEM>0</MAX_MEM><MAX_CPU>0</MAX_CPU>"
        )
        + f"<RUNNING_VMS>{len(h['VMS'])}</RUNNING_VMS><VMS_THREAD>1</VMS_THREAD>"
        + (
            "<DATASTORES>"
            + cd("DISK_USAGE", 0)
            + cd("FREE_DISK", 20480)
            + cd("MAX_DISK", 20480)
            + cd("USED_DISK", 9720)
            + "</DATASTORES>"
            if monitored
            else "<DATASTORES/>"
        )
        + ("<PCI_DEVICES>" + "".join(_pci(p) for p in _PCI) + "</PCI_DEVICES>" if monitored else "<PCI_DEVICES/>")
        + ("<NUMA_NODES>" + _numa_node(0) + _numa_node(1) + "</NUMA_NODES>" if monitored else "<NUMA_NODES/>")
        + "</HOST_SHARE>"
    )
    if pool or not monitored:
        monitoring = "<MONITORING/>"
    else:
        numa = "".join(
            "<NUMA_NODE>"
            + _hugepages(lambda s: (("FREE", 0), ("SIZE", s)))
            + "<MEMORY>"
            + cd("FREE", 8388608 - 2000000)
            + cd("USED", 2000000)
            + "</MEMORY>"
            + cd("NODE_ID", n)
            + "</NUMA_NODE>"
            for n in (0, 1)
        )
        monitoring = (
            f"<MONITORING><TIMESTAMP>{h['LAST_MON_TIME']}</TIMESTAMP><ID>{h['ID']}</ID>"
            "<CAPACITY>"
            + cd("FREE_CPU", 800 - h["CPU_USAGE"])
            + cd("FREE_MEMORY", 16777216 - h["MEM_USAGE"])
            + cd("USED_CPU", h["CPU_USAGE"])
            + cd("USED_MEMORY", h["MEM_USAGE"])
            + "</CAPACITY>"
            "<SYSTEM>" + cd("NETRX", 0) + cd("NETTX", 0) + "</SYSTEM>" + numa + "</MONITORING>"
        )
    return (
        f"<HOST><ID>{h['ID']}</ID>"
        + el("NAME", h["NAME"])
        + f"<STATE>{h['STATE']}</STATE><PREV_STATE>{h['STATE']}</PREV_STATE>"
        + cd("IM_MAD", h["IM_MAD"])
        + cd("VM_MAD", h["VM_MAD"])
        + f"<CLUSTER_ID>{h['CLUSTER_ID']}</CLUSTER_ID>"
        + el("CLUSTER", h["CLUSTER"])
        + share
        + ids("VMS", h["VMS"])
        + template("TEMPLATE", h["TEMPLATE"])
        + monitoring
        + "</HOST>"
    )


def datastore(d: dict, uname: str, gname: str) -> str:
    return (
        "<DATASTORE>"
        + _owner(d, uname, gname)
        + cd("DS_MAD", d["DS_MAD"])
        + cd("TM_MAD", d["TM_MAD"])
        + cd("BASE_PATH", d["BASE_PATH"])
        + f"<TYPE>{d['TYPE']}</TYPE><DISK_TYPE>0</DISK_TYPE><STATE>{d['STATE']}</STATE>"
        + ids("CLUSTERS", d["CLUSTERS"])
        + f"<TOTAL_MB>{d['TOTAL_MB']}</TOTAL_MB><FREE_MB>{d['FREE_MB']}</FREE_MB><USED_MB>{d['USED_MB']}</USED_MB>"
        + ids("IMAGES", d["IMAGES"])
        + template("TEMPLATE", d["TEMPLATE"])
        + "</DATASTORE>"
    )


# ---------------------------------------------------------------- virtual networks


def ip_at(ar: dict, index: int) -> str:
    base = ar["IP_INT"] + index
    return ".".join(str((base >> s) & 255) for s in (24, 16, 8, 0))


def mac_at(ar: dict, index: int) -> str:
    m = ar["MAC_INT"] + index
    return ":".join(f"{(m >> s) & 255:02x}" for s in (40, 32, 24, 16, 8, 0))


def _allocated_bitmap(ar: dict) -> str:
    # oned writes " <lease index> <object type bit | object id>" for each lease: a VM's or a network's
    return "".join(
        f" {i} {0x4000000000 | h['VNET'] if isinstance(h, dict) else 0x1000000000 | (int(h) & 0xFFFFFFFF)}"
        for i, h in sorted((int(k), v) for k, v in ar["LEASES"].items())
    )


def _holder(h) -> str:
    """Who a lease is for: a VM (-1 for a held address) or a reservation network."""
    return cd("VNET", h["VNET"]) if isinstance(h, dict) else cd("VM", h)


def _ar(ar: dict, pool: bool) -> str:
    attrs = [(k, v) for k, v in ar["TEMPLATE"] if k != "AR_ID"] + [("AR_ID", str(ar["AR_ID"]))]
    if pool:
        attrs.append(("ALLOCATED", _allocated_bitmap(ar)))
    body = "".join(cd(k, v) for k, v in sorted(attrs, key=lambda kv: kv[0]))
    if pool:
        return f"<AR>{body}</AR>"
    last = int(ar["SIZE"]) - 1
    leases = "".join(
        "<LEASE>" + cd("IP", ip_at(ar, i)) + cd("MAC", mac_at(ar, i)) + _holder(h) + "</LEASE>"
        for i, h in sorted(((int(k), v) for k, v in ar["LEASES"].items()))
    )
    return (
        f"<AR>{body}"
        + cd("MAC_END", mac_at(ar, last))
        + cd("IP_END", ip_at(ar, last))
        + f"<USED_LEASES>{len(ar['LEASES'])}</USED_LEASES>"
        + raw("LEASES", leases)
        + "</AR>"
    )


def vnet(v: dict, uname: str, gname: str, pool: bool = False) -> str:
    used = sum(len(ar["LEASES"]) for ar in v["ARS"])
    parent = v.get("PARENT", -1)  # the network a reservation's addresses come from
    return (
        "<VNET>"
        + _owner(v, uname, gname)
        + ids("CLUSTERS", v["CLUSTERS"])
        + cd("BRIDGE", v["BRIDGE"])
        + cd("BRIDGE_TYPE", v["BRIDGE_TYPE"])
        + cd("STATE", v["STATE"])
        + cd("PREV_STATE", v["STATE"])
        + (f"<PARENT_NETWORK_ID>{parent}</PARENT_NETWORK_ID>" if parent >= 0 else "<PARENT_NETWORK_ID/>")
        + cd("VN_MAD", v["VN_MAD"])
        + "<PHYDEV/><VLAN_ID/><OUTER_VLAN_ID/><VLAN_ID_AUTOMATIC>0</VLAN_ID_AUTOMATIC>"
        "<OUTER_VLAN_ID_AUTOMATIC>0</OUTER_VLAN_ID_AUTOMATIC>"
        + f"<USED_LEASES>{used}</USED_LEASES><VROUTERS/>"
        + ids("UPDATED_VMS", v["UPDATED_VMS"])
        + "<OUTDATED_VMS/><UPDATING_VMS/><ERROR_VMS/>"
        + template("TEMPLATE", v["TEMPLATE"])
        # a network being created keeps its ranges in its template; a reservation has its range at once
        + raw("AR_POOL", "" if v["STATE"] == 2 and parent < 0 else "".join(_ar(ar, pool) for ar in v["ARS"]))
        + "</VNET>"
    )


# ---------------------------------------------------------------- images and templates


def _image_prev_state(i: dict) -> int:
    """An image the driver is still making (allocated, cloned, saved from a disk) has not been
    written since its creation: INIT (0), as captured."""
    return 0 if i.get("_FRESH") else i["STATE"]


def image(i: dict, uname: str, gname: str) -> str:
    return (
        "<IMAGE>"
        + _owner(i, uname, gname)
        + f"<TYPE>{i['TYPE']}</TYPE><DISK_TYPE>0</DISK_TYPE><PERSISTENT>{i['PERSISTENT']}</PERSISTENT>"
        + f"<REGTIME>{i['REGTIME']}</REGTIME>"
        + cd("SOURCE", i["SOURCE"])
        + (cd("PATH", i["PATH"]) if i["PATH"] else "<PATH/>")
        + cd("FORMAT", i["FORMAT"])
        + cd("FS", i.get("FS", ""))
        + f"<SIZE>{i['SIZE']}</SIZE><STATE>{i['STATE']}</STATE><PREV_STATE>{_image_prev_state(i)}</PREV_STATE>"
        + f"<RUNNING_VMS>{len(i['VMS'])}</RUNNING_VMS><CLONING_OPS>{len(i['CLONES'])}</CLONING_OPS>"
        + f"<CLONING_ID>{i['CLONING_ID']}</CLONING_ID><TARGET_SNAPSHOT>-1</TARGET_SNAPSHOT>"
        + f"<DATASTORE_ID>{i['DATASTORE_ID']}</DATASTORE_ID>"
        + el("DATASTORE", i["DATASTORE"])
        + ids("VMS", i["VMS"])
        + ids("CLONES", i["CLONES"])
        + "<APP_CLONES/>"
        + template("TEMPLATE", i["TEMPLATE"])
        + snapshots.render(i.get("SNAPSHOTS"))
        + "<BACKUP_INCREMENTS/><BACKUP_DISK_IDS/></IMAGE>"
    )


def vmtemplate(t: dict, uname: str, gname: str, tmpl=None) -> str:
    return (
        "<VMTEMPLATE>"
        + _owner(t, uname, gname)
        + f"<REGTIME>{t['REGTIME']}</REGTIME>"
        + template("TEMPLATE", t["TEMPLATE"] if tmpl is None else tmpl)
        + "</VMTEMPLATE>"
    )


def secgroup(s: dict, uname: str, gname: str) -> str:
    return (
        "<SECURITY_GROUP>"
        + _owner(s, uname, gname)
        + ids("UPDATED_VMS", s["UPDATED_VMS"])
        + "<OUTDATED_VMS/><UPDATING_VMS/><ERROR_VMS/>"
        + template("TEMPLATE", s["TEMPLATE"])
        + "</SECURITY_GROUP>"
    )


_LOCK = ("LOCKED", "OWNER", "TIME", "REQ_ID")


def document(d: dict, uname: str, gname: str) -> str:
    """A document; its LOCK, when locked, between PERMISSIONS and TEMPLATE (PoolObjectSQL::lock_db_to_xml)."""
    lock = d.get("LOCK")
    return (
        "<DOCUMENT>"
        + _named(d, uname, gname)
        + f"<TYPE>{d['TYPE']}</TYPE>"
        + permissions(d["PERMS"])
        + ("<LOCK>" + "".join(f"<{k}>{lock[k]}</{k}>" for k in _LOCK) + "</LOCK>" if lock else "")
        + template("TEMPLATE", d["TEMPLATE"])
        + "</DOCUMENT>"
    )


# ---------------------------------------------------------------- virtual machines

_HISTORY_FULL = (
    "OID",
    "SEQ",
    "HOSTNAME",
    "HID",
    "CID",
    "STIME",
    "ETIME",
    "VM_MAD",
    "TM_MAD",
    "DS_ID",
    "PSTIME",
    "PETIME",
    "RSTIME",
    "RETIME",
    "ESTIME",
    "EETIME",
    "ACTION",
    "UID",
    "GID",
    "REQUEST_ID",
)
_HISTORY_SHORT = ("OID", "SEQ", "HOSTNAME", "HID", "CID", "DS_ID", "VM_MAD", "TM_MAD", "ACTION")
_HISTORY_CDATA_FULL = {"VM_MAD", "TM_MAD"}
_HISTORY_CDATA_SHORT = {"HOSTNAME", "VM_MAD", "TM_MAD", "ACTION"}

_SHORT_DISK = (
    "DISK_ID",
    "DATASTORE",
    "DATASTORE_ID",
    "IMAGE",
    "IMAGE_ID",
    "SIZE",
    "TYPE",
    "CLONE",
    "CLONE_TARGET",
    "LN_TARGET",
    "DISK_SNAPSHOT_TOTAL_SIZE",
)
_SHORT_NIC = (
    "IP",
    "IP6",
    "IP6_GLOBAL",
    "IP6_ULA",
    "MAC",
    "NETWORK",
    "NETWORK_ID",
    "NIC_ID",
    "SECURITY_GROUPS",
)
_SHORT_USER = {
    "ERROR",
    "LABELS",
    "PUBLIC_CLOUD",
    "SCHED_ACTION",
    "SCHED_DS_RANK",
    "SCHED_DS_REQUIREMENTS",
    "SCHED_MESSAGE",
    "SCHED_RANK",
    "SCHED_REQUIREMENTS",
    "USER_PRIORITY",
}


def _history(h: dict, short: bool) -> str:
    keys, cdata = (_HISTORY_SHORT, _HISTORY_CDATA_SHORT) if short else (_HISTORY_FULL, _HISTORY_CDATA_FULL)
    return "<HISTORY>" + "".join(cd(k, h[k]) if k in cdata else el(k, h[k]) for k in keys) + "</HISTORY>"


def _disk_snapshots(lists: dict) -> str:
    """One SNAPSHOTS per disk that has snapshots, by DISK_ID."""
    return "".join(snapshots.render(s, int(d)) for d, s in sorted(lists.items(), key=lambda x: int(x[0])))


def vm(v: dict, uname: str, gname: str, last_history: bool = False) -> str:
    """The full VM record; pool listings (infoextended) carry only the last history record."""
    hist = "".join(_history(h, False) for h in (v["HISTORY"][-1:] if last_history else v["HISTORY"]))
    return (
        "<VM>"
        + _owner(v, uname, gname)
        + f"<LAST_POLL>0</LAST_POLL><STATE>{v['STATE']}</STATE><LCM_STATE>{v['LCM_STATE']}</LCM_STATE>"
        + f"<PREV_STATE>{v['STATE']}</PREV_STATE><PREV_LCM_STATE>{v['LCM_STATE']}</PREV_LCM_STATE>"
        + f"<RESCHED>0</RESCHED><STIME>{v['STIME']}</STIME><ETIME>{v['ETIME']}</ETIME>"
        + el("DEPLOY_ID", v["DEPLOY_ID"])
        + "<MONITORING/><SCHED_ACTIONS/>"
        + template("TEMPLATE", v["TEMPLATE"])
        + template("USER_TEMPLATE", v["USER_TEMPLATE"])
        + raw("HISTORY_RECORDS", hist)
        + _disk_snapshots(v.get("SNAPSHOTS", {}))
        + "<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS/></BACKUPS></VM>"
    )


def _short_vector(vec, keys) -> str:
    d = dict(vec)
    return "".join(cd(k, d[k]) for k in keys if k in d)


def vm_short(v: dict, uname: str, gname: str) -> str:
    """The cut-down record of ``one.vmpool.info``."""
    t = v["TEMPLATE"]
    top = dict((k, val) for k, val in t if isinstance(val, str))
    parts = [el(k, top[k]) for k in ("CPU", "MEMORY", "VCPU") if k in top]
    for k, val in t:
        if k == "DISK":
            parts.append("<DISK>" + _short_vector(val, _SHORT_DISK) + "</DISK>")
        elif k in ("NIC", "NIC_ALIAS"):
            parts.append(f"<{k}>" + _short_vector(val, _SHORT_NIC) + f"</{k}>")
        elif k == "GRAPHICS":
            parts.append("<GRAPHICS>" + _short_vector(val, ("LISTEN", "PORT", "TYPE")) + "</GRAPHICS>")
    user_t = [(k, val) for k, val in v["USER_TEMPLATE"] if k in _SHORT_USER]
    last = v["HISTORY"][-1:]
    return (
        "<VM>"
        + _named(v, uname, gname)
        + f"<LAST_POLL>0</LAST_POLL><STATE>{v['STATE']}</STATE><LCM_STATE>{v['LCM_STATE']}</LCM_STATE>"
        + f"<RESCHED>0</RESCHED><STIME>{v['STIME']}</STIME><ETIME>{v['ETIME']}</ETIME>"
        + el("DEPLOY_ID", v["DEPLOY_ID"])
        + raw("TEMPLATE", "".join(parts))
        + "<MONITORING/>"
        + template("USER_TEMPLATE", user_t)
        + raw("HISTORY_RECORDS", "".join(_history(h, True) for h in last))
        + "</VM>"
    )

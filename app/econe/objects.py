"""oned's answers as plain objects: the dataclasses the gateway returns, and the lxml readers that make them.

Pure functions of the XML oned answers; the gateway (the only code that talks to oned) calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

# oned's answers: large pools are one big string, and entities are never wanted
_PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


def xml(text: str | bytes):
    """An answer of oned parsed by libxml2 (lxml): about ten times faster than ElementTree here."""
    return etree.fromstring(text.encode() if isinstance(text, str) else text, _PARSER)


# ---------------------------------------------------------------- plain objects


@dataclass(slots=True)  # one per NIC of every VM listed: no __dict__ each
class Nic:
    ip: str = ""
    network: str = ""
    network_id: str = ""
    nic_id: str = ""
    mac: str = ""
    security_groups: str = ""  # oned's list of ids, "0,100": the requested ones and the vnet's


@dataclass(slots=True)
class VM:
    """A VM as oned answered it. The gateway hands the same object out again for an unchanged VM
    (`Gateway.vm_records`): nobody changes one, and *views* keeps what is derived from it (its EC2
    description), valid as long as the object."""

    id: int
    name: str
    uid: int
    uname: str
    state: int
    lcm_state: int
    stime: int
    etime: int
    nics: list[Nic] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)
    user_template: dict[str, str] = field(default_factory=dict)
    template: dict[str, str] = field(default_factory=dict)
    arch: str = ""  # TEMPLATE/OS/ARCH; the short pool answer has no OS, the cache carries it
    views: dict = field(default_factory=dict, repr=False, compare=False)


@dataclass
class Image:
    id: int
    name: str
    uid: int
    uname: str
    state: int
    type: int
    persistent: bool
    size: int
    regtime: int
    public: bool  # PERMISSIONS/OTHER_U: anyone may use it
    arch: str  # its template's ARCH (or OS/ARCH), "" when it has none
    template: dict[str, str] = field(default_factory=dict)
    vms: list[int] = field(default_factory=list)  # the VMs using it (VMS/ID): a volume's attachment


@dataclass
class Template:
    id: int
    name: str
    uid: int
    gid: int
    body: list  # the template as one.template pairs


# ---------------------------------------------------------------- XML readers


def _text(el, tag: str, default: str = "") -> str:
    found = el.find(tag)
    return found.text or "" if found is not None else default


def _flat(el) -> dict[str, str]:
    """Single-valued attributes of a TEMPLATE element (vectors are skipped)."""
    return {child.tag: child.text or "" for child in el if len(child) == 0} if el is not None else {}


def parse_vm(el) -> VM:
    """A VM element of a pool or info answer, read in one pass over its children (the hot path)."""
    top: dict[str, str] = {}
    nics: list[Nic] = []
    images: list[int] = []
    template: dict[str, str] = {}
    user_template: dict[str, str] = {}
    arch = ""
    for child in el:
        tag = child.tag
        if tag == "TEMPLATE":
            for item in child:
                name = item.tag
                if name == "NIC":
                    n = {x.tag: x.text or "" for x in item}
                    g = n.get
                    nics.append(Nic(g("IP", ""), g("NETWORK", ""), g("NETWORK_ID", ""), g("NIC_ID", ""), g("MAC", ""),
                                    g("SECURITY_GROUPS", "")))  # fmt: skip
                elif name == "DISK":
                    for x in item:  # not findtext: its ElementPath costs more than these few children
                        if x.tag == "IMAGE_ID":
                            if x.text:
                                images.append(int(x.text))
                            break
                elif len(item) == 0:
                    template[name] = item.text or ""
                elif name == "OS":
                    arch = item.findtext("ARCH") or ""
        elif tag == "USER_TEMPLATE":
            user_template = {x.tag: x.text or "" for x in child if len(x) == 0}
        else:
            top[tag] = child.text or ""
    return VM(  # in the order of its fields: keywords cost a third of a microsecond more per VM
        int(top["ID"]),
        top.get("NAME", ""),
        int(top["UID"]),
        top.get("UNAME", ""),
        int(top["STATE"]),
        int(top["LCM_STATE"]),
        int(top.get("STIME") or 0),
        int(top.get("ETIME") or 0),
        nics,
        images,
        user_template,
        template,
        arch,
    )


def parse_vm_pool(text: str) -> list[VM]:
    """VMs of a VM_POOL answer (the tree is built in one C call: much faster than iterparse)."""
    return [parse_vm(el) for el in xml(text).iterfind("VM")]


_POOL_HEAD, _VM_HEAD, _VM_TAIL, _POOL_TAIL = "<VM_POOL>", "<VM><ID>", "</VM>", "</VM_POOL>"


def split_vm_pool(text: str) -> list[str] | None:
    """The VM elements of a VM_POOL answer as oned wrote them, each without its leading ``<VM><ID>``;
    None when the answer is not plainly a list of them. oned escapes every text but its vectors'
    CDATA sections, so ``<VM><ID>`` starts a VM unless it lies in one: a piece whose last ``<![CDATA[``
    has no ``]]>`` after it ends inside one (a CDATA section holds no ``]]>``), and the answer is then
    left to the XML parser."""
    if not (text.startswith(_POOL_HEAD) and text.endswith(_POOL_TAIL)):
        return None
    head, *records = text[: -len(_POOL_TAIL)].split(_VM_HEAD)
    if head != _POOL_HEAD:
        return None
    for record in records:
        if not record.endswith(_VM_TAIL) or record.rfind("<![CDATA[") > record.rfind("]]>"):
            return None
    return records


def parse_vm_records(records: list[str]) -> list[VM]:
    """The VMs of pieces `split_vm_pool` made, parsed together."""
    if not records:
        return []
    return parse_vm_pool(_POOL_HEAD + _VM_HEAD + _VM_HEAD.join(records) + _POOL_TAIL)


def parse_ec2_attrs(text: str) -> dict[int, tuple[dict[str, str], str]]:
    """For each VM of an extended VM_POOL answer: its user template's EC2 attributes and its OS/ARCH."""
    out = {}
    for el in xml(text).iterfind("VM"):
        ut = el.find("USER_TEMPLATE")
        attrs = {x.tag: x.text or "" for x in ut if x.tag.startswith("EC2_") and not len(x)} if ut is not None else {}
        out[int(el.findtext("ID"))] = (attrs, el.findtext("TEMPLATE/OS/ARCH") or "")
    return out


def parse_template(el) -> Template:
    return Template(
        int(_text(el, "ID")),
        _text(el, "NAME"),
        int(_text(el, "UID")),
        int(_text(el, "GID")),
        template_pairs(el.find("TEMPLATE")),
    )


def parse_image(el) -> Image:
    template = el.find("TEMPLATE")
    return Image(
        id=int(_text(el, "ID")),
        name=_text(el, "NAME"),
        uid=int(_text(el, "UID")),
        uname=_text(el, "UNAME"),
        state=int(_text(el, "STATE")),
        type=int(_text(el, "TYPE")),
        persistent=_text(el, "PERSISTENT") == "1",
        size=int(_text(el, "SIZE", "0")),
        regtime=int(_text(el, "REGTIME", "0")),
        public=_text(el, "PERMISSIONS/OTHER_U") == "1",
        arch=(template.findtext("ARCH") or template.findtext("OS/ARCH") or "") if template is not None else "",
        template=_flat(template),
        vms=[int(i.text) for i in el.iterfind("VMS/ID")],
    )


# ---------------------------------------------------------------- security groups


@dataclass
class SecGroup:
    id: int
    name: str
    uid: int
    template: list  # its TEMPLATE as one.template pairs: RULE vectors, DESCRIPTION, EC2_TAGS and the rest
    vms: list[int]  # the VMs using it (UPDATED, OUTDATED, UPDATING and ERROR)


def parse_secgroup(el) -> SecGroup:
    vms = [int(i.text) for part in ("UPDATED", "OUTDATED", "UPDATING", "ERROR") for i in el.iterfind(f"{part}_VMS/ID")]
    return SecGroup(
        int(_text(el, "ID")), _text(el, "NAME"), int(_text(el, "UID")), template_pairs(el.find("TEMPLATE")), vms
    )


def template_pairs(el) -> list:
    if el is None:
        return []
    out = []
    for child in el:
        if len(child):
            out.append((child.tag, [(c.tag, c.text or "") for c in child]))
        else:
            out.append((child.tag, child.text or ""))
    return out


# ---------------------------------------------------------------- virtual networks


@dataclass
class VNet:
    id: int
    name: str
    state: int
    ranges: list[tuple[str, str, int]]  # (TYPE, first IP, SIZE) of each address range, in order
    used: int  # USED_LEASES over all ranges (held addresses too)


def parse_vnet(el) -> VNet:
    """A VNET of a pool answer: its address ranges without the leases (the pool answer has none)."""
    return VNet(
        id=int(_text(el, "ID")),
        name=_text(el, "NAME"),
        state=int(_text(el, "STATE", "1")),
        ranges=[(_text(ar, "TYPE"), _text(ar, "IP"), int(_text(ar, "SIZE", "0"))) for ar in el.iterfind("AR_POOL/AR")],
        used=int(_text(el, "USED_LEASES", "0") or 0),
    )

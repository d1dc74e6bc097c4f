"""The cloud gateway: the only code that talks to oned, and the only module that imports pyone.

Every call runs as the requesting user through a ``server_cipher`` session, so OpenNebula's own
permissions, ACLs and quotas decide what a user may do. The server account's own rights are used
for one thing only: reading user secrets, cached for 60 seconds. Answers come back as plain
dataclasses; oned's errors come back as EC2 errors; an unreachable oned is ``Unavailable``.

VM listings, the hot path, are fetched over the same XML-RPC session as raw XML and read with a
streaming parser instead of pyone's generated bindings (which cost ~0.1 ms per VM).
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pyone
from lxml import etree

from onelite import acl, cipher

from .errors import EC2Error, dry_run_succeeded, unauthorized, unavailable

TOKEN_LIFETIME = 1800  # seconds a server_cipher token is valid
TOKEN_RENEW = 300  # renew this long before it expires
SECRET_TTL = 60  # seconds user secrets are cached
MISS_REFRESH = 1  # seconds before an unknown name may re-read the user pool
EC2_ATTRS_TTL = 300  # seconds the EC2 attributes of a VM are trusted without re-reading them
EC2_CACHE_SIZE = 200_000
EXTENDED_AFTER = 20  # more VMs than this missing from the cache: one extended pool call instead
TIMEOUT = 30
# oned's answers: large pools are one big string, and entities are never wanted
_PARSER = etree.XMLParser(huge_tree=True, resolve_entities=False, no_network=True)


def xml(text: str | bytes):
    """An answer of oned parsed by libxml2 (lxml): about ten times faster than ElementTree here."""
    return etree.fromstring(text.encode() if isinstance(text, str) else text, _PARSER)


# ---------------------------------------------------------------- plain objects


@dataclass
class Nic:
    ip: str = ""
    mac: str = ""
    network: str = ""
    network_id: str = ""


@dataclass
class VM:
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
    hostname: str = ""
    arch: str = ""  # TEMPLATE/OS/ARCH; the short pool answer has no OS, the cache carries it


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


@dataclass
class Template:
    id: int
    name: str
    uid: int
    gid: int
    body: list  # the template as onelite.template pairs


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
    hostname = arch = ""
    for child in el:
        tag = child.tag
        if tag == "TEMPLATE":
            for item in child:
                if item.tag == "NIC":
                    n = {x.tag: x.text or "" for x in item}
                    nics.append(Nic(n.get("IP", ""), n.get("MAC", ""), n.get("NETWORK", ""), n.get("NETWORK_ID", "")))
                elif item.tag == "DISK":
                    image = item.findtext("IMAGE_ID")
                    if image:
                        images.append(int(image))
                elif len(item) == 0:
                    template[item.tag] = item.text or ""
                elif item.tag == "OS":
                    arch = item.findtext("ARCH") or ""
        elif tag == "USER_TEMPLATE":
            user_template = {x.tag: x.text or "" for x in child if len(x) == 0}
        elif tag == "HISTORY_RECORDS":
            if len(child):
                hostname = child[-1].findtext("HOSTNAME") or ""
        else:
            top[tag] = child.text or ""
    return VM(
        id=int(top["ID"]),
        name=top.get("NAME", ""),
        uid=int(top["UID"]),
        uname=top.get("UNAME", ""),
        state=int(top["STATE"]),
        lcm_state=int(top["LCM_STATE"]),
        stime=int(top.get("STIME") or 0),
        etime=int(top.get("ETIME") or 0),
        nics=nics,
        image_ids=images,
        user_template=user_template,
        template=template,
        hostname=hostname,
        arch=arch,
    )


def parse_vm_pool(text: str) -> list[VM]:
    """VMs of a VM_POOL answer (the tree is built in one C call: much faster than iterparse)."""
    return [parse_vm(el) for el in xml(text).iterfind("VM")]


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
    )


# ---------------------------------------------------------------- errors


def _map(e: Exception, not_found: str = "", visible: bool = False) -> EC2Error:
    """*visible*: the user has just read the object, so a refusal is about the right, not its existence."""
    msg = str(e)
    if isinstance(e, (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError, socket.timeout)):
        return unavailable()
    if isinstance(e, pyone.OneNoExistsException) and not_found:
        return EC2Error(not_found, msg)
    if isinstance(e, pyone.OneAuthorizationException):
        if not_found and not visible:  # another user's object is as absent as a missing one
            return EC2Error(not_found, msg)
        return unauthorized(msg)
    if isinstance(e, pyone.OneActionException):
        return EC2Error("IncorrectInstanceState", msg)
    if isinstance(e, pyone.OneAuthenticationException):
        return EC2Error("AuthFailure", "The cloud refused the service's credentials; see the server log.", 401)
    if isinstance(e, pyone.OneException):
        return EC2Error("InvalidParameterValue", msg)
    raise e


class RawXMLRPC:
    """XML-RPC over one kept-alive connection, with the answer read by ElementTree's C parser.

    xmlrpc.client unmarshals a string through a Python callback per text fragment: for a pool
    answer (one large entity-escaped string) that is most of the time spent."""

    _TYPES = {"i4": int, "int": int, "i8": int, "boolean": lambda t: t == "1", "string": str, "double": float}

    def __init__(self, url: str):
        parts = urlparse(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(parts.hostname, parts.port, timeout=TIMEOUT)
        self.path = parts.path or "/RPC2"

    def call(self, method: str, *params):
        body = xmlrpc.client.dumps(params, method).encode()
        for attempt in (0, 1):  # a kept-alive connection oned closed meanwhile is reopened once
            try:
                self.conn.request("POST", self.path, body, {"Content-Type": "text/xml"})
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if attempt:
                    raise
        if resp.status != 200:
            raise xmlrpc.client.ProtocolError(self.path, resp.status, resp.reason, {})
        root = xml(data)
        fault = root.find("fault")
        if fault is not None:
            raise xmlrpc.client.Fault(-1, etree.tostring(fault, encoding="unicode"))
        out = []
        for v in root.iterfind("params/param/value/array/data/value"):
            typed = v[0] if len(v) else None
            out.append(self._TYPES.get(typed.tag, str)(typed.text or "") if typed is not None else (v.text or ""))
        return out


class Gateway:
    """One per server: the server account, the secret cache, and sessions for users."""

    def __init__(self, url: str, server_user: str, server_password: str):
        self.url = url
        self.server_user = server_user
        self.key = hashlib.sha256(server_password.encode()).hexdigest()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._secrets: dict[str, str] = {}
        self._secrets_at = 0.0
        self._rules: tuple[float, list] = (0.0, [])
        self._lock = threading.Lock()
        self._made: dict[int, tuple[float, dict, str]] = {}

    def session_string(self, user: str) -> str:
        """``server:user:token``, renewed TOKEN_RENEW seconds before it expires."""
        now = time.time()
        with self._lock:
            token, expiry = self._tokens.get(user, ("", 0.0))
            if expiry - now < TOKEN_RENEW:
                expiry = now + TOKEN_LIFETIME
                token = cipher.encrypt(self.key, f"{self.server_user}:{user}:{int(expiry)}")
                self._tokens[user] = (token, expiry)
        return f"{self.server_user}:{user}:{token}"

    def secret_of(self, user: str) -> str | None:
        """The PASSWORD oned stores for *user* (core or public drivers only), or None.
        A name not in the cache re-reads the pool, at most once a second (new users work at once)."""
        with self._lock:
            age = time.time() - self._secrets_at
            if age < SECRET_TTL and (user in self._secrets or age < MISS_REFRESH):
                return self._secrets.get(user)
        secrets = self._read_secrets()
        with self._lock:
            self._secrets, self._secrets_at = secrets, time.time()
        return secrets.get(user)

    def _read_secrets(self) -> dict[str, str]:
        one = pyone.OneServer(self.url, session=self.session_string(self.server_user), timeout=TIMEOUT)
        try:
            pool = one.userpool.info()
        except Exception as e:
            raise _map(e) from None
        return {u.NAME: u.PASSWORD for u in pool.USER if u.AUTH_DRIVER in ("core", "public") and u.ENABLED}

    def acl_rules(self) -> list[tuple[int, int, int]]:
        """oned's ACL rules ``(user, resource, rights)``, read with the server account (users may not),
        cached like the secrets. Only DryRun uses them: every real call is oned's own decision."""
        with self._lock:
            at, rules = self._rules
            if time.time() - at < SECRET_TTL:
                return rules
        try:
            ok, value, *_ = RawXMLRPC(self.url).call("one.acl.info", self.session_string(self.server_user))
        except Exception as e:
            raise _map(e) from None
        if not ok:
            raise EC2Error("InternalError", "The service account may not read the ACL rules; see the server log.", 500)
        rules = [
            tuple(acl.parse_hex(rule.findtext(part)) for part in ("USER", "RESOURCE", "RIGHTS"))
            for rule in xml(value).iterfind("ACL")
        ]
        with self._lock:
            self._rules = (time.time(), rules)
        return rules

    def remember(self, vmid: int, user_template: dict, arch: str) -> None:
        """What a VM was made with and the short pool answer lacks: its EC2 attributes and OS/ARCH."""
        attrs = {k: v for k, v in user_template.items() if k.startswith("EC2_")}
        with self._lock:
            self._made[vmid] = (time.time(), attrs, arch)
            if len(self._made) > EC2_CACHE_SIZE:  # drop the oldest entries
                for key in sorted(self._made, key=lambda k: self._made[k][0])[: EC2_CACHE_SIZE // 10]:
                    del self._made[key]

    def made_with(self, vmid: int) -> tuple[dict, str] | None:
        """(EC2 attributes, arch) remembered for *vmid*, or None when unknown or too old."""
        entry = self._made.get(vmid)
        return entry[1:] if entry and time.time() - entry[0] < EC2_ATTRS_TTL else None

    def as_user(self, user: str, dry_run: bool = False) -> UserSession:
        return UserSession(self, user, dry_run)


# what DryRun reads to decide, per kind of object: its info call
_INFO = {
    "VM": ("one.vm.info", False),
    "IMAGE": ("one.image.info", False),
    "TEMPLATE": ("one.template.info", False, False),
}


class UserSession:
    """Calls made as one user; create one per request (the XML-RPC connection is not shared).

    In a dry run, nothing that changes oned is called: `decide_dry_run` answers instead."""

    def __init__(self, gateway: Gateway, user: str, dry_run: bool = False):
        self.gateway = gateway
        self.user = user
        self.is_dry_run = dry_run
        self._session = gateway.session_string(user)
        self.one = pyone.OneServer(gateway.url, session=self._session, timeout=TIMEOUT)
        self._raw = None

    def _call(self, fn, *args, not_found: str = "", visible: bool = False):
        try:
            return fn(*args)
        except Exception as e:
            raise _map(e, not_found, visible) from None

    def _raw_call(self, method: str, *args) -> str:
        if self._raw is None:
            self._raw = RawXMLRPC(self.gateway.url)
        try:
            ok, value, *rest = self._raw.call(method, self._session, *args)
        except Exception as e:
            raise _map(e) from None
        if not ok:
            code = rest[0] if rest else 0
            exc = {
                256: pyone.OneAuthenticationException,
                512: pyone.OneAuthorizationException,
                1024: pyone.OneNoExistsException,
                2048: pyone.OneActionException,
            }.get(code, pyone.OneException)
            not_found = {"one.vm.info": "InvalidInstanceID.NotFound", "one.image.info": "InvalidAMIID.NotFound"}
            raise _map(exc(value), not_found.get(method, ""))
        return value

    def _changes(self) -> None:
        """Every call that changes oned passes here: a dry run that reaches one is a bug."""
        if self.is_dry_run:
            raise RuntimeError("a dry run reached a call that changes oned")

    def decide_dry_run(self, needs: list[tuple[str, str, int | None]]) -> None:
        """End a dry run: DryRunOperation when oned would allow each ``(right, kind, id)`` (id None:
        CREATE), as oned decides it (oneadmin group, permission bits, ACL rules); else UnauthorizedOperation."""
        me = xml(self._raw_call("one.user.info", -1, False))
        uid, gids = int(me.findtext("ID")), {int(g.text) for g in me.iterfind("GROUPS/ID")}
        rules = self.gateway.acl_rules()
        for right, kind, oid in needs:
            obj = None
            if oid is not None:
                method, *flags = _INFO[kind]
                el = xml(self._raw_call(method, oid, *flags))
                perms = tuple(int(p.text) for p in el.find("PERMISSIONS"))
                obj = (oid, int(el.findtext("UID")), int(el.findtext("GID")), perms, ())
            if not acl.permits(uid, gids, right, kind, rules, obj):
                raise unauthorized(f"{right} on {kind.lower()} {oid}" if oid is not None else f"{right} {kind}")
        raise dry_run_succeeded()

    # -- users ------------------------------------------------------------
    def whoami(self):
        return self._call(self.one.user.info, -1)

    # -- VMs --------------------------------------------------------------
    def vms(self, with_done: bool, offset: int = 0, limit: int = 0) -> list[VM]:
        """The user's VMs, newest first; a page of *limit* from *offset* when limit > 0."""
        start, end = (offset, -limit) if limit else (-1, -1)
        return self._pool(start, end, -2 if with_done else -1)

    def vms_by_id(self, ids: list[int]) -> list[VM]:
        """These VMs of the user, in one pool call over their id range, in the order given."""
        if not ids:
            return []
        order = {vmid: i for i, vmid in enumerate(ids)}
        vms = [vm for vm in self._pool(min(ids), max(ids), -2) if vm.id in order]
        return sorted(vms, key=lambda vm: order[vm.id])

    def _pool(self, start: int, end: int, state: int) -> list[VM]:
        """The short pool answer carries everything but the EC2 attributes of the user template and
        the OS/ARCH of the template, which never change once a VM exists: those come from a cache,
        filled from the extended answer (or one vm.info per VM when few are missing)."""
        vms = parse_vm_pool(self._raw_call("one.vmpool.info", -3, start, end, state))
        missing = [vm.id for vm in vms if self.gateway.made_with(vm.id) is None]
        if len(missing) > EXTENDED_AFTER:
            for full in parse_vm_pool(self._raw_call("one.vmpool.infoextended", -3, start, end, state)):
                self.gateway.remember(full.id, full.user_template, full.arch)
        else:
            for vmid in missing:
                self.vm(vmid)
        for vm in vms:
            attrs, vm.arch = self.gateway.made_with(vm.id) or ({}, "")
            vm.user_template.update(attrs)
        return vms

    def vm(self, vmid: int) -> VM:
        vm = parse_vm(xml(self._raw_call("one.vm.info", vmid, False)))
        self.gateway.remember(vm.id, vm.user_template, vm.arch)
        return vm

    def vm_action(self, action: str, vmid: int):
        self._changes()
        return self._call(self.one.vm.action, action, vmid, not_found="InvalidInstanceID.NotFound", visible=True)

    def vm_allocate(self, template: str, hold: bool = False) -> int:
        self._changes()
        return self._call(self.one.vm.allocate, template, hold)

    def vm_update(self, vmid: int, text: str, merge: bool = True):
        self._changes()
        return self._call(self.one.vm.update, vmid, text, 1 if merge else 0, not_found="InvalidInstanceID.NotFound")

    # -- templates --------------------------------------------------------
    def templates(self) -> list[Template]:
        pool = self._raw_call("one.templatepool.info", -2, -1, -1)
        out = []
        for el in xml(pool).findall("VMTEMPLATE"):
            out.append(
                Template(
                    int(_text(el, "ID")),
                    _text(el, "NAME"),
                    int(_text(el, "UID")),
                    int(_text(el, "GID")),
                    _template_pairs(el.find("TEMPLATE")),
                )
            )
        return out

    def instantiate(self, template_id: int, name: str, extra: str, hold: bool = False) -> int:
        # raw: RunInstances makes many of these in a row, and pyone's casting costs more than the call
        self._changes()
        return self._raw_call("one.template.instantiate", template_id, name, hold, extra, False)

    # -- images -----------------------------------------------------------
    def image(self, image_id: int) -> Image:
        return parse_image(xml(self._raw_call("one.image.info", image_id, False)))

    def images(self) -> list[Image]:
        return [parse_image(el) for el in xml(self._raw_call("one.imagepool.info", -2, -1, -1))]

    def image_allocate(self, template: str, datastore_id: int) -> int:
        self._changes()
        return self._call(self.one.image.allocate, template, datastore_id, False)

    def image_update(self, image_id: int, text: str):
        self._changes()
        return self._call(self.one.image.update, image_id, text, 1, not_found="InvalidAMIID.NotFound", visible=True)


def _template_pairs(el) -> list:
    if el is None:
        return []
    out = []
    for child in el:
        if len(child):
            out.append((child.tag, [(c.tag, c.text or "") for c in child]))
        else:
            out.append((child.tag, child.text or ""))
    return out

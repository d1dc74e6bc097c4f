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
import xml.etree.ElementTree as ET
import xmlrpc.client
from dataclasses import dataclass, field

import pyone

from onelite import cipher

from .errors import EC2Error, unavailable

TOKEN_LIFETIME = 1800  # seconds a server_cipher token is valid
TOKEN_RENEW = 300  # renew this long before it expires
SECRET_TTL = 60  # seconds user secrets are cached
MISS_REFRESH = 1  # seconds before an unknown name may re-read the user pool
TIMEOUT = 30


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


@dataclass
class Image:
    id: int
    name: str
    uid: int
    state: int
    type: int
    persistent: bool
    size: int
    regtime: int
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
    t = el.find("TEMPLATE")
    nics = [
        Nic(_text(n, "IP"), _text(n, "MAC"), _text(n, "NETWORK"), _text(n, "NETWORK_ID"))
        for n in (t.findall("NIC") if t is not None else [])
    ]
    images = [int(_text(d, "IMAGE_ID")) for d in (t.findall("DISK") if t is not None else []) if _text(d, "IMAGE_ID")]
    history = el.findall("HISTORY_RECORDS/HISTORY")
    return VM(
        id=int(_text(el, "ID")),
        name=_text(el, "NAME"),
        uid=int(_text(el, "UID")),
        uname=_text(el, "UNAME"),
        state=int(_text(el, "STATE")),
        lcm_state=int(_text(el, "LCM_STATE")),
        stime=int(_text(el, "STIME", "0")),
        etime=int(_text(el, "ETIME", "0")),
        nics=nics,
        image_ids=images,
        user_template=_flat(el.find("USER_TEMPLATE")),
        template=_flat(t),
        hostname=_text(history[-1], "HOSTNAME") if history else "",
    )


def parse_vm_pool(xml: str) -> list[VM]:
    """VMs of a VM_POOL answer, read element by element."""
    import io

    out = []
    for _event, el in ET.iterparse(io.StringIO(xml), events=("end",)):
        if el.tag == "VM":
            out.append(parse_vm(el))
            el.clear()
    return out


def _image(img) -> Image:
    tmpl = img.TEMPLATE if isinstance(img.TEMPLATE, dict) else {}
    return Image(
        id=img.ID,
        name=img.NAME,
        uid=img.UID,
        state=img.STATE,
        type=img.TYPE,
        persistent=bool(img.PERSISTENT),
        size=img.SIZE,
        regtime=img.REGTIME,
        template={k: v for k, v in tmpl.items() if isinstance(v, str)},
    )


# ---------------------------------------------------------------- errors


def _map(e: Exception, not_found: str = "") -> EC2Error:
    msg = str(e)
    if isinstance(e, (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError, socket.timeout)):
        return unavailable()
    if isinstance(e, pyone.OneNoExistsException) and not_found:
        return EC2Error(not_found, msg)
    if isinstance(e, pyone.OneAuthorizationException):
        if not_found:  # another user's object is as absent as a missing one
            return EC2Error(not_found, msg)
        return EC2Error("UnauthorizedOperation", f"You are not authorized to perform this operation. {msg}", 403)
    if isinstance(e, pyone.OneActionException):
        return EC2Error("IncorrectInstanceState", msg)
    if isinstance(e, pyone.OneAuthenticationException):
        return EC2Error("AuthFailure", "The cloud refused the service's credentials; see the server log.", 401)
    if isinstance(e, pyone.OneException):
        return EC2Error("InvalidParameterValue", msg)
    raise e


class Gateway:
    """One per server: the server account, the secret cache, and sessions for users."""

    def __init__(self, url: str, server_user: str, server_password: str):
        self.url = url
        self.server_user = server_user
        self.key = hashlib.sha256(server_password.encode()).hexdigest()
        self._tokens: dict[str, tuple[str, float]] = {}
        self._secrets: dict[str, str] = {}
        self._secrets_at = 0.0
        self._lock = threading.Lock()

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

    def forget_secrets(self):
        with self._lock:
            self._secrets_at = 0.0

    def as_user(self, user: str) -> UserSession:
        return UserSession(self, user)


class UserSession:
    """Calls made as one user; create one per request (the XML-RPC connection is not shared)."""

    def __init__(self, gateway: Gateway, user: str):
        self.gateway = gateway
        self.user = user
        self._session = gateway.session_string(user)
        self.one = pyone.OneServer(gateway.url, session=self._session, timeout=TIMEOUT)
        self._raw = None

    def _call(self, fn, *args, not_found: str = ""):
        try:
            return fn(*args)
        except Exception as e:
            raise _map(e, not_found) from None

    def _raw_call(self, method: str, *args) -> str:
        if self._raw is None:
            self._raw = xmlrpc.client.ServerProxy(self.gateway.url, use_builtin_types=True)
        try:
            ok, value, *rest = getattr(self._raw, method)(self._session, *args)
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
            raise _map(exc(value), "InvalidInstanceID.NotFound" if method == "one.vm.info" else "")
        return value

    # -- users ------------------------------------------------------------
    def whoami(self):
        return self._call(self.one.user.info, -1)

    # -- VMs --------------------------------------------------------------
    def vms(self, with_done: bool) -> list[VM]:
        xml = self._raw_call("one.vmpool.infoextended", -3, -1, -1, -2 if with_done else -1)
        return parse_vm_pool(xml)

    def vm(self, vmid: int) -> VM:
        return parse_vm(ET.fromstring(self._raw_call("one.vm.info", vmid, False)))

    def vm_action(self, action: str, vmid: int):
        return self._call(self.one.vm.action, action, vmid, not_found="InvalidInstanceID.NotFound")

    def vm_allocate(self, template: str, hold: bool = False) -> int:
        return self._call(self.one.vm.allocate, template, hold)

    def vm_update(self, vmid: int, text: str, merge: bool = True):
        return self._call(self.one.vm.update, vmid, text, 1 if merge else 0, not_found="InvalidInstanceID.NotFound")

    def vm_rename(self, vmid: int, name: str):
        return self._call(self.one.vm.rename, vmid, name, not_found="InvalidInstanceID.NotFound")

    def vm_recover_delete(self, vmid: int):
        return self._call(self.one.vm.recover, vmid, 3)

    # -- templates --------------------------------------------------------
    def templates(self) -> list[Template]:
        from onelite import template as tpl

        xml = self._raw_call("one.templatepool.info", -2, -1, -1)
        out = []
        for el in ET.fromstring(xml).findall("VMTEMPLATE"):
            out.append(
                Template(
                    int(_text(el, "ID")),
                    _text(el, "NAME"),
                    int(_text(el, "UID")),
                    int(_text(el, "GID")),
                    _template_pairs(el.find("TEMPLATE"), tpl),
                )
            )
        return out

    def instantiate(self, template_id: int, name: str, extra: str, hold: bool = False) -> int:
        return self._call(self.one.template.instantiate, template_id, name, hold, extra, False)

    # -- images -----------------------------------------------------------
    def image(self, image_id: int) -> Image:
        return _image(self._call(self.one.image.info, image_id, not_found="InvalidAMIID.NotFound"))

    def images(self) -> list[Image]:
        pool = self._call(self.one.imagepool.info, -2, -1, -1)
        return [_image(i) for i in getattr(pool, "IMAGE", [])]

    def image_allocate(self, template: str, datastore_id: int) -> int:
        return self._call(self.one.image.allocate, template, datastore_id, False)

    def image_update(self, image_id: int, text: str):
        return self._call(self.one.image.update, image_id, text, 1, not_found="InvalidAMIID.NotFound")


def _template_pairs(el, tpl) -> list:
    if el is None:
        return []
    out = []
    for child in el:
        if len(child):
            out.append((child.tag, [(c.tag, c.text or "") for c in child]))
        else:
            out.append((child.tag, child.text or ""))
    return out

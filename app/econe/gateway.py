"""The cloud gateway: the only code that talks to oned.

Every call runs as the requesting user, with a login token econe obtains for it (`sessions`), so
OpenNebula's own permissions, ACLs and quotas decide what a user may do. The server account's own
rights are used to read what signatures and DryRun need: the users (their secrets, read again every
USERS_TTL seconds) and the ACL rules. Answers come back as plain dataclasses (`objects`); oned's refusals come back as
EC2 errors through one table (`ONED_ERRORS`); an unreachable oned is ``Unavailable``.

Calls go over one XML-RPC connection per request (kept alive where the server allows it; oned 6.10.5
closes it after each answer), and answers are read with lxml rather
than pyone's generated bindings (which cost ~0.1 ms per VM, and keep no error code beyond 0x2000).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.client
import logging
import threading
import time
import xmlrpc.client
from collections.abc import Callable
from urllib.parse import urlparse

from lxml import etree

from one import acl
from one.codes import ACTION, AUTHENTICATION, AUTHORIZATION, LOCKED, NO_EXISTS
from one.x509 import dns_of

from . import attr_index, ids
from .auth import Account
from .errors import EC2Error, auth_failure, dry_run_succeeded, internal_error, unauthorized, unavailable
from .metrics import Metrics
from .objects import (
    VM,
    Image,
    SecGroup,
    Template,
    VNet,
    parse_ec2_attrs,
    parse_image,
    parse_secgroup,
    parse_template,
    parse_vm,
    parse_vm_pool,
    parse_vm_records,
    parse_vnet,
    split_vm_pool,
    template_pairs,
    xml,
)
from .sessions import NO_TOKEN_RETRY, TOKEN_LIFETIME, TOKEN_RENEW, LoginTokens, cipher_session

# seconds econe's copy of the users is used before it is read again: a user created, disabled or
# given a new password in OpenNebula counts for econe after at most this long
USERS_TTL = 2
ACL_TTL = 60  # seconds the ACL rules are cached (DryRun only)
EC2_CACHE_SIZE = 200_000
EXTENDED_AFTER = 20  # more VMs than this missing from the cache: one extended pool call instead
VERIFIES = threading.BoundedSemaphore(2)  # background reads of the extended answer at once (verify_later)
INDEX_OFF_FOR = 600  # seconds a user who may not create documents is left without an index
# VM elements kept with the VM read from them and its EC2 views, by the size of their text: what is
# derived from an element costs about 9 times it (10.5 KiB for a 1 KiB element, measured)
VM_RECORDS_BYTES = 8 * 2**20
VM_RECORD_MAX = 64 * 2**10  # a larger element (a user's long vector values) is read again each time
TIMEOUT = 30
SIGN_OUT_WITHIN = 5  # seconds a stopping econe spends revoking its login tokens
log = logging.getLogger("econe")

# ---------------------------------------------------------------- oned's errors

_NAME_RULES = (
    "The Name tag cannot name an instance here: at most 128 characters, none of & | : \\ \" ; / ' # { } $ < >,"
    " tabs or line breaks."
)


def _missing_or_refused(not_found: EC2Error | None, visible: bool) -> EC2Error:
    # another user's object is as absent as a missing one, unless the user has just read it
    return not_found if not_found and not visible else unauthorized()


# The one table from oned's refusals to EC2's errors, in EC2's words (oned's go to the log): the first
# row whose code (None: any) and phrase of oned's message match decides. Phrases come first: oned sends
# some under several codes (no free lease is INTERNAL from one.vm.allocate, ALLOCATE from
# one.template.instantiate). Each answer is made from (the NotFound error of the object the call
# names, or None; whether the user has just read that object).
ONED_ERRORS: list[tuple[int | None, str, Callable[[EC2Error | None, bool], EC2Error]]] = [
    # a vnet with no free address (VirtualNetworkPool::nic_attribute): the cloud is full, not the request wrong
    (None, "Cannot get IP/MAC lease from virtual network", lambda nf, vis: EC2Error(
        "InsufficientInstanceCapacity", "We currently do not have sufficient capacity to launch your instances.", 500)),
    (None, "Not enough space in datastore", lambda nf, vis: EC2Error(
        "InsufficientCapacity", "There is not enough capacity to fulfill your request.", 500)),
    # an elastic-IP network with no address left for a reservation (VirtualNetwork::reserve_addr)
    (ACTION, "Not enough free addresses", lambda nf, vis: EC2Error(
        "AddressLimitExceeded", "The maximum number of addresses has been reached.")),
    # a reservation still leased (VirtualNetworkPool::drop): a ReleaseAddress racing an AssociateAddress
    (ACTION, "Can not remove a virtual network with leases in use", lambda nf, vis: EC2Error(
        "InvalidIPAddress.InUse", "The address is in use.")),
    # an HA oned without a leader, electing one or catching up (Request::execute): it will be back
    (None, "Cannot process request", lambda nf, vis: unavailable()),
    # PoolObjectSQL::name_is_valid: econe checks the names of the security groups it makes, so what
    # oned refuses is a VM's, given by its Name tag
    (None, "Invalid NAME", lambda nf, vis: EC2Error("InvalidParameterValue", _NAME_RULES)),
    # security groups (SecurityGroupDelete::drop; PoolSQL's unique names per owner: only econe's
    # security groups are named by clients)
    (ACTION, "has VMs using it", lambda nf, vis: EC2Error(
        "DependencyViolation", "The security group is in use by an instance.")),
    (None, "NAME is already taken by SecurityGroup", lambda nf, vis: EC2Error(
        "InvalidGroup.Duplicate", "A security group of that name already exists for this account.")),
    # images from instances (one.vm.disksaveas): econe checks both first, these are the races
    (None, "[one.vm.disksaveas] Error allocating a new image. NAME is already taken", lambda nf, vis: EC2Error(
        "InvalidAMIName.Duplicate", "An image of that name already exists for this account.")),
    (None, "to save disks", lambda nf, vis: EC2Error(
        "IncorrectInstanceState", "The instance is not in a state from which its disk can be saved.")),
    # volumes (ImageManager::acquire_image, ImageManager::delete_image): econe checks both first, these are the races
    (ACTION, "it is persistent and already in use", lambda nf, vis: EC2Error(
        "VolumeInUse", "The volume is already attached to an instance.")),
    (ACTION, "active clone operations", lambda nf, vis: EC2Error(
        "IncorrectState", "A copy of it (a snapshot or a volume) is being made: try again once it is done.")),
    # the user was disabled or removed since econe read the users: the answer of any failed sign-in
    (AUTHENTICATION, "", lambda nf, vis: auth_failure()),
    (AUTHORIZATION, "", _missing_or_refused),
    (NO_EXISTS, "", lambda nf, vis: nf or internal_error("")),  # what econe named itself is gone: econe's trouble
    (ACTION, "", lambda nf, vis: EC2Error(
        "IncorrectInstanceState", "The instance is not in a state from which this can be done.")),
    (LOCKED, "", lambda nf, vis: EC2Error("OperationNotPermitted", "The resource is locked against changes.")),
    # XML_RPC_API, INTERNAL, ALLOCATE: a call econe built or a template the operator wrote that oned
    # refused, or oned's own failure. Not the client's doing.
    (None, "", lambda nf, vis: internal_error("")),
]  # fmt: skip


def ec2_error(
    code: int, message: str, not_found: EC2Error | None = None, visible: bool = False, user: str = ""
) -> EC2Error:
    """The EC2 error for oned's refusal (*code*, *message*) of a call made as *user*; the log gets oned's words."""
    answer = next(make for row, phrase, make in ONED_ERRORS if row in (None, code) and phrase in message)
    error = answer(not_found, visible)
    return EC2Error(error.code, error.message, error.status, f"oned refused a call of {user!r}: {message} ({code})")


class RawXMLRPC:
    """XML-RPC over one connection (kept alive where the server allows), with the answer read by lxml.

    xmlrpc.client unmarshals a string through a Python callback per text fragment: for a pool
    answer (one large entity-escaped string) that is most of the time spent."""

    _TYPES = {"i4": int, "int": int, "i8": int, "boolean": lambda t: t == "1", "string": str, "double": float}

    def __init__(self, url: str, metrics: Metrics, timeout: float = TIMEOUT):
        parts = urlparse(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(parts.hostname, parts.port, timeout=timeout)
        self.path = parts.path or "/RPC2"
        self.metrics = metrics  # where each call's time is counted (econe_oned_call_duration_seconds)

    def call(self, method: str, *params):
        with self.metrics.oned_call(method):
            data, status, reason = self._exchange(method, xmlrpc.client.dumps(params, method).encode())
        if status != 200:
            raise xmlrpc.client.ProtocolError(self.path, status, reason, {})
        root = xml(data)
        fault = root.find("fault")
        if fault is not None:
            raise xmlrpc.client.Fault(-1, etree.tostring(fault, encoding="unicode"))
        out = []
        for v in root.iterfind("params/param/value/array/data/value"):
            typed = v[0] if len(v) else None
            out.append(self._TYPES.get(typed.tag, str)(typed.text or "") if typed is not None else (v.text or ""))
        return out

    def _exchange(self, method: str, body: bytes) -> tuple[bytes, int, str]:
        """oned's answer to *body*: (its bytes, HTTP status, reason)."""
        # a kept-alive connection oned closed meanwhile is reopened once, for a read only: a call that
        # changes oned may have been done before the connection broke, and must not be done twice
        again = self.conn.sock is not None and method.endswith(("info", "infoextended"))
        for attempt in (0, 1) if again else (1,):
            try:
                self.conn.request("POST", self.path, body, {"Content-Type": "text/xml"})
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if attempt:
                    raise
        return data, resp.status, resp.reason

    def value(self, session: str, user: str, method: str, *args, not_found=None, visible=False):
        """What oned answers to *method* for *session* (acting as *user*), or the EC2 error for its refusal."""
        try:
            ok, value, *rest = self.call(method, session, *args)
        except (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError) as e:
            raise unavailable(f"{method}: {e!r}") from None
        except xmlrpc.client.Fault as e:  # oned could not take the call econe built
            raise internal_error(f"{method}: {e.faultString}") from None
        if not ok:
            code = rest[0] if rest else 0
            raise OnedRefusal(ec2_error(code, value, not_found, visible, user), code)
        return value


class OnedRefusal(EC2Error):
    """oned's refusal of a call: the EC2 error for it, and oned's code (AUTHENTICATION: the session)."""

    def __init__(self, error: EC2Error, oned_code: int):
        super().__init__(error.code, error.message, error.status, error.detail)
        self.oned_code = oned_code


class Gateway:
    """One per server: the server account, econe's copy of the users, and sessions for users."""

    def __init__(self, url: str, server_user: str, server_password: str, metrics: Metrics, attrs_ttl: float = 30):
        self.url = url
        self.metrics = metrics  # the served registry: where each oned call is timed
        self.attrs_ttl = attrs_ttl  # seconds a VM's EC2 attributes are used before they are read again
        self.server_user = server_user
        self.key = hashlib.sha256(server_password.encode()).hexdigest()
        self._logins = LoginTokens(self._login)
        self._signed_out = False
        self._users: dict[str, Account] = {}
        self._dns: dict[str, list[tuple[str, bool]]] = {}  # DN of an x509 user -> (its name, enabled): usually one
        self._users_at = -float("inf")  # time.monotonic() when the read they come from began
        self._users_done = -float("inf")  # when the last read ended
        self._users_failed: EC2Error | None = None  # how it ended, when it failed
        self._users_lock = threading.Lock()  # one read at a time; requests that wait for it share it
        self._rules: tuple[float, list] = (0.0, [])
        self._lock = threading.Lock()
        self._made: dict[int, tuple[float, dict, str]] = {}
        self._records: dict[str, VM] = {}  # a VM element of a pool answer, as oned wrote it -> its VM
        self._records_size = 0  # the length of the elements kept
        self._attrs_read: dict[str, float] = {}  # user -> when a listing last read the EC2 attributes
        self._indexes: dict[str, _Index] = {}

    def rpc(self, timeout: float = TIMEOUT) -> RawXMLRPC:
        """A connection to oned, whose calls are timed in the server's metrics."""
        return RawXMLRPC(self.url, self.metrics, timeout)

    def session_string(self, user: str, refused: str = "") -> str:
        """The session econe acts for *user* with: ``user:<login token>`` (a new one when *refused*), or
        the user's server_cipher session where oned gives none: always for the server account itself."""
        if user == self.server_user:  # oned checks no login token of a server_cipher account
            return cipher_session(self.server_user, self.key, user)
        return self._logins.session(user, refused)

    def _login(self, user: str) -> tuple[str, float]:
        """A login token for *user*, asked for with the user's server_cipher session, and how long econe
        uses it. oned refusing that session is the AuthFailure it always was (a removed user); refusing
        the token (tokens disabled for the user's driver, or its 10 tokens taken) leaves the user on
        that session, as before econe had tokens, for NO_TOKEN_RETRY."""
        cipher = cipher_session(self.server_user, self.key, user)
        if self._signed_out:
            return cipher, NO_TOKEN_RETRY
        try:
            token = self.rpc().value(cipher, user, "one.user.login", user, "", TOKEN_LIFETIME, -1)
        except OnedRefusal as e:
            if e.oned_code == AUTHENTICATION or e.code == "Unavailable":
                raise
            log.warning("no login token for %r, acting with its server_cipher session: %s", user, e.detail)
            return cipher, NO_TOKEN_RETRY
        return f"{user}:{token}", TOKEN_LIFETIME - TOKEN_RENEW

    def sign_out(self, within: float = SIGN_OUT_WITHIN) -> None:
        """Revoke the login tokens this process holds (at its stop): oned keeps at most 10 per user, and a
        restarted econe would otherwise leave one behind for up to TOKEN_LIFETIME. Each token revokes
        itself (``one.user.login(user:token, user, token, 0)``: a user may end its own tokens), which
        costs oned no driver call; what is not done *within* seconds, or once oned is unreachable, is
        left to expire."""
        self._signed_out = True  # a request Cheroot gave up on and that still runs makes no new token
        deadline = time.monotonic() + within
        for user, token in self._logins.tokens():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self.rpc(timeout=left).value(f"{user}:{token}", user, "one.user.login", user, token, 0, -1)
            except EC2Error as e:  # oned's words would name the token
                log.info("the login token econe held for %r was not revoked: %s", user, e.code)
                if e.code == "Unavailable":
                    break

    def _as_server(self, method: str, *args) -> str:
        """A call with the server account's own rights. Its refusal is the service's trouble, never the client's."""
        try:
            return self.rpc().value(self.session_string(self.server_user), self.server_user, method, *args)
        except EC2Error as e:
            raise e if e.status >= 500 else internal_error(e.detail) from None

    def account(self, name: str) -> Account | None:
        """The user *name* as econe's copy of the user pool has it; None when it has no core or public
        user of that name."""
        self._fresh_users()
        return self._users.get(name)

    def x509_users(self, dn: str) -> list[tuple[str, bool]]:
        """(name, enabled) of each x509 user whose password lists *dn* (OpenNebula's form of it)."""
        self._fresh_users()
        return self._dns.get(dn, [])

    def _fresh_users(self) -> None:
        """econe's copy of the user pool is read again once it is USERS_TTL old, by the first request
        that needs it, whichever user that request names, and requests that come meanwhile wait for
        that one read: an unknown user costs what a known one does, and a flood of them one read per
        USERS_TTL."""
        asked = time.monotonic()
        if asked - self._users_at >= USERS_TTL:
            with self._users_lock:
                if self._users_done < asked:  # no read ended while this request waited: it reads
                    began = time.monotonic()
                    try:
                        (self._users, self._dns), self._users_at, self._users_failed = self._read_users(), began, None
                    except EC2Error as e:
                        self._users_failed = e  # the requests that waited for this read get its failure
                    self._users_done = time.monotonic()
                failed = self._users_failed
            if failed:
                raise EC2Error(failed.code, failed.message, failed.status, failed.detail)

    def _read_users(self) -> tuple[dict[str, Account], dict[str, list[tuple[str, bool]]]]:
        accounts, dns = {}, {}
        for u in xml(self._as_server("one.userpool.info")).iterfind("USER"):
            name, password, enabled = u.findtext("NAME"), u.findtext("PASSWORD") or "", u.findtext("ENABLED") == "1"
            driver = u.findtext("AUTH_DRIVER")
            if driver in ("core", "public"):  # the drivers whose PASSWORD is the EC2 secret
                accounts[name] = Account(password, enabled)
            elif driver == "x509":
                for dn in set(dns_of(password)):
                    dns.setdefault(dn, []).append((name, enabled))
        return accounts, dns

    def acl_rules(self) -> list[tuple[int, int, int]]:
        """oned's ACL rules ``(user, resource, rights)``, read with the server account (users may not),
        cached for ACL_TTL. Only DryRun uses them: every real call is oned's own decision."""
        with self._lock:
            at, rules = self._rules
            if time.time() - at < ACL_TTL:
                return rules
        rules = [
            tuple(acl.parse_hex(rule.findtext(part)) for part in ("USER", "RESOURCE", "RIGHTS"))
            for rule in xml(self._as_server("one.acl.info")).iterfind("ACL")
        ]
        with self._lock:
            self._rules = (time.time(), rules)
        return rules

    def remember(self, vmid: int, user_template: dict, arch: str) -> dict:
        """What a VM was made with and the short pool answer lacks: its EC2 attributes (returned) and OS/ARCH."""
        return self.remember_seen(vmid, user_template, arch)[0]

    def remember_seen(self, vmid: int, user_template: dict, arch: str) -> tuple[dict, attr_index.Entry | None]:
        """`remember`, and what was remembered of the VM before (None: nothing)."""
        attrs = _ec2_attrs(user_template)
        with self._lock:
            before = self._made.get(vmid)
            self._made[vmid] = (time.time(), attrs, arch)
            if len(self._made) > EC2_CACHE_SIZE:  # drop the oldest entries
                for key in sorted(self._made, key=lambda k: self._made[k][0])[: EC2_CACHE_SIZE // 10]:
                    del self._made[key]
        return attrs, before[1:] if before else None

    def made_with(self, vmid: int) -> tuple[dict, str] | None:
        """(EC2 attributes, arch) remembered for *vmid*, or None when unknown or too old."""
        return self.made_with_each([vmid])[vmid]

    def made_with_each(self, vmids: list[int]) -> dict[int, tuple[dict, str] | None]:
        oldest, made = time.time() - self.attrs_ttl, self._made
        return {vmid: entry[1:] if (entry := made.get(vmid)) and entry[0] > oldest else None for vmid in vmids}

    def attrs_due(self, user: str) -> bool:
        """Whether the EC2 attributes of *user*'s VMs are due to be read again with its next listing
        (not while they are being read in the background)."""
        due = time.time() - self._attrs_read.get(user, -float("inf")) >= self.attrs_ttl
        return due and not self.index(user).verifying

    def index(self, user: str) -> _Index:
        """This process's view of *user*'s index of EC2 attributes (`attr_index`)."""
        with self._lock:
            return self._indexes.setdefault(user, _Index())

    def verify_later(self, user: str, start: int, end: int, state: int) -> None:
        """Read the extended answer for a listing served from the index, in the background: what it
        finds is used from the next listing on, and the index is corrected. Skipped when VERIFIES are
        under way (the attributes stay due: the next listing reads them)."""
        index = self.index(user)
        if index.verifying or not VERIFIES.acquire(blocking=False):
            return
        index.verifying = True

        def run():
            try:
                UserSession(self, user).verify(start, end, state)
            except Exception:  # noqa: BLE001 -- a listing already answered: the next one reads them again
                log.warning("the EC2 attributes of %r were not read again", user, exc_info=True)
            finally:
                index.verifying = False
                VERIFIES.release()

        threading.Thread(target=run, daemon=True).start()

    def attrs_read(self, user: str) -> None:
        self._attrs_read[user] = time.time()

    def vm_records(self, text: str) -> list[VM]:
        """The VMs of a VM_POOL answer. A VM whose element reads as it did before comes back as the
        same object, with what was derived from it (`VM.views`): an unchanged VM is neither parsed nor
        described again. Most of a listing's VMs are unchanged since the last one."""
        records = split_vm_pool(text)
        if records is None:
            return parse_vm_pool(text)
        known = self._records
        vms = [known.get(r) for r in records]
        new = [r for r, vm in zip(records, vms) if vm is None]
        if new:
            try:
                parsed = parse_vm_records(new)
            except etree.XMLSyntaxError:
                parsed = []
            if len(parsed) != len(new):  # not plainly one VM per piece: no reuse
                return parse_vm_pool(text)
            fresh = iter(parsed)
            with self._lock:
                vms = [vm or self._keep(r, next(fresh)) for r, vm in zip(records, vms)]
        return vms

    def _keep(self, record: str, vm: VM) -> VM:
        """Keep *vm* as read from *record* (under the lock), within VM_RECORDS_BYTES: the oldest go first."""
        if len(record) > VM_RECORD_MAX or record in self._records:
            return self._records.get(record, vm)
        self._records[record] = vm
        self._records_size += len(record)
        if self._records_size > VM_RECORDS_BYTES:  # keep the newest nine tenths
            kept, size = [], 0
            for r, v in reversed(self._records.items()):
                size += len(r)
                if size > VM_RECORDS_BYTES * 9 // 10:
                    break
                kept.append((r, v))
            self._records, self._records_size = dict(reversed(kept)), sum(len(r) for r, _ in kept)
        return vm

    @staticmethod
    def with_attrs(vm: VM, attrs: dict, arch: str) -> VM:
        """*vm* (from a short pool answer) with its EC2 attributes and arch: the same object again while they are."""
        made = vm.views.get("attrs")
        if made is None or made[0] != attrs or made[1] != arch:
            full = dataclasses.replace(vm, user_template={**vm.user_template, **attrs}, arch=arch, views={})
            vm.views["attrs"] = made = (attrs, arch, full)
        return made[2]

    def as_user(self, user: str, dry_run: bool = False) -> UserSession:
        return UserSession(self, user, dry_run)

    # -- hosts (instance status) -------------------------------------------
    def host_states(self) -> dict[int, int]:
        """Each host's STATE, read with the server account: a cloud user may not list hosts (its group
        has USE on its own hosts at most), and an instance's system status is its host's state. Only
        the states leave this method: no host name or address reaches a client."""
        pool = xml(self._as_server("one.hostpool.info"))
        return {int(h.findtext("ID")): int(h.findtext("STATE")) for h in pool.iterfind("HOST")}


def _ec2_attrs(user_template: dict) -> dict:
    """What a user template holds for econe: its EC2_* attributes."""
    return {k: v for k, v in user_template.items() if k.startswith("EC2_")}


@dataclasses.dataclass
class _Index:
    """What this process knows of a user's index: its documents (shard -> id) and entries, as last read
    or written."""

    docs: dict[int, int] = dataclasses.field(default_factory=dict)
    entries: dict[int, attr_index.Entry] = dataclasses.field(default_factory=dict)
    loaded: bool = False
    off_until: float = 0.0  # the user may not create documents: no index until then (time.monotonic())
    verifying: bool = False
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # one read or write at a time
    # entries other requests saw while one wrote: the writer writes them too (no request waits); True:
    # written whatever this process thinks the index holds (a change a request saw: another server may
    # have written the index since this one read it)
    pending: dict[int, tuple[attr_index.Entry, bool]] = dataclasses.field(default_factory=dict)
    guard: threading.Lock = dataclasses.field(default_factory=threading.Lock)  # for pending


class _Later:
    """A call made on a thread of its own; `result` waits for it and returns (or raises) what it did."""

    def __init__(self, call, *args):
        self._out: tuple = (None, None)
        self._thread = threading.Thread(target=self._run, args=(call, args), daemon=True)
        self._thread.start()

    def _run(self, call, args):
        try:
            self._out = (call(*args), None)
        except Exception as e:  # raised again where the result is asked for
            self._out = (None, e)

    def result(self):
        self._thread.join()
        value, error = self._out
        if error is not None:
            raise error
        return value


# what DryRun reads to decide, per kind of object: its info call
_INFO = {
    "VM": ("one.vm.info", False),
    "IMAGE": ("one.image.info", False),
    "TEMPLATE": ("one.template.info", False, False),
    "NET": ("one.vn.info", False),
    "SECGROUP": ("one.secgroup.info", False),
}


def _vm_missing(vmid: int) -> EC2Error:
    return ids.not_found("i", ids.fmt("i", vmid))


def _image_missing(image_id: int) -> EC2Error:
    return ids.not_found("ami", ids.fmt("ami", image_id))


class UserSession:
    """Calls made as one user; create one per request (the XML-RPC connection is not shared).

    In a dry run, nothing that changes oned is called: `decide_dry_run` answers instead."""

    def __init__(self, gateway: Gateway, user: str, dry_run: bool = False):
        self.gateway = gateway
        self.user = user
        self.is_dry_run = dry_run
        self._rpc = gateway.rpc()  # connects at its first call
        self._notes: dict[int, attr_index.Entry] = {}  # VMs whose EC2 attributes the index may not hold
        self._unverified: tuple[int, int, int] | None = None  # a listing served from the index: its range

    def _call(self, method: str, *args, not_found: EC2Error | None = None, visible: bool = False):
        session = self.gateway.session_string(self.user)
        try:
            return self._rpc.value(session, self.user, method, *args, not_found=not_found, visible=visible)
        except OnedRefusal as e:
            if e.oned_code != AUTHENTICATION:
                raise
        # the session was refused (a token revoked or expired early): once more with a new one. oned
        # authenticates before it does anything (Request::execute), so the refused call did nothing.
        session = self.gateway.session_string(self.user, refused=session)
        return self._rpc.value(session, self.user, method, *args, not_found=not_found, visible=visible)

    def _changes(self) -> None:
        """Every call that changes oned passes here: a dry run that reaches one is a bug."""
        if self.is_dry_run:
            raise RuntimeError("a dry run reached a call that changes oned")

    def decide_dry_run(self, needs: list[tuple[str, str, int | None]]) -> None:
        """End a dry run: DryRunOperation when oned would allow each ``(right, kind, id)`` (id None:
        CREATE), as oned decides it (oneadmin group, permission bits, ACL rules); else UnauthorizedOperation."""
        uid, gids = self.whoami()
        rules = self.gateway.acl_rules()
        for right, kind, oid in needs:
            obj = None
            if oid is not None:
                method, *flags = _INFO[kind]
                el = xml(self._call(method, oid, *flags))
                perms = tuple(int(p.text) for p in el.find("PERMISSIONS"))
                obj = (oid, int(el.findtext("UID")), int(el.findtext("GID")), perms, ())
            if not acl.permits(uid, gids, right, kind, rules, obj):
                raise unauthorized(f"{right} on {kind.lower()} {oid}" if oid is not None else f"{right} {kind}")
        raise dry_run_succeeded()

    # -- users ------------------------------------------------------------
    def whoami(self) -> tuple[int, set[int]]:
        """The user's id and group ids."""
        me = xml(self._call("one.user.info", -1, False))
        return int(me.findtext("ID")), {int(g.text) for g in me.iterfind("GROUPS/ID")}

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
        the OS/ARCH of the template, which change seldom (the actions that change them re-read the VM;
        what another econe server changed shows once the entry is attrs_ttl old): those come from a
        cache, filled from the extended answer (or one vm.info per VM when few are missing). When they
        are due, the extended answer is asked for at the same time as the short one, on a second
        connection; a server that has not read them yet asks for the user's index instead
        (`attr_index`), and reads the extended answer once the request's work is done (`finish`)."""
        g = self.gateway
        index, extended, indexed = g.index(self.user), None, None
        if g.attrs_due(self.user):
            fresh = UserSession(g, self.user, self.is_dry_run)
            if g.attrs_ttl > 0 and not index.loaded and index.off_until <= time.monotonic():
                indexed = _Later(fresh.read_index)
            else:
                extended = _Later(fresh._call, "one.vmpool.infoextended", -3, start, end, state)
        vms = g.vm_records(self._call("one.vmpool.info", -3, start, end, state))
        known = g.made_with_each([vm.id for vm in vms])
        missing = [vmid for vmid, entry in known.items() if entry is None]
        from_index = False
        if indexed is not None:
            entries = indexed.result()
            for vmid in missing:
                if (entry := entries.get(vmid)) is not None:
                    known[vmid], from_index = (g.remember(vmid, *entry), entry[1]), True
            missing = [vmid for vmid in missing if known[vmid] is None]
        if extended is not None:
            text = extended.result()
        elif len(missing) > EXTENDED_AFTER:
            text = self._call("one.vmpool.infoextended", -3, start, end, state)
        else:
            text = None
        # what is read here is used as read, whatever the cache keeps (cache_ttl may be 0)
        if text is not None:
            known.update(self._attrs_read(text, whole=(start, end) == (-1, -1)))
        elif from_index:
            self._unverified = (start, end, state)
        for vmid in missing:
            if known.get(vmid) is None:  # few missing, or made since the extended answer
                full = self.vm(vmid)  # remembered there
                known[vmid] = self._notes[vmid] = (_ec2_attrs(full.user_template), full.arch)
        return [g.with_attrs(vm, *(known.get(vm.id) or ({}, ""))) for vm in vms]

    def _attrs_read(self, text: str, whole: bool) -> dict[int, attr_index.Entry]:
        """The EC2 attributes of an extended answer's VMs, as read: remembered, and written to the index
        where it differs (*whole*: the answer lists all the user's VMs, so the index may be pruned)."""
        g, seen = self.gateway, {}
        for vmid, (attrs, arch) in parse_ec2_attrs(text).items():
            seen[vmid] = (g.remember(vmid, attrs, arch), arch)
        g.attrs_read(self.user)
        self._write_index(seen, listed=set(seen) if whole else None)
        return seen

    def verify(self, start: int, end: int, state: int) -> None:
        """Read the extended answer of a listing served from the index, and correct the index."""
        self._attrs_read(self._call("one.vmpool.infoextended", -3, start, end, state), whole=(start, end) == (-1, -1))

    # -- the index of EC2 attributes (attr_index) ---------------------------
    def read_index(self) -> dict[int, attr_index.Entry]:
        """The entries of the user's index, as oned has it now; none when it cannot be read, or while
        another request of the user reads or writes it (no request waits for the index)."""
        index = self.gateway.index(self.user)
        if not index.lock.acquire(blocking=False):
            return {}
        try:
            return self._load_index(index)
        finally:
            index.lock.release()

    def _load_index(self, index: _Index) -> dict[int, attr_index.Entry]:
        try:
            docs, entries, others = attr_index.parse(self._call("one.documentpool.info", -3, -1, -1, attr_index.TYPE))
        except EC2Error as e:  # the listing reads the extended answer instead
            log.info("the EC2 attribute index of %r was not read: %s", self.user, e.detail or e.code)
            return {}
        except (ValueError, etree.XMLSyntaxError) as e:  # the user's own writing: no index for a while
            log.warning("the EC2 attribute index of %r is not used: %s", self.user, e)
            index.off_until = time.monotonic() + INDEX_OFF_FOR
            return {}
        index.docs, index.entries, index.loaded = docs, entries, True
        for other in others if not self.is_dry_run else ():  # two servers made one at once: the lowest id counts
            self._index_call("one.document.delete", other)
        return entries

    def finish(self) -> None:
        """End the request's work: what it saw of its VMs' EC2 attributes goes to the index, and a
        listing it served from the index is read again in the background. Never raises: the index is
        a cache, and the request's answer is what it did."""
        notes, self._notes, unverified, self._unverified = self._notes, {}, self._unverified, None
        try:
            if notes:
                self._write_index(notes, seen_change=True)
            if unverified is not None and not self.is_dry_run:  # a dry run writes nothing, not even this
                self.gateway.verify_later(self.user, *unverified)
        except Exception:  # noqa: BLE001 -- the answer stands; the next extended read mends the index
            log.warning("the EC2 attribute index of %r was not written", self.user, exc_info=True)

    def _write_index(
        self, seen: dict[int, attr_index.Entry], listed: set[int] | None = None, seen_change: bool = False
    ) -> None:
        """Write the entries of *seen* the index does not hold as they are; the whole index when it
        holds many VMs no longer *listed* (a whole listing's ids) or more than it keeps. No request
        waits for another's write: what it saw is left to that writer (`_Index.pending`). Nothing is
        written after oned refused a write (INDEX_OFF_FOR)."""
        g = self.gateway
        index = g.index(self.user)
        if self.is_dry_run or g.attrs_ttl <= 0 or index.off_until > time.monotonic():
            return
        with index.guard:
            index.pending.update((vmid, (entry, seen_change)) for vmid, entry in seen.items())
        while index.pending and index.lock.acquire(blocking=False):
            try:
                with index.guard:
                    batch, index.pending = index.pending, {}
                self._write_held(index, batch, listed)
                listed = None
            finally:
                index.lock.release()

    def _write_held(self, index: _Index, batch: dict, listed: set[int] | None) -> None:
        """`_write_index` with the index's lock held."""
        seen = {vmid: entry for vmid, (entry, _) in batch.items()}
        forced = {vmid: entry for vmid, (entry, force) in batch.items() if force}
        for retry in (False, True):  # once more after reading it again: the user may have deleted it
            if index.off_until > time.monotonic():
                return
            if not index.loaded:
                self._load_index(index)
                if not index.loaded:
                    return
            changes = {**attr_index.changed(index.entries, seen), **forced}
            merged = {**index.entries, **changes}
            whole = len(merged) > attr_index.MAX_ENTRIES or (listed is not None and attr_index.stale(merged, listed))
            if whole:  # every document written anew with what it keeps
                merged = attr_index.newest({v: e for v, e in merged.items() if listed is None or v in listed})
                parts = {shard_no: {} for shard_no in index.docs} | attr_index.by_shard(merged)
            elif changes:
                parts = attr_index.by_shard(changes)
            else:
                return
            refused = None
            for shard_no, part in parts.items():
                doc = index.docs.get(shard_no)
                if doc is not None:
                    text = attr_index.template(part)
                    done, value = self._index_call("one.document.update", doc, text, 0 if whole else 1)
                elif part:
                    text = attr_index.template(part, shard_no)
                    done, value = self._index_call("one.document.allocate", text, attr_index.TYPE)
                    if done:
                        index.docs[shard_no] = value
                else:
                    continue
                if not done:
                    refused = value
                    break
            else:
                index.entries = merged
                return
            index.loaded = False
            if retry or refused != NO_EXISTS:
                return

    def _index_call(self, method: str, *args) -> tuple[bool, object]:
        """A call that writes the index: (True, its answer), or (False, oned's code) when refused
        (logged). A refusal other than a missing document (a user without CREATE on DOCUMENT, one who
        locked or took rights from its index) leaves the user without an index for INDEX_OFF_FOR."""
        try:
            return True, self._call(method, *args)
        except OnedRefusal as e:
            if e.oned_code != NO_EXISTS:
                self.gateway.index(self.user).off_until = time.monotonic() + INDEX_OFF_FOR
            log.info("%s for the EC2 attribute index of %r: %s", method, self.user, e.detail or e.code)
            return False, e.oned_code
        except EC2Error as e:
            log.warning("%s for the EC2 attribute index of %r: %s", method, self.user, e.detail or e.code)
            return False, None

    def vm(self, vmid: int) -> VM:
        vm = parse_vm(xml(self._call("one.vm.info", vmid, False, not_found=_vm_missing(vmid))))
        attrs, before = self.gateway.remember_seen(vm.id, vm.user_template, vm.arch)
        held = self.gateway.index(self.user).entries.get(vm.id)
        changed = (attrs, vm.arch) != (held or before or (attrs, vm.arch))  # the index may be behind
        if vm.uname == self.user and (changed or vm.id in self._notes):  # the last read counts
            self._notes[vm.id] = (attrs, vm.arch)
        return vm

    def vm_action(self, action: str, vmid: int):
        self._changes()
        return self._call("one.vm.action", action, vmid, not_found=_vm_missing(vmid), visible=True)

    def vm_allocate(self, template: str, hold: bool = False) -> int:
        self._changes()
        return self._call("one.vm.allocate", template, hold)

    def vm_update(self, vmid: int, text: str, merge: bool = True):
        self._changes()
        return self._call("one.vm.update", vmid, text, 1 if merge else 0, not_found=_vm_missing(vmid))

    def made(self, vmid: int, user_attrs: dict, arch: str) -> None:
        """Record what this request made VM *vmid* with: the listings need it, and the short pool answer lacks it."""
        self._notes[vmid] = (self.gateway.remember(vmid, user_attrs, arch), arch)

    # -- templates --------------------------------------------------------
    def templates(self, mine: bool = False) -> list[Template]:
        """The VM templates the user may use, or (*mine*) only its own: oned's pool filter -2 or -3."""
        pool = self._call("one.templatepool.info", -3 if mine else -2, -1, -1)
        return [parse_template(el) for el in xml(pool).iterfind("VMTEMPLATE")]

    def template_allocate(self, text: str) -> int:
        self._changes()
        return self._call("one.template.allocate", text)

    def template_delete(self, template_id: int) -> None:
        self._changes()
        self._call("one.template.delete", template_id, False)

    def instantiate(self, template_id: int, name: str, extra: str, hold: bool = False) -> int:
        self._changes()
        return self._call("one.template.instantiate", template_id, name, hold, extra, False)

    # -- images -----------------------------------------------------------
    def image(self, image_id: int) -> Image:
        return parse_image(xml(self._call("one.image.info", image_id, False, not_found=_image_missing(image_id))))

    def images(self, mine: bool = False) -> list[Image]:
        """The images the user may use, or (*mine*) only its own: oned's pool filter -2 or -3."""
        return [parse_image(el) for el in xml(self._call("one.imagepool.info", -3 if mine else -2, -1, -1))]

    def image_allocate(self, template: str, datastore_id: int) -> int:
        self._changes()
        return self._call("one.image.allocate", template, datastore_id, False)

    def image_update(self, image_id: int, text: str):
        self._changes()
        return self._call("one.image.update", image_id, text, 1, not_found=_image_missing(image_id), visible=True)

    # -- the user's own template (key pairs) --------------------------------
    def own_template(self) -> tuple[int, list]:
        """The user's id and its own template, as one.template pairs (one.user.info of itself)."""
        me = xml(self._call("one.user.info", -1, False))
        return int(me.findtext("ID")), template_pairs(me.find("TEMPLATE"))

    def own_template_update(self, uid: int, text: str, merge: bool = True):
        """Merge (oned keeps one attribute per name) or replace the user's own template."""
        self._changes()
        return self._call("one.user.update", uid, text, 1 if merge else 0)

    # -- tags ---------------------------------------------------------------
    def vm_rename(self, vmid: int, name: str):
        self._changes()
        return self._call("one.vm.rename", vmid, name, not_found=_vm_missing(vmid), visible=True)

    # -- virtual networks (the VPC view) ------------------------------------
    def vnets(self, elastic: int | None) -> list[VNet]:
        """Every virtual network the user may use: oned's pool answer for "all" lists what the user may USE
        (its own, its groups', and what ACL rules such as a VDC's ``NET/* USE`` give it). A reservation
        of the *elastic* network (elastic IPs) is an address the user holds, not a network; the user's
        reservation of another network is one, as before elastic IPs."""
        pool = xml(self._call("one.vnpool.info", -2, -1, -1))
        return [parse_vnet(el) for el in pool if elastic is None or el.findtext("PARENT_NETWORK_ID") != str(elastic)]

    # -- security groups ------------------------------------------------
    def secgroups(self) -> list[SecGroup]:
        """The security groups the user may see (USE): its own, its groups' shared ones, OpenNebula's default."""
        return [
            parse_secgroup(el) for el in xml(self._call("one.secgrouppool.info", -2, -1, -1)).iterfind("SECURITY_GROUP")
        ]

    def secgroup(self, sgid: int) -> SecGroup:
        return parse_secgroup(xml(self._call("one.secgroup.info", sgid, False, not_found=secgroup_missing(sgid))))

    def secgroup_allocate(self, text: str) -> int:
        self._changes()
        return self._call("one.secgroup.allocate", text)

    def secgroup_update(self, sgid: int, text: str, merge: bool = False) -> None:
        """Replace the whole template (oned pushes the rules to the VMs that use the group), or merge into it."""
        self._changes()
        self._call("one.secgroup.update", sgid, text, 1 if merge else 0, not_found=secgroup_missing(sgid), visible=True)

    def secgroup_delete(self, sgid: int) -> None:
        self._changes()
        self._call("one.secgroup.delete", sgid, not_found=secgroup_missing(sgid), visible=True)

    # -- instance attributes ----------------------------------------------
    def vm_with_template(self, vmid: int) -> tuple[VM, list]:
        """The VM and its whole TEMPLATE as one.template pairs (CONTEXT, NICs, DISKs), from one.vm.info."""
        el = xml(self._call("one.vm.info", vmid, False, not_found=_vm_missing(vmid)))
        vm = parse_vm(el)
        self.gateway.remember(vm.id, vm.user_template, vm.arch)
        return vm, template_pairs(el.find("TEMPLATE"))

    def vms_with_hosts(self, with_done: bool) -> list[tuple[VM, int]]:
        """The user's VMs from the short pool answer, each with the host its last history record
        names (-1: never placed)."""
        pool = xml(self._call("one.vmpool.info", -3, -1, -1, -2 if with_done else -1))
        return [(parse_vm(el), int(el.findtext("HISTORY_RECORDS/HISTORY[last()]/HID") or -1)) for el in pool]

    def vm_resize(self, vmid: int, text: str):
        """one.vm.resize with CPU, VCPU and MEMORY in *text* (the third parameter, enforce, oned 6.10 ignores)."""
        self._changes()
        return self._call("one.vm.resize", vmid, text, False, not_found=_vm_missing(vmid), visible=True)

    def vm_updateconf(self, vmid: int, text: str):
        """one.vm.updateconf merging *text* (update type 1) into the VM's configuration (CONTEXT...)."""
        self._changes()
        return self._call("one.vm.updateconf", vmid, text, 1, not_found=_vm_missing(vmid), visible=True)

    # -- volumes and snapshots (issue #14, part vol): images, and a VM's disks --------------------
    @functools.cached_property
    def uid(self) -> int:
        """The user's id, read once per request: a volume is its owner's alone."""
        return self.whoami()[0]

    def image_clone(self, image_id: int, name: str) -> int:
        """A copy of the image in its datastore; oned copies its template and persistence too."""
        self._changes()
        return self._call("one.image.clone", image_id, name, -1, not_found=_image_missing(image_id), visible=True)

    def image_persistent(self, image_id: int, persistent: bool):
        self._changes()
        missing = _image_missing(image_id)
        return self._call("one.image.persistent", image_id, persistent, not_found=missing, visible=True)

    def image_delete(self, image_id: int):
        self._changes()
        return self._call("one.image.delete", image_id, False, not_found=_image_missing(image_id), visible=True)

    def vm_attach(self, vmid: int, text: str):
        """Hot-plug the DISK of *text* into the VM."""
        self._changes()
        return self._call("one.vm.attach", vmid, text, not_found=_vm_missing(vmid), visible=True)

    def vm_detach(self, vmid: int, disk_id: int):
        self._changes()
        return self._call("one.vm.detach", vmid, disk_id, not_found=_vm_missing(vmid), visible=True)

    def vm_disksaveas(self, vmid: int, disk_id: int, name: str) -> int:
        """A new image of the disk as it is now (its current state, no disk snapshot)."""
        self._changes()
        return self._call("one.vm.disksaveas", vmid, disk_id, name, "", -1, not_found=_vm_missing(vmid), visible=True)

    # -- images from instances (issue #14, part ami): one.vm.disksaveas and image_delete are above ----
    def image_sharing(self, image_id: int) -> tuple[str, bool, bool]:
        """The image's group name and whether its group and everyone else may use it (GROUP_U, OTHER_U)."""
        el = xml(self._call("one.image.info", image_id, False, not_found=_image_missing(image_id)))
        return (
            el.findtext("GNAME") or "",
            el.findtext("PERMISSIONS/GROUP_U") == "1",
            el.findtext("PERMISSIONS/OTHER_U") == "1",
        )

    def image_chmod(self, image_id: int, group_use: int, other_use: int) -> None:
        """Set GROUP_U and OTHER_U (-1: leave as it is), every other permission bit as it is."""
        self._changes()
        bits = (-1, -1, -1, group_use, -1, -1, other_use, -1, -1)
        self._call("one.image.chmod", image_id, *bits, not_found=_image_missing(image_id), visible=True)

    # -- elastic IPs (issue #14, eip): an address is a reservation network of the user -------------
    def own_vnets(self) -> list:
        """The VNET elements of the networks the user owns (a reservation has PARENT_NETWORK_ID)."""
        return list(xml(self._call("one.vnpool.info", -3, -1, -1)).iterfind("VNET"))

    def vn_reserve(self, parent: int, text: str, not_found: EC2Error) -> int:
        """A new reservation network of the user holding addresses of *parent* (oned asks USE of it)."""
        self._changes()
        return self._call("one.vn.reserve", parent, text, not_found=not_found)

    def vn_update(self, vnid: int, text: str) -> None:
        """Merge *text* into the network's template (an address's tags)."""
        self._changes()
        self._call("one.vn.update", vnid, text, 1)

    def vn_delete(self, vnid: int, not_found: EC2Error) -> None:
        self._changes()
        self._call("one.vn.delete", vnid, not_found=not_found, visible=True)

    def vm_attachnic(self, vmid: int, text: str) -> None:
        self._changes()
        self._call("one.vm.attachnic", vmid, text, not_found=_vm_missing(vmid), visible=True)

    def vm_detachnic(self, vmid: int, nic_id: int) -> None:
        self._changes()
        self._call("one.vm.detachnic", vmid, nic_id, not_found=_vm_missing(vmid), visible=True)


def secgroup_missing(sgid: int, text: str | None = None) -> EC2Error:
    """InvalidGroup.NotFound of group *sgid*, named as the request named it (sg-7 or sg-00000007)."""
    return EC2Error("InvalidGroup.NotFound", f"The security group '{text or ids.fmt('sg', sgid)}' does not exist")

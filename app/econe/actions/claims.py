"""A ClientToken claimed in OpenNebula: what one token names (RunInstances' instances, CreateVolume's
volume) is made once, however many econe servers of one oned its requests reach.

The claim is a VM template of the requesting user, named from the token (`name`). oned refuses a
second template of one name and owner (``VMTemplatePool::allocate``; set 3's captures), so of the
requests that race, one allocates it and makes; the others find the name taken, wait for that one
to finish, and answer what it made. oned checks the name before it inserts, outside its pool's lock,
and its ``template_pool`` table has no unique key on (name, uid) (``OneDB.cc``), so two allocations
at the same moment can both pass: a claimant therefore reads the user's templates of that name, and
only the lowest id is the claim (ids grow in the order of inserts, so every claimant sees that one);
a later one is deleted and its request waits like the others. A template that carries no
``EC2_INSTANCE_TYPE`` is no instance type, so no EC2 listing shows a claim.

A claim lives while its request makes: it is deleted once what was made exists (or a failed request
has removed what it made), so ``onetemplate list`` shows only the claims of requests under way. It
holds the time until which it stands (UNTIL, econe's clock: the econe servers of one oned run on one
frontend); one past it was left by a process that died, and any claiming request of the user deletes
it (`_held`: a client may never send that token again; boto3 makes a new one per call).
A request starts making only within MAKE_WITHIN of its claim, well inside LIFETIME, so no claim is
taken over from a request still at work.

What a token made is looked for under the claim, and read from oned, not from a listing's cache
(`find` of the caller): a request that held the claim before may have made it."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from one import template as tpl

from ..errors import EC2Error
from ..objects import Template
from . import waits
from .registry import Context

PREFIX = "ec2-claim-"  # a claim's NAME: PREFIX, its kind, the token's hash
UNTIL = "EC2_CLAIM_UNTIL"  # the claim's attribute: the time (seconds since the epoch) until which it stands
LIFETIME = 300  # seconds a claim stands; then a request finding it takes it over
MAKE_WITHIN = 60  # seconds after its claim in which a request may start making; the rest of LIFETIME
# covers its last oned call (gateway.TIMEOUT) and a failed RunInstances' removal of what it made
WAIT = 10  # seconds a request waits for another's claim of its token, on this server or another
POLL = 0.1

T = TypeVar("T")


def name(kind: str, token: str) -> str:
    """The claim's NAME: a hash, as a token may hold characters oned refuses in names (at most 64 of any)."""
    return f"{PREFIX}{kind}-{hashlib.sha256(token.encode()).hexdigest()}"


def _busy(token: str) -> EC2Error:
    return EC2Error("IncorrectState", f"A request with the ClientToken '{token}' is still in progress: try again.")


def _crowded() -> EC2Error:
    # no wait slot free: EC2's answer to too many requests at once (503), which the SDKs retry after a pause
    return EC2Error("RequestLimitExceeded", "Too many requests are waiting: retry shortly.", 503)


def once(ctx: Context, kind: str, token: str, find: Callable[[], T | None], make: Callable[[], T]) -> T:
    """What *token* names: *find*'s answer (None: nothing made for it), else *make*'s. Both are called
    under the claim, by one request at a time of all econe servers: a retry of a finished request
    claims too (one claim's cost), so that a new token, the usual case, is looked for once. A request
    that waits longer than WAIT in all for others of its token answers IncorrectState: try again."""
    deadline = time.monotonic() + WAIT
    with _queued(ctx.user, kind, token, deadline):
        while time.monotonic() < deadline:
            claim = _claim(ctx, name(kind, token))
            if claim is not None:
                try:
                    found = find()  # read under the claim: a request that held it before may have made it
                    return found if found is not None else make()
                finally:
                    _release(ctx, claim)
            if not _released(ctx, name(kind, token), deadline):
                break
        raise _busy(token)


# the requests of this server for one token wait here, so that one at a time waits for oned; each
# waiting request holds a worker, so it takes one of waits.SLOTS as any wait does (none free: it
# answers RequestLimitExceeded at once). An entry lives while requests hold or wait for it
_queues: dict[tuple[str, str, str], list] = {}  # (user, kind, token) -> [lock, requests holding or waiting]
_queues_guard = threading.Lock()


@contextlib.contextmanager
def _queued(user: str, kind: str, token: str, deadline: float) -> Iterator[None]:
    key = (user, kind, token)
    with _queues_guard:
        entry = _queues.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        lock = entry[0]
        taken = lock.acquire(blocking=False)
        if not taken:
            taken = waits.until(lambda: lock.acquire(blocking=False), deadline - time.monotonic(), poll=POLL)
        if taken is None:
            raise _crowded()
        if not taken:
            raise _busy(token)
        try:
            yield
        finally:
            entry[0].release()
    finally:
        with _queues_guard:
            entry[1] -= 1
            if not entry[1]:
                del _queues[key]


def _held(ctx: Context, claim_name: str) -> list[Template]:
    """The user's claims named *claim_name*. The claims of other tokens past their time are deleted on
    the way (the listing is read anyway): no request is at work under them."""
    held = []
    for t in ctx.session.templates(mine=True):
        if t.name == claim_name:
            held.append(t)
        elif t.name.startswith(PREFIX) and _until(t) <= time.time():
            ctx.log.warning("removed a ClientToken claim (template %d) left past its time", t.id)
            with contextlib.suppress(EC2Error):  # another request may have removed it first
                ctx.session.template_delete(t.id)
    return held


def _claim(ctx: Context, claim_name: str) -> int | None:
    """The id of this request's claim, or None when another request holds one."""
    body = [("NAME", claim_name), (UNTIL, str(int(time.time() + LIFETIME)))]
    body.append(("DESCRIPTION", "econe: a ClientToken claimed while its request makes what it names"))
    for again in (False, True):
        try:
            mine = ctx.session.template_allocate(tpl.serialize(body))
            break
        except EC2Error:
            if _held(ctx, claim_name):
                return None
            if again:  # refused for another reason (no CREATE on templates): the answer
                raise
            # the claim that took the name was released since: once more
    try:
        first = min((t.id for t in _held(ctx, claim_name)), default=mine)
    except EC2Error:
        _release(ctx, mine)
        raise
    if first != mine:  # two allocations passed oned's name check at once: the lower id counts
        _release(ctx, mine)
        return None
    return mine


def _release(ctx: Context, claim: int) -> None:
    try:
        ctx.session.template_delete(claim)
    except EC2Error as e:  # it stands until its time is past, then the next request takes it over
        ctx.log.warning("the ClientToken claim (template %d) was not released: %s", claim, e.detail or e.message)


def _until(claim: Template) -> float:
    try:
        return float(tpl.get(claim.body, UNTIL) or 0)
    except ValueError:  # not as econe writes it: past
        return 0


def _released(ctx: Context, claim_name: str, deadline: float) -> bool:
    """Whether the claim of *claim_name* was released (or was past its time, and removed here) before
    *deadline*; RequestLimitExceeded at once when enough other requests wait already (waits.SLOTS)."""

    def gone() -> bool:
        standing = False
        for claim in _held(ctx, claim_name):
            if _until(claim) > time.time():
                standing = True
                continue
            ctx.log.warning("took over the ClientToken claim (template %d) past its time", claim.id)
            with contextlib.suppress(EC2Error):  # another request may have removed it first
                ctx.session.template_delete(claim.id)
        return not standing

    released = waits.until(gone, deadline - time.monotonic(), poll=POLL)
    if released is None:
        raise _crowded()
    return released

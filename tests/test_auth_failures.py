"""Authentication failures tell a client nothing (issue #8 item 5): an unknown access key, a wrong
signature and a disabled user get the same answer after the same work, and the server log says which.

The work is counted, not timed: onelite logs every XML-RPC call it answers (``-v``), and econe's
only call for a signature check is the user pool it reads with the server account."""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
import time
import xmlrpc.client
from dataclasses import replace

import boto3
import botocore.config
import botocore.exceptions
import pytest

import demo
from econe.gateway import USERS_TTL

from . import test_econe_e2e as e2e
from .conftest import start_econe
from .test_econe_e2e import signed_v2

stack = e2e.stack  # the end-to-end tests' fixture: onelite, the demo, econe-server

SAME = (401, "AuthFailure", "AWS was not able to validate the provided access credentials")


def _answer(status, root) -> tuple[int, str, str]:
    return status, root.findtext("Errors/Error/Code"), root.findtext("Errors/Error/Message")


def _request_id(root) -> str:
    return root.findtext("RequestID")


def _v2(stack, user: str, secret: str):
    """A DescribeInstances signed (SigV2) as *user* with *secret*: (answer, request id)."""
    status, root = signed_v2(stack, {"Action": "DescribeInstances", "AWSAccessKeyId": user}, secret=secret)
    return _answer(status, root), _request_id(root)


def _boto3(stack, user: str, secret: str) -> tuple[int, str, str]:
    client = boto3.client(
        "ec2",
        endpoint_url=stack.econe.url,
        region_name="opennebula",
        aws_access_key_id=user,
        aws_secret_access_key=secret,
        config=botocore.config.Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.describe_instances()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def _new_user(stack, base: str) -> tuple[str, int, str]:
    """A user of the demo's group that econe has seen sign in: (name, id, EC2 secret)."""
    name = stack.cloud.name(base)
    uid = demo.add_user(stack.cloud.url, stack.cloud.admin_session, name, f"{base}pw", stack.demo.gid)
    secret = hashlib.sha256(f"{base}pw".encode()).hexdigest()
    deadline = time.time() + USERS_TTL + 5  # econe reads the users again at most every USERS_TTL seconds
    while _v2(stack, name, secret)[0][0] != 200:
        assert time.time() < deadline, f"a new user could not sign in within {USERS_TTL} s"
        time.sleep(0.1)
    return name, uid, secret


def _disable(stack, uid: int) -> None:
    """``one.user.enable(uid, false)``; onelite does not have that method yet (issue #8 item 16), so there
    the test sets its database's flag, which onelite reads on every call."""
    admin = xmlrpc.client.ServerProxy(stack.cloud.url)
    try:
        ok, *rest = admin.one.user.enable(stack.cloud.admin_session, uid, False)
        assert ok, rest
    except xmlrpc.client.Fault as e:
        if stack.cloud.onelite is None or e.faultCode != -506:
            raise
        with sqlite3.connect(stack.cloud.onelite.data / "one.db", timeout=10) as db:
            disable = "UPDATE objects SET body = json_set(body, '$.ENABLED', 0) WHERE kind = 'user' AND oid = ?"
            db.execute(disable, (uid,))


def test_unknown_key_wrong_signature_and_disabled_user_get_one_answer(stack):
    name, uid, secret = _new_user(stack, "dave")
    unknown, unknown_id = _v2(stack, stack.cloud.name("nobody"), secret)
    wrong, wrong_id = _v2(stack, name, "0" * 64)
    assert unknown == wrong == SAME
    assert _boto3(stack, stack.cloud.name("nobody"), secret) == _boto3(stack, name, "0" * 64) == SAME

    _disable(stack, uid)
    # oned (and onelite) refuse the login token econe holds for a disabled user at once; where econe
    # holds none yet, its server_cipher session still acts for the user until econe next reads the users
    deadline = time.time() + USERS_TTL + 5
    while True:
        disabled, disabled_id = _v2(stack, name, secret)
        if disabled[0] != 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert disabled == SAME
    assert _boto3(stack, name, secret) == SAME

    # the log says which, in one line with the request id, and no secret
    log = stack.econe.log.read_text()
    assert f"[{unknown_id}] AuthFailure: no user named '{stack.cloud.name('nobody')}'" in log
    assert f"[{wrong_id}] AuthFailure: signature does not match for '{name}'" in log
    assert re.search(
        rf"\[{disabled_id}\] AuthFailure: (user '{name}' is disabled|oned refused a call of '{name}')", log
    )
    assert secret not in log and "0" * 64 not in log


def _reads(stack) -> int:
    """How many times the user pool has been read from onelite so far."""
    one = stack.cloud.onelite
    return (one.data.parent / f"onelite-{one.port}.log").read_text().count(" one.userpool.info ")


@pytest.mark.onelite_only("it counts the calls in onelite's log")
def test_a_known_and_an_unknown_key_cost_the_same_reads(stack):
    """Which request reads the user pool depends on how old econe's copy is, never on the key."""
    name, _, secret = _new_user(stack, "erin")
    unknown = stack.cloud.name("nobody-else")
    for first, second in (((name, "0" * 64), (unknown, secret)), ((unknown, secret), (name, "0" * 64))):
        time.sleep(USERS_TTL + 0.3)  # econe's copy of the users is now stale
        before = _reads(stack)
        assert _v2(stack, *first)[0] == SAME
        assert _reads(stack) == before + 1  # whichever key comes first reads the pool again
        assert _v2(stack, *second)[0] == SAME
        assert _v2(stack, name, secret)[0][0] == 200
        assert _reads(stack) == before + 1  # and the next ones, known or not, use that read


@pytest.mark.onelite_only("it counts the calls in onelite's log")
def test_a_flood_of_unknown_keys_reads_the_users_once_per_period(stack):
    before, started = _reads(stack), time.monotonic()
    answers = []

    def flood(n: int):
        for i in range(25):
            answers.append(_v2(stack, stack.cloud.name(f"nobody-{n}-{i}"), "x" * 64)[0])

    threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert answers == [SAME] * 200
    assert _reads(stack) - before <= elapsed / USERS_TTL + 1, (elapsed, _reads(stack) - before)


def test_a_refused_service_account_is_an_internal_error_whoever_asks(stack, tmp_path):
    """econe's own credentials are wrong: not the client's doing, whichever key it names; the log says why."""
    wrong = tmp_path / "ec2_auth"
    wrong.write_text(f"{stack.cloud.server_auth.read_text().split(':')[0]}:not-its-password\n")
    broken = start_econe(tmp_path, stack.cloud.url, wrong)
    try:
        for user, secret in ((stack.demo.user, stack.demo.secret), (stack.cloud.name("nobody"), "x" * 64)):
            status, root = signed_v2(
                replace(stack, econe=broken), {"Action": "DescribeInstances", "AWSAccessKeyId": user}, secret=secret
            )
            assert _answer(status, root) == (500, "InternalError", "An internal error has occurred.")
            assert re.search(
                rf"\[{_request_id(root)}\] InternalError: oned refused a call of .*one.userpool.info",
                broken.log.read_text(),
            )
    finally:
        broken.stop()

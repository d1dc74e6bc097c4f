"""econe acts for a user with a login token (issue #13 item 1): oned caches one session per user, and the
user's own logins (CLI, Sunstone) or a second econe evict a server_cipher session, after which every
call of it goes through oned's auth driver (~150 ms); login tokens are checked first and never evicted.

What econe holds shows in oned's user record (``LOGIN_TOKEN``, read as oneadmin), so these tests read
it there, on onelite and on a real oned (``make conformance``) alike."""

from __future__ import annotations

import hashlib
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from itertools import count

import botocore.exceptions
import pytest

import demo
from econe.gateway import USERS_TTL
from econe.sessions import CIPHER_PERIOD, cipher_session
from one import cipher

from .cloud import Cloud
from .conftest import Econe, ec2_client, start_econe, start_onelite

_numbers = count()


@dataclass
class Env:
    cloud: Cloud
    gid: int
    one: Econe  # two econe servers on the same cloud
    two: Econe


@pytest.fixture(scope="module")
def env(module_cloud, tmp_path_factory):
    work = tmp_path_factory.mktemp("tokens")
    gid = module_cloud.admin()("one.group.allocate", module_cloud.name("tokens"))
    one = start_econe(work / "one", module_cloud.url, module_cloud.server_auth)
    try:
        two = start_econe(work / "two", module_cloud.url, module_cloud.server_auth)
    except BaseException:
        one.stop()
        raise
    yield Env(module_cloud, gid, one, two)
    two.stop()
    one.stop()


@dataclass
class User:
    name: str
    id: int
    password: str

    @property
    def secret(self) -> str:  # a core user's EC2 secret: the SHA-256 hex oned stores
        return hashlib.sha256(self.password.encode()).hexdigest()


def _user(env: Env) -> User:
    """A new user, and time for every econe to know it: econe reads the users again once its copy is
    USERS_TTL old, so after that long the next request's read has it."""
    n = next(_numbers)
    user = User(env.cloud.name(f"tok{n}"), 0, f"tokpw{n}")
    user.id = demo.add_user(env.cloud.url, env.cloud.admin_session, user.name, user.password, env.gid)
    time.sleep(USERS_TTL + 0.2)
    return user


def _ec2(econe: Econe, user: User):
    return ec2_client(econe.url, user.name, user.secret, retries={"total_max_attempts": 1})


def _describe(econe: Econe, user: User) -> None:
    """One EC2 call through *econe* as *user*, which must succeed (it reads oned as that user)."""
    _ec2(econe, user).describe_instances()


def _tokens(env: Env, user: User) -> list[str]:
    """The user's login tokens, as oneadmin reads them (``oneuser show``)."""
    record = ET.fromstring(env.cloud.admin()("one.user.info", user.id, False))
    return sorted(t.text for t in record.iterfind("LOGIN_TOKEN/TOKEN"))


def _own_login(env: Env, user: User) -> None:
    """The user calling oned with its own password, as its CLI does: oned caches this session in place of
    whatever it cached for the user."""
    demo._One(env.cloud.url, f"{user.name}:{user.password}")("one.user.info", -1, False)


def test_econe_acts_through_one_token_that_the_users_own_logins_leave_alone(env):
    user = _user(env)
    _describe(env.one, user)
    held = _tokens(env, user)
    assert len(held) == 1, held  # econe logged in once, through the server account
    for _ in range(3):
        _own_login(env, user)
        _describe(env.one, user)
    assert _tokens(env, user) == held  # the same token, none made per call or per eviction


def test_two_econes_serving_one_user_hold_one_token_each(env):
    user = _user(env)
    for _ in range(4):
        _describe(env.one, user)
        _describe(env.two, user)
    assert len(_tokens(env, user)) == 2


def test_a_revoked_token_is_replaced_and_the_call_still_succeeds(env):
    user = _user(env)
    _describe(env.one, user)
    (revoked,) = _tokens(env, user)
    ok, *rest = env.cloud.admin().proxy.one.user.login(env.cloud.admin_session, user.name, revoked, 0, -1)
    assert ok, rest
    assert _tokens(env, user) == []
    _describe(env.one, user)  # refused with the revoked token, logged in again, made again
    (fresh,) = _tokens(env, user)
    assert fresh != revoked
    _describe(env.one, user)
    assert _tokens(env, user) == [fresh]


def _auth_failure(econe: Econe, user: User) -> tuple[int, str]:
    with pytest.raises(botocore.exceptions.ClientError) as e:
        _describe(econe, user)
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]


def test_a_disabled_user_is_refused_at_once(env):
    """Before econe next reads the users: oned refuses the token of a disabled user, and econe's fresh
    login does not help it (oned 6.10.5 lets a server_cipher session act for a disabled user; a login
    token, never)."""
    user = _user(env)
    _describe(env.one, user)
    env.cloud.admin()("one.user.enable", user.id, False)
    assert _auth_failure(env.one, user) == (401, "AuthFailure")


def test_a_removed_user_is_refused_at_once(env):
    user = _user(env)
    _describe(env.one, user)
    env.cloud.admin()("one.user.delete", user.id)
    assert _auth_failure(env.one, user) == (401, "AuthFailure")


def test_concurrent_first_requests_of_a_user_make_one_token(env):
    user = _user(env)
    clients = [_ec2(env.one, user) for _ in range(8)]
    start, failures = threading.Barrier(len(clients)), []

    def first(client) -> None:
        start.wait()
        try:
            client.describe_instances()
        except Exception as e:  # noqa: BLE001 - reported below, with the others
            failures.append(e)

    threads = [threading.Thread(target=first, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(_tokens(env, user)) == 1


def test_a_user_at_oneds_token_limit_is_still_served(env):
    """oned keeps at most 10 login tokens per user (LoginTokenPool::MAX_TOKENS; onelite too) and refuses an
    11th: econe then acts for the user with its server_cipher session, as before it had tokens."""
    user = _user(env)
    own = demo._One(env.cloud.url, f"{user.name}:{user.password}")
    for _ in range(10):
        own("one.user.login", user.name, "", 600, -1)
    mine = _tokens(env, user)
    _describe(env.one, user)
    _describe(env.one, user)
    assert _tokens(env, user) == mine  # served without a token of its own


def test_key_pairs_keep_the_token_password_of_the_user_template(env):
    """oned gives each user a TOKEN_PASSWORD (OneGate's tokens for its VMs); DeleteKeyPair writes the
    user's template again in full, and must write it back."""
    user = _user(env)

    def token_password() -> str | None:
        record = ET.fromstring(env.cloud.admin()("one.user.info", user.id, False))
        return record.findtext("TEMPLATE/TOKEN_PASSWORD")

    before = token_password()
    assert before
    ec2 = _ec2(env.one, user)
    for name in ("k1", "k2"):
        ec2.create_key_pair(KeyName=name)
    ec2.delete_key_pair(KeyName="k1")
    assert [kp["KeyName"] for kp in ec2.describe_key_pairs()["KeyPairs"]] == ["k2"]
    assert token_password() == before


def test_econe_processes_make_the_same_server_cipher_session_within_a_period():
    """The server account's own calls (the users, the ACL rules) cannot use a login token: oned checks
    none for a server_cipher account (UserPool::authenticate_server). Every econe process with the same
    account makes the same session string within a period, so they do not evict each other's."""
    key = hashlib.sha256(b"pw").hexdigest()
    start = 40 * CIPHER_PERIOD + 1
    sessions = {cipher_session("serveradmin", key, "serveradmin", start + t) for t in (0, 60, CIPHER_PERIOD - 2)}
    assert len(sessions) == 1
    (session,) = sessions
    expiry = int(cipher.decrypt(key, session.split(":")[2]).split(":")[2])
    assert expiry >= start + CIPHER_PERIOD - 2 + CIPHER_PERIOD  # a whole period after the last moment it is made
    assert cipher_session("serveradmin", key, "serveradmin", start + CIPHER_PERIOD) not in sessions


def test_a_stopped_econe_revokes_the_tokens_it_held(env, tmp_path):
    """oned keeps at most 10 login tokens per user: econe processes that restart would otherwise leave
    one each for an hour, until the user (and every econe serving it) gets none."""
    user = _user(env)
    _describe(env.one, user)
    kept = _tokens(env, user)
    for _ in range(3):
        econe = start_econe(tmp_path, env.cloud.url, env.cloud.server_auth)
        try:
            _describe(econe, user)
            assert len(_tokens(env, user)) == len(kept) + 1
        finally:
            econe.stop()
        assert _tokens(env, user) == kept  # its own gone, the other econe's left alone
    _describe(env.one, user)


@pytest.mark.onelite_only("oned's auth driver takes 0.15 s: too short to stop econe during a user's login for sure")
def test_an_econe_stopped_during_a_login_leaves_no_token(tmp_path):
    """A stop lets the requests in flight finish: their logins end before econe revokes what it holds,
    and none begins after."""
    one = start_onelite(tmp_path / "one", auth_driver_delay=1.0)  # every uncached server_cipher session: 1 s
    try:
        d = demo.provision(one.url, one.admin_session, str(tmp_path))
        econe = start_econe(tmp_path, one.url, one.data / "ec2_auth")
        answers = []
        user = User(d.user, d.uid, d.password)
        first = threading.Thread(target=lambda: answers.append(_ec2(econe, user).describe_instances()))
        first.start()  # reads the users, then logs the user in: a second of oned's driver each
        time.sleep(0.4)
        econe.stop()
        first.join()
        assert answers and answers[0]["ResponseMetadata"]["HTTPStatusCode"] == 200
        record = ET.fromstring(demo._One(one.url, one.admin_session)("one.user.info", d.uid, False))
        assert record.findall("LOGIN_TOKEN") == []
    finally:
        one.stop()

"""onelite authenticates as oned 6.10.5 does, at oned's cost where it matters (issue #13).

oned caches ONE session string per user for SESSION_EXPIRATION_TIME; every other successful login of
that user replaces it. A server_cipher session that is not the cached one goes to the external auth
driver, a separate process (about 150 ms a call, measured on oned 6.10.5); password checks of core
users are in-process; login tokens (``one.user.login``) are checked before the cache and never
evicted. (``UserPool::authenticate*`` in src/um/UserPool.cc, ``LoginToken.cc``, ``UserLogin`` in
src/rm/RequestManagerUser.cc, at release-6.10.5.)

Timed with time.perf_counter against a real onelite process whose simulated driver takes DELAY
seconds: a call that goes to the driver takes at least DELAY, one that does not well under half of
it (FAST) — bounds wide enough for a loaded two-core machine.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field

import pytest

from one import cipher
from onelite.api.users import token_validity
from onelite.conf import max_token_time

from .conftest import Onelite, start_onelite

DELAY = 0.4
FAST = DELAY / 2
REFUSED = [False, "[one.user.info] User couldn't be authenticated, aborting call.", 256, -1, -1]


def call(url: str, method: str, *params) -> list:
    return xmlrpc.client.ServerProxy(url).__getattr__(method)(*params)


def timed(url: str, method: str, *params) -> tuple[list, float]:
    """The answer and the seconds it took."""
    started = time.perf_counter()
    answer = call(url, method, *params)
    return answer, time.perf_counter() - started


@dataclass
class Cloud:
    one: Onelite
    names = itertools.count()
    uids: dict[str, int] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.one.url

    @property
    def admin(self) -> str:
        return self.one.admin_session

    def user(self, driver: str = "core", groups: tuple[int, ...] = ()) -> str:
        """A new user (in group users unless *groups* says); its password is ``pw-<name>``."""
        name = f"u{next(self.names)}"
        ok, uid, *_ = call(self.url, "one.user.allocate", self.admin, name, f"pw-{name}", driver, list(groups))
        assert ok, uid
        self.uids[name] = uid
        return name

    def server_session(self, user: str, lifetime: int = 600) -> str:
        """``serveradmin:user:token`` as econe makes it; each lifetime gives another token."""
        server, password = self.one.server_auth
        key = hashlib.sha256(password.encode()).hexdigest()
        return f"{server}:{user}:{cipher.encrypt(key, f'{server}:{user}:{int(time.time()) + lifetime}')}"

    def info(self, session: str) -> tuple[list, float]:
        return timed(self.url, "one.user.info", session, -1, False)

    def login(self, session: str, user: str, token: str = "", valid: int = 3600, egid: int = -1) -> list:
        return call(self.url, "one.user.login", session, user, token, valid, egid)

    def tokens(self, user: str) -> list[str]:
        """The TOKENs oneadmin sees in the user's record, in its order."""
        return [token for token, _ in self.token_records(user)]

    def token_records(self, user: str) -> list[tuple[str, int]]:
        """(TOKEN, EXPIRATION_TIME) of each LOGIN_TOKEN in the user's record."""
        ok, xml, *_ = call(self.url, "one.user.info", self.admin, self.uids[user], False)
        assert ok, xml
        found = re.findall(r"<TOKEN>(.*?)</TOKEN><EXPIRATION_TIME>(-?\d+)</EXPIRATION_TIME>", xml)
        return [(token, int(expiry)) for token, expiry in found]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory):
    one = start_onelite(tmp_path_factory.mktemp("auth") / "one", auth_driver_delay=DELAY)
    yield Cloud(one)
    one.stop()


def ok(answer: list) -> bool:
    return answer[0] is True


# ---------------------------------------------------------------- the session cache


def test_a_server_session_pays_the_driver_once_then_is_cached(cloud):
    alice = cloud.user()
    session = cloud.server_session(alice)
    (first, miss), (again, hit) = cloud.info(session), cloud.info(session)
    assert ok(first) and ok(again)
    assert miss >= DELAY, f"the first call took {miss:.3f} s: it did not go to the driver"
    assert hit < FAST, f"the second call took {hit:.3f} s: the session was not cached"


def test_the_users_own_password_login_evicts_the_server_session(cloud):
    bob = cloud.user()
    session = cloud.server_session(bob)
    cloud.info(session)
    own, own_time = cloud.info(f"{bob}:pw-{bob}")
    assert ok(own) and own_time < FAST, "a core password is checked in-process"
    (evicted, miss), (cached, hit) = cloud.info(session), cloud.info(session)
    assert ok(evicted) and ok(cached)
    assert miss >= DELAY, f"{miss:.3f} s: the password login did not replace the cached session"
    assert hit < FAST


def test_two_servers_acting_for_one_user_evict_each_other(cloud):
    carol = cloud.user()
    first, second = cloud.server_session(carol, 600), cloud.server_session(carol, 700)
    cloud.info(first)
    times = [cloud.info(s)[1] for s in (second, first, first)]
    assert times[0] >= DELAY and times[1] >= DELAY, times
    assert times[2] < FAST, times


def test_a_refused_driver_check_pays_and_keeps_the_cached_session(cloud):
    dan = cloud.user()
    good = cloud.server_session(dan)
    cloud.info(good)
    server = cloud.one.server_auth[0]
    wrong_key = hashlib.sha256(b"not-the-key").hexdigest()
    forged = f"{server}:{dan}:{cipher.encrypt(wrong_key, f'{server}:{dan}:9999999999')}"
    answer, spent = cloud.info(forged)
    assert answer == REFUSED and spent >= DELAY
    assert cloud.info(good)[1] < FAST, "a failed check must not replace the cached session"


def test_a_password_change_drops_the_cached_session_and_the_tokens(cloud):
    erin = cloud.user()
    session = cloud.server_session(erin)
    cloud.info(session)
    token = cloud.login(session, erin)[1]
    assert ok(call(cloud.url, "one.user.passwd", cloud.admin, cloud.uids[erin], "new"))
    assert cloud.info(f"{erin}:{token}")[0] == REFUSED
    answer, miss = cloud.info(session)
    assert ok(answer) and miss >= DELAY


def test_cache_misses_are_checked_in_parallel_and_other_calls_go_on(cloud):
    sessions = [cloud.server_session(cloud.user()) for _ in range(8)]
    answers: list = [None] * len(sessions)

    def check(i):
        answers[i] = call(cloud.url, "one.user.info", sessions[i], -1, False)

    threads = [threading.Thread(target=check, args=(i,)) for i in range(len(sessions))]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(DELAY / 4)  # the checks are under way
    meanwhile, spent = cloud.info(cloud.admin)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    assert all(ok(a) for a in answers), answers
    assert ok(meanwhile) and spent < FAST, f"oneadmin's call waited {spent:.3f} s for the driver checks"
    assert DELAY <= elapsed < len(sessions) * DELAY / 2, f"8 misses of {DELAY} s took {elapsed:.3f} s"


def test_onelite_serve_defaults_to_the_driver_time_measured_on_oned(tmp_path):
    one = start_onelite(tmp_path / "one", auth_driver_delay=None)
    try:
        default = Cloud(one)
        answer, miss = default.info(default.server_session(default.user()))
        assert ok(answer) and miss >= 0.15
    finally:
        one.stop()


# ---------------------------------------------------------------- drivers


def test_public_users_never_log_in_with_their_password(cloud):
    """oned refuses a public user's direct login (UserPool::authenticate_internal); their server
    acts for them with server_cipher sessions."""
    fay = cloud.user("public")
    answer, spent = cloud.info(f"{fay}:pw-{fay}")
    assert answer == REFUSED and spent < FAST
    assert ok(cloud.info(cloud.server_session(fay))[0])


def test_drivers_onelite_lacks_are_refused_after_the_drivers_time(cloud):
    """x509, ssh and ldap users go to oned's external driver, which onelite does not have: refused
    after the driver's time. A driver the AUTH_MAD does not list is refused at once."""
    x509, unknown = cloud.user("x509"), cloud.user("nosuch")
    (by_driver, slow), (at_once, fast) = cloud.info(f"{x509}:pw-{x509}"), cloud.info(f"{unknown}:pw-{unknown}")
    assert by_driver == REFUSED and slow >= DELAY
    assert at_once == REFUSED and fast < FAST


# ---------------------------------------------------------------- login tokens


def test_a_login_token_never_pays_the_driver(cloud):
    gil = cloud.user()
    token = cloud.login(cloud.server_session(gil), gil)[1]
    for lifetime in (600, 700, 800):  # the user's password, then another server's token, log in between
        assert cloud.info(f"{gil}:pw-{gil}")[0][0]
        assert cloud.info(cloud.server_session(gil, lifetime))[1] >= DELAY
        answer, spent = cloud.info(f"{gil}:{token}")
        assert ok(answer) and spent < FAST, f"{spent:.3f} s through the login token"


def test_each_login_adds_a_token_and_a_revoked_one_is_refused_at_once(cloud):
    hal = cloud.user()
    own = f"{hal}:pw-{hal}"
    a, b = cloud.login(own, hal)[1], cloud.login(own, hal)[1]
    assert a != b and sorted(cloud.tokens(hal)) == sorted([a, b]) == cloud.tokens(hal)  # oned lists them by token
    assert cloud.login(own, hal, a, 0) == [True, a, 0]
    answer, spent = cloud.info(f"{hal}:{a}")
    assert answer == REFUSED and spent < FAST
    assert ok(cloud.info(f"{hal}:{b}")[0])
    assert cloud.tokens(hal) == [b]


def test_an_expired_token_is_refused_and_listed_until_the_next_login(cloud):
    """LoginTokenPool drops expired tokens when it makes a new one, not when one is refused."""
    ida = cloud.user()
    own = f"{ida}:pw-{ida}"
    old = cloud.login(own, ida, valid=1)[1]
    time.sleep(2.1)
    assert cloud.info(f"{ida}:{old}")[0] == REFUSED
    assert cloud.tokens(ida) == [old]
    new = cloud.login(own, ida)[1]
    assert cloud.tokens(ida) == [new]


def test_a_token_for_a_group_the_user_left_is_refused_and_dropped(cloud):
    jo = cloud.user()
    _, gid, *_ = call(cloud.url, "one.group.allocate", cloud.admin, f"g-{jo}")
    uid = cloud.uids[jo]
    assert ok(call(cloud.url, "one.user.addgroup", cloud.admin, uid, gid))
    token = cloud.login(f"{jo}:pw-{jo}", jo, egid=gid)[1]
    assert ok(cloud.info(f"{jo}:{token}")[0])
    assert ok(call(cloud.url, "one.user.delgroup", cloud.admin, uid, gid))
    assert cloud.info(f"{jo}:{token}")[0] == REFUSED
    assert cloud.tokens(jo) == []


def test_a_user_may_choose_its_token_and_one_made_twice_is_kept_once(cloud):
    kim = cloud.user()
    own = f"{kim}:pw-{kim}"
    assert cloud.login(own, kim, "kims-token", 600) == [True, "kims-token", 0]
    [(_, expiry)] = cloud.token_records(kim)
    assert cloud.login(own, kim, "kims-token", 60) == [True, "kims-token", 0]
    assert cloud.token_records(kim) == [("kims-token", expiry)]  # oned's std::map::insert keeps the first
    assert ok(cloud.info(f"{kim}:kims-token")[0])


def _login_refusal(message: str, code: int = 4096) -> list:
    return [False, f"[one.user.login] {message}", code, -1, -1]


def test_login_refusals_are_oneds(cloud):
    """The answers of UserLogin::request_execute (src/rm/RequestManagerUser.cc) the captures lack."""
    _, gid, *_ = call(cloud.url, "one.group.allocate", cloud.admin, "lees")
    lee = cloud.user(groups=(1, gid))
    own = f"{lee}:pw-{lee}"
    assert cloud.login(own, "nobody-here") == _login_refusal("Error getting user Pool.", 1024)
    assert cloud.login(own, lee, "never-made", 0) == _login_refusal("Could not find token: never-made")
    assert cloud.login(own, lee, "", -2) == _login_refusal("Wrong valid period for token")
    assert cloud.login(own, lee, "", 60, 0) == _login_refusal("EGID is not in user group list")
    narrowed = cloud.login(own, lee, "", 60, 1)[1]  # a token for group users (1) only
    full = _login_refusal("Cannot create a full token with a specific group token")
    assert cloud.login(f"{lee}:{narrowed}", lee) == full
    for _ in range(9):
        assert ok(cloud.login(own, lee))
    assert cloud.login(own, lee) == _login_refusal("Max number of tokens limit reached.")
    assert ok(cloud.login(own, lee, "", 0))  # an empty token revokes them all
    assert cloud.tokens(lee) == []


def test_a_drivers_max_token_time_caps_its_tokens():
    """UserLogin caps a token's life (an endless one too) by its driver's MAX_TOKEN_TIME when that is
    positive; onelite's oned.conf, as the captured oned's, caps ldap's alone (a day)."""
    assert [token_validity(valid, 600) for valid in (3600, -1, 60)] == [600, 600, 60]
    assert [token_validity(valid, -1) for valid in (3600, -1, 60)] == [3600, -1, 60]
    assert [max_token_time(driver) for driver in ("core", "public", "server_cipher", "x509")] == [-1] * 4
    assert max_token_time("ldap") == 86400

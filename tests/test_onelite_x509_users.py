"""x509 users in onelite as oned 6.10.5 holds them (issue #10 item 3): the password is the user's
certificate DNs, escaped and ``|``-joined (one.x509), stored as given; oned validates every password it
stores, whatever the driver, and x509 users may not change their own; econe acts for an x509 user
through the server account as for any other.

There are no captured oned answers for x509 users: the expected answers come from oned's source at
release-6.10.5 (src/um/UserPool.cc UserPool::allocate, src/um/User.cc User::pass_is_valid and
set_password, src/rm/RequestManagerUser.cc UserChangePassword and UserChangeAuth, whose failures
answer ACTION; a refused allocate answers INTERNAL, as the captured empty-password answer does). They
use ``module_cloud`` and make only users named with its prefix, so ``pytest --conformance`` can hold an
existing oned to them: make conformance does (11 passed on oned 6.10.5)."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
import xmlrpc.client
from itertools import count

import pytest

from econe.sessions import cipher_session
from one.codes import ACTION, AUTHENTICATION, INTERNAL
from one.x509 import escape_dn

from .cloud import Cloud

JO = escape_dn("/C=ES/O=Example/CN=Jo Doe")  # /C=ES/O=Example/CN=Jo\20Doe
DNS = f"{JO}|/C=ES/CN=Other"  # a user with two certificates
_numbers = count()


def call(cloud: Cloud, session: str, method: str, *args) -> list:
    """oned's whole answer: [ok, value or message, error code, ...]."""
    return getattr(xmlrpc.client.ServerProxy(cloud.url), method)(session, *args)


def admin_call(cloud: Cloud, method: str, *args) -> list:
    return call(cloud, cloud.admin_session, method, *args)


def refusal(answer: list) -> tuple[str, int]:
    assert answer[0] is False, answer
    return answer[1], answer[2]


def new_name(cloud: Cloud) -> str:
    return cloud.name(f"x509u{next(_numbers)}")


def allocate(cloud: Cloud, password: str, driver: str = "x509") -> tuple[str, int]:
    name = new_name(cloud)
    ok, uid, *_ = admin_call(cloud, "one.user.allocate", name, password, driver, [])
    assert ok, uid
    return name, uid


def record(cloud: Cloud, uid: int) -> ET.Element:
    ok, xml, *_ = admin_call(cloud, "one.user.info", uid, False)
    assert ok, xml
    return ET.fromstring(xml)


def driver_and_password(cloud: Cloud, uid: int) -> tuple[str, str]:
    user = record(cloud, uid)
    return user.findtext("AUTH_DRIVER"), user.findtext("PASSWORD")


def server_session(cloud: Cloud, user: str) -> str:
    """The session econe acts for *user* with: ``server:user:token`` of its server_cipher account."""
    server, _, password = cloud.server_auth.read_text().strip().partition(":")
    return cipher_session(server, hashlib.sha256(password.encode()).hexdigest(), user)


def test_an_x509_users_dns_are_stored_as_given(module_cloud):
    _, uid = allocate(module_cloud, DNS)
    assert driver_and_password(module_cloud, uid) == ("x509", DNS)  # not hashed, as core's would be


@pytest.mark.parametrize(
    ("driver", "password", "message"),
    [
        ("x509", "/C=ES/O=Example/CN=Jo Doe", "Invalid password, character ' ' is not allowed."),
        ("x509", "/C=ES/CN=Jo\tDoe", "Invalid password, character '\t' is not allowed."),
        ("x509", "", "Invalid password, it cannot be empty."),
        ("ssh", "", "Invalid password, it cannot be empty."),
        ("core", "pass word", "Invalid password, character ' ' is not allowed."),
    ],
)
def test_allocate_refuses_a_password_with_whitespace_or_none(module_cloud, driver, password, message):
    name = new_name(module_cloud)
    answer = admin_call(module_cloud, "one.user.allocate", name, password, driver, [])
    assert refusal(answer) == (f"[one.user.allocate] {message}", INTERNAL)
    ok, pool, *_ = admin_call(module_cloud, "one.userpool.info")
    assert name not in {u.findtext("NAME") for u in ET.fromstring(pool).iterfind("USER")}


def test_an_ldap_user_needs_no_password(module_cloud):
    """ldap's AUTH_MAD_CONF says PASSWORD_REQUIRED = NO: oned then checks no password at all."""
    _, uid = allocate(module_cloud, "", "ldap")
    assert driver_and_password(module_cloud, uid) == ("ldap", "")


def test_an_x509_user_cannot_change_its_own_password_but_oneadmin_can(module_cloud):
    name, uid = allocate(module_cloud, DNS)
    as_user = server_session(module_cloud, name)
    answer = call(module_cloud, as_user, "one.user.passwd", uid, "/C=ES/CN=Mine")
    assert refusal(answer) == ("[one.user.passwd] Password for driver x509 cannot be changed.", ACTION)
    assert driver_and_password(module_cloud, uid) == ("x509", DNS)

    answer = admin_call(module_cloud, "one.user.passwd", uid, "/C=ES/CN=Jo Doe")  # oneadmin's are validated too
    assert refusal(answer) == ("[one.user.passwd] Invalid password, character ' ' is not allowed", ACTION)
    new = escape_dn("/C=ES/CN=Jo Doe")
    assert admin_call(module_cloud, "one.user.passwd", uid, new)[:2] == [True, uid]
    assert driver_and_password(module_cloud, uid) == ("x509", new)


def test_a_core_user_may_change_its_own_password_but_not_to_one_with_whitespace(module_cloud):
    name, uid = allocate(module_cloud, "pw1", "core")
    answer = call(module_cloud, f"{name}:pw1", "one.user.passwd", uid, "pw 2")
    assert refusal(answer) == ("[one.user.passwd] Invalid password, character ' ' is not allowed", ACTION)
    assert call(module_cloud, f"{name}:pw1", "one.user.passwd", uid, "pw2")[:2] == [True, uid]
    assert driver_and_password(module_cloud, uid) == ("core", hashlib.sha256(b"pw2").hexdigest())


def test_chauth_to_x509_with_a_bad_password_leaves_the_user_as_it_was(module_cloud):
    _, uid = allocate(module_cloud, "pw1", "core")
    before = driver_and_password(module_cloud, uid)
    answer = admin_call(module_cloud, "one.user.chauth", uid, "x509", "/C=ES/CN=Jo Doe")
    assert refusal(answer) == ("[one.user.chauth] Invalid password, character ' ' is not allowed", ACTION)
    assert driver_and_password(module_cloud, uid) == before

    assert admin_call(module_cloud, "one.user.chauth", uid, "x509", JO)[:2] == [True, uid]
    assert driver_and_password(module_cloud, uid) == ("x509", JO)  # hashed by no driver but core


def test_econe_acts_for_an_x509_user_with_a_login_token(module_cloud):
    """econe's way: the server account logs the user in (``one.user.login``), then acts with the token."""
    name, uid = allocate(module_cloud, DNS)
    ok, vmid, *_ = admin_call(module_cloud, "one.vm.allocate", f'NAME="{name}-vm"\nCPU="0.1"\nMEMORY="8"\n', True)
    assert ok, vmid
    assert admin_call(module_cloud, "one.vm.chown", vmid, uid, -1)[0]

    ok, token, *_ = call(module_cloud, server_session(module_cloud, name), "one.user.login", name, "", 3600, -1)
    assert ok, token
    ok, me, *_ = call(module_cloud, f"{name}:{token}", "one.user.info", -1, False)
    assert ok, me
    assert ET.fromstring(me).findtext("ID") == str(uid)
    ok, pool, *_ = call(module_cloud, f"{name}:{token}", "one.vmpool.info", -3, -1, -1, -1)
    assert ok, pool
    assert [(v.findtext("ID"), v.findtext("UID")) for v in ET.fromstring(pool).iterfind("VM")] == [
        (str(vmid), str(uid))
    ]
    refused = call(module_cloud, f"{name}:not-{token}", "one.vmpool.info", -3, -1, -1, -1)
    assert refusal(refused) == ("[one.vmpool.info] User couldn't be authenticated, aborting call.", AUTHENTICATION)

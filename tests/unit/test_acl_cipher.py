"""ACL encoding and server_cipher tokens, against the values a real oned produced."""

from __future__ import annotations

import hashlib

import pytest

from onelite import acl, cipher


def test_rule_hex_and_string_as_oned_lists_them():
    assert acl.to_string(0x200000064, 0x2100000000, 0x1, 0x100000000) == "@100 HOST/#0 USE #0"
    assert acl.to_string(0x200000001, 0x121429400000000, 8, 0x400000000) == (
        "@1 VM+IMAGE+TEMPLATE+DOCUMENT+SECGROUP+VMGROUP+BACKUPJOB/* CREATE *"
    )


def test_malformed_rule_explains_itself_like_oned():
    with pytest.raises(acl.MalformedRule) as e:
        acl.validate(0, 1, 1, 0x100000000)
    assert str(e.value) == (
        "Rule ?? /?? USE #0 is malformed: [user] is missing one of the INDIVIDUAL, GROUP or ALL bits; "
        "[resource] is missing one of the INDIVIDUAL, GROUP, CLUSTER or ALL bits; [resource] type is missing"
    )


def test_matching():
    rule_user, rule_res = acl.GROUP | 100, acl.TYPES["HOST"] | acl.INDIVIDUAL | 3
    assert acl.user_matches(rule_user, 13, {100})
    assert not acl.user_matches(rule_user, 13, {1})
    assert acl.resource_matches(rule_res, acl.TYPES["HOST"], 3, -1)
    assert not acl.resource_matches(rule_res, acl.TYPES["HOST"], 4, -1)
    assert not acl.resource_matches(rule_res, acl.TYPES["VM"], 3, -1)


def test_token_captured_from_oned_decrypts():
    # server_cipher.session.txt: srvadm (password "srvsecret") acting for clouduser
    key = hashlib.sha256(b"srvsecret").hexdigest()
    assert cipher.decrypt(key, "deGHjVy6AePx9QoL1B0GATtvPA7BwnhfQ7QTqZLcmak=") == "srvadm:clouduser:1795672645"


def test_round_trip_and_wrong_key():
    key = hashlib.sha256(b"a").hexdigest()
    token = cipher.encrypt(key, "serveradmin:bob:1900000000")
    assert "\n" not in token
    assert cipher.decrypt(key, token) == "serveradmin:bob:1900000000"
    assert cipher.decrypt(hashlib.sha256(b"b").hexdigest(), token) is None
    assert cipher.decrypt(key, "not base64!") is None

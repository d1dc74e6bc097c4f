"""ACL encoding and server_cipher tokens, against the values a real oned produced."""

from __future__ import annotations

import hashlib

import pytest

from one import acl, cipher


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


# oned's decision, as DryRun takes it too: the rules a fresh cloud and the EC2 group have
_EC2_CREATE = (acl.GROUP | 100, acl.TYPES["VM"] | acl.TYPES["IMAGE"] | acl.ALL, acl.RIGHTS["CREATE"])
_ONE_VM = (acl.INDIVIDUAL | 7, acl.TYPES["VM"] | acl.INDIVIDUAL | 42, acl.RIGHTS["MANAGE"])
_GROUP_VMS = (acl.ALL, acl.TYPES["VM"] | acl.GROUP | 300, acl.RIGHTS["USE"])
OWNER_ONLY = (1, 1, 0, 0, 0, 0, 0, 0, 0)
GROUP_USE = (1, 1, 0, 1, 0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    "uid, gids, right, type_name, obj, allowed",
    [
        (0, {0}, "MANAGE", "VM", (42, 5, 100, OWNER_ONLY, ()), True),  # oneadmin
        (9, {0, 100}, "ADMIN", "VM", (42, 5, 100, OWNER_ONLY, ()), True),  # oneadmin group
        (5, {100}, "MANAGE", "VM", (42, 5, 100, OWNER_ONLY, ()), True),  # owner bits
        (6, {100}, "USE", "VM", (42, 5, 100, OWNER_ONLY, ()), False),
        (6, {100}, "USE", "VM", (42, 5, 100, GROUP_USE, ()), True),  # group bits
        (6, {100}, "MANAGE", "VM", (42, 5, 100, GROUP_USE, ()), False),
        (6, {200}, "USE", "VM", (42, 5, 100, (1, 1, 0, 0, 0, 0, 1, 0, 0), ()), True),  # others
        (6, {100}, "CREATE", "VM", None, True),  # @100 VM+IMAGE/* CREATE
        (6, {200}, "CREATE", "VM", None, False),
        (6, {100}, "CREATE", "TEMPLATE", None, False),
        (7, {200}, "MANAGE", "VM", (42, 5, 100, OWNER_ONLY, ()), True),  # #7 VM/#42 MANAGE
        (7, {200}, "MANAGE", "VM", (43, 5, 100, OWNER_ONLY, ()), False),
        (8, {200}, "USE", "VM", (44, 5, 300, OWNER_ONLY, ()), True),  # * VM/@300 USE
        (8, {200}, "MANAGE", "VM", (44, 5, 300, OWNER_ONLY, ()), False),
    ],
)
def test_permits_is_oneds_decision(uid, gids, right, type_name, obj, allowed):
    assert acl.permits(uid, gids, right, type_name, [_EC2_CREATE, _ONE_VM, _GROUP_VMS], obj) is allowed

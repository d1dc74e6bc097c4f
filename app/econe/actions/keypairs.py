"""CreateKeyPair, ImportKeyPair, DescribeKeyPairs, DeleteKeyPair; the key a RunInstances KeyName names.

A key pair lives in its user's own OpenNebula template, one attribute per key pair (oned keeps one
attribute of a name there): ``EC2_KEYPAIR_<ID IN HEX>=[ID, NAME, TYPE, FINGERPRINT, PUBLIC_KEY,
CREATED, TAGS]``, so ``oneuser show`` lists it and every econe sees it. A created key's private half
is returned once, and neither stored nor logged."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from one import template as tpl

from ..errors import EC2Error, internal_error, invalid, missing
from . import tagging
from .filters import check_names, wildcards
from .locks import lock
from .registry import Context, action

PREFIX = "EC2_KEYPAIR_"
MAX_NAME = 255  # ASCII characters, as EC2
RSA_BITS = 2048  # what EC2 creates
MIN_RSA_BITS = 1024  # the smallest RSA key EC2 imports


@dataclass(frozen=True)
class KeyPair:
    id: str  # key- and 17 hexadecimal digits
    name: str
    type: str  # rsa or ed25519
    fingerprint: str
    public_key: str  # OpenSSH's one-line form, without comment
    created: int  # epoch seconds
    tags: dict

    @property
    def attribute(self) -> str:
        return PREFIX + self.id[4:].upper()

    def vector(self) -> list[tuple[str, str]]:
        out = [("ID", self.id), ("NAME", self.name), ("TYPE", self.type), ("FINGERPRINT", self.fingerprint),
               ("PUBLIC_KEY", self.public_key), ("CREATED", str(self.created))]  # fmt: skip
        return out + ([("TAGS", tagging.dump(self.tags))] if self.tags else [])


def _from_vector(vector: list) -> KeyPair | None:
    get = dict(vector).get
    if not (get("ID") and get("NAME") and get("PUBLIC_KEY")):
        return None  # not one econe wrote
    return KeyPair(get("ID"), get("NAME"), get("TYPE", "rsa"), get("FINGERPRINT", ""), get("PUBLIC_KEY"),
                   _created(get("CREATED")), tagging.load(get("TAGS")))  # fmt: skip


def _created(text: str | None) -> int:
    """CREATED as epoch seconds a date can show; 0 for any other (a user may write its own template)."""
    try:
        seconds = int(text or 0)
        datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return 0
    return seconds


def _read(ctx: Context) -> tuple[int, list, list[KeyPair]]:
    """The user's id, its template and its key pairs, by name."""
    uid, template = ctx.session.own_template()
    pairs = [kp for name, v in template if name.startswith(PREFIX) and isinstance(v, list) if (kp := _from_vector(v))]
    return uid, template, sorted(pairs, key=lambda kp: kp.name)


def _not_found(what: str) -> EC2Error:
    return EC2Error("InvalidKeyPair.NotFound", f"The key pair '{what}' does not exist")


# ---------------------------------------------------------------- keys and fingerprints (EC2's rules)


def _colons(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def _openssh(public) -> str:
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _sha256(openssh: str) -> str:
    """An ED25519 key's fingerprint: base64 SHA-256 of the OpenSSH key blob, without padding, as EC2 gives it."""
    blob = base64.b64decode(openssh.split()[1])
    return base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _generate(ktype: str) -> tuple[str, str, str]:
    """A new key pair: (private key PEM, OpenSSH public key, fingerprint)."""
    pem, clear = serialization.Encoding.PEM, serialization.NoEncryption()
    if ktype == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        public = _openssh(key.public_key())
        return key.private_bytes(pem, serialization.PrivateFormat.OpenSSH, clear).decode(), public, _sha256(public)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    # returned as PKCS#1, as EC2 does; the fingerprint is the SHA-1 of the PKCS#8 DER form
    pkcs8 = rsa_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, clear)
    private = rsa_key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, clear).decode()
    return private, _openssh(rsa_key.public_key()), _colons(hashlib.sha1(pkcs8).digest())


def _imported(material: bytes) -> tuple[str, str, str]:
    """(type, OpenSSH public key without comment, fingerprint) of an OpenSSH ssh-rsa or ssh-ed25519 public key."""
    refused = EC2Error("InvalidKey.Format", "Key is not in valid OpenSSH public key format")
    try:
        text = material.decode("ascii").strip()
    except UnicodeDecodeError:
        raise refused from None
    if not text or len(text.splitlines()) != 1:
        raise refused
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise refused from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        public = _openssh(key)
        return "ed25519", public, _sha256(public)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "rsa", _openssh(key), _colons(hashlib.md5(der).digest())
    raise refused


# ---------------------------------------------------------------- create and import


def _name(p: dict) -> str:
    name = p["KeyName"]
    if not 1 <= len(name) <= MAX_NAME or not all(" " <= c <= "~" for c in name):
        raise invalid("KeyName", name[:40], f"It must be 1 to {MAX_NAME} printable ASCII characters.")
    return name


def _add(ctx: Context, name: str, make: Callable[[], KeyPair]) -> KeyPair:
    """Store the key pair *make* gives, unless the user has one of that name; a dry run decides instead."""
    with lock("user", ctx.user):  # key pair names are unique per user
        uid, _, pairs = _read(ctx)
        if any(kp.name == name for kp in pairs):
            raise EC2Error("InvalidKeyPair.Duplicate", f"The keypair '{name}' already exists.")
        if ctx.dry_run:  # a user may always change its own template
            ctx.session.decide_dry_run([])
        pair = make()
        ctx.session.own_template_update(uid, tpl.serialize([(pair.attribute, pair.vector())]))
        return pair


def _new_id() -> str:
    return "key-" + secrets.token_hex(9)[:17]


CREATE_READS = ("KeyName", "KeyType", "KeyFormat", "TagSpecifications")


@action("CreateKeyPair", reads=CREATE_READS, stored=("KeyName", "TagSpecifications"), changes=True)
def create_key_pair(ctx: Context, p: dict) -> dict:
    name = _name(p)
    ktype = p.get("KeyType", "rsa")
    if ktype not in ("rsa", "ed25519"):
        raise invalid("KeyType", ktype, "It must be rsa or ed25519.")
    if p.get("KeyFormat", "pem") != "pem":
        raise invalid("KeyFormat", p["KeyFormat"], "This cloud returns private keys as pem only (no ppk).")
    tags = tagging.from_specifications(p.get("TagSpecifications", []), "key-pair")
    private: list[str] = []  # the private key, kept out of what is stored

    def make() -> KeyPair:
        pem, public, fingerprint = _generate(ktype)
        private.append(pem)
        return KeyPair(_new_id(), name, ktype, fingerprint, public, int(time.time()), tags)

    pair = _add(ctx, name, make)
    return {
        "KeyPairId": pair.id,
        "KeyName": name,
        "KeyFingerprint": pair.fingerprint,
        "KeyMaterial": private[0],
        "Tags": tagging.as_list(tags),
    }


@action(
    "ImportKeyPair",
    reads=("KeyName", "PublicKeyMaterial", "TagSpecifications"),
    stored=("KeyName", "TagSpecifications"),
    changes=True,
)
def import_key_pair(ctx: Context, p: dict) -> dict:
    name = _name(p)
    ktype, public, fingerprint = _imported(p["PublicKeyMaterial"])
    tags = tagging.from_specifications(p.get("TagSpecifications", []), "key-pair")
    pair = _add(ctx, name, lambda: KeyPair(_new_id(), name, ktype, fingerprint, public, int(time.time()), tags))
    return {"KeyPairId": pair.id, "KeyName": name, "KeyFingerprint": fingerprint, "Tags": tagging.as_list(tags)}


# ---------------------------------------------------------------- describe and delete


def describe(kp: KeyPair, with_public_key: bool = False) -> dict:
    return {
        "KeyPairId": kp.id,
        "KeyType": kp.type,
        "Tags": tagging.as_list(kp.tags),
        "PublicKey": kp.public_key if with_public_key else None,
        "CreateTime": datetime.fromtimestamp(kp.created, UTC),
        "KeyName": kp.name,
        "KeyFingerprint": kp.fingerprint,
    }


_FILTERS: dict[str, Callable[[KeyPair], list[str]]] = {
    "key-name": lambda kp: [kp.name],
    "key-pair-id": lambda kp: [kp.id],
    "fingerprint": lambda kp: [kp.fingerprint],
    "key-type": lambda kp: [kp.type],
    "tag-key": lambda kp: list(kp.tags),
}


def _values(name: str, kp: KeyPair) -> list[str]:
    if name.startswith("tag:"):
        return [kp.tags[name[4:]]] if name[4:] in kp.tags else []
    return _FILTERS[name](kp)


@action("DescribeKeyPairs", reads=("KeyNames", "KeyPairIds", "IncludePublicKey", "Filters"))
def describe_key_pairs(ctx: Context, p: dict) -> dict:
    filters = p.get("Filters", [])
    check_names(filters, _FILTERS)
    _, _, pairs = _read(ctx)
    for member, field in (("KeyNames", "name"), ("KeyPairIds", "id")):
        wanted = p.get(member, [])
        if wanted:
            have = {getattr(kp, field) for kp in pairs}
            for text in wanted:
                if text not in have:
                    raise _not_found(text)
            pairs = [kp for kp in pairs if getattr(kp, field) in wanted]
    with_public_key = p.get("IncludePublicKey", False)
    tests = [(f["Name"], wildcards(f.get("Values", []))) for f in filters]
    pairs = [kp for kp in pairs if all(any(map(test, _values(name, kp))) for name, test in tests)]
    return {"KeyPairs": [describe(kp, with_public_key) for kp in pairs]}


@action("DeleteKeyPair", reads=("KeyName", "KeyPairId"), changes=True)
def delete_key_pair(ctx: Context, p: dict) -> dict:
    name, key_id = p.get("KeyName"), p.get("KeyPairId")
    if not name and not key_id:
        raise missing("KeyName")
    with lock("user", ctx.user):
        uid, template, pairs = _read(ctx)
        pair = next((kp for kp in pairs if (kp.name == name if name else kp.id == key_id)), None)
        if ctx.dry_run:
            ctx.session.decide_dry_run([])
        if pair is None:  # as on EC2: deleting a key pair that is not there succeeds
            return {"Return": True}
        # oned has no way to drop one attribute: the template is written again without it
        try:
            text = tpl.serialize(tpl.remove(template, pair.attribute))
        except tpl.UnstorableValue as e:  # an attribute someone else wrote that no template text gives back
            raise internal_error(f"user {uid}'s template cannot be written again: {e.reason}") from None
        ctx.session.own_template_update(uid, text, merge=False)
    return {"Return": True, "KeyPairId": pair.id}


# ---------------------------------------------------------------- for RunInstances and the tags API


def by_name(ctx: Context, name: str) -> KeyPair:
    """The user's key pair *name* (RunInstances' KeyName)."""
    found = next((kp for kp in _read(ctx)[2] if kp.name == name), None)
    if found is None:
        raise _not_found(name)
    return found


def context_values(pair: KeyPair | None) -> list[tuple[str, str]]:
    """What a VM's CONTEXT gets of its key pair: the public key OpenNebula's contextualization installs."""
    return [("SSH_PUBLIC_KEY", pair.public_key)] if pair else []


def launch_values(pair: KeyPair | None) -> tuple[str, str]:
    """A file template's ``public_key`` and ``key_name`` variables (empty without a key pair)."""
    return (pair.public_key, pair.name) if pair else ("", "")


def by_id(ctx: Context, key_id: str) -> KeyPair:
    found = next((kp for kp in _read(ctx)[2] if kp.id == key_id), None)
    if found is None:
        raise _not_found(key_id)
    return found


def all_pairs(ctx: Context) -> list[KeyPair]:
    return _read(ctx)[2]


def retag(ctx: Context, key_id: str, change: Callable[[dict], dict]) -> None:
    """Give key pair *key_id* the tags *change* makes of its own (checked by EC2's rules)."""
    with lock("user", ctx.user):
        uid, _, pairs = _read(ctx)
        pair = next((kp for kp in pairs if kp.id == key_id), None)
        if pair is None:
            raise _not_found(key_id)
        tags = change(dict(pair.tags))
        tagging.check(tags)
        if tags != pair.tags:
            pair = replace(pair, tags=tags)
            ctx.session.own_template_update(uid, tpl.serialize([(pair.attribute, pair.vector())]))

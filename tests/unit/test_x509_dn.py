"""The DN a TLS proxy forwards, read as OpenNebula keeps an x509 user's (econe.x509.opennebula_dn).

The oracle is OpenSSL itself, on certificates made here: lighttpd forwards a subject as
``X509_NAME_print_ex(XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB)`` (``openssl x509 -nameopt
oneline,-esc_msb``), and OpenNebula reads certificates with Ruby's ``OpenSSL::X509::Name#to_s``, which
is OpenSSL's legacy one-line form (``-nameopt compat``; the same text for every subject below with
Ruby 3.1 on OpenSSL 3.0), whitespace then escaped by ``X509Auth.escape_dn``."""

from __future__ import annotations

import datetime
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from econe.x509 import ONELINE_MAX, opennebula_dn
from one.x509 import escape_dn

_KEY = ec.generate_private_key(ec.SECP256R1())


def _attr(oid, value: str) -> x509.NameAttribute:
    return x509.NameAttribute(oid, value)


SUBJECTS = {
    "plain": [[_attr(NameOID.COUNTRY_NAME, "ES")], [_attr(NameOID.COMMON_NAME, "carol")]],
    "spaces": [
        [_attr(NameOID.COUNTRY_NAME, "ES")],
        [_attr(NameOID.ORGANIZATION_NAME, "Example Org")],
        [_attr(NameOID.COMMON_NAME, "Carol Doe")],
    ],
    "multi-valued RDN": [
        [_attr(NameOID.ORGANIZATION_NAME, "Example")],
        [_attr(NameOID.COMMON_NAME, "Carol Doe"), _attr(NameOID.USER_ID, "c1")],
    ],
    "RFC 2253 specials": [
        [_attr(NameOID.ORGANIZATION_NAME, "Acme, Inc.")],
        [_attr(NameOID.ORGANIZATIONAL_UNIT_NAME, 'R+D "labs" <x>; a\\b')],
        [_attr(NameOID.COMMON_NAME, " lead and trail ")],
    ],
    "UTF-8": [[_attr(NameOID.COMMON_NAME, "José Pérez Ñandú")]],
    "email and a slash": [
        [_attr(NameOID.EMAIL_ADDRESS, "carol@example.org")],
        [_attr(NameOID.COMMON_NAME, "ops/carol")],
    ],
}


def _openssl_subject(pem: bytes, nameopt: str) -> str:
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-nameopt", nameopt], input=pem, capture_output=True, check=True
    ).stdout
    return out.decode("utf-8").removesuffix("\n").removeprefix("subject=")


def _certificate(rdns) -> bytes:
    name = x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in rdns])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(_KEY, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize("case", SUBJECTS)
def test_lighttpds_subject_reads_as_opennebulas(case):
    pem = _certificate(SUBJECTS[case])
    lighttpd = _openssl_subject(pem, "oneline,-esc_msb")
    ruby = _openssl_subject(pem, "compat")
    # a header's bytes reach the application as latin-1 text (PEP 3333)
    assert opennebula_dn(lighttpd.encode().decode("latin-1")) == escape_dn(ruby)
    # the legacy form itself (Apache's and nginx's legacy variables) is taken as it is
    assert opennebula_dn(ruby.encode().decode("latin-1")) == escape_dn(ruby)


def test_the_escape_is_opennebulas():
    assert escape_dn("/C=ES/O=Example Org/CN=Jo\tDoe") == "/C=ES/O=Example\\20Org/CN=Jo\\9Doe"


@pytest.mark.parametrize(
    "seen", ["", "carol", "C=ES, CN=x", "C = ES,, CN = x", "C = ES, CN", 'CN = "open', "= x", "C = ES, "]
)
def test_what_is_no_dn_reads_as_none(seen):
    assert opennebula_dn(seen) is None


def test_a_subject_lighttpd_may_have_cut_short_is_refused():
    # lighttpd keeps 255 bytes of SSL_CLIENT_S_DN: the rest of a longer one is lost, and what is left
    # may be another user's whole DN
    cut = "C = ES, O = Example, CN = " + "x" * (ONELINE_MAX - 26)
    assert len(cut) == ONELINE_MAX and opennebula_dn(cut) is None
    assert opennebula_dn(cut[:-1]) == "/C=ES/O=Example/CN=" + "x" * (ONELINE_MAX - 27)

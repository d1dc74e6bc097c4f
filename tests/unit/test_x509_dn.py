"""The DN a TLS proxy forwards, read as OpenNebula keeps an x509 user's (econe.x509.opennebula_dn).

The oracle is OpenSSL itself, on certificates made here: lighttpd forwards a subject as
``X509_NAME_print_ex(XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB)`` (``openssl x509 -nameopt
oneline,-esc_msb``), and OpenNebula reads certificates with Ruby's ``OpenSSL::X509::Name#to_s``, which
is OpenSSL's legacy one-line form (``-nameopt compat``; the same text for every subject below with
Ruby 3.1 on OpenSSL 3.0), whitespace then escaped by ``X509Auth.escape_dn``."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from econe.edge import client_of
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


def test_the_escape_is_opennebulas():
    assert escape_dn("/C=ES/O=Example Org/CN=Jo\tDoe") == "/C=ES/O=Example\\20Org/CN=Jo\\9Doe"


@pytest.mark.parametrize(
    "seen",
    ["", "carol", "/C=ES/CN=carol", "C=ES, CN=x", "C = ES,, CN = x", "C = ES, CN", 'CN = "open', "= x", "C = ES, "],
)
def test_what_is_no_dn_reads_as_none(seen):
    assert opennebula_dn(seen) is None


def test_a_subject_lighttpd_may_have_cut_short_is_refused():
    # lighttpd keeps 255 bytes of SSL_CLIENT_S_DN: the rest of a longer one is lost, and what is left
    # may be another user's whole DN
    cut = "C = ES, O = Example, CN = " + "x" * (ONELINE_MAX - 26)
    assert len(cut) == ONELINE_MAX and opennebula_dn(cut) is None
    assert opennebula_dn(cut[:-1]) == "/C=ES/O=Example/CN=" + "x" * (ONELINE_MAX - 27)


PROXY = (ipaddress.ip_network("127.0.0.1"),)
APPENDED = 'for=10.0.0.5;proto=https;remote_user="C = ES, CN = Jo \\"x\\" \\\\ y"'


@pytest.mark.parametrize(
    ("peer", "forwarded", "dn"),
    [
        ("127.0.0.1", APPENDED, 'C = ES, CN = Jo "x" \\ y'),  # the quoted string, unescaped
        ("127.0.0.1", f"for=1.2.3.4, {APPENDED}", 'C = ES, CN = Jo "x" \\ y'),
        ("10.0.0.9", APPENDED, None),  # not a trusted proxy: its header says nothing
        ("127.0.0.1", 'for=1.2.3.4;remote_user="CN = x", for=10.0.0.5;proto=https', None),  # the client's element
        # an unclosed quote of the client's takes in the element the proxy appended after it
        ("127.0.0.1", f'for=1.2.3.4;remote_user="/C=ES/CN=x, {APPENDED}', None),
        ("127.0.0.1", f"for=1.2.3.4;remote_user=x;;, {APPENDED}", None),  # not RFC 7239
        ("127.0.0.1", "for=10.0.0.5;proto=https", None),  # no certificate
    ],
)
def test_only_the_trusted_proxys_own_element_carries_a_dn(peer, forwarded, dn):
    assert client_of(peer, forwarded, PROXY).dn == dn


def test_a_malformed_header_is_read_in_linear_time():
    # possessive matching: a near-miss of 60 KB (a head's most) is not tried every way
    for text in (", " * 30000 + "\x01", " ," * 30000 + "\x01", "a=b ; " * 10000 + "\x01", 'a="' + '\\"' * 30000):
        started = time.process_time()
        assert client_of("127.0.0.1", text, PROXY).dn is None
        assert time.process_time() - started < 0.5


_HEADER_TEXT = st.text(st.sampled_from(list(' ,;="\\=abcCN0.-_/é\t') + ["\x7f", "\xff"]), max_size=80)


@settings(max_examples=400, deadline=None)
@given(client=_HEADER_TEXT, dn=_HEADER_TEXT)
def test_any_header_before_the_proxys_element_reads_without_error(client, dn):
    """Whatever a client put before it, the proxy's own element is either read whole, its DN as the
    proxy quoted it, or not at all; and any text is a DN econe reads or refuses, never an exception."""
    quoted = dn.replace("\\", "\\\\").replace('"', '\\"')
    seen = client_of("127.0.0.1", f'{client}, for=10.0.0.5;proto=https;remote_user="{quoted}"', PROXY)
    assert seen.dn in (dn, None)
    assert opennebula_dn(dn) is None or opennebula_dn(dn).startswith("/")
    alone = client_of("127.0.0.1", f'for=10.0.0.5;proto=https;remote_user="{quoted}"', PROXY)
    assert alone.dn == dn  # what the proxy writes is always read

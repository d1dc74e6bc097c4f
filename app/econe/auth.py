"""Request signatures, verified exactly: Signature Version 2 and Signature Version 4.

Pure functions: a request (method, the hosts and path the client may have signed for, query and
form parameters, headers, body hash) and an account lookup in, the access key out, or an EC2Error.
Timestamps are held to 15 minutes, ``Expires`` and presigned expiry are honoured, and signatures
are compared in constant time. An unknown access key, a wrong signature and a disabled user cost the
same work (a signature is computed for each) and get the same answer; only the log tells which.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from .errors import EC2Error, auth_failure

MAX_SKEW = timedelta(minutes=15)
MAX_LIFETIME = timedelta(days=7)  # of a presigned request: SigV4's X-Amz-Expires limit, for SigV2's Expires too
V4_ALGORITHM = "AWS4-HMAC-SHA256"
V4_DATE = "%Y%m%dT%H%M%SZ"
# parameters that are not part of a SigV2 signature: the signature itself, and the upload's file
V2_UNSIGNED = ("Signature", "file")


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Account:
    """What the signature check needs of a user: the secret it signs with, and whether it may."""

    secret: str
    enabled: bool = True


@dataclass
class Request:
    method: str
    hosts: list[str]  # what the client may have signed: the Host header, the public proxy's host...
    paths: list[str]
    query: list[tuple[str, str]]  # from the URL, in order
    form: list[tuple[str, str]] = field(default_factory=list)  # from a POST body
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body_sha256: str | None = EMPTY_SHA256  # None: a multipart body, which SigV2 signs field by field
    service: str = "ec2"  # what a SigV4 credential scope must name: the action's service (STS for GetCallerIdentity)

    def param(self, name: str) -> str | None:
        for k, v in self.query + self.form:
            if k == name:
                return v
        return None


def _expired() -> EC2Error:
    return EC2Error("RequestExpired", "Request has expired.", 400, auth_reason="expired")


def reason_of(error: EC2Error) -> str:
    """Why *error* refused a request's authentication (a label of the metrics): the reason it carries, or
    else that the signature could not be read (its parameters, algorithm, credential scope or date)."""
    return error.auth_reason or "malformed"


def _parse_time(text: str) -> datetime | None:
    for fmt in (
        "%Y-%m-%dT%H:%M:%SZ",
        "%Y-%m-%dT%H:%M:%S.%fZ",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S.%f%z",
        V4_DATE,
    ):
        try:
            t = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return t if t.tzinfo else t.replace(tzinfo=UTC)
    return None


def rfc3986(text: str) -> str:
    return quote(text, safe="-_.~")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


# ------------------------------------------------------------------ which version


def signature_version(req: Request) -> int | None:
    if req.headers.get("authorization", "").startswith(V4_ALGORITHM):
        return 4
    if req.param("X-Amz-Algorithm") == V4_ALGORITHM:
        return 4
    if req.param("Signature") is not None:
        return 2
    return None


def verify(req: Request, account_of, now: datetime) -> str:
    """The access key (user name) that signed *req*; *account_of(name)* is its Account, None for no user."""
    version = signature_version(req)
    if version == 4:
        return verify_v4(req, account_of, now)
    if version == 2:
        return verify_v2(req, account_of, now)
    raise EC2Error(
        "AuthFailure",
        "The request is not signed: no Signature or AWS4-HMAC-SHA256 Authorization.",
        401,
        auth_reason="missing",
    )


# ------------------------------------------------------------------ Signature Version 2


def v2_string_to_sign(method: str, host: str, path: str, params: list[tuple[str, str]]) -> str:
    signed = sorted((k, v) for k, v in params if k not in V2_UNSIGNED)
    query = "&".join(f"{rfc3986(k)}={rfc3986(v)}" for k, v in signed)
    return f"{method}\n{host.lower()}\n{path or '/'}\n{query}"


def v2_signature(secret: str, string_to_sign: str, method: str = "HmacSHA256") -> str:
    digest = hashlib.sha256 if method == "HmacSHA256" else hashlib.sha1
    return base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode(), digest).digest()).decode()


def _accepted(access_key: str, account: Account | None, matched: bool) -> str:
    """The access key, once its signature was computed (also for no account, with an empty secret)."""
    if account is None:
        raise auth_failure(f"no user named {access_key!r} (core or public)", "unknown_key")
    if not account.enabled:
        raise auth_failure(f"user {access_key!r} is disabled", "disabled")
    if not matched:
        raise auth_failure(f"signature does not match for {access_key!r}", "signature")
    return access_key


def verify_v2(req: Request, account_of, now: datetime) -> str:
    params = req.query + req.form
    access_key = req.param("AWSAccessKeyId")
    given = req.param("Signature") or ""
    method = req.param("SignatureMethod") or "HmacSHA1"
    if req.param("SignatureVersion") not in ("2", None) or method not in ("HmacSHA256", "HmacSHA1"):
        raise EC2Error("AuthFailure", "Only SignatureVersion 2 with HmacSHA256 or HmacSHA1 is supported.", 401)
    if not access_key:
        raise EC2Error("MissingParameter", "The request must contain the parameter AWSAccessKeyId")
    _check_v2_time(req, now)
    account = account_of(access_key)
    secret = account.secret if account else ""
    matched = False
    for host in req.hosts:
        for path in req.paths:
            expected = v2_signature(secret, v2_string_to_sign(req.method, host, path, params), method)
            matched |= _same(expected, given)  # every candidate is compared: no early exit to time
    return _accepted(access_key, account, matched)


def _check_v2_time(req: Request, now: datetime) -> None:
    stamp, expires = req.param("Timestamp"), req.param("Expires")
    if stamp is None and expires is None:
        raise EC2Error("MissingParameter", "The request must contain the parameter Timestamp or Expires")
    if stamp is not None and expires is not None:
        raise EC2Error("InvalidParameterCombination", "Use either Timestamp or Expires, not both.")
    when = _parse_time(stamp if stamp is not None else expires)
    if when is None:
        raise EC2Error("InvalidParameterValue", f"Value ({stamp or expires}) for Timestamp/Expires is not a date.")
    if stamp is not None and abs(now - when) > MAX_SKEW:
        raise _expired()
    if expires is not None and now > when:
        raise _expired()
    if expires is not None and when - now > MAX_LIFETIME:
        raise EC2Error("InvalidParameterValue", f"Value ({expires}) for Expires is more than 7 days ahead.")


# ------------------------------------------------------------------ Signature Version 4

_AUTH_RE = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<sig>[0-9a-fA-F]+)"
)


def v4_canonical_query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in sorted((rfc3986(k), rfc3986(v)) for k, v in pairs))


def v4_canonical_request(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str], signed: list[str], payload_hash: str
) -> str:
    canonical_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    return "\n".join(
        [
            method,
            quote(path or "/", safe="/~"),
            v4_canonical_query(query),
            canonical_headers,
            ";".join(signed),
            payload_hash,
        ]
    )


def v4_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def v4_signature(secret: str, amz_date: str, scope: str, canonical_request: str) -> str:
    date, region, service, _ = scope.split("/")
    to_sign = "\n".join([V4_ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    return hmac.new(v4_signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()


def verify_v4(req: Request, account_of, now: datetime) -> str:
    presigned = req.param("X-Amz-Algorithm") == V4_ALGORITHM
    if presigned:
        credential = req.param("X-Amz-Credential") or ""
        signed = (req.param("X-Amz-SignedHeaders") or "").split(";")
        given = req.param("X-Amz-Signature") or ""
        amz_date = req.param("X-Amz-Date") or ""
        query = [(k, v) for k, v in req.query if k != "X-Amz-Signature"]
    else:
        m = _AUTH_RE.match(req.headers.get("authorization", ""))
        if not m:
            raise EC2Error("IncompleteSignature", "The Authorization header is not a valid AWS4-HMAC-SHA256 one.", 400)
        credential, signed, given = m.group("cred"), m.group("signed").split(";"), m.group("sig")
        amz_date = req.headers.get("x-amz-date", "")
        query = req.query
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or parts[3] != req.service:
        raise EC2Error(
            "IncompleteSignature", f"Credential {credential!r} must be KEY/date/region/{req.service}/aws4_request."
        )
    access_key, scope = parts[0], "/".join(parts[1:])
    when = _parse_time(amz_date)
    if when is None or when.strftime("%Y%m%d") != parts[1]:
        raise EC2Error("IncompleteSignature", "X-Amz-Date is missing or does not match the credential's date.")
    if presigned:
        expires = req.param("X-Amz-Expires") or ""
        if not re.fullmatch(r"[0-9]{1,7}", expires):
            raise EC2Error("AuthFailure", "X-Amz-Expires must be a number of seconds.", 401)
        lifetime = int(expires)
        too_long = not 1 <= lifetime <= MAX_LIFETIME.total_seconds()
        # differences, not sums: a date near year 9999 plus the lifetime would overflow
        if too_long or now - when > timedelta(seconds=lifetime) or when - now > MAX_SKEW:
            raise _expired()
    elif abs(now - when) > MAX_SKEW:
        raise _expired()
    if "host" not in signed:
        raise EC2Error("AuthFailure", "The host header must be signed.", 401)
    if req.body_sha256 is None:
        raise EC2Error("InvalidRequest", "A multipart body is accepted with Signature Version 2 only (UploadImage).")
    if presigned and req.body_sha256 != EMPTY_SHA256:
        # a presigned URL signs its query alone: a body would add parameters nobody signed
        raise EC2Error("InvalidRequest", "A presigned URL carries its parameters in the query: send no body.")
    declared = req.headers.get("x-amz-content-sha256")
    if declared is not None and declared != req.body_sha256:
        # the body received is what must have been signed: a declared hash (or UNSIGNED-PAYLOAD)
        # that is not the body's would let a captured request carry another body
        raise EC2Error("XAmzContentSHA256Mismatch", "The x-amz-content-sha256 header does not match the body received.")
    account = account_of(access_key)
    secret = account.secret if account else ""
    payloads = [req.body_sha256]
    if presigned:
        payloads.append("UNSIGNED-PAYLOAD")
    # botocore presigns Query operations as the POST they model, even though the URL is then used with GET
    methods = [req.method, "POST"] if presigned and req.method == "GET" else [req.method]
    matched = False
    for host in req.hosts:
        headers = {**req.headers, "host": host}
        for path in req.paths:
            for payload in payloads:
                for method in methods:
                    canonical = v4_canonical_request(method, path, query, headers, signed, payload)
                    matched |= _same(v4_signature(secret, amz_date, scope, canonical), given.lower())
    return _accepted(access_key, account, matched)

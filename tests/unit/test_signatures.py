"""SigV2 and SigV4 against AWS's published signature test vectors, plus expiry and tampering."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlparse

import boto3
import pytest

from econe import auth
from econe.errors import EC2Error

SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"  # AWS's SigV4 test suite
SUITE_DATE = "20150830T123600Z"
SUITE_SCOPE = "20150830/us-east-1/service/aws4_request"
EMPTY = hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    "name, method, query, signature",
    [
        ("get-vanilla", "GET", [], "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("get-vanilla-query-order-key-case", "GET", [("Param2", "value2"), ("Param1", "value1")],
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("post-vanilla", "POST", [], "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("post-vanilla-query", "POST", [("Param1", "value1")],
         "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    ],
)  # fmt: skip
def test_sigv4_suite_vectors(name, method, query, signature):
    headers = {"host": "example.amazonaws.com", "x-amz-date": SUITE_DATE}
    canonical = auth.v4_canonical_request(method, "/", query, headers, ["host", "x-amz-date"], EMPTY)
    assert auth.v4_signature(SUITE_SECRET, SUITE_DATE, SUITE_SCOPE, canonical) == signature


def test_sigv2_published_example():
    # AWS's Signature Version 2 example (DescribeJobFlows), HmacSHA256
    params = [("AWSAccessKeyId", "AKIAIOSFODNN7EXAMPLE"), ("Action", "DescribeJobFlows"),
              ("SignatureMethod", "HmacSHA256"), ("SignatureVersion", "2"), ("Timestamp", "2011-10-03T15:19:30"),
              ("Version", "2009-03-31")]  # fmt: skip
    text = auth.v2_string_to_sign("GET", "elasticmapreduce.amazonaws.com", "/", params)
    assert text == (
        "GET\nelasticmapreduce.amazonaws.com\n/\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&"
        "SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30&Version=2009-03-31"
    )
    assert auth.v2_signature("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", text) == (
        "i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf/Mj6vPxyYIs="
    )


NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
SECRETS = {"alice": auth.Account("s3cret")}


def v2_request(when: datetime, secret="s3cret", extra=(), key="alice", method="HmacSHA256") -> auth.Request:
    params = [("Action", "DescribeInstances"), ("AWSAccessKeyId", key), ("SignatureVersion", "2"),
              ("SignatureMethod", method), ("Version", "2016-11-15"), *extra]  # fmt: skip
    if not any(k in ("Timestamp", "Expires") for k, _ in extra):
        params.append(("Timestamp", when.strftime("%Y-%m-%dT%H:%M:%SZ")))
    text = auth.v2_string_to_sign("GET", "host:4567", "/", params)
    params.append(("Signature", auth.v2_signature(secret, text, method)))
    return auth.Request("GET", ["host:4567", "host"], ["/"], params)


def test_v2_accepts_fresh_requests_with_both_hmacs():
    assert auth.verify(v2_request(NOW - timedelta(minutes=14)), SECRETS.get, NOW) == "alice"
    assert auth.verify(v2_request(NOW, method="HmacSHA1"), SECRETS.get, NOW) == "alice"


@pytest.mark.parametrize(
    "request_, code",
    [
        (v2_request(NOW - timedelta(minutes=16)), "RequestExpired"),
        (v2_request(NOW + timedelta(minutes=16)), "RequestExpired"),
        (v2_request(NOW, extra=[("Expires", "2026-11-26T11:59:00Z")]), "RequestExpired"),
        # an Expires further away than a SigV4 presigned URL may live (7 days) is refused
        (v2_request(NOW, extra=[("Expires", "2099-01-01T00:00:00Z")]), "InvalidParameterValue"),
        (v2_request(NOW, extra=[("Expires", "2026-12-03T12:00:01Z")]), "InvalidParameterValue"),
        (v2_request(NOW, secret="wrong"), "AuthFailure"),
        (v2_request(NOW, key="mallory", secret="s3cret"), "AuthFailure"),
    ],
)
def test_v2_refusals(request_, code):
    with pytest.raises(EC2Error) as e:
        auth.verify(request_, SECRETS.get, NOW)
    assert e.value.code == code


def test_v2_expires_up_to_seven_days_ahead_is_accepted():
    assert auth.verify(v2_request(NOW, extra=[("Expires", "2026-12-03T12:00:00Z")]), SECRETS.get, NOW) == "alice"


def test_v2_unknown_user_and_wrong_signature_answer_alike():
    answers = set()
    for req in (v2_request(NOW, secret="wrong"), v2_request(NOW, key="nobody")):
        with pytest.raises(EC2Error) as e:
            auth.verify(req, SECRETS.get, NOW)
        answers.add((e.value.code, e.value.message, e.value.status))
    assert len(answers) == 1


def test_v2_tampered_parameter_is_refused():
    req = v2_request(NOW)
    req.query = [(k, "RunInstances" if k == "Action" else v) for k, v in req.query]
    with pytest.raises(EC2Error) as e:
        auth.verify(req, SECRETS.get, NOW)
    assert e.value.code == "AuthFailure"


def v4_request(when: datetime, body: bytes = b"Action=DescribeInstances&Version=2016-11-15", secret="s3cret",
               region="any-region", content_sha256: str | None = None) -> auth.Request:  # fmt: skip
    """A header-signed POST; with *content_sha256*, signed with that X-Amz-Content-SHA256 as botocore does."""
    amz = when.strftime(auth.V4_DATE)
    scope = f"{when:%Y%m%d}/{region}/ec2/aws4_request"
    headers = {"host": "h:4567", "x-amz-date": amz, "content-type": "application/x-www-form-urlencoded"}
    signed = ["content-type", "host", "x-amz-date"]
    body_hash = hashlib.sha256(body).hexdigest()
    payload = body_hash
    if content_sha256:
        headers["x-amz-content-sha256"] = payload = content_sha256
        signed.append("x-amz-content-sha256")
    sig = auth.v4_signature(secret, amz, scope, auth.v4_canonical_request("POST", "/", [], headers, signed, payload))
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential=alice/{scope}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    )
    return auth.Request("POST", ["h:4567"], ["/"], [], parse_qsl(body.decode()), headers, body_hash)


def test_v4_header_any_region():
    assert auth.verify(v4_request(NOW), SECRETS.get, NOW) == "alice"
    assert auth.verify(v4_request(NOW, region="opennebula"), SECRETS.get, NOW) == "alice"


def test_v4_body_is_signed():
    req = v4_request(NOW)
    req.body_sha256 = hashlib.sha256(b"Action=TerminateInstances").hexdigest()
    with pytest.raises(EC2Error) as e:
        auth.verify(req, SECRETS.get, NOW)
    assert e.value.code == "AuthFailure"


SIGNED_BODY = b"Action=DescribeRegions&Version=2016-11-15"


@pytest.mark.parametrize(
    "declared", [hashlib.sha256(SIGNED_BODY).hexdigest(), "UNSIGNED-PAYLOAD"], ids=["replayed", "unsigned"]
)
def test_v4_body_must_be_the_one_signed_even_with_a_content_sha256_header(declared):
    """A captured signed request resent with another body and the X-Amz-Content-SHA256 it was signed with;
    and a request that signs no body at all, which this service does not accept."""
    req = v4_request(NOW, SIGNED_BODY, content_sha256=declared)
    req.body_sha256 = hashlib.sha256(b"Action=TerminateInstances&InstanceId.1=i-00000000").hexdigest()
    with pytest.raises(EC2Error) as e:
        auth.verify(req, SECRETS.get, NOW)
    assert e.value.code in ("AuthFailure", "XAmzContentSHA256Mismatch") and e.value.status < 500


def test_v4_content_sha256_header_of_the_body_is_accepted():
    body_hash = hashlib.sha256(SIGNED_BODY).hexdigest()
    assert auth.verify(v4_request(NOW, SIGNED_BODY, content_sha256=body_hash), SECRETS.get, NOW) == "alice"


def test_v4_expiry():
    with pytest.raises(EC2Error) as e:
        auth.verify(v4_request(NOW - timedelta(minutes=20)), SECRETS.get, NOW)
    assert e.value.code == "RequestExpired"


def test_v4_presigned_expires():
    client = boto3.client("ec2", endpoint_url="http://h:4567", region_name="r", aws_access_key_id="alice",
                          aws_secret_access_key="s3cret")  # fmt: skip
    url = client.generate_presigned_url("describe_regions", Params={}, ExpiresIn=30)
    query = parse_qsl(urlparse(url).query)
    signed_at = datetime.strptime(dict(query)["X-Amz-Date"], auth.V4_DATE).replace(tzinfo=UTC)
    req = auth.Request("GET", ["h:4567"], ["/"], query)
    assert auth.verify(req, SECRETS.get, signed_at + timedelta(seconds=10)) == "alice"
    with pytest.raises(EC2Error) as e:
        auth.verify(req, SECRETS.get, signed_at + timedelta(seconds=31))
    assert e.value.code == "RequestExpired"


def test_v4_presigned_dates_near_the_end_of_time_are_refused_not_overflowed():
    client = boto3.client("ec2", endpoint_url="http://h:4567", region_name="r", aws_access_key_id="alice",
                          aws_secret_access_key="s3cret")  # fmt: skip
    query = dict(parse_qsl(urlparse(client.generate_presigned_url("describe_regions", Params={}, ExpiresIn=30)).query))
    query["X-Amz-Date"] = "99991231T235959Z"
    query["X-Amz-Credential"] = "alice/99991231/r/ec2/aws4_request"
    query["X-Amz-Expires"] = "604800"
    with pytest.raises(EC2Error) as e:
        auth.verify(auth.Request("GET", ["h:4567"], ["/"], list(query.items())), SECRETS.get, NOW)
    assert e.value.code == "RequestExpired"


def test_v4_presigned_url_with_a_body_is_refused():
    client = boto3.client("ec2", endpoint_url="http://h:4567", region_name="r", aws_access_key_id="alice",
                          aws_secret_access_key="s3cret")  # fmt: skip
    query = parse_qsl(urlparse(client.generate_presigned_url("describe_regions", Params={}, ExpiresIn=30)).query)
    body = b"RegionName.1=elsewhere"
    req = auth.Request("POST", ["h:4567"], ["/"], query, parse_qsl(body.decode()), {}, hashlib.sha256(body).hexdigest())
    signed_at = datetime.strptime(dict(query)["X-Amz-Date"], auth.V4_DATE).replace(tzinfo=UTC)
    with pytest.raises(EC2Error) as e:
        auth.verify(req, SECRETS.get, signed_at)
    assert e.value.code == "InvalidRequest"
    req.form, req.body_sha256 = [], auth.EMPTY_SHA256
    assert auth.verify(req, SECRETS.get, signed_at) == "alice"  # the same URL without a body


def test_v4_multipart_body_is_refused():
    req = v4_request(NOW)
    req.body_sha256 = None  # what the web layer passes for a multipart body it did not hash
    with pytest.raises(EC2Error) as e:
        auth.verify(req, SECRETS.get, NOW)
    assert e.value.code == "InvalidRequest"


def test_unsigned_request_is_refused():
    with pytest.raises(EC2Error) as e:
        auth.verify(auth.Request("GET", ["h"], ["/"], [("Action", "DescribeInstances")]), SECRETS.get, NOW)
    assert e.value.status == 401

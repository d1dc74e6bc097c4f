"""x509 authentication (issue #10): the TLS proxy verifies the client certificate and hands econe its
subject DN in the ``remote_user`` of the Forwarded element it appends (lighttpd's ``proxy.forwarded``
with ``ssl.verifyclient.username = "SSL_CLIENT_S_DN"``); econe acts for the OpenNebula user of driver
x509 whose password lists that DN. Only a trusted proxy's word counts, and only its own element.

Requests here are sent to econe as the proxy would send them: unsigned, with that header."""

from __future__ import annotations

import http.client
import re
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import boto3
import botocore
import botocore.config
import botocore.exceptions
import pytest

from econe.config import ConfigError, load
from one.x509 import escape_dn

from . import test_econe_e2e as e2e
from .conftest import start_econe, write_conf

stack = e2e.stack  # onelite (or a real oned), the demo cloud, and an ec2-only econe

# lighttpd's SSL_CLIENT_S_DN (X509_NAME_print_ex, XN_FLAG_ONELINE) and the same DN as OpenNebula keeps it
CAROL_SEEN = "C = ES, O = Example Org, CN = Carol Doe"
CAROL_DN = "/C=ES/O=Example Org/CN=Carol Doe"
OTHER_DN = "/C=ES/O=Example Org/CN=Carol Doe (old card)"
PROXY_SECRET = "b7f3c0d65a2e4e0f9c1d8a7b6e5f4a3c"  # what lighttpd sends in X-Econe-Proxy-Secret
SAME = (401, "AuthFailure", "AWS was not able to validate the provided access credentials")


def _forwarded(dn: str, client: str = "10.1.2.3") -> str:
    quoted = dn.replace("\\", "\\\\").replace('"', '\\"')
    return f'for={client};proto=https;remote_user="{quoted}"'


def _call(url: str, action: str = "GetCallerIdentity", headers: dict | None = None, **params) -> tuple:
    """(status, answer root) of an unsigned GET of *action* to the econe at *url*."""
    version = "2011-06-15" if action == "GetCallerIdentity" else "2016-11-15"
    query = urlencode({"Action": action, "Version": version, **params})
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        conn.request("GET", f"/?{query}", headers=headers or {})
        answer = conn.getresponse()
        return answer.status, ET.fromstring(answer.read())
    finally:
        conn.close()


def _who(url: str, dn: str | None, **headers) -> tuple:
    """(status, the user econe acted for, or (code, message) of its refusal) for a request carrying *dn*."""
    if dn is not None:
        headers["Forwarded"] = _forwarded(dn) if "Forwarded" not in headers else headers["Forwarded"]
    status, root = _call(url, headers=headers)
    ns = {"s": root.tag[1:].split("}")[0]} if root.tag.startswith("{") else None
    if status == 200:
        return status, root.find(".//s:Arn", ns).text.rsplit("/", 1)[1]
    return status, root.findtext("Errors/Error/Code"), root.findtext("Errors/Error/Message")


@pytest.fixture(scope="module")
def x509(stack):
    """The stack's cloud with x509 users, and econes with both methods and with x509 alone."""
    admin = stack.admin
    carol = stack.cloud.name("carol")
    admin("one.user.allocate", carol, f"{escape_dn(OTHER_DN)}|{escape_dn(CAROL_DN)}", "x509", [stack.demo.gid])
    dora = stack.cloud.name("dora")  # disabled
    dora_id = admin("one.user.allocate", dora, escape_dn("/C=ES/CN=Dora"), "x509", [stack.demo.gid])
    admin("one.user.enable", dora_id, False)
    jose = stack.cloud.name("jose")  # a DN beyond ASCII, as Ruby's Name#to_s writes it
    admin("one.user.allocate", jose, escape_dn("/C=ES/CN=Jos\\xC3\\xA9 P\\xC3\\xA9rez"), "x509", [stack.demo.gid])
    for twin in ("twin1", "twin2"):  # one DN, two users: neither is chosen
        admin("one.user.allocate", stack.cloud.name(twin), escape_dn("/C=ES/CN=Twin"), "x509", [stack.demo.gid])
    ed = stack.cloud.name("ed")  # an ssh user whose password is a DN: not an x509 user
    admin("one.user.allocate", ed, escape_dn("/C=ES/CN=Ed"), "ssh", [stack.demo.gid])
    cloud, work = stack.cloud, stack.workdir
    secret_file = work / "proxy_secret"
    secret_file.write_text(f"{PROXY_SECRET}\n")
    secret_file.chmod(0o600)
    settings = {
        "both": {"auth": ["ec2", "x509"], "datastore_id": cloud.datastore},
        "only": {"auth": "x509", "datastore_id": cloud.datastore},
        "untrusting": {"auth": ["ec2", "x509"], "trusted_proxies": ["192.0.2.0/24"]},
        "vouched": {"auth": ["ec2", "x509"], "proxy_secret_file": str(secret_file)},
    }
    econes = {}
    try:  # those started are stopped, even when a later one does not start
        for name, conf in settings.items():
            econes[name] = start_econe(work, cloud.url, cloud.server_auth, **conf)
        yield {"carol": carol, "dora": dora, "ed": ed, "jose": jose, **econes}
    finally:
        for econe in econes.values():
            econe.stop()


def test_a_verified_dn_acts_as_its_x509_user(stack, x509):
    assert _who(x509["both"].url, CAROL_SEEN) == (200, x509["carol"])
    assert _who(x509["only"].url, CAROL_SEEN) == (200, x509["carol"])
    assert _who(x509["both"].url, "C = ES, O = Example Org, CN = Carol Doe (old card)") == (200, x509["carol"])


def test_an_x509_user_runs_and_lists_its_instances(stack, x509):
    headers = {"Forwarded": _forwarded(CAROL_SEEN)}
    image = f"ami-{stack.demo.image:08d}"
    status, root = _call(
        x509["both"].url,
        "RunInstances",
        headers,
        ImageId=image,
        MinCount="1",
        MaxCount="1",
        InstanceType=stack.demo.itype,
    )
    assert status == 200, ET.tostring(root)[:500]
    ns = {"e": root.tag[1:].split("}")[0]}
    instance = root.find(".//e:instancesSet/e:item/e:instanceId", ns).text
    vm = ET.fromstring(stack.admin("one.vm.info", int(instance.split("-")[1])))
    assert vm.findtext("UNAME") == x509["carol"]
    status, root = _call(x509["both"].url, "DescribeInstances", headers)
    assert status == 200
    assert [e.text for e in root.iterfind(".//e:instanceId", ns)] == [instance]
    status, root = _call(x509["both"].url, "TerminateInstances", headers, **{"InstanceId.1": instance})
    assert status == 200, ET.tostring(root)


def test_a_dn_beyond_ascii_as_lighttpd_forwards_it(stack, x509):
    """lighttpd writes the UTF-8 bytes of SSL_CLIENT_S_DN as they are, each after a backslash where
    its C char is signed (x86), without one where it is not (arm64); a header's bytes reach econe as
    latin-1 text."""
    utf8 = "CN = José Pérez".encode().decode("latin-1")
    escaped = "".join("\\" + c if ord(c) > 0x7F else c for c in utf8)
    for remote_user in (escaped, utf8):
        forwarded = f'for=10.1.2.3;proto=https;remote_user="C = ES, {remote_user}"'
        assert _who(x509["both"].url, None, Forwarded=forwarded) == (200, x509["jose"])


def test_a_header_that_is_not_utf8_is_no_server_error(stack, x509):
    for headers in ({"X-Anything": "\xff\xfe"}, {"Forwarded": 'for=10.1.2.3;remote_user="C = ES, CN = \xff"'}):
        assert _who(x509["both"].url, None, **headers)[:2] == (401, "AuthFailure")


def test_unknown_disabled_and_non_x509_dns_get_the_same_answer(stack, x509):
    url = x509["both"].url
    answers = {
        "unknown": _who(url, "C = ES, O = Example Org, CN = Mallory"),
        "disabled": _who(url, "C = ES, CN = Dora"),
        "ssh user": _who(url, "C = ES, CN = Ed"),
        "shared": _who(url, "C = ES, CN = Twin"),
        "part of a DN": _who(url, "C = ES, O = Example Org"),
        "a user's name": _who(url, x509["carol"]),
        "empty": _who(url, ""),
    }
    assert answers == dict.fromkeys(answers, SAME)
    log = x509["both"].log.read_text()
    assert re.search(r"(?m)no x509 user has the DN /C=ES/O=Example\\20Org/CN=Mallory$", log)
    assert re.search(rf"x509 user '{x509['dora']}' is disabled", log)
    assert re.search(r"x509 users '[^']*twin1', '[^']*twin2' share the DN /C=ES/CN=Twin", log)


def test_only_a_trusted_proxy_element_names_the_user(stack, x509):
    # a peer not in trusted_proxies: its Forwarded header says nothing
    assert _who(x509["untrusting"].url, CAROL_SEEN)[:2] == (401, "AuthFailure")
    # the DN of an earlier element was written by whoever sent the request to the proxy, not the proxy
    earlier = {"Forwarded": f"{_forwarded(CAROL_SEEN, '10.9.9.9')}, for=10.1.2.3;proto=https"}
    # a client's own headers of other names are not the proxy's word
    forged = {"X-SSL-Client-S-DN": CAROL_SEEN, "SSL_CLIENT_S_DN": CAROL_DN, "Remote-User": x509["carol"]}
    # a client's unclosed quote would take in the element the proxy appends after it
    unclosed = {
        "Forwarded": f'for=10.9.9.9;remote_user="/C=ES/O=Example\\20Org/CN=Carol\\20Doe, {_forwarded("C = ES")}'
    }
    for headers in (earlier, forged, unclosed):
        assert _who(x509["only"].url, None, **headers) == SAME
        assert _who(x509["both"].url, None, **headers)[:2] == (401, "AuthFailure")


def test_a_signed_request_is_checked_as_ec2(stack, x509):
    client = stack.client(url=x509["both"].url)
    assert client.describe_instances()["ResponseMetadata"]["HTTPStatusCode"] == 200

    def with_dn(request, **kwargs):
        request.headers["Forwarded"] = _forwarded(CAROL_SEEN)

    sts = boto3.client(
        "sts",
        endpoint_url=x509["both"].url,
        region_name="opennebula",
        aws_access_key_id=stack.demo.user,
        aws_secret_access_key=stack.demo.secret,
    )
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", with_dn)
    assert sts.get_caller_identity()["Arn"].endswith(f"/{stack.demo.user}")  # the signer, not the DN's user
    # with x509 alone, a signature is no credential
    only = stack.client(url=x509["only"].url, retries={"total_max_attempts": 1})
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        only.describe_instances()
    assert refused.value.response["Error"]["Code"] == "AuthFailure"


def test_with_ec2_alone_a_dn_is_not_a_credential(stack, x509):
    assert _who(stack.econe.url, CAROL_SEEN) == (
        401,
        "AuthFailure",
        "The request is not signed: no Signature or AWS4-HMAC-SHA256 Authorization.",
    )


def test_auth_in_econe_conf(tmp_path, monkeypatch):
    auth_file = tmp_path / "ec2_auth"
    auth_file.write_text("serveradmin:pw")
    monkeypatch.setenv("ONE_CIPHER_AUTH", str(auth_file))
    for value, methods in (("ec2", ("ec2",)), ("x509", ("x509",)), (["x509", "ec2"], ("x509", "ec2"))):
        assert load(str(write_conf(tmp_path / "ok.conf", {"auth": value}))).auth == methods
    for value in ([], ["ec2", "ec2"], ["ec2", "ldap"], "x509,ec2", 5):
        with pytest.raises(ConfigError, match=r"econe.conf: :auth: must be ec2, x509 or a list of both"):
            load(str(write_conf(tmp_path / "econe.conf", {"auth": value})))
    with pytest.raises(ConfigError, match=r":core_auth: x509 is not implemented"):
        load(str(write_conf(tmp_path / "econe.conf", {"core_auth": "x509"})))


def test_x509_requests_are_logged_with_their_user(stack, x509):
    _who(x509["both"].url, CAROL_SEEN)  # its line is written before the answer is sent
    lines = [line for line in x509["both"].log.read_text().splitlines() if "action=GetCallerIdentity" in line]
    assert any(f"client=10.1.2.3 user={x509['carol']} " in line and "status=200" in line for line in lines)


def _upload(econe, dn: str, file_bytes: bytes, announced: int | None = None) -> tuple[int, ET.Element]:
    """An UploadImage as an x509 client sends it through the proxy: no signature, the proxy's DN; the
    body announced as *announced* bytes (more than is sent: the answer must come before the rest)."""
    boundary = "x509boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="Action"\r\n\r\nUploadImage\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="Version"\r\n\r\n2016-11-15\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="disk.raw"\r\n\r\n'
    ).encode() + file_bytes
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = announced or len(body) + len(tail)
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{econe.port}\r\nForwarded: {_forwarded(dn)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()
    return e2e._raw_post(econe.port, head, body if announced else body + tail)


def test_an_x509_user_uploads_an_image(stack, x509):
    status, root = _upload(x509["both"], CAROL_SEEN, b"\0" * 4096)
    assert status == 200, ET.tostring(root)[:300]
    ami = next(e.text for e in root.iter() if e.tag.endswith("imageId"))
    image = ET.fromstring(stack.admin("one.image.info", int(ami.split("-")[1]), False))
    assert image.findtext("UNAME") == x509["carol"]
    stack.admin("one.image.delete", int(ami.split("-")[1]))


def test_an_upload_with_an_unknown_dn_stages_nothing(stack, x509):
    status, root = _upload(x509["both"], "C = ES, CN = Mallory", b"\0" * 65536, announced=8 * 1024 * 1024)
    assert (status, root.findtext("Errors/Error/Code")) == (401, "AuthFailure")
    assert list((stack.workdir / "tmp").iterdir()) == []


def test_boto3_unsigned_is_an_x509_client(stack, x509):
    """boto3 signs nothing with ``signature_version=UNSIGNED`` (and presents ``client_cert`` to the
    proxy): its POSTed requests act for the x509 user the proxy names."""
    client = boto3.client(
        "ec2",
        endpoint_url=x509["both"].url,
        region_name="opennebula",
        config=botocore.config.Config(signature_version=botocore.UNSIGNED),
    )
    client.meta.events.register("before-send.ec2.*", lambda request, **_: request.headers.update(
        Forwarded=_forwarded(CAROL_SEEN)
    ))  # fmt: skip
    made = client.run_instances(
        ImageId=f"ami-{stack.demo.image:08d}", InstanceType=stack.demo.itype, MinCount=1, MaxCount=1
    )["Instances"][0]
    assert made["InstanceId"] in {
        i["InstanceId"] for r in client.describe_instances()["Reservations"] for i in r["Instances"]
    }
    client.terminate_instances(InstanceIds=[made["InstanceId"]])


def test_with_a_proxy_secret_a_dn_counts_only_beside_it(stack, x509):
    """Anyone on the proxy's address (the frontend's loopback) could send what the proxy sends; with
    ``proxy_secret_file`` a DN counts only from a request carrying the secret the proxy adds."""
    url = x509["vouched"].url
    assert _who(url, CAROL_SEEN, **{"X-Econe-Proxy-Secret": PROXY_SECRET}) == (200, x509["carol"])
    for sent in ({}, {"X-Econe-Proxy-Secret": "guess"}, {"X-Econe-Proxy-Secret": PROXY_SECRET[:-1]}):
        assert _who(url, CAROL_SEEN, **sent)[:2] == (401, "AuthFailure")
    assert "a client certificate DN without the proxy secret" in x509["vouched"].log.read_text()
    assert PROXY_SECRET not in x509["vouched"].log.read_text()
    assert "x509 without proxy_secret_file" not in x509["vouched"].log.read_text()
    assert (
        "x509 without proxy_secret_file: any process connecting from a trusted proxy's address (127.0.0.1/32, ::1/128)"
        in x509["both"].log.read_text()
    )
    # EC2 signatures need no secret
    assert stack.client(url=url).describe_regions()["ResponseMetadata"]["HTTPStatusCode"] == 200


@pytest.mark.parametrize(
    ("content", "mode", "reason"),
    [
        (b"s3cret\n", 0o644, "is readable by others than its owner"),
        (b"\n", 0o600, "is empty"),
        (None, 0, "cannot read"),
        (b"\xff\xfe", 0o600, "is not text"),
    ],
)
def test_a_proxy_secret_file_is_checked_at_start(tmp_path, monkeypatch, content, mode, reason):
    auth_file = tmp_path / "ec2_auth"
    auth_file.write_text("serveradmin:pw")
    monkeypatch.setenv("ONE_CIPHER_AUTH", str(auth_file))
    secret = tmp_path / "secret"
    if content is not None:
        secret.write_bytes(content)
        secret.chmod(mode)
    conf = write_conf(tmp_path / "econe.conf", {"auth": ["ec2", "x509"], "proxy_secret_file": str(secret)})
    with pytest.raises(ConfigError, match=rf"econe.conf: :proxy_secret_file: {secret} {reason}"):
        load(str(conf))

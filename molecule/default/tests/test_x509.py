"""x509 authentication as deployed (#10): econe with both methods, lighttpd verifying client certificates
against the CA prepare.yml made (optional), and carol, an x509 user whose DN has a space. Her
certificate, and one of the same subject from another CA, are in the scenario's ephemeral directory."""

from __future__ import annotations

import hashlib
import os
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import boto3
import pytest
import requests

PROXY = "https://127.0.0.1:18443/"  # molecule.yml publishes the container's 8443 here
PKI = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pki"
CAROL = (str(PKI / "trusted-client.crt"), str(PKI / "trusted-client.key"))
OTHER = (str(PKI / "other-client.crt"), str(PKI / "other-client.key"))  # same subject, another CA
CAROL_STORED = r"/C=ES/O=Example/CN=Carol\20Doe"  # what OpenNebula keeps for /C=ES/O=Example/CN=Carol Doe
AUTH_FAILURE = (401, "AuthFailure")


# run in the container by oneadmin (onelite's Python): the users, an AMI the ec2 group may use, a VM's owner
ADMIN = r"""
import sys, xmlrpc.client
s = open("/var/lib/onelite/one_auth").read().strip()
p = xmlrpc.client.ServerProxy("http://127.0.0.1:2633/RPC2").one
what = sys.argv[1]
if what == "users":
    print(p.userpool.info(s)[1])
elif what == "ami":
    images = p.imagepool.info(s, -2, -1, -1)[1]
    if "<NAME>ami-x509</NAME>" in images:
        print(images.split("<NAME>ami-x509</NAME>")[0].rsplit("<ID>", 1)[1].split("<")[0])
        sys.exit()
    open("/var/tmp/ami-x509.img", "wb").write(bytes(1048576))
    groups = p.grouppool.info(s)[1]
    gid = int(groups.split("<NAME>ec2</NAME>")[0].rsplit("<ID>", 1)[1].split("<")[0])
    body = 'NAME="ami-x509"\nTYPE="OS"\nPATH="/var/tmp/ami-x509.img"\nEC2_AMI="YES"\n'
    image = p.image.allocate(s, body, 1, False)[1]
    p.image.chown(s, image, -1, gid)
    p.image.chmod(s, image, 1, 1, 0, 1, 0, 0, 0, 0, 0)
    print(image)
else:
    print(p.vm.info(s, int(sys.argv[2]), False)[1])
"""

# run in the container (Debian's Python): one request over TLS to a local port, with or without a
# client certificate; what the server answered, or how it refused the handshake
TLS_CLIENT = r"""
import http.client, ssl, sys
port, cert, key = int(sys.argv[1]), *(sys.argv[2:4] or [None, None])
ctx = ssl.create_default_context()
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
if cert:
    ctx.load_cert_chain(cert, key)
conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
try:
    conn.request("GET", "/?Action=GetCallerIdentity&Version=2011-06-15")
    answer = conn.getresponse()
    print(answer.status, answer.read().decode())
except OSError as e:
    print("refused", e)
"""


def _admin(host, *args) -> str:
    host.run_expect([0], f"cat > /tmp/x509-admin.py <<'PY'\n{ADMIN}\nPY")
    return host.check_output("/opt/onelite/bin/python /tmp/x509-admin.py " + " ".join(map(str, args)))


@pytest.fixture(scope="module")
def query(host, tmp_path_factory):
    """An unsigned EC2 Query POST through the proxy, as x509 clients send them: (status, answer root).
    The client trusts the frontend's own certificate (snakeoil_cert's, for 127.0.0.1 among others)."""
    server = tmp_path_factory.mktemp("x509") / "econe.crt"
    server.write_text(host.file("/etc/lighttpd/ssl/econe.crt").content_string)

    def post(action: str, cert=None, headers=None, **params) -> tuple[int, ET.Element]:
        version = "2011-06-15" if action == "GetCallerIdentity" else "2016-11-15"
        answer = requests.post(PROXY, data={"Action": action, "Version": version, **params}, cert=cert,
                               headers=headers, verify=str(server), timeout=30)  # fmt: skip
        return answer.status_code, ET.fromstring(answer.content)

    return post


def _text(root: ET.Element, name: str) -> list[str]:
    """The texts of every element *name* in an answer, whatever its namespace."""
    return [e.text for e in root.iter() if e.tag.rsplit("}", 1)[-1] == name]


def _error(status: int, root: ET.Element) -> tuple[int, str]:
    return status, root.findtext("Errors/Error/Code")


def test_the_x509_user_is_kept_with_the_escaped_dn(host):
    users = ET.fromstring(_admin(host, "users"))
    carol = next(u for u in users.iter("USER") if u.findtext("NAME") == "carol")
    assert (carol.findtext("AUTH_DRIVER"), carol.findtext("PASSWORD"), carol.findtext("GNAME")) == (
        "x509",
        CAROL_STORED,
        "ec2",
    )
    ca = host.file("/etc/lighttpd/ssl/client-ca.crt")
    assert (ca.user, ca.group, ca.mode) == ("root", "root", 0o644)
    assert ca.content_string.strip() == (PKI / "trusted-ca.crt").read_text().strip()  # lookup("file") strips
    assert ':auth: ["ec2", "x509"]\n' in host.file("/etc/one/econe.conf").content_string


def test_the_certificate_lists_and_runs_instances_as_the_x509_user(host, query):
    status, root = query("GetCallerIdentity", cert=CAROL)
    assert status == 200 and _text(root, "Arn")[0].endswith("/carol"), ET.tostring(root)
    image = int(_admin(host, "ami"))
    status, root = query("RunInstances", cert=CAROL, ImageId=f"ami-{image:08d}", InstanceType="m1.small",
                          MinCount="1", MaxCount="1")  # fmt: skip
    assert status == 200, ET.tostring(root)
    instance = _text(root, "instanceId")[0]
    try:
        vm = ET.fromstring(_admin(host, "vm", int(instance.removeprefix("i-"))))
        assert vm.findtext("UNAME") == "carol"  # oned's owner of the VM: econe acted for carol
        status, root = query("DescribeInstances", cert=CAROL)
        assert status == 200 and instance in _text(root, "instanceId")
    finally:
        status, root = query("TerminateInstances", cert=CAROL, **{"InstanceId.1": instance})
        assert status == 200, ET.tostring(root)


def test_a_certificate_of_another_ca_or_none_gets_no_dn_through(query):
    """Optional client certificates: lighttpd serves the client but passes no DN; econe refuses."""
    assert _error(*query("DescribeInstances", cert=OTHER)) == AUTH_FAILURE
    assert _error(*query("DescribeInstances")) == AUTH_FAILURE


@pytest.fixture
def required_proxy(host):
    """A second lighttpd from the deployed configuration with client certificates required (as
    lighttpd_ssl_proxy_client_cert: required deploys it), on port 9443, and the certificates inside."""
    host.run_expect([0], "mkdir -p /tmp/x509-pki")
    for name in ("trusted-client.crt", "trusted-client.key", "other-client.crt", "other-client.key"):
        host.run_expect([0], f"cat > /tmp/x509-pki/{name} <<'PEM'\n{(PKI / name).read_text()}PEM")
    conf = "\n".join((
        'include "/etc/lighttpd/lighttpd.conf"',
        "server.port := 9443",
        'server.pid-file := "/run/lighttpd-required.pid"',
        'server.errorlog := "/var/log/lighttpd/required-error.log"',
        'accesslog.filename := "/var/log/lighttpd/required-access.log"',
        'ssl.verifyclient.enforce := "enable"',
    ))  # fmt: skip
    host.run_expect([0], f"cat > /tmp/required.conf <<'CONF'\n{conf}\nCONF")
    host.run_expect([0], "lighttpd -tt -f /tmp/required.conf && lighttpd -f /tmp/required.conf")
    host.run_expect([0], f"cat > /tmp/tls-client.py <<'PY'\n{TLS_CLIENT}\nPY")
    deadline = time.monotonic() + 10
    while not host.socket("tcp://0.0.0.0:9443").is_listening and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        yield lambda *cert: host.check_output("/usr/bin/python3 /tmp/tls-client.py 9443 " + " ".join(cert))
    finally:
        host.run("kill $(cat /run/lighttpd-required.pid)")


def test_required_client_certificates_refuse_the_handshake_of_another_ca_or_none(required_proxy):
    carol = required_proxy("/tmp/x509-pki/trusted-client.crt", "/tmp/x509-pki/trusted-client.key")
    assert carol.startswith("200 ") and "/carol</Arn>" in carol, carol
    other = required_proxy("/tmp/x509-pki/other-client.crt", "/tmp/x509-pki/other-client.key")
    assert other.startswith("refused") and "UNKNOWN_CA" in other, other
    none = required_proxy()
    assert none.startswith("refused") and "CERTIFICATE_REQUIRED" in none, none


def test_econes_port_is_on_loopback_only(host):
    """econe trusts its peer 127.0.0.1 (the proxy) to name the DN: nothing else may reach its ports."""
    for port in (4567, 4568):
        listening = host.check_output(f"ss -ltnH 'sport = :{port}'").split()
        assert listening and all(f == f"127.0.0.1:{port}" for f in listening if f.endswith(f":{port}")), listening
    address = host.check_output("ip -4 -o addr show scope global").split()[3].split("/")[0]
    probe = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5); print('open')"
    assert host.check_output(f'/usr/bin/python3 -c "{probe}" {address} 8443') == "open"  # the address works
    refused = host.run(f'/usr/bin/python3 -c "{probe}" {address} 4567')
    assert refused.rc != 0 and "ConnectionRefusedError" in refused.stderr, refused


# run in the container: an unsigned GetCallerIdentity straight to econe's port, with carol's DN as
# lighttpd forwards it, and the proxy secret read from argv[1] when there is one: status and answer
STRAIGHT = r"""
import sys, urllib.error, urllib.request
headers = {"Forwarded": 'for=10.0.0.7;proto=https;remote_user="C = ES, O = Example, CN = Carol Doe"'}
if len(sys.argv) > 1:
    headers["X-Econe-Proxy-Secret"] = open(sys.argv[1]).read().strip()
request = urllib.request.Request("http://127.0.0.1:4567/?Action=GetCallerIdentity&Version=2011-06-15", headers=headers)
try:
    answer = urllib.request.urlopen(request, timeout=10)
except urllib.error.HTTPError as e:
    answer = e
print(answer.status, answer.read().decode())
"""
SECRET = "/var/lib/one/.one/econe_proxy_secret"


def test_a_forged_dn_sent_straight_to_econes_port_is_refused(host):
    """Any process on the frontend connects from 127.0.0.1, the proxy's address: only the proxy's
    secret (in files only root and oneadmin read) makes its DN count."""
    host.run_expect([0], f"cat > /tmp/x509-straight.py <<'PY'\n{STRAIGHT}\nPY")
    forged = host.check_output("/usr/bin/python3 /tmp/x509-straight.py")
    assert forged.startswith("401 ") and "<Code>AuthFailure</Code>" in forged, forged
    vouched = host.check_output(f"/usr/bin/python3 /tmp/x509-straight.py {SECRET}")  # root reads the secret
    assert vouched.startswith("200 ") and "user/carol</Arn>" in vouched, vouched
    secret, proxy_conf = host.file(SECRET), host.file("/etc/lighttpd/econe-proxy-secret.conf")
    assert (secret.user, secret.mode) == ("oneadmin", 0o600)
    assert (proxy_conf.user, proxy_conf.mode) == ("root", 0o600)
    assert secret.content_string.strip() in proxy_conf.content_string
    assert secret.content_string.strip() not in host.file("/etc/lighttpd/econe-proxy.conf").content_string


def test_a_forged_dn_header_through_the_proxy_is_dropped(query):
    forged = {
        "Forwarded": 'for=1.2.3.4;remote_user="C = ES, O = Example, CN = Carol Doe"',
        "X-Forwarded-For": "1.2.3.4",
        "X-Econe-Proxy-Secret": "a guess",
    }
    assert _error(*query("DescribeInstances", headers=forged)) == AUTH_FAILURE
    assert _error(*query("DescribeInstances", cert=OTHER, headers=forged)) == AUTH_FAILURE
    # what the client sent is gone, not kept beside the proxy's own: econe would refuse an unclosed
    # quote in Forwarded (no DN read), and a guessed secret before the proxy's (two values)
    broken = {**forged, "Forwarded": 'for=1.2.3.4;remote_user="/C=ES/CN=x'}
    status, root = query("GetCallerIdentity", cert=CAROL, headers=broken)
    assert status == 200 and _text(root, "Arn")[0].endswith("/carol"), ET.tostring(root)


def test_an_ec2_signed_request_still_works_with_both_methods():
    secret = hashlib.sha256(b"alicepw").hexdigest()
    ec2 = boto3.client("ec2", endpoint_url=PROXY.rstrip("/"), region_name="opennebula", verify=False,
                       aws_access_key_id="alice", aws_secret_access_key=secret)  # fmt: skip
    assert "Reservations" in ec2.describe_instances()

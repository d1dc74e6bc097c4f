"""The converged frontend: packages, files and modes, services, ports, the certificate, and an EC2
round trip through the TLS proxy with boto3 as the user the role created."""

from __future__ import annotations

import hashlib

import boto3
import botocore.config

# run in the container by oneadmin: a small image, registered as an AMI, that the ec2 group may use
ADMIN_SCRIPT = r"""
import xmlrpc.client
s = open("/var/lib/onelite/one_auth").read().strip()
p = xmlrpc.client.ServerProxy("http://127.0.0.1:2633/RPC2").one
open("/var/tmp/ami.img", "wb").write(bytes(1048576))
groups = p.grouppool.info(s)[1]
gid = int(groups.split("<NAME>ec2</NAME>")[0].rsplit("<ID>", 1)[1].split("<")[0])
image = p.image.allocate(s, 'NAME="ami-%d"\nTYPE="OS"\nPATH="/var/tmp/ami.img"\nEC2_AMI="YES"\n' % gid, 1, False)[1]
p.image.chown(s, image, -1, gid)
p.image.chmod(s, image, 1, 1, 0, 1, 0, 0, 0, 0, 0)
print(image)
"""


def test_packages(host):
    for name in ("lighttpd", "lighttpd-mod-openssl", "python3-venv"):
        assert host.package(name).is_installed


def test_files_and_modes(host):
    expected = {
        "/etc/one": ("root", "oneadmin", 0o751),  # as OpenNebula's packages make it
        "/etc/one/econe.conf": ("root", "oneadmin", 0o640),
        "/var/lib/one/.one/ec2_auth": ("oneadmin", "oneadmin", 0o600),
        "/etc/lighttpd/ssl/server.pem": ("root", "root", 0o600),
        "/etc/lighttpd/ssl/econe.key": ("root", "root", 0o600),
        "/etc/systemd/system/econe-server@.service": ("root", "root", 0o644),
        "/etc/systemd/system/econe-server@2.service.d/ports.conf": ("root", "root", 0o644),
        "/etc/logrotate.d/econe-server": ("root", "root", 0o644),
        "/etc/lighttpd/lighttpd.conf": ("root", "root", 0o644),
        "/etc/lighttpd/ec2-errors": ("root", "root", 0o755),
        "/etc/lighttpd/ec2-errors/503.html": ("root", "root", 0o644),
    }
    for path, (user, group, mode) in expected.items():
        f = host.file(path)
        assert f.exists, path
        assert (f.user, f.group, f.mode) == (user, group, mode), path
    conf = host.file("/etc/one/econe.conf").content_string
    assert ":ssl_server:" in conf and ":port: 4567" in conf
    assert host.file("/etc/lighttpd/lighttpd.conf").contains("mod_openssl")


def test_services_and_ports(host):
    for name in ("econe-server@1", "econe-server@2", "lighttpd", "onelite"):
        svc = host.service(name)
        assert svc.is_running and svc.is_enabled, name
    assert host.socket("tcp://0.0.0.0:8443").is_listening
    assert host.socket("tcp://127.0.0.1:4567").is_listening and host.socket("tcp://127.0.0.1:4568").is_listening
    assert host.run("lighttpd -tt -f /etc/lighttpd/lighttpd.conf").rc == 0


def test_certificate(host):
    cert = "/etc/lighttpd/ssl/econe.crt"
    assert host.run(f"openssl x509 -in {cert} -noout -checkend 86400").rc == 0
    subject = host.run(f"openssl x509 -in {cert} -noout -subject -ext subjectAltName").stdout
    assert "econe-frontend" in subject and "127.0.0.1" in subject


def test_ec2_round_trip_through_the_tls_proxy(host):
    host.run_expect([0], f"cat > /tmp/mkami.py <<'PY'\n{ADMIN_SCRIPT}\nPY")
    image = int(host.check_output("/opt/onelite/bin/python /tmp/mkami.py"))
    ec2 = boto3.client(
        "ec2", endpoint_url="https://127.0.0.1:18443", region_name="opennebula", verify=False,
        aws_access_key_id="alice", aws_secret_access_key=hashlib.sha256(b"alicepw").hexdigest(),
        config=botocore.config.Config(retries={"max_attempts": 2}),
    )  # fmt: skip
    run = ec2.run_instances(ImageId=f"ami-{image:08d}", InstanceType="m1.small", MinCount=1, MaxCount=1)
    vm = run["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[vm], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    ec2.terminate_instances(InstanceIds=[vm])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[vm], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    log = host.file("/var/log/one/econe-server.log").content_string
    assert "action=RunInstances status=200" in log

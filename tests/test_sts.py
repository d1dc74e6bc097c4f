"""STS GetCallerIdentity on econe's endpoint: amazon.aws asks it on the same ``endpoint_url`` for the
account id before ec2_security_group and other modules act. The account is the user's numeric
OpenNebula id, as OwnerId is everywhere else; a signature holds for the service it names only."""

from __future__ import annotations

import urllib.error
import urllib.request

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest

from .test_econe_e2e import stack  # noqa: F401


def sts(stack, secret=None):  # noqa: F811
    return boto3.client(
        "sts",
        endpoint_url=stack.econe.url,
        region_name="opennebula",
        aws_access_key_id=stack.demo.user,
        aws_secret_access_key=secret or stack.demo.secret,
    )


def test_get_caller_identity_names_the_user(stack):  # noqa: F811
    me = sts(stack).get_caller_identity()
    assert me["Account"] == str(stack.demo.uid) == me["UserId"]
    assert me["Arn"] == f"arn:aws:iam::{stack.demo.uid}:user/{stack.demo.user}"
    ec2 = stack.client()  # the same account owns what the user makes
    group = ec2.create_security_group(GroupName=stack.cloud.name("sts-owned"), Description="owned")["GroupId"]
    try:
        (sg,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
        assert sg["OwnerId"] == me["Account"]
    finally:
        ec2.delete_security_group(GroupId=group)


def test_a_wrong_secret_is_auth_failure(stack):  # noqa: F811
    with pytest.raises(botocore.exceptions.ClientError) as e:
        sts(stack, "wrong").get_caller_identity()
    assert e.value.response["Error"]["Code"] == "AuthFailure"


def _signed(stack, service: str, action: str, version: str):  # noqa: F811
    creds = botocore.credentials.Credentials(stack.demo.user, stack.demo.secret)
    req = botocore.awsrequest.AWSRequest(
        method="POST",
        url=stack.econe.url + "/",
        data=f"Action={action}&Version={version}",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    botocore.auth.SigV4Auth(creds, service, "opennebula").add_auth(req)
    r = urllib.request.Request(req.url, data=req.body, headers=dict(req.headers), method="POST")
    try:
        with urllib.request.urlopen(r, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize(
    ("service", "action", "version"),
    [("sts", "DescribeRegions", "2016-11-15"), ("ec2", "GetCallerIdentity", "2011-06-15")],
)
def test_a_signature_holds_for_the_service_it_names(stack, service, action, version):  # noqa: F811
    status, body = _signed(stack, service, action, version)
    assert status == 400 and b"<Code>IncompleteSignature</Code>" in body, body

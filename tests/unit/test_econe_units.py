"""econe's pure parts: configuration errors, state mapping, the model-driven parser, file templates."""

from __future__ import annotations

import time
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from econe import config, ids, model, states
from econe.actions import ACTIONS, check_stored, claims
from econe.actions.filters import wildcards
from econe.actions.instance_types import render_file_template
from econe.config import Config
from econe.errors import EC2Error
from econe.gateway import Gateway
from econe.metrics import Metrics
from econe.web import make_app
from one import template as tpl


@pytest.fixture
def auth_file(tmp_path, monkeypatch):
    path = tmp_path / "ec2_auth"
    path.write_text("serveradmin:secret\n")
    monkeypatch.setenv("ONE_CIPHER_AUTH", str(path))
    return path


def write(tmp_path, text: str):
    path = tmp_path / "econe.conf"
    path.write_text(text)
    return str(path)


def test_symbol_and_plain_keys(tmp_path, auth_file):
    cfg = config.load(write(tmp_path, ":port: 5000\nhost: 0.0.0.0\n"))
    assert (cfg.port, cfg.host, cfg.server_user, cfg.server_password) == (5000, "0.0.0.0", "serveradmin", "secret")
    assert config.load(write(tmp_path, ":server: example.org\n")).host == "example.org"  # the 3.0 name


@pytest.mark.parametrize(
    "text, message",
    [
        (":port: abc\n", "econe.conf: :port: must be an integer 1-65535, got 'abc'"),
        (":port: 70000\n", "econe.conf: :port: must be an integer 1-65535, got 70000"),
        (":nonsense: 1\n", "econe.conf: :nonsense: unknown key"),
        ("auth: kerberos\n", "econe.conf: auth: must be ec2, x509 or a list of both, like [ec2, x509], got 'kerberos'"),
        (":one_xmlrpc: localhost:2633\n", "econe.conf: :one_xmlrpc: must be an http(s) URL"),
        (":describe_with_terminated_instances: maybe\n", "must be true or false"),
        (":max_upload_size: lots\n", "econe.conf: :max_upload_size: must be a size"),
        (":max_upload_size: B\n", "econe.conf: :max_upload_size: must be a size"),  # was an IndexError
        (":instance_types:\n  m1.small:\n    :template: m1.small.erb\n", "is an ERB template"),
        (":port: 1\nport: 2\n", "given twice"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_config_mistakes_name_file_key_and_reason(tmp_path, auth_file, text, message):
    with pytest.raises(config.ConfigError) as e:
        config.load(write(tmp_path, text))
    assert message in str(e.value)


def test_config_unreadable_files(tmp_path, auth_file, monkeypatch):
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.conf"))
    monkeypatch.setenv("ONE_CIPHER_AUTH", str(tmp_path / "nope"))
    with pytest.raises(config.ConfigError, match="ONE_CIPHER_AUTH"):
        config.load(write(tmp_path, ":port: 4567\n"))


def test_sizes(tmp_path, auth_file):
    assert config.load(write(tmp_path, ":max_upload_size: 2G\n")).max_upload_size == 2 * 1024**3


@pytest.mark.parametrize(
    "state, lcm, name",
    [((1, 0), 0, "pending"), ((2, 0), 0, "pending"), ((3, 1), 0, "pending"), ((3, 2), 0, "pending"),
     ((3, 3), 0, "running"), ((3, 12), 0, "shutting-down"), ((3, 11), 0, "shutting-down"), ((6, 0), 0, "terminated"),
     ((8, 0), 0, "stopped"), ((3, 18), 0, "stopping"), ((4, 0), 0, "stopped"), ((5, 0), 0, "stopped"),
     ((9, 0), 0, "stopped"), ((3, 5), 0, "stopping"), ((3, 17), 0, "running"), ((7, 0), 0, "terminated")],
)  # fmt: skip
def test_state_mapping(state, lcm, name):
    got = states.instance_state(*state)
    assert got["Name"] == name and got["Code"] == states.EC2_CODES[name]


def test_image_states():
    assert [states.image_state(s) for s in (1, 2, 4, 5, 8, 3)] == [
        "available",
        "available",
        "pending",
        "failed",
        "in-use",
        None,
    ]


@pytest.mark.parametrize("text, oid", [("i-00000007", 7), ("i-7", 7), ("7", 7)])
def test_lenient_ids(text, oid):
    assert ids.parse(text, "i") == oid


# a Unicode digit, or a newline the old pattern's "$" let through, is not an id
@pytest.mark.parametrize(
    "text", ["ami-7", "i-", "i-x1", "", "i-99999999999", "i-\u00b2", "i-0000000\u0661", "i-00000001\n"]
)
def test_malformed_ids(text):
    with pytest.raises(EC2Error) as e:
        ids.parse(text, "i")
    assert e.value.code == "InvalidInstanceID.Malformed"


def test_model_parses_flattened_lists_and_filters():
    op = model.operation("DescribeInstances")
    parsed = model.parse(op, [("InstanceId.2", "i-2"), ("InstanceId.1", "i-1"), ("Filter.1.Name", "tag:a"),
                              ("Filter.1.Value.1", "x"), ("Filter.1.Value.2", "y"), ("MaxResults", "10")])  # fmt: skip
    assert parsed == {"InstanceIds": ["i-1", "i-2"], "Filters": [{"Name": "tag:a", "Values": ["x", "y"]}],
                      "MaxResults": 10}  # fmt: skip


def test_model_answers_parse_back_with_botocore():
    import botocore.parsers

    op = model.operation("TerminateInstances")
    state = {"Code": 32, "Name": "shutting-down"}
    body = model.serialize(op, {"TerminatingInstances": [{"InstanceId": "i-1", "CurrentState": state,
                                                          "PreviousState": state}]}, "2016-11-15", "rid")  # fmt: skip
    parsed = botocore.parsers.EC2QueryParser().parse({"body": body, "headers": {}, "status_code": 200},
                                                     op.output_shape)  # fmt: skip
    assert parsed["TerminatingInstances"][0]["InstanceId"] == "i-1"
    assert parsed["ResponseMetadata"]["RequestId"] == "rid"
    assert b'xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"' in body


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60))
def test_file_templates_quote_every_value(tmp_path_factory, value):
    d = tmp_path_factory.mktemp("tpl")
    (d / "m1.small.j2").write_text(
        "NAME = {{ instance_type }}\nMEMORY = 64\nCPU = 1\nDISK = [ IMAGE_ID = {{ img_id }} ]\n"
        "CONTEXT = [ EC2_USER_DATA = {{ user_data }}, EC2_KEYNAME = {{ key_name }} ]\n"
    )
    cfg = config.Config(instance_types={"m1.small": config.InstanceType("m1.small", str(d / "m1.small.j2"))})
    try:
        text = render_file_template(cfg, "m1.small", 3, value, key_name=value)
    except tpl.UnstorableValue as e:  # a value oned cannot store exactly is refused, never written changed
        assert e.value == value
        return
    parsed = tpl.parse(text)
    assert [k for k, _ in parsed] == ["NAME", "MEMORY", "CPU", "DISK", "CONTEXT"]
    assert dict(tpl.get(parsed, "CONTEXT")) == {"EC2_USER_DATA": value, "EC2_KEYNAME": value}
    assert tpl.get(parsed, "MEMORY") == "64"


@pytest.mark.parametrize(
    "key, value, reason",
    [
        ("TagSpecification.1.Tag.2.Value", "ends\\", "it ends with a backslash"),
        ("TagSpecification.1.Tag.1.Key", "a]]>b", "it contains ]]>"),
        ("ClientToken", "a\rb", "it contains a carriage return"),
    ],
)
def test_values_that_reach_a_template_are_refused_by_parameter_name(key, value, reason):
    op, act = model.operation("RunInstances"), ACTIONS["RunInstances"]
    params = [("ImageId", "ami-00000001"), ("InstanceType", "m1.small"), ("MinCount", "1"), ("MaxCount", "1")]
    check_stored(
        op, act, [*params, ("TagSpecification.1.ResourceType", "instance"), ("TagSpecification.1.Tag.1.Value", "a\\b")]
    )
    with pytest.raises(EC2Error) as e:
        check_stored(op, act, [*params, (key, value)])
    assert e.value.code == "InvalidParameterValue" and e.value.status == 400
    assert e.value.message == f"Value for {key} cannot be stored in an OpenNebula template: {reason}"


def test_client_token_queues_live_only_while_used():
    """The table of a server's ClientToken queues keeps no entry once no request holds or waits for
    it (the claim in oned is tests/test_client_token_claims.py's)."""
    deadline = time.monotonic() + claims.WAIT
    with claims._queued("alice", "run", "t1", deadline):
        with claims._queued("alice", "run", "t2", deadline):
            assert set(claims._queues) == {("alice", "run", "t1"), ("alice", "run", "t2")}
        assert set(claims._queues) == {("alice", "run", "t1")}
    assert claims._queues == {}


@pytest.mark.parametrize(
    "pattern, matching, other",
    [
        ("m1.*", ["m1.small", "m1."], ["m2.small", "xm1.small"]),
        ("a?c", ["abc", "a?c"], ["ac", "abbc"]),
        ("x[1]", ["x[1]"], ["x1"]),  # [ is not special in EC2's syntax (it opens a class in fnmatch's)
        ("lit\\*", ["lit*"], ["litx", "lit"]),  # a backslash makes the next character literal
        ("a\\\\b", ["a\\b"], ["ab"]),
        ("a\\\nb", ["a\nb"], ["ab", "a\\\nb"]),
        ("*" * 60 + "b", ["b", "xb"], ["a" * 256]),  # runs of * do not backtrack exponentially
    ],
)
def test_filter_wildcards_as_ec2_has_them(pattern, matching, other):
    match = wildcards([pattern])
    assert [match(v) for v in matching] == [True] * len(matching)
    assert [match(v) for v in other] == [False] * len(other)


def test_the_app_uses_no_deprecated_bottle_api():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        metrics = Metrics()
        app = make_app(Config(), Gateway("http://127.0.0.1:9/RPC2", "serveradmin", "x", metrics), metrics)  # no call
    assert app.catchall is False  # an error escaping the handler is Cheroot's 500, worded by the edge

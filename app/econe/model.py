"""Requests and responses from botocore's EC2 service model, the model boto3 itself uses.

``parse`` turns flat Query parameters (``InstanceId.1``, ``Filter.1.Value.2``) into an operation's
input shape, checking names, types and required members; ``serialize`` writes an output shape as
the EC2 XML clients parse. This is the one XML writer for every EC2 answer: element names come
from the model, and every value goes through one escaper.
"""

from __future__ import annotations

import base64
import functools
import re
from datetime import UTC, datetime

import botocore.session

from one.template import NOT_XML

from .errors import EC2Error, invalid

# parameters of the protocol and of signing, not of any operation
COMMON = {
    "Action",
    "Version",
    "AWSAccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "Timestamp",
    "Expires",
    "SecurityToken",
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
}


@functools.cache
def service(name: str = "ec2"):
    return botocore.session.get_session().get_service_model(name)


def operation(action: str, service_name: str = "ec2"):
    try:
        return service(service_name).operation_model(action)
    except Exception:
        return None


def _query_name(name: str, shape) -> str:
    s = shape.serialization
    if "queryName" in s:
        return s["queryName"]
    if "name" in s:
        return s["name"][0].upper() + s["name"][1:]
    return name


def query_name(op, member: str) -> str:
    """The Query parameter an input member is sent as (``TagSpecifications`` -> ``TagSpecification``)."""
    return _query_name(member, op.input_shape.members[member])


def _tree(params: list[tuple[str, str]]) -> dict:
    """``{"Filter": {"1": {"Name": "x", "Value": {"1": "a"}}}}`` from dotted keys."""
    root: dict = {}
    for key, value in params:
        if key in COMMON:
            continue
        node = root
        parts = key.split(".")
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                if isinstance(node.get(part), dict):
                    raise EC2Error("InvalidParameter", f"The parameter {key} conflicts with other parameters.")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise EC2Error("InvalidParameter", f"The parameter {key} conflicts with other parameters.")
                node = child
    return root


def parse(op, params: list[tuple[str, str]], optional=frozenset()) -> dict:
    """The input of operation *op* from Query parameters; raises EC2Error for any mistake.
    Members in *optional* are not required even where the model requires them."""
    return _structure(op.input_shape, _tree(params), "", optional) if op.input_shape is not None else {}


def _structure(shape, node, prefix: str, optional=frozenset()) -> dict:
    if not isinstance(node, dict):
        raise EC2Error("InvalidParameterValue", f"The parameter {prefix} must have members, like {prefix}.Name.")
    out = {}
    names = {}
    for member, mshape in shape.members.items():
        names[_query_name(member, mshape)] = (member, mshape)
    for key, value in node.items():
        if key not in names:
            raise EC2Error("UnknownParameter", f"The parameter {prefix}{key} is not recognized")
        member, mshape = names[key]
        out[member] = _value(mshape, value, f"{prefix}{key}")
    for member in shape.required_members:
        if member not in out and member not in optional:
            raise EC2Error("MissingParameter", f"The request must contain the parameter {prefix}{member}")
    return out


# ASCII digits only: str.isdigit() and int() also take "²" or "٣", and "$" in a pattern lets "\n" through
_INDEX = re.compile(r"[0-9]{1,9}")
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # int() refuses more than 4,300 digits with an exception


def _value(shape, node, name: str):
    kind = shape.type_name
    if kind == "structure":
        return _structure(shape, node, name + ".")
    if kind == "list":
        if not isinstance(node, dict) or not all(_INDEX.fullmatch(k) and int(k) > 0 for k in node):
            raise EC2Error("InvalidParameterValue", f"The parameter {name} must be given as {name}.1, {name}.2, ...")
        return [_value(shape.member, node[k], f"{name}.{k}") for k in sorted(node, key=int)]
    if isinstance(node, dict):
        raise EC2Error("UnknownParameter", f"The parameter {name}.{next(iter(node))} is not recognized")
    if kind in ("integer", "long"):
        if not _INTEGER.fullmatch(node):
            raise invalid(name, node, "It must be an integer.")
        number = int(node)
        low = shape.metadata.get("min")
        if low is not None and number < low:
            raise invalid(name, node, f"It must be at least {low}.")
        return number
    if kind == "boolean":
        if node.lower() not in ("true", "false"):
            raise invalid(name, node, "It must be true or false.")
        return node.lower() == "true"
    if kind in ("double", "float"):
        try:
            return float(node)
        except ValueError:
            raise invalid(name, node, "It must be a number.") from None
    if kind == "timestamp":
        try:
            return datetime.fromisoformat(node.replace("Z", "+00:00"))
        except ValueError:
            raise invalid(name, node, "It must be an ISO 8601 date.") from None
    if kind == "blob":
        try:
            return base64.b64decode(node, validate=True)
        except ValueError:
            raise invalid(name, node, "It must be base64.") from None
    # enums are not enforced: this cloud's instance types and other names are its own (the actions check them)
    return node


# ---------------------------------------------------------------- responses


def namespace(version: str) -> str:
    return f"http://ec2.amazonaws.com/doc/{version or service('ec2').api_version}/"  # the key operation() uses


# text *v* that `_esc` leaves as it is: most of an answer's (ids, addresses, names), tested in the writers'
# code itself, which calls `_esc` for the rest
_PLAIN = 'v.isprintable() and "&" not in v and "<" not in v and ">" not in v'


def _esc(text: str) -> str:
    if not text.isprintable():  # rare: newlines, tabs, and what XML 1.0 cannot carry (replaced: every answer parses)
        text = NOT_XML.sub("\ufffd", text)
    if "&" in text or "<" in text or ">" in text:
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _doc(tag: str, xmlns: str | None, inner: list[str]) -> bytes:
    attr = f' xmlns="{xmlns}"' if xmlns else ""
    inner.insert(0, f'<?xml version="1.0" encoding="UTF-8"?>\n<{tag}{attr}>')
    inner.append(f"</{tag}>")
    return "".join(inner).encode()  # one copy of a large answer, not three


def serialize(op, result: dict, version: str, request_id: str) -> bytes:
    if op.metadata["protocol"] == "query":  # STS: the members in a result wrapper, the request id after them
        out = []
        _element(out, op.output_shape.serialization["resultWrapper"], op.output_shape, result)
        out.append(f"<ResponseMetadata><RequestId>{_esc(request_id)}</RequestId></ResponseMetadata>")
        return _doc(f"{op.name}Response", op.metadata["xmlNamespace"], out)
    out = [f"<requestId>{_esc(request_id)}</requestId>"]
    if op.output_shape is not None:
        _members(out, op.output_shape, result)
    return _doc(f"{op.name}Response", namespace(version), out)


def response(tag: str, children: dict, version: str, request_id: str) -> bytes:
    """An answer for an action outside botocore's model (UploadImage): plain child elements."""
    out = [f"<requestId>{_esc(request_id)}</requestId>"]
    out += [f"<{name}>{_text(value)}</{name}>" for name, value in children.items()]
    return _doc(tag, namespace(version), out)


class Fragment(str):
    """The members of a structure, written already (`fragment`): copied into an answer as they are."""


def fragment(shape_name: str, value: dict, service_name: str = "ec2") -> Fragment:
    """The XML of *value*'s members as a structure of the model's shape *shape_name*: made once for a
    value many answers carry (an unchanged instance), by the same writer as the rest of the answer."""
    out: list[str] = []
    _members(out, _shape(service_name, shape_name), value)
    return Fragment("".join(out))


@functools.cache
def _shape(service_name: str, shape_name: str):
    return service(service_name).shape_for(shape_name)  # a new object at each call: `_writer` keys on it


def _members(out: list, shape, value: dict):
    _writer(shape)(out, value)


def _element(out: list, tag: str, shape, value):
    out.append(f"<{tag}>")
    _writer(shape)(out, value)
    out.append(f"</{tag}>")


def prepare(operations) -> None:
    """Make the writers of these operations' answers now (at start), not in a client's first request:
    botocore resolves an EC2 shape's members when they are first read (an instance's, ~50 ms)."""
    seen: set[int] = set()

    def walk(shape):
        if shape is not None and shape.type_name in ("structure", "list") and id(shape) not in seen:
            seen.add(id(shape))
            _writer(shape)
            for member in shape.members.values() if shape.type_name == "structure" else (shape.member,):
                walk(member)

    for op in operations:
        walk(op.output_shape)


# the text of a scalar member, by its type in the model: a value of the class the actions give for that
# type is written without `_text`'s checks, any other as `_text` writes it
_SCALAR = {
    "string": f"(v if {_PLAIN} else _esc(v)) if v.__class__ is str else _text(v)",
    "integer": "str(v) if v.__class__ is int else _text(v)",
    "long": "str(v) if v.__class__ is int else _text(v)",
    "boolean": '("true" if v else "false") if v.__class__ is bool else _text(v)',
    "timestamp": "_stamp(v.astimezone(UTC)) if v.__class__ is datetime else _text(v)",
}


@functools.cache
def _writer(shape):
    """The function writing a value of a structure or list *shape* into a list of strings, made from the
    model once per shape: an instance has some 80 members, most of them absent, and a loop over the
    model's members for each one cost more than the rest of a listing."""
    lines = ["def write(out, value):"]
    env = {"_esc": _esc, "_text": _text, "_stamp": _stamp, "Fragment": Fragment, "str": str, "datetime": datetime,
           "UTC": UTC}  # fmt: skip

    def scalar(tag: str, shape) -> str:
        return f"f'<{tag}>{{{_SCALAR.get(shape.type_name, '_text(v)')}}}</{tag}>'"

    def nested(name: str, sub) -> str:
        """The writer of *sub*, looked up at its first use and bound from then on (a shape may hold itself)."""

        def bind(out, value):
            env[name] = _writer(sub)
            env[name](out, value)

        env[name] = bind
        return name

    if shape.type_name == "structure":  # in the model's order: some clients (libcloud) read the first match
        lines.append("    get = value.get")
        for i, (member, mshape) in enumerate(shape.members.items()):
            tag = mshape.serialization.get("name", member)
            lines += [f"    v = get({member!r})", "    if v is not None:"]
            if mshape.type_name in ("structure", "list"):
                lines += [f"        out.append({f'<{tag}>'!r})", f"        {nested(f'w{i}', mshape)}(out, v)",
                          f"        out.append({f'</{tag}>'!r})"]  # fmt: skip
            else:
                lines.append(f"        out.append({scalar(tag, mshape)})")
    else:
        member = shape.member
        item = member.serialization.get("name", "item")
        if member.type_name == "structure":
            lines += ["    for v in value:", f"        out.append({f'<{item}>'!r})",
                      "        if v.__class__ is Fragment:", "            out.append(v)", "        else:",
                      f"            {nested('w', member)}(out, v)",
                      f"        out.append({f'</{item}>'!r})"]  # fmt: skip
        elif member.type_name == "list":
            lines += ["    for v in value:", f"        out.append({f'<{item}>'!r})",
                      f"        {nested('w', member)}(out, v)", f"        out.append({f'</{item}>'!r})"]  # fmt: skip
        else:
            lines.append(f"    out += [{scalar(item, member)} for v in value]")
    exec("\n".join(lines), env)  # noqa: S102 -- the source is made above from the model's names only
    return env["write"]


@functools.lru_cache(maxsize=4096)
def _stamp(utc: datetime) -> str:
    """A time in UTC as EC2 writes it, made once for the instance's launch and its NICs' attach times (one
    time) and for instances launched together."""
    return utc.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _text(value) -> str:
    """A scalar as EC2 writes it, escaped."""
    if isinstance(value, str):
        return _esc(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _stamp(value.astimezone(UTC))
    return _esc(str(value))


def error(code: str, message: str, request_id: str) -> bytes:
    inner = [
        f"<Errors><Error><Code>{_esc(code)}</Code><Message>{_esc(message)}</Message></Error></Errors>",
        f"<RequestID>{_esc(request_id)}</RequestID>",
    ]
    return _doc("Response", None, inner)

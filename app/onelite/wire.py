"""XML-RPC on the wire, byte for byte in oned's style (xmlrpc-c: ``<i4>``, ``<i8>``)."""

from __future__ import annotations

import xmlrpc.client

from .xmlgen import esc

_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\r\n<methodResponse>\r\n'


def _value(v) -> str:
    if isinstance(v, bool):
        return f"<value><boolean>{int(v)}</boolean></value>"
    if isinstance(v, I8):
        return f"<value><i8>{int(v)}</i8></value>"
    if isinstance(v, int):
        return f"<value><i4>{v}</i4></value>"
    if isinstance(v, float):
        return f"<value><double>{v!r}</double></value>"
    return f"<value><string>{esc(v)}</string></value>"


class I8(int):
    """An int oned sends as ``<i8>``."""


def response(values: list) -> bytes:
    """A methodResponse holding one array, as every ``one.*`` call answers."""
    body = "\r\n".join(_value(v) for v in values)
    return (
        _HEAD + "<params>\r\n<param><value><array><data>\r\n" + body + "\r\n</data></array></value></param>\r\n"
        "</params>\r\n</methodResponse>\r\n"
    ).encode("utf-8")


def fault(code: int, message: str) -> bytes:
    return (
        _HEAD + "<fault>\r\n<value><struct>\r\n"
        f"<member><name>faultCode</name>\r\n<value><i4>{code}</i4></value></member>\r\n"
        f"<member><name>faultString</name>\r\n<value><string>{esc(message)}</string></value></member>\r\n"
        "</struct></value>\r\n</fault>\r\n</methodResponse>\r\n"
    ).encode("utf-8")


def parse_call(body: bytes) -> tuple[str, tuple]:
    """(method name, params); raises ValueError on a body that is not a methodCall."""
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=True)
    except Exception as e:  # expat and xmlrpc raise many kinds
        raise ValueError(str(e)) from e
    if not method:
        raise ValueError("no methodName")
    return method, params

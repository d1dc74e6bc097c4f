"""XML-RPC on the wire, byte for byte in oned's style (xmlrpc-c: ``<i4>``, ``<i8>``), and calls read by
xmlrpc-c's rules for numbers and booleans."""

from __future__ import annotations

import re
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


INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
_C_SPACE = " \t\n\v\f\r"  # C's isspace
_STRTOL = re.compile(r"[+-]?[0-9]+")


def _strtol(text: str) -> tuple[int, str]:
    """What C's strtol reads of *text* (0 when no digits) and what it leaves."""
    number = _STRTOL.match(text)
    return (int(number.group()), text[number.end() :]) if number else (0, text)


def parse_int(text: str) -> int:
    """An ``<int>``/``<i4>`` as xmlrpc-c reads it; ValueError with its message."""
    if not text:
        raise ValueError("<int> XML element content is empty")
    if text[0] in _C_SPACE:
        raise ValueError(f"<int> content '{text}' starts with white space")
    value, tail = _strtol(text)
    if not INT64[0] <= value <= INT64[1]:  # strtol's ERANGE
        raise ValueError(
            f"<int> XML element value '{text}' represents a number beyond the range that XML-RPC allows "
            f"({INT32[0]} - {INT32[1]})"
        )
    if value < INT32[0]:
        raise ValueError(f"<int> value {value} is below the range allowed by XML-RPC (minimum is {INT32[0]})")
    if value > INT32[1]:
        raise ValueError(f"<int> value {value} is above the range allowed by XML-RPC (maximum is {INT32[1]})")
    if tail:
        raise ValueError(f"<int> value '{text}' contains non-numerical junk: '{tail}'")
    return value


def parse_i8(text: str) -> I8:
    """An ``<i8>`` as xmlrpc-c reads it. (On a bad one oned's xmlrpc-c 1.33 crashes formatting this message.)"""
    if not text:
        raise ValueError("<i8> XML element content is empty")
    if text[0] in _C_SPACE:
        raise ValueError(f"<i8> content '{text}' starts with white space")
    value, tail = _strtol(text)
    if not INT64[0] <= value <= INT64[1]:
        reason = f"Number cannot be represented in 64 bits.  Must be in the range [{INT64[0]} - {INT64[1]}]"
    elif tail:
        reason = f"contains non-numerical junk: '{tail}'"
    else:
        return I8(value)
    raise ValueError(
        f"<i8> XML element value '{text}' is invalid because it does not represent a 64 bit integer.  {reason}"
    )


def parse_boolean(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(
            f"<boolean> XML element content must be either '0' or '1' according to XML-RPC.  This one has '{text}'"
        )
    return text == "1"


def _end(parse):
    def end(self, data):
        self.append(parse(data))
        self._value = 0

    return end


def _unknown(tag: str):
    def end(self, data):
        raise ValueError(f"Unknown value type -- XML element is named <{tag}>")

    return end


class _Reader(xmlrpc.client.Unmarshaller):
    """xmlrpc.client's reader with xmlrpc-c's value types: 32-bit ints, ``<i8>`` kept apart (an int
    parameter refuses it), strict booleans, and none of Python's own (``<biginteger>`` of any size...)."""

    dispatch = {
        **xmlrpc.client.Unmarshaller.dispatch,
        **{tag: _end(parse_int) for tag in ("int", "i4", "i1", "i2")},
        "i8": _end(parse_i8),
        "boolean": _end(parse_boolean),
        **{tag: _unknown(tag) for tag in ("biginteger", "float", "bigdecimal")},
    }


def parse_call(body: bytes) -> tuple[str, tuple]:
    """(method name, params); raises ValueError on a body that is not a methodCall xmlrpc-c reads."""
    reader = _Reader(use_builtin_types=True)
    parser = xmlrpc.client.ExpatParser(reader)
    try:
        parser.feed(body)
        parser.close()
        params, method = reader.close(), reader.getmethodname()
    except Exception as e:  # expat and xmlrpc raise many kinds
        raise ValueError(str(e)) from e
    if not method:
        raise ValueError("no methodName")
    return method, params

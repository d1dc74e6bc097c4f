"""The table of ``one.*`` methods and their parameter signatures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import Fault
from .wire import I8


@dataclass(frozen=True)
class Method:
    name: str
    func: Callable
    types: tuple  # after the session string
    required: int


METHODS: dict[str, Method] = {}

_TYPE_NAMES = {int: "integer", str: "string", bool: "boolean", list: "array"}


def method(name: str, *types, required: int | None = None):
    """Register a handler ``func(call, *params)``; trailing parameters past *required* are optional."""

    def wrap(func):
        METHODS[name] = Method(name, func, types, len(types) if required is None else required)
        return func

    return wrap


def check_params(m: Method, params: tuple) -> list[Any]:
    """Check XML-RPC parameter types as xmlrpc-c does (fault -501 on mismatch). oned reads the parameters
    its method has, so more are ignored."""
    if len(params) < m.required:
        raise Fault(-501, "Not enough parameters")
    out = []
    for want, got in zip(m.types, params):
        # xmlrpc-c tells <int>, <i8> and <boolean> apart: an int parameter takes only an <int>
        ok = isinstance(got, want) and not (want is int and isinstance(got, (bool, I8)))
        if want is list and isinstance(got, tuple):
            ok = True
        if not ok:
            raise Fault(-501, f"Parameter that is supposed to be {_TYPE_NAMES[want]} is not")
        out.append(got)
    return out

"""oned's error answers: ``[false, "[method] message", code, oid, -1]`` and XML-RPC faults."""

from one.codes import ACTION, ALLOCATE, AUTHENTICATION, AUTHORIZATION, INTERNAL, LOCKED, NO_EXISTS, XML_RPC_API

# oned's error codes are one.codes', named here too for onelite's modules
__all__ = [
    "ACTION",
    "ALLOCATE",
    "AUTH_FAILED",
    "AUTHENTICATION",
    "AUTHORIZATION",
    "INTERNAL",
    "LOCKED",
    "NO_EXISTS",
    "XML_RPC_API",
    "Fault",
    "OneError",
    "not_authorized",
    "not_found",
]


class OneError(Exception):
    """A failed call; the server prefixes the method name as oned does."""

    def __init__(self, code: int, message: str, oid: int = -1):
        super().__init__(message)
        self.code = code
        self.message = message
        self.oid = oid


class Fault(Exception):
    """A genuine XML-RPC fault (-501 type mismatch, -506 unknown method)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(what: str, oid: int) -> OneError:
    return OneError(NO_EXISTS, f"Error getting {what} [{oid}].", oid)


def not_authorized(uid: int, op: str, kind: str, oid: int | None = None) -> OneError:
    target = f"{kind} [{oid}]" if oid is not None else kind
    return OneError(AUTHORIZATION, f"User [{uid}] : Not authorized to perform {op} {target}.")


AUTH_FAILED = "User couldn't be authenticated, aborting call."

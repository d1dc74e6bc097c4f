"""oned's error answers: ``[false, "[method] message", code, oid, -1]`` and XML-RPC faults."""

AUTHENTICATION = 256
AUTHORIZATION = 512
NO_EXISTS = 1024
ACTION = 2048
XML_RPC_API = 4096
INTERNAL = 8192
ALLOCATE = 16384
LOCKED = 32768


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

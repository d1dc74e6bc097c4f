"""EC2 errors: a code, a message and the HTTP status the client gets, and what the server log gets."""

from __future__ import annotations


class EC2Error(Exception):
    def __init__(self, code: str, message: str, status: int = 400, detail: str = "", *, auth_reason: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail  # what really happened, for the server log only: the client gets the message
        # why authentication refused the request, for the metrics (one of metrics.AUTH_REASONS); never the client's
        self.auth_reason = auth_reason


def missing(name: str) -> EC2Error:
    return EC2Error("MissingParameter", f"The request must contain the parameter {name}")


def invalid(name: str, value, reason: str = "") -> EC2Error:
    text = f"Value ({value}) for parameter {name} is invalid."
    return EC2Error("InvalidParameterValue", f"{text} {reason}".strip())


def auth_failure(detail: str = "", reason: str = "") -> EC2Error:
    # one answer for an unknown access key, a wrong signature and a disabled user: nothing tells which
    return EC2Error(
        "AuthFailure", "AWS was not able to validate the provided access credentials", 401, detail, auth_reason=reason
    )


def dry_run_succeeded() -> EC2Error:
    return EC2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.", 412)


def unauthorized(what: str = "", detail: str = "") -> EC2Error:
    text = f": {what}" if what else ""
    return EC2Error("UnauthorizedOperation", f"You are not authorized to perform this operation{text}.", 403, detail)


def unavailable(detail: str = "") -> EC2Error:
    return EC2Error("Unavailable", "The cloud is not reachable right now; try again shortly.", 503, detail)


def internal_error(detail: str) -> EC2Error:
    return EC2Error("InternalError", "An internal error has occurred.", 500, detail)

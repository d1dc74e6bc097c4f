"""EC2's MaxResults/NextToken for the listings that page: the bounds of MaxResults, and a NextToken
that holds the offset of the next page."""

from __future__ import annotations

import base64
import binascii

from ..errors import EC2Error, invalid

MIN_RESULTS, MAX_RESULTS = 5, 1000  # EC2's bounds of MaxResults (DescribeInstances, -Tags, -SecurityGroups)


def max_results(p: dict, low: int = MIN_RESULTS, high: int = MAX_RESULTS) -> int | None:
    """The request's MaxResults, None when it has none."""
    limit = p.get("MaxResults")
    if limit is not None and not low <= limit <= high:
        raise invalid("MaxResults", limit, f"It must be between {low} and {high}.")
    return limit


def token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def offset(token: str | None) -> int:
    """The offset a NextToken holds; 0 without one."""
    if not token:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "o" and int(offset) >= 0:
            return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise invalid_token(token)


def invalid_token(token: str) -> EC2Error:
    return EC2Error("InvalidPaginationToken", f"The pagination token {token} is invalid.")

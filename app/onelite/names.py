"""The names oned accepts: PoolObjectSQL::name_is_valid for every object, HostPool's HOSTNAME rules for hosts.
Pure functions: the reason oned gives for refusing a name, or None."""

from __future__ import annotations

FORBIDDEN = "&|:\\\";/'#{}$<>\t\n\v\f\r"  # PoolObjectSQL::INVALID_NAME_CHARS
USER_FORBIDDEN = " :\t\n\v\f\r"  # User::INVALID_NAME_CHARS, for user names on top of those
MAX_BYTES = 128  # oned counts the bytes of the UTF-8 text


def name_error(name: str, extra: str = "") -> str | None:
    if not name:
        return "Invalid NAME, it cannot be empty"
    bad = next((c for c in name if c in FORBIDDEN or c in extra), None)
    if bad is not None:
        return f"Invalid NAME, char '{bad}' is not allowed"
    if len(name.encode()) > MAX_BYTES:
        return f"Invalid NAME, max length is {MAX_BYTES} chars"
    return None


def hostname_error(name: str) -> str | None:
    """oned checks a host's name as a HOSTNAME (2 to 63 of letters, digits, '-', '.', '_'), then as a name."""
    if not 2 <= len(name.encode()) <= 63:
        return "Invalid HOSTNAME, HOSTNAME length should be greater than 1, but smaller than 64 characters"
    if name[0] in "-._":
        return f"Invalid HOSTNAME, first character can't be '{name[0]}'"
    bad = next((c for c in name if not (c.isascii() and c.isalnum()) and c not in "-._"), None)
    if bad is not None:
        return f"Invalid HOSTNAME, '{bad}' is invalid character for a HOSTNAME"
    if name[-1] in "-._":
        return f"Invalid HOSTNAME, last character can't be '{name[-1]}'"
    return name_error(name)

"""A streaming multipart/form-data reader for UploadImage: the ``file`` part goes to a file in
tmpdir chunk by chunk (memory does not grow with the upload), every other field stays in memory.
On any failure — too large, malformed, the client gone — the partial file is removed."""

from __future__ import annotations

import os
import re
import tempfile

from .errors import EC2Error

CHUNK = 1024 * 1024
MAX_HEADER = 16 * 1024
MAX_FIELDS = 256 * 1024  # all non-file fields together

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.I)
_NAME = re.compile(rb'\bname="([^"]*)"', re.I)


class TooLarge(EC2Error):
    def __init__(self, limit: int):
        super().__init__(
            "RequestEntityTooLarge", f"The upload is larger than this server accepts ({limit} bytes).", 413
        )


def boundary_of(content_type: str) -> bytes:
    m = _BOUNDARY.search(content_type or "")
    if not m:
        raise EC2Error("InvalidParameterValue", "multipart/form-data without a boundary")
    return m.group(1).encode()


def read(stream, content_type: str, length: int, tmpdir: str, max_file: int):
    """([(name, value)], staged file path or None) from a multipart body of *length* bytes."""
    delimiter = b"\r\n--" + boundary_of(content_type)
    remaining = length
    fields: list[tuple[str, str]] = []
    field_bytes = 0
    staged = None
    out = None
    written = 0

    def more() -> bytes:
        nonlocal remaining
        if remaining <= 0:
            return b""
        data = stream.read(min(CHUNK, remaining))
        if not data:
            raise EC2Error("IncompleteRequest", "The client closed the connection before the upload was complete.")
        remaining -= len(data)
        return data

    buf = b"\r\n"  # so that the first boundary looks like every other one
    try:
        # preamble
        while (i := buf.find(delimiter)) < 0:
            chunk = more()
            if not chunk:
                raise EC2Error("InvalidParameterValue", "malformed multipart body: no boundary")
            buf = buf[-len(delimiter) :] + chunk
        buf = buf[i + len(delimiter) :]
        while True:
            while len(buf) < 2:
                chunk = more()
                if not chunk:
                    raise EC2Error("InvalidParameterValue", "malformed multipart body: truncated")
                buf += chunk
            if buf.startswith(b"--"):
                return fields, staged
            # part headers
            while (h := buf.find(b"\r\n\r\n")) < 0:
                if len(buf) > MAX_HEADER:
                    raise EC2Error("InvalidParameterValue", "malformed multipart body: part headers too long")
                chunk = more()
                if not chunk:
                    raise EC2Error("InvalidParameterValue", "malformed multipart body: truncated headers")
                buf += chunk
            headers, buf = buf[:h], buf[h + 4 :]
            m = _NAME.search(headers)
            name = m.group(1).decode("utf-8", "replace") if m else ""
            is_file = name == "file"
            if is_file:
                if staged is not None:
                    raise EC2Error("InvalidParameterCombination", "Only one file may be uploaded per request.")
                fd, staged = tempfile.mkstemp(prefix="econe-upload-", dir=tmpdir)
                out = os.fdopen(fd, "wb")
            value = bytearray()
            # part body, up to the next delimiter
            while True:
                i = buf.find(delimiter)
                data = buf if i < 0 else buf[:i]
                if i < 0:  # keep what could be the start of a delimiter
                    data, buf = (
                        buf[: max(0, len(buf) - len(delimiter) + 1)],
                        buf[max(0, len(buf) - len(delimiter) + 1) :],
                    )
                if is_file:
                    written += len(data)
                    if written > max_file:
                        raise TooLarge(max_file)
                    out.write(data)
                else:
                    field_bytes += len(data)
                    if field_bytes > MAX_FIELDS:
                        raise EC2Error("InvalidParameterValue", "The form fields of the upload are too large.")
                    value += data
                if i >= 0:
                    buf = buf[i + len(delimiter) :]
                    break
                chunk = more()
                if not chunk:
                    raise EC2Error("InvalidParameterValue", "malformed multipart body: truncated part")
                buf += chunk
            if is_file:
                out.close()
                out = None
            else:
                fields.append((name, value.decode("utf-8", "replace")))
    except BaseException:
        if out is not None:
            out.close()
        if staged and os.path.exists(staged):
            os.unlink(staged)
        raise

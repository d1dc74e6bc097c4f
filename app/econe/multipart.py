"""The multipart/form-data body of UploadImage, read as it arrives with the ``multipart`` library's
push parser (linear in the body, a bounded number of parts and headers).

The signed fields come first (econe-upload sends them so, as the original did) and are read like a
form: at most ``max_form`` bytes. When the ``file`` part begins, *admit(fields)* decides — signature,
action — before a byte of it is written; then the file goes to tmpdir chunk by chunk, and nothing may
follow it (nothing after it was admitted). On any failure — refused, too large, malformed, the client
gone — the partial file is removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

import multipart

from .errors import EC2Error

CHUNK = 64 * 1024
MAX_PARTS = 256  # an upload is about 8 fields and the file
MAX_HEADERS, MAX_HEADER = 8, 4096  # per part: RFC 7578 needs 3 at most


class TooLarge(EC2Error):
    def __init__(self, limit: int, what: str = "upload"):
        super().__init__(
            "RequestEntityTooLarge", f"The {what} is larger than this server accepts ({limit} bytes).", 413
        )


def boundary_of(content_type: str) -> str:
    """The boundary as sent: case-sensitive (RFC 2046), so from the raw header, not a lower-cased one."""
    boundary = multipart.parse_options_header(content_type or "")[1].get("boundary")
    if not boundary:
        raise EC2Error("InvalidRequest", "multipart/form-data without a boundary")
    return boundary


def read(
    stream,
    content_type: str,
    length: int,
    tmpdir: str,
    max_file: int,
    max_form: int,
    admit: Callable[[list[tuple[str, str]]], None],
) -> tuple[list[tuple[str, str]], str | None]:
    """([(name, value)], staged file path or None) from a multipart body of *length* bytes."""
    upload = _Upload(tmpdir, max_file)
    try:
        fields = _parse(stream, boundary_of(content_type), length, max_form, admit, upload)
        return fields, upload.path
    except BaseException:
        upload.discard()
        raise


class _Upload:
    """The file part, staged in tmpdir."""

    def __init__(self, tmpdir: str, max_file: int):
        self.tmpdir, self.max_file = tmpdir, max_file
        self.path: str | None = None
        self.out = None
        self.written = 0

    def open(self):
        fd, self.path = tempfile.mkstemp(prefix="econe-upload-", dir=self.tmpdir)
        self.out = os.fdopen(fd, "wb")

    def write(self, data: bytes):
        self.written += len(data)
        if self.written > self.max_file:
            raise TooLarge(self.max_file)
        self.out.write(data)

    def close(self):
        self.out.close()
        self.out = None

    def discard(self):
        if self.out is not None:
            self.out.close()
        if self.path and os.path.exists(self.path):
            os.unlink(self.path)


def _parse(stream, boundary: str, length: int, max_form: int, admit, upload: _Upload) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    name, value = "", bytearray()
    before_file = 0  # bytes read before the file began: unauthenticated, held to a form's limit
    remaining = length
    try:
        parser = multipart.PushMultipartParser(
            boundary, length, max_header_size=MAX_HEADER, max_header_count=MAX_HEADERS, max_segment_count=MAX_PARTS
        )
        while remaining:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                raise EC2Error("IncompleteRequest", "The client closed the connection before the upload was complete.")
            remaining -= len(chunk)
            for event in parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):  # a part begins: its headers are read
                    if upload.path is not None:
                        raise EC2Error("InvalidRequest", "The file must be the last part of an upload.")
                    if event.name == "file":
                        admit(fields)  # raises if the request may not upload: nothing is written then
                        upload.open()
                    name, value = event.name, bytearray()
                elif event is None:  # the part ends
                    if upload.out is not None:
                        upload.close()
                    else:
                        fields.append((name, value.decode("utf-8", "replace")))
                elif upload.out is not None:
                    upload.write(event)
                else:
                    value += event
            if upload.path is None:
                before_file += len(chunk)
                if before_file > max_form:
                    raise TooLarge(max_form, "multipart body before its file part")
        parser.close()  # a body that ends before its closing boundary is refused
    except multipart.ParserLimitReached as e:
        raise EC2Error(
            "InvalidRequest",
            f"The multipart body goes beyond a limit ({e}): at most {MAX_PARTS} parts, "
            f"each with at most {MAX_HEADERS} headers of {MAX_HEADER} bytes.",
        ) from None
    except multipart.MultipartError as e:
        raise EC2Error("InvalidRequest", f"malformed multipart body: {e}") from None
    return fields

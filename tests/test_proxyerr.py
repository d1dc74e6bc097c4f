"""The TLS proxy's own error answers (roles/lighttpd_ssl_proxy/files/ec2-errors, which lighttpd serves
through server.errorfile-prefix): one per status lighttpd makes, each the EC2 error document econe
itself would write, with the code econe's edge gives that status. molecule/default/tests/test_proxy.py
shows lighttpd serving them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from econe import model
from econe.edge import _CODES

from .conftest import ROOT

ERRORS = ROOT / "roles" / "lighttpd_ssl_proxy" / "files" / "ec2-errors"
# what lighttpd 1.4.69 answers itself, proxying everything (its src/request.c, connections.c,
# response.c, mod_proxy.c, gw_backend.c): a client idle too long is closed without an answer
STATUSES = {400, 405, 411, 413, 431, 500, 501, 502, 503, 504, 505}


def _expected_code(status: int) -> str:
    if status in (502, 503, 504):  # econe down or not answering: Unavailable, which EC2 clients retry
        return "Unavailable"
    if status == 505:  # a request line of another HTTP: the client's error, as at econe's edge
        return "InvalidRequest"
    return _CODES.get(status, "InvalidRequest")


def test_one_file_per_status_lighttpd_makes():
    assert sorted(path.name for path in ERRORS.iterdir()) == sorted(f"{status}.html" for status in STATUSES)


def test_each_is_the_ec2_error_document_econe_would_write():
    for status in STATUSES:
        document = (ERRORS / f"{status}.html").read_bytes()
        root = ET.fromstring(document)
        code, message = root.findtext("Errors/Error/Code"), root.findtext("Errors/Error/Message")
        assert code == _expected_code(status) and message, status
        assert document == model.error(code, message, "lighttpd"), status  # a static file: no fresh id

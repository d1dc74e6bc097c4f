"""The web layer behind the edge: ``GET /`` and ``POST /`` (form-encoded, or multipart for UploadImage) in, EC2 XML out.

No business logic here: a request id, body limits, parameters, signature check, dispatch on
``Action``, and every failure rendered as an EC2 error document with its HTTP status.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlparse

import bottle

from one import template as tpl

from . import auth, model, multipart, x509
from .actions import ACTIONS, Context, check_limits, check_stored, check_supported
from .config import Config
from .edge import client_of, content_length
from .errors import EC2Error, auth_failure, dry_run_succeeded
from .gateway import Gateway
from .metrics import UNKNOWN, Metrics

METHODS = ("GET", "HEAD", "POST")  # HEAD: GET's answer without its body (Bottle drops it)
MAX_FORM = 1024 * 1024  # bytes of a form-encoded request
_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
log = logging.getLogger("econe")


class RequestLog(logging.LoggerAdapter):
    def process(self, msg, kwargs):
        kwargs.setdefault("extra", {})["request_id"] = self.extra["request_id"]
        return msg, kwargs


def make_app(config: Config, gateway: Gateway, metrics: Metrics) -> bottle.Bottle:
    """The application; *metrics*: the registry the metrics port serves, which *gateway* times oned's calls in too."""
    app = bottle.Bottle()
    app.config["catchall"] = False  # what escapes handle() reaches Cheroot, whose 500 the edge words as EC2's

    @app.route("/", method="ANY")  # other methods get an EC2 error too, not Bottle's HTML page
    @app.route("/<path:path>", method="ANY")
    def endpoint(path: str = ""):
        return handle(bottle.request, bottle.response, config, gateway, metrics)

    return app


def handle(request, response, config: Config, gateway: Gateway, metrics: Metrics) -> bytes:
    request_id = str(uuid.uuid4())
    rlog = RequestLog(log, {"request_id": request_id})
    # who sent it, as a trusted proxy forwards it (never Bottle's remote_route: X-Forwarded-For from anyone)
    environ = request.environ
    client = client_of(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_FORWARDED"), config.trusted_proxies)
    started = time.perf_counter()
    action, user, status = "-", "-", 200
    version = ""
    staged = None
    uploading = False  # an upload admitted: counted in econe_uploads_in_flight until its answer
    call = None  # (botocore operation or None, Action, inputs) once admitted
    try:
        if request.method not in METHODS:
            response.set_header("Allow", ", ".join(METHODS))
            raise EC2Error("InvalidRequest", "The EC2 Query API takes GET and POST requests.", 405)
        query = parse_qsl(request.query_string, keep_blank_values=True)

        def admit(form: list, body_hash: str | None, with_file: bool) -> None:
            """Everything decided before any work: parameters, action, signature. An upload is
            admitted when its file part begins, before a byte of the file is written."""
            nonlocal action, user, version, call, uploading
            params = query + form
            _check_characters(params)
            version = _param(params, "Version") or ""
            if version and not _VERSION.fullmatch(version):  # it is written into the answer's xmlns
                version = ""
                raise EC2Error("InvalidParameterValue", "Version must be an API version like 2016-11-15.")
            action = _param(params, "Action") or "-"
            if action == "-":
                raise EC2Error("MissingParameter", "The request must contain the parameter Action")
            act = ACTIONS.get(action)
            if act is None:
                raise EC2Error("InvalidAction", f"The action {action} is not valid for this web service.")
            if with_file and not act.takes_file:
                raise EC2Error("InvalidParameter", f"The parameter file is not supported by {action} on this cloud.")
            if act.takes_file and not with_file:
                raise EC2Error("MissingParameter", "The request must contain the file to upload (multipart field file)")
            headers = _headers(environ)
            signed = auth.Request(
                method=request.method,
                hosts=_hosts(headers, config),
                paths=_paths(request, config),
                query=query,
                form=form,
                headers=headers,
                body_sha256=body_hash,
                service=act.service,
            )
            try:
                user = _authenticate(signed, client, config, gateway)
            except EC2Error as e:
                if e.status < 500:  # not oned unreachable while econe read the users
                    metrics.auth_failures.labels(auth.reason_of(e)).inc()
                raise
            op, inputs = _inputs(action, act, params)
            call = op, act, inputs
            if with_file:
                uploading = True
                metrics.uploads_in_flight.inc()

        try:
            form, staged, body_hash = _read_body(request, config, lambda fields: admit(fields, None, with_file=True))
        except Exception:
            # answered before the whole body was read: the rest is not read, the connection is closed
            response.set_header("Connection", "close")
            raise
        if call is None:
            admit(form, body_hash, with_file=False)
        op, act, inputs = call
        if act.takes_file:
            inputs["File"] = staged
        dry_run = inputs.get("DryRun", False)  # as the model read it (the last of repeated ones)
        if dry_run and not act.changes:
            raise dry_run_succeeded()
        ctx = Context(user, gateway.as_user(user, dry_run), config, request_id, rlog)
        try:
            result = act.func(ctx, inputs)
        finally:
            ctx.session.finish()  # what the request saw of its VMs' EC2 attributes, for other servers
        if dry_run:  # a changing action decides in its session: returning instead is a bug
            raise RuntimeError(f"{action} returned from a dry run")
        if op is None:
            body = model.response(f"{action}Response", result, version, request_id)
        else:
            body = model.serialize(op, result, version, request_id)
        response.content_type = "text/xml; charset=UTF-8"
        return body
    except EC2Error as e:
        status = e.status
        if status >= 500 or e.detail:  # the client has EC2's words; the log has what happened
            rlog.warning("%s: %s", e.code, e.detail or e.message)
        response.status = status
        response.content_type = "text/xml; charset=UTF-8"
        return model.error(e.code, e.message, request_id)
    except Exception:
        status = 500
        rlog.exception("internal error in %s", action)
        response.status = 500
        response.content_type = "text/xml; charset=UTF-8"
        return model.error("InternalError", f"An internal error occurred (request {request_id}).", request_id)
    finally:
        if staged and os.path.exists(staged):  # an upload that did not reach oned leaves nothing behind
            os.unlink(staged)
        if uploading:
            metrics.uploads_in_flight.dec()
        seconds = time.perf_counter() - started
        metrics.request(action if action in ACTIONS else UNKNOWN, status, seconds)  # no label a client makes up
        line = {
            "method": request.method,
            "path": request.path,
            "client": client.address,
            "user": user,
            "action": action,
            "status": status,
            "ms": round(seconds * 1000, 1),
        }  # the text says it; a JSON log line also has them as its fields
        rlog.info(
            "%(method)s %(path)s client=%(client)s user=%(user)s action=%(action)s status=%(status)s ms=%(ms).1f",
            line,
            extra={"fields": line},
        )


def _authenticate(req: auth.Request, client, config: Config, gateway: Gateway) -> str:
    """The user a request acts for: the one who signed it, or the one whose client certificate a
    trusted proxy verified. With both methods on, a signature decides; a request without one is x509's
    when the proxy forwarded a DN."""
    if "ec2" in config.auth and (
        auth.signature_version(req) is not None or "x509" not in config.auth or client.dn is None
    ):
        return auth.verify(req, gateway.account, datetime.now(UTC))
    if client.dn is not None and config.proxy_secret:
        sent = req.headers.get("x-econe-proxy-secret", "")
        if not hmac.compare_digest(sent.encode(), config.proxy_secret.encode()):
            raise auth_failure("a client certificate DN without the proxy secret (X-Econe-Proxy-Secret)", "x509")
    return x509.user_of(client.dn, gateway.x509_users)


def _inputs(action: str, act, params: list[tuple[str, str]]) -> tuple:
    """(botocore operation, its parsed input) for *action*; (None, {}) for OpenNebula's own actions
    (UploadImage), which botocore does not model and which take no parameter but the protocol's."""
    op = model.operation(action, act.service)
    if op is None:
        for key, _ in params:
            if key not in model.COMMON:
                raise EC2Error("InvalidParameter", f"The parameter {key} is not supported by {action} on this cloud.")
        return None, {}
    inputs = model.parse(op, params, optional=act.optional)
    check_supported(action, act, inputs)
    check_limits(inputs)
    check_stored(op, act, params)
    return op, inputs


def _check_characters(params) -> None:
    """Every value may end up in an answer (an id, a tag, a token): one XML 1.0 cannot carry is refused."""
    for key, value in params:
        in_key = tpl.NOT_XML.search(key)
        bad = in_key or tpl.NOT_XML.search(value)
        if bad:
            name = repr(key) if in_key else key  # a name that cannot be written is shown escaped
            char = f"U+{ord(bad.group()):04X}"
            raise EC2Error("InvalidParameterValue", f"The parameter {name} contains {char}, which XML cannot carry.")


def _param(params, name: str) -> str | None:
    for k, v in params:
        if k == name:
            return v
    return None


def _read_body(request, config: Config, admit_file) -> tuple[list, str | None, str | None]:
    if request.method != "POST":
        return [], None, auth.EMPTY_SHA256
    ctype = request.content_type or ""
    length = content_length(request.environ.get("CONTENT_LENGTH") or "0")
    if length is None:  # econe's edge refuses it first; this is for any other WSGI server
        raise EC2Error("InvalidRequest", "Content-Length must be a number of bytes.")
    stream = request.environ["wsgi.input"]
    if ctype.startswith("multipart/form-data"):
        if length > config.max_upload_size + MAX_FORM:
            raise multipart.TooLarge(config.max_upload_size)
        raw_type = request.environ.get("CONTENT_TYPE", "")  # Bottle's content_type is lower-cased: not the boundary
        fields, staged = multipart.read(
            stream, raw_type, length, config.tmpdir, config.max_upload_size, MAX_FORM, admit_file
        )
        return fields, staged, None  # not hashed: only SigV2, which signs each field, may carry it
    if length > MAX_FORM:
        raise EC2Error("RequestEntityTooLarge", f"The request body is larger than {MAX_FORM} bytes.", 413)
    raw = stream.read(length) if length else b""
    if len(raw) < length:
        raise EC2Error("IncompleteRequest", "The client closed the connection before the request was complete.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise EC2Error("InvalidParameterValue", "The request body is not UTF-8.") from None
    return parse_qsl(text, keep_blank_values=True), None, hashlib.sha256(raw).hexdigest()


def _headers(environ) -> dict[str, str]:
    """The request's headers, names in lower case, values as UTF-8 text (what a client signs). Bottle's
    header dict raises on a value that is not UTF-8: here its bytes become U+FFFD, and a signature over
    it fails."""
    names = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}
    return {
        names.get(key) or key[5:].replace("_", "-").lower(): value.encode("latin-1").decode("utf-8", "replace")
        for key, value in environ.items()
        if key.startswith("HTTP_") or key in names
    }


def _hosts(headers: dict[str, str], config: Config) -> list[str]:
    """Host names the client may have signed for: its Host header, and the public proxy URL's."""
    hosts = []
    header = headers.get("host")
    if header:
        hosts += [header, header.rsplit(":", 1)[0]] if ":" in header and not header.endswith("]") else [header]
    if config.ssl_server:
        url = urlparse(config.ssl_server)
        default = 443 if url.scheme == "https" else 80
        hosts += [url.netloc, url.hostname or ""] if url.port in (None, default) else [url.netloc]
    return list(dict.fromkeys(h for h in hosts if h))


def _paths(request, config: Config) -> list[str]:
    paths = [request.environ.get("PATH_INFO") or "/"]
    if config.ssl_server and urlparse(config.ssl_server).path not in ("", "/"):
        paths.append(urlparse(config.ssl_server).path)
    return list(dict.fromkeys(paths))

"""econe.conf: the original YAML keys, Ruby-symbol style (``:port:``) or plain (``port:``).

Every mistake is refused at start with the file, the key as written and the reason, e.g.
``econe.conf: :port: must be an integer 1-65535, got 'abc'``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

import yaml

DEFAULT_PATH = "/etc/one/econe.conf"
DEFAULT_AUTH_FILE = "/var/lib/one/.one/ec2_auth"


class ConfigError(Exception):
    pass


@dataclass
class InstanceType:
    name: str
    template: str  # path of the Jinja2 file template


@dataclass
class Config:
    one_xmlrpc: str = "http://localhost:2633/RPC2"
    host: str = "127.0.0.1"
    port: int = 4567
    metrics_port: int | None = None  # the Prometheus metrics and /health listener (on host); None: none
    ssl_server: str | None = None
    auth: tuple = ("ec2",)  # how clients authenticate: EC2 signatures, client certificates (x509), or both
    core_auth: str = "cipher"
    datastore_id: int = 1
    tmpdir: str = "/var/tmp"
    describe_with_terminated_instances: bool = True
    use_file_templates: bool = False
    instance_types: dict[str, InstanceType] = field(default_factory=dict)
    template_dir: str = "/etc/one/ec2query_templates"
    log_file: str = "/var/log/one/econe-server.log"
    pid_file: str = "/var/run/one/econe-server.pid"
    debug_level: int = 2
    log_format: str = "text"  # or json: one JSON object per line
    max_upload_size: int = 10 * 1024**3
    # the proxies whose Forwarded header names the client (addresses or networks)
    trusted_proxies: tuple = field(default_factory=lambda: _networks(["127.0.0.1", "::1"]))
    # the file of the secret the proxy adds (X-Econe-Proxy-Secret): with it, only a request that carries it
    # may name an x509 user, not any process on a trusted proxy's address; proxy_secret holds its text
    proxy_secret_file: str | None = None
    proxy_secret: str = field(default="", repr=False)
    threads: int = 16
    request_timeout: int = 10  # seconds a client has to send a request, and a body's window of MIN_RATE (edge.py)
    max_count: int = 100  # instances one RunInstances may make
    # seconds a VM's EC2 attributes (tags, instance type...) are used before they are read again:
    # how long a change made through another econe server can take to show in this one's listings
    cache_ttl: int = 30
    # the network elastic IPs are reserved from (AllocateAddress); None: no elastic IPs
    elasticips_vnet_id: int | None = None
    ebs_fstype: str | None = None  # the FS a new volume's DATABLOCK gets (CreateVolume); none: the datastore's
    # server account for acting as users (file named by ONE_CIPHER_AUTH)
    server_user: str = ""
    server_password: str = field(default="", repr=False)
    source: str = ""


# key -> (checker, description); the original keys, plus pid_file, trusted_proxies, proxy_secret_file,
# threads, max_count, request_timeout, cache_ttl, metrics_port and log_format
def _url(v):
    return isinstance(v, str) and urlparse(v).scheme in ("http", "https") and bool(urlparse(v).netloc)


def _int_range(lo, hi):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}

KEYS = {
    "one_xmlrpc": (_url, "must be an http(s) URL of oned's XML-RPC endpoint"),
    "host": (lambda v: isinstance(v, str) and v != "", "must be a host name or address"),
    "port": (_int_range(1, 65535), "must be an integer 1-65535"),
    "metrics_port": (lambda v: v is None or _int_range(1, 65535)(v), "must be an integer 1-65535"),
    "ssl_server": (lambda v: v is None or _url(v), "must be the proxy's public URL, like https://host:8443"),
    "auth": (lambda v: _methods(v) is not None, "must be ec2, x509 or a list of both, like [ec2, x509]"),
    "core_auth": (lambda v: v in ("cipher", "x509"), "must be cipher or x509"),
    "datastore_id": (_int_range(0, 2**31 - 1), "must be a datastore id (integer >= 0)"),
    "tmpdir": (lambda v: isinstance(v, str) and v.startswith("/"), "must be an absolute directory path"),
    "describe_with_terminated_instances": (lambda v: isinstance(v, bool), "must be true or false"),
    "use_file_templates": (lambda v: isinstance(v, bool), "must be true or false"),
    "instance_types": (
        lambda v: v is None or isinstance(v, dict),
        "must be a mapping of type name to {template: file}",
    ),
    "template_dir": (lambda v: isinstance(v, str) and v.startswith("/"), "must be an absolute directory path"),
    "log_file": (lambda v: isinstance(v, str) and v != "", "must be a file path"),
    "pid_file": (lambda v: isinstance(v, str) and v != "", "must be a file path"),
    "debug_level": (_int_range(0, 3), "must be an integer 0 (errors) to 3 (debug)"),
    "log_format": (lambda v: v in ("text", "json"), "must be text or json"),
    "max_upload_size": (lambda v: _size(v) is not None, "must be a size in bytes, like 10737418240 or 10G"),
    "trusted_proxies": (
        lambda v: _networks(v) is not None,
        "must be a list of proxy addresses or networks, like 127.0.0.1 or 10.0.0.0/8",
    ),
    "proxy_secret_file": (
        lambda v: v is None or isinstance(v, str) and v.startswith("/"),
        "must be an absolute file path",
    ),
    "threads": (_int_range(1, 512), "must be an integer 1-512"),
    "request_timeout": (_int_range(1, 3600), "must be a number of seconds 1-3600"),
    "max_count": (_int_range(1, 10000), "must be an integer 1-10000"),
    "cache_ttl": (_int_range(0, 3600), "must be a number of seconds 0-3600"),
    "elasticips_vnet_id": (lambda v: v is None or _int_range(0, 2**31 - 1)(v), "must be a vnet id (integer >= 0)"),
    "ebs_fstype": (lambda v: v is None or isinstance(v, str), "must be a filesystem name"),  # CreateVolume's FS
    # accepted for compatibility with the original's files; not used by this version
    "associate_script": (lambda v: v is None or isinstance(v, (str, bool)), "must be a path or false"),
    "disassociate_script": (lambda v: v is None or isinstance(v, (str, bool)), "must be a path or false"),
}
ALIASES = {"server": "host"}


def _size(v) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool):
        return v if v > 0 else None
    if isinstance(v, str) and v.strip():
        text = v.strip().upper().removesuffix("B")
        unit = text[-1:] if text[-1:] in _SIZE_UNITS else ""
        number = text[: len(text) - len(unit)]
        if number.isdigit() and int(number) > 0:
            return int(number) * _SIZE_UNITS[unit]
    return None


def _methods(v) -> tuple | None:
    """The authentication methods of ``:auth:``: one, or a list of different ones."""
    methods = [v] if isinstance(v, str) else v
    if not isinstance(methods, list) or not methods or len(set(map(str, methods))) < len(methods):
        return None
    return tuple(methods) if all(m in ("ec2", "x509") for m in methods) else None


def _networks(v) -> tuple | None:
    """Addresses and CIDR networks (no host bits set), or None."""
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        return None
    try:
        return tuple(ipaddress.ip_network(x.strip()) for x in v)
    except ValueError:
        return None


def _plain(key) -> str:
    """``:port`` (how YAML reads ``:port:``) and ``port`` are the same key."""
    return str(key).lstrip(":")


def load(path: str, environ=os.environ) -> Config:
    name = os.path.basename(path) if path else "econe.conf"
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: must be a mapping of keys to values")
    cfg = Config(source=path)
    seen: dict[str, str] = {}
    for written, value in data.items():
        key = ALIASES.get(_plain(written), _plain(written))
        label = str(written) if str(written).endswith(":") else f"{written}:"
        if key not in KEYS:
            raise ConfigError(f"{name}: {label} unknown key (known: {', '.join(sorted(KEYS))})")
        if key in seen:
            raise ConfigError(f"{name}: {label} given twice (also as {seen[key]})")
        seen[key] = label
        check, reason = KEYS[key]
        if not check(value):
            raise ConfigError(f"{name}: {label} {reason}, got {value!r}")
        if key == "max_upload_size":
            value = _size(value)
        if key == "trusted_proxies":
            value = _networks(value)
        if key == "auth":
            value = _methods(value)
        if key == "instance_types":
            continue
        if hasattr(cfg, key):
            setattr(cfg, key, value)
    if cfg.metrics_port is not None and cfg.metrics_port == cfg.port:
        raise ConfigError(f"{name}: {seen['metrics_port']} must differ from {seen.get('port', ':port:')} ({cfg.port})")
    if cfg.core_auth == "x509":  # the server account signing its sessions with a certificate
        raise ConfigError(f"{name}: {seen['core_auth']} x509 is not implemented by this version; use cipher")
    types = data.get(":instance_types") or data.get("instance_types") or {}
    cfg.instance_types = _instance_types(name, types, cfg.template_dir, cfg.use_file_templates)
    cfg.server_user, cfg.server_password = _server_account(environ)
    if cfg.proxy_secret_file:
        label = f"{name}: {seen['proxy_secret_file']} {cfg.proxy_secret_file}"
        cfg.proxy_secret = _proxy_secret(cfg.proxy_secret_file, label)
    return cfg


def with_ports(cfg: Config, port: int | None, metrics_port: int | None) -> Config:
    """*cfg* with the command line's ``--port`` and ``--metrics-port``, which beat the file's: one econe.conf
    serves every instance of a host, each run with its own ports."""
    cfg.port = cfg.port if port is None else port
    cfg.metrics_port = cfg.metrics_port if metrics_port is None else metrics_port
    if cfg.metrics_port == cfg.port:
        same = (
            f"--metrics-port {metrics_port} is also the port"
            if metrics_port
            else f"--port {port} is also the metrics port"
        )
        raise ConfigError(f"{same} ({cfg.source}): give each its own")
    return cfg


def _instance_types(name: str, types: dict, template_dir: str, required: bool) -> dict[str, InstanceType]:
    out = {}
    for type_name, spec in (types or {}).items():
        label = f":instance_types: {type_name}"
        if not isinstance(spec, dict) or not isinstance(spec.get(":template", spec.get("template")), str):
            raise ConfigError(f"{name}: {label} must be a mapping with a template: file name")
        file = spec.get(":template", spec.get("template"))
        if file.endswith(".erb"):
            raise ConfigError(
                f"{name}: {label} template {file} is an ERB template; rewrite it as a Jinja2 .j2 file (see README)"
            )
        full = file if os.path.isabs(file) else os.path.join(template_dir, file)
        if required and not os.access(full, os.R_OK):
            raise ConfigError(f"{name}: {label} template {full} is not readable")
        out[str(type_name)] = InstanceType(str(type_name), full)
    return out


def _proxy_secret(path: str, label: str) -> str:
    """The proxy's secret: the first line of the file *path*, which only its owner may read."""
    try:
        with open(path, encoding="utf-8") as f:
            if os.fstat(f.fileno()).st_mode & 0o077:
                raise ConfigError(f"{label} is readable by others than its owner (chmod 600 it)")
            secret = f.readline().strip()
    except OSError as e:
        raise ConfigError(f"{label} cannot read: {e.strerror}") from None
    except UnicodeError:
        raise ConfigError(f"{label} is not text (UTF-8)") from None
    if not secret:
        raise ConfigError(f"{label} is empty")
    return secret


def _server_account(environ) -> tuple[str, str]:
    path = environ.get("ONE_CIPHER_AUTH", DEFAULT_AUTH_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read().strip()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the server account (ONE_CIPHER_AUTH): {e.strerror}") from None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ConfigError(f"{path}: must hold user:password of the server_cipher account")
    return user, password

"""The bundle's roles as an operator runs them (#15), without a container: from an inventory of their
own (what it sets reaches econe.conf, the instances' units and the proxy's configuration, and
playbooks/site.yml sets nothing over it), with N econe instances behind the proxy, and a --check run
that builds nothing on the controller. The Molecule scenario runs the same roles on a host."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from .conftest import ROOT

PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
TEMPLATES = {
    "econe.conf": ROOT / "roles" / "econe_server" / "templates" / "econe.conf.j2",
    "econe-server@.service": ROOT / "roles" / "econe_server" / "templates" / "econe-server@.service.j2",
    "econe-proxy.conf": ROOT / "roles" / "lighttpd_ssl_proxy" / "templates" / "econe-proxy.conf.j2",
}
# what the roles make of the inventory, besides the files
SHOWN = ("snakeoil_cert_common_name", "lighttpd_ssl_proxy_secret_file", "econe_server_ssl_server")


def _play(
    tmp_path: Path, inventory: str, *args: str, tmpdir: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """ansible-playbook on localhost (connection local) with *inventory* for the group frontend (and
    *tmpdir* as the controller's TMPDIR, *env* in its environment and its modules')."""
    inv = tmp_path / "inventory"
    inv.write_text(
        f"[frontend]\ncloud.example.org ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        f"[frontend:vars]\n{inventory}\n"
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(ROOT / "roles"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        **({"TMPDIR": str(tmpdir)} if tmpdir else {}),
        **(env or {}),
    }
    return subprocess.run(
        [str(PLAYBOOK), "-i", str(inv), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )


def _rendered(tmp_path: Path, inventory: str) -> dict[str, str]:
    """playbooks/site.yml's own play (its vars, if any, and roles), with every role task skipped by
    --tags, then the roles' templates rendered into tmp_path: what this inventory makes of the files.
    The roles' argument specs are checked on the way (that check runs under any tag)."""
    play = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text())[0]
    out = tmp_path / "out"
    out.mkdir()
    play.update(gather_facts=False, become=False)
    play["post_tasks"] = [
        *(
            {"name": name, "ansible.builtin.template": {"src": str(src), "dest": str(out / name)}, "tags": ["render"]}
            for name, src in TEMPLATES.items()
        ),
        {
            "name": "instances",
            "ansible.builtin.template": {
                "src": str(ROOT / "roles" / "econe_server" / "templates" / "instance.conf.j2"),
                "dest": f"{out}/instance-{{{{ econe_server_instance }}}}.conf",
            },
            "loop": "{{ range(1, econe_server_instances + 1) | list }}",
            "loop_control": {"loop_var": "econe_server_instance"},
            "tags": ["render"],
        },
        {
            "name": "variables",
            "ansible.builtin.copy": {
                "content": "{{ {" + ", ".join(f"'{v}': {v}" for v in SHOWN) + "} | to_json }}",
                "dest": str(out / "variables.json"),
            },
            "tags": ["render"],
        },
    ]
    book = tmp_path / "site.yml"
    book.write_text(yaml.safe_dump([play]))
    done = _play(tmp_path, inventory, str(book), "--tags", "render")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return {p.name: p.read_text() for p in out.iterdir()}


def _backends(proxy_conf: str) -> list[tuple[str, int]]:
    """The (host, port) pairs econe-proxy.conf gives lighttpd's proxy.server."""
    line = next(x for x in proxy_conf.splitlines() if x.startswith("var.backends"))
    return [(h, int(p)) for h, p in re.findall(r'"host" => "([^"]+)", "port" => (\d+)', line)]


def _setting(conf: str, key: str) -> str:
    return next(x.split(":", 2)[2].strip() for x in conf.splitlines() if x.startswith(f":{key}:"))


def test_an_inventory_of_three_instances_reaches_the_units_and_the_proxy(tmp_path):
    files = _rendered(
        tmp_path,
        "lighttpd_ssl_proxy_port=443\necone_server_instances=3\necone_server_port=5000\n"
        "econe_server_metrics_port=9600\necone_server_max_upload_size=1G\n",
    )
    # one econe.conf for all; each instance's ports in its drop-in, on the command line the unit runs
    assert _setting(files["econe.conf"], "ssl_server") == '"https://cloud.example.org:443"'
    for n in (1, 2, 3):
        assert f"ECONE_PORT={4999 + n}" in files[f"instance-{n}.conf"]
        assert f"ECONE_METRICS_PORT={9599 + n}" in files[f"instance-{n}.conf"]
    assert "--port ${ECONE_PORT} --metrics-port ${ECONE_METRICS_PORT}" in files["econe-server@.service"]
    assert "Type=notify" in files["econe-server@.service"]
    # the proxy balances the three and passes bodies up to econe's limit plus 1 MiB of fields, in KiB
    assert _backends(files["econe-proxy.conf"]) == [("127.0.0.1", 5000), ("127.0.0.1", 5001), ("127.0.0.1", 5002)]
    assert "var.max_request_size = 1049600" in files["econe-proxy.conf"]
    shown = json.loads(files["variables.json"])
    assert shown["snakeoil_cert_common_name"] == "cloud.example.org"
    assert shown["lighttpd_ssl_proxy_secret_file"] == "/var/lib/one/.one/econe_proxy_secret"


def test_what_the_inventory_sets_beats_what_the_roles_derive(tmp_path):
    """site.yml's play vars once beat the inventory (econe_server_ssl_server, the proxy's body limit)."""
    files = _rendered(
        tmp_path,
        "econe_server_ssl_server=https://api.example.org\nlighttpd_ssl_proxy_max_request_size=2048\n"
        "econe_server_proxy_secret_file=/etc/one/proxy_secret\n",
    )
    assert _setting(files["econe.conf"], "ssl_server") == '"https://api.example.org"'
    assert _setting(files["econe.conf"], "proxy_secret_file") == '"/etc/one/proxy_secret"'
    assert "var.max_request_size = 2048" in files["econe-proxy.conf"]
    assert json.loads(files["variables.json"])["lighttpd_ssl_proxy_secret_file"] == "/etc/one/proxy_secret"
    assert _backends(files["econe-proxy.conf"]) == [("127.0.0.1", 4567), ("127.0.0.1", 4568)]  # the defaults


def test_the_public_name_names_the_signed_url_and_the_certificate(tmp_path):
    files = _rendered(tmp_path, "econe_server_public_name=ec2.example.net\n")
    assert _setting(files["econe.conf"], "ssl_server") == '"https://ec2.example.net:8443"'
    assert json.loads(files["variables.json"])["snakeoil_cert_common_name"] == "ec2.example.net"


def _package_play(tmp_path: Path) -> Path:
    """A playbook of econe_server's package tasks alone (tasks_from: package)."""
    book = tmp_path / "package.yml"
    task = {
        "name": "econe_server's package",
        "ansible.builtin.import_role": {"name": "econe_server", "tasks_from": "package"},
    }
    book.write_text(yaml.safe_dump([{"hosts": "frontend", "gather_facts": False, "tasks": [task]}]))
    return book


def _changed(done: subprocess.CompletedProcess) -> int:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    return int(re.search(r"cloud\.example\.org +: ok=\d+ +changed=(\d+)", done.stdout)[1])


def _wheel(directory: Path, mark: str, name: str = "econe", requires: str = "") -> Path:
    """A stand-in wheel *name* 0.0.1 (installed in a second) whose module's MARK is *mark*, requiring the
    distribution *requires* if given."""
    directory.mkdir(exist_ok=True)
    module = name.replace("-", "_")  # a wheel's file name and its dist-info spell the name so
    path, info = directory / f"{module}-0.0.1-py3-none-any.whl", f"{module}-0.0.1.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n"
    metadata += f"Requires-Dist: {requires}\n" if requires else ""
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(f"{module}/__init__.py", f"MARK = {mark!r}\n")
        whl.writestr(f"{info}/METADATA", metadata)
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", f"{module}/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")
    return path


def _mark(venv: Path) -> str:
    return subprocess.check_output([str(venv / "bin" / "python"), "-c", "import econe; print(econe.MARK)"], text=True)


def test_a_check_run_builds_nothing_on_the_controller(tmp_path):
    """The default package source is this checkout, built into a wheel: not under --check, where the
    role once built it anyway (into a fixed $TMPDIR/econe-wheel)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = _play(
        tmp_path, f"econe_server_venv={tmp_path / 'venv'}", str(_package_play(tmp_path)), "--check", tmpdir=tmp
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert list(tmp.rglob("*")) == [], "a --check run wrote on the controller"
    assert not (tmp_path / "venv").exists() and not (tmp_path / "venv-dist").exists()


def test_a_wheel_file_is_installed_once_and_again_when_it_changes(tmp_path):
    book, venv = _package_play(tmp_path), tmp_path / "venv"
    inventory = f"econe_server_package={_wheel(tmp_path / 'dist', 'one')}\necone_server_venv={venv}\n"
    inventory += "econe_server_instances=0\n"  # no instance to restart on this machine
    assert _changed(_play(tmp_path, inventory, str(book))) > 0 and _mark(venv) == "one\n"
    assert _changed(_play(tmp_path, inventory, str(book))) == 0
    _wheel(tmp_path / "dist", "two")  # new code, the same version
    assert _changed(_play(tmp_path, inventory, str(book), "--check")) == 3  # the copy, the reinstall, its dependencies
    assert _changed(_play(tmp_path, inventory, str(book))) > 0 and _mark(venv) == "two\n"


def test_a_pip_requirement_is_installed_on_the_host(tmp_path):
    book, venv = _package_play(tmp_path), tmp_path / "venv"
    inventory = f"econe_server_package=file://{_wheel(tmp_path / 'dist', 'pip')}\necone_server_venv={venv}\n"
    inventory += "econe_server_instances=0\n"
    assert _changed(_play(tmp_path, inventory, str(book))) == 1 and _mark(venv) == "pip\n"
    assert _changed(_play(tmp_path, inventory, str(book))) == 0
    assert _changed(_play(tmp_path, inventory, str(book), "--check")) == 0  # pip's dry run: nothing to install
    assert not (tmp_path / "venv-dist").exists()  # pip fetched it, nothing was copied


def test_a_new_wheel_brings_its_new_dependencies_even_after_a_failed_run(tmp_path):
    """A changed wheel was once only copied, then reinstalled by a handler with --no-deps: a dependency
    new in it never arrived, and a run that failed after the copy left the old code for good (the
    rerun found the copy unchanged). Here the first run of wheel "two" fails (its new dependency is
    not to be had yet), and the rerun installs it with the dependency."""
    book, venv, dist, index = _package_play(tmp_path), tmp_path / "venv", tmp_path / "dist", tmp_path / "index"
    index.mkdir()
    inventory = f"econe_server_package={_wheel(dist, 'one')}\necone_server_venv={venv}\necone_server_instances=0\n"
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}  # pip finds dependencies in *index* alone
    assert _changed(_play(tmp_path, inventory, str(book), env=offline)) > 0 and _mark(venv) == "one\n"
    _wheel(dist, "two", requires="econe-newdep")
    assert _play(tmp_path, inventory, str(book), env=offline).returncode != 0  # econe-newdep: not found
    _wheel(index, "new", name="econe-newdep")
    assert _changed(_play(tmp_path, inventory, str(book), env=offline)) > 0 and _mark(venv) == "two\n"
    check = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_top_level_proxy_configuration_is_the_roles_own():
    """The role owns lighttpd.conf (it works copied out of this repository); files/lighttpd.conf, the
    configuration the README points at, is a link to it."""
    top = ROOT / "files" / "lighttpd.conf"
    assert top.is_symlink() and top.resolve() == ROOT / "roles" / "lighttpd_ssl_proxy" / "files" / "lighttpd.conf"
    for role in ("econe_server", "lighttpd_ssl_proxy", "snakeoil_cert"):
        defaults = (ROOT / "roles" / role / "defaults" / "main.yml").read_text()
        assert "playbook_dir" not in defaults, role

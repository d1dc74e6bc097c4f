"""`make sanity`: ansible-test sanity on the econe.opennebula collection (``python -m tests.sanity``).

ansible-test installs each test's requirements (pylint, pycodestyle, voluptuous...) into a virtualenv
of its own, pinned by ansible-core, and bootstraps pip there with a get-pip script that it downloads
from ansible's CI file server: no package index serves it, and this project's machines reach none but
the package indexes. Its error message says to save the script in its cache instead; where none is,
STAND_IN is saved there. Like get-pip, it runs pip from a pip wheel on sys.path (the one Python's
ensurepip bundles) to install the pip ansible-test names; everything else comes from the index.

ansible-test keeps that cache and its virtualenvs under ~/.ansible/test: it runs with HOME in the
repository (HOME below, .run/, which `make clean` removes), so that nothing is left elsewhere; the
user's configuration directory stays the real one (pip's index settings are there). From a fresh clone
the virtualenvs are rebuilt on the first run (a few minutes, README: Tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = ROOT / "collections" / "ansible_collections" / "econe" / "opennebula"
HOME = ROOT / ".run" / "ansible-test"

STAND_IN = '''"""Stand-in for get-pip.py, saved by econe's tests/sanity.py: pip from ensurepip's wheel installs the
arguments (ansible-test's pip==N and pip options) into this interpreter's environment."""
import glob
import os
import sys

import ensurepip

sys.path.insert(0, sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), "_bundled", "pip-*.whl")))[-1])
from pip._internal.cli.main import main  # noqa: E402

# get-pip's own options: it installs neither setuptools nor wheel unless asked, nor does this
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", *args]))
'''


def bootstrap_script(python: str) -> Path:
    """Where ansible-test, run with HOME, looks for the get-pip script, named for the pip it bootstraps
    (ansible-test's own answer, so that another ansible-core finds it too)."""
    from ansible_test._internal.python_requirements import get_venv_packages

    pip = get_venv_packages(SimpleNamespace(version=python))["pip"]
    return HOME / ".ansible" / "test" / "cache" / f"get_pip_{pip.replace('.', '_')}.py"


def main() -> int:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    script = bootstrap_script(python)
    if not script.exists():
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(STAND_IN)
    ansible_test = Path(sys.executable).parent / "ansible-test"
    # every test but those for content the collection has none of and whose tools are not here:
    # PowerShell (pslint) and shell scripts (shellcheck)
    cmd = [str(ansible_test), "sanity", "--local", "--python", python, "--color", "no",
           "--skip-test", "pslint", "--skip-test", "shellcheck", *sys.argv[1:]]  # fmt: skip
    config = os.environ.get("XDG_CONFIG_HOME", str(Path.home() / ".config"))
    env = {**os.environ, "LC_ALL": "C.UTF-8", "HOME": str(HOME), "XDG_CONFIG_HOME": config}
    return subprocess.run(cmd, cwd=COLLECTION, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())

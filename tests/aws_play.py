"""Ansible's amazon.aws modules against a stack's econe, run as their users run them: a play on
localhost with the endpoint as the modules' default, each task's result read from the json callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent


def aws_env(stack) -> dict:
    """The environment amazon.aws reads the stack user's credentials from."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": stack.demo.user,
        "AWS_SECRET_ACCESS_KEY": stack.demo.secret,
        "AWS_REGION": "opennebula",
        "ANSIBLE_STDOUT_CALLBACK": "json",
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
    }


def play(stack, tmp_path, *tasks) -> list[dict]:
    """Run *tasks* with the stack's endpoint as module default; each task's result for localhost.
    A failed task fails the test with the module's own message."""
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "module_defaults": {"group/amazon.aws.aws": {"endpoint_url": stack.econe.url}},
                                     "tasks": list(tasks)}]))  # fmt: skip
    done = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(book)],
        capture_output=True,
        text=True,
        env=aws_env(stack),
        timeout=300,
    )
    try:
        results = [t["hosts"]["localhost"] for t in json.loads(done.stdout)["plays"][0]["tasks"]]
    except (ValueError, KeyError, IndexError):
        pytest.fail(done.stdout[-3000:] + done.stderr[-2000:])
    failed = [(task, r.get("msg"), r.get("error")) for task, r in zip(tasks, results, strict=False) if r.get("failed")]
    assert done.returncode == 0 and not failed, failed or done.stderr[-2000:]
    return results

"""EC2 actions: one module per resource family. Each action takes the parsed input of its botocore
operation and a request context, and returns its output shape as plain dicts and lists."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config import Config
from ..errors import EC2Error
from ..gateway import UserSession


@dataclass
class Context:
    user: str
    session: UserSession
    config: Config
    request_id: str
    log: logging.LoggerAdapter


@dataclass(frozen=True)
class Action:
    func: callable
    supported: frozenset[str]  # input members this server honours
    ignored: frozenset[str]  # accepted and ignored (listed in the README)
    optional: frozenset[str] = frozenset()  # required by the model, optional here (the original's clients omit them)


ACTIONS: dict[str, Action] = {}


def action(name: str, supported=(), ignored=("DryRun",), optional=()):
    def wrap(func):
        ACTIONS[name] = Action(func, frozenset(supported), frozenset(ignored), frozenset(optional))
        return func

    return wrap


def check_supported(name: str, act: Action, params: dict) -> None:
    """Refuse, by name, any parameter the model knows but this server does not implement."""
    for member in params:
        if member not in act.supported and member not in act.ignored:
            raise EC2Error("InvalidParameter", f"The parameter {member} is not supported by {name} on this cloud.")


def register_all():
    from . import images, instances, regions  # noqa: F401

"""EC2 actions: one module per resource family. Each action takes the parsed input of its botocore
operation and a request context, and returns its output shape as plain dicts and lists."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from onelite import template as tpl

from .. import model
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

    @property
    def dry_run(self) -> bool:
        return self.session.is_dry_run


@dataclass(frozen=True)
class Action:
    func: callable
    supported: frozenset[str]  # input members this server honours
    ignored: frozenset[str]  # accepted and ignored (listed in the README)
    optional: frozenset[str] = frozenset()  # required by the model, optional here (the original's clients omit them)
    stored: frozenset[str] = frozenset()  # input members whose values end up in an OpenNebula template
    # changes oned: with DryRun it decides through ctx.session.dry_run; the others answer DryRunOperation unrun
    changes: bool = False


ACTIONS: dict[str, Action] = {}


def action(name: str, supported=(), ignored=(), optional=(), stored=(), changes=False):
    def wrap(func):
        ACTIONS[name] = Action(
            func, frozenset(supported), frozenset(ignored), frozenset(optional), frozenset(stored), changes
        )
        return func

    return wrap


def check_supported(name: str, act: Action, params: dict) -> None:
    """Refuse, by name, any parameter the model knows but this server does not implement."""
    for member in params:
        if member not in act.supported and member not in act.ignored and member != "DryRun":
            raise EC2Error("InvalidParameter", f"The parameter {member} is not supported by {name} on this cloud.")


def check_stored(op, act: Action, params: list[tuple[str, str]]) -> None:
    """Refuse, by parameter name, a value of a stored member that oned cannot store exactly.

    The template escaper decides, on each Query parameter as the client sent it: a value econe
    writes (a tag inside the JSON of EC2_TAGS too) comes back exactly or is refused here.
    """
    members = {model.query_name(op, m) for m in act.stored}
    for key, value in params:
        if key.split(".")[0] in members:
            try:
                tpl.quote(value)
            except tpl.UnstorableValue as e:
                raise EC2Error(
                    "InvalidParameterValue", f"Value for {key} cannot be stored in an OpenNebula template: {e.reason}"
                ) from None


def register_all():
    from . import images, instances, regions  # noqa: F401

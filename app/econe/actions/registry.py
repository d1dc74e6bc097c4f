"""The registry of actions: per action, the input members it reads, those it accepts and ignores,
and — by leaving them out — those it refuses; and the checks the web layer makes with it before
an action runs. tests/test_action_registry.py proves each declaration true."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from one import template as tpl

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
    func: Callable[[Context, dict], dict]  # the parsed input -> the output shape, as plain dicts and lists
    reads: frozenset[str]  # input members the action reads
    ignored: frozenset[str]  # accepted and ignored (the README's table lists them)
    # every other member of the model is refused with InvalidParameter (check_supported); DryRun is the web layer's
    optional: frozenset[str] = frozenset()  # required by the model, optional here (the original's clients omit them)
    stored: frozenset[str] = frozenset()  # input members whose values end up in an OpenNebula template
    # changes oned: with DryRun it decides through ctx.session.decide_dry_run; the others answer DryRunOperation unrun
    changes: bool = False
    # carries the multipart ``file`` part, staged in tmpdir, as its input ``File`` (UploadImage); no other may
    takes_file: bool = False
    service: str = "ec2"  # the botocore service whose model it follows, and that a SigV4 signature must name


ACTIONS: dict[str, Action] = {}


def action(name: str, reads=(), ignored=(), optional=(), stored=(), changes=False, takes_file=False, service="ec2"):
    """Register the decorated function as the action *name* (of EC2, unless *service* says another)."""

    def wrap(func: Callable[[Context, dict], dict]) -> Callable[[Context, dict], dict]:
        ACTIONS[name] = Action(
            func,
            frozenset(reads),
            frozenset(ignored),
            frozenset(optional),
            frozenset(stored),
            changes,
            takes_file,
            service,
        )
        return func

    return wrap


def check_supported(name: str, act: Action, params: dict) -> None:
    """Refuse, by name, any parameter the model knows but this server does not implement."""
    for member in params:
        if member not in act.reads and member not in act.ignored and member != "DryRun":
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


# EC2's own limits, which also bound what one request may cost here
MAX_IDS = 1000  # ids (or names) in one list of one request: each may cost oned calls
ID_LISTS = ("InstanceIds", "ImageIds", "GroupIds", "GroupNames", "KeyNames", "KeyPairIds", "Resources", "SubnetIds",
            "VpcIds", "NetworkInterfaceIds")  # fmt: skip
MAX_FILTER_VALUES = 200  # filter values in one request, all filters together
MAX_FILTER_VALUE = 255  # characters of a filter value
MAX_CLIENT_TOKEN = 64  # ASCII characters
MAX_TAG_KEY, MAX_TAG_VALUE = 128, 256  # characters


def check_limits(p: dict) -> None:
    """Refuse, by parameter, what goes beyond EC2's limits (the same for every action)."""
    for name in ID_LISTS:
        if len(p.get(name) or []) > MAX_IDS:
            raise EC2Error("InvalidParameterValue", f"{name} holds more than {MAX_IDS} ids.")
    values = [v for f in p.get("Filters") or [] for v in f.get("Values") or []]
    if len(values) > MAX_FILTER_VALUES:
        raise EC2Error(
            "FilterLimitExceeded",
            f"The maximum number of filter values specified on a single call is {MAX_FILTER_VALUES}",
        )
    if any(len(v) > MAX_FILTER_VALUE for v in values):
        raise EC2Error("InvalidParameterValue", f"A filter value is longer than {MAX_FILTER_VALUE} characters.")
    token = p.get("ClientToken")
    if token is not None and (len(token) > MAX_CLIENT_TOKEN or not token.isascii()):
        raise EC2Error("InvalidParameterValue", f"ClientToken must be at most {MAX_CLIENT_TOKEN} ASCII characters.")
    for spec in p.get("TagSpecifications") or []:
        for tag in spec.get("Tags") or []:
            if len(tag.get("Key", "")) > MAX_TAG_KEY or len(tag.get("Value", "")) > MAX_TAG_VALUE:
                raise EC2Error(
                    "InvalidParameterValue",
                    f"A tag key is at most {MAX_TAG_KEY} characters and a value at most {MAX_TAG_VALUE}.",
                )

"""EC2 actions: one module per resource family. Each action takes the parsed input of its botocore
operation and a request context, and returns its output shape as plain dicts and lists.

Importing this package registers every action: the family modules below declare theirs in the
registry (``registry.py``) as they are imported. They import the registry, never this package,
so there is no cycle and no import inside a function."""

from __future__ import annotations

from . import (  # noqa: F401 (importing registers their actions)
    addresses,
    create_image,
    identity,
    image_attributes,
    images,
    instance_attributes,
    instances,
    keypairs,
    nics,
    regions,
    secgroups,
    snapshots,
    tags,
    volumes,
    vpcs,
)
from .registry import ACTIONS, Context, check_limits, check_stored, check_supported

__all__ = ["ACTIONS", "Context", "check_limits", "check_stored", "check_supported"]

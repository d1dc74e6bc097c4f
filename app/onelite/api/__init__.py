"""The ``one.*`` method handlers; importing this package registers them all."""

from . import images, infra, secgroups, templates, users, vms, vnets  # noqa: F401

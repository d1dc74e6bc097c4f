"""The ``one.*`` method handlers; importing this package registers them all."""

from . import images, infra, secgroups, users, vms, vnets  # noqa: F401

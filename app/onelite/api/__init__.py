"""The ``one.*`` method handlers; importing this package registers them all."""

from . import documents, images, infra, secgroups, templates, users, vmnics, vms, vnets  # noqa: F401

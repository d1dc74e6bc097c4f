"""Instance types: OpenNebula VM templates carrying EC2_INSTANCE_TYPE (the default), or Jinja2 file
templates named in econe.conf. In file templates every ``{{ value }}`` is written as a quoted
OpenNebula string by the one escaper (one.template.quote): oned reads back exactly that value,
so none can add an attribute, and a value oned cannot store raises UnstorableValue."""

from __future__ import annotations

import os

import jinja2

from one import template as tpl

from .. import ids
from ..config import Config
from ..errors import EC2Error
from ..objects import Template


def _unknown(itype: str) -> EC2Error:
    return EC2Error("InvalidParameterValue", f"Invalid value '{itype}' for InstanceType.")


def template_for(ctx, itype: str) -> Template:
    """The VM template the user may use for *itype* (the lowest id when several match)."""
    for t in sorted(ctx.session.templates(), key=lambda t: t.id):
        if tpl.get(t.body, "EC2_INSTANCE_TYPE") == itype:
            return t
    raise _unknown(itype)


def _environment(directory: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        finalize=lambda v: tpl.quote("" if v is None else str(v)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # the finalize hook is the escaping, for OpenNebula's language rather than HTML
    )


def render_file_template(
    config: Config, itype: str, image_id: int, user_data: str, public_key: str = "", key_name: str = ""
) -> str:
    spec = config.instance_types.get(itype)
    if spec is None:
        raise _unknown(itype)
    env = _environment(os.path.dirname(spec.template))
    try:
        return env.get_template(os.path.basename(spec.template)).render(
            img_id=str(image_id),
            ec2_img_id=ids.fmt("ami", image_id),
            instance_type=itype,
            user_data=user_data,
            public_key=public_key,
            key_name=key_name,
        )
    except (jinja2.TemplateError, OSError) as e:
        raise EC2Error("InternalError", f"Instance type {itype}: template {spec.template} failed: {e}", 500) from None

"""STS GetCallerIdentity, which amazon.aws asks on the same endpoint for the account it acts in.

The account is the user's numeric OpenNebula id, as OwnerId is in every EC2 answer here.
"""

from __future__ import annotations

from .registry import Context, action


@action("GetCallerIdentity", service="sts")
def get_caller_identity(ctx: Context, p: dict) -> dict:
    uid, _ = ctx.session.whoami()
    return {"UserId": str(uid), "Account": str(uid), "Arn": f"arn:aws:iam::{uid}:user/{ctx.user}"}

"""DescribeAddresses (the VPC and its subnets are in vpcs.py, network interfaces in nics.py)."""

from __future__ import annotations

from ..errors import EC2Error
from . import filters
from .registry import Context, action

# DescribeAddresses' filters, as botocore's model documents them (tag:KEY too)
ADDRESS_FILTERS = {
    "allocation-id",
    "association-id",
    "instance-id",
    "network-border-group",
    "network-interface-id",
    "network-interface-owner-id",
    "private-ip-address",
    "public-ip",
    "tag-key",
}


@action("DescribeAddresses", reads=("PublicIps", "AllocationIds", "Filters"))
def describe_addresses(ctx: Context, p: dict) -> dict:
    """Elastic IPs are not offered by this version (no elasticips_vnet_id): a user holds none.
    Clients such as libcloud's list_nodes ask anyway; naming one is an error, as on EC2, and so
    is a filter EC2 does not have (the others match nothing)."""
    filters.check_names(p.get("Filters", []), ADDRESS_FILTERS)
    for ip in p.get("PublicIps", []):
        raise EC2Error("InvalidAddress.NotFound", f"Address '{ip}' not found.")
    for allocation in p.get("AllocationIds", []):
        raise EC2Error("InvalidAllocationID.NotFound", f"The allocation ID '{allocation}' does not exist")
    return {"Addresses": []}

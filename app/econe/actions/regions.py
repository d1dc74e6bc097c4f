"""DescribeRegions and DescribeAvailabilityZones: one region, one zone, named as the original did."""

from __future__ import annotations

from ..errors import EC2Error, missing
from . import Context, action
from .instances import REGION, ZONE


@action("DescribeRegions", supported=("RegionNames",), ignored=("AllRegions", "Filters"))
def describe_regions(ctx: Context, p: dict) -> dict:
    for name in p.get("RegionNames", []):
        if name != REGION:
            raise EC2Error("InvalidParameterValue", f"Invalid region: {name}")
    endpoint = ctx.config.ssl_server or f"http://{ctx.config.host}:{ctx.config.port}"
    return {"Regions": [{"RegionName": REGION, "Endpoint": endpoint, "OptInStatus": "opt-in-not-required"}]}


@action("DescribeAvailabilityZones", supported=("ZoneNames",), ignored=("AllAvailabilityZones", "Filters"))
def describe_availability_zones(ctx: Context, p: dict) -> dict:
    for name in p.get("ZoneNames", []):
        if name != ZONE:
            raise EC2Error("InvalidParameterValue", f"Invalid availability zone: [{name}]")
    zone = {
        "ZoneName": ZONE,
        "State": "available",
        "RegionName": REGION,
        "ZoneId": f"{ZONE}-1",
        "ZoneType": "availability-zone",
        "Messages": [],
    }
    return {"AvailabilityZones": [zone]}


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


@action("DescribeAddresses", supported=("PublicIps", "AllocationIds", "Filters"))
def describe_addresses(ctx: Context, p: dict) -> dict:
    """Elastic IPs are not offered by this version (no elasticips_vnet_id): a user holds none.
    Clients such as libcloud's list_nodes ask anyway; naming one is an error, as on EC2, and so
    is a filter EC2 does not have (the others match nothing)."""
    for f in p.get("Filters", []):
        name = f.get("Name")
        if not name:
            raise missing("Filter.N.Name")
        if name not in ADDRESS_FILTERS and not name.startswith("tag:"):
            raise EC2Error("InvalidParameterValue", f"The filter '{name}' is invalid")
    for ip in p.get("PublicIps", []):
        raise EC2Error("InvalidAddress.NotFound", f"Address '{ip}' not found.")
    for allocation in p.get("AllocationIds", []):
        raise EC2Error("InvalidAllocationID.NotFound", f"The allocation ID '{allocation}' does not exist")
    return {"Addresses": []}

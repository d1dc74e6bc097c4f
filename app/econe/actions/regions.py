"""DescribeRegions and DescribeAvailabilityZones: one region, one zone, named as the original did."""

from __future__ import annotations

from ..errors import EC2Error
from .registry import Context, action

REGION = "opennebula"
ZONE = "opennebula"


@action("DescribeRegions", reads=("RegionNames",), ignored=("AllRegions", "Filters"))
def describe_regions(ctx: Context, p: dict) -> dict:
    for name in p.get("RegionNames", []):
        if name != REGION:
            raise EC2Error("InvalidParameterValue", f"Invalid region: {name}")
    endpoint = ctx.config.ssl_server or f"http://{ctx.config.host}:{ctx.config.port}"
    return {"Regions": [{"RegionName": REGION, "Endpoint": endpoint, "OptInStatus": "opt-in-not-required"}]}


@action("DescribeAvailabilityZones", reads=("ZoneNames",), ignored=("AllAvailabilityZones", "Filters"))
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

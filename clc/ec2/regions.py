"""DescribeRegions and DescribeAvailabilityZones: one region, one zone per registered cluster."""

from clc.cloud import REGION
from clc.ec2.common import apply_filters


def describe_regions(ctx, params):
    regions = [{"RegionName": REGION, "Endpoint": ctx.cloud.ec2_url(), "OptInStatus": "opt-in-not-required"}]
    names = params.get("RegionNames")
    if names:
        regions = [r for r in regions if r["RegionName"] in names]
    regions = apply_filters(regions, params.get("Filters"), {"region-name": lambda r: r["RegionName"],
                                                             "endpoint": lambda r: r["Endpoint"]})
    return {"Regions": regions}


def describe_availability_zones(ctx, params):
    zones = []
    for cluster in ctx.cloud.clusters():
        state = "available" if cluster["state"] in ("ENABLED", "REGISTERED") else "unavailable"
        zones.append({"ZoneName": cluster["partition"], "State": state, "RegionName": REGION,
                      "ZoneId": f"{REGION}-{cluster['partition']}", "ZoneType": "availability-zone",
                      "Messages": [{"Message": f"{cluster['host']}:{cluster['port']}"}]})
    names = params.get("ZoneNames")
    if names:
        zones = [z for z in zones if z["ZoneName"] in names]
    zones = apply_filters(zones, params.get("Filters"), {
        "zone-name": lambda z: z["ZoneName"], "state": lambda z: z["State"],
        "region-name": lambda z: z["RegionName"], "zone-id": lambda z: z["ZoneId"],
        "zone-type": lambda z: z["ZoneType"]})
    return {"AvailabilityZones": zones}


HANDLERS = {"DescribeRegions": describe_regions, "DescribeAvailabilityZones": describe_availability_zones}

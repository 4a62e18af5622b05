"""The cloud admin's services: cloud properties and usage reports.

``Properties``: DescribeProperties / ModifyPropertyValue (euca-describe-properties,
euca-modify-property).  ``Reporting``: GenerateReport (eureport-generate-report).
Both answer the cloud admin only.
"""

import datetime

from eucacore import ids
from eucacore.awsapi.errors import AWSError
from clc import usage
from clc.properties import PropertyError

DAY = 86400.0


def _require_cloud_admin(ctx, service: str) -> None:
    if not ctx.credentials.is_cloud_admin:
        raise AWSError("AccessDenied", f"Only the cloud admin may use the {service} service.", 403)


def describe_properties(ctx, params):
    _require_cloud_admin(ctx, "properties")
    try:
        return {"Properties": ctx.cloud.properties.describe(params.get("Properties"))}
    except PropertyError as e:
        raise AWSError(e.code, e.message) from None


def modify_property_value(ctx, params):
    _require_cloud_admin(ctx, "properties")
    if params.get("Value") is None and not params.get("Reset"):
        raise AWSError("MissingParameter", "The request must contain the parameter Value (or Reset)")
    try:
        return ctx.cloud.properties.modify(params["Name"], params.get("Value"), bool(params.get("Reset")))
    except PropertyError as e:
        raise AWSError(e.code, e.message) from None


def _epoch(value: datetime.datetime | None, default: float) -> float:
    return value.timestamp() if value is not None else default


def generate_report(ctx, params):
    """One usage report: Type instance|volume|snapshot|s3, Format csv (default) or json, over
    [StartDate, EndDate) (default: the last 24 hours), for one account or all."""
    _require_cloud_admin(ctx, "reporting")
    kind, fmt = params["Type"], (params.get("Format") or "csv").lower()
    if kind not in usage.KINDS:
        raise AWSError("InvalidParameterValue", f"Type must be one of {', '.join(usage.KINDS)}, not {kind!r}")
    if fmt not in ("csv", "json"):
        raise AWSError("InvalidParameterValue", f"Format must be csv or json, not {fmt!r}")
    end = _epoch(params.get("EndDate"), ids.now())
    start = _epoch(params.get("StartDate"), end - DAY)
    if end <= start:
        raise AWSError("InvalidParameterValue", "EndDate must be after StartDate")
    account_id = None
    if params.get("AccountName"):
        account = ctx.cloud.identity.account(params["AccountName"])
        if account is None:
            raise AWSError("InvalidParameterValue", f"No such account: {params['AccountName']}")
        account_id = account["account_id"]
    rows = usage.report(ctx.cloud.store, kind, start, end, account_id)
    data = usage.to_csv(rows, usage.COLUMNS[kind]) if fmt == "csv" else usage.to_json(kind, start, end, rows)
    return {"Data": data}


PROPERTIES_HANDLERS = {"DescribeProperties": describe_properties, "ModifyPropertyValue": modify_property_value}
REPORTING_HANDLERS = {"GenerateReport": generate_report}

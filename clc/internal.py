"""The CLC's component-facing SOAP service: what other components ask the cloud controller.

``DescribeAccessKey`` lets Walrus check S3 request signatures and authorize
them against the cloud's identities without holding a copy of them: the key's
secret, its user and account, the user's policies and the account's storage
quotas.  ``ReportUsage`` takes Walrus' S3 usage events for billing, hundreds a report
under load: ``wsgi_app`` reads and answers it with eucacore.fastsoap, not spyne.  Callers
must present a cloud-issued certificate; the serving layer refuses anyone else.
"""

from spyne import Boolean, Double, Long, ServiceBase, Unicode

from eucacore import soap
from eucacore.fastsoap import FastAnswers
from eucacore.messages import BASE_FIELDS, Message, _Model, from_dict, many, required, to_dict
from eucacore.soap import EucaFault, make_application, operation

#: The quotas Walrus enforces itself, handed over with each key.
WALRUS_QUOTAS = ("buckets", "bucket-storage-mib")
#: The cloud-wide Walrus limits (properties) handed over with each key, under these names.
WALRUS_LIMITS = {"max-bucket-size-mib": "walrus.storagemaxbucketsizeinmb",
                 "max-object-size-mib": "walrus.storagemaxobjectsizeinmb"}


class quotaType(_Model):
    """A quota's limit (-1: unlimited); Walrus counts what the account uses itself."""
    _type_info = [("name", Unicode), ("limit", Long)]


class DescribeAccessKeyType(Message):
    _type_info = BASE_FIELDS + [("accessKeyId", required(Unicode))]


class DescribeAccessKeyResponseType(Message):
    """The key's owner (the inherited ``userId`` is the user's id), what the user may do
    (``policies``: IAM policy documents; account admins may do everything) and the
    account's storage quotas."""
    _type_info = BASE_FIELDS + [
        ("accessKeyId", Unicode), ("secretKey", Unicode), ("accountId", Unicode), ("status", Unicode),
        ("accountName", Unicode), ("userName", Unicode), ("userPath", Unicode),
        ("isAccountAdmin", Boolean), ("isCloudAdmin", Boolean), ("policies", many(Unicode)),
        ("quotas", many(quotaType))]


class usageEventType(_Model):
    _type_info = [("seq", Long), ("accountId", Unicode), ("time", Double), ("storedDelta", Long),
                  ("bucketsDelta", Long), ("bytesIn", Long), ("bytesOut", Long)]


class ReportUsageType(Message):
    _type_info = BASE_FIELDS + [("source", required(Unicode)), ("events", many(usageEventType))]


class ReportUsageResponseType(Message):
    """``acknowledged``: the highest seq of ``source`` the CLC has stored; the reporter may forget up to it."""
    _type_info = BASE_FIELDS + [("acknowledged", Long)]


#: A usage event's fields on the wire -> in clc.usage.
_EVENT_FIELDS = {"seq": "seq", "accountId": "account_id", "time": "time", "storedDelta": "stored_delta",
                 "bucketsDelta": "buckets_delta", "bytesIn": "bytes_in", "bytesOut": "bytes_out"}


def report_usage(cloud, request: dict) -> dict:
    """ReportUsage as dicts: stores the events of ``request["source"]`` (an absent count is 0)
    and answers the highest seq the CLC holds of it; no source, or an event without its seq,
    account or time, is an InvalidParameterValue fault. An empty field is an absent one (spyne
    reads an empty string as one, fastsoap as none: both answer alike)."""
    events = [{ours: event[wire] for wire, ours in _EVENT_FIELDS.items() if event.get(wire) not in (None, "")}
              for event in request.get("events") or []]
    try:
        if not request.get("source"):
            raise ValueError("a usage report needs its source")
        acknowledged = cloud.usage.record_s3(request["source"], events)
    except ValueError as e:
        raise EucaFault("InvalidParameterValue", str(e)) from None
    return {"correlationId": request.get("correlationId"), "acknowledged": acknowledged, "return": True}


def wsgi_app(cloud):
    """The CLC's internal WSGI application: spyne's, with ReportUsage (Walrus' usage events,
    hundreds a report) read and answered by eucacore.fastsoap."""
    return FastAnswers(soap.wsgi_app(application(cloud)), "EucalyptusCLC",
                       {"ReportUsage": lambda request: report_usage(cloud, request)})


def application(cloud=None):
    """The CLC's internal spyne application over ``cloud`` (a clc.cloud.Cloud)."""

    class CLC(ServiceBase):
        @operation("DescribeAccessKey", DescribeAccessKeyType, DescribeAccessKeyResponseType)
        def DescribeAccessKey(ctx, req):
            principal = cloud.identity.lookup(req.accessKeyId)
            if principal is None:
                raise EucaFault("InvalidAccessKeyId", "no active access key with that id")
            limits = cloud.quotas.limits(principal.account_id)
            return DescribeAccessKeyResponseType(
                correlationId=req.correlationId, accessKeyId=principal.access_key,
                secretKey=principal.secret_key, accountId=principal.account_id, userId=principal.user_id,
                status="Active", accountName=principal.account_name, userName=principal.user_name,
                userPath=principal.user_path, isAccountAdmin=principal.is_account_admin,
                isCloudAdmin=principal.is_cloud_admin, policies=list(principal.policies),
                quotas=[quotaType(name=n, limit=limits[n]) for n in WALRUS_QUOTAS]
                + [quotaType(name=n, limit=cloud.properties.get(p)) for n, p in WALRUS_LIMITS.items()],
                **{"return": True})

        @operation("ReportUsage", ReportUsageType, ReportUsageResponseType)
        def ReportUsage(ctx, req):
            return from_dict(ReportUsageResponseType, report_usage(cloud, to_dict(req)))

    return make_application([CLC], "EucalyptusCLC")

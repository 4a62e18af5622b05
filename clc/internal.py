"""The CLC's component-facing SOAP service: what other components ask the cloud controller.

``DescribeAccessKey`` lets Walrus check S3 request signatures and authorize
them against the cloud's identities without holding a copy of them: the key's
secret, its user and account, the user's policies and the account's storage
quotas.  ``ReportUsage`` takes Walrus' S3 usage events for billing.  Callers
must present a cloud-issued certificate; the serving layer refuses anyone else.
"""

from spyne import Boolean, Double, Long, ServiceBase, Unicode

from eucacore.messages import BASE_FIELDS, Message, _Model, many, required
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
            events = [{"seq": e.seq, "account_id": e.accountId, "time": e.time,
                       "stored_delta": e.storedDelta or 0, "buckets_delta": e.bucketsDelta or 0,
                       "bytes_in": e.bytesIn or 0, "bytes_out": e.bytesOut or 0} for e in req.events or []]
            try:
                acknowledged = cloud.usage.record_s3(req.source, events)
            except ValueError as e:
                raise EucaFault("InvalidParameterValue", str(e)) from None
            return ReportUsageResponseType(correlationId=req.correlationId, acknowledged=acknowledged,
                                           **{"return": True})

    return make_application([CLC], "EucalyptusCLC")

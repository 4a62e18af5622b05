"""The CLC's component-facing SOAP service: what other components ask the cloud controller.

``DescribeAccessKey`` lets Walrus check S3 request signatures against the cloud's
identities without holding a copy of them. Callers must present a cloud-issued
certificate; the serving layer refuses anyone else.
"""

from spyne import ServiceBase, Unicode, rpc

from eucacore.messages import BASE_FIELDS, Message, required
from eucacore.soap import EucaFault, make_application


class DescribeAccessKeyType(Message):
    _type_info = BASE_FIELDS + [("accessKeyId", required(Unicode))]


class DescribeAccessKeyResponseType(Message):
    """The key's owner: ``accountId``, and the inherited ``userId``."""
    _type_info = BASE_FIELDS + [("accessKeyId", Unicode), ("secretKey", Unicode), ("accountId", Unicode), ("status", Unicode)]


def application(identity=None):
    """The CLC's internal spyne application over ``identity`` (a clc.identity.Identity)."""

    class CLC(ServiceBase):
        @rpc(DescribeAccessKeyType, _returns=DescribeAccessKeyResponseType, _body_style="bare",
             _in_message_name="DescribeAccessKey", _out_message_name="DescribeAccessKeyResponse")
        def DescribeAccessKey(ctx, req):
            creds = identity.lookup(req.accessKeyId)
            if creds is None:
                raise EucaFault("InvalidAccessKeyId", "no active access key with that id")
            return DescribeAccessKeyResponseType(correlationId=req.correlationId, accessKeyId=creds.access_key,
                                                 secretKey=creds.secret_key, accountId=creds.account_id,
                                                 userId=creds.user_id, status="Active", **{"return": True})

    return make_application([CLC], "EucalyptusCLC")

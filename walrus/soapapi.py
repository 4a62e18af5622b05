"""Walrus's S3 SOAP endpoint: the twelve operations of the original's SOAP port.

The messages follow AmazonS3.xsd of 2006-03-01 (document/literal, namespace
``http://s3.amazonaws.com/doc/2006-03-01/``).  Each operation is the REST handler of
:class:`walrus.api.WalrusApp` it stands for (ListAllMyBuckets is ``list_buckets``,
PutObjectInline is ``put_object``...), called after the same IAM check, so ACLs, quotas
and policies are one code for both faces.  A request is signed as the S3 SOAP API
defined: ``Signature = base64(HMAC-SHA1(secret, "AmazonS3" + operation + Timestamp))``
over the Timestamp exactly as sent, which must be within 15 minutes of our clock; a
request without AWSAccessKeyId is anonymous.  Errors are SOAP faults whose faultcode is
``Client.<S3 code>`` (``Server.<S3 code>`` for 5xx) and whose faultstring is the S3 message.
"""

import base64
import contextlib
import hmac
import io
import logging
from datetime import timedelta, timezone
from email.utils import parsedate_to_datetime
from hashlib import sha1

from spyne import (Application, Boolean, ByteArray, ComplexModel, DateTime, Integer32, Long, ServiceBase,
                   Unicode)
from spyne.error import RequestTooLongError
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from eucacore import ids, soap
from eucacore.awsapi.errors import AWSError

from . import acl
from . import store as st
from .api import _store_error
from .objects import NotModified, utc
from .request import RequestBody, RequestContext

log = logging.getLogger("eucalyptus.walrus.soap")

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
#: The URL path of the SOAP port, as S3 had it (https://s3.amazonaws.com/soap).
SOAP_PATH = "/soap"
#: The most bytes PutObjectInline takes, and GetObject returns inline (S3's 1 MB limit).
MAX_INLINE_BYTES = 1024 * 1024
#: The largest SOAP request read: a full inline object, base64-encoded, with room to spare.
MAX_REQUEST_BYTES = 4 * MAX_INLINE_BYTES
MAX_SKEW = timedelta(minutes=15)
#: Each SOAP operation -> the REST operation whose IAM action and handler it shares.
REST_OPERATIONS = {
    "ListAllMyBuckets": "ListBuckets", "CreateBucket": "CreateBucket", "DeleteBucket": "DeleteBucket",
    "ListBucket": "ListObjects", "PutObjectInline": "PutObject", "GetObject": "GetObject",
    "GetObjectExtended": "GetObject", "DeleteObject": "DeleteObject",
    "GetBucketAccessControlPolicy": "GetBucketAcl", "SetBucketAccessControlPolicy": "PutBucketAcl",
    "GetObjectAccessControlPolicy": "GetObjectAcl", "SetObjectAccessControlPolicy": "PutObjectAcl",
}


# ---------------------------------------------------------------- messages (AmazonS3.xsd)

def _one(type_):
    return type_.customize(min_occurs=1, nillable=False)


def _optional(type_):
    return type_.customize(min_occurs=0, nillable=False)


def _many(type_, limit="unbounded"):
    return type_.customize(min_occurs=0, max_occurs=limit, nillable=False)


_TEXT = _one(Unicode)
_TIME = _one(DateTime)


def _enumeration(name, values, **occurs):
    # one call: customizing a named enumeration again would make an anonymous copy of it
    return Unicode(values=values, type_name=name, __namespace__=NS, **occurs)


def _storage_class(**occurs):
    return _enumeration("StorageClass", ["STANDARD", "REDUCED_REDUNDANCY", "GLACIER", "UNKNOWN"], **occurs)


Permission = _enumeration("Permission", acl.PERMISSIONS, min_occurs=1, nillable=False)
#: The signature elements that end every request (ListAllMyBuckets and CreateBucket lack Credential).
SIGNED = [("AWSAccessKeyId", _optional(Unicode)), ("Timestamp", _optional(DateTime)),
          ("Signature", _optional(Unicode))]
SIGNED_WITH_CREDENTIAL = SIGNED + [("Credential", _optional(Unicode))]


class _S3(ComplexModel):
    __namespace__ = NS


class MetadataEntry(_S3):
    _type_info = [("Name", _TEXT), ("Value", _TEXT)]


class Status(_S3):
    _type_info = [("Code", _one(Integer32)), ("Description", _TEXT)]


class Result(_S3):
    _type_info = [("Status", _one(Status))]


class Grantee(_S3):
    """Abstract: a grant names a CanonicalUser, an AmazonCustomerByEmail or a Group (xsi:type)."""
    _type_info = []


class User(Grantee):
    __extends__ = Grantee  # spyne derives a base only from a class with fields
    _type_info = []


class AmazonCustomerByEmail(User):
    __extends__ = User
    _type_info = [("EmailAddress", _TEXT)]


class CanonicalUser(User):
    __extends__ = User
    _type_info = [("ID", _TEXT), ("DisplayName", _optional(Unicode))]


class Group(Grantee):
    __extends__ = Grantee
    _type_info = [("URI", _TEXT)]


class Grant(_S3):
    _type_info = [("Grantee", _one(Grantee)), ("Permission", Permission)]


class AccessControlList(_S3):
    _type_info = [("Grant", _many(Grant, 100))]


class AccessControlPolicy(_S3):
    _type_info = [("Owner", _one(CanonicalUser)), ("AccessControlList", _one(AccessControlList))]


class CreateBucketResult(_S3):
    _type_info = [("BucketName", _TEXT)]


class ListAllMyBucketsEntry(_S3):
    _type_info = [("Name", _TEXT), ("CreationDate", _TIME)]


class ListAllMyBucketsList(_S3):
    _type_info = [("Bucket", _many(ListAllMyBucketsEntry))]


class ListAllMyBucketsResult(_S3):
    _type_info = [("Owner", _one(CanonicalUser)), ("Buckets", _one(ListAllMyBucketsList))]


class ListEntry(_S3):
    _type_info = [("Key", _TEXT), ("LastModified", _TIME), ("ETag", _TEXT), ("Size", _one(Long)),
                  ("Owner", _optional(CanonicalUser)),
                  ("StorageClass", _storage_class(min_occurs=1, nillable=False))]


class PrefixEntry(_S3):
    _type_info = [("Prefix", _TEXT)]


class ListBucketResult(_S3):
    _type_info = [("Metadata", _many(MetadataEntry)), ("Name", _TEXT), ("Prefix", _TEXT),
                  ("Marker", _TEXT), ("NextMarker", _optional(Unicode)), ("MaxKeys", _one(Integer32)),
                  ("Delimiter", _optional(Unicode)), ("IsTruncated", _one(Boolean)),
                  ("Contents", _many(ListEntry)), ("CommonPrefixes", _many(PrefixEntry))]


class GetObjectResult(Result):
    _type_info = [("Metadata", _many(MetadataEntry)),
                  ("Data", ByteArray.customize(min_occurs=1, nillable=True)),
                  ("LastModified", _TIME), ("ETag", _TEXT)]


class PutObjectResult(_S3):
    _type_info = [("ETag", _TEXT), ("LastModified", _TIME)]


class ListAllMyBuckets(_S3):
    _type_info = list(SIGNED)


class ListAllMyBucketsResponse(_S3):
    _type_info = [("ListAllMyBucketsResponse", _one(ListAllMyBucketsResult))]


class CreateBucket(_S3):
    _type_info = [("Bucket", _TEXT), ("AccessControlList", _optional(AccessControlList))] + SIGNED


class CreateBucketResponse(_S3):
    _type_info = [("CreateBucketReturn", _one(CreateBucketResult))]


class DeleteBucket(_S3):
    _type_info = [("Bucket", _TEXT)] + SIGNED_WITH_CREDENTIAL


class DeleteBucketResponse(_S3):
    _type_info = [("DeleteBucketResponse", _one(Status))]


class ListBucket(_S3):
    _type_info = [("Bucket", _TEXT), ("Prefix", _optional(Unicode)), ("Marker", _optional(Unicode)),
                  ("MaxKeys", _optional(Integer32)), ("Delimiter", _optional(Unicode))] + \
        SIGNED_WITH_CREDENTIAL


class ListBucketResponse(_S3):
    _type_info = [("ListBucketResponse", _one(ListBucketResult))]


class PutObjectInline(_S3):
    _type_info = [("Bucket", _TEXT), ("Key", _TEXT), ("Metadata", _many(MetadataEntry, 100)),
                  ("Data", _one(ByteArray)), ("ContentLength", _one(Long)),
                  ("AccessControlList", _optional(AccessControlList)),
                  ("StorageClass", _storage_class(min_occurs=0, nillable=False))] + SIGNED_WITH_CREDENTIAL


class PutObjectInlineResponse(_S3):
    _type_info = [("PutObjectInlineResponse", _one(PutObjectResult))]


_GET_FIELDS = [("Bucket", _TEXT), ("Key", _TEXT), ("GetMetadata", _one(Boolean)),
               ("GetData", _one(Boolean)), ("InlineData", _one(Boolean))]


class GetObject(_S3):
    _type_info = _GET_FIELDS + SIGNED_WITH_CREDENTIAL


class GetObjectResponse(_S3):
    _type_info = [("GetObjectResponse", _one(GetObjectResult))]


class GetObjectExtended(_S3):
    _type_info = _GET_FIELDS + [
        ("ByteRangeStart", _optional(Long)), ("ByteRangeEnd", _optional(Long)),
        ("IfModifiedSince", _optional(DateTime)), ("IfUnmodifiedSince", _optional(DateTime)),
        ("IfMatch", _many(Unicode, 100)), ("IfNoneMatch", _many(Unicode, 100)),
        ("ReturnCompleteObjectOnConditionFailure", _optional(Boolean))] + SIGNED_WITH_CREDENTIAL


class GetObjectExtendedResponse(_S3):
    _type_info = [("GetObjectResponse", _one(GetObjectResult))]


class DeleteObject(_S3):
    _type_info = [("Bucket", _TEXT), ("Key", _TEXT)] + SIGNED_WITH_CREDENTIAL


class DeleteObjectResponse(_S3):
    _type_info = [("DeleteObjectResponse", _one(Status))]


class GetBucketAccessControlPolicy(_S3):
    _type_info = [("Bucket", _TEXT)] + SIGNED_WITH_CREDENTIAL


class GetBucketAccessControlPolicyResponse(_S3):
    _type_info = [("GetBucketAccessControlPolicyResponse", _one(AccessControlPolicy))]


class SetBucketAccessControlPolicy(_S3):
    _type_info = [("Bucket", _TEXT), ("AccessControlList", _optional(AccessControlList))] + \
        SIGNED_WITH_CREDENTIAL


class SetBucketAccessControlPolicyResponse(_S3):
    _type_info = []


class GetObjectAccessControlPolicy(_S3):
    _type_info = [("Bucket", _TEXT), ("Key", _TEXT)] + SIGNED_WITH_CREDENTIAL


class GetObjectAccessControlPolicyResponse(_S3):
    _type_info = [("GetObjectAccessControlPolicyResponse", _one(AccessControlPolicy))]


class SetObjectAccessControlPolicy(_S3):
    _type_info = [("Bucket", _TEXT), ("Key", _TEXT), ("AccessControlList", _one(AccessControlList))] + \
        SIGNED_WITH_CREDENTIAL


class SetObjectAccessControlPolicyResponse(_S3):
    _type_info = []


# ---------------------------------------------------------------- the operations

class S3Fault(soap.EucaFault):
    """An S3 error as a SOAP fault: ``Client.<Code>`` (``Server.<Code>`` for 5xx), the S3
    message, and the error's extra elements (BucketName, Key...) as the detail."""

    def __init__(self, error: AWSError):
        super().__init__(error.code, error.message, client=error.status < 500)
        self.detail = {name: str(value) for name, value in error.extra.items() if value is not None} or None


def sign(secret_key: str, operation: str, timestamp: str) -> str:
    """The Signature of an S3 SOAP request: base64(HMAC-SHA1(secret, "AmazonS3" + op + Timestamp))."""
    mac = hmac.new(secret_key.encode("utf-8"), f"AmazonS3{operation}{timestamp}".encode("utf-8"), sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


class SoapFrontend:
    """The twelve operations over a :class:`walrus.api.WalrusApp`: each checks the signature
    and the IAM policy, calls the REST handler and answers in the SOAP message's shape."""

    def __init__(self, walrus):
        self.walrus = walrus

    def call(self, spyne_ctx, operation: str, req, handler):
        """``handler(ctx, req)`` for SOAP ``operation``; every refusal becomes its S3Fault."""
        request_id = spyne_ctx.transport.req_env.get("eucalyptus.request_id") or ids.new_request_id()
        bucket, key = getattr(req, "Bucket", None), getattr(req, "Key", None)
        try:
            principal = self.authenticate(operation, req, _raw_text(spyne_ctx, "Timestamp"))
            self.walrus.authorize(principal, REST_OPERATIONS[operation], {"Bucket": bucket, "Key": key})
            ctx = RequestContext(request_id, principal, {}, RequestBody(io.BytesIO(), 0, {}))
            return handler(ctx, req)
        except st.StoreError as exc:
            raise S3Fault(_store_error(exc, bucket, key)) from None
        except AWSError as error:
            raise S3Fault(error) from None
        except Exception:
            log.exception("request %s: SOAP %s failed", request_id, operation)
            raise S3Fault(AWSError("InternalError", "We encountered an internal error. "
                                   "Please try again.", 500)) from None

    def authenticate(self, operation: str, req, timestamp: str | None):
        """The Principal that signed the request, None for an anonymous one (no AWSAccessKeyId)."""
        if getattr(req, "Credential", None):
            raise AWSError("NotImplemented", "Walrus does not support the Credential element.", 501)
        if req.AWSAccessKeyId is None and req.Signature is None:
            return None
        if not (req.AWSAccessKeyId and req.Signature and timestamp):
            raise AWSError("MissingSecurityElement", "The SOAP 1.1 request is missing a security "
                           "element.", 400)
        principal = self.walrus.lookup(req.AWSAccessKeyId)
        if principal is None:
            raise AWSError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in "
                           "our records.", 403, AWSAccessKeyId=req.AWSAccessKeyId)
        when, now = req.Timestamp, ids.utcnow()
        if abs(now - (when if when.tzinfo else when.replace(tzinfo=timezone.utc))) > MAX_SKEW:
            raise AWSError("RequestTimeTooSkewed", "The difference between the request time and the "
                           "current time is too large.", 403, RequestTime=timestamp,
                           ServerTime=ids.isoformat(now), MaxAllowedSkewMilliseconds=900000)
        if not hmac.compare_digest(sign(principal.secret_key, operation, timestamp), req.Signature):
            raise AWSError("SignatureDoesNotMatch", "The request signature we calculated does not match "
                           "the signature you provided. Check your key and signing method.", 403)
        return principal

    # ------------------------------------------------------------ buckets

    def list_all_my_buckets(self, ctx, req):
        out = self.walrus.list_buckets(ctx, {})
        buckets = [ListAllMyBucketsEntry(Name=b["Name"], CreationDate=b["CreationDate"])
                   for b in out["Buckets"]]
        return ListAllMyBucketsResponse(ListAllMyBucketsResponse=ListAllMyBucketsResult(
            Owner=_canonical_user(out["Owner"]), Buckets=ListAllMyBucketsList(Bucket=buckets)))

    def create_bucket(self, ctx, req):
        ctx.headers.update(_grant_headers(req.AccessControlList))
        self.walrus.create_bucket(ctx, {"Bucket": req.Bucket})
        return CreateBucketResponse(CreateBucketReturn=CreateBucketResult(BucketName=req.Bucket))

    def delete_bucket(self, ctx, req):
        self.walrus.delete_bucket(ctx, {"Bucket": req.Bucket})
        return DeleteBucketResponse(DeleteBucketResponse=Status(Code=204, Description="No Content"))

    def list_bucket(self, ctx, req):
        query = {name: getattr(req, name) for name in ("Prefix", "Marker", "MaxKeys", "Delimiter")
                 if getattr(req, name) is not None}
        out = self.walrus.list_objects(ctx, {"Bucket": req.Bucket, **query})
        contents = [ListEntry(Key=o["Key"], LastModified=o["LastModified"], ETag=o["ETag"], Size=o["Size"],
                              Owner=_canonical_user(o["Owner"]), StorageClass=o["StorageClass"])
                    for o in out.get("Contents", [])]
        return ListBucketResponse(ListBucketResponse=ListBucketResult(
            Name=out["Name"], Prefix=out["Prefix"], Marker=out["Marker"], NextMarker=out.get("NextMarker"),
            MaxKeys=out["MaxKeys"], Delimiter=out.get("Delimiter"), IsTruncated=out["IsTruncated"],
            Contents=contents, CommonPrefixes=[PrefixEntry(Prefix=p["Prefix"])
                                               for p in out.get("CommonPrefixes", [])]))

    # ------------------------------------------------------------ objects

    def put_object_inline(self, ctx, req):
        data = b"".join(req.Data or [])
        if len(data) > MAX_INLINE_BYTES:
            raise _inline_too_large(len(data))
        if req.ContentLength != len(data):
            raise AWSError("InvalidArgument", "ContentLength does not match the length of Data.", 400,
                           ArgumentName="ContentLength", ArgumentValue=req.ContentLength)
        if req.StorageClass not in (None, "STANDARD"):
            raise AWSError("InvalidStorageClass", "The storage class you specified is not valid", 400,
                           StorageClassRequested=req.StorageClass)
        ctx.headers.update(_grant_headers(req.AccessControlList))
        ctx.body = RequestBody(io.BytesIO(data), len(data), {})
        out = self.walrus.put_object(ctx, {"Bucket": req.Bucket, "Key": req.Key, **_put_fields(req.Metadata)})
        return PutObjectInlineResponse(PutObjectInlineResponse=PutObjectResult(
            ETag=out["ETag"], LastModified=utc(ids.now())))

    def get_object(self, ctx, req):
        return GetObjectResponse(GetObjectResponse=self._get(ctx, req, {}))

    def get_object_extended(self, ctx, req):
        conditions = {**_byte_range(req.ByteRangeStart, req.ByteRangeEnd),
                      **_conditions(IfMatch=", ".join(req.IfMatch or []) or None,
                                    IfNoneMatch=", ".join(req.IfNoneMatch or []) or None,
                                    IfModifiedSince=req.IfModifiedSince,
                                    IfUnmodifiedSince=req.IfUnmodifiedSince)}
        try:
            result = self._get(ctx, req, conditions)
        except AWSError as error:
            # If-Range: a ranged read whose If-Match/If-Unmodified-Since fails sends the whole object
            if not (error.code == "PreconditionFailed" and req.ReturnCompleteObjectOnConditionFailure
                    and "Range" in conditions):
                raise
            whole = {name: value for name, value in conditions.items()
                     if name not in ("Range", "IfMatch", "IfUnmodifiedSince")}
            result = self._get(ctx, req, whole)
        return GetObjectExtendedResponse(GetObjectResponse=result)

    def _get(self, ctx, req, conditions: dict) -> GetObjectResult:
        """The object's GetObjectResult under ``conditions`` (a Range and If-* fields): metadata and
        inline data as asked; a failed If-None-Match or If-Modified-Since answers Status 304."""
        query = {"Bucket": req.Bucket, "Key": req.Key}
        try:
            out = self.walrus.head_object(ctx, {**query, **conditions})
        except NotModified as unchanged:
            headers = dict(unchanged.headers)
            return GetObjectResult(Status=Status(Code=304, Description="Not Modified"), Data=None,
                                   LastModified=parsedate_to_datetime(headers["Last-Modified"]),
                                   ETag=headers["ETag"])
        data = None
        if req.GetData:
            if not req.InlineData:
                raise AWSError("NotImplemented", "Walrus returns object data inline only: DIME "
                               "attachments are not supported.", 501)
            if out["ContentLength"] > MAX_INLINE_BYTES:
                raise _inline_too_large(out["ContentLength"])
            out = self.walrus.get_object(ctx, {**query, **_conditions(Range=conditions.get("Range"))})
            with contextlib.closing(out["Body"]) as body:
                data = b"".join(body)
        status = Status(Code=206, Description="Partial Content") if out.get("ContentRange") else \
            Status(Code=200, Description="OK")
        return GetObjectResult(Status=status, Metadata=_metadata(out) if req.GetMetadata else None,
                               Data=[data] if data is not None else None,
                               LastModified=out["LastModified"], ETag=out["ETag"])

    def delete_object(self, ctx, req):
        self.walrus.delete_object(ctx, {"Bucket": req.Bucket, "Key": req.Key})
        return DeleteObjectResponse(DeleteObjectResponse=Status(Code=204, Description="No Content"))

    # ------------------------------------------------------------ ACLs

    def get_bucket_access_control_policy(self, ctx, req):
        policy = self.walrus.get_bucket_acl(ctx, {"Bucket": req.Bucket})
        return GetBucketAccessControlPolicyResponse(GetBucketAccessControlPolicyResponse=_policy(policy))

    def set_bucket_access_control_policy(self, ctx, req):
        owner = self.walrus.bucket_for(ctx, req.Bucket, acl.WRITE_ACP).owner
        self.walrus.put_bucket_acl(ctx, {"Bucket": req.Bucket, "AccessControlPolicy": {
            "Owner": {"ID": owner}, "Grants": _grants(req.AccessControlList)}})
        return SetBucketAccessControlPolicyResponse()

    def get_object_access_control_policy(self, ctx, req):
        policy = self.walrus.get_object_acl(ctx, {"Bucket": req.Bucket, "Key": req.Key})
        return GetObjectAccessControlPolicyResponse(GetObjectAccessControlPolicyResponse=_policy(policy))

    def set_object_access_control_policy(self, ctx, req):
        owner = self.walrus.object_for(ctx, req.Bucket, req.Key, acl.WRITE_ACP).owner
        self.walrus.put_object_acl(ctx, {"Bucket": req.Bucket, "Key": req.Key, "AccessControlPolicy": {
            "Owner": {"ID": owner}, "Grants": _grants(req.AccessControlList)}})
        return SetObjectAccessControlPolicyResponse()


# ---------------------------------------------------------------- SOAP <-> REST shapes

#: SOAP Metadata names that are object headers (the rest is user metadata), and their REST fields.
_HEADER_FIELDS = {"Content-Type": "ContentType", "Cache-Control": "CacheControl",
                  "Content-Disposition": "ContentDisposition", "Content-Encoding": "ContentEncoding",
                  "Content-Language": "ContentLanguage", "Expires": "Expires"}
_GRANT_HEADERS = {permission: header for header, permission in acl.GRANT_HEADERS.items()}
#: Grantee type -> (its key in an x-amz-grant-* header, its field).
_GRANTEE_KEYS = {"CanonicalUser": ("id", "ID"), "Group": ("uri", "URI"),
                 "AmazonCustomerByEmail": ("emailAddress", "EmailAddress")}
_MALFORMED_ACL = ("MalformedACLError", "The XML you provided was not well-formed or did not validate "
                  "against our published schema", 400)


def _raw_text(spyne_ctx, name: str) -> str | None:
    """An element of the request exactly as sent (the signature covers the Timestamp's text)."""
    element = spyne_ctx.in_body_doc.find(f"{{{NS}}}{name}")
    return element.text.strip() if element is not None and element.text else None


def _inline_too_large(size: int) -> AWSError:
    return AWSError("InlineDataTooLarge", "Inline data exceeds the maximum allowed size.", 400,
                    ProposedSize=size, MaxSizeAllowed=MAX_INLINE_BYTES)


def _conditions(**given) -> dict:
    return {name: value for name, value in given.items() if value is not None}


def _byte_range(start: int | None, end: int | None) -> dict:
    """The Range of a GetObjectExtended (inclusive offsets, either may be absent)."""
    if start is None and end is None:
        return {}
    return {"Range": f"bytes={start or 0}-{'' if end is None else end}"}


def _put_fields(entries) -> dict:
    """PutObject's header fields and user Metadata from SOAP Metadata entries."""
    headers = {name.lower(): field for name, field in _HEADER_FIELDS.items()}
    fields = {"Metadata": {}}
    for entry in entries or []:
        if entry.Name.lower() in headers:
            fields[headers[entry.Name.lower()]] = entry.Value
        else:
            fields["Metadata"][entry.Name.lower()] = entry.Value
    return fields


def _metadata(out: dict) -> list:
    """A GetObject's header fields and user metadata as SOAP Metadata entries."""
    entries = [MetadataEntry(Name=name, Value=out[field]) for name, field in _HEADER_FIELDS.items()
               if out.get(field) is not None]
    return entries + [MetadataEntry(Name=name, Value=value) for name, value in out["Metadata"].items()]


def _canonical_user(owner: dict) -> CanonicalUser:
    return CanonicalUser(ID=owner["ID"], DisplayName=owner.get("DisplayName"))


def _policy(policy: dict) -> AccessControlPolicy:
    """A stored ACL (botocore's shape) as an AccessControlPolicy."""
    grants = [Grant(Grantee=Group(URI=g["Grantee"]["URI"]) if g["Grantee"]["Type"] == "Group"
                    else _canonical_user(g["Grantee"]), Permission=g["Permission"])
              for g in policy["Grants"]]
    return AccessControlPolicy(Owner=_canonical_user(policy["Owner"]),
                               AccessControlList=AccessControlList(Grant=grants))


def _grants(access_control_list) -> list[dict]:
    """A SOAP AccessControlList as botocore's Grants (an untyped Grantee stays empty: malformed)."""
    grants = []
    for grant in getattr(access_control_list, "Grant", None) or []:
        kind, grantee = grant.Grantee.get_type_name(), {}
        if kind in _GRANTEE_KEYS:
            field = _GRANTEE_KEYS[kind][1]
            grantee = {"Type": kind, field: getattr(grant.Grantee, field)}
        grants.append({"Grantee": grantee, "Permission": grant.Permission})
    return grants


def _grant_headers(access_control_list) -> dict:
    """A SOAP AccessControlList as the x-amz-grant-* headers the REST create handlers read."""
    headers = {}
    for grant in _grants(access_control_list):
        grantee = grant["Grantee"]
        if not grantee:
            raise AWSError(*_MALFORMED_ACL)
        key, field = _GRANTEE_KEYS[grantee["Type"]]
        header, item = _GRANT_HEADERS[grant["Permission"]], f'{key}="{grantee[field]}"'
        headers[header] = f"{headers[header]}, {item}" if header in headers else item
    return headers


# ---------------------------------------------------------------- the WSGI app

def is_soap_request(environ) -> bool:
    """Whether a request to the S3 port is for the SOAP endpoint: a POST to /soap with a
    SOAPAction header (every SOAP 1.1 client sends one) or a text/xml body and no query, or
    GET /soap?wsdl.  No REST request looks like that: its POSTs to a bucket named "soap" are
    multipart/form-data uploads or carry a query (?delete), and never a SOAPAction."""
    if environ.get("PATH_INFO") not in (SOAP_PATH, SOAP_PATH + "/"):
        return False
    method, query = environ.get("REQUEST_METHOD"), environ.get("QUERY_STRING", "")
    if method == "GET":
        return query.lower() == "wsdl"
    return method == "POST" and ("HTTP_SOAPACTION" in environ or (
        environ.get("CONTENT_TYPE", "").startswith("text/xml") and not query))


class _SoapWsgi(WsgiApplication):
    """spyne's WSGI face, with spyne's own refusals (malformed XML, a message that breaks the
    schema, a request too long) answered as the S3 faults for them."""

    def handle_error(self, p_ctx, others, error, start_response):
        if not isinstance(error, S3Fault):
            error = S3Fault(_spyne_error(error))
            p_ctx.in_error = p_ctx.out_error = error
        return super().handle_error(p_ctx, others, error, start_response)


def _spyne_error(fault) -> AWSError:
    if isinstance(fault, RequestTooLongError):
        return AWSError("MaxMessageLengthExceeded", "Your request was too big.", 400)
    if getattr(fault, "faultcode", "").startswith("Client"):
        return AWSError("InvalidSOAPRequest", f"The SOAP request body is invalid: {fault.faultstring}", 400)
    log.error("SOAP request failed in spyne: %r", fault)
    return AWSError("InternalError", "We encountered an internal error. Please try again.", 500)


#: Each SOAP operation: its request and response elements and the SoapFrontend method serving it.
_OPERATIONS = [
    ("ListAllMyBuckets", ListAllMyBuckets, ListAllMyBucketsResponse, "list_all_my_buckets"),
    ("CreateBucket", CreateBucket, CreateBucketResponse, "create_bucket"),
    ("DeleteBucket", DeleteBucket, DeleteBucketResponse, "delete_bucket"),
    ("ListBucket", ListBucket, ListBucketResponse, "list_bucket"),
    ("PutObjectInline", PutObjectInline, PutObjectInlineResponse, "put_object_inline"),
    ("GetObject", GetObject, GetObjectResponse, "get_object"),
    ("GetObjectExtended", GetObjectExtended, GetObjectExtendedResponse, "get_object_extended"),
    ("DeleteObject", DeleteObject, DeleteObjectResponse, "delete_object"),
    ("GetBucketAccessControlPolicy", GetBucketAccessControlPolicy, GetBucketAccessControlPolicyResponse,
     "get_bucket_access_control_policy"),
    ("SetBucketAccessControlPolicy", SetBucketAccessControlPolicy, SetBucketAccessControlPolicyResponse,
     "set_bucket_access_control_policy"),
    ("GetObjectAccessControlPolicy", GetObjectAccessControlPolicy, GetObjectAccessControlPolicyResponse,
     "get_object_access_control_policy"),
    ("SetObjectAccessControlPolicy", SetObjectAccessControlPolicy, SetObjectAccessControlPolicyResponse,
     "set_object_access_control_policy"),
]


def soap_application(walrus_app) -> WsgiApplication:
    """The S3 SOAP WSGI app over ``walrus_app`` (mount it where :func:`is_soap_request` says);
    it answers GET /soap?wsdl with its WSDL."""
    frontend = SoapFrontend(walrus_app)

    def method(name, request_type, response_type, handler):
        def call(ctx, req):
            return frontend.call(ctx, name, req, handler)
        call.__name__ = name
        return soap.operation(name, request_type, response_type)(call)

    AmazonS3 = type("AmazonS3", (ServiceBase,), {
        name: method(name, request_type, response_type, getattr(frontend, handler))
        for name, request_type, response_type, handler in _OPERATIONS})

    app = Application([AmazonS3], tns=NS, name="AmazonS3", in_protocol=Soap11(validator="lxml"),
                      out_protocol=Soap11(polymorphic=True))
    return _SoapWsgi(app, max_content_length=MAX_REQUEST_BYTES)

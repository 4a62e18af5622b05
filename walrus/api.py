"""Walrus's S3 REST endpoint: one WSGI app, one handler per S3 operation.

A request flows: signature check -> S3Protocol.parse -> access check -> handler -> store,
and the handler's boto3-shaped dict goes back through S3Protocol.serialize.  Every
AWSError is rendered once, as the S3 error document; anything else is logged with the
request id and answers 500 InternalError.  Object operations live in walrus/objects.py,
multipart uploads in walrus/multipart.py; both are mixins of :class:`WalrusApp`.
"""

import base64
import binascii
import functools
import ipaddress
import logging
import re
from urllib.parse import quote

from eucacore import policy
from eucacore.awsapi.auth import verify_request
from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.s3 import S3Protocol
from eucacore.ids import new_request_id
from eucacore.principal import Principal

from . import acl, chunked, nodeauth, sigv4
from . import store as st
from .listing import OPERATIONS as LISTINGS
from .listing import ListedObjects
from .listing import serialize as serialize_listing
from .multipart import MultipartHandlers
from .objects import NotModified, ObjectHandlers, utc
from .postobject import PostObjectHandler
from .request import RequestBody, RequestContext

log = logging.getLogger("eucalyptus.walrus")

MAX_KEY_BYTES = 1024
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,254}$")
MIB = 2**20
ACCESS_DENIED = ("AccessDenied", "Access Denied", 403)
#: Characters a key may hold that XML 1.0 text cannot; listings send them as &#..; references, as S3 does.
_UNSAFE_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_MARK = "\ue000".encode()
_MARKED = re.compile("\ue000([0-9a-f]{2})\ue001".encode())

#: The IAM action each S3 operation needs, and whether its resource is the object (else the bucket).
_ACTIONS = {
    "ListBuckets": ("s3:ListAllMyBuckets", None), "CreateBucket": ("s3:CreateBucket", False),
    "HeadBucket": ("s3:ListBucket", False), "DeleteBucket": ("s3:DeleteBucket", False),
    "GetBucketLocation": ("s3:GetBucketLocation", False), "ListObjects": ("s3:ListBucket", False),
    "ListObjectsV2": ("s3:ListBucket", False), "PutObject": ("s3:PutObject", True),
    "GetObject": ("s3:GetObject", True), "HeadObject": ("s3:GetObject", True),
    "DeleteObject": ("s3:DeleteObject", True), "CopyObject": ("s3:PutObject", True),
    "DeleteObjects": ("s3:DeleteObject", False),
    "GetBucketAcl": ("s3:GetBucketAcl", False), "PutBucketAcl": ("s3:PutBucketAcl", False),
    "GetObjectAcl": ("s3:GetObjectAcl", True), "PutObjectAcl": ("s3:PutObjectAcl", True),
    "CreateMultipartUpload": ("s3:PutObject", True), "UploadPart": ("s3:PutObject", True),
    "UploadPartCopy": ("s3:PutObject", True), "CompleteMultipartUpload": ("s3:PutObject", True),
    "AbortMultipartUpload": ("s3:AbortMultipartUpload", True),
    "ListParts": ("s3:ListMultipartUploadParts", True),
    "ListMultipartUploads": ("s3:ListBucketMultipartUploads", False),
    "GetBucketPolicy": ("s3:GetBucketPolicy", False), "GetBucketCors": ("s3:GetBucketCORS", False),
    "GetBucketVersioning": ("s3:GetBucketVersioning", False),
}


def check_bucket_name(name: str) -> None:
    """InvalidBucketName unless ``name`` follows the original Walrus rules."""
    shaped_like_ip = False
    try:
        ipaddress.IPv4Address(name)
        shaped_like_ip = True
    except ValueError:
        shaped_like_ip = bool(re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name))
    if not _BUCKET_NAME.match(name) or shaped_like_ip:
        raise AWSError("InvalidBucketName", "The specified bucket is not valid.", 400,
                       BucketName=name)


def _store_error(exc: st.StoreError, bucket: str | None, key: str | None) -> AWSError:
    if isinstance(exc, st.NoSuchBucket):
        return AWSError("NoSuchBucket", "The specified bucket does not exist", 404,
                        BucketName=bucket)
    if isinstance(exc, st.NoSuchKey):
        return AWSError("NoSuchKey", "The specified key does not exist.", 404, Key=key)
    if isinstance(exc, st.NoSuchUpload):
        return AWSError("NoSuchUpload", "The specified upload does not exist. The upload ID may be "
                        "invalid, or the upload may have been aborted or completed.", 404, UploadId=str(exc))
    if isinstance(exc, st.BucketNotEmpty):
        return AWSError("BucketNotEmpty", "The bucket you tried to delete is not empty", 409,
                        BucketName=bucket)
    if isinstance(exc, st.IncompleteBody):
        return AWSError("IncompleteBody", "You did not provide the number of bytes "
                        "specified by the Content-Length HTTP header", 400)
    return AWSError("InternalError", "We encountered an internal error. Please try again.", 500)


class WalrusApp(ObjectHandlers, MultipartHandlers, PostObjectHandler):
    """The S3 REST WSGI application over a :class:`walrus.store.WalrusStore`.

    ``lookup(access_key)`` returns the key's :class:`~eucacore.principal.Principal`
    (account, policies, storage quotas and limits) or None; ``service_host`` enables
    virtual-host-style bucket addressing; ``max_buckets_per_account`` is the
    bucket quota of principals that carry none; ``node_auth`` (a
    :class:`walrus.nodeauth.NodeAuth`) lets node controllers read images with
    their certificates.
    """

    def __init__(self, store: st.WalrusStore, lookup, service_host: str | None = None,
                 max_buckets_per_account: int = 100, node_auth: nodeauth.NodeAuth | None = None):
        self.store, self.lookup, self.service_host = store, lookup, service_host
        self.node_auth = node_auth
        self.max_buckets_per_account = max_buckets_per_account
        self.protocol = S3Protocol()

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ, start_response):
        request_id = environ.get("eucalyptus.request_id") or new_request_id()
        method = environ["REQUEST_METHOD"]
        raw_path = _raw_path(environ)
        try:
            status, headers, body = self._handle(environ, request_id, method, raw_path)
        except NotModified as unchanged:
            status, headers, body = 304, [("x-amz-request-id", request_id)] + unchanged.headers, b""
        except AWSError as error:
            status, headers, body = self.protocol.serialize_error(
                error, request_id, resource=raw_path)
        except Exception:
            log.exception("request %s: %s %s failed", request_id, method, raw_path)
            error = AWSError("InternalError",
                             "We encountered an internal error. Please try again.", 500)
            status, headers, body = self.protocol.serialize_error(error, request_id)
        if isinstance(body, (bytes, bytearray)):
            if status != 304 and not any(name.lower() == "content-length" for name, _ in headers):
                headers.append(("Content-Length", str(len(body))))
            if method == "HEAD":
                body = b""
            body = [bytes(body)]
        elif method == "HEAD":
            _close(body)
            body = [b""]
        start_response(f"{status} {_REASONS.get(status, 'Status')}", headers)
        return body

    def _handle(self, environ, request_id, method, raw_path):
        headers = _headers(environ)
        query_string = environ.get("QUERY_STRING", "")
        if self.node_auth is not None and self.node_auth.applies(headers):
            credentials = self.node_auth.verify(method, raw_path, query_string, headers)
        else:
            credentials = sigv4.verify_header(method, raw_path, query_string, headers, self.lookup) \
                or verify_request(service="s3", method=method, raw_path=raw_path, query_string=query_string,
                                  headers=headers, body=None, lookup=self.lookup, allow_anonymous=True,
                                  service_host=self.service_host)
        if method == "POST" and headers.get("content-type", "").startswith("multipart/form-data"):
            return self.post_object(environ, request_id, raw_path, headers)
        body = self._body(environ, headers, credentials)
        operation, params = self.protocol.parse(
            method, raw_path, query_string, headers, body,
            host=headers.get("host"), service_host=self.service_host)
        handler = getattr(self, _snake(operation), None)
        if handler is None:
            raise AWSError("NotImplemented", f"{operation} is not implemented by Walrus", 501)
        ctx = RequestContext(request_id, credentials, headers, body)
        self.authorize(credentials, operation, params)
        if operation in ("PutObject", "UploadPart") and body.remaining is None and \
                "chunked" not in headers.get("transfer-encoding", ""):
            raise AWSError("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
        bucket, key = params.get("Bucket"), params.get("Key")
        try:
            output = handler(ctx, params)
        except st.StoreError as exc:
            raise _store_error(exc, bucket, key) from None
        if operation in LISTINGS:
            status, out_headers, out_body = serialize_listing(self.protocol, operation, output, request_id)
        else:
            status, out_headers, out_body = self.protocol.serialize(operation, output, request_id)
        if isinstance(out_body, bytes) and _MARK in out_body:
            out_body = _MARKED.sub(lambda m: b"&#%d;" % int(m.group(1), 16), out_body)
            out_headers = [(n, v) for n, v in out_headers if n.lower() != "content-length"]
        return status, out_headers + ctx.extra_headers, out_body

    @staticmethod
    def _body(environ, headers: dict, credentials) -> RequestBody:
        """The payload: the raw input bounded by Content-Length, or the aws-chunked decoder."""
        length = environ.get("CONTENT_LENGTH")
        raw = RequestBody(environ["wsgi.input"], int(length) if length else None, {})
        if not length and "chunked" not in headers.get("transfer-encoding", ""):
            raw.remaining = 0
        claimed = headers.get("x-amz-content-sha256", "")
        if "aws-chunked" not in headers.get("content-encoding", "") and not claimed.startswith("STREAMING-"):
            return RequestBody(raw, raw.remaining, headers)
        decoded = headers.get("x-amz-decoded-content-length", "")
        if not decoded.isdigit():
            raise AWSError("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
        signing = None
        if claimed.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
            if credentials is None:
                raise AWSError(*ACCESS_DENIED)
            signing = chunked.signing_from_request(
                credentials.secret_key, headers.get("authorization", ""),
                headers.get("x-amz-date") or headers.get("date", ""))
        elif claimed not in ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", "UNSIGNED-PAYLOAD", ""):
            raise AWSError("InvalidArgument", f"Unsupported x-amz-content-sha256 value: {claimed}", 400,
                           ArgumentName="x-amz-content-sha256", ArgumentValue=claimed)
        reader = chunked.AwsChunkedReader(raw, decoded_length=int(decoded), signing=signing,
                                          trailer=headers.get("x-amz-trailer"))
        return RequestBody(reader, int(decoded), {**headers, "x-amz-content-sha256": ""})

    # ------------------------------------------------------------ access

    def authorize(self, principal: Principal | None, operation: str, params: dict) -> None:
        """AccessDenied unless the principal's policies allow the operation's action on its bucket
        or object (account admins may do everything; ACLs alone govern anonymous requests; a
        node controller may only read objects)."""
        if isinstance(principal, nodeauth.NodePrincipal):
            nodeauth.check_operation(operation)
            return
        if principal is None or principal.is_account_admin:
            return
        action, on_object = _ACTIONS.get(operation, (f"s3:{operation}", False))
        if operation == "DeleteObjects":
            return  # each key is authorized on its own, and refused keys are reported as errors
        if on_object is None or not params.get("Bucket"):
            resource = "*"
        else:
            resource = policy.s3_arn(params["Bucket"], params.get("Key") if on_object else None)
        if not principal.allows(action, [resource]):
            raise AWSError(*ACCESS_DENIED)

    @staticmethod
    def may(ctx, owner: str, grants: dict | None, permission: str) -> bool:
        """Whether the requester holds ``permission`` on a resource of ``owner`` with ACL
        ``grants`` (None: private); the owner's account and the cloud admin always do."""
        principal = ctx.credentials
        if principal is not None and (principal.is_cloud_admin or principal.account_id == owner):
            return True
        return acl.permits(grants or acl.canned("private", owner), ctx.account, permission)

    def bucket_for(self, ctx, name: str, permission: str) -> st.Bucket:
        """The bucket if the requester holds ``permission`` on it: NoSuchBucket, AccessDenied.
        Bucket names are global, so another account's private bucket answers AccessDenied as
        S3 does, whether or not the key asked for exists."""
        bucket = self.store.get_bucket(name)
        if not self.may(ctx, bucket.owner, bucket.acl, permission):
            raise AWSError(*ACCESS_DENIED)
        return bucket

    def object_for(self, ctx, bucket: str, key: str, permission: str) -> st.ObjectInfo:
        """The object if the requester holds ``permission`` on it.  A missing key answers
        NoSuchKey only to those who may list the bucket, AccessDenied to others."""
        try:
            info = self.store.head_object(bucket, key)
        except st.NoSuchKey:
            self.bucket_for(ctx, bucket, acl.READ)
            raise
        if not self.may(ctx, info.owner, info.acl, permission):
            raise AWSError(*ACCESS_DENIED)
        return info

    def open_for(self, ctx, bucket: str, key: str):
        """(ObjectInfo, open file) of an object the requester may READ; the caller closes it."""
        try:
            info, file = self.store.open_object(bucket, key)
        except st.NoSuchKey:
            self.bucket_for(ctx, bucket, acl.READ)
            raise
        if not self.may(ctx, info.owner, info.acl, acl.READ):
            file.close()
            raise AWSError(*ACCESS_DENIED)
        return info, file

    def check_room(self, ctx, bucket: st.Bucket, key: str, incoming: int | None,
                   replaced: int | None = None) -> None:
        """EntityTooLarge (as the original answered) if ``incoming`` more bytes in ``bucket/key``
        would pass the account's storage quota or the cloud's bucket size or object size limits
        (walrus.storagemaxbucketsizeinmb, walrus.storagemaxobjectsizeinmb); an object being
        replaced frees its size.  Checked before an upload, to refuse early, and again once its
        real size is known (chunked uploads have no length)."""
        if ctx.credentials is None or incoming is None:
            return
        limits = ctx.credentials.quotas
        object_limit = limits.get("max-object-size-mib", -1)
        if 0 <= object_limit and incoming > object_limit * MIB:
            raise AWSError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed object "
                           "size.", 400, ProposedSize=incoming, MaxSizeAllowed=object_limit * MIB)
        quota, bucket_limit = limits.get("bucket-storage-mib", -1), limits.get("max-bucket-size-mib", -1)
        if quota < 0 and bucket_limit < 0:
            return
        if replaced is None:
            try:
                replaced = self.store.head_object(bucket.name, key).size
            except st.NoSuchKey:
                replaced = 0
        if bucket_limit >= 0:
            used = self.store.bucket_bytes(bucket.name)
            if used - replaced + incoming > bucket_limit * MIB:
                raise AWSError("EntityTooLarge", f"Your proposed upload exceeds the bucket size limit "
                               f"of {bucket_limit} MiB ({used} bytes used).", 400, ProposedSize=incoming,
                               MaxSizeAllowed=max(bucket_limit * MIB - used + replaced, 0))
        if quota >= 0 and bucket.owner == ctx.account:
            used = self.store.account_bytes(ctx.account)
            if used - replaced + incoming > quota * MIB:
                raise AWSError("EntityTooLarge", f"Your proposed upload exceeds your account's storage "
                               f"quota of {quota} MiB ({used} bytes used).", 400, ProposedSize=incoming,
                               MaxSizeAllowed=max(quota * MIB - used + replaced, 0))

    @staticmethod
    def check_key(key: str) -> None:
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise AWSError("KeyTooLongError", "Your key is too long", 400)

    # ------------------------------------------------------------ buckets

    def list_buckets(self, ctx, req):
        if ctx.credentials is None:
            raise AWSError(*ACCESS_DENIED)
        buckets = self.store.list_buckets(None if ctx.credentials.is_cloud_admin else ctx.account)
        return {"Buckets": [{"Name": b.name, "CreationDate": utc(b.created)} for b in buckets],
                "Owner": acl.owner(ctx.account)}

    def create_bucket(self, ctx, req):
        name = req["Bucket"]
        if ctx.credentials is None:
            raise AWSError(*ACCESS_DENIED)
        check_bucket_name(name)
        location = (req.get("CreateBucketConfiguration") or {}).get("LocationConstraint") or None
        grants = acl.from_request(req, ctx.headers, ctx.account)
        try:
            self.store.create_bucket(name, ctx.account,
                                     ctx.credentials.quotas.get("buckets", self.max_buckets_per_account),
                                     acl=grants, location=location)
        except st.TooManyBuckets:
            raise AWSError("TooManyBuckets", "You have attempted to create more buckets "
                           "than allowed", 400, BucketName=name) from None
        except st.BucketExists as exc:
            if exc.owner == ctx.account:
                raise AWSError("BucketAlreadyOwnedByYou", "Your previous request to create "
                               "the named bucket succeeded and you already own it.", 409,
                               BucketName=name) from None
            raise AWSError("BucketAlreadyExists", "The requested bucket name is not "
                           "available. The bucket namespace is shared by all users of the "
                           "system. Please select a different name and try again.", 409,
                           BucketName=name) from None
        return {"Location": f"/{name}"}

    def head_bucket(self, ctx, req):
        self.bucket_for(ctx, req["Bucket"], acl.READ)
        return {}

    def delete_bucket(self, ctx, req):
        self._bucket_owned(ctx, req["Bucket"])
        self.store.delete_bucket(req["Bucket"])
        return {}

    def get_bucket_location(self, ctx, req):
        return {"LocationConstraint": self._bucket_owned(ctx, req["Bucket"]).location}

    def get_bucket_acl(self, ctx, req):
        bucket = self.bucket_for(ctx, req["Bucket"], acl.READ_ACP)
        return bucket.acl or acl.canned("private", bucket.owner)

    def put_bucket_acl(self, ctx, req):
        bucket = self.bucket_for(ctx, req["Bucket"], acl.WRITE_ACP)
        self.store.set_bucket_acl(bucket.name, self.acl_from_put(ctx, req, bucket.owner))
        return {}

    def get_bucket_policy(self, ctx, req):
        self._bucket_owned(ctx, req["Bucket"])
        raise AWSError("NoSuchBucketPolicy", "The bucket policy does not exist", 404, BucketName=req["Bucket"])

    def get_bucket_cors(self, ctx, req):
        self._bucket_owned(ctx, req["Bucket"])
        raise AWSError("NoSuchCORSConfiguration", "The CORS configuration does not exist", 404,
                       BucketName=req["Bucket"])

    def get_bucket_versioning(self, ctx, req):
        self._bucket_owned(ctx, req["Bucket"])
        return {}  # never enabled: S3 answers an empty VersioningConfiguration

    def _bucket_owned(self, ctx, name: str) -> st.Bucket:
        """The bucket if the requester's account owns it (or is the cloud admin); AccessDenied."""
        bucket = self.store.get_bucket(name)
        if not self.may(ctx, bucket.owner, None, acl.FULL_CONTROL):
            raise AWSError(*ACCESS_DENIED)
        return bucket

    # ------------------------------------------------------------ listings

    def list_objects_v2(self, ctx, req):
        bucket = req["Bucket"]
        owner = self.bucket_for(ctx, bucket, acl.READ).owner
        token = req.get("ContinuationToken")
        start_after = req.get("StartAfter", "")
        if token is not None:
            try:
                start_after = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
            except (binascii.Error, ValueError):
                raise AWSError("InvalidArgument", "The continuation token provided is "
                               "incorrect", 400, ArgumentName="continuation-token") from None
        listing, output = self._list(bucket, owner, req, start_after, req.get("FetchOwner"))
        output["KeyCount"] = len(listing)
        if token is not None:
            output["ContinuationToken"] = token
        if "StartAfter" in req:
            output["StartAfter"] = self._encode(req, req["StartAfter"])
        if listing.is_truncated:
            output["NextContinuationToken"] = base64.urlsafe_b64encode(
                listing.last.encode("utf-8")).decode()
        return output

    def list_objects(self, ctx, req):
        bucket = req["Bucket"]
        owner = self.bucket_for(ctx, bucket, acl.READ).owner
        marker = req.get("Marker", "")
        listing, output = self._list(bucket, owner, req, marker, True)
        output["Marker"] = self._encode(req, marker)
        if listing.is_truncated and req.get("Delimiter"):
            output["NextMarker"] = self._encode(req, listing.last)
        return output

    def _list(self, bucket, owner, req, start_after, with_owner):
        max_keys = req.get("MaxKeys", 1000)
        if req.get("EncodingType") not in (None, "url"):
            raise AWSError("InvalidArgument", "Invalid Encoding Method specified in Request", 400,
                           ArgumentName="encoding-type", ArgumentValue=req["EncodingType"])
        if max_keys < 0:
            raise AWSError("InvalidArgument", "max-keys must be a non-negative integer", 400,
                           ArgumentName="max-keys", ArgumentValue=max_keys)
        prefix, delimiter = req.get("Prefix", ""), req.get("Delimiter", "")
        listing = self.store.list_objects(bucket, prefix=prefix, delimiter=delimiter,
                                          start_after=start_after,
                                          max_keys=min(max_keys, 1000))
        contents = ListedObjects(listing.contents, lambda key: self._encode(req, key),
                                 owner if with_owner else None)
        output = {
            "Name": bucket, "Prefix": self._encode(req, prefix), "MaxKeys": max_keys,
            "IsTruncated": listing.is_truncated, "Contents": contents,
            "CommonPrefixes": [{"Prefix": self._encode(req, p)}
                               for p in listing.common_prefixes],
        }
        if delimiter:
            output["Delimiter"] = self._encode(req, delimiter)
        if req.get("EncodingType") == "url":
            output["EncodingType"] = "url"
        if not output["Contents"]:
            del output["Contents"]
        if not output["CommonPrefixes"]:
            del output["CommonPrefixes"]
        return listing, output

    @staticmethod
    def _encode(req, text):
        """Keys as sent back: URL-encoded when the client asked (botocore always does); else
        characters XML 1.0 cannot carry are marked, to go out as character references."""
        if req.get("EncodingType") == "url":
            return quote(text, safe="/")
        return _UNSAFE_XML.sub(lambda m: f"\ue000{ord(m.group()):02x}\ue001", text)


# ---------------------------------------------------------------- helpers

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content", 303: "See Other",
            304: "Not Modified", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 411: "Length Required",
            412: "Precondition Failed", 416: "Requested Range Not Satisfiable",
            500: "Internal Server Error", 501: "Not Implemented"}


@functools.cache  # operation names come from botocore's model: a bounded set
def _snake(operation: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", operation).lower()


def _headers(environ) -> dict:
    """The request's header fields by lower-case name, from the WSGI environ."""
    headers = {_header_name(name): value for name, value in environ.items() if name[:5] == "HTTP_"}
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers


@functools.lru_cache(maxsize=1024)  # clients send the same few dozen header names over and over
def _header_name(key: str) -> str:
    """``HTTP_X_AMZ_DATE`` -> ``x-amz-date``."""
    return key[5:].replace("_", "-").lower()


def _raw_path(environ) -> str:
    """The path exactly as the client sent it (percent-encoded), for the signature."""
    uri = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        path = uri.split("?", 1)[0]
        if "://" in path:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        return path or "/"
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
    return quote(path, safe="/~")


def _close(body):
    close = getattr(body, "close", None)
    if close:
        close()

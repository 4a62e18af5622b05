"""Walrus's S3 REST endpoint: one WSGI app, one handler per S3 operation.

A request flows: signature check -> S3Protocol.parse -> handler -> store, and the
handler's boto3-shaped dict goes back through S3Protocol.serialize.  Every
AWSError is rendered once, as the S3 error document; anything else is logged
with the request id and answers 500 InternalError.
"""

import base64
import binascii
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from urllib.parse import quote

from eucacore import policy
from eucacore.awsapi.auth import verify_request
from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.s3 import S3Protocol
from eucacore.ids import new_request_id
from eucacore.principal import Principal

from . import store as st

log = logging.getLogger("eucalyptus.walrus")

CHUNK = 1024 * 1024
#: The largest non-object body (bucket configuration XML) read into memory.
MAX_SMALL_BODY = 1024 * 1024
MAX_KEY_BYTES = 1024
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,254}$")
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_UNSUPPORTED_CHECKSUMS = ("ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1")
_STORED_HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage")
MIB = 2**20

#: The IAM action each S3 operation needs, and whether its resource is the object (else the bucket).
_ACTIONS = {
    "ListBuckets": ("s3:ListAllMyBuckets", None), "CreateBucket": ("s3:CreateBucket", False),
    "HeadBucket": ("s3:ListBucket", False), "DeleteBucket": ("s3:DeleteBucket", False),
    "GetBucketLocation": ("s3:GetBucketLocation", False), "ListObjects": ("s3:ListBucket", False),
    "ListObjectsV2": ("s3:ListBucket", False), "PutObject": ("s3:PutObject", True),
    "GetObject": ("s3:GetObject", True), "HeadObject": ("s3:GetObject", True),
    "DeleteObject": ("s3:DeleteObject", True),
}


@dataclass
class RequestContext:
    """What a handler knows about the request besides its parsed input."""

    request_id: str
    credentials: Principal
    headers: dict
    body: "RequestBody"

    @property
    def account(self) -> str:
        return self.credentials.account_id


class RequestBody:
    """The request's input stream, bounded by Content-Length.

    ``read(n)`` streams (PutObject; the store checks those bytes).  A whole-body
    ``read()`` is for small XML payloads: it is capped and checked here against
    a hex x-amz-content-sha256, since the signature check trusted that header.
    """

    def __init__(self, stream, length: int | None, claimed_sha256: str | None):
        self.stream, self.remaining, self.claimed = stream, length, claimed_sha256

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self._read_all()
        if self.remaining is not None:
            size = min(size, self.remaining)
            if size == 0:
                return b""
        data = self.stream.read(size)
        if self.remaining is not None:
            self.remaining -= len(data)
        return data

    def _read_all(self) -> bytes:
        if self.remaining is not None and self.remaining > MAX_SMALL_BODY:
            raise AWSError("MaxMessageLengthExceeded", "Your request was too big.", 400)
        data = self.read(self.remaining if self.remaining is not None else MAX_SMALL_BODY + 1)
        if len(data) > MAX_SMALL_BODY:
            raise AWSError("MaxMessageLengthExceeded", "Your request was too big.", 400)
        check_content_sha256(self.claimed, sha256(data).digest())
        return data


def check_content_sha256(claimed: str | None, actual: bytes) -> None:
    """XAmzContentSHA256Mismatch unless a hex x-amz-content-sha256 matches ``actual``."""
    if claimed and _HEX_SHA256.match(claimed.lower()):
        if not hmac.compare_digest(claimed.lower(), actual.hex()):
            raise AWSError("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' "
                           "header does not match what was computed.", 400,
                           ClientComputedContentSHA256=claimed,
                           S3ComputedContentSHA256=actual.hex())


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
    if isinstance(exc, st.BucketNotEmpty):
        return AWSError("BucketNotEmpty", "The bucket you tried to delete is not empty", 409,
                        BucketName=bucket)
    if isinstance(exc, st.IncompleteBody):
        return AWSError("IncompleteBody", "You did not provide the number of bytes "
                        "specified by the Content-Length HTTP header", 400)
    return AWSError("InternalError", "We encountered an internal error. Please try again.", 500)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), timezone.utc)


def _parse_range(text: str | None, size: int):
    """(first, last) of a single satisfiable byte range, None to send it all.

    Malformed or multiple ranges are ignored, as S3 does; an unsatisfiable one is
    InvalidRange.
    """
    if not text:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", text)
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _invalid_range(text, size)
        return max(0, size - suffix), size - 1
    first = int(first)
    if last != "" and int(last) < first:
        return None  # "bytes=5-2" is not a valid range: ignored, as S3 does
    if first >= size:
        raise _invalid_range(text, size)
    return first, size - 1 if last == "" else min(int(last), size - 1)


def _invalid_range(text, size):
    return AWSError("InvalidRange", "The requested range is not satisfiable", 416,
                    RangeRequested=text, ActualObjectSize=size)


class FileChunks:
    """A WSGI body: ``length`` bytes of an open file from ``offset``, 1 MiB at a time."""

    def __init__(self, file, offset: int, length: int):
        self.file, self.offset, self.length = file, offset, length

    def __iter__(self):
        self.file.seek(self.offset)
        left = self.length
        while left > 0:
            chunk = self.file.read(min(CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk

    def close(self):
        self.file.close()


class WalrusApp:
    """The S3 REST WSGI application over a :class:`walrus.store.WalrusStore`.

    ``lookup(access_key)`` returns the key's :class:`~eucacore.principal.Principal`
    (account, policies, storage quotas) or None; ``service_host`` enables
    virtual-host-style bucket addressing; ``max_buckets_per_account`` is the
    bucket quota of principals that carry none.
    """

    def __init__(self, store: st.WalrusStore, lookup, service_host: str | None = None,
                 max_buckets_per_account: int = 100):
        self.store, self.lookup, self.service_host = store, lookup, service_host
        self.max_buckets_per_account = max_buckets_per_account
        self.protocol = S3Protocol()

    # ------------------------------------------------------------ WSGI

    def __call__(self, environ, start_response):
        request_id = environ.get("eucalyptus.request_id") or new_request_id()
        method = environ["REQUEST_METHOD"]
        raw_path = _raw_path(environ)
        try:
            operation, status, headers, body = self._handle(environ, request_id, method, raw_path)
        except AWSError as error:
            status, headers, body = self.protocol.serialize_error(
                error, request_id, resource=raw_path)
        except Exception:
            log.exception("request %s: %s %s failed", request_id, method, raw_path)
            error = AWSError("InternalError",
                             "We encountered an internal error. Please try again.", 500)
            status, headers, body = self.protocol.serialize_error(error, request_id)
        if isinstance(body, (bytes, bytearray)):
            if not any(name.lower() == "content-length" for name, _ in headers):
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
        credentials = verify_request(
            service="s3", method=method, raw_path=raw_path, query_string=query_string,
            headers=headers, body=None, lookup=self.lookup, allow_anonymous=False,
            service_host=self.service_host)
        lowered = headers  # _headers already lower-cases the names
        claimed = lowered.get("x-amz-content-sha256", "")
        if "aws-chunked" in lowered.get("content-encoding", "") or claimed.startswith("STREAMING-"):
            raise AWSError("NotImplemented", "aws-chunked (streaming signed) uploads are not "
                           "supported by Walrus yet; send the payload unchunked.", 501)
        length = environ.get("CONTENT_LENGTH")
        body = RequestBody(environ["wsgi.input"], int(length) if length else 0, claimed)
        operation, params = self.protocol.parse(
            method, raw_path, query_string, headers, body,
            host=lowered.get("host"), service_host=self.service_host)
        handler = getattr(self, _snake(operation), None)
        if handler is None:
            raise AWSError("NotImplemented", f"{operation} is not implemented by Walrus", 501)
        ctx = RequestContext(request_id, credentials, lowered, body)
        _authorize(credentials, operation, params)
        if operation == "PutObject" and not length:
            if "chunked" in lowered.get("transfer-encoding", ""):
                body.remaining = None
            elif method == "PUT" and length is None:
                raise AWSError("MissingContentLength",
                               "You must provide the Content-Length HTTP header.", 411)
        bucket, key = params.get("Bucket"), params.get("Key")
        try:
            output = handler(ctx, params)
        except st.StoreError as exc:
            raise _store_error(exc, bucket, key) from None
        status, out_headers, out_body = self.protocol.serialize(operation, output, request_id)
        return operation, status, out_headers, out_body

    # ------------------------------------------------------------ access

    def _owned_bucket(self, ctx: RequestContext, name: str) -> st.Bucket:
        """The bucket if the caller's account owns it (or the caller is the cloud admin):
        NoSuchBucket, AccessDenied.  Bucket names are global, so another account's bucket
        answers AccessDenied as S3 does, whether or not the key asked for exists."""
        bucket = self.store.get_bucket(name)
        if bucket.owner != ctx.account and not ctx.credentials.is_cloud_admin:
            raise AWSError("AccessDenied", "Access Denied", 403)
        return bucket

    def _check_storage_quota(self, ctx: RequestContext, bucket: st.Bucket, key: str,
                             incoming: int | None = None) -> None:
        """EntityTooLarge (as the original answered) if an upload of ``incoming`` bytes (by
        default the request's Content-Length) would take the account past its storage quota;
        an object being replaced frees its size.  Checked before the upload, to refuse early,
        and again once its real size is known (chunked uploads have no length)."""
        limit = ctx.credentials.quotas.get("bucket-storage-mib", -1)
        if limit < 0 or bucket.owner != ctx.account:
            return
        incoming = (ctx.body.remaining or 0) if incoming is None else incoming
        try:
            replaced = self.store.head_object(bucket.name, key).size
        except st.NoSuchKey:
            replaced = 0
        used = self.store.account_bytes(ctx.account)
        if used - replaced + incoming > limit * MIB:
            raise AWSError("EntityTooLarge", f"Your proposed upload exceeds your account's storage quota "
                           f"of {limit} MiB ({used} bytes used).", 400, ProposedSize=incoming,
                           MaxSizeAllowed=max(limit * MIB - used + replaced, 0))

    # ------------------------------------------------------------ buckets

    def list_buckets(self, ctx, req):
        buckets = self.store.list_buckets(None if ctx.credentials.is_cloud_admin else ctx.account)
        return {"Buckets": [{"Name": b.name, "CreationDate": _utc(b.created)} for b in buckets],
                "Owner": _owner(ctx.account)}

    def create_bucket(self, ctx, req):
        name = req["Bucket"]
        check_bucket_name(name)
        try:
            self.store.create_bucket(name, ctx.account,
                                     ctx.credentials.quotas.get("buckets", self.max_buckets_per_account))
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
        self._owned_bucket(ctx, req["Bucket"])
        return {}

    def delete_bucket(self, ctx, req):
        self._owned_bucket(ctx, req["Bucket"])
        self.store.delete_bucket(req["Bucket"])
        return {}

    def get_bucket_location(self, ctx, req):
        self._owned_bucket(ctx, req["Bucket"])
        return {"LocationConstraint": None}

    # ------------------------------------------------------------ objects

    def put_object(self, ctx, req):
        bucket, key = req["Bucket"], req["Key"]
        _check_key(key)
        owned = self._owned_bucket(ctx, bucket)
        self._check_storage_quota(ctx, owned, key)
        for name in _UNSUPPORTED_CHECKSUMS:
            if name in req:
                raise AWSError("NotImplemented", f"{name} is not supported by Walrus; "
                               "use CRC32 or SHA256.", 501)
        content_md5 = _decode_content_md5(req.get("ContentMD5"))
        crc32 = req.get("ChecksumCRC32")
        checksum_sha256 = req.get("ChecksumSHA256")

        def verify(digests: st.Digests):
            self._check_storage_quota(ctx, owned, key, digests.size)
            if content_md5 is not None and content_md5 != digests.md5:
                raise AWSError("BadDigest", "The Content-MD5 you specified did not match "
                               "what we received.", 400)
            check_content_sha256(ctx.headers.get("x-amz-content-sha256"), digests.sha256)
            if crc32 is not None and crc32 != digests.crc32_b64:
                raise AWSError("BadDigest", "The CRC32 you specified did not match the "
                               "calculated checksum.", 400)
            if checksum_sha256 is not None and \
                    checksum_sha256 != base64.b64encode(digests.sha256).decode():
                raise AWSError("BadDigest", "The SHA256 you specified did not match the "
                               "calculated checksum.", 400)

        extra = {name: req[name] for name in _STORED_HEADERS if name in req}
        info = self.store.put_object(
            bucket, key, req.get("Body", ctx.body), ctx.body.remaining,
            content_type=req.get("ContentType"), metadata=req.get("Metadata", {}),
            headers=extra, checksum_crc32=crc32, verify=verify)
        output = {"ETag": info.etag}
        if crc32:
            output["ChecksumCRC32"] = crc32
        return output

    def get_object(self, ctx, req):
        owner = self._owned_bucket(ctx, req["Bucket"]).owner
        info, file = self.store.open_object(req["Bucket"], req["Key"])
        try:
            output = self._object_headers(info, req)
            span = _parse_range(req.get("Range"), info.size)
        except BaseException:
            file.close()
            raise
        first, last = span if span else (0, info.size - 1)
        if span:
            output["ContentRange"] = f"bytes {first}-{last}/{info.size}"
            output.pop("ChecksumCRC32", None)  # a whole-object checksum: not for a part
        output["ContentLength"] = last - first + 1
        output["Body"] = FileChunks(file, first, last - first + 1)
        self.store.record_transfer(owner, output["ContentLength"])
        return output

    def head_object(self, ctx, req):
        self._owned_bucket(ctx, req["Bucket"])
        info = self.store.head_object(req["Bucket"], req["Key"])
        output = self._object_headers(info, req)
        span = _parse_range(req.get("Range"), info.size)
        if span:
            output["ContentRange"] = f"bytes {span[0]}-{span[1]}/{info.size}"
            output["ContentLength"] = span[1] - span[0] + 1
            output.pop("ChecksumCRC32", None)
        else:
            output["ContentLength"] = info.size
        return output

    @staticmethod
    def _object_headers(info: st.ObjectInfo, req) -> dict:
        output = {"ETag": info.etag, "LastModified": _utc(info.last_modified),
                  "ContentType": info.content_type, "AcceptRanges": "bytes",
                  "Metadata": info.metadata, **info.headers}
        if info.checksum_crc32 and req.get("ChecksumMode") == "ENABLED":
            output["ChecksumCRC32"] = info.checksum_crc32
        return output

    def delete_object(self, ctx, req):
        self._owned_bucket(ctx, req["Bucket"])
        self.store.delete_object(req["Bucket"], req["Key"])
        return {}

    # ------------------------------------------------------------ listings

    def list_objects_v2(self, ctx, req):
        bucket = req["Bucket"]
        self._owned_bucket(ctx, bucket)
        token = req.get("ContinuationToken")
        start_after = req.get("StartAfter", "")
        if token is not None:
            try:
                start_after = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
            except (binascii.Error, ValueError):
                raise AWSError("InvalidArgument", "The continuation token provided is "
                               "incorrect", 400, ArgumentName="continuation-token") from None
        listing, output = self._list(bucket, req, start_after)
        output["KeyCount"] = len(listing)
        if token is not None:
            output["ContinuationToken"] = token
        if "StartAfter" in req:
            output["StartAfter"] = self._encode(req, req["StartAfter"])
        if listing.is_truncated:
            output["NextContinuationToken"] = base64.urlsafe_b64encode(
                listing.last.encode("utf-8")).decode()
        if not req.get("FetchOwner"):
            for item in output.get("Contents", []):
                item.pop("Owner")
        return output

    def list_objects(self, ctx, req):
        bucket = req["Bucket"]
        self._owned_bucket(ctx, bucket)
        marker = req.get("Marker", "")
        listing, output = self._list(bucket, req, marker)
        output["Marker"] = self._encode(req, marker)
        if listing.is_truncated and req.get("Delimiter"):
            output["NextMarker"] = self._encode(req, listing.last)
        return output

    def _list(self, bucket, req, start_after):
        max_keys = req.get("MaxKeys", 1000)
        if max_keys < 0:
            raise AWSError("InvalidArgument", "max-keys must be a non-negative integer", 400,
                           ArgumentName="max-keys", ArgumentValue=max_keys)
        prefix, delimiter = req.get("Prefix", ""), req.get("Delimiter", "")
        listing = self.store.list_objects(bucket, prefix=prefix, delimiter=delimiter,
                                          start_after=start_after,
                                          max_keys=min(max_keys, 1000))
        owner = self.store.get_bucket(bucket).owner
        output = {
            "Name": bucket, "Prefix": self._encode(req, prefix), "MaxKeys": max_keys,
            "IsTruncated": listing.is_truncated,
            "Contents": [{"Key": self._encode(req, o.key), "LastModified": _utc(o.last_modified),
                          "ETag": o.etag, "Size": o.size, "StorageClass": "STANDARD",
                          "Owner": _owner(owner)} for o in listing.contents],
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
        """Keys as sent back: URL-encoded when the client asked (botocore always does)."""
        if req.get("EncodingType") == "url":
            return quote(text, safe="/")
        return text


# ---------------------------------------------------------------- helpers

_REASONS = {200: "OK", 204: "No Content", 206: "Partial Content", 400: "Bad Request",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
            411: "Length Required", 416: "Requested Range Not Satisfiable",
            500: "Internal Server Error", 501: "Not Implemented"}


def _authorize(principal: Principal, operation: str, params: dict) -> None:
    """AccessDenied unless the principal's policies allow the operation's action on its bucket
    or object (account admins may do everything)."""
    if principal.is_account_admin:
        return
    action, on_object = _ACTIONS.get(operation, (f"s3:{operation}", False))
    if on_object is None or not params.get("Bucket"):
        resource = "*"
    else:
        resource = policy.s3_arn(params["Bucket"], params.get("Key") if on_object else None)
    if not principal.allows(action, [resource]):
        raise AWSError("AccessDenied", "Access Denied", 403)


def _owner(account: str) -> dict:
    return {"ID": account, "DisplayName": account}


def _check_key(key: str) -> None:
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise AWSError("KeyTooLongError", "Your key is too long", 400)


def _decode_content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise AWSError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
    return digest


def _snake(operation: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", operation).lower()


def _headers(environ) -> dict:
    headers = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers[name[5:].replace("_", "-").lower()] = value
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[name.replace("_", "-").lower()] = environ[name]
    return headers


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

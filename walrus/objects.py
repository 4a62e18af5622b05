"""Walrus's object operations: put, get, head, copy, delete (one and many), and object ACLs.

These are methods of :class:`walrus.api.WalrusApp` (a mixin), so they share its access
checks and request context.  Bytes always stream: into a temp file that is hashed while it
is written, fsynced and renamed into place before its row is committed.
"""

import base64
import email.utils
import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import unquote

from eucacore.awsapi.errors import AWSError
from eucacore.httpserver import FileRange

from . import acl, checksums
from . import store as st

GIB = 2**30
#: The largest single PUT and the largest source of a CopyObject, as in S3.
MAX_PUT_BYTES = 5 * GIB
MAX_DELETE_KEYS = 1000
_STORED_HEADERS = ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage", "Expires")
_OVERRIDES = {"ResponseCacheControl": "CacheControl", "ResponseContentDisposition": "ContentDisposition",
              "ResponseContentEncoding": "ContentEncoding", "ResponseContentLanguage": "ContentLanguage",
              "ResponseContentType": "ContentType", "ResponseExpires": "Expires"}


class NotModified(Exception):
    """A conditional GET or HEAD whose object did not change: 304 with these headers."""

    def __init__(self, info: st.ObjectInfo):
        super().__init__(info.key)
        self.headers = [("ETag", info.etag),
                        ("Last-Modified", email.utils.formatdate(int(info.last_modified), usegmt=True))]


class ChecksumPlan:
    """The flexible checksum a request carries (a header or an aws-chunked trailer), computed
    while the bytes are written and compared once they are all in."""

    def __init__(self, req: dict, headers: dict):
        given = [alg for alg in checksums.ALGORITHMS if checksums.FIELD[alg] in req]
        trailer = headers.get("x-amz-trailer", "").strip().lower()
        if trailer:
            named = [alg for alg in checksums.ALGORITHMS if checksums.HEADER[alg] == trailer]
            if not named:
                raise AWSError("InvalidRequest", f"The value specified in the x-amz-trailer header "
                               f"is not supported: {trailer}", 400)
            given += named
        if len(given) > 1:
            raise AWSError("InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple "
                           "checksum Types are not allowed.", 400)
        unsupported = [name for name in req if name.startswith("Checksum") and name not in
                       ("ChecksumAlgorithm", "ChecksumMode", "ChecksumType")
                       and name not in checksums.FIELD.values()]
        if unsupported:
            raise AWSError("NotImplemented", f"{unsupported[0]} is not supported by Walrus.", 501)
        self.algorithm = given[0] if given else None
        self.from_trailer = bool(trailer)
        self.claimed = req.get(checksums.FIELD[self.algorithm]) if self.algorithm and not trailer else None
        requested = (req.get("ChecksumAlgorithm") or "").upper()
        if requested and requested not in checksums.ALGORITHMS:
            raise AWSError("InvalidRequest", f"Checksum algorithm {requested} is not supported.", 400)
        if requested and not self.algorithm:
            raise AWSError("InvalidRequest", "x-amz-sdk-checksum-algorithm specified, but no "
                           "corresponding x-amz-checksum-* or x-amz-trailer headers were found.", 400)
        if self.claimed is not None and not checksums.valid_b64(self.algorithm, self.claimed):
            raise AWSError("InvalidRequest", f"Value for {checksums.HEADER[self.algorithm]} header "
                           "is invalid.", 400)

    def hashers(self) -> dict:
        return {"checksum": checksums.new(self.algorithm)} if self.algorithm else {}

    def verify(self, digests: st.Digests, trailers: dict) -> str | None:
        """The checksum to store (base64); BadDigest when it is not the one the client sent."""
        if not self.algorithm:
            return None
        computed = base64.b64encode(digests.extra["checksum"]).decode()
        claimed = self.claimed
        if self.from_trailer:
            claimed = trailers.get(checksums.HEADER[self.algorithm])
            if claimed is None or not checksums.valid_b64(self.algorithm, claimed):
                raise AWSError("InvalidRequest", f"The value specified in the x-amz-trailer header "
                               f"was not a valid {self.algorithm} checksum.", 400)
        if claimed != computed:
            raise AWSError("BadDigest", f"The {self.algorithm} you specified did not match the "
                           "calculated checksum.", 400)
        return computed


def check_content_md5(value: str | None, md5: bytes) -> None:
    """BadDigest unless the Content-MD5 header (when sent) is ``md5``."""
    expected = decode_content_md5(value)
    if expected is not None and not hmac.compare_digest(expected, md5):
        raise AWSError("BadDigest", "The Content-MD5 you specified did not match what we received.", 400)


def decode_content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except ValueError:
        digest = b""
    if len(digest) != 16:
        raise AWSError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)
    return digest


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), timezone.utc)


def _http_date(value) -> float | None:
    """Seconds since the epoch of an If-(Un)Modified-Since value (botocore parses it already)."""
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _etag_matches(condition: str, etag: str) -> bool:
    wanted = [tag.strip() for tag in condition.split(",")]
    return "*" in wanted or etag in wanted or etag.strip('"') in wanted


def check_preconditions(info: st.ObjectInfo, if_match, if_unmodified, if_none_match, if_modified,
                        *, copy: bool = False) -> None:
    """RFC 7232 conditions on ``info`` as S3 evaluates them: 412 PreconditionFailed, else (for a
    GET or HEAD) 304; a CopyObject's source conditions all fail with 412."""
    modified = int(info.last_modified)
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise _precondition("If-Match", copy)
    elif if_unmodified is not None:
        since = _http_date(if_unmodified)
        if since is not None and modified > since:
            raise _precondition("If-Unmodified-Since", copy)
    if if_none_match is not None:
        if _etag_matches(if_none_match, info.etag):
            if copy:
                raise _precondition("If-None-Match", copy)
            raise NotModified(info)
    elif if_modified is not None:
        since = _http_date(if_modified)
        if since is not None and modified <= since and since <= datetime.now(timezone.utc).timestamp():
            if copy:
                raise _precondition("If-Modified-Since", copy)
            raise NotModified(info)


def _precondition(condition: str, copy: bool) -> AWSError:
    name = f"x-amz-copy-source-{condition}" if copy else condition
    return AWSError("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                    412, Condition=name)


def parse_range(text: str | None, size: int):
    """(first, last) of a single satisfiable byte range, None to send it all.

    Malformed or multiple ranges are ignored, as S3 does; an unsatisfiable one is InvalidRange.
    """
    if not text:
        return None
    text = text.strip()
    if not text.startswith("bytes=") or "," in text:
        return None
    first, dash, last = text[6:].strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not (first or last) or not (first.isdigit() or not first) or not (last.isdigit() or not last):
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _invalid_range(text, size)
        return max(0, size - suffix), size - 1
    if last and int(last) < int(first):
        return None  # "bytes=5-2" is not a valid range: ignored, as S3 does
    if int(first) >= size:
        raise _invalid_range(text, size)
    return int(first), size - 1 if not last else min(int(last), size - 1)


def _invalid_range(text, size):
    return AWSError("InvalidRange", "The requested range is not satisfiable", 416,
                    RangeRequested=text, ActualObjectSize=size)


def parse_copy_source(value: str) -> tuple[str, str]:
    """(bucket, key) of an x-amz-copy-source (``bucket/key`` or ``/bucket/key``, URL-encoded)."""
    source = unquote(value.split("?versionId=", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    if not bucket or not key:
        raise AWSError("InvalidArgument", "Copy Source must mention the source bucket and key: "
                       "sourcebucket/sourcekey", 400, ArgumentName="x-amz-copy-source", ArgumentValue=value)
    return bucket, key


def parse_copy_range(text: str | None, size: int):
    """(first, length) of an UploadPartCopy's x-amz-copy-source-range, None for the whole source."""
    if text is None:
        return None
    first, dash, last = text.removeprefix("bytes=").partition("-")
    if not text.startswith("bytes=") or not dash or not first.isdigit() or not last.isdigit() \
            or int(last) < int(first):
        raise AWSError("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                       "bytes=first-last where first and last are the zero-based offsets of the first "
                       "and last bytes to copy", 400, ArgumentName="x-amz-copy-source-range",
                       ArgumentValue=text)
    if int(last) >= size:  # S3 answers 400 InvalidArgument here, not GET's 416 InvalidRange
        raise AWSError("InvalidArgument", f"Range specified is not valid for source object of size: {size}",
                       400, ArgumentName="x-amz-copy-source-range", ArgumentValue=text)
    return int(first), int(last) - int(first) + 1


def refuse_conditional_write(req: dict) -> None:
    """NotImplemented for S3's conditional writes (If-Match, If-None-Match on a write): honouring
    them needs a compare-and-commit in the store, and ignoring them would overwrite silently."""
    for name in ("IfMatch", "IfNoneMatch"):
        if name in req:
            raise AWSError("NotImplemented", f"{name} on a write is not supported by Walrus", 501)


class ObjectHandlers:
    """The object operations of :class:`walrus.api.WalrusApp`."""

    def put_object(self, ctx, req):
        bucket, key = req["Bucket"], req["Key"]
        self.check_key(key)
        refuse_conditional_write(req)
        owned = self.bucket_for(ctx, bucket, acl.WRITE)
        length = ctx.body.remaining
        if length is not None and length > MAX_PUT_BYTES:
            raise AWSError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                           400, ProposedSize=length, MaxSizeAllowed=MAX_PUT_BYTES)
        self.check_room(ctx, owned, key, length)
        owner = ctx.account or owned.owner
        grants = acl.from_request(req, ctx.headers, owner, owned.owner)
        plan = ChecksumPlan(req, ctx.headers)
        temp, digests = self.receive(ctx, req, owned, key, plan)
        return self._commit_put(ctx, req, owned, key, temp, digests, plan, owner, grants)

    def receive(self, ctx, req, owned: st.Bucket, key: str, plan: ChecksumPlan, limit: int = MAX_PUT_BYTES,
                inline: bool = True):
        """Stage the request body (see WalrusStore.write_temp), checked against the request's
        Content-MD5, x-amz-content-sha256, checksum and the size limits: (staged, digests)."""
        hashers = plan.hashers()
        if ctx.body.claimed_sha256_hex:
            hashers["sha256"] = hashlib.sha256()

        def verify(digests: st.Digests):
            if digests.size > limit:
                raise AWSError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size",
                               400, ProposedSize=digests.size, MaxSizeAllowed=limit)
            self.check_room(ctx, owned, key, digests.size)
            check_content_md5(req.get("ContentMD5"), digests.md5)
            if "sha256" in digests.extra:
                ctx.body.check_sha256(digests.extra["sha256"])
            digests.extra["checksum_b64"] = plan.verify(digests, ctx.body.trailers)

        return self.store.write_temp(owned.name, ctx.body, ctx.body.remaining, hashers, verify, inline)

    def _commit_put(self, ctx, req, owned, key, temp, digests, plan, owner, grants):
        info = self.store.commit_temp(
            temp, owned.name, key, digests.size, f'"{digests.md5.hex()}"', **_attributes(req),
            owner=owner, acl=grants, checksum_algorithm=plan.algorithm,
            checksum=digests.extra.get("checksum_b64"))
        output = {"ETag": info.etag}
        if info.checksum:
            output[checksums.FIELD[info.checksum_algorithm]] = info.checksum
            output["ChecksumType"] = "FULL_OBJECT"
        return output

    def get_object(self, ctx, req):
        info, file = self.open_for(ctx, req["Bucket"], req["Key"])
        try:
            output = self._read_headers(ctx, info, req)
            span = parse_range(req.get("Range"), info.size)
        except BaseException:
            file.close()
            raise
        first, last = span if span else (0, info.size - 1)
        output["ContentLength"] = last - first + 1
        output["Body"] = FileRange(file, first, last - first + 1)
        self.store.record_transfer(self.store.get_bucket(info.bucket).owner, output["ContentLength"])
        return output

    def head_object(self, ctx, req):
        info = self.object_for(ctx, req["Bucket"], req["Key"], acl.READ)
        output = self._read_headers(ctx, info, req)
        span = parse_range(req.get("Range"), info.size)
        output["ContentLength"] = span[1] - span[0] + 1 if span else info.size
        return output

    def _read_headers(self, ctx, info: st.ObjectInfo, req) -> dict:
        """The response headers of a GET or HEAD: conditions checked, range and overrides applied."""
        check_preconditions(info, req.get("IfMatch"), req.get("IfUnmodifiedSince"),
                            req.get("IfNoneMatch"), req.get("IfModifiedSince"))
        if "PartNumber" in req:
            raise AWSError("NotImplemented", "GetObject by PartNumber is not supported by Walrus", 501)
        output = {"ETag": info.etag, "LastModified": utc(info.last_modified),
                  "ContentType": info.content_type, "AcceptRanges": "bytes",
                  "Metadata": info.metadata, **info.headers}
        if info.parts:
            output["PartsCount"] = info.parts
        span = parse_range(req.get("Range"), info.size)
        if span:
            output["ContentRange"] = f"bytes {span[0]}-{span[1]}/{info.size}"
        elif info.checksum and req.get("ChecksumMode") == "ENABLED":
            output[checksums.FIELD[info.checksum_algorithm]] = info.checksum
            output["ChecksumType"] = "COMPOSITE" if "-" in info.checksum else "FULL_OBJECT"
        overrides = {_OVERRIDES[name]: value for name, value in req.items() if name in _OVERRIDES}
        if overrides and ctx.credentials is None:
            raise AWSError("InvalidRequest", "Request specific response headers cannot be used for "
                           "anonymous GET requests.", 400)
        output.update(overrides)
        return output

    def delete_object(self, ctx, req):
        self.bucket_for(ctx, req["Bucket"], acl.WRITE)
        self.store.delete_object(req["Bucket"], req["Key"])
        return {}

    def delete_objects(self, ctx, req):
        bucket = req["Bucket"]
        objects = (req.get("Delete") or {}).get("Objects") or []
        if not objects or len(objects) > MAX_DELETE_KEYS:
            raise AWSError("MalformedXML", "The XML you provided was not well-formed or did not "
                           "validate against our published schema", 400)
        self.bucket_for(ctx, bucket, acl.WRITE)
        deleted, errors = [], []
        for item in objects:
            key = item.get("Key", "")
            try:
                self.authorize(ctx.credentials, "DeleteObject", {"Bucket": bucket, "Key": key})
                self.store.delete_object(bucket, key)
                deleted.append({"Key": key})
            except AWSError as error:
                errors.append({"Key": key, "Code": error.code, "Message": error.message})
        output = {"Errors": errors} if errors else {}
        if not req["Delete"].get("Quiet"):
            output["Deleted"] = deleted
        return output

    def copy_object(self, ctx, req):
        bucket, key = req["Bucket"], req["Key"]
        self.check_key(key)
        refuse_conditional_write(req)
        directive = req.get("MetadataDirective", "COPY")
        if directive not in ("COPY", "REPLACE"):
            raise AWSError("InvalidArgument", "Unknown metadata directive.", 400,
                           ArgumentName="x-amz-metadata-directive", ArgumentValue=directive)
        source_bucket, source_key = parse_copy_source(req["CopySource"])
        self.authorize(ctx.credentials, "GetObject", {"Bucket": source_bucket, "Key": source_key})
        owned = self.bucket_for(ctx, bucket, acl.WRITE)
        owner = ctx.account or owned.owner
        grants = acl.from_request(req, ctx.headers, owner, owned.owner)  # before any bytes are staged
        info, file = self.open_for(ctx, source_bucket, source_key)
        with file:
            check_preconditions(info, req.get("CopySourceIfMatch"), req.get("CopySourceIfUnmodifiedSince"),
                                req.get("CopySourceIfNoneMatch"), req.get("CopySourceIfModifiedSince"),
                                copy=True)
            if info.size > MAX_PUT_BYTES:
                raise AWSError("InvalidRequest", "The specified copy source is larger than the maximum "
                               f"allowable size for a copy source: {MAX_PUT_BYTES}", 400)
            replace = directive == "REPLACE"
            if (source_bucket, source_key) == (bucket, key) and not replace:
                raise AWSError("InvalidRequest", "This copy request is illegal because it is trying to "
                               "copy an object to itself without changing the object's metadata, storage "
                               "class, website redirect location or encryption attributes.", 400)
            self.check_room(ctx, owned, key, info.size)
            attributes = _attributes(req) if replace else {
                "content_type": info.content_type, "metadata": info.metadata, "headers": info.headers}
            algorithm = (req.get("ChecksumAlgorithm") or info.checksum_algorithm or "").upper() or None
            if algorithm and algorithm not in checksums.ALGORITHMS:
                raise AWSError("InvalidRequest", f"Checksum algorithm {algorithm} is not supported.", 400)
            hashers = {"checksum": checksums.new(algorithm)} if algorithm else {}
            temp, digests = self.store.write_temp(bucket, st.RangeReader(file, 0, info.size), info.size, hashers)
        copied = self.store.commit_temp(
            temp, bucket, key, digests.size, f'"{digests.md5.hex()}"', **attributes, owner=owner,
            acl=grants, checksum_algorithm=algorithm,
            checksum=base64.b64encode(digests.extra["checksum"]).decode() if algorithm else None)
        result = {"ETag": copied.etag, "LastModified": utc(copied.last_modified)}
        if copied.checksum:
            result[checksums.FIELD[algorithm]] = copied.checksum
        return {"CopyObjectResult": result}

    # ------------------------------------------------------------ ACLs

    def get_object_acl(self, ctx, req):
        info = self.object_for(ctx, req["Bucket"], req["Key"], acl.READ_ACP)
        return info.acl or acl.canned("private", info.owner)

    def put_object_acl(self, ctx, req):
        info = self.object_for(ctx, req["Bucket"], req["Key"], acl.WRITE_ACP)
        bucket_owner = self.store.get_bucket(info.bucket).owner
        self.store.set_object_acl(info.bucket, info.key, self.acl_from_put(ctx, req, info.owner, bucket_owner))
        return {}

    def acl_from_put(self, ctx, req, owner: str, bucket_owner: str | None = None) -> dict:
        """The ACL a Put*Acl request sets: a canned ACL, grant headers or an AccessControlPolicy."""
        grants = acl.from_request(req, ctx.headers, owner, bucket_owner)
        if grants is not None:
            if "AccessControlPolicy" in req:
                raise AWSError("UnexpectedContent", "This request does not support content", 400)
            return grants
        return acl.from_policy(req.get("AccessControlPolicy"), owner)


def _attributes(req: dict) -> dict:
    """The stored attributes a PutObject, CopyObject (REPLACE) or CreateMultipartUpload sets."""
    headers = {name: req[name] for name in _STORED_HEADERS if name in req}
    if "ContentEncoding" in headers:
        codings = [c.strip() for c in headers["ContentEncoding"].split(",") if c.strip() != "aws-chunked"]
        headers["ContentEncoding"] = ", ".join(codings)
        if not codings:
            del headers["ContentEncoding"]
    if isinstance(headers.get("Expires"), datetime):
        headers["Expires"] = email.utils.format_datetime(headers["Expires"].astimezone(timezone.utc), usegmt=True)
    return {"content_type": req.get("ContentType"), "metadata": req.get("Metadata", {}), "headers": headers}

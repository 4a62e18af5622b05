"""Browser-based uploads: S3's POST Object, a multipart/form-data form signed by a policy.

The form is parsed and its signature and policy checked by :mod:`walrus.postform`; the file
then takes the same path as a PutObject (access check, checksums, quotas, temp file, commit).
"""

from datetime import datetime, timezone
from urllib.parse import quote

from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.s3 import bucket_and_key

from . import acl, checksums, postform
from .objects import MAX_PUT_BYTES, ChecksumPlan
from .request import RequestBody, RequestContext

#: Form fields that set the stored object's attributes, by the PutObject member they stand for.
_FIELDS = {"acl": "ACL", "content-type": "ContentType", "cache-control": "CacheControl",
           "content-disposition": "ContentDisposition", "content-encoding": "ContentEncoding",
           "expires": "Expires"}


class _Capped:
    """read() that refuses to go past ``limit`` bytes: EntityTooLarge, before they are stored."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.seen = stream, limit, 0

    def read(self, size: int) -> bytes:
        data = self.stream.read(min(size, self.limit + 1 - self.seen))
        self.seen += len(data)
        if self.seen > self.limit:
            raise AWSError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                           MaxSizeAllowed=self.limit)
        return data


def _request(form: postform.PostForm, bucket: str, key: str) -> dict:
    """The PutObject input a form stands for."""
    fields = form.fields
    req = {"Bucket": bucket, "Key": key,
           "Metadata": {name[len("x-amz-meta-"):]: value for name, value in fields.items()
                        if name.startswith("x-amz-meta-")}}
    req.update({member: fields[name] for name, member in _FIELDS.items() if name in fields})
    req.setdefault("ContentType", form.file_content_type)
    for algorithm in checksums.ALGORITHMS:
        if checksums.HEADER[algorithm] in fields:
            req[checksums.FIELD[algorithm]] = fields[checksums.HEADER[algorithm]]
    return req


class PostObjectHandler:
    """The POST Object operation of :class:`walrus.api.WalrusApp`."""

    def post_object(self, environ, request_id: str, raw_path: str, headers: dict):
        bucket, key_in_path = bucket_and_key(raw_path, headers.get("host"), self.service_host)
        if bucket is None or key_in_path is not None:
            raise AWSError("MethodNotAllowed", "The specified method is not allowed against this resource.",
                           405, Method="POST", ResourceType="OBJECT" if bucket else "SERVICE")
        length = environ.get("CONTENT_LENGTH")
        form = postform.parse_form(environ["wsgi.input"], headers.get("content-type", ""),
                                   int(length) if length else None)
        principal = postform.verify_signature(form, self.lookup)
        key = postform.object_key(form)
        policy = postform.check_policy(form, bucket, key, datetime.now(timezone.utc))
        self.check_key(key)
        self.authorize(principal, "PutObject", {"Bucket": bucket, "Key": key})
        limit = min(MAX_PUT_BYTES, policy.max_length if policy.max_length is not None else MAX_PUT_BYTES)
        ctx = RequestContext(request_id, principal, {}, RequestBody(_Capped(form.file, limit), None, {}))
        owned = self.bucket_for(ctx, bucket, acl.WRITE)
        req = _request(form, bucket, key)
        owner = ctx.account or owned.owner
        grants = acl.from_request(req, {}, owner, owned.owner)
        plan = ChecksumPlan(req, {})
        temp, digests = self.receive(ctx, req, owned, key, plan, limit)
        try:
            policy.check_length(digests.size)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        etag = self._commit_put(ctx, req, owned, key, temp, digests, plan, owner, grants)["ETag"]
        host = headers.get("host", "")
        location = f"http://{host}/{quote(bucket)}/{quote(key)}"
        status, out_headers, body = postform.success_response(form, bucket, key, etag, location)
        return status, [("x-amz-request-id", request_id)] + out_headers, body

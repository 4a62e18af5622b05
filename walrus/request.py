"""What every Walrus handler gets: the request's context and its payload stream."""

import hmac
import re
from dataclasses import dataclass, field
from hashlib import md5, sha256

from eucacore.awsapi.errors import AWSError
from eucacore.principal import Principal

from . import checksums
from .objects import check_content_md5
from .store import read_into

#: The largest non-object body (bucket configuration XML) read into memory.
MAX_SMALL_BODY = 1024 * 1024
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class RequestContext:
    """What a handler knows about the request besides its parsed input."""

    request_id: str
    credentials: Principal | None  # None: an anonymous request
    headers: dict
    body: "RequestBody"
    extra_headers: list = field(default_factory=list)

    @property
    def account(self) -> str | None:
        return self.credentials.account_id if self.credentials else None


class RequestBody:
    """The request's payload stream, bounded by its (decoded) length.

    ``read(n)`` and ``readinto`` stream (PutObject, UploadPart; the handler checks those bytes).  A
    whole-body ``read()`` is for small XML payloads: it is capped, and checked here against
    Content-MD5, a hex x-amz-content-sha256 and any x-amz-checksum-* header.  For an
    aws-chunked upload ``stream`` is the decoder and ``trailers`` what followed the chunks.
    """

    def __init__(self, stream, length: int | None, headers: dict):
        self.stream, self.remaining, self.headers = stream, length, headers
        claimed = headers.get("x-amz-content-sha256", "").lower()
        self.claimed_sha256_hex = claimed if _HEX_SHA256.match(claimed) else None

    @property
    def trailers(self) -> dict:
        return getattr(self.stream, "trailers", None) or {}

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self._read_all()
        if self.remaining is not None:
            size = min(size, self.remaining)
            if size == 0:
                return b""
        try:
            data = self.stream.read(size)
        except OSError:
            raise _timed_out() from None
        if self.remaining is not None:
            self.remaining -= len(data)
        return data

    def readinto(self, buffer) -> int:
        """Like ``read(len(buffer))``, into ``buffer``: a large upload is received without a
        bytes object per chunk when the stream below can do the same."""
        view = memoryview(buffer)
        if self.remaining is not None:
            view = view[:self.remaining]
            if not view:
                return 0
        try:
            got = read_into(self.stream, view)
        except OSError:
            raise _timed_out() from None
        if self.remaining is not None:
            self.remaining -= got
        return got

    def _read_all(self) -> bytes:
        if self.remaining is not None and self.remaining > MAX_SMALL_BODY:
            raise AWSError("MaxMessageLengthExceeded", "Your request was too big.", 400)
        data = self.read(self.remaining if self.remaining is not None else MAX_SMALL_BODY + 1)
        if len(data) > MAX_SMALL_BODY:
            raise AWSError("MaxMessageLengthExceeded", "Your request was too big.", 400)
        self.check_sha256(sha256(data).digest())
        check_content_md5(self.headers.get("content-md5"), md5(data).digest())
        for algorithm in checksums.ALGORITHMS:
            claimed = self.headers.get(checksums.HEADER[algorithm])
            if claimed is not None:
                hasher = checksums.new(algorithm)
                hasher.update(data)
                if hasher.b64() != claimed:
                    raise AWSError("BadDigest", f"The {algorithm} you specified did not match the "
                                   "calculated checksum.", 400)
        return data

    def check_sha256(self, actual: bytes) -> None:
        """XAmzContentSHA256Mismatch unless a hex x-amz-content-sha256 matches ``actual``."""
        if self.claimed_sha256_hex and not hmac.compare_digest(self.claimed_sha256_hex, actual.hex()):
            raise AWSError("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' "
                           "header does not match what was computed.", 400,
                           ClientComputedContentSHA256=self.claimed_sha256_hex,
                           S3ComputedContentSHA256=actual.hex())


def _timed_out() -> AWSError:
    """S3's answer to a client that stopped sending its body (the connection's receive timed out)."""
    return AWSError("RequestTimeout", "Your socket connection to the server was not read from or written to "
                    "within the timeout period. Idle connections will be closed.", 400)

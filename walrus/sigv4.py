"""A fast path for the request signature every SDK sends to S3: SigV4 in the Authorization header.

:func:`eucacore.awsapi.auth.verify_request` rebuilds each request for botocore's signer, which
costs more than the rest of a small PUT or GET.  :func:`verify_header` builds the same
canonical request directly from the headers as they arrived, and only ever *accepts*: a
request it cannot check this way (another scheme, an unusual header, a clock far off) or
whose signature does not match here gets None, and the caller runs ``verify_request``, which
accepts it or answers the precise error.  So every refusal and every rule about what may be
signed still comes from one place.
"""

import datetime
import functools
import hmac
import time
from hashlib import sha256
from urllib.parse import parse_qsl, quote

from botocore.auth import SIGNED_HEADERS_BLACKLIST

from eucacore.awsapi.auth import MAX_SKEW, hmac_sha256, signing_key

_PREFIX = "AWS4-HMAC-SHA256 "
#: Headers that botocore's signer leaves out of a canonical request even when they are named.
_UNSIGNABLE = frozenset(SIGNED_HEADERS_BLACKLIST)
#: A Host value that would not round-trip through the URL that botocore's signer splits.
_ODD_HOST = frozenset("/?#@\\")


def verify_header(method: str, raw_path: str, query_string: str, headers: dict, lookup):
    """The signer's credentials if ``headers`` (lower-case names) carry an S3 SigV4
    Authorization that matches; None when it does not or cannot be checked here."""
    authorization = headers.get("authorization", "")
    if not authorization.startswith(_PREFIX):
        return None
    fields = dict(part.strip().partition("=")[::2] for part in authorization[len(_PREFIX):].split(","))
    scope = fields.get("Credential", "").split("/")
    signed = sorted(set(fields.get("SignedHeaders", "").split(";")))
    timestamp = headers.get("x-amz-date") or headers.get("date", "")
    if len(scope) != 5 or scope[3:] != ["s3", "aws4_request"] or not _current(timestamp) \
            or scope[1] != timestamp[:8] or not _checkable(signed, headers):
        return None
    access_key, day, region = scope[:3]
    credentials = lookup(access_key)
    if credentials is None:
        return None
    canonical = "\n".join((method.upper(), raw_path or "/", _canonical_query(query_string),
                           "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in signed),
                           ";".join(signed), headers["x-amz-content-sha256"]))
    string_to_sign = (f"AWS4-HMAC-SHA256\n{timestamp}\n{day}/{region}/s3/aws4_request\n"
                      f"{sha256(canonical.encode('utf-8')).hexdigest()}")
    expected = hmac_sha256(signing_key(credentials.secret_key, day, region, "s3"), string_to_sign.encode("utf-8"))
    return credentials if hmac.compare_digest(expected.hex(), fields.get("Signature", "")) else None


def _current(timestamp: str) -> bool:
    """Whether ``timestamp`` is a compact SigV4 time ('20130524T000000Z') within the allowed skew."""
    when = _seconds(timestamp)
    return when is not None and abs(time.time() - when) <= MAX_SKEW.total_seconds()


@functools.lru_cache(maxsize=64)  # a busy client sends the same timestamp many times a second
def _seconds(timestamp: str) -> float | None:
    """The Unix time of a compact SigV4 time, or None when it is not one."""
    if len(timestamp) != 16 or timestamp[8] != "T" or timestamp[15] != "Z":
        return None
    try:
        return datetime.datetime(int(timestamp[0:4]), int(timestamp[4:6]), int(timestamp[6:8]),
                                 int(timestamp[9:11]), int(timestamp[11:13]), int(timestamp[13:15]),
                                 tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return None


def _checkable(signed: list, headers: dict) -> bool:
    """Whether the signed header names are ones this path canonicalizes as botocore does: host
    and the payload hash among them, all present, none that botocore would drop."""
    return ("host" in signed and "x-amz-content-sha256" in signed and not _UNSIGNABLE.intersection(signed)
            and all(name in headers for name in signed) and not _ODD_HOST.intersection(headers["host"]))


def _canonical_query(query_string: str) -> str:
    """The SigV4 canonical query string: decoded, re-encoded, sorted by name then value."""
    if not query_string:
        return ""
    pairs = sorted((quote(name, safe="-_.~"), quote(value, safe="-_.~"))
                   for name, value in parse_qsl(query_string, keep_blank_values=True))
    return "&".join(f"{name}={value}" for name, value in pairs)

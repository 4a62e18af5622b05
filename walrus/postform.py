"""Browser-based uploads: S3 "POST Object", a multipart form signed with a policy document.

WalrusApp answers ``POST /bucket`` (multipart/form-data) in this order::

    form = parse_form(body, content_type, content_length)   # the fields; the file still unread
    principal = verify_signature(form, lookup)               # None: an unsigned (anonymous) form
    key = object_key(form)
    policy = check_policy(form, bucket, key, now)
    ... store form.file, giving up past policy.max_length; then policy.check_length(size)
    status, headers, body = success_response(form, bucket, key, etag, location_url)

The file part is streamed: only a chunk and a boundary's worth of lookbehind are in memory.
Every failure is the AWSError S3 answers.
"""

import base64
import binascii
import hmac
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.parser import HeaderParser
from hashlib import sha1, sha256
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from eucacore.awsapi.auth import signing_key
from eucacore.awsapi.errors import AWSError

#: The most bytes S3 reads before the file part (preamble, part headers, field values).
MAX_FIELDS_BYTES = 20 * 1024
CHUNK = 64 * 1024
SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
#: Fields a policy need not name: the signature and what it signs.
_UNCOVERED_FIELDS = frozenset({"policy", "x-amz-signature", "signature", "awsaccesskeyid"})
#: Fields whose policy conditions may only be exact matches.
_EXACT_ONLY_FIELDS = frozenset({"bucket", "x-amz-algorithm", "x-amz-credential", "x-amz-date",
                                "x-amz-security-token"})
_SIGV4_FIELDS = ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature")
_SIGV2_FIELDS = ("AWSAccessKeyId", "signature")


# ---------------------------------------------------------------- errors

def _malformed() -> AWSError:
    return AWSError("MalformedPOSTRequest",
                    "The body of your POST request is not well-formed multipart/form-data.", 400)


def _missing_field(name: str) -> AWSError:
    return AWSError("InvalidArgument", f"Bucket POST must contain a field named '{name}'.  "
                    "If it is specified, please check the order of the fields.", 400,
                    ArgumentName=name, ArgumentValue="")


def _invalid_policy(detail: str) -> AWSError:
    return AWSError("InvalidPolicyDocument", f"Invalid Policy: {detail}", 400)


def _denied_by_policy(detail: str) -> AWSError:
    return AWSError("AccessDenied", f"Invalid according to Policy: {detail}", 403)


def _bad_credential(value: str, detail: str) -> AWSError:
    return AWSError("InvalidArgument", detail, 400, ArgumentName="x-amz-credential",
                    ArgumentValue=value)


# ---------------------------------------------------------------- the form

class _Multipart:
    """A multipart body read ahead into a small buffer: what precedes the file (within
    MAX_FIELDS_BYTES), then the file up to the next delimiter."""

    def __init__(self, stream, length: int | None, boundary: bytes):
        self.stream, self.left = stream, length
        self.delimiter = b"\r\n--" + boundary
        # The first delimiter has no CRLF before it: pretend it has, so all look alike.
        self.buf, self.pos, self.eof = bytearray(b"\r\n"), 0, False
        self.budget = MAX_FIELDS_BYTES + 2

    def fill(self) -> bool:
        """Append the next chunk of the body to the buffer; False at its end."""
        want = CHUNK if self.left is None else min(CHUNK, self.left)
        data = self.stream.read(want) if want > 0 and not self.eof else b""
        if not data:
            self.eof = True
            return False
        if self.left is not None:
            self.left -= len(data)
        del self.buf[:self.pos]
        self.pos = 0
        self.buf += data
        return True

    def need(self, size: int) -> bool:
        """Whether ``size`` unread bytes are (or could be made) buffered."""
        while len(self.buf) - self.pos < size:
            if not self.fill():
                return False
        return True

    def truncated(self) -> AWSError:
        """The error for a body that ends before its closing delimiter."""
        if self.left:
            return AWSError("IncompleteBody", "You did not provide the number of bytes "
                            "specified by the Content-Length HTTP header", 400)
        return _malformed()

    def spend(self, size: int) -> None:
        """Consume ``size`` bytes that precede the file part."""
        self.check_budget(size)
        self.pos += size
        self.budget -= size

    def check_budget(self, size: int) -> None:
        """MaxPostPreDataLengthExceededError if ``size`` more bytes before the file are too many."""
        if size > self.budget:
            raise AWSError("MaxPostPreDataLengthExceededError", "Your POST request fields "
                           "preceding the upload file were too large.", 400)

    def scan(self) -> tuple[bool, int]:
        """(True, n) if the delimiter starts ``n`` bytes ahead, else (False, n): the next ``n``
        bytes are part data for sure.  A delimiter counts only when followed by "--",
        whitespace or CRLF, so a body holding a longer look-alike is read as data."""
        size = len(self.delimiter)
        at = self.buf.find(self.delimiter, self.pos)
        while at >= 0:
            after = bytes(self.buf[at + size:at + size + 2])
            if len(after) < 2 and not self.eof:
                return False, at - self.pos
            if after == b"--" or after[:1] in (b" ", b"\t", b"\r") or \
                    (self.eof and b"--".startswith(after)):
                return True, at - self.pos
            at = self.buf.find(self.delimiter, at + 1)
        return False, max(0, len(self.buf) - size + 1 - self.pos)

    def read_value(self) -> bytes:
        """The bytes up to the next delimiter, which is consumed too."""
        while True:
            found, size = self.scan()
            if found:
                value = bytes(self.buf[self.pos:self.pos + size])
                self.spend(size + len(self.delimiter))
                return value
            self.check_budget(size)
            if self.eof:
                raise self.truncated()
            self.fill()

    def next_part(self) -> Message | None:
        """The headers of the part after the delimiter just read; None if it was the last."""
        if not self.need(2):
            raise self.truncated()
        if self.buf[self.pos:self.pos + 2] == b"--":
            return None
        while self.need(1) and self.buf[self.pos] in b" \t":  # transport padding
            self.spend(1)
        if not self.need(2) or self.buf[self.pos:self.pos + 2] != b"\r\n":
            raise _malformed()
        # From the delimiter line's CRLF, so that a part without headers ends at once.
        while (end := self.buf.find(b"\r\n\r\n", self.pos)) < 0:
            self.check_budget(len(self.buf) - self.pos)
            if not self.fill():
                raise self.truncated()
        block = bytes(self.buf[self.pos + 2:end])
        self.spend(end + 4 - self.pos)
        try:
            return HeaderParser().parsestr(block.decode("utf-8"))
        except UnicodeDecodeError:
            raise _malformed() from None

    def drain(self) -> None:
        """Read and drop the rest of the body."""
        self.buf.clear()
        self.pos = 0
        while self.fill():
            self.buf.clear()


class FileStream(io.RawIOBase):
    """The file part of a form: ``read(n)`` gives its bytes, then b"".  Reaching its end
    drops the rest of the body (fields after the file are ignored, as S3 does)."""

    def __init__(self, body: _Multipart):
        super().__init__()
        self._body = body
        self._ready = 0          # bytes at the buffer's position known to be file data
        self._at_end = False     # whether the delimiter follows those bytes
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        if self._done or not len(target):
            return 0
        body = self._body
        while not self._ready:
            if self._at_end:
                self._done = True
                body.drain()
                return 0
            found, size = body.scan()
            if found:
                self._ready, self._at_end = size, True
            elif size:
                self._ready = size
            elif body.eof:
                raise body.truncated()
            else:
                body.fill()
        size = min(len(target), self._ready)
        target[:size] = body.buf[body.pos:body.pos + size]
        body.pos += size
        self._ready -= size
        return size


@dataclass
class PostForm:
    """A parsed POST form: ``fields`` (lower-cased names, values as sent) are those before
    the file; ``file`` streams the file part, named ``filename``, sent as ``file_content_type``
    (None if the part had no Content-Type)."""

    fields: dict[str, str]
    filename: str
    file: FileStream
    file_content_type: str | None


def _boundary(content_type: str) -> bytes:
    header = Message()
    header["content-type"] = content_type or ""
    if header.get_content_type() != "multipart/form-data":
        raise AWSError("PreconditionFailed", "At least one of the pre-conditions you "
                       "specified did not hold", 412,
                       Condition="Bucket POST must be of the enclosure-type multipart/form-data")
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 70 or not boundary.isascii():
        raise _malformed()
    return boundary.encode("ascii")


def _field_name(headers: Message) -> str:
    if headers.get_content_disposition() != "form-data":
        raise _malformed()
    name = headers.get_param("name", header="content-disposition")
    if not isinstance(name, str) or not name:
        raise _malformed()
    return name.lower()


def parse_form(stream, content_type: str, content_length: int | None) -> PostForm:
    """Read the form's fields up to its ``file`` part, leaving the file to be streamed.

    PreconditionFailed unless multipart/form-data; MalformedPOSTRequest if it does not parse;
    MaxPostPreDataLengthExceededError past MAX_FIELDS_BYTES; InvalidArgument without a file
    or with a field sent twice.
    """
    body = _Multipart(stream, content_length, _boundary(content_type))
    body.read_value()  # the preamble
    fields: dict[str, str] = {}
    while (headers := body.next_part()) is not None:
        name = _field_name(headers)
        if name == "file":
            return PostForm(fields, headers.get_filename() or "", FileStream(body),
                            headers.get("content-type"))
        if name in fields:
            raise AWSError("InvalidArgument", f"POST form field '{name}' appears more than "
                           "once.", 400, ArgumentName=name)
        try:
            fields[name] = body.read_value().decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed() from None
    raise AWSError("InvalidArgument", "POST requires exactly one file upload per request.",
                   400, ArgumentName="file", ArgumentValue="0")


def object_key(form: PostForm) -> str:
    """The form's key, ``${filename}`` replaced by the file's name; InvalidArgument if none."""
    key = form.fields.get("key")
    if not key:
        raise _missing_field("key")
    return key.replace("${filename}", form.filename)


# ---------------------------------------------------------------- the signature

def _require(fields: dict, names) -> None:
    for name in names:
        if not fields.get(name.lower()):
            raise _missing_field(name)


def _principal(lookup, access_key: str):
    principal = lookup(access_key)
    if principal is None:
        raise AWSError("InvalidAccessKeyId", "The AWS Access Key Id you provided does not "
                       "exist in our records.", 403, AWSAccessKeyId=access_key)
    return principal


def _check_signature(expected: str, given: str, access_key: str, policy: str) -> None:
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise AWSError("SignatureDoesNotMatch", "The request signature we calculated does not "
                       "match the signature you provided. Check your key and signing method.",
                       403, AWSAccessKeyId=access_key, StringToSign=policy,
                       SignatureProvided=given)


def _credential_scope(credential: str) -> tuple[str, str, str, str]:
    """(access key, date, region, service) of a SigV4 credential."""
    parts = credential.split("/")
    if len(parts) < 5 or not all(parts):
        raise _bad_credential(credential, 'the Credential is mal-formed; expecting '
                              '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
    date, region, service, terminal = parts[-4:]
    if len(date) != 8 or not date.isdigit():
        raise _bad_credential(credential, f'incorrect date format "{date}". This date in the '
                              'credential must be in the format "yyyyMMdd".')
    if service != "s3":
        raise _bad_credential(credential, f'incorrect service "{service}". This endpoint '
                              'belongs to "s3".')
    if terminal != "aws4_request":
        raise _bad_credential(credential, f'incorrect terminal "{terminal}". This endpoint '
                              'uses "aws4_request".')
    return "/".join(parts[:-4]), date, region, service


def _sigv4_scope(fields: dict) -> tuple[str, str, str, str]:
    """The credential scope of a SigV4 form, once its signing fields are all there and valid."""
    _require(fields, ("policy",) + _SIGV4_FIELDS)
    if fields["x-amz-algorithm"] != SIGV4_ALGORITHM:
        raise AWSError("InvalidArgument", f'x-amz-algorithm only supports "{SIGV4_ALGORITHM}"',
                       400, ArgumentName="x-amz-algorithm",
                       ArgumentValue=fields["x-amz-algorithm"])
    try:
        datetime.strptime(fields["x-amz-date"], "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise AWSError("AccessDenied", "AWS authentication requires a valid Date or "
                       "x-amz-date header", 403) from None
    return _credential_scope(fields["x-amz-credential"])


def verify_signature(form: PostForm, lookup):
    """The Principal who signed the form, or None if it is unsigned (no policy, no signature).

    ``lookup(access_key)`` gives a Principal or None.  InvalidArgument for a signing field
    missing or malformed, InvalidAccessKeyId for an unknown key, SignatureDoesNotMatch.
    """
    fields = form.fields
    policy = fields.get("policy", "")
    if any(fields.get(name) for name in _SIGV4_FIELDS):
        access_key, date, region, service = _sigv4_scope(fields)
        principal = _principal(lookup, access_key)
        key = signing_key(principal.secret_key, date, region, service)
        expected = hmac.new(key, policy.encode("utf-8"), sha256).hexdigest()
        _check_signature(expected, fields["x-amz-signature"], access_key, policy)
        return principal
    if any(fields.get(name.lower()) for name in _SIGV2_FIELDS):
        _require(fields, ("policy",) + _SIGV2_FIELDS)
        access_key = fields["awsaccesskeyid"]
        principal = _principal(lookup, access_key)
        digest = hmac.new(principal.secret_key.encode("utf-8"), policy.encode("utf-8"),
                          sha1).digest()
        _check_signature(base64.b64encode(digest).decode("ascii"), fields["signature"],
                         access_key, policy)
        return principal
    if policy:
        raise _missing_field("AWSAccessKeyId")
    return None


# ---------------------------------------------------------------- the policy

@dataclass(frozen=True)
class Policy:
    """The file sizes a form's policy allows (its content-length-range; all when it has none)."""

    min_length: int = 0
    max_length: int | None = None

    def check_length(self, size: int) -> None:
        """EntityTooSmall or EntityTooLarge unless ``size`` bytes are allowed."""
        if self.max_length is not None and size > self.max_length:
            raise AWSError("EntityTooLarge", "Your proposed upload exceeds the maximum allowed "
                           "size", 400, ProposedSize=size, MaxSizeAllowed=self.max_length)
        if size < self.min_length:
            raise AWSError("EntityTooSmall", "Your proposed upload is smaller than the minimum "
                           "allowed size", 400, ProposedSize=size, MinSizeAllowed=self.min_length)


@dataclass(frozen=True)
class _Condition:
    """One eq or starts-with condition on a field (lower-cased, without its "$")."""

    operator: str
    field: str
    value: str
    text: str  # the condition as the error message shows it

    def holds(self, actual: str) -> bool:
        if self.operator == "eq":
            return actual == self.value
        if self.field in _EXACT_ONLY_FIELDS:
            return False
        if self.field == "content-type" and "," in actual:
            return all(part.strip().startswith(self.value) for part in actual.split(","))
        return actual.startswith(self.value)


def _decode_policy(text: str) -> dict:
    compact = "".join(text.split())
    try:
        raw = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid_policy("invalid Base64 encoding.") from None
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _invalid_policy("Invalid JSON.") from None
    if not isinstance(document, dict):
        raise _invalid_policy("Invalid JSON.")
    for name in document:
        if name not in ("expiration", "conditions"):
            raise _invalid_policy(f'Unexpected: "{name}"')
    return document


def _expiration(document: dict) -> datetime:
    if "expiration" not in document:
        raise _invalid_policy("Policy missing expiration.")
    value = document["expiration"]
    if not isinstance(value, str):
        raise _invalid_policy("Invalid JSON.")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None or "T" not in value.upper():
        raise _invalid_policy(f"Invalid 'expiration' value: '{value}'")
    return when


def _match_condition(operator: str, args: list) -> _Condition:
    if len(args) != 2:
        raise _invalid_policy(f"Invalid {operator}: wrong number of arguments.")
    reference, value = args
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(reference, str) or not isinstance(value, str):
        raise _invalid_policy("Invalid JSON.")
    text = json.dumps([operator, reference, value], ensure_ascii=False)
    if not reference.startswith("$") or len(reference) == 1:
        raise _denied_by_policy(f"Policy Condition failed: {text}")
    return _Condition(operator, reference[1:].lower(), value, text)


def _length_bound(value, raw: list) -> int:
    """A content-length-range bound: a JSON integer, or a string of one as S3 also takes."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _invalid_policy("Invalid JSON.")
    try:
        return int(value)
    except ValueError:
        raise _denied_by_policy("Policy Condition failed: "
                                + json.dumps(raw, ensure_ascii=False)) from None


def _parse_condition(item) -> _Condition | tuple[int, int]:
    """An eq/starts-with _Condition, or (min, max) of a content-length-range."""
    if isinstance(item, dict):
        if len(item) != 1:
            raise _invalid_policy("Invalid Simple-Condition: Simple-Conditions must have "
                                  "exactly one property specified.")
        (name, value), = item.items()
        if not isinstance(value, str):
            raise _invalid_policy("Invalid Simple-Condition: value must be a string.")
        return _Condition("eq", name.lower(), value,
                          json.dumps(["eq", "$" + name, value], ensure_ascii=False))
    if not isinstance(item, list):
        raise _invalid_policy("Invalid condition test: must be a List or Object.")
    if not item or not isinstance(item[0], str):
        raise _invalid_policy("Invalid Condition: missing operation identifier.")
    operator = item[0].lower()
    if operator in ("eq", "starts-with"):
        return _match_condition(operator, item[1:])
    if operator == "content-length-range":
        if len(item) != 3:
            raise _invalid_policy(f"Invalid {operator}: wrong number of arguments.")
        return _length_bound(item[1], item), _length_bound(item[2], item)
    raise _invalid_policy(f"Invalid Condition: unknown operation '{item[0]}'.")


def _parse_policy(text: str) -> tuple[datetime, list[_Condition], Policy]:
    document = _decode_policy(text)
    expiration = _expiration(document)
    if "conditions" not in document:
        raise _invalid_policy("Policy missing conditions.")
    if not isinstance(document["conditions"], list):
        raise _invalid_policy("Invalid 'conditions' value: must be a List.")
    conditions, low, high = [], 0, None
    for item in document["conditions"]:
        parsed = _parse_condition(item)
        if isinstance(parsed, _Condition):
            conditions.append(parsed)
        else:
            low = max(low, parsed[0])
            high = parsed[1] if high is None else min(high, parsed[1])
    return expiration, conditions, Policy(low, high)


def _check_fields_covered(fields: dict, conditions: list[_Condition]) -> None:
    covered = {condition.field for condition in conditions}
    for name in fields:
        if name not in covered and name not in _UNCOVERED_FIELDS \
                and not name.startswith("x-ignore-"):
            raise _denied_by_policy(f"Extra input fields: {name}")


def _refuse_unsupported(fields: dict) -> None:
    for name in fields:
        if name.startswith("x-amz-server-side-encryption"):
            raise AWSError("NotImplemented", f"{name} is not supported by Walrus.", 501)


def check_policy(form: PostForm, bucket: str, key: str, now: datetime) -> Policy:
    """The sizes the form's policy allows, once its expiration (against the aware datetime
    ``now``) and every other condition hold for the form's fields, ``bucket`` (the request's)
    and ``key`` (from object_key).  A form without a policy allows every size.

    InvalidPolicyDocument for a policy that does not parse; AccessDenied for one expired, a
    condition failed or a field no condition names; NotImplemented for server-side encryption.
    """
    text = form.fields.get("policy")
    policy = Policy()
    if text:
        expiration, conditions, policy = _parse_policy(text)
        if now >= expiration:
            raise _denied_by_policy("Policy expired.")
        _check_fields_covered(form.fields, conditions)
        values = dict(form.fields, bucket=bucket, key=key)
        for condition in conditions:
            if not condition.holds(values.get(condition.field, "")):
                raise _denied_by_policy(f"Policy Condition failed: {condition.text}")
    _refuse_unsupported(form.fields)
    return policy


# ---------------------------------------------------------------- the answer

def _redirect_url(form: PostForm) -> str | None:
    """success_action_redirect (or the older redirect) if it is an http(s) URL; S3 ignores
    one it cannot interpret."""
    url = form.fields.get("success_action_redirect") or form.fields.get("redirect")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def success_response(form: PostForm, bucket: str, key: str, etag: str,
                     location_url: str) -> tuple[int, list, bytes]:
    """(status, headers, body) of a stored upload, as the form's success_action_redirect
    (303 to it, with bucket, key and etag added to its query) or success_action_status
    (201 with a PostResponse document, 200 empty, otherwise 204 empty) asks."""
    redirect = _redirect_url(form)
    if redirect:
        parts = urlsplit(redirect)
        added = urlencode({"bucket": bucket, "key": key, "etag": etag}, quote_via=quote)
        query = f"{parts.query}&{added}" if parts.query else added
        return 303, [("Location", urlunsplit(parts._replace(query=query)))], b""
    headers = [("ETag", etag), ("Location", location_url)]
    status = form.fields.get("success_action_status")
    if status == "201":
        document = ET.Element("PostResponse")
        for tag, text in (("Location", location_url), ("Bucket", bucket), ("Key", key),
                          ("ETag", etag)):
            ET.SubElement(document, tag).text = text
        body = ET.tostring(document, encoding="UTF-8", xml_declaration=True)
        return 201, headers + [("Content-Type", "application/xml")], body
    return (200 if status == "200" else 204), headers, b""

"""walrus.postform over forms that botocore's generate_presigned_post signs and urllib3 encodes."""

import base64
import hashlib
import io
import json
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.config
import pytest
from urllib3.filepost import encode_multipart_formdata

from eucacore.awsapi.errors import AWSError
from eucacore.principal import Principal
from walrus import postform
from walrus.postform import (check_policy, object_key, parse_form, success_response,
                             verify_signature)

ALICE = Principal("AKIAALICE0000000000A", "alice-secret/key+0000000000000000000000", "111111111111")
KEYS = {ALICE.access_key: ALICE}
BUCKET = "photos"
BOUNDARY = "wAlRuSbOuNdArY0123456789"
DATA = bytes(range(256)) * 40


def presigned(signature_version="s3v4", key="uploads/${filename}", fields=None, conditions=None,
              secret=ALICE.secret_key, expires=600):
    """The fields botocore tells a browser to send."""
    client = boto3.client(
        "s3", endpoint_url="http://walrus.example.com:8773", region_name="eucalyptus",
        aws_access_key_id=ALICE.access_key, aws_secret_access_key=secret,
        config=botocore.config.Config(signature_version=signature_version,
                                      s3={"addressing_style": "path"}))
    post = client.generate_presigned_post(BUCKET, key, Fields=fields, Conditions=conditions,
                                          ExpiresIn=expires)
    assert post["url"].endswith(f"/{BUCKET}")
    return post["fields"]


def encode(fields, data=DATA, filename="cat.jpg", content_type="image/jpeg", after=()):
    """(body, content type) of a browser's form: the fields, the file, then ``after``."""
    parts = list(fields.items()) + [("file", (filename, data, content_type))] + list(after)
    return encode_multipart_formdata(parts, boundary=BOUNDARY)


class Trickle(io.RawIOBase):
    """A body that hands out at most ``step`` bytes per read, as a slow socket does."""

    def __init__(self, data, step):
        super().__init__()
        self.data, self.step, self.pos = data, step, 0

    def readable(self):
        return True

    def readinto(self, target):
        size = min(len(target), self.step, len(self.data) - self.pos)
        target[:size] = self.data[self.pos:self.pos + size]
        self.pos += size
        return size


def parse(body, content_type, step=None, length=None):
    stream = io.BytesIO(body) if step is None else Trickle(body, step)
    return parse_form(stream, content_type, len(body) if length is None else length)


def now():
    return datetime.now(timezone.utc)


def form_of(fields, **kwargs):
    return parse(*encode(fields, **kwargs))


def error(call, *args):
    with pytest.raises(AWSError) as info:
        call(*args)
    return info.value


# ---------------------------------------------------------------- whole forms

@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_signed_form_is_verified_checked_and_streamed(signature_version):
    form = form_of(presigned(signature_version))
    assert verify_signature(form, KEYS.get) is ALICE
    key = object_key(form)
    assert key == "uploads/cat.jpg"
    policy = check_policy(form, BUCKET, key, now())
    assert (policy.min_length, policy.max_length) == (0, None)
    assert form.filename == "cat.jpg" and form.file_content_type == "image/jpeg"
    assert form.file.read() == DATA
    assert form.file.read(10) == b""


def test_unsigned_form_has_no_signer_and_no_limits():
    form = form_of({"key": "public/${filename}", "acl": "public-read"})
    assert verify_signature(form, KEYS.get) is None
    assert check_policy(form, BUCKET, object_key(form), now()) == postform.Policy()
    assert form.fields == {"key": "public/${filename}", "acl": "public-read"}


def test_field_names_are_case_insensitive_and_values_kept():
    form = form_of({"Key": "A/B", "Content-Type": "Text/Plain", "X-Amz-Meta-Color": "Blue"})
    assert form.fields == {"key": "A/B", "content-type": "Text/Plain",
                           "x-amz-meta-color": "Blue"}


def test_filename_substitution_and_unicode_names():
    form = form_of({"key": "in/${filename}/${filename}"}, filename="chat é.txt")
    assert object_key(form) == "in/chat é.txt/chat é.txt"
    assert object_key(form_of({"key": "fixed"})) == "fixed"


def test_key_field_is_required():
    exc = error(object_key, form_of({"acl": "private"}))
    assert (exc.code, exc.status, exc.extra["ArgumentName"]) == ("InvalidArgument", 400, "key")


# ---------------------------------------------------------------- signatures

@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_tampered_policy_does_not_match(signature_version):
    fields = presigned(signature_version)
    document = json.loads(base64.b64decode(fields["policy"]))
    document["conditions"].append(["content-length-range", 0, 10**12])
    fields["policy"] = base64.b64encode(json.dumps(document).encode()).decode()
    exc = error(verify_signature, form_of(fields), KEYS.get)
    assert (exc.code, exc.status) == ("SignatureDoesNotMatch", 403)


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_wrong_secret_does_not_match(signature_version):
    form = form_of(presigned(signature_version, secret="not-the-secret"))
    exc = error(verify_signature, form, KEYS.get)
    assert (exc.code, exc.status) == ("SignatureDoesNotMatch", 403)


@pytest.mark.parametrize("signature_version", ["s3v4", "s3"])
def test_unknown_access_key(signature_version):
    exc = error(verify_signature, form_of(presigned(signature_version)), {}.get)
    assert (exc.code, exc.status) == ("InvalidAccessKeyId", 403)


@pytest.mark.parametrize("signature_version, dropped, named", [
    ("s3v4", "x-amz-signature", "x-amz-signature"),
    ("s3v4", "x-amz-date", "x-amz-date"),
    ("s3v4", "policy", "policy"),
    ("s3", "signature", "signature"),
    ("s3", "AWSAccessKeyId", "AWSAccessKeyId"),
])
def test_missing_signing_field(signature_version, dropped, named):
    fields = presigned(signature_version)
    del fields[dropped]
    exc = error(verify_signature, form_of(fields), KEYS.get)
    assert (exc.code, exc.status, exc.extra["ArgumentName"]) == ("InvalidArgument", 400, named)


def test_policy_without_signature_names_the_access_key_field():
    fields = presigned("s3")
    del fields["AWSAccessKeyId"], fields["signature"]
    exc = error(verify_signature, form_of(fields), KEYS.get)
    assert exc.extra["ArgumentName"] == "AWSAccessKeyId"


@pytest.mark.parametrize("field, value, code", [
    ("x-amz-credential", "no-slashes", "InvalidArgument"),
    ("x-amz-credential", f"{ALICE.access_key}/2026-01-01/eucalyptus/s3/aws4_request",
     "InvalidArgument"),
    ("x-amz-credential", f"{ALICE.access_key}/20260101/eucalyptus/ec2/aws4_request",
     "InvalidArgument"),
    ("x-amz-credential", f"{ALICE.access_key}/20260101/eucalyptus/s3/aws5_request",
     "InvalidArgument"),
    ("x-amz-algorithm", "AWS4-HMAC-SHA1", "InvalidArgument"),
    ("x-amz-date", "yesterday", "AccessDenied"),
])
def test_malformed_sigv4_fields(field, value, code):
    fields = presigned()
    fields[field] = value
    assert error(verify_signature, form_of(fields), KEYS.get).code == code


# ---------------------------------------------------------------- policy conditions

def checked(fields, bucket=BUCKET, when=None, **kwargs):
    """check_policy of a form whose signature holds (it covers the policy, not the fields)."""
    form = form_of(fields, **kwargs)
    assert verify_signature(form, KEYS.get) is ALICE
    return check_policy(form, bucket, object_key(form), when or now())


def refused(fields, **kwargs):
    with pytest.raises(AWSError) as info:
        checked(fields, **kwargs)
    return info.value


CONDITIONS = [
    # (conditions, the fields signed with them, the same fields as the form sends them)
    ([{"acl": "public-read"}], {"acl": "public-read"}, {"acl": "private"}),
    ([["eq", "$acl", "private"]], {"acl": "private"}, {"acl": "private "}),
    ([["starts-with", "$Content-Type", "image/"]], {"Content-Type": "image/png"},
     {"Content-Type": "text/plain"}),
    ([["starts-with", "$content-type", "image/"]], {"content-type": "image/png, image/gif"},
     {"content-type": "image/png, text/html"}),
    ([["starts-with", "$x-amz-meta-tag", ""]], {"x-amz-meta-tag": "anything at all"}, None),
    ([{"x-amz-meta-uuid": "14365123651274"}], {"x-amz-meta-uuid": "14365123651274"},
     {"x-amz-meta-uuid": "1"}),
    ([{"success_action_status": "201"}], {"success_action_status": "201"},
     {"success_action_status": "200"}),
    ([["starts-with", "$success_action_redirect", "https://app.example.com/"]],
     {"success_action_redirect": "https://app.example.com/done"},
     {"success_action_redirect": "https://evil.example.com/"}),
    ([["eq", "$tagging", "<Tagging/>"]], {"tagging": "<Tagging/>"}, {"tagging": "<Tagging>"}),
]


@pytest.mark.parametrize("conditions, good, bad", CONDITIONS)
def test_condition_holds_or_fails(conditions, good, bad):
    assert checked(presigned(fields=good, conditions=conditions)) == postform.Policy()
    if bad is not None:
        exc = refused({**presigned(fields=good, conditions=conditions), **bad})
        assert (exc.code, exc.status) == ("AccessDenied", 403)
        assert exc.message.startswith("Invalid according to Policy: Policy Condition failed: [")


def test_condition_failure_names_the_condition():
    fields = {**presigned(fields={"acl": "public-read"}, conditions=[{"acl": "public-read"}]),
              "acl": "private"}
    assert refused(fields).message == ('Invalid according to Policy: Policy Condition failed: '
                                       '["eq", "$acl", "public-read"]')


def test_bucket_condition_is_checked_against_the_request_bucket():
    exc = refused(presigned(), bucket="other")
    assert exc.message.endswith(f'["eq", "$bucket", "{BUCKET}"]')


def test_key_condition_is_checked_after_filename_substitution():
    fields = presigned(key="uploads/${filename}")
    assert checked({**fields, "key": "${filename}"}, filename="uploads/x") == postform.Policy()
    exc = refused({**fields, "key": "elsewhere/${filename}"})
    assert exc.message.endswith('["starts-with", "$key", "uploads/"]')


def test_exact_only_fields_refuse_starts_with():
    fields = presigned(conditions=[["starts-with", "$bucket", ""]])
    assert refused(fields).message.endswith('["starts-with", "$bucket", ""]')


def test_extra_field_is_refused_and_x_ignore_fields_are_not():
    fields = presigned()
    exc = refused({**fields, "x-amz-meta-color": "blue"})
    assert (exc.code, exc.message) == ("AccessDenied", "Invalid according to Policy: "
                                       "Extra input fields: x-amz-meta-color")
    assert checked({**fields, "x-ignore-submit": "Upload"}) == postform.Policy()


def test_fields_after_the_file_are_ignored():
    form = form_of(presigned(), after=[("x-amz-meta-late", "x"), ("submit", "Upload")])
    assert "x-amz-meta-late" not in form.fields
    assert check_policy(form, BUCKET, object_key(form), now()) == postform.Policy()
    assert form.file.read() == DATA


def test_expired_policy():
    exc = refused(presigned(expires=60), when=now() + timedelta(seconds=61))
    assert (exc.code, exc.status, exc.message) == (
        "AccessDenied", 403, "Invalid according to Policy: Policy expired.")


def test_content_length_range():
    policy = checked(presigned(conditions=[["content-length-range", 10, 100]]))
    assert (policy.min_length, policy.max_length) == (10, 100)
    policy.check_length(10)
    policy.check_length(100)
    small, large = error(policy.check_length, 9), error(policy.check_length, 101)
    assert (small.code, small.status, small.extra["MinSizeAllowed"]) == ("EntityTooSmall", 400, 10)
    assert (large.code, large.status, large.extra["MaxSizeAllowed"]) == ("EntityTooLarge", 400, 100)


def test_several_length_ranges_all_apply():
    policy = checked(presigned(conditions=[["content-length-range", 1, 100],
                                           ["content-length-range", "5", "50"]]))
    assert (policy.min_length, policy.max_length) == (5, 50)


def test_server_side_encryption_is_refused():
    fields = presigned(fields={"x-amz-server-side-encryption": "AES256"},
                       conditions=[{"x-amz-server-side-encryption": "AES256"}])
    exc = refused(fields)
    assert (exc.code, exc.status) == ("NotImplemented", 501)
    unsigned = form_of({"key": "k", "x-amz-server-side-encryption": "AES256"})
    assert error(check_policy, unsigned, BUCKET, "k", now()).code == "NotImplemented"


def policy_text(document):
    raw = document if isinstance(document, bytes) else json.dumps(document).encode()
    return base64.b64encode(raw).decode()


LATER = "2099-01-01T00:00:00.000Z"


@pytest.mark.parametrize("policy, message", [
    ("!!not base64!!", "Invalid Policy: invalid Base64 encoding."),
    (policy_text(b"{not json"), "Invalid Policy: Invalid JSON."),
    (policy_text([LATER]), "Invalid Policy: Invalid JSON."),
    (policy_text({"conditions": []}), "Invalid Policy: Policy missing expiration."),
    (policy_text({"expiration": LATER}), "Invalid Policy: Policy missing conditions."),
    (policy_text({"expiration": "2099-01-01T00:00:00", "conditions": []}),
     "Invalid Policy: Invalid 'expiration' value: '2099-01-01T00:00:00'"),
    (policy_text({"expiration": "soon", "conditions": []}),
     "Invalid Policy: Invalid 'expiration' value: 'soon'"),
    (policy_text({"expiration": LATER, "conditions": {"acl": "x"}}),
     "Invalid Policy: Invalid 'conditions' value: must be a List."),
    (policy_text({"expiration": LATER, "conditions": [], "extra": 1}),
     'Invalid Policy: Unexpected: "extra"'),
    (policy_text({"expiration": LATER, "conditions": [7]}),
     "Invalid Policy: Invalid condition test: must be a List or Object."),
    (policy_text({"expiration": LATER, "conditions": [{"acl": "a", "key": "b"}]}),
     "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one "
     "property specified."),
    (policy_text({"expiration": LATER, "conditions": [{"acl": 1}]}),
     "Invalid Policy: Invalid Simple-Condition: value must be a string."),
    (policy_text({"expiration": LATER, "conditions": [[]]}),
     "Invalid Policy: Invalid Condition: missing operation identifier."),
    (policy_text({"expiration": LATER, "conditions": [["matches", "$key", "x"]]}),
     "Invalid Policy: Invalid Condition: unknown operation 'matches'."),
    (policy_text({"expiration": LATER, "conditions": [["eq", "$key"]]}),
     "Invalid Policy: Invalid eq: wrong number of arguments."),
    (policy_text({"expiration": LATER, "conditions": [["content-length-range", 1.5, 2]]}),
     "Invalid Policy: Invalid JSON."),
])
def test_malformed_policy_document(policy, message):
    form = form_of({"key": "k", "policy": policy})
    exc = error(check_policy, form, BUCKET, "k", now())
    assert (exc.code, exc.status, exc.message) == ("InvalidPolicyDocument", 400, message)


def test_policy_base64_may_be_wrapped_and_unpadded():
    text = policy_text({"expiration": LATER, "conditions": [["starts-with", "$key", ""]]})
    wrapped = "\n".join(text[i:i + 16] for i in range(0, len(text), 16)).rstrip("=")
    form = form_of({"key": "k", "policy": wrapped})
    assert check_policy(form, BUCKET, "k", now()) == postform.Policy()


# ---------------------------------------------------------------- multipart parsing

def test_missing_file():
    body, content_type = encode_multipart_formdata([("key", "k")], boundary=BOUNDARY)
    exc = error(parse, body, content_type)
    assert (exc.code, exc.status, exc.message) == (
        "InvalidArgument", 400, "POST requires exactly one file upload per request.")


def test_not_multipart_form_data():
    exc = error(parse, b"key=k", "application/x-www-form-urlencoded")
    assert (exc.code, exc.status) == ("PreconditionFailed", 412)


@pytest.mark.parametrize("body, content_type", [
    (b"--b\r\n\r\nx\r\n--b--\r\n", "multipart/form-data"),
    (b"no delimiter anywhere", "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
     "multipart/form-data; boundary=b"),
    (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b"),
    (b"--bjunk\r\n", "multipart/form-data; boundary=b"),
    (b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\nno end', "multipart/form-data; "
     "boundary=b"),
    (b'--b\r\nContent-Disposition: form-data; name="key"\r\n\r\n\xff\r\n--b--\r\n',
     "multipart/form-data; boundary=b"),
])
def test_malformed_multipart(body, content_type):
    exc = error(parse, body, content_type)
    assert (exc.code, exc.status, exc.message) == (
        "MalformedPOSTRequest", 400,
        "The body of your POST request is not well-formed multipart/form-data.")


def test_body_shorter_than_its_content_length():
    body, content_type = encode({"key": "k"})
    form = parse(body[:-200], content_type, length=len(body))
    assert error(form.file.read).code == "IncompleteBody"
    assert error(parse, body[:40], content_type, None, len(body)).code == "IncompleteBody"


def test_fields_before_the_file_are_capped():
    body, content_type = encode({"key": "k", "x-amz-meta-big": "x" * (21 * 1024)})
    exc = error(parse, body, content_type)
    assert (exc.code, exc.status) == ("MaxPostPreDataLengthExceededError", 400)
    assert parse(*encode({"key": "k", "x-amz-meta-big": "x" * (19 * 1024)})).fields["key"] == "k"


def test_duplicate_field():
    body, content_type = encode_multipart_formdata(
        [("key", "a"), ("Key", "b"), ("file", ("f", b"x"))], boundary=BOUNDARY)
    assert error(parse, body, content_type).code == "InvalidArgument"


def test_preamble_padding_and_headerless_parts():
    body = (b"preamble to ignore\r\n--b \t\r\n"
            b'Content-Disposition: form-data; name="key"\r\n\r\nk\r\n--b\r\n'
            b'Content-Disposition: form-data; name="file"\r\n\r\n\r\n--b\r\n\r\nlost\r\n--b--')
    form = parse(body, 'multipart/form-data; boundary="b"')
    assert (form.fields, form.filename, form.file_content_type) == ({"key": "k"}, "", None)
    assert form.file.read() == b""


LOOKALIKES = [
    b"\r\n--" + BOUNDARY.encode()[:-1],
    b"\r\n--" + BOUNDARY.encode() + b"X",
    b"\r\n--" + BOUNDARY.encode() + b"-X",
    b"\n--" + BOUNDARY.encode() + b"\r\n",
    b"\r\n-",
    b"\r\n--" + BOUNDARY.encode()[:10],
]


@pytest.mark.parametrize("step", [1, 7, 4096, None])
@pytest.mark.parametrize("lookalike", LOOKALIKES)
def test_file_holding_boundary_lookalikes(lookalike, step):
    data = b"".join([b"head", lookalike, DATA, lookalike, b"mid", lookalike * 3, lookalike])
    form = parse(*encode({"key": "k"}, data=data), step=step)
    assert form.file.read() == data


@pytest.mark.parametrize("offset", [-3, -1, 0, 1, 5])
def test_lookalike_across_a_chunk_edge(offset):
    body, content_type = encode({"key": "k"}, data=b"")
    head = body.index(b"\r\n\r\n", body.index(b'name="file"')) + 4
    pad = postform.CHUNK - head + offset
    data = b"p" * pad + LOOKALIKES[1] + b"q" * 100 + LOOKALIKES[0]
    form = parse(*encode({"key": "k"}, data=data))
    assert form.file.read() == data


@pytest.mark.parametrize("size", [1, 8191, 65536, -1])
def test_read_sizes_give_the_same_bytes(size):
    data = bytes(reversed(DATA)) * 30  # 300 KiB: several chunks
    body, content_type = encode(presigned(), data=data, after=[("submit", "Upload")])
    stream = io.BytesIO(body)
    form = parse_form(stream, content_type, len(body))
    chunks = []
    while chunk := form.file.read(size):
        assert size < 0 or len(chunk) <= size
        chunks.append(chunk)
    assert b"".join(chunks) == data
    assert stream.tell() == len(body)  # the rest of the body was drained


def test_empty_file():
    form = form_of({"key": "k"}, data=b"")
    assert form.file.read(1) == b""


class Generated(io.RawIOBase):
    """A multipart body made on the fly: ``head``, ``size`` bytes of a pattern, ``tail``."""

    def __init__(self, head, size, tail):
        super().__init__()
        self.head, self.size, self.tail = head, size, tail
        self.block = bytes(range(251)) * 261  # 65511 bytes: never aligned to a chunk
        self.pending, self.rest = b"", self.chunks()

    def readable(self):
        return True

    def file_bytes(self):
        """The file, block by numbered block."""
        for number, start in enumerate(range(0, self.size, len(self.block))):
            block = number.to_bytes(4, "big") + self.block[4:]
            yield block[:self.size - start]

    def chunks(self):
        yield self.head
        yield from self.file_bytes()
        yield self.tail

    def readinto(self, target):
        while not self.pending:
            self.pending = next(self.rest, None)
            if self.pending is None:
                self.pending = b""
                return 0
        size = min(len(target), len(self.pending))
        target[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def test_large_file_streams_in_bounded_memory():
    size = 50 * 1024 * 1024
    fields = presigned(conditions=[["content-length-range", 0, size]])
    body, content_type = encode(fields, data=b"", filename="big.bin",
                                content_type="application/octet-stream")
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    head = body[:-len(tail)]
    expected = hashlib.sha256()
    for block in Generated(head, size, tail).file_bytes():
        expected.update(block)

    source = Generated(head, size, tail)
    tracemalloc.start()
    try:
        form = parse_form(source, content_type, len(head) + size + len(tail))
        policy = check_policy(form, BUCKET, object_key(form), now())
        digest, total = hashlib.sha256(), 0
        while chunk := form.file.read(64 * 1024):
            digest.update(chunk)
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    policy.check_length(total)
    assert total == size and digest.digest() == expected.digest()
    assert peak < 1024 * 1024, f"peak {peak} bytes"


# ---------------------------------------------------------------- the answer

ETAG = '"0123456789abcdef0123456789abcdef"'
LOCATION = "http://walrus.example.com:8773/photos/uploads/cat.jpg"


def answer(fields):
    form = form_of(fields)
    return success_response(form, BUCKET, "uploads/cat.jpg", ETAG, LOCATION)


def test_default_answer_is_204():
    status, headers, body = answer({"key": "k"})
    assert (status, body) == (204, b"")
    assert dict(headers) == {"ETag": ETAG, "Location": LOCATION}


@pytest.mark.parametrize("value, status", [("200", 200), ("204", 204), ("500", 204), ("x", 204)])
def test_success_action_status(value, status):
    assert answer({"key": "k", "success_action_status": value})[0] == status


def test_201_answers_a_post_response_document():
    status, headers, body = answer({"key": "k", "success_action_status": "201"})
    assert status == 201 and ("Content-Type", "application/xml") in headers
    document = ET.fromstring(body)
    assert document.tag == "PostResponse"
    assert {child.tag: child.text for child in document} == {
        "Location": LOCATION, "Bucket": BUCKET, "Key": "uploads/cat.jpg", "ETag": ETAG}


@pytest.mark.parametrize("field", ["success_action_redirect", "redirect"])
def test_redirect_adds_bucket_key_and_etag(field):
    status, headers, body = answer({"key": "k", field: "https://app.example.com/done?x=1#top",
                                    "success_action_status": "201"})
    assert (status, body) == (303, b"")
    location = urlsplit(dict(headers)["Location"])
    assert (location.netloc, location.path) == ("app.example.com", "/done")
    assert location.fragment == "top"
    assert parse_qs(location.query) == {"x": ["1"], "bucket": [BUCKET],
                                        "key": ["uploads/cat.jpg"], "etag": [ETAG]}


def test_uninterpretable_redirect_is_ignored():
    assert answer({"key": "k", "success_action_redirect": "javascript:alert(1)"})[0] == 204
    assert answer({"key": "k", "redirect": "not a url"})[0] == 204

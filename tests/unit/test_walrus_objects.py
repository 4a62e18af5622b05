"""Walrus object operations over real boto3, held to what S3 answers: CopyObject, DeleteObjects,
ranged and conditional GET/HEAD, stored headers and metadata, and listings over 10,050 keys."""

import base64
import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import quote, unquote_plus

import pytest
from botocore.exceptions import ClientError

from tests.unit.walrus_fixtures import (  # noqa: F401 (fixtures)
    ALICE, BOB, anonymous, bucket, code, error_code, files_of, new_bucket, s3, s3_bob, s3_reader, server,
    signed, status)

PAST = datetime(2001, 1, 1, tzinfo=timezone.utc)
FUTURE = datetime.now(timezone.utc) + timedelta(days=365)


def md5_etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def b64_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def keys_of(s3, bucket) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def refused(call, **kwargs):
    """The ClientError a call raises (it must raise one)."""
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc


# ---------------------------------------------------------------- CopyObject

def test_copy_within_and_across_buckets_keeps_body_and_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/plain",
                  Metadata={"color": "blue"}, CacheControl="max-age=60", ContentLanguage="en")
    other = new_bucket(s3)
    same = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    across = s3.copy_object(Bucket=other, Key="dst", CopySource=f"{bucket}/src")
    for result in (same, across):
        assert result["CopyObjectResult"]["ETag"] == md5_etag(b"payload")
    for target in (bucket, other):
        got = s3.get_object(Bucket=target, Key="dst")
        assert got["Body"].read() == b"payload" and got["ContentType"] == "text/plain"
        assert got["Metadata"] == {"color": "blue"}
        assert got["CacheControl"] == "max-age=60" and got["ContentLanguage"] == "en"


def test_copy_with_replace_takes_only_the_new_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", ContentType="text/plain", Metadata={"old": "1"},
                  CacheControl="max-age=60")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", ContentType="application/json", Metadata={"new": "2"},
                   ContentDisposition="attachment")
    got = s3.head_object(Bucket=bucket, Key="dst")
    assert got["ContentType"] == "application/json" and got["Metadata"] == {"new": "2"}
    assert got["ContentDisposition"] == "attachment" and "CacheControl" not in got


def test_copy_without_replace_ignores_new_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x", ContentType="text/plain", Metadata={"old": "1"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                   ContentType="application/json", Metadata={"new": "2"})
    got = s3.head_object(Bucket=bucket, Key="dst")
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"old": "1"}


def test_copy_onto_itself_needs_replace(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"same", Metadata={"v": "1"})
    exc = refused(s3.copy_object, Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k"})
    assert code(exc) == "InvalidRequest" and status(exc) == 400
    s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k"},
                   MetadataDirective="REPLACE", Metadata={"v": "2"})
    got = s3.get_object(Bucket=bucket, Key="k")
    assert got["Body"].read() == b"same" and got["Metadata"] == {"v": "2"}


@pytest.fixture
def source(s3, bucket):
    """(bucket, ETag, LastModified) of an object "src" to copy from."""
    s3.put_object(Bucket=bucket, Key="src", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="src")
    return bucket, head["ETag"], head["LastModified"]


@pytest.mark.parametrize("condition, value, holds", [
    ("CopySourceIfMatch", "etag", True), ("CopySourceIfMatch", '"0123456789abcdef0123456789abcdef"', False),
    ("CopySourceIfNoneMatch", "etag", False), ("CopySourceIfNoneMatch", '"0123456789abcdef0123456789abcdef"', True),
    ("CopySourceIfModifiedSince", PAST, True), ("CopySourceIfModifiedSince", "modified", False),
    ("CopySourceIfUnmodifiedSince", PAST, False), ("CopySourceIfUnmodifiedSince", FUTURE, True),
])
def test_copy_source_conditions(s3, source, condition, value, holds):
    bucket, etag, modified = source
    value = {"etag": etag, "modified": modified}.get(value, value) if isinstance(value, str) else value
    copy = dict(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"}, **{condition: value})
    if holds:
        s3.copy_object(**copy)
        assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == b"conditional"
    else:
        exc = refused(s3.copy_object, **copy)
        assert code(exc) == "PreconditionFailed" and status(exc) == 412
        assert keys_of(s3, bucket) == ["src"]


@pytest.mark.parametrize("key", ["dir/a b+c.txt", "ünïcødé/日本語 ключ", "100% & ?query=1#frag",
                                 "~tilde/;semi"])
def test_copy_source_keys_are_url_decoded(server, s3, bucket, key):
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    s3.copy_object(Bucket=bucket, Key="as-dict", CopySource={"Bucket": bucket, "Key": key})
    s3.copy_object(Bucket=bucket, Key="as-string", CopySource=f"{bucket}/{key}")
    raw = signed(server[0], "PUT", f"/{bucket}/raw", headers={"x-amz-copy-source": f"/{bucket}/{quote(key)}"})
    assert raw.status_code == 200, raw.text
    for copy in ("as-dict", "as-string", "raw"):
        assert s3.get_object(Bucket=bucket, Key=copy)["Body"].read() == key.encode()


def test_copy_missing_source(s3, bucket):
    exc = refused(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "absent"})
    assert code(exc) == "NoSuchKey" and status(exc) == 404
    exc = refused(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": "no-such-bucket-x", "Key": "k"})
    assert code(exc) == "NoSuchBucket" and status(exc) == 404


def test_copy_from_another_accounts_private_object_is_denied(s3, s3_bob, bucket):
    theirs = new_bucket(s3_bob)
    s3_bob.put_object(Bucket=theirs, Key="secret", Body=b"bob's")
    for key in ("secret", "absent"):
        exc = refused(s3.copy_object, Bucket=bucket, Key="stolen", CopySource={"Bucket": theirs, "Key": key})
        assert code(exc) == "AccessDenied" and status(exc) == 403
    assert keys_of(s3, bucket) == []


def test_copy_from_another_accounts_public_read_object(s3, s3_bob, bucket):
    theirs = new_bucket(s3_bob)
    s3_bob.put_object(Bucket=theirs, Key="shared", Body=b"for all", ACL="public-read")
    s3.copy_object(Bucket=bucket, Key="mine", CopySource={"Bucket": theirs, "Key": "shared"})
    assert s3.get_object(Bucket=bucket, Key="mine")["Body"].read() == b"for all"
    assert s3.get_object_acl(Bucket=bucket, Key="mine")["Owner"]["ID"] == ALICE.account_id


def test_copy_computes_a_requested_checksum_and_keeps_the_sources(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"checksummed", ChecksumAlgorithm="CRC32")
    crc = s3.head_object(Bucket=bucket, Key="src", ChecksumMode="ENABLED")["ChecksumCRC32"]
    sha = base64.b64encode(hashlib.sha256(b"checksummed").digest()).decode()
    result = s3.copy_object(Bucket=bucket, Key="sha", CopySource={"Bucket": bucket, "Key": "src"},
                            ChecksumAlgorithm="SHA256")["CopyObjectResult"]
    assert result["ChecksumSHA256"] == sha
    assert s3.head_object(Bucket=bucket, Key="sha", ChecksumMode="ENABLED")["ChecksumSHA256"] == sha
    s3.copy_object(Bucket=bucket, Key="kept", CopySource={"Bucket": bucket, "Key": "src"})
    assert s3.head_object(Bucket=bucket, Key="kept", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc


def test_copy_needs_put_permission(s3, s3_reader, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    exc = refused(s3_reader.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(exc) == "AccessDenied"


def test_copy_with_conflicting_acl_headers_stages_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x" * 1_000_000)  # large enough to be a file
    before = files_of(server, bucket)
    exc = refused(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                  ACL="public-read", GrantRead=f'id="{BOB.account_id}"')
    assert code(exc) == "InvalidRequest" and status(exc) == 400
    assert keys_of(s3, bucket) == ["src"] and files_of(server, bucket) == before


def test_copy_unknown_metadata_directive(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    exc = refused(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"},
                  MetadataDirective="MERGE")
    assert code(exc) == "InvalidArgument" and status(exc) == 400


@pytest.mark.parametrize("call", ["put_object", "copy_object"])
@pytest.mark.parametrize("condition", [{"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef0123456789abcdef"'}])
def test_conditional_writes_never_overwrite_silently(s3, bucket, call, condition):
    """S3 answers 412 when the condition fails; Walrus, lacking an atomic compare-and-commit,
    refuses conditional writes (501) rather than ignore them."""
    s3.put_object(Bucket=bucket, Key="k", Body=b"original")
    args = {"put_object": {"Body": b"replacement"},
            "copy_object": {"CopySource": {"Bucket": bucket, "Key": "k"}, "MetadataDirective": "REPLACE"}}[call]
    exc = refused(getattr(s3, call), Bucket=bucket, Key="k", **args, **condition)
    assert (code(exc), status(exc)) in (("PreconditionFailed", 412), ("NotImplemented", 501))
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"original"


# ---------------------------------------------------------------- DeleteObjects

def put_keys(server, bucket, keys):
    """Objects straight into the store (the listing and batch tests need many, fast)."""
    store = server[1]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put_object(bucket, key, io.BytesIO(key.encode()), len(key.encode()),
                                                   owner=ALICE.account_id), keys))


def test_delete_objects_many_including_absent_keys(server, s3, bucket):
    keys = [f"k{i:03d}" for i in range(50)]
    put_keys(server, bucket, keys)
    doomed = keys[:30] + ["absent-1", "absent-2"]
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in doomed]})
    assert sorted(d["Key"] for d in out["Deleted"]) == sorted(doomed) and "Errors" not in out
    assert keys_of(s3, bucket) == keys[30:]


def test_delete_objects_quiet_reports_no_deletions(server, s3, bucket):
    put_keys(server, bucket, ["a", "b", "c"])
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}], "Quiet": True})
    assert "Deleted" not in out and "Errors" not in out
    assert keys_of(s3, bucket) == ["c"]


def test_delete_objects_over_1000_keys_is_malformed(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k0", Body=b"x")
    exc = refused(s3.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": f"k{i}"} for i in range(1001)]})
    assert code(exc) == "MalformedXML" and status(exc) == 400
    assert keys_of(s3, bucket) == ["k0"]


def test_delete_objects_exactly_1000_keys(server, s3, bucket):
    keys = [f"k{i:04d}" for i in range(1000)]
    put_keys(server, bucket, keys)
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    assert "Errors" not in out and keys_of(s3, bucket) == []


def _delete_body(*keys) -> bytes:
    objects = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{objects}</Delete>'.encode()


@pytest.mark.parametrize("body", [b"<Delete><Object><Key>k</Key></Object", b"not xml at all",
                                  b"<Delete><Quiet>true</Quiet></Delete>",
                                  b"<NotDelete><Object><Key>k</Key></Object></NotDelete>"])
def test_delete_objects_malformed_xml(server, s3, bucket, body):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    response = signed(server[0], "POST", f"/{bucket}?delete", body=body, headers={"Content-MD5": b64_md5(body)})
    assert response.status_code == 400 and error_code(response) == "MalformedXML"
    assert keys_of(s3, bucket) == ["k"]


def test_delete_objects_wrong_content_md5_deletes_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    body = _delete_body("k")
    response = signed(server[0], "POST", f"/{bucket}?delete", body=body,
                      headers={"Content-MD5": b64_md5(b"something else")})
    assert response.status_code == 400 and error_code(response) == "BadDigest"
    assert keys_of(s3, bucket) == ["k"]
    good = signed(server[0], "POST", f"/{bucket}?delete", body=body, headers={"Content-MD5": b64_md5(body)})
    assert good.status_code == 200 and keys_of(s3, bucket) == []


def test_delete_objects_reports_each_key_the_user_may_not_delete(s3, s3_reader, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    out = s3_reader.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("k", "AccessDenied")]
    assert keys_of(s3, bucket) == ["k"]


def test_delete_objects_in_another_accounts_bucket_is_denied(s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    exc = refused(s3_bob.delete_objects, Bucket=bucket, Delete={"Objects": [{"Key": "k"}]})
    assert code(exc) == "AccessDenied" and status(exc) == 403
    assert keys_of(s3, bucket) == ["k"]


# ---------------------------------------------------------------- ranges

DATA = bytes(range(256)) * 4  # 1024 bytes


@pytest.fixture
def ranged(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=DATA)
    return bucket


@pytest.mark.parametrize("spec, first, last", [
    ("bytes=0-0", 0, 0), ("bytes=-5", 1019, 1023), ("bytes=10-", 10, 1023), ("bytes=1000-5000", 1000, 1023),
    ("bytes=-5000", 0, 1023), ("bytes=1023-1023", 1023, 1023), ("bytes=100-199", 100, 199),
])
def test_range(s3, ranged, spec, first, last):
    got = s3.get_object(Bucket=ranged, Key="r", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["Body"].read() == DATA[first:last + 1] and got["ContentLength"] == last - first + 1
    assert got["ContentRange"] == f"bytes {first}-{last}/1024"
    head = s3.head_object(Bucket=ranged, Key="r", Range=spec)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentLength"] == last - first + 1 and head["ContentRange"] == got["ContentRange"]


@pytest.mark.parametrize("spec", ["bytes=abc", "bytes=5-2", "items=0-5", "bytes=0-1,4-5", "bytes=", "0-5"])
def test_malformed_or_multiple_ranges_send_the_whole_object(s3, ranged, spec):
    got = s3.get_object(Bucket=ranged, Key="r", Range=spec)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 200 and "ContentRange" not in got
    assert got["Body"].read() == DATA


@pytest.mark.parametrize("spec", ["bytes=1024-", "bytes=2000-3000", "bytes=1024-1024"])
def test_unsatisfiable_range(s3, ranged, spec):
    exc = refused(s3.get_object, Bucket=ranged, Key="r", Range=spec)
    assert code(exc) == "InvalidRange" and status(exc) == 416
    exc = refused(s3.head_object, Bucket=ranged, Key="r", Range=spec)
    assert status(exc) == 416


def test_any_range_of_an_empty_object_is_unsatisfiable(s3, bucket):
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    exc = refused(s3.get_object, Bucket=bucket, Key="empty", Range="bytes=0-")
    assert code(exc) == "InvalidRange" and status(exc) == 416


# ---------------------------------------------------------------- conditional GET and HEAD

@pytest.fixture
def dated(s3, bucket):
    """(bucket, ETag, LastModified) of an object "c"."""
    s3.put_object(Bucket=bucket, Key="c", Body=b"conditional body")
    head = s3.head_object(Bucket=bucket, Key="c")
    return bucket, head["ETag"], head["LastModified"]


OTHER_ETAG = '"0123456789abcdef0123456789abcdef"'


@pytest.mark.parametrize("conditions, expected", [
    ({"IfMatch": "etag"}, 200),
    ({"IfMatch": OTHER_ETAG}, 412),
    ({"IfMatch": "*"}, 200),
    ({"IfNoneMatch": "etag"}, 304),
    ({"IfNoneMatch": "*"}, 304),
    ({"IfNoneMatch": OTHER_ETAG}, 200),
    ({"IfModifiedSince": PAST}, 200),
    ({"IfModifiedSince": "modified"}, 304),
    ({"IfModifiedSince": FUTURE}, 200),  # a date in the future is invalid (RFC 7232 3.3): ignored
    ({"IfUnmodifiedSince": PAST}, 412),
    ({"IfUnmodifiedSince": "modified"}, 200),
    ({"IfUnmodifiedSince": FUTURE}, 200),
    # S3's documented combinations
    ({"IfMatch": "etag", "IfUnmodifiedSince": PAST}, 200),
    ({"IfNoneMatch": "etag", "IfModifiedSince": PAST}, 304),
    ({"IfMatch": OTHER_ETAG, "IfNoneMatch": "etag"}, 412),
])
@pytest.mark.parametrize("method", ["get_object", "head_object"])
def test_conditional_requests(s3, dated, method, conditions, expected):
    bucket, etag, modified = dated
    args = {name: {"etag": etag, "modified": modified}.get(value, value) if isinstance(value, str) else value
            for name, value in conditions.items()}
    if expected == 200:
        got = getattr(s3, method)(Bucket=bucket, Key="c", **args)
        assert got["ETag"] == etag and got["ResponseMetadata"]["HTTPStatusCode"] == 200
        return
    exc = refused(getattr(s3, method), Bucket=bucket, Key="c", **args)
    assert status(exc) == expected
    if expected == 412 and method == "get_object":
        assert code(exc) == "PreconditionFailed"


def test_not_modified_has_no_body_and_names_the_etag(server, dated):
    bucket, etag, modified = dated
    for method in ("GET", "HEAD"):
        response = signed(server[0], method, f"/{bucket}/c", headers={"If-None-Match": etag})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["ETag"] == etag and "Last-Modified" in response.headers


def test_conditions_of_a_missing_key_are_not_evaluated(s3, bucket):
    exc = refused(s3.get_object, Bucket=bucket, Key="absent", IfMatch=OTHER_ETAG)
    assert code(exc) == "NoSuchKey" and status(exc) == 404


# ---------------------------------------------------------------- metadata and stored headers

def test_user_metadata_round_trip_lower_cases_names(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="m", Body=b"x", Metadata={"Color": "Blue", "multi-Word-Name": "Two Words"})
    expected = {"color": "Blue", "multi-word-name": "Two Words"}
    assert s3.get_object(Bucket=bucket, Key="m")["Metadata"] == expected
    assert s3.head_object(Bucket=bucket, Key="m")["Metadata"] == expected
    raw = signed(server[0], "GET", f"/{bucket}/m")
    assert raw.headers["x-amz-meta-color"] == "Blue"


def test_standard_headers_are_stored_and_returned(server, s3, bucket):
    expires = datetime(2030, 1, 1, tzinfo=timezone.utc)
    s3.put_object(Bucket=bucket, Key="h", Body=b"x", ContentType="text/csv; charset=utf-8",
                  ContentDisposition='attachment; filename="report.csv"', ContentEncoding="gzip",
                  ContentLanguage="de-DE", CacheControl="no-cache", Expires=expires)
    for method in ("GET", "HEAD"):
        headers = signed(server[0], method, f"/{bucket}/h").headers
        assert headers["Content-Type"] == "text/csv; charset=utf-8"
        assert headers["Content-Disposition"] == 'attachment; filename="report.csv"'
        assert headers["Content-Encoding"] == "gzip" and headers["Content-Language"] == "de-DE"
        assert headers["Cache-Control"] == "no-cache"
        assert headers["Expires"] == "Tue, 01 Jan 2030 00:00:00 GMT"


def test_default_content_type(s3, bucket):
    s3.put_object(Bucket=bucket, Key="d", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="d")["ContentType"] in ("binary/octet-stream",
                                                                    "application/octet-stream")


def test_response_header_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain", CacheControl="no-cache")
    got = s3.get_object(Bucket=bucket, Key="o", ResponseContentType="application/pdf",
                        ResponseContentDisposition='attachment; filename="o.pdf"',
                        ResponseContentLanguage="fr", ResponseContentEncoding="identity",
                        ResponseCacheControl="max-age=10", ResponseExpires=datetime(2031, 2, 3, tzinfo=timezone.utc))
    headers = got["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/pdf"
    assert headers["content-disposition"] == 'attachment; filename="o.pdf"'
    assert headers["content-language"] == "fr" and headers["content-encoding"] == "identity"
    assert headers["cache-control"] == "max-age=10" and headers["expires"] == "Mon, 03 Feb 2031 00:00:00 GMT"
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain"


def test_response_header_overrides_in_a_presigned_url(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "o",
                                                          "ResponseContentType": "image/png"})
    response = anonymous("GET", url)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"


def test_response_header_overrides_are_refused_to_anonymous_requests(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pub", Body=b"x", ACL="public-read")
    assert anonymous("GET", f"{server[0]}/{bucket}/pub").content == b"x"
    response = anonymous("GET", f"{server[0]}/{bucket}/pub?response-content-type=text/html")
    assert response.status_code == 400 and error_code(response) == "InvalidRequest"


def test_etag_is_the_quoted_md5(s3, bucket):
    for key, data in (("empty", b""), ("small", b"hello"), ("binary", bytes(range(256)) * 100)):
        assert s3.put_object(Bucket=bucket, Key=key, Body=data)["ETag"] == md5_etag(data)
        assert s3.head_object(Bucket=bucket, Key=key)["ETag"] == md5_etag(data)
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}["small"] == md5_etag(b"hello")


def test_content_md5(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first", ContentMD5=b64_md5(b"first"))
    exc = refused(s3.put_object, Bucket=bucket, Key="k", Body=b"second", ContentMD5=b64_md5(b"other"))
    assert code(exc) == "BadDigest" and status(exc) == 400
    exc = refused(s3.put_object, Bucket=bucket, Key="new", Body=b"second", ContentMD5=b64_md5(b"other"))
    assert code(exc) == "BadDigest"
    assert keys_of(s3, bucket) == ["k"] and s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"first"


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"fifteen bytes!!").decode(), "", "AAAA"])
def test_malformed_content_md5_is_invalid_digest(server, s3, bucket, value):
    response = signed(server[0], "PUT", f"/{bucket}/k", body=b"data", headers={"Content-MD5": value})
    assert response.status_code == 400 and error_code(response) == "InvalidDigest"
    assert keys_of(s3, bucket) == []


# ---------------------------------------------------------------- listings

SPECIAL_KEYS = ["a b", "a+b", "a%2Bb", "ü", "日本/語", "\U0001F600 smile", "\uff61 halfwidth", "new\nline",
                "tab\tkey", "q?x=1&y=2", "<xml>&amp;", "~tilde", "z/", "trailing space ", "dir07x"]
LOTS = sorted([f"dir{d:02d}/file{i:05d}" for d in range(50) for i in range(d * 200, (d + 1) * 200)]
              + SPECIAL_KEYS + [f"top{i:02d}" for i in range(50 - len(SPECIAL_KEYS))], key=str.encode)


@pytest.fixture(scope="module")
def lots(server):
    """A bucket of ALICE's holding the 10,050 keys of LOTS, put straight into the store."""
    assert len(LOTS) == 10_050
    server[1].create_bucket("lots", ALICE.account_id)
    put_keys(server, "lots", LOTS)
    return "lots"


def test_list_v2_pages_through_every_key_once_in_utf8_order(s3, lots):
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=lots))
    assert [o["Key"] for page in pages for o in page["Contents"]] == LOTS
    assert [page["KeyCount"] for page in pages] == [1000] * 10 + [50]
    assert all(page["IsTruncated"] for page in pages[:-1]) and not pages[-1]["IsTruncated"]
    assert "NextContinuationToken" not in pages[-1]


def test_list_v1_pages_through_every_key_once_in_utf8_order(s3, lots):
    keys, marker = [], ""
    while True:
        page = s3.list_objects(Bucket=lots, Marker=marker)
        keys += [o["Key"] for o in page["Contents"]]
        assert "NextMarker" not in page  # S3 sends it only with a delimiter
        if not page["IsTruncated"]:
            break
        marker = keys[-1]
    assert keys == LOTS


def _rolled_up(prefix="", delimiter="/"):
    """What a listing with ``prefix`` and ``delimiter`` shows: (keys, common prefixes)."""
    keys, prefixes = [], []
    for key in LOTS:
        if not key.startswith(prefix):
            continue
        cut = key.find(delimiter, len(prefix))
        if cut < 0:
            keys.append(key)
        elif key[:cut + 1] not in prefixes:
            prefixes.append(key[:cut + 1])
    return keys, prefixes


@pytest.mark.parametrize("operation", ["list_objects", "list_objects_v2"])
@pytest.mark.parametrize("prefix", ["", "dir0", "dir07/", "日本/"])
def test_prefix_and_delimiter_page_by_page(s3, lots, operation, prefix):
    pages = list(s3.get_paginator(operation).paginate(Bucket=lots, Prefix=prefix, Delimiter="/",
                                                      PaginationConfig={"PageSize": 7}))
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    prefixes = [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])]
    assert (keys, prefixes) == _rolled_up(prefix)
    # botocore decodes v1's Prefix no more than S3 promises to encode it: compare it decoded
    assert all(unquote_plus(page["Prefix"]) == prefix and page["Delimiter"] == "/" for page in pages)


def test_common_prefixes_in_one_page(s3, lots):
    out = s3.list_objects_v2(Bucket=lots, Delimiter="/")
    keys, prefixes = _rolled_up()
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == prefixes
    assert [o["Key"] for o in out["Contents"]] == keys and out["KeyCount"] == len(keys) + len(prefixes)
    assert "日本/" in prefixes and "z/" in prefixes and len(prefixes) == 52


def test_marker_and_start_after(s3, lots):
    for at in (0, 999, 5000, len(LOTS) - 2):
        after = LOTS[at]
        v1 = s3.list_objects(Bucket=lots, Marker=after, MaxKeys=5)
        assert [o["Key"] for o in v1["Contents"]] == LOTS[at + 1:at + 6] and v1["Marker"] == after
        v2 = s3.list_objects_v2(Bucket=lots, StartAfter=after, MaxKeys=5)
        assert [o["Key"] for o in v2["Contents"]] == LOTS[at + 1:at + 6] and v2["StartAfter"] == after
    assert "Contents" not in s3.list_objects_v2(Bucket=lots, StartAfter=LOTS[-1])
    past_prefix = s3.list_objects_v2(Bucket=lots, Prefix="dir07/", StartAfter="dir07/file01499", MaxKeys=3)
    assert [o["Key"] for o in past_prefix["Contents"]] == ["dir07/file01500", "dir07/file01501", "dir07/file01502"]


def test_continuation_token_takes_precedence_over_start_after(s3, lots):
    first = s3.list_objects_v2(Bucket=lots, MaxKeys=10)
    token = first["NextContinuationToken"]
    second = s3.list_objects_v2(Bucket=lots, MaxKeys=10, ContinuationToken=token, StartAfter=LOTS[5000])
    assert [o["Key"] for o in second["Contents"]] == LOTS[10:20] and second["ContinuationToken"] == token


def test_bad_continuation_token(s3, lots):
    exc = refused(s3.list_objects_v2, Bucket=lots, ContinuationToken="!!not a token!!")
    assert code(exc) == "InvalidArgument" and status(exc) == 400


def test_fetch_owner(s3, lots):
    assert "Owner" not in s3.list_objects_v2(Bucket=lots, MaxKeys=1)["Contents"][0]
    owned = s3.list_objects_v2(Bucket=lots, MaxKeys=1, FetchOwner=True)["Contents"][0]
    assert owned["Owner"]["ID"] == ALICE.account_id
    assert s3.list_objects(Bucket=lots, MaxKeys=1)["Contents"][0]["Owner"]["ID"] == ALICE.account_id


@pytest.mark.parametrize("operation", ["list_objects", "list_objects_v2"])
def test_encoding_type_url(s3, lots, operation):
    out = getattr(s3, operation)(Bucket=lots, EncodingType="url", Prefix="a b", Delimiter=" ")
    assert out["EncodingType"] == "url" and unquote_plus(out["Prefix"]) == "a b" and " " not in out["Prefix"]
    assert unquote_plus(out["Delimiter"]) == " "
    out = getattr(s3, operation)(Bucket=lots, EncodingType="url", Prefix="a")
    assert [unquote_plus(o["Key"]) for o in out["Contents"]] == [k for k in LOTS if k.startswith("a")]


def test_encoding_type_url_over_every_key(s3, lots):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=lots, EncodingType="url")
    raw = [o["Key"] for page in pages for o in page["Contents"]]
    assert all(k.isascii() and not any(c in k for c in " \n\t<&") for k in raw)
    assert [unquote_plus(k) for k in raw] == LOTS


def test_special_keys_round_trip_through_botocores_decoding(s3, lots):
    for key in SPECIAL_KEYS:
        out = s3.list_objects_v2(Bucket=lots, Prefix=key, MaxKeys=1)
        assert out["Contents"][0]["Key"] == key
        assert s3.get_object(Bucket=lots, Key=key)["Body"].read() == key.encode()


@pytest.mark.parametrize("operation", ["list_objects", "list_objects_v2"])
def test_max_keys_zero(s3, lots, operation):
    out = getattr(s3, operation)(Bucket=lots, MaxKeys=0)
    assert "Contents" not in out and out["MaxKeys"] == 0
    assert out["IsTruncated"] is False


def test_max_keys_above_1000_returns_1000(s3, lots):
    out = s3.list_objects_v2(Bucket=lots, MaxKeys=5000)
    assert out["KeyCount"] == 1000 and out["IsTruncated"]


def test_unknown_encoding_type(s3, lots):
    exc = refused(s3.list_objects_v2, Bucket=lots, EncodingType="base64")
    assert code(exc) == "InvalidArgument" and status(exc) == 400


def test_a_listing_without_url_encoding_escapes_control_characters(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="bell\x07key", Body=b"x")
    response = signed(server[0], "GET", f"/{bucket}")
    assert response.status_code == 200, response.text
    assert "<Key>bell&#7;key</Key>" in response.text or "<Key>bell&#x7;key</Key>" in response.text

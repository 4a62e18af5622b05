"""Walrus multipart uploads over real boto3, held to what S3 answers: create, upload and copy
parts, complete, abort, list, checksums, the transfer manager, and S3's limits."""

import base64
import hashlib
import http.client
import os
import zlib
from urllib.parse import quote, urlsplit

import boto3.s3.transfer
import botocore.credentials
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from tests.unit.walrus_fixtures import (  # noqa: F401 (fixtures)
    ALICE, bucket, code, error_code, files_of, new_bucket, s3, s3_bob, server, signed, status)

MIB, GIB = 2**20, 2**30
PART = 5 * MIB


def refused(call, **kwargs):
    """The ClientError a call raises (it must raise one)."""
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc


def start(s3, bucket, key="mp", **kwargs) -> str:
    return s3.create_multipart_upload(Bucket=bucket, Key=key, **kwargs)["UploadId"]


def upload(s3, bucket, upload_id, number, data, key="mp", **kwargs) -> dict:
    """One part: {"PartNumber", "ETag", and any checksum}, as CompleteMultipartUpload wants it."""
    out = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **kwargs)
    return {"PartNumber": number, "ETag": out["ETag"],
            **{name: value for name, value in out.items() if name.startswith("Checksum") and name != "ChecksumType"}}


def complete(s3, bucket, upload_id, parts, key="mp", **kwargs):
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                        MultipartUpload={"Parts": parts}, **kwargs)


def s3_etag(*parts: bytes) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


@pytest.fixture(scope="module")
def big():
    """Two 5 MiB parts and a 1-byte one."""
    return [os.urandom(PART), os.urandom(PART), b"!"]


# ---------------------------------------------------------------- the whole road

def test_three_parts(server, s3, bucket, big):
    upload_id = start(s3, bucket, ContentType="video/mp4", Metadata={"camera": "one"})
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [upload_id]
    parts = [upload(s3, bucket, upload_id, n, data) for n, data in enumerate(big, start=1)]
    assert [p["ETag"] for p in parts] == [f'"{hashlib.md5(d).hexdigest()}"' for d in big]
    done = complete(s3, bucket, upload_id, parts)
    assert done["ETag"] == s3_etag(*big) and done["Key"] == "mp" and done["Bucket"] == bucket
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == b"".join(big) and got["ETag"] == s3_etag(*big)
    assert got["ContentType"] == "video/mp4" and got["Metadata"] == {"camera": "one"}
    head = s3.head_object(Bucket=bucket, Key="mp")
    assert head["PartsCount"] == 3 and head["ContentLength"] == 2 * PART + 1
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert len(files_of(server, bucket)) == 1  # the parts are gone, the object stays


def test_a_single_small_part_is_a_whole_object(s3, bucket):
    upload_id = start(s3, bucket)
    done = complete(s3, bucket, upload_id, [upload(s3, bucket, upload_id, 1, b"tiny")])
    assert done["ETag"] == s3_etag(b"tiny")
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"tiny"


def test_completing_may_name_a_subset_of_the_parts(s3, bucket, big):
    upload_id = start(s3, bucket)
    first = upload(s3, bucket, upload_id, 1, big[0])
    upload(s3, bucket, upload_id, 2, b"left out")
    last = upload(s3, bucket, upload_id, 5, big[2])
    complete(s3, bucket, upload_id, [first, last])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == big[0] + big[2]


def test_reuploading_a_part_replaces_it(server, s3, bucket):
    upload_id = start(s3, bucket)
    old = upload(s3, bucket, upload_id, 1, b"first try")
    new = upload(s3, bucket, upload_id, 1, b"second try")
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == [(1, new["ETag"], 10)]
    assert len(files_of(server, bucket)) == 1
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[old])
    assert code(exc) == "InvalidPart" and status(exc) == 400
    complete(s3, bucket, upload_id, [new])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"second try"


@pytest.mark.parametrize("order", [[2, 1], [1, 1], [1, 3, 2]])
def test_parts_out_of_order(s3, bucket, order):
    upload_id = start(s3, bucket)
    parts = {n: upload(s3, bucket, upload_id, n, f"part {n}".encode()) for n in (1, 2, 3)}
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[parts[n] for n in order])
    assert code(exc) == "InvalidPartOrder" and status(exc) == 400


def test_wrong_etag_or_missing_part(s3, bucket):
    upload_id = start(s3, bucket)
    part = upload(s3, bucket, upload_id, 1, b"only part")
    for wrong in ({"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'},
                  {"PartNumber": 2, "ETag": part["ETag"]}):
        exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[wrong])
        assert code(exc) == "InvalidPart" and status(exc) == 400
    complete(s3, bucket, upload_id, [{"PartNumber": 1, "ETag": part["ETag"].strip('"')}])  # quotes optional


def test_a_small_part_before_the_last_is_entity_too_small(s3, bucket, big):
    upload_id = start(s3, bucket)
    parts = [upload(s3, bucket, upload_id, 1, big[0]), upload(s3, bucket, upload_id, 2, b"small"),
             upload(s3, bucket, upload_id, 3, b"last")]
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=parts)
    assert code(exc) == "EntityTooSmall" and status(exc) == 400
    assert s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]  # the upload goes on


def test_completing_with_no_parts_is_malformed(server, s3, bucket):
    upload_id = start(s3, bucket)
    upload(s3, bucket, upload_id, 1, b"x")
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[])
    assert code(exc) == "MalformedXML" and status(exc) == 400


@pytest.mark.parametrize("number", [0, 10001, -1])
def test_part_numbers_outside_1_to_10000(s3, bucket, number):
    upload_id = start(s3, bucket)
    exc = refused(s3.upload_part, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=number, Body=b"x")
    assert code(exc) == "InvalidArgument" and status(exc) == 400


def test_part_number_10000_is_allowed(s3, bucket):
    upload_id = start(s3, bucket)
    part = upload(s3, bucket, upload_id, 10000, b"the last possible part")
    complete(s3, bucket, upload_id, [part])


def test_abort(server, s3, bucket):
    upload_id = start(s3, bucket)
    parts = [upload(s3, bucket, upload_id, n, b"part") for n in (1, 2)]
    assert len(files_of(server, bucket)) == 2
    assert s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)[
        "ResponseMetadata"]["HTTPStatusCode"] == 204
    assert files_of(server, bucket) == []
    for call in (lambda: s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id),
                 lambda: upload(s3, bucket, upload_id, 3, b"late"),
                 lambda: complete(s3, bucket, upload_id, parts),
                 lambda: s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id)):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "NoSuchUpload" and status(exc) == 404
    assert files_of(server, bucket) == [] and "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_an_upload_id_belongs_to_its_key(s3, bucket):
    upload_id = start(s3, bucket, key="one")
    exc = refused(s3.upload_part, Bucket=bucket, Key="other", UploadId=upload_id, PartNumber=1, Body=b"x")
    assert code(exc) == "NoSuchUpload"
    exc = refused(s3.list_parts, Bucket=bucket, Key="mp", UploadId="no-such-upload")
    assert code(exc) == "NoSuchUpload"


def test_another_account_cannot_touch_the_upload(s3, s3_bob, bucket):
    upload_id = start(s3, bucket)
    for call in (lambda: s3_bob.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x"),
                 lambda: s3_bob.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id),
                 lambda: s3_bob.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload_id),
                 lambda: s3_bob.list_multipart_uploads(Bucket=bucket),
                 lambda: s3_bob.create_multipart_upload(Bucket=bucket, Key="bobs")):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "AccessDenied" and status(exc) == 403


def test_a_conditional_complete_never_overwrites_silently(s3, bucket):
    """S3 answers 412 when the condition fails; Walrus refuses conditional writes (501)."""
    s3.put_object(Bucket=bucket, Key="mp", Body=b"original")
    upload_id = start(s3, bucket)
    part = upload(s3, bucket, upload_id, 1, b"replacement")
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[part], IfNoneMatch="*")
    assert (code(exc), status(exc)) in (("PreconditionFailed", 412), ("NotImplemented", 501))
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == b"original"


def test_a_bucket_whose_uploads_are_unfinished_can_be_deleted(server, s3):
    name = new_bucket(s3)
    upload_id = start(s3, name)
    upload(s3, name, upload_id, 1, b"orphan")
    s3.put_object(Bucket=name, Key="object", Body=b"x")
    exc = refused(s3.delete_bucket, Bucket=name)
    assert code(exc) == "BucketNotEmpty" and status(exc) == 409
    s3.delete_object(Bucket=name, Key="object")
    s3.delete_bucket(Bucket=name)
    assert not (server[1].root / name).exists()
    exc = refused(s3.list_multipart_uploads, Bucket=name)
    assert code(exc) == "NoSuchBucket"
    s3.create_bucket(Bucket=name)  # the name is free again, with nothing left over
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=name)
    exc = refused(s3.list_parts, Bucket=name, Key="mp", UploadId=upload_id)
    assert code(exc) == "NoSuchUpload"


# ---------------------------------------------------------------- listings

def test_list_parts_pages(s3, bucket):
    upload_id = start(s3, bucket)
    etags = {n: upload(s3, bucket, upload_id, n, f"part {n}".encode())["ETag"] for n in range(1, 8)}
    first = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=3)
    assert [p["PartNumber"] for p in first["Parts"]] == [1, 2, 3]
    assert first["IsTruncated"] and first["NextPartNumberMarker"] == 3 and first["MaxParts"] == 3
    assert first["Initiator"]["ID"] == ALICE.account_id and first["Owner"]["ID"] == ALICE.account_id
    second = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=3, PartNumberMarker=3)
    assert [p["PartNumber"] for p in second["Parts"]] == [4, 5, 6] and second["PartNumberMarker"] == 3
    last = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=3, PartNumberMarker=6)
    assert [p["PartNumber"] for p in last["Parts"]] == [7] and not last["IsTruncated"]
    pages = s3.get_paginator("list_parts").paginate(Bucket=bucket, Key="mp", UploadId=upload_id,
                                                    PaginationConfig={"PageSize": 2})
    assert {p["PartNumber"]: p["ETag"] for page in pages for p in page["Parts"]} == etags


@pytest.mark.parametrize("call, argument", [("list_parts", "max-parts=-1"), ("list_parts", "part-number-marker=-5"),
                                            ("list_multipart_uploads", "max-uploads=-1")])
def test_negative_paging_arguments(server, s3, bucket, call, argument):
    upload_id = start(s3, bucket)
    path = f"/{bucket}/mp?uploadId={upload_id}&{argument}" if call == "list_parts" else f"/{bucket}?uploads&{argument}"
    response = signed(server[0], "GET", path)
    assert response.status_code == 400 and error_code(response) == "InvalidArgument"


def test_max_parts_zero(s3, bucket):
    upload_id = start(s3, bucket)
    upload(s3, bucket, upload_id, 1, b"x")
    out = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id, MaxParts=0)
    assert "Parts" not in out and out["MaxParts"] == 0


@pytest.fixture
def uploads(s3, bucket):
    """(bucket, [(key, upload id)] in S3's order: by key, then by initiation)."""
    made = [(key, start(s3, bucket, key=key)) for key in ("c", "a/2", "c", "b/1", "a/1", "c", "d", "c")]
    ordered = sorted(made, key=lambda item: item[0])  # sorted() is stable: initiation order within a key
    return bucket, ordered


def _listed(page):
    return [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]


def test_list_multipart_uploads(s3, uploads):
    bucket, ordered = uploads
    out = s3.list_multipart_uploads(Bucket=bucket)
    assert _listed(out) == ordered and not out["IsTruncated"]
    assert all(u["Initiator"]["ID"] == ALICE.account_id for u in out["Uploads"])
    assert _listed(s3.list_multipart_uploads(Bucket=bucket, Prefix="a/")) == ordered[:2]
    rolled = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["a/", "b/"]
    assert _listed(rolled) == ordered[3:]
    assert _listed(s3.list_multipart_uploads(Bucket=bucket, KeyMarker="b/1")) == ordered[3:]


def test_list_multipart_uploads_upload_id_marker(s3, uploads):
    bucket, ordered = uploads
    for at in range(3, 7):  # within the four uploads of "c"
        key, upload_id = ordered[at]
        out = s3.list_multipart_uploads(Bucket=bucket, KeyMarker=key, UploadIdMarker=upload_id)
        assert _listed(out) == ordered[at + 1:]


@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_list_multipart_uploads_pages_through_each_once(s3, uploads, page_size):
    bucket, ordered = uploads
    pages = list(s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, PaginationConfig={"PageSize": page_size}))
    assert [item for page in pages for item in _listed(page)] == ordered
    assert all(page["IsTruncated"] for page in pages[:-1]) and not pages[-1]["IsTruncated"]


def test_list_multipart_uploads_pages_with_a_delimiter(s3, uploads):
    bucket, ordered = uploads
    pages = list(s3.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}))
    assert [p["Prefix"] for page in pages for p in page.get("CommonPrefixes", [])] == ["a/", "b/"]
    assert [item for page in pages for item in _listed(page)] == ordered[3:]


# ---------------------------------------------------------------- UploadPartCopy

def test_upload_part_copy_whole_and_ranged(s3, bucket, big):
    s3.put_object(Bucket=bucket, Key="source", Body=big[0])
    s3.put_object(Bucket=bucket, Key="small source", Body=b"0123456789")
    upload_id = start(s3, bucket)
    whole = s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                                CopySource={"Bucket": bucket, "Key": "source"})["CopyPartResult"]
    ranged = s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=2,
                                 CopySource={"Bucket": bucket, "Key": "small source"},
                                 CopySourceRange="bytes=2-5")["CopyPartResult"]
    assert whole["ETag"] == f'"{hashlib.md5(big[0]).hexdigest()}"'
    assert ranged["ETag"] == f'"{hashlib.md5(b"2345").hexdigest()}"' and "LastModified" in ranged
    complete(s3, bucket, upload_id, [{"PartNumber": 1, "ETag": whole["ETag"]},
                                     {"PartNumber": 2, "ETag": ranged["ETag"]}])
    assert s3.get_object(Bucket=bucket, Key="mp")["Body"].read() == big[0] + b"2345"


@pytest.mark.parametrize("spec", ["bytes=5-2", "bytes=0-", "bytes=-3", "0-3", "bytes=a-b", "bytes=0-1,3-4",
                                  "bytes=0-10", "bytes=10-10"])
def test_upload_part_copy_invalid_range(s3, bucket, spec):
    s3.put_object(Bucket=bucket, Key="source", Body=b"0123456789")
    upload_id = start(s3, bucket)
    exc = refused(s3.upload_part_copy, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                  CopySource={"Bucket": bucket, "Key": "source"}, CopySourceRange=spec)
    assert code(exc) == "InvalidArgument" and status(exc) == 400


def test_upload_part_copy_source_conditions_and_access(s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="source", Body=b"x")
    upload_id = start(s3, bucket)
    exc = refused(s3.upload_part_copy, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                  CopySource={"Bucket": bucket, "Key": "source"},
                  CopySourceIfMatch='"0123456789abcdef0123456789abcdef"')
    assert code(exc) == "PreconditionFailed" and status(exc) == 412
    exc = refused(s3.upload_part_copy, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                  CopySource={"Bucket": bucket, "Key": "absent"})
    assert code(exc) == "NoSuchKey"
    theirs = new_bucket(s3_bob)
    s3_bob.put_object(Bucket=theirs, Key="private", Body=b"bob's")
    exc = refused(s3.upload_part_copy, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1,
                  CopySource={"Bucket": theirs, "Key": "private"})
    assert code(exc) == "AccessDenied"


# ---------------------------------------------------------------- checksums

def _digest(algorithm, data: bytes) -> bytes:
    if algorithm == "CRC32":
        return zlib.crc32(data).to_bytes(4, "big")
    return hashlib.new(algorithm.lower(), data).digest()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA256"])
def test_composite_checksum(s3, bucket, big, algorithm):
    field = f"Checksum{algorithm}"
    created = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm=algorithm)
    assert created["ChecksumAlgorithm"] == algorithm
    upload_id = created["UploadId"]
    parts = [upload(s3, bucket, upload_id, n, data, ChecksumAlgorithm=algorithm)
             for n, data in enumerate(big[1:], start=1)]
    assert [p[field] for p in parts] == [_b64(_digest(algorithm, d)) for d in big[1:]]
    listed = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)
    assert listed["ChecksumAlgorithm"] == algorithm and [p[field] for p in listed["Parts"]] == [p[field] for p in parts]
    expected = _b64(_digest(algorithm, b"".join(_digest(algorithm, d) for d in big[1:]))) + "-2"
    done = complete(s3, bucket, upload_id, parts)
    assert done[field] == expected and done["ChecksumType"] == "COMPOSITE"
    head = s3.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert head[field] == expected and head["ChecksumType"] == "COMPOSITE"
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got[field] == expected and got["Body"].read() == b"".join(big[1:])


def test_full_object_crc32(s3, bucket, big):
    upload_id = start(s3, bucket, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
    parts = [upload(s3, bucket, upload_id, n, data, ChecksumAlgorithm="CRC32")
             for n, data in enumerate(big, start=1)]
    done = complete(s3, bucket, upload_id, parts)
    whole = _b64(_digest("CRC32", b"".join(big)))
    assert done["ChecksumCRC32"] == whole and done["ChecksumType"] == "FULL_OBJECT"


def test_a_part_without_the_uploads_checksum_is_refused(s3, bucket):
    upload_id = start(s3, bucket, ChecksumAlgorithm="SHA256")
    exc = refused(s3.upload_part, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x",
                  ChecksumAlgorithm="CRC32")
    assert code(exc) == "InvalidRequest" and status(exc) == 400


def test_a_wrong_part_checksum_is_bad_digest(s3, bucket):
    upload_id = start(s3, bucket, ChecksumAlgorithm="SHA256")
    exc = refused(s3.upload_part, Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=b"x",
                  ChecksumSHA256=_b64(hashlib.sha256(b"y").digest()))
    assert code(exc) == "BadDigest"
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_completing_a_checksummed_upload_needs_each_parts_checksum(s3, bucket):
    upload_id = start(s3, bucket, ChecksumAlgorithm="SHA256")
    part = upload(s3, bucket, upload_id, 1, b"part", ChecksumAlgorithm="SHA256")
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id,
                  parts=[{"PartNumber": 1, "ETag": part["ETag"]}])
    assert code(exc) == "InvalidRequest" and status(exc) == 400
    wrong = dict(part, ChecksumSHA256=_b64(hashlib.sha256(b"other").digest()))
    exc = refused(complete, s3=s3, bucket=bucket, upload_id=upload_id, parts=[wrong])
    assert code(exc) == "InvalidPart" and status(exc) == 400
    complete(s3, bucket, upload_id, [part])


def test_transfer_manager_round_trip(tmp_path, s3, bucket):
    data = os.urandom(2 * PART + 12345)
    source, target = tmp_path / "up.bin", tmp_path / "down.bin"
    source.write_bytes(data)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)
    s3.upload_file(str(source), bucket, "transferred", Config=config)
    head = s3.head_object(Bucket=bucket, Key="transferred")
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(data)
    s3.download_file(bucket, "transferred", str(target), Config=config)
    assert target.read_bytes() == data


# ---------------------------------------------------------------- limits

def _declared_only(endpoint, path, length: int) -> tuple[int, bytes]:
    """(status, body) of a signed PUT that declares ``length`` bytes and sends none of them.

    It asks for Connection: close, or the server would wait for the declared body before answering."""
    url = f"{endpoint}{path}"
    request = AWSRequest("PUT", url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(botocore.credentials.Credentials(ALICE.access_key, ALICE.secret_key), "s3",
                "eucalyptus").add_auth(request)
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("PUT", path, skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(length))
        conn.putheader("Connection", "close")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_part_over_5_gib_is_entity_too_large(server, s3, bucket):
    upload_id = start(s3, bucket)
    status_code, body = _declared_only(server[0], f"/{bucket}/mp?partNumber=1&uploadId={quote(upload_id)}",
                                       5 * GIB + 1)
    assert status_code == 400 and b"<Code>EntityTooLarge</Code>" in body
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)


def test_a_put_over_5_gib_is_entity_too_large(server, s3, bucket):
    status_code, body = _declared_only(server[0], f"/{bucket}/huge", 5 * GIB + 1)
    assert status_code == 400 and b"<Code>EntityTooLarge</Code>" in body
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)

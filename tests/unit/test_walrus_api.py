"""WalrusApp driven by real boto3 over a real socket (eucacore.httpserver on loopback)."""

import base64
import contextlib
import hashlib
import http.client
import os
import threading
import zlib

import boto3
import botocore.config
import botocore.credentials
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError

from eucacore import httpserver
from eucacore.awsapi.auth import Credentials
from eucacore.principal import Principal
from eucacore.awsapi.errors import AWSError
from walrus.api import WalrusApp, check_bucket_name
from walrus.store import WalrusStore

ALICE = Principal("AKIAALICE0000000000A", "alice-secret/key+0000000000000000000000", "111111111111",
                  is_account_admin=True)
BOB = Principal("AKIABOB00000000000BB", "bob-secret/key+00000000000000000000000000", "222222222222",
                is_account_admin=True)
KEYS = {c.access_key: c for c in (ALICE, BOB)}


@contextlib.contextmanager
def serving(app, threads: int = 4, timeout: float = 10):
    """The endpoint URL of ``app`` served as the daemon serves it (eucacore.httpserver) on a free
    loopback port, while the block runs."""
    srv = httpserver.Server(("127.0.0.1", 0), app, "walrus-test", threads=threads, timeout=timeout)
    srv.prepare()
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.bind_addr[1]}"
    finally:
        srv.stop()
        thread.join(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("walrus")
    store = WalrusStore(root / "bukkits", root / "walrus.db")
    with serving(WalrusApp(store, KEYS.get)) as endpoint:
        yield endpoint, store


def client(endpoint, creds=ALICE, signature_version="s3v4", secret=None):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=creds.access_key,
        aws_secret_access_key=secret or creds.secret_key, region_name="eucalyptus",
        config=botocore.config.Config(s3={"addressing_style": "path"},
                                      signature_version=signature_version,
                                      retries={"max_attempts": 1}),
        verify=False)


@pytest.fixture(scope="module")
def s3(server):
    return client(server[0])


@pytest.fixture(scope="module")
def s3_bob(server):
    return client(server[0], BOB)


_counter = iter(range(10**6))


@pytest.fixture
def bucket(s3):
    name = f"bucket-{next(_counter)}"
    s3.create_bucket(Bucket=name)
    return name


def code(exc_info):
    return exc_info.value.response["Error"]["Code"]


def status(exc_info):
    return exc_info.value.response["ResponseMetadata"]["HTTPStatusCode"]


# ---------------------------------------------------------------- buckets

def test_bucket_lifecycle(s3):
    s3.create_bucket(Bucket="life.cycle_1")
    assert "life.cycle_1" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="life.cycle_1")
    assert s3.get_bucket_location(Bucket="life.cycle_1")["LocationConstraint"] is None
    s3.delete_bucket(Bucket="life.cycle_1")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="life.cycle_1")
    assert status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="life.cycle_1")
    assert code(exc) == "NoSuchBucket" and status(exc) == 404


@pytest.mark.parametrize("name", ["ab", "Upper", "-dash", "192.168.1.2", "_under", ".dot"])
def test_invalid_bucket_names(s3, name):
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code(exc) == "InvalidBucketName"


@pytest.mark.parametrize("name", ["has space", "a" * 256, "bad!name", "10.0.0.1"])
def test_check_bucket_name_refuses(name):
    # names botocore would refuse to send at all
    with pytest.raises(AWSError) as exc:
        check_bucket_name(name)
    assert exc.value.code == "InvalidBucketName"


def test_long_and_underscore_names_follow_walrus(s3):
    s3.create_bucket(Bucket="a" * 255)
    s3.create_bucket(Bucket="under_score")


def test_bucket_already_exists_across_accounts(s3, s3_bob, bucket):
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=bucket)
    assert code(exc) == "BucketAlreadyOwnedByYou"
    with pytest.raises(ClientError) as exc:
        s3_bob.create_bucket(Bucket=bucket)
    assert code(exc) == "BucketAlreadyExists" and status(exc) == 409


def test_other_accounts_bucket_is_access_denied(s3, s3_bob, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"mine")
    assert bucket not in [b["Name"] for b in s3_bob.list_buckets()["Buckets"]]
    for call in (lambda: s3_bob.get_object(Bucket=bucket, Key="secret"),
                 lambda: s3_bob.put_object(Bucket=bucket, Key="x", Body=b"y"),
                 lambda: s3_bob.list_objects_v2(Bucket=bucket),
                 lambda: s3_bob.delete_object(Bucket=bucket, Key="secret"),
                 lambda: s3_bob.delete_bucket(Bucket=bucket)):
        with pytest.raises(ClientError) as exc:
            call()
        assert code(exc) == "AccessDenied" and status(exc) == 403
    assert s3.get_object(Bucket=bucket, Key="secret")["Body"].read() == b"mine"


def test_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=bucket)
    assert code(exc) == "BucketNotEmpty" and status(exc) == 409


# ---------------------------------------------------------------- objects

def test_put_get_head_delete(s3, bucket):
    key = "dir/ünïcødé key+with %2F & ?=.txt"
    put = s3.put_object(Bucket=bucket, Key=key, Body=b"hello walrus", ContentType="text/plain",
                        Metadata={"color": "blue"})
    assert put["ETag"] == '"%s"' % hashlib.md5(b"hello walrus").hexdigest()
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"hello walrus"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "blue"}
    assert got["ETag"] == put["ETag"] and got["ContentLength"] == 12
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == 12 and head["Metadata"] == {"color": "blue"}
    assert s3.delete_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert s3.delete_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert code(exc) == "NoSuchKey" and status(exc) == 404
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key=key)
    assert status(exc) == 404


def test_missing_bucket_for_objects(s3):
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="no-such-bucket", Key="k", Body=b"v")
    assert code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="no-such-bucket", Key="k")
    assert code(exc) == "NoSuchBucket"


def test_replace_object(s3, bucket, server):
    one, two = b"one" * 30000, b"two" * 30000  # past the inline limit: files of their own
    s3.put_object(Bucket=bucket, Key="k", Body=one)
    s3.put_object(Bucket=bucket, Key="k", Body=two)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == two
    server[1].removals.wait()
    assert len(os.listdir(server[1].root / bucket)) == 1


def test_concurrent_puts_to_one_key_leave_one_whole_object(server, bucket):
    bodies = [bytes([i]) * 300_000 for i in range(8)]
    errors = []

    def put(body):
        try:
            client(server[0]).put_object(Bucket=bucket, Key="contended", Body=body)
        except Exception as exc:  # collected: asserted below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    got = client(server[0]).get_object(Bucket=bucket, Key="contended")["Body"].read()
    assert got in bodies
    server[1].removals.wait()
    assert len(os.listdir(server[1].root / bucket)) == 1


def test_crc32_checksum_header_is_sent_and_checked(s3, bucket):
    seen = {}
    s3.meta.events.register("before-send.s3.PutObject",
                            lambda request, **kw: seen.update(request.headers))
    try:
        s3.put_object(Bucket=bucket, Key="crc", Body=b"checked")
    finally:
        s3.meta.events.unregister("before-send.s3.PutObject")
    expected = base64.b64encode(zlib.crc32(b"checked").to_bytes(4, "big")).decode()
    assert seen.get("x-amz-checksum-crc32") in (expected, expected.encode())
    got = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == expected and got["Body"].read() == b"checked"


def test_bad_crc32_is_bad_digest(s3, bucket):
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k", Body=b"data", ChecksumCRC32="AAAAAA==")
    assert code(exc) == "BadDigest"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_content_md5(s3, bucket):
    good = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    s3.put_object(Bucket=bucket, Key="k", Body=b"data", ContentMD5=good)
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"data", ContentMD5=bad)
    assert code(exc) == "BadDigest"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="k2")
    assert status(exc) == 404


def test_payload_sha256_mismatch_stores_nothing(s3, bucket):
    def lie(request, **kw):
        request.body = b"tampered"  # signed over the original body's hash

    s3.meta.events.register("before-send.s3.PutObject", lie)
    try:
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key="k", Body=b"original", ChecksumAlgorithm="SHA256")
    finally:
        s3.meta.events.unregister("before-send.s3.PutObject", lie)
    assert code(exc) == "XAmzContentSHA256Mismatch"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_ranges(s3, bucket):
    data = bytes(range(256)) * 10
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert got["Body"].read() == data[10:20]
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 10-19/{len(data)}"
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == data[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=2550-")["Body"].read() == data[2550:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range=f"bytes={len(data)}-")
    assert code(exc) == "InvalidRange" and status(exc) == 416


def test_big_object_round_trip(s3, bucket):
    data = os.urandom(1024 * 1024) * 64
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    body = s3.get_object(Bucket=bucket, Key="big")["Body"]
    md5 = hashlib.md5()
    for chunk in body.iter_chunks(1024 * 1024):
        md5.update(chunk)
    assert md5.hexdigest() == hashlib.md5(data).hexdigest()
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == len(data)


# ---------------------------------------------------------------- listings

@pytest.fixture(scope="module")
def listed(s3):
    s3.create_bucket(Bucket="listed")
    keys = ["a", "b/1", "b/2", "b/c/3", "c d", "é", "x+y", "z/"] + [f"p/{i:03d}" for i in range(25)]
    for key in keys:
        s3.put_object(Bucket="listed", Key=key, Body=key.encode())
    return sorted(keys, key=lambda k: k.encode())


def test_list_v2(s3, listed):
    out = s3.list_objects_v2(Bucket="listed")
    assert [o["Key"] for o in out["Contents"]] == listed
    assert out["KeyCount"] == len(listed) and not out["IsTruncated"]
    out = s3.list_objects_v2(Bucket="listed", Prefix="b/", Delimiter="/")
    assert [o["Key"] for o in out["Contents"]] == ["b/1", "b/2"]
    assert out["CommonPrefixes"] == [{"Prefix": "b/c/"}]
    out = s3.list_objects_v2(Bucket="listed", Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["b/", "p/", "z/"]
    out = s3.list_objects_v2(Bucket="listed", StartAfter="p/020")
    assert [o["Key"] for o in out["Contents"]][:2] == ["p/021", "p/022"]


def test_list_v2_pagination(s3, listed):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="listed", PaginationConfig={"PageSize": 4})
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert keys == listed
    first = s3.list_objects_v2(Bucket="listed", MaxKeys=3)
    assert first["IsTruncated"] and first["KeyCount"] == 3
    second = s3.list_objects_v2(Bucket="listed", MaxKeys=3,
                                ContinuationToken=first["NextContinuationToken"])
    assert [o["Key"] for o in second["Contents"]] == listed[3:6]


def test_list_v1(s3, listed):
    out = s3.list_objects(Bucket="listed")
    assert [o["Key"] for o in out["Contents"]] == listed
    out = s3.list_objects(Bucket="listed", Marker="p/010", MaxKeys=2)
    assert [o["Key"] for o in out["Contents"]] == ["p/011", "p/012"] and out["IsTruncated"]
    pages = s3.get_paginator("list_objects").paginate(Bucket="listed", Delimiter="/",
                                                      PaginationConfig={"PageSize": 2})
    seen = []
    for page in pages:
        seen += [o["Key"] for o in page.get("Contents", [])]
        seen += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert sorted(seen) == sorted(["a", "b/", "c d", "é", "p/", "x+y", "z/"])


def test_list_missing_bucket(s3):
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="nothing-here")
    assert code(exc) == "NoSuchBucket"


# ---------------------------------------------------------------- auth

def test_bad_signature(server):
    bad = client(server[0], secret="wrong-secret")
    with pytest.raises(ClientError) as exc:
        bad.list_buckets()
    assert code(exc) == "SignatureDoesNotMatch" and status(exc) == 403


def test_unknown_access_key(server):
    stranger = client(server[0], Credentials("AKIANOBODY0000000000", "x" * 40))
    with pytest.raises(ClientError) as exc:
        stranger.list_buckets()
    assert code(exc) == "InvalidAccessKeyId"


def test_anonymous_is_access_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    session = requests.Session()
    session.trust_env = False
    response = session.get(f"{server[0]}/{bucket}/k")
    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content


def test_presigned_get(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="shared file.txt", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "shared file.txt"},
                                    ExpiresIn=300)
    session = requests.Session()
    session.trust_env = False
    response = session.get(url)
    assert response.status_code == 200 and response.content == b"presigned body"
    tampered = session.get(url.replace("shared%20file", "other%20file"))
    assert tampered.status_code == 403


def test_sigv2(server, bucket):
    v2 = client(server[0], signature_version="s3")
    v2.put_object(Bucket=bucket, Key="v2 key", Body=b"signed v2")
    assert v2.get_object(Bucket=bucket, Key="v2 key")["Body"].read() == b"signed v2"
    assert bucket in [b["Name"] for b in v2.list_buckets()["Buckets"]]


class _TrailerSigner(S3SigV4Auth):
    """Signs as an SDK does for an unsigned aws-chunked body with a checksum trailer."""

    def payload(self, request):
        return "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


def _put_chunked(server, s3, bucket, key, data: bytes, crc_b64: str):
    # signed by hand: botocore itself only sends aws-chunked over https
    body = (f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
            + f"x-amz-checksum-crc32:{crc_b64}\r\n\r\n".encode())
    req = AWSRequest("PUT", f"{server[0]}/{bucket}/{key}", data=body,
                     headers={"Content-Encoding": "aws-chunked", "x-amz-trailer": "x-amz-checksum-crc32",
                              "x-amz-decoded-content-length": str(len(data))})
    _TrailerSigner(s3._request_signer._credentials, "s3", "eucalyptus").add_auth(req)
    prepared = req.prepare()
    session = requests.Session()
    session.trust_env = False
    return session.put(prepared.url, data=prepared.body, headers=dict(prepared.headers))


def test_aws_chunked_trailer_checksum_is_stored_without_framing(server, s3, bucket):
    data = b"hello, chunked world"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    response = _put_chunked(server, s3, bucket, "chunked", data, crc)
    assert response.status_code == 200, response.content
    got = s3.get_object(Bucket=bucket, Key="chunked", ChecksumMode="ENABLED")
    assert got["Body"].read() == data and got["ContentLength"] == len(data)
    assert got["ChecksumCRC32"] == crc
    assert "ContentEncoding" not in got


def test_aws_chunked_wrong_trailer_checksum_stores_nothing(server, s3, bucket):
    wrong = base64.b64encode(zlib.crc32(b"other").to_bytes(4, "big")).decode()
    response = _put_chunked(server, s3, bucket, "chunked", b"payload", wrong)
    assert response.status_code == 400 and b"<Code>BadDigest</Code>" in response.content
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="chunked")


def test_internal_error_is_500_without_traceback(server, s3, bucket, monkeypatch):
    def boom(*a, **kw):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(server[1], "list_objects", boom)
    conn_client = client(server[0])
    with pytest.raises(ClientError) as exc:
        conn_client.list_objects_v2(Bucket=bucket)
    assert code(exc) == "InternalError" and status(exc) == 500
    assert "secret internals" not in str(exc.value.response)


def test_raw_http_keepalive_after_early_error(server):
    # an error answered before the body is read must not poison the connection
    host, port = server[0].split("//")[1].split(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.request("PUT", "/nobucket/k", body=b"x" * 100000)
    response = conn.getresponse()
    assert response.status == 404  # anonymous requests are answered as S3 does
    response.read()
    conn.request("GET", "/")
    assert conn.getresponse().status == 403
    conn.close()


def test_storage_quota_holds_for_chunked_uploads_without_a_length(server):
    """A Transfer-Encoding: chunked PUT has no Content-Length to check up front: the quota is
    checked again once the size is known, and nothing is stored when it is exceeded."""
    endpoint, store = server
    carol = Principal("AKIACAROL000000000CC", "carol-secret/key+000000000000000000000000", "333333333333",
                      is_account_admin=True, quotas={"bucket-storage-mib": 1})
    KEYS[carol.access_key] = carol
    s3 = client(endpoint, carol)
    s3.create_bucket(Bucket="carol-quota")
    s3.put_object(Bucket="carol-quota", Key="small", Body=b"x" * 1000)
    url = f"{endpoint}/carol-quota/big"
    signed = AWSRequest(method="PUT", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(botocore.credentials.Credentials(carol.access_key, carol.secret_key), "s3",
                "eucalyptus").add_auth(signed)
    chunks = (b"y" * 65536 for _ in range(32))  # 2 MiB; a generator body goes out chunked
    response = requests.put(url, data=chunks, headers=dict(signed.headers))
    assert response.status_code == 400 and b"<Code>EntityTooLarge</Code>" in response.content
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="carol-quota")["Contents"]] == ["small"]
    assert store.account_bytes(carol.account_id) == 1000


def test_a_client_that_stops_sending_its_body_gets_request_timeout_and_nothing_is_stored(tmp_path):
    store = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    with serving(WalrusApp(store, KEYS.get), timeout=0.5) as endpoint:
        client(endpoint).create_bucket(Bucket="stalled", ACL="public-read-write")
        conn = http.client.HTTPConnection(endpoint.removeprefix("http://"), timeout=10)
        conn.putrequest("PUT", "/stalled/key")
        conn.putheader("Content-Length", "100")
        conn.endheaders(b"only ten b")
        answer = conn.getresponse()
        assert (answer.status, b"<Code>RequestTimeout</Code>" in answer.read()) == (400, True)
        conn.close()
        assert client(endpoint).list_objects_v2(Bucket="stalled")["KeyCount"] == 0

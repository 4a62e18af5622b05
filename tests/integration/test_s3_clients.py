"""Walrus driven by real S3 clients (aws CLI, s3cmd, rclone, boto3's transfer manager and
presigned URLs), and refusing bad input with the S3 error document and nothing stored.

Every test works in a bucket of its own, named uniquely, and removes it when done.
"""

import base64
import dataclasses
import hashlib
import http.client
import json
import os
import random
import time
import uuid
import zlib
from pathlib import Path
from urllib.parse import urlsplit

import awscrt.checksums
import boto3.s3.transfer
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from lxml import etree

from tests.s3tools import AwsCli, Endpoint, Rclone, S3cmd

pytestmark = pytest.mark.integration

MIB = 2**20
#: A small file's worth of text, and a tree with nested directories for the sync tests.
SMALL = b"Walrus says hello\n" * 100
TREE = {"top.txt": b"top\n", "a/one.bin": bytes(range(256)) * 40, "a/b/two.txt": b"two\n" * 1000,
        "a/b/c/three.txt": b"", "d/four.json": b'{"four": 4}\n'}


# ---------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="module")
def endpoint(cloud) -> Endpoint:
    return Endpoint(cloud.s3_url, cloud.eucarc["AWS_ACCESS_KEY_ID"], cloud.eucarc["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture
def bucket(s3):
    """A fresh bucket name (not created); the bucket and its objects are removed afterwards."""
    name = f"clients-{uuid.uuid4().hex[:12]}"
    yield name
    remove_bucket(s3, name)


@pytest.fixture
def aws(endpoint, tmp_path) -> AwsCli:
    return AwsCli(endpoint, tmp_path / "aws-home")


@pytest.fixture
def rclone(endpoint, tmp_path) -> Rclone:
    return Rclone(endpoint, tmp_path / "rclone-home")


def remove_bucket(s3, name: str) -> None:
    """Delete every object and unfinished upload of bucket ``name``, then the bucket
    (nothing when it does not exist)."""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=item["Key"])
        for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        s3.delete_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] != "NoSuchBucket":
            raise


def random_bytes(size: int, seed: int = 4) -> bytes:
    return random.Random(seed).randbytes(size)


def write_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        write_file(root / name, data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path, with its content."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts: list[bytes]) -> str:
    """The ETag S3 gives an object completed from ``parts``: the MD5 of the parts' MD5s, "-N"."""
    digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
    return f'"{digest}-{len(parts)}"'


def split(data: bytes, part_size: int) -> list[bytes]:
    return [data[i:i + part_size] for i in range(0, len(data), part_size)]


def checksum_b64(algorithm: str, data: bytes) -> str:
    """The base64 value of an S3 checksum (CRC32, CRC32C, SHA1, SHA256) of ``data``."""
    if algorithm == "CRC32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        digest = awscrt.checksums.crc32c(data).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm.lower(), data).digest()
    return base64.b64encode(digest).decode()


def object_keys(s3, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if e.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def signed_request(cloud, method: str, target: str, body: bytes = b"", headers: dict | None = None,
                   secret: str | None = None) -> AWSRequest:
    """``method target`` (path and query, e.g. ``/b?delete``) signed with SigV4 as botocore's
    S3 client signs, by the cloud admin's key (with ``secret`` in place of its secret)."""
    request = AWSRequest(method=method, url=cloud.s3_url + target, data=body, headers=dict(headers or {}))
    key = cloud.eucarc["AWS_ACCESS_KEY_ID"]
    S3SigV4Auth(Credentials(key, secret or cloud.eucarc["AWS_SECRET_ACCESS_KEY"]), "s3", "eucalyptus") \
        .add_auth(request)
    return request


def send(cloud, method: str, target: str, body: bytes = b"", headers: dict | None = None,
         secret: str | None = None) -> requests.Response:
    """A signed raw request (see :func:`signed_request`) and Walrus's answer."""
    prepared = signed_request(cloud, method, target, body, headers, secret).prepare()
    with requests.Session() as session:
        session.trust_env = False
        return session.request(method, prepared.url, data=body, headers=dict(prepared.headers.items()),
                               timeout=30)


def assert_s3_error(response, status: int, code: str, message: str | None = None) -> None:
    """The response is the S3 error document of ``code`` with ``status``: Code, Message and a
    RequestId that is the x-amz-request-id header."""
    assert response.status_code == status, (response.status_code, response.content)
    document = etree.fromstring(response.content)
    assert document.tag == "Error", response.content
    assert document.findtext("Code") == code, response.content
    assert document.findtext("Message"), response.content
    if message is not None:
        assert document.findtext("Message") == message, response.content
    assert document.findtext("RequestId") == response.headers.get("x-amz-request-id"), response.content


# ---------------------------------------------------------------- aws CLI

def test_aws_cli_cp_small_and_multipart(aws, s3, bucket, tmp_path):
    big = random_bytes(20 * MIB)
    up = write_tree(tmp_path / "up", {"small.txt": SMALL, "big.bin": big})
    aws("s3", "mb", f"s3://{bucket}")
    aws("s3", "cp", str(up / "small.txt"), f"s3://{bucket}/small.txt")
    aws("s3", "cp", str(up / "big.bin"), f"s3://{bucket}/big.bin")
    # 20 MiB over the 8 MiB threshold: parts of 8, 8 and 4 MiB.
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"] == multipart_etag(split(big, 8 * MIB))
    down = tmp_path / "down"
    aws("s3", "cp", f"s3://{bucket}/small.txt", str(down / "small.txt"))
    aws("s3", "cp", f"s3://{bucket}/big.bin", str(down / "big.bin"))
    assert read_tree(down) == read_tree(up)


def test_aws_cli_sync_ls_rm(aws, s3, bucket, tmp_path):
    up = write_tree(tmp_path / "up", TREE)
    # Files a minute old, as files being synced usually are.  S3 lists LastModified in whole
    # seconds, and `aws s3 sync` sends a file whose mtime is later: a file written in the
    # same second as its upload would be sent again by the second sync below, from S3 too.
    for path in up.rglob("*"):
        os.utime(path, (time.time() - 60,) * 2)
    aws("s3", "mb", f"s3://{bucket}")
    aws("s3", "sync", str(up), f"s3://{bucket}/tree")
    listed = aws("s3", "ls", "--recursive", f"s3://{bucket}").stdout.splitlines()
    assert sorted((int(line.split()[2]), line.split(None, 3)[3]) for line in listed) == \
        sorted((len(data), f"tree/{name}") for name, data in TREE.items())
    top = aws("s3", "ls", f"s3://{bucket}/tree/").stdout.splitlines()
    assert [line.split()[0] for line in top[:2]] == ["PRE", "PRE"]
    assert [line.split()[-1] for line in top] == ["a/", "d/", "top.txt"]
    # Nothing changed locally: a second sync has nothing to send.
    assert aws("s3", "sync", str(up), f"s3://{bucket}/tree").stdout == ""
    aws("s3", "sync", f"s3://{bucket}/tree", str(tmp_path / "down"))
    assert read_tree(tmp_path / "down") == TREE
    aws("s3", "rm", "--recursive", f"s3://{bucket}/tree/a")
    assert object_keys(s3, bucket) == ["tree/d/four.json", "tree/top.txt"]


def test_aws_cli_ls_buckets_and_rb_force(aws, s3, bucket, tmp_path):
    aws("s3", "mb", f"s3://{bucket}")
    assert bucket in [line.split()[-1] for line in aws("s3", "ls").stdout.splitlines()]
    aws("s3", "sync", str(write_tree(tmp_path / "up", TREE)), f"s3://{bucket}")
    aws("s3", "rb", "--force", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_aws_s3api_objects(aws, s3, bucket, tmp_path):
    aws("s3api", "create-bucket", "--bucket", bucket)
    source = write_file(tmp_path / "a.txt", SMALL)
    put = aws.json("s3api", "put-object", "--bucket", bucket, "--key", "docs/a.txt", "--body", str(source),
                   "--content-type", "text/plain", "--metadata", "colour=blue")
    assert put["ETag"] == f'"{md5_hex(SMALL)}"'
    head = aws.json("s3api", "head-object", "--bucket", bucket, "--key", "docs/a.txt")
    assert (head["ContentLength"], head["ContentType"], head["Metadata"], head["ETag"]) == \
        (len(SMALL), "text/plain", {"colour": "blue"}, put["ETag"])
    aws.json("s3api", "get-object", "--bucket", bucket, "--key", "docs/a.txt", str(tmp_path / "got"))
    assert (tmp_path / "got").read_bytes() == SMALL
    copied = aws.json("s3api", "copy-object", "--bucket", bucket, "--key", "docs/b.txt",
                      "--copy-source", f"{bucket}/docs/a.txt")
    assert copied["CopyObjectResult"]["ETag"] == put["ETag"]
    assert s3.head_object(Bucket=bucket, Key="docs/b.txt")["Metadata"] == {"colour": "blue"}
    listing = aws.json("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "docs/")
    assert [(o["Key"], o["Size"]) for o in listing["Contents"]] == [("docs/a.txt", len(SMALL)),
                                                                     ("docs/b.txt", len(SMALL))]
    deleted = aws.json("s3api", "delete-objects", "--bucket", bucket, "--delete",
                       json.dumps({"Objects": [{"Key": "docs/a.txt"}, {"Key": "docs/b.txt"}]}))
    assert sorted(d["Key"] for d in deleted["Deleted"]) == ["docs/a.txt", "docs/b.txt"]
    assert object_keys(s3, bucket) == []


def test_aws_s3api_multipart(aws, s3, bucket, tmp_path):
    parts = [random_bytes(5 * MIB, seed=1), random_bytes(1000, seed=2)]
    aws("s3api", "create-bucket", "--bucket", bucket)
    upload_id = aws.json("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "mp.bin")["UploadId"]
    etags = []
    for number, data in enumerate(parts, 1):
        body = write_file(tmp_path / f"part{number}", data)
        etags.append(aws.json("s3api", "upload-part", "--bucket", bucket, "--key", "mp.bin", "--upload-id",
                              upload_id, "--part-number", str(number), "--body", str(body))["ETag"])
    assert etags == [f'"{md5_hex(p)}"' for p in parts]
    listed = aws.json("s3api", "list-parts", "--bucket", bucket, "--key", "mp.bin", "--upload-id", upload_id)
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in listed["Parts"]] == \
        [(n, len(p), e) for n, (p, e) in enumerate(zip(parts, etags), 1)]
    layout = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, 1)]}
    done = aws.json("s3api", "complete-multipart-upload", "--bucket", bucket, "--key", "mp.bin",
                    "--upload-id", upload_id, "--multipart-upload", json.dumps(layout))
    assert done["ETag"] == multipart_etag(parts)
    assert s3.get_object(Bucket=bucket, Key="mp.bin")["Body"].read() == b"".join(parts)
    abandoned = aws.json("s3api", "create-multipart-upload", "--bucket", bucket, "--key", "gone")["UploadId"]
    assert [u["UploadId"] for u in aws.json("s3api", "list-multipart-uploads", "--bucket", bucket)["Uploads"]] \
        == [abandoned]
    aws("s3api", "abort-multipart-upload", "--bucket", bucket, "--key", "gone", "--upload-id", abandoned)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


# ---------------------------------------------------------------- s3cmd

@pytest.mark.parametrize("signature_v2", [False, True], ids=["sigv4", "sigv2"])
def test_s3cmd_objects(endpoint, s3, bucket, tmp_path, signature_v2):
    s3cmd = S3cmd(endpoint, tmp_path / "s3cmd-home", signature_v2=signature_v2)
    big = random_bytes(20 * MIB)
    up = write_tree(tmp_path / "up", {"small.txt": SMALL, "big.bin": big})
    s3cmd("mb", f"s3://{bucket}")
    s3cmd("put", str(up / "small.txt"), f"s3://{bucket}/small.txt")
    s3cmd("put", "--multipart-chunk-size-mb=5", str(up / "big.bin"), f"s3://{bucket}/big.bin")
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"] == multipart_etag(split(big, 5 * MIB))
    listed = [line.split()[-2:] for line in s3cmd("ls", f"s3://{bucket}").stdout.splitlines()]
    assert listed == [[str(len(big)), f"s3://{bucket}/big.bin"], [str(len(SMALL)), f"s3://{bucket}/small.txt"]]
    assert f"s3://{bucket}/small.txt" in s3cmd("la").stdout
    info = s3cmd("info", f"s3://{bucket}/big.bin").stdout
    assert f"File size: {len(big)}" in info and f"MD5 sum:   {md5_hex(big)}" in info, info
    s3cmd("get", f"s3://{bucket}/big.bin", str(tmp_path / "down/big.bin"))
    s3cmd("get", f"s3://{bucket}/small.txt", str(tmp_path / "down/small.txt"))
    assert read_tree(tmp_path / "down") == read_tree(up)
    s3cmd("del", f"s3://{bucket}/small.txt", f"s3://{bucket}/big.bin")
    s3cmd("rb", f"s3://{bucket}")
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_s3cmd_sync(endpoint, s3, bucket, tmp_path):
    s3cmd = S3cmd(endpoint, tmp_path / "s3cmd-home")
    up = write_tree(tmp_path / "up", TREE)
    s3cmd("mb", f"s3://{bucket}")
    s3cmd("sync", f"{up}/", f"s3://{bucket}/tree/")
    s3cmd("sync", f"s3://{bucket}/tree/", f"{tmp_path / 'down'}/")
    assert read_tree(tmp_path / "down") == TREE
    (up / "top.txt").unlink()
    s3cmd("sync", "--delete-removed", f"{up}/", f"s3://{bucket}/tree/")
    assert not object_exists(s3, bucket, "tree/top.txt") and object_exists(s3, bucket, "tree/a/b/two.txt")


# ---------------------------------------------------------------- rclone

def test_rclone_copy_check_list(rclone, s3, bucket, tmp_path):
    up = write_tree(tmp_path / "up", TREE)
    rclone("mkdir", rclone.path(bucket))
    rclone("copy", str(up), rclone.path(f"{bucket}/tree"))
    files = sorted(f"tree/{name}" for name in TREE)
    assert sorted(rclone("lsf", "-R", "--files-only", rclone.path(bucket)).stdout.split()) == files
    entries = json.loads(rclone("lsjson", "-R", "--files-only", rclone.path(bucket)).stdout)
    assert sorted((e["Path"], e["Size"]) for e in entries) == sorted((f"tree/{n}", len(d)) for n, d in TREE.items())
    assert sorted(line.split(None, 1)[1] for line in rclone("ls", rclone.path(bucket)).stdout.splitlines()) == files
    rclone("check", str(up), rclone.path(f"{bucket}/tree"))
    rclone("copy", rclone.path(f"{bucket}/tree"), str(tmp_path / "down"))
    assert read_tree(tmp_path / "down") == TREE
    rclone("delete", rclone.path(bucket))
    rclone("rmdir", rclone.path(bucket))
    assert bucket not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_rclone_multipart(rclone, s3, bucket, tmp_path):
    big = random_bytes(30 * MIB)
    up = write_tree(tmp_path / "up", {"big.bin": big})
    rclone("mkdir", rclone.path(bucket))
    rclone("copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", str(up), rclone.path(bucket))
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"] == multipart_etag(split(big, 5 * MIB))
    assert rclone("md5sum", rclone.path(bucket)).stdout.split() == [md5_hex(big), "big.bin"]
    rclone("check", str(up), rclone.path(bucket))
    rclone("copyto", rclone.path(f"{bucket}/big.bin"), str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == big


# ---------------------------------------------------------------- boto3

def test_transfer_manager_multipart(s3, bucket, tmp_path):
    big = random_bytes(23 * MIB)
    config = boto3.s3.transfer.TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB)
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(write_file(tmp_path / "big.bin", big)), bucket, "big.bin", Config=config)
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ETag"] == multipart_etag(split(big, 5 * MIB))
    s3.download_file(bucket, "big.bin", str(tmp_path / "down.bin"), Config=config)
    assert (tmp_path / "down.bin").read_bytes() == big


def test_presigned_put_and_get(s3, bucket):
    s3.create_bucket(Bucket=bucket)
    params = {"Bucket": bucket, "Key": "shared/file.bin"}
    put = requests.put(s3.generate_presigned_url("put_object", Params=params, ExpiresIn=300), data=SMALL,
                       timeout=30)
    assert put.status_code == 200, put.content
    assert put.headers["ETag"] == f'"{md5_hex(SMALL)}"'
    got = requests.get(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=300), timeout=30)
    assert (got.status_code, got.content) == (200, SMALL)


def test_expired_presigned_url(s3, bucket):
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=SMALL)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=1)
    time.sleep(2.1)
    assert_s3_error(requests.get(url, timeout=30), 403, "AccessDenied", "Request has expired")


def test_sdk_default_checksum_crc32(cloud, bucket):
    client = cloud.client("s3")
    assert client.meta.config.request_checksum_calculation == "when_supported"
    sent = {}
    client.meta.events.register("before-send.s3.PutObject",
                                lambda request, **_: sent.update({k.lower(): v for k, v in request.headers.items()}))
    data = random_bytes(100_000)
    expected = checksum_b64("CRC32", data)
    client.create_bucket(Bucket=bucket)
    assert client.put_object(Bucket=bucket, Key="k", Body=data)["ChecksumCRC32"] == expected
    assert sent["x-amz-checksum-crc32"] in (expected, expected.encode())
    assert client.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")["ChecksumCRC32"] == expected
    got = client.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (got["ChecksumCRC32"], got["Body"].read()) == (expected, data)


@pytest.mark.parametrize("algorithm", ["SHA1", "SHA256", "CRC32C"])
def test_put_object_checksum_algorithm(s3, bucket, algorithm):
    data = random_bytes(70_000)
    expected = checksum_b64(algorithm, data)
    member = "Checksum" + algorithm
    s3.create_bucket(Bucket=bucket)
    assert s3.put_object(Bucket=bucket, Key="k", Body=data, ChecksumAlgorithm=algorithm)[member] == expected
    assert s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")[member] == expected
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert (got[member], got["Body"].read()) == (expected, data)


# ---------------------------------------------------------------- bad input

def content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.mark.parametrize("body", [b"<Delete><Object><Key>keep</Key></Object>", b"<Delete></Delete>",
                                  b"<NotDelete><Object><Key>keep</Key></Object></NotDelete>"],
                         ids=["truncated", "no-objects", "wrong-root"])
def test_delete_objects_malformed_xml(cloud, s3, bucket, body):
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="keep", Body=SMALL)
    response = send(cloud, "POST", f"/{bucket}?delete", body, {"Content-MD5": content_md5(body)})
    assert_s3_error(response, 400, "MalformedXML")
    assert object_exists(s3, bucket, "keep")


def test_complete_multipart_malformed_xml(cloud, s3, bucket):
    s3.create_bucket(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=1, Body=SMALL)
    body = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
    assert_s3_error(send(cloud, "POST", f"/{bucket}/mp?uploadId={upload_id}", body), 400, "MalformedXML")
    assert not object_exists(s3, bucket, "mp")
    assert [p["PartNumber"] for p in s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload_id)["Parts"]] == [1]


@pytest.mark.parametrize("header,value,code", [
    ("Content-MD5", content_md5(b"something else"), "BadDigest"),
    ("Content-MD5", "not-a-digest", "InvalidDigest"),
    ("x-amz-checksum-crc32", checksum_b64("CRC32", b"something else"), "BadDigest"),
    ("x-amz-checksum-sha256", checksum_b64("SHA256", b"something else"), "BadDigest"),
], ids=["md5-wrong", "md5-invalid", "crc32-wrong", "sha256-wrong"])
def test_put_with_wrong_digest_stores_nothing(cloud, s3, bucket, header, value, code):
    s3.create_bucket(Bucket=bucket)
    assert_s3_error(send(cloud, "PUT", f"/{bucket}/k", SMALL, {header: value}), 400, code)
    assert not object_exists(s3, bucket, "k")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_bad_signature_stores_nothing(cloud, s3, bucket):
    s3.create_bucket(Bucket=bucket)
    response = send(cloud, "PUT", f"/{bucket}/k", SMALL, secret="not-the-secret-key")
    assert_s3_error(response, 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, bucket, "k")
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    tampered = url.replace(f"/{bucket}/k?", f"/{bucket}/other?")
    assert_s3_error(requests.put(tampered, data=SMALL, timeout=30), 403, "SignatureDoesNotMatch")
    assert not object_exists(s3, bucket, "other")


@pytest.mark.parametrize("name", ["ab", "Upper-Case-Bucket", "192.168.5.4", "-starts-with-dash",
                                  ".starts-with-dot"])
def test_invalid_bucket_name(cloud, s3, name):
    try:
        assert_s3_error(send(cloud, "PUT", f"/{name}"), 400, "InvalidBucketName")
        assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        remove_bucket(s3, name)


@pytest.mark.parametrize("name", ["ends-with-dash-", "two..periods", "x" * 255, "under_score"])
def test_original_walrus_bucket_names_are_valid(cloud, s3, name):
    """The original Walrus rules (3-255 of [a-z0-9._-], first a letter or digit), not S3's
    stricter ones of today."""
    try:
        assert send(cloud, "PUT", f"/{name}").status_code == 200
        assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        remove_bucket(s3, name)


def test_too_long_key_stores_nothing(cloud, s3, bucket):
    s3.create_bucket(Bucket=bucket)
    assert_s3_error(send(cloud, "PUT", f"/{bucket}/{'k' * 1025}", SMALL), 400, "KeyTooLongError")
    assert object_keys(s3, bucket) == []


def test_too_small_part_is_refused_at_complete(cloud, s3, bucket):
    s3.create_bucket(Bucket=bucket)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload_id, PartNumber=n, Body=SMALL)["ETag"]
             for n in (1, 2)]
    body = "<CompleteMultipartUpload>{}</CompleteMultipartUpload>".format("".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>" for n, e in enumerate(etags, 1)))
    response = send(cloud, "POST", f"/{bucket}/mp?uploadId={upload_id}", body.encode())
    assert_s3_error(response, 400, "EntityTooSmall")
    assert not object_exists(s3, bucket, "mp")


@dataclasses.dataclass
class Answer:
    """An HTTP answer read with http.client, shaped like the requests.Response it stands for."""

    status_code: int
    headers: http.client.HTTPMessage
    content: bytes


def send_headers_only(cloud, method: str, target: str, content_length: int) -> Answer:
    """A signed request announcing ``content_length`` body bytes and sending none: the answer
    must come from the headers alone."""
    prepared = signed_request(cloud, method, target).prepare()
    url = urlsplit(prepared.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=15)
    connection.putrequest(method, f"{url.path}?{url.query}" if url.query else url.path,
                          skip_accept_encoding=True)
    for name, value in prepared.headers.items():
        if name.lower() != "content-length":
            connection.putheader(name, value)
    connection.putheader("Content-Length", str(content_length))
    connection.endheaders()
    try:
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    except TimeoutError:
        raise AssertionError(f"{method} {target}: Walrus waited for the {content_length} announced bytes "
                             "instead of refusing them") from None
    finally:
        connection.close()


def test_oversized_object_and_part_are_refused(cloud, s3, bucket):
    too_big = 5 * 2**30 + 1
    s3.create_bucket(Bucket=bucket)
    assert_s3_error(send_headers_only(cloud, "PUT", f"/{bucket}/huge", too_big), 400, "EntityTooLarge")
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="huge")["UploadId"]
    part = f"/{bucket}/huge?partNumber=1&uploadId={upload_id}"
    assert_s3_error(send_headers_only(cloud, "PUT", part, too_big), 400, "EntityTooLarge")
    assert "Parts" not in s3.list_parts(Bucket=bucket, Key="huge", UploadId=upload_id)
    assert not object_exists(s3, bucket, "huge")


def test_unknown_query_parameters_are_ignored(cloud, s3, bucket):
    """S3 ignores query parameters it does not know, with or without a value."""
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=SMALL)
    for target in (f"/{bucket}/k?foo=bar", f"/{bucket}/k?nosuchsubresource"):
        response = send(cloud, "GET", target)
        assert (response.status_code, response.content) == (200, SMALL), target
    listing = send(cloud, "GET", f"/{bucket}?nosuchsubresource")
    assert listing.status_code == 200, listing.content
    assert etree.fromstring(listing.content).findtext("{*}Contents/{*}Key") == "k"

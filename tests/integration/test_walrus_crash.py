"""Issue 4, Storage: Walrus killed with SIGKILL in the middle of a PUT, a CopyObject or a
CompleteMultipartUpload comes back with the old object or the new one: never a torn object, a
listing entry without data, a leftover temp file or a file that no database row names.

Each operation is killed once while its temp file exists (so before the rename) and then at
random moments from before the request to after its commit.  Objects are several MiB, so they
always live in files.
"""

import hashlib
import http.client
import itertools
import os
import random
import shutil
import sqlite3
import threading
import time
import urllib.parse
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property

import boto3
import botocore.config
import pytest
from botocore.exceptions import BotoCoreError

from eucacore.config import load_config
from tests.cloudharness import poll_until, running_cloud
from walrus.store import INLINE_PREFIX, TEMP_PREFIX

pytestmark = pytest.mark.integration

MIB = 2**20
BUCKET = "crash-safety"
SOURCE_KEY = "copy-source"
#: Multipart parts: (first byte, size) of the copy source each part is copied from.
PART_RANGES = ((0, 16 * MIB), (16 * MIB, 16 * MIB), (32 * MIB, 16 * MIB))
#: Kills at random moments per operation.
RANDOM_KILLS = 5


@dataclass(frozen=True)
class Content:
    """One version of an object: its bytes, their sha256 and the ETag S3 gives them."""

    data: bytes
    sha256: str
    etag: str

    @classmethod
    def single(cls, data: bytes) -> "Content":
        return cls(data, hashlib.sha256(data).hexdigest(), f'"{hashlib.md5(data).hexdigest()}"')

    @classmethod
    def multipart(cls, parts: list[bytes]) -> "Content":
        """The object a multipart upload of ``parts`` makes (ETag: MD5 of the parts' MD5s, -N)."""
        data = b"".join(parts)
        joined = b"".join(hashlib.md5(part).digest() for part in parts)
        etag = f'"{hashlib.md5(joined).hexdigest()}-{len(parts)}"'
        return cls(data, hashlib.sha256(data).hexdigest(), etag)

    @property
    def size(self) -> int:
        return len(self.data)


class Rig:
    """A cloud's Walrus seen from outside: its S3 clients, its bucket directory and database,
    and SIGKILL and restart."""

    def __init__(self, cloud):
        config = load_config(cloud.conf)
        self.cloud = cloud
        self.bucket_dir = config.walrus_storage_dir() / BUCKET
        self.db_path = config.state_dir() / "walrus.db"

    @cached_property
    def s3(self):
        return self.cloud.client("s3", read_timeout=120)

    @cached_property
    def one_shot_s3(self):
        return self.new_one_shot_s3()

    def new_one_shot_s3(self):
        """A client that never retries, so a request cut by the kill is not sent again."""
        keys = self.cloud.eucarc
        config = botocore.config.Config(retries={"total_max_attempts": 1}, read_timeout=120,
                                        s3={"addressing_style": "path"})
        return boto3.session.Session().client(
            "s3", endpoint_url=self.cloud.s3_url, region_name="eucalyptus", config=config,
            aws_access_key_id=keys["AWS_ACCESS_KEY_ID"], aws_secret_access_key=keys["AWS_SECRET_ACCESS_KEY"])

    def temps(self) -> list[str]:
        return [name for name in os.listdir(self.bucket_dir) if name.startswith(TEMP_PREFIX)]

    def kill(self) -> None:
        self.cloud.kill9("walrus")

    def kill_while_writing(self, what: str) -> None:
        """SIGKILL as soon as a temp file shows up, and check the kill came before its rename."""
        assert poll_until(self.temps, timeout=30, interval=0.002), f"{what}: no temp file appeared"
        self.kill()
        assert self.temps(), f"{what}: the temp file was renamed before the kill landed"

    def restart(self) -> None:
        self.cloud.start_daemon("walrus")

    def _query(self, sql: str, args=()) -> list[tuple]:
        with closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)) as db:
            return db.execute(sql, args).fetchall()

    def named_files(self) -> set[str]:
        """The files the bucket's object and part rows name (an inline object has none)."""
        rows = self._query("SELECT file FROM objects WHERE bucket = ? UNION ALL SELECT p.file FROM parts p "
                           "JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ?", [BUCKET] * 2)
        return {file for (file,) in rows if not file.startswith(INLINE_PREFIX)}

    def part_rows(self, upload_id: str) -> int:
        return self._query("SELECT count(*) FROM parts WHERE upload_id = ?", [upload_id])[0][0]


class Call(threading.Thread):
    """One S3 call in the background; ``acknowledged()`` joins it and says whether it returned."""

    def __init__(self, call):
        super().__init__(daemon=True)
        self.call, self.outcome = call, None

    def run(self):
        try:
            self.call()
            self.outcome = "acknowledged"
        except BotoCoreError:
            self.outcome = "cut"  # the connection died with the daemon
        except Exception as error:  # an S3 error answer is a failure, reported by acknowledged()
            self.outcome = error

    def acknowledged(self) -> bool:
        self.join(timeout=60)
        assert self.outcome in ("acknowledged", "cut"), f"the call failed otherwise: {self.outcome!r}"
        return self.outcome == "acknowledged"


class PutOperation:
    """PutObject of ``new`` over ``old``, the body streamed by hand so that it can stop half-way."""

    name, key = "PutObject", "put-target"

    def __init__(self, rig: Rig, old: Content, new: Content):
        self.rig, self.old, self.new = rig, old, new
        self.current = None  # the version the key holds, as the last settle() found it

    def prepare(self) -> None:
        """Make the key hold ``old``."""
        if self.current is not self.old:
            self.rig.s3.put_object(Bucket=BUCKET, Key=self.key, Body=self.old.data)
        self.current = None  # unknown until the next settle()

    def start(self, whole: bool = True) -> None:
        """Send the request with all of the body, or with its first half only."""
        url = self.rig.s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": self.key},
                                                 ExpiresIn=600)
        split = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(split.hostname, split.port, timeout=60)
        self.conn.putrequest("PUT", f"{split.path}?{split.query}", skip_accept_encoding=True)
        self.conn.putheader("Content-Length", str(self.new.size))
        self.conn.endheaders()
        self.conn.send(self.new.data if whole else self.new.data[:self.new.size // 2])

    def acknowledged(self) -> bool:
        try:
            status = self.conn.getresponse().status
        except (http.client.HTTPException, OSError):
            return False
        finally:
            self.conn.close()
        assert status == 200, f"PutObject answered {status}"
        return True

    def settle(self, served: Content) -> None:
        """Take note of the version ``check_one_version`` found after the kill."""
        self.current = served


class CopyOperation(PutOperation):
    """CopyObject of a large source (``new``) over ``old``."""

    name, key = "CopyObject", "copy-target"

    def start(self, whole: bool = True) -> None:
        s3 = self.rig.one_shot_s3
        self.call = Call(lambda: s3.copy_object(Bucket=BUCKET, Key=self.key,
                                                CopySource={"Bucket": BUCKET, "Key": SOURCE_KEY}))
        self.call.start()

    def acknowledged(self) -> bool:
        return self.call.acknowledged()


class CompleteOperation(CopyOperation):
    """CompleteMultipartUpload over ``old`` of parts copied from the source (making ``new``).
    An upload that survives a kill is completed by the next attempt."""

    name, key = "CompleteMultipartUpload", "multipart-target"
    upload_id = None

    def prepare(self) -> None:
        if self.current is None:  # never settled, or a failed check left the upload unknown
            self.upload_id = None
        super().prepare()
        if self.upload_id is None:
            self.upload_id = self.rig.s3.create_multipart_upload(Bucket=BUCKET, Key=self.key)["UploadId"]
            self.parts = [self._copy_part(number, first, size)
                          for number, (first, size) in enumerate(PART_RANGES, start=1)]

    def _copy_part(self, number: int, first: int, size: int) -> dict:
        copied = self.rig.s3.upload_part_copy(
            Bucket=BUCKET, Key=self.key, UploadId=self.upload_id, PartNumber=number,
            CopySource={"Bucket": BUCKET, "Key": SOURCE_KEY}, CopySourceRange=f"bytes={first}-{first + size - 1}")
        return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

    def start(self, whole: bool = True) -> None:
        s3 = self.rig.one_shot_s3
        self.call = Call(lambda: s3.complete_multipart_upload(
            Bucket=BUCKET, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}))
        self.call.start()

    def settle(self, served: Content) -> None:
        """With the new object the upload and its part rows are gone; with the old one the upload
        is still listed with all its parts, or gone with all of them."""
        super().settle(served)
        s3 = self.rig.s3
        listed = [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])]
        if served is self.new or self.upload_id not in listed:
            assert self.upload_id not in listed and self.rig.part_rows(self.upload_id) == 0
            self.upload_id = None
            return
        parts = s3.list_parts(Bucket=BUCKET, Key=self.key, UploadId=self.upload_id)["Parts"]
        assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == [
            (p["PartNumber"], p["ETag"], size) for p, (_, size) in zip(self.parts, PART_RANGES)]


def check_one_version(rig: Rig, key: str, old: Content, new: Content, what: str) -> Content:
    """After a restart: no temp file is left, the bucket directory holds exactly the files the
    database names, and GET, HEAD and the listing all show exactly ``old`` or exactly ``new``
    under ``key``.  Returns the version served.  Without a restart, the files of what was
    replaced may take a moment to go: Walrus removes them after it has answered."""
    assert not rig.temps(), f"{what}: temp files survived the restart"

    def disagreeing() -> set:
        return set(os.listdir(rig.bucket_dir)) ^ rig.named_files()

    assert poll_until(lambda: not disagreeing(), timeout=10), f"{what}: files and rows disagree: {disagreeing()}"
    s3 = rig.s3
    got = s3.get_object(Bucket=BUCKET, Key=key)
    body = got["Body"].read()
    served = {old.sha256: old, new.sha256: new}.get(hashlib.sha256(body).hexdigest())
    assert served is not None, f"{what}: torn object of {len(body)} bytes (old {old.size}, new {new.size})"
    assert (got["ContentLength"], got["ETag"]) == (served.size, served.etag), what
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert (head["ContentLength"], head["ETag"]) == (served.size, served.etag), what
    listed = [(o["Key"], o["Size"], o["ETag"]) for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert [entry for entry in listed if entry[0] == key] == [(key, served.size, served.etag)], what
    return served


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    root = tmp_path_factory.mktemp("walrus-crash")
    storage = root / "objects"
    try:
        with running_cloud(root, WALRUS_STORAGE_DIR=str(storage)) as cloud:
            cloud.client("s3").create_bucket(Bucket=BUCKET)
            yield Rig(cloud)
    finally:
        shutil.rmtree(storage, ignore_errors=True)


@pytest.fixture(scope="module")
def operations(rig) -> dict:
    """Each operation, kept across the tests: it knows what its key holds."""
    old = Content.single(os.urandom(6 * MIB))
    source = Content.single(os.urandom(48 * MIB))  # big enough that copying it takes a while
    rig.s3.put_object(Bucket=BUCKET, Key=SOURCE_KEY, Body=source.data)
    parts = [source.data[first:first + size] for first, size in PART_RANGES]
    return {"put": PutOperation(rig, old, Content.single(os.urandom(16 * MIB))),
            "copy": CopyOperation(rig, old, source),
            "complete": CompleteOperation(rig, old, Content.multipart(parts))}


@pytest.fixture(params=["put", "copy", "complete"])
def operation(request, operations):
    return operations[request.param]


def test_kill_while_the_temp_file_is_written(rig, operation):
    """Killed with its temp file on disk (half a PUT body sent), the operation leaves the old
    object, and the restart sweeps the temp file."""
    operation.prepare()
    operation.start(whole=False)
    rig.kill_while_writing(operation.name)
    assert not operation.acknowledged()
    rig.restart()
    served = check_one_version(rig, operation.key, operation.old, operation.new, operation.name)
    assert served is operation.old
    operation.settle(served)


def test_kill_at_random_moments(rig, operation):
    """Killed anywhere from before the request to well after its commit, the operation leaves
    the old object or the new one; once acknowledged, always the new one."""
    operation.prepare()
    operation.start()
    began = time.monotonic()  # a PUT's start() returns once its body is sent
    assert operation.acknowledged()
    duration = time.monotonic() - began
    served = check_one_version(rig, operation.key, operation.old, operation.new, operation.name)
    assert served is operation.new
    operation.settle(served)
    seed = random.randrange(2**32)
    moments = random.Random(seed)
    for delay in [duration * 2 * moments.random() for _ in range(RANDOM_KILLS)]:
        what = f"{operation.name} killed after {delay:.3f}s of {duration:.3f}s (seed {seed})"
        operation.prepare()
        operation.start()
        time.sleep(delay)
        rig.kill()
        acknowledged = operation.acknowledged()
        rig.restart()
        served = check_one_version(rig, operation.key, operation.old, operation.new, what)
        assert served is operation.new or not acknowledged, f"{what}: an acknowledged write was lost"
        operation.settle(served)


def test_kill_during_concurrent_small_puts(rig):
    """Sixteen clients PUT small objects (kept inline in the database, several committed in one
    transaction) while Walrus is killed: after the restart every acknowledged PUT is there with
    its bytes, and one that was not acknowledged is there whole or not at all."""
    sent, acknowledged, stop = {}, {}, threading.Event()

    def writer(number: int) -> None:
        s3 = rig.new_one_shot_s3()
        for i in itertools.count():
            key, data = f"small/{number:02d}/{i:06d}", os.urandom(4096)
            sent[key] = data
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=data)
            except BotoCoreError:  # the connection died with the daemon
                return
            acknowledged[key] = data
            if stop.is_set():
                return

    writers = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(16)]
    for w in writers:
        w.start()
    assert poll_until(lambda: len(acknowledged) >= 50, timeout=60), "the PUTs did not get going"
    time.sleep(random.uniform(0, 0.5))
    rig.kill()
    stop.set()
    for w in writers:
        w.join(60)
    rig.restart()
    assert not rig.temps() and set(os.listdir(rig.bucket_dir)) == rig.named_files()
    s3 = rig.s3
    listed = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="small/")
              for o in page.get("Contents", [])]
    assert set(acknowledged) <= set(listed), f"{len(set(acknowledged) - set(listed))} acknowledged PUTs lost"
    for key in listed:
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == sent[key], f"{key}: wrong bytes"
    for first in range(0, len(listed), 1000):
        s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in listed[first:first + 1000]]})

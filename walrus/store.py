"""Walrus storage: the one seam through which buckets and objects reach the disk.

Object data lives in ``<storage_dir>/<bucket>/<generated name>``; everything else
(who owns a bucket, which file holds a key, its ETag and metadata) lives in SQLite.
A key is arbitrary UTF-8 and is never used as a path.  An object is written to a
temp file, fsynced, renamed into place and only then committed; a crash at any
point leaves either the old object or the new one, and :meth:`WalrusStore.sweep`
(run on open) removes whatever files no committed row names.
"""

import contextlib
import ctypes
import hashlib
import io
import itertools
import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from eucacore.db import Store
from eucacore.ids import now

from .groupcommit import GroupCommit

log = logging.getLogger("eucalyptus.walrus.store")

CHUNK = 1024 * 1024
TEMP_PREFIX = ".tmp-"
#: Objects up to this size live in SQLite with their row (one transaction, one fsync, no
#: file to create), as MinIO inlines small objects in their metadata; larger ones are files.
INLINE_MAX = 64 * 1024
#: The ``file`` of an inline object: this prefix and the id of its row in ``blobs``.
INLINE_PREFIX = "inline:"
_END = object()


class StoreError(Exception):
    """A storage refusal the caller can show to a user."""


class NoSuchBucket(StoreError):
    """The bucket does not exist."""


class NoSuchKey(StoreError):
    """The bucket has no object under that key."""


class BucketNotEmpty(StoreError):
    """A bucket with objects in it cannot be deleted."""


class BucketExists(StoreError):
    """The bucket name is taken; ``owner`` is the account holding it."""

    def __init__(self, name: str, owner: str):
        super().__init__(name)
        self.owner = owner


class IncompleteBody(StoreError):
    """The stream ended before the promised number of bytes."""


class TooManyBuckets(StoreError):
    """The owner already has as many buckets as it may."""


class NoSuchUpload(StoreError):
    """No multipart upload has that id (it was completed or aborted, or never existed)."""


@dataclass(frozen=True)
class Bucket:
    """A bucket row (kept and shared by :class:`_KeptBuckets`: never changed in place)."""

    name: str
    owner: str
    created: float
    acl: dict | None = None
    location: str | None = None


@dataclass
class Digests:
    """What was computed over an object's bytes while it was written: its size, MD5, and the
    digest of each extra hasher the writer asked for, by name."""

    size: int
    md5: bytes
    extra: dict = field(default_factory=dict)


@dataclass
class ObjectInfo:
    """An object's metadata row (not its bytes)."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: float
    content_type: str = "binary/octet-stream"
    metadata: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    owner: str = ""
    acl: dict | None = None
    checksum_algorithm: str | None = None
    checksum: str | None = None  # base64, as S3 returns it
    parts: int | None = None  # the part count of an object made by a multipart upload
    file: str = ""


def _migration_1(db):
    db.execute("""CREATE TABLE buckets (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, created REAL NOT NULL)""")
    db.execute("CREATE INDEX buckets_owner ON buckets(owner, name)")
    db.execute("""CREATE TABLE objects (
        bucket TEXT NOT NULL REFERENCES buckets(name),
        key TEXT NOT NULL,
        file TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        checksum_crc32 TEXT,
        content_type TEXT NOT NULL,
        metadata TEXT NOT NULL,
        headers TEXT NOT NULL,
        last_modified REAL NOT NULL,
        PRIMARY KEY (bucket, key)) WITHOUT ROWID""")


#: The usage outbox's columns besides its seq (migrations 2 and 4 make the table).
_USAGE_EVENT_COLUMNS = ("account_id TEXT NOT NULL, time REAL NOT NULL, stored_delta INTEGER NOT NULL DEFAULT 0, "
                        "buckets_delta INTEGER NOT NULL DEFAULT 0, bytes_in INTEGER NOT NULL DEFAULT 0, "
                        "bytes_out INTEGER NOT NULL DEFAULT 0")


def _migration_2(db):
    """Usage for billing: each change of an account's stored bytes and bucket count, written in
    the transaction that makes the change, and transfer; sent to the CLC, then forgotten.
    ``source`` names this store to the CLC, which counts each (source, seq) once."""
    db.execute(f"CREATE TABLE usage_outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, {_USAGE_EVENT_COLUMNS})")
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta (name, value) VALUES ('source', ?)", [f"walrus-{secrets.token_hex(8)}"])


def _migration_3(db):
    """ACLs, owners of objects, any flexible checksum, and multipart uploads with their parts."""
    db.execute("ALTER TABLE buckets ADD COLUMN acl TEXT")
    db.execute("ALTER TABLE buckets ADD COLUMN location TEXT")
    db.execute("ALTER TABLE objects ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
    db.execute("ALTER TABLE objects ADD COLUMN acl TEXT")
    db.execute("ALTER TABLE objects ADD COLUMN checksum_algorithm TEXT")
    db.execute("ALTER TABLE objects ADD COLUMN checksum TEXT")
    db.execute("ALTER TABLE objects ADD COLUMN parts INTEGER")
    db.execute("UPDATE objects SET owner = (SELECT owner FROM buckets WHERE name = objects.bucket)")
    db.execute("UPDATE objects SET checksum_algorithm = 'CRC32', checksum = checksum_crc32 "
               "WHERE checksum_crc32 IS NOT NULL")
    db.execute("ALTER TABLE objects DROP COLUMN checksum_crc32")
    db.execute("ALTER TABLE objects DROP COLUMN sha256")
    db.execute("""CREATE TABLE uploads (
        upload_id TEXT PRIMARY KEY,
        bucket TEXT NOT NULL REFERENCES buckets(name),
        key TEXT NOT NULL,
        owner TEXT NOT NULL,
        initiator TEXT NOT NULL,
        created REAL NOT NULL,
        content_type TEXT NOT NULL,
        metadata TEXT NOT NULL,
        headers TEXT NOT NULL,
        acl TEXT,
        checksum_algorithm TEXT,
        checksum_type TEXT)""")
    db.execute("CREATE TABLE blobs (id TEXT PRIMARY KEY, data BLOB NOT NULL)")
    db.execute("CREATE INDEX uploads_key ON uploads(bucket, key, created)")
    db.execute("""CREATE TABLE parts (
        upload_id TEXT NOT NULL REFERENCES uploads(upload_id),
        part_number INTEGER NOT NULL,
        file TEXT NOT NULL,
        size INTEGER NOT NULL,
        etag TEXT NOT NULL,
        checksum TEXT,
        last_modified REAL NOT NULL,
        PRIMARY KEY (upload_id, part_number)) WITHOUT ROWID""")


def _migration_4(db):
    """Two pages fewer in each small PUT's commit: inline blobs keyed by rowid (no index of text
    ids beside the table), and the usage outbox without AUTOINCREMENT (no sqlite_sequence row to
    update).  An inline object's ``file`` becomes ``inline:<rowid>``.  The outbox's seqs must
    still never repeat (the CLC counts each (source, seq) once), so its high-water mark moves to
    meta ``usage_seq``, which :meth:`WalrusStore.forget_usage` keeps."""
    db.execute("CREATE TABLE blobs_by_rowid (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
    db.execute("INSERT INTO blobs_by_rowid (id, data) SELECT rowid, data FROM blobs")
    db.execute(f"UPDATE objects SET file = '{INLINE_PREFIX}' || (SELECT rowid FROM blobs WHERE blobs.id = objects.file) "
               "WHERE file IN (SELECT id FROM blobs)")
    db.execute("DROP TABLE blobs")
    db.execute("ALTER TABLE blobs_by_rowid RENAME TO blobs")
    high = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'usage_outbox'").fetchone()
    db.execute("INSERT INTO meta (name, value) VALUES ('usage_seq', ?)", [str(high[0] if high else 0)])
    db.execute(f"CREATE TABLE usage_outbox_new (seq INTEGER PRIMARY KEY, {_USAGE_EVENT_COLUMNS})")
    db.execute("INSERT INTO usage_outbox_new SELECT * FROM usage_outbox")
    db.execute("DROP TABLE usage_outbox")
    db.execute("ALTER TABLE usage_outbox_new RENAME TO usage_outbox")


MIGRATIONS = [_migration_1, _migration_2, _migration_3, _migration_4]

#: What a bucket's directory may be called (the bucket naming rules); sweep leaves anything else.
_BUCKET_DIRECTORY = re.compile(r"^[a-z0-9][a-z0-9._-]{2,254}$")
BUCKET_COLUMNS = "name, owner, created, acl, location"
#: The objects columns that make an ObjectInfo, in _object_info's order.
OBJECT_COLUMNS = ("bucket, key, size, etag, last_modified, content_type, metadata, headers, owner, acl, "
                  "checksum_algorithm, checksum, parts, file")
#: The objects columns that make a ListedObject, in its order.
LISTED_COLUMNS = "key, size, etag, last_modified, owner, checksum_algorithm"


def _blob_id(file: str) -> int | None:
    """The ``blobs`` rowid of an inline object's ``file``; None for an object in a file."""
    return int(file[len(INLINE_PREFIX):]) if file.startswith(INLINE_PREFIX) else None


def _delete_blob(conn, file: str | None) -> None:
    """Delete the ``blobs`` row of an inline object's ``file`` in ``conn``'s transaction; nothing
    for an object in a file, or none (``file`` None)."""
    blob = _blob_id(file) if file else None
    if blob is not None:
        conn.execute("DELETE FROM blobs WHERE id = ?", [blob])


def key_successor(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix``.

    SQLite compares TEXT by memcmp of UTF-8, which is code point order, so
    bumping the last code point bounds a prefix range; None when unbounded.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates have no UTF-8 form
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


class _KeptBuckets:
    """Bucket rows kept in memory.  Every S3 request looks up its bucket (a small PUT twice),
    and buckets change seldom.  Only the store writes them, and it calls :meth:`forget` once
    each such write has ended; a row read while a write was under way is not kept, since it may
    be the old one.  An absent bucket is not kept either, so a new one is seen at once."""

    LIMIT = 10_000

    def __init__(self):
        self._rows: dict[str, Bucket] = {}
        self._writes = 0
        self._lock = threading.Lock()

    def get(self, name: str) -> Bucket | None:
        return self._rows.get(name)

    def reading(self) -> int:
        """A token to take before reading a row, for :meth:`keep`."""
        return self._writes

    def keep(self, bucket: Bucket, token: int) -> None:
        with self._lock:
            if token == self._writes:
                if len(self._rows) >= self.LIMIT:
                    self._rows.clear()
                self._rows[bucket.name] = bucket

    def forget(self, name: str) -> None:
        with self._lock:
            self._writes += 1
            self._rows.pop(name, None)


class _Remover:
    """Removes the files of replaced and deleted objects in a thread of its own, after the answer.

    Freeing a large file's pages and blocks is the kernel's slowest step of an overwrite
    (90 ms for 256 MiB here), and nobody needs to wait for it: once the rows are committed no
    reader finds the file (one already open keeps reading it), and a file a crash leaves
    behind is named by no row, so :meth:`WalrusStore.sweep` removes it at the next start.
    """

    #: Seconds the thread waits for more work before it ends (the next removal starts another).
    IDLE = 5.0
    #: The thread's nice value: freeing space can wait while requests want both CPUs.
    NICE = 10

    def __init__(self):
        self._paths: queue.Queue = queue.Queue()
        self._start = threading.Lock()
        self._thread = None

    def remove(self, paths: list) -> None:
        """Remove ``paths`` (any that are gone already are skipped) soon, in the remover thread."""
        if not paths:
            return
        for path in paths:
            self._paths.put(path)
        with self._start:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="walrus-remover", daemon=True)
                self._thread.start()

    def wait(self) -> None:
        """Return once every path handed over so far is removed."""
        self._paths.join()

    def _run(self) -> None:
        # Housekeeping: let requests have the CPU first (Linux keeps a nice value per thread).
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.NICE)
        while True:
            try:
                path = self._paths.get(timeout=self.IDLE)
            except queue.Empty:
                with self._start:  # remove() hands over before it looks here: nothing is stranded
                    if self._paths.empty():
                        self._thread = None
                        return
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.warning("could not remove %s: %s", path, e)
            finally:
                self._paths.task_done()


class WalrusStore:
    """Buckets and objects: files under ``storage_dir``, rows in ``db_path``.  One store at a
    time opens a database: it keeps the bucket rows it read (:class:`_KeptBuckets`)."""

    def __init__(self, storage_dir: str | Path, db_path: str | Path):
        self.root = Path(storage_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = Store(db_path, MIGRATIONS)
        self._usage_seqs = itertools.count(self._usage_high_water() + 1)  # taken in write transactions
        self._objects_committer = GroupCommit(self._write)
        self._buckets = _KeptBuckets()
        self._transfer_lock = threading.Lock()
        self._bytes_out: dict[str, int] = {}
        self.removals = _Remover()
        self.sweep()

    @classmethod
    def from_config(cls, config) -> "WalrusStore":
        """The store at the configured places: WALRUS_STORAGE_DIR and state_dir/walrus.db."""
        return cls(config.walrus_storage_dir(), config.state_dir() / "walrus.db")

    @property
    def db(self):
        return self.store.db

    @contextlib.contextmanager
    def _write(self):
        """A write transaction taken up front, so concurrent writers queue rather than fail."""
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    @contextlib.contextmanager
    def _bucket_write(self, name: str):
        """:meth:`_write` for a change of bucket ``name``'s row: the kept row is forgotten after it."""
        try:
            with self._write() as conn:
                yield conn
        finally:
            self._buckets.forget(name)

    # ------------------------------------------------------------ buckets

    def sweep(self) -> None:
        """Remove temp files, files no row names, and directories of deleted buckets."""
        buckets = {row[0] for row in self.db.execute("SELECT name FROM buckets")}
        for entry in os.scandir(self.root):
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name not in buckets:
                if _BUCKET_DIRECTORY.match(entry.name):  # not lost+found or an admin's own folder
                    log.info("sweep: removing directory of deleted bucket %s", entry.name)
                    shutil.rmtree(entry.path, ignore_errors=True)
                continue
            known = {row[0] for row in self.db.execute(
                "SELECT file FROM objects WHERE bucket = ? UNION ALL SELECT p.file FROM parts p "
                "JOIN uploads u ON u.upload_id = p.upload_id WHERE u.bucket = ?", [entry.name] * 2)}
            for item in os.scandir(entry.path):
                if item.name not in known and not item.is_dir(follow_symlinks=False):
                    log.info("sweep: removing %s/%s", entry.name, item.name)
                    os.unlink(item.path)
        for name in buckets:
            (self.root / name).mkdir(exist_ok=True)
        with self._write() as conn:
            conn.execute(f"DELETE FROM blobs WHERE '{INLINE_PREFIX}' || id NOT IN (SELECT file FROM objects)")

    def create_bucket(self, name: str, owner: str, max_buckets: int = -1, *, acl: dict | None = None,
                      location: str | None = None) -> Bucket:
        """Create ``name`` for ``owner``; BucketExists when the name is taken, TooManyBuckets
        when ``owner`` has ``max_buckets`` already (-1: no limit)."""
        with self._bucket_write(name) as conn:
            row = conn.execute("SELECT owner FROM buckets WHERE name = ?", [name]).fetchone()
            if row:
                raise BucketExists(name, row[0])
            count = conn.execute("SELECT count(*) FROM buckets WHERE owner = ?", [owner]).fetchone()[0]
            if 0 <= max_buckets <= count:
                raise TooManyBuckets(owner)
            bucket = Bucket(name, owner, now(), acl, location)
            conn.execute("INSERT INTO buckets (name, owner, created, acl, location) VALUES (?, ?, ?, ?, ?)",
                         [bucket.name, bucket.owner, bucket.created, _json(acl), location])
            self._usage(conn, owner, buckets=1)
            (self.root / name).mkdir(exist_ok=True)
        return bucket

    def get_bucket(self, name: str) -> Bucket:
        """The bucket row; NoSuchBucket when absent."""
        bucket = self._buckets.get(name)
        if bucket is None:
            token = self._buckets.reading()
            row = self.db.execute(f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE name = ?", [name]).fetchone()
            if row is None:
                raise NoSuchBucket(name)
            bucket = _bucket(row)
            self._buckets.keep(bucket, token)
        return bucket

    def list_buckets(self, owner: str | None) -> list[Bucket]:
        """``owner``'s buckets (every bucket when None) in name order."""
        if owner is None:
            rows = self.db.execute(f"SELECT {BUCKET_COLUMNS} FROM buckets ORDER BY name")
        else:
            rows = self.db.execute(f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE owner = ? ORDER BY name",
                                   [owner])
        return [_bucket(row) for row in rows]

    def set_bucket_acl(self, name: str, acl: dict) -> None:
        with self._bucket_write(name) as conn:
            if not conn.execute("UPDATE buckets SET acl = ? WHERE name = ?", [_json(acl), name]).rowcount:
                raise NoSuchBucket(name)

    def account_bytes(self, owner: str) -> int:
        """The size of all of ``owner``'s objects."""
        return self.db.execute("SELECT COALESCE(SUM(o.size), 0) FROM objects o JOIN buckets b "
                               "ON b.name = o.bucket WHERE b.owner = ?", [owner]).fetchone()[0]

    def bucket_bytes(self, name: str) -> int:
        """The size of all objects in bucket ``name``."""
        return self.db.execute("SELECT COALESCE(SUM(size), 0) FROM objects WHERE bucket = ?",
                               [name]).fetchone()[0]

    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket, aborting its unfinished multipart uploads; NoSuchBucket,
        BucketNotEmpty."""
        with self._bucket_write(name) as conn:
            row = conn.execute("SELECT owner FROM buckets WHERE name = ?", [name]).fetchone()
            if not row:
                raise NoSuchBucket(name)
            if conn.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", [name]).fetchone():
                raise BucketNotEmpty(name)
            conn.execute("DELETE FROM parts WHERE upload_id IN "
                         "(SELECT upload_id FROM uploads WHERE bucket = ?)", [name])
            conn.execute("DELETE FROM uploads WHERE bucket = ?", [name])
            conn.execute("DELETE FROM buckets WHERE name = ?", [name])
            self._usage(conn, row[0], buckets=-1)
        shutil.rmtree(self.root / name, ignore_errors=True)

    # ------------------------------------------------------------ objects

    def write_temp(self, bucket: str, stream, length: int | None, hashers: dict | None = None,
                   verify: Callable[[Digests], None] | None = None, inline: bool = True):
        """Stage ``length`` bytes of ``stream`` (all, when None) for :meth:`commit_temp`: a new
        fsynced temp file of ``bucket``, or (``inline`` and at most INLINE_MAX bytes) an
        :class:`Inline` in memory.  Returns (staged, digests).

        ``hashers`` (name -> object with update() and digest()) see every byte; ``verify``
        runs on the digests before the bytes are kept.  On any failure the file is gone.
        The caller has found the bucket; one deleted since is NoSuchBucket here (its directory
        is gone) or at the commit.
        """
        if inline and length is not None and length <= INLINE_MAX:
            staged = Inline(_read_exactly(stream, length))
            digests = _digests([staged.data], hashers or {})
            if verify:
                verify(digests)
            return staged, digests
        temp = self.root / bucket / f"{TEMP_PREFIX}{secrets.token_hex(12)}"
        try:
            digests = _write_file(temp, stream, length, hashers or {})
            if verify:
                verify(digests)
        except BaseException as error:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            if isinstance(error, FileNotFoundError) and not temp.parent.is_dir():
                raise NoSuchBucket(bucket) from None
            raise
        return temp, digests

    def put_object(self, bucket: str, key: str, stream, length: int | None, *,
                   hashers: dict | None = None, verify: Callable[[Digests], None] | None = None,
                   **attributes) -> ObjectInfo:
        """Write ``length`` bytes of ``stream`` (all of it when None) as ``bucket/key``.

        ``verify(digests)`` runs after the bytes are on disk and before anything is
        committed; if it (or anything else) raises, nothing is stored.  ``attributes`` are
        ObjectInfo fields (content_type, metadata, headers, owner, acl, checksum_algorithm,
        checksum).  A replaced object's file is removed after the commit, by :attr:`removals`.
        """
        temp, digests = self.write_temp(bucket, stream, length, hashers, verify)
        return self.commit_temp(temp, bucket, key, digests.size, f'"{digests.md5.hex()}"', **attributes)

    def commit_temp(self, staged, bucket: str, key: str, size: int, etag: str, *,
                    replaces_upload: str | None = None, **attributes) -> ObjectInfo:
        """Commit what :meth:`write_temp` staged as ``bucket/key`` in one transaction (which also
        forgets multipart upload ``replaces_upload``, if given); a temp file is renamed into
        place first.  A replaced object's file is removed after the commit, by :attr:`removals`."""
        if isinstance(staged, Inline):
            final = None
            name = INLINE_PREFIX  # the commit adds its blob's rowid
        else:
            directory = self.root / bucket
            final = directory / secrets.token_hex(16)
            name = final.name
            try:
                os.rename(staged, final)
                _fsync_dir(directory)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(staged)
                raise
        attributes["content_type"] = attributes.get("content_type") or "binary/octet-stream"
        info = ObjectInfo(bucket=bucket, key=key, size=size, etag=etag, last_modified=now(),
                          file=name, **attributes)
        try:
            old, parts = self._commit_object(info, replaces_upload,
                                             staged.data if isinstance(staged, Inline) else None)
        except BaseException:
            if final:
                os.unlink(final)
            raise
        self.remove_files(bucket, [old, *parts])
        return info

    def remove_files(self, bucket: str, names: list) -> None:
        """Have :attr:`removals` remove the files ``names`` of ``bucket`` once nothing names them
        (committed); None and inline ids, which have no file, are passed over."""
        self.removals.remove([self.root / bucket / name for name in names
                              if name and not name.startswith(INLINE_PREFIX)])

    def _commit_object(self, info: ObjectInfo, replaces_upload: str | None,
                       data: bytes | None) -> tuple[str | None, list]:
        """Commit an object's rows (with concurrent PUTs' in one transaction); (replaced file, part files)."""
        return self._objects_committer.run(lambda conn: self._object_rows(conn, info, replaces_upload, data))

    def _object_rows(self, conn, info: ObjectInfo, replaces_upload: str | None,
                     data: bytes | None) -> tuple[str | None, list]:
        """Write an object's rows in ``conn``'s transaction; (the file it replaces, the part files it
        frees).  ``data``: the bytes of an inline object, whose ``info.file`` is set here to name its
        new ``blobs`` row.  NoSuchBucket, NoSuchUpload."""
        found = conn.execute("SELECT b.owner, o.file, o.size FROM buckets b LEFT JOIN objects o "
                             "ON o.bucket = b.name AND o.key = ? WHERE b.name = ?", [info.key, info.bucket]).fetchone()
        if not found:
            raise NoSuchBucket(info.bucket)
        owner, old_file, old_size = found
        parts = []
        if replaces_upload:
            parts = [r[0] for r in conn.execute("SELECT file FROM parts WHERE upload_id = ?",
                                                [replaces_upload])]
            conn.execute("DELETE FROM parts WHERE upload_id = ?", [replaces_upload])
            if not conn.execute("DELETE FROM uploads WHERE upload_id = ?", [replaces_upload]).rowcount:
                raise NoSuchUpload(replaces_upload)
        _delete_blob(conn, old_file)
        if data is not None:
            # A rowid may come again once its row is gone: readers take an object's row and its
            # blob in one statement (open_object), never the id first and the blob later.
            info.file = f"{INLINE_PREFIX}{conn.execute('INSERT INTO blobs (data) VALUES (?)', [data]).lastrowid}"
        self._usage(conn, owner, stored=info.size - (old_size or 0), bytes_in=info.size)
        conn.execute(
            f"INSERT OR REPLACE INTO objects ({OBJECT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [info.bucket, info.key, info.size, info.etag, info.last_modified, info.content_type,
             _json_dict(info.metadata), _json_dict(info.headers), info.owner, _json(info.acl),
             info.checksum_algorithm, info.checksum, info.parts, info.file])
        return old_file, parts

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """The object's metadata; NoSuchBucket, NoSuchKey."""
        row = self.db.execute(f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",
                              [bucket, key]).fetchone()
        if row is None:
            self.get_bucket(bucket)
            raise NoSuchKey(key)
        return _object_info(row)

    def open_object(self, bucket: str, key: str):
        """(ObjectInfo, open binary file) of the object; the caller closes the file.

        The file stays readable even if the object is replaced meanwhile.
        """
        for _ in range(5):  # a concurrent replace may remove the file between row and open
            row = self.db.execute(f"SELECT {OBJECT_COLUMNS}, b.data FROM objects o LEFT JOIN blobs b "
                                  f"ON o.file LIKE '{INLINE_PREFIX}%' AND b.id = CAST(substr(o.file, "
                                  f"{len(INLINE_PREFIX) + 1}) AS INTEGER) WHERE o.bucket = ? AND o.key = ?",
                                  [bucket, key]).fetchone()
            if row is None:
                self.get_bucket(bucket)
                raise NoSuchKey(key)
            info = _object_info(row[:-1])
            if info.file.startswith(INLINE_PREFIX):
                if row[-1] is not None:
                    return info, io.BytesIO(row[-1])
                continue
            try:
                return info, open(self.root / bucket / info.file, "rb")
            except FileNotFoundError:
                continue
        raise NoSuchKey(key)

    def set_object_acl(self, bucket: str, key: str, acl: dict) -> None:
        with self._write() as conn:
            if not conn.execute("UPDATE objects SET acl = ? WHERE bucket = ? AND key = ?",
                                [_json(acl), bucket, key]).rowcount:
                raise NoSuchKey(key)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete the object if it exists (idempotent); NoSuchBucket."""
        with self._write() as conn:
            owner = conn.execute("SELECT owner FROM buckets WHERE name = ?", [bucket]).fetchone()
            if not owner:
                raise NoSuchBucket(bucket)
            row = conn.execute("SELECT file, size FROM objects WHERE bucket = ? AND key = ?",
                               [bucket, key]).fetchone()
            conn.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", [bucket, key])
            if row:
                self._usage(conn, owner[0], stored=-row[1])
                _delete_blob(conn, row[0])
        if row:
            self.remove_files(bucket, [row[0]])

    # ------------------------------------------------------------ usage

    @property
    def usage_source(self) -> str:
        return self.db.execute("SELECT value FROM meta WHERE name = 'source'").fetchone()[0]

    def record_transfer(self, account_id: str, bytes_out: int) -> None:
        """Bytes sent to a reader of ``account_id``'s object (bytes in are recorded with the object).

        Counted in memory and written out with the next :meth:`pending_usage`, so a GET costs
        no disk write; a crash loses at most one reporting interval of outgoing transfer.
        """
        if bytes_out > 0:
            with self._transfer_lock:
                self._bytes_out[account_id] = self._bytes_out.get(account_id, 0) + bytes_out

    def _usage(self, conn, account_id: str, *, stored: int = 0, buckets: int = 0, bytes_in: int = 0,
               bytes_out: int = 0) -> None:
        """Add a usage event to the outbox, in ``conn``'s transaction, with the next seq."""
        conn.execute("INSERT INTO usage_outbox (seq, account_id, time, stored_delta, buckets_delta, bytes_in, "
                     "bytes_out) VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [next(self._usage_seqs), account_id, now(), stored, buckets, bytes_in, bytes_out])

    def pending_usage(self, limit: int = 500) -> list[dict]:
        """The oldest usage events not yet acknowledged by the CLC, in seq order."""
        with self._transfer_lock:
            counted, self._bytes_out = self._bytes_out, {}
        if counted:
            with self._write() as conn:
                for account_id, sent in counted.items():
                    self._usage(conn, account_id, bytes_out=sent)
        rows = self.db.execute("SELECT seq, account_id, time, stored_delta, buckets_delta, bytes_in, bytes_out "
                               "FROM usage_outbox ORDER BY seq LIMIT ?", [limit])
        names = ("seq", "account_id", "time", "stored_delta", "buckets_delta", "bytes_in", "bytes_out")
        return [dict(zip(names, row)) for row in rows]

    def forget_usage(self, up_to_seq: int) -> None:
        """Drop the events the CLC has stored, keeping their high-water mark: the outbox may be
        left empty, and the next start must not hand out a seq the CLC already has."""
        with self._write() as conn:
            conn.execute("DELETE FROM usage_outbox WHERE seq <= ?", [up_to_seq])
            conn.execute("UPDATE meta SET value = ? WHERE name = 'usage_seq' AND CAST(value AS INTEGER) < ?",
                         [str(up_to_seq), up_to_seq])

    def _usage_high_water(self) -> int:
        """The highest usage seq handed out before this start: in the outbox, or forgotten."""
        return self.db.execute("SELECT max(coalesce((SELECT max(seq) FROM usage_outbox), 0), "
                               "(SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'usage_seq'))").fetchone()[0]

    def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "",
                     start_after: str = "", max_keys: int = 1000) -> "Listing":
        """Keys of ``bucket`` after ``start_after`` in UTF-8 byte order, rolled up by delimiter:
        :class:`ListedObject` rows and common prefixes."""
        self.get_bucket(bucket)
        listing = Listing()
        if max_keys <= 0:
            return listing
        lower, inclusive = max(prefix, start_after), start_after < prefix
        if delimiter and start_after.startswith(prefix):
            # a marker that is itself a common prefix skips everything under it
            rest = start_after[len(prefix):]
            cut = rest.find(delimiter)
            if cut >= 0 and cut + len(delimiter) == len(rest):
                succ = key_successor(start_after)
                if succ is None:
                    return listing
                lower, inclusive = succ, True
        upper = key_successor(prefix) if prefix else None
        while True:
            restart = None
            for item in self._scan(bucket, lower, inclusive, upper):
                if len(listing) >= max_keys:
                    listing.is_truncated = True
                    return listing
                cut = item.key.find(delimiter, len(prefix)) if delimiter else -1
                if cut >= 0:
                    common = item.key[:cut + len(delimiter)]
                    listing.common_prefixes.append(common)
                    listing.last = common
                    # skip straight past every key under this common prefix
                    restart = key_successor(common) or _END
                    break
                listing.contents.append(item)
                listing.last = item.key
            if restart is None or restart is _END:
                return listing
            lower, inclusive = restart, True

    def _scan(self, bucket: str, lower: str, inclusive: bool, upper: str | None,
              batch: int = 500) -> Iterator["ListedObject"]:
        """Objects from ``lower`` up to ``upper`` (exclusive) in key order, in batches."""
        while True:
            sql = (f"SELECT {LISTED_COLUMNS} FROM objects WHERE bucket = ? AND key "
                   + (">=" if inclusive else ">") + " ?")
            args = [bucket, lower]
            if upper is not None:
                sql += " AND key < ?"
                args.append(upper)
            rows = self.db.execute(sql + " ORDER BY key LIMIT ?", args + [batch]).fetchall()
            yield from map(ListedObject._make, rows)
            if len(rows) < batch:
                return
            lower, inclusive = rows[-1][0], False


class ListedObject(NamedTuple):
    """What a listing shows of an object: a row as SQLite returns it, no metadata decoded."""

    key: str
    size: int
    etag: str
    last_modified: float
    owner: str
    checksum_algorithm: str | None


@dataclass
class Listing:
    """One page of a bucket listing."""

    contents: list = field(default_factory=list)
    common_prefixes: list = field(default_factory=list)
    is_truncated: bool = False
    last: str | None = None  # the last key or common prefix returned

    def __len__(self):
        return len(self.contents) + len(self.common_prefixes)


def _object_info(row) -> ObjectInfo:
    (bucket, key, size, etag, last_modified, content_type, metadata, headers, owner, acl,
     checksum_algorithm, checksum, parts, file) = row
    return ObjectInfo(bucket=bucket, key=key, size=size, etag=etag,
                      last_modified=last_modified, content_type=content_type,
                      metadata=json.loads(metadata), headers=json.loads(headers), owner=owner,
                      acl=json.loads(acl) if acl else None, checksum_algorithm=checksum_algorithm,
                      checksum=checksum, parts=parts, file=file)


def _bucket(row) -> Bucket:
    name, owner, created, acl, location = row
    return Bucket(name, owner, created, json.loads(acl) if acl else None, location)


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)


def _json_dict(value: dict) -> str:
    return json.dumps(value) if value else "{}"  # most objects have no metadata, no stored headers


@dataclass
class Inline:
    """The bytes of a small object staged for :meth:`WalrusStore.commit_temp`."""

    data: bytes

    def unlink(self, missing_ok: bool = False) -> None:
        """Nothing to remove: an inline object is only ever written by its commit."""


def _read_exactly(stream, length: int) -> bytes:
    chunks, got = [], 0
    while got < length:
        chunk = stream.read(length - got)
        if not chunk:
            raise IncompleteBody(f"got {got} of {length} bytes")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _digests(chunks, hashers: dict) -> Digests:
    md5, size = hashlib.md5(), 0
    for chunk in chunks:
        md5.update(chunk)
        for hasher in hashers.values():
            hasher.update(chunk)
        size += len(chunk)
    return Digests(size, md5.digest(), {name: h.digest() for name, h in hashers.items()})


def read_into(stream, view: memoryview) -> int:
    """Fill as much of ``view`` as one read of ``stream`` gives: straight into it when the
    stream has ``readinto`` (no bytes object in between), else by copying what ``read`` returns."""
    if hasattr(stream, "readinto"):
        return stream.readinto(view)
    data = stream.read(len(view))
    view[:len(data)] = data
    return len(data)


def _write_file(path: Path, stream, length: int | None, hashers: dict) -> Digests:
    """Copy ``stream`` into a new file at ``path`` and fsync it, hashing as it goes.

    This thread receives, writes and starts each WRITEBACK bytes' way to the disk; a
    :class:`_Hashing` thread hashes each chunk once it is written.  MD5, the slowest step
    (about 650 MB/s on one core), is all that thread does, and it overlaps the next receive
    instead of following it; by the fsync most of the file is on its way to the disk.
    """
    md5, size, started = hashlib.md5(), 0, 0
    with open(path, "xb", buffering=0) as out, _Hashing([md5] + list(hashers.values())) as hashing:
        while length is None or size < length:
            buffer = hashing.free_buffer()
            view = memoryview(buffer)[:CHUNK if length is None else min(CHUNK, length - size)]
            got = read_into(stream, view)
            if not got:
                if length is not None:
                    raise IncompleteBody(f"got {size} of {length} bytes")
                break
            _write_all(out, view[:got])
            hashing.add(buffer, got)
            size += got
            if size - started >= WRITEBACK:
                start_writeback(out.fileno(), started, size - started)
                started = size
        hashing.finish()
        os.fsync(out.fileno())
    return Digests(size, md5.digest(), {name: h.digest() for name, h in hashers.items()})


#: Bytes written between two writeback starts.
WRITEBACK = 8 * CHUNK


def _write_all(out, view: memoryview) -> None:
    """Write all of ``view`` to the unbuffered file ``out``, which may take less per call."""
    while view:
        view = view[out.write(view):]


class _Hashing:
    """A thread that feeds written chunks to ``hashers``.

    Chunks circulate through a few reused buffers, so memory stays at BUFFERS * CHUNK
    whatever the object's size.  :meth:`finish` waits for the last chunk to be hashed;
    leaving the ``with`` block stops the thread in any case.
    """

    BUFFERS = 4

    def __init__(self, hashers: list):
        self.hashers = hashers
        self._free = queue.SimpleQueue()
        for _ in range(self.BUFFERS):
            self._free.put(bytearray(CHUNK))
        self._written = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="walrus-hashing", daemon=True)
        self._failure = None

    def __enter__(self) -> "_Hashing":
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._written.put(None)
            self._thread.join()

    def finish(self) -> None:
        """Wait until every chunk added is hashed; raise what hashing raised, if anything."""
        self._stop()
        if self._failure is not None:
            raise self._failure

    def free_buffer(self) -> bytearray:
        """A buffer the hashing thread is done with (waits while all are in use)."""
        return self._free.get()

    def add(self, buffer: bytearray, length: int) -> None:
        """Hash the first ``length`` bytes of ``buffer`` (already written), then free it."""
        self._written.put((buffer, length))

    def _run(self) -> None:
        while (item := self._written.get()) is not None:
            buffer, length = item
            if self._failure is None:
                try:
                    view = memoryview(buffer)[:length]
                    for hasher in self.hashers:
                        hasher.update(view)
                except BaseException as e:  # noqa: BLE001 - raised in the writer's thread
                    self._failure = e
            self._free.put(buffer)


def _sync_file_range():
    """libc's ``sync_file_range`` (Linux), or None where the C library has none."""
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    return function


_SYNC_FILE_RANGE = _sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing ``length`` bytes of ``fd`` from ``offset`` to disk, without
    waiting for them, so that the fsync that makes the file durable finds little left to do.
    Only a head start: where the call is missing or fails, the fsync does all of it."""
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


class RangeReader:
    """read() over ``length`` bytes of an open file from ``first``."""

    def __init__(self, file, first: int, length: int):
        file.seek(first)
        self.file, self.left = file, length

    def read(self, size: int) -> bytes:
        data = self.file.read(min(size, self.left))
        self.left -= len(data)
        return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

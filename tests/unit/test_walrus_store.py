"""walrus.store: atomic writes, unicode keys, listings, crash sweep."""

import hashlib
import io
import os
import time

import pytest

from walrus import store as st
from walrus.store import WalrusStore, key_successor


@pytest.fixture
def store(tmp_path):
    return WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")


def put(store, bucket, key, data=b"x", **kw):
    return store.put_object(bucket, key, io.BytesIO(data), len(data), **kw)


def files(store, bucket):
    """The bucket directory's files, once the store has removed the ones it let go of."""
    store.removals.wait()
    return sorted(os.listdir(store.root / bucket))


def big(text: bytes) -> bytes:
    """``text`` repeated past the inline limit, so the object is a file of its own."""
    return text * (st.INLINE_MAX // len(text) + 1)


def blobs(store) -> int:
    return store.db.execute("SELECT count(*) FROM blobs").fetchone()[0]


def test_put_get_replace_delete_keeps_one_file(store):
    store.create_bucket("b1", "111")
    info = put(store, "b1", "k", big(b"hello"))
    assert info.etag == '"%s"' % hashlib.md5(big(b"hello")).hexdigest()
    assert info.size == len(big(b"hello"))
    assert len(files(store, "b1")) == 1
    put(store, "b1", "k", big(b"world!"), metadata={"a": "1"}, content_type="text/plain")
    assert len(files(store, "b1")) == 1
    info, f = store.open_object("b1", "k")
    with f:
        assert f.read() == big(b"world!")
    assert info.metadata == {"a": "1"} and info.content_type == "text/plain"
    store.delete_object("b1", "k")
    store.delete_object("b1", "k")  # idempotent
    assert files(store, "b1") == []
    with pytest.raises(st.NoSuchKey):
        store.head_object("b1", "k")


def test_a_replaced_file_is_removed_after_the_answer_and_never_under_a_reader(store, tmp_path):
    store.create_bucket("b1", "111")
    put(store, "b1", "k", big(b"old"))
    (old_file,) = files(store, "b1")
    _, reader = store.open_object("b1", "k")
    put(store, "b1", "k", big(b"new"))
    store.removals.wait()
    assert old_file not in files(store, "b1")
    with reader:
        assert reader.read() == big(b"old")  # opened before the replace: still whole
    # A removal the process did not get to (a crash after the commit) is the sweep's at start.
    store.removals.remove([store.root / "b1" / "not-there"])  # already gone: skipped quietly
    (store.root / "b1" / ("f" * 32)).write_bytes(big(b"old"))
    reopened = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    assert len(files(reopened, "b1")) == 1
    _, f = reopened.open_object("b1", "k")
    with f:
        assert f.read() == big(b"new")


def test_the_remover_thread_ends_when_idle_and_a_later_removal_starts_another(store):
    store.removals.IDLE = 0.05
    first, second = store.root / "first", store.root / "second"
    for path in (first, second):
        path.write_bytes(b"x")
    store.removals.remove([first])
    store.removals.wait()
    deadline = time.monotonic() + 5
    while store.removals._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.removals._thread is None and not first.exists()
    store.removals.remove([second])
    store.removals.wait()
    assert not second.exists()


def test_the_remover_thread_yields_the_cpu_to_requests(store):
    (store.root / "gone").write_bytes(b"x")
    store.removals.remove([store.root / "gone"])
    store.removals.wait()
    tid = store.removals._thread.native_id
    nice = int(open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()[16])
    assert nice == store.removals.NICE == 10 and os.getpriority(os.PRIO_PROCESS, 0) < nice


@pytest.mark.parametrize("size", ["inline", "file"])
def test_failed_verify_stores_nothing_and_keeps_old(store, size):
    store.create_bucket("b1", "111")
    shaped = (lambda b: b) if size == "inline" else big
    put(store, "b1", "k", shaped(b"old"))

    def refuse(digests):
        raise ValueError("bad digest")

    with pytest.raises(ValueError):
        put(store, "b1", "k", shaped(b"new"), verify=refuse)
    info, f = store.open_object("b1", "k")
    with f:
        assert f.read() == shaped(b"old")
    assert (len(files(store, "b1")), blobs(store)) == ((0, 1) if size == "inline" else (1, 0))


def test_small_objects_live_inline_and_swap_with_files(store):
    store.create_bucket("b1", "111")
    put(store, "b1", "k", b"small")
    assert (files(store, "b1"), blobs(store)) == ([], 1)
    put(store, "b1", "k", big(b"large"))
    assert (len(files(store, "b1")), blobs(store)) == (1, 0)
    put(store, "b1", "k", b"small again")
    assert (files(store, "b1"), blobs(store)) == ([], 1)
    info, f = store.open_object("b1", "k")
    with f:
        assert f.read() == b"small again" and info.size == 11
    store.delete_object("b1", "k")
    assert (files(store, "b1"), blobs(store)) == ([], 0)


def test_short_body_is_incomplete(store):
    store.create_bucket("b1", "111")
    with pytest.raises(st.IncompleteBody):
        store.put_object("b1", "k", io.BytesIO(b"abc"), 10)
    assert files(store, "b1") == []


def test_unicode_and_pathlike_keys_never_touch_paths(store):
    store.create_bucket("b1", "111")
    keys = ["../../etc/passwd", "a/b/c", "with space", "ünï/cødé ☃", "/leading", "x" * 1000]
    for key in keys:
        put(store, "b1", key, key.encode())
    for key in keys:
        _, f = store.open_object("b1", key)
        with f:
            assert f.read() == key.encode()
    assert all(len(name) == 32 for name in files(store, "b1"))
    assert not (store.root.parent / "etc").exists()


def test_buckets(store):
    store.create_bucket("b1", "111")
    with pytest.raises(st.BucketExists) as exc:
        store.create_bucket("b1", "222")
    assert exc.value.owner == "111"
    store.create_bucket("a1", "111")
    store.create_bucket("c1", "222")
    assert [b.name for b in store.list_buckets("111")] == ["a1", "b1"]
    put(store, "b1", "k")
    with pytest.raises(st.BucketNotEmpty):
        store.delete_bucket("b1")
    store.delete_object("b1", "k")
    store.delete_bucket("b1")
    assert not (store.root / "b1").exists()
    with pytest.raises(st.NoSuchBucket):
        store.delete_bucket("b1")
    with pytest.raises(st.NoSuchBucket):
        put(store, "nope", "k")
    with pytest.raises(st.NoSuchBucket):  # staged as a file: the bucket's directory is not there
        store.write_temp("nope", io.BytesIO(b"x" * (st.INLINE_MAX + 1)), st.INLINE_MAX + 1)


def test_listing_is_utf8_byte_order(store):
    store.create_bucket("b1", "111")
    keys = ["b", "a", "\u00e9", "\U0001f600", "\uffff", "Z", "a/b", "a-b"]
    for key in keys:
        put(store, "b1", key)
    got = [o.key for o in store.list_objects("b1").contents]
    assert got == sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.fixture
def many(store):
    store.create_bucket("big", "111")
    keys = []
    for d in range(10):
        for f in range(300):
            keys.append(f"dir{d}/file{f:04d}")
    keys += [f"top{i}" for i in range(50)] + ["dir3/sub/deep", "dir3/sub/deeper/x"]
    for key in keys:
        put(store, "big", key)
    return sorted(keys, key=lambda k: k.encode())


def page_all(store, **kw):
    out, after = [], ""
    while True:
        listing = store.list_objects("big", start_after=after, **kw)
        out += sorted([o.key for o in listing.contents] + listing.common_prefixes,
                      key=lambda k: k.encode())
        if not listing.is_truncated:
            return out
        assert len(listing) == kw.get("max_keys", 1000)
        after = listing.last


def test_pagination_over_thousands(store, many):
    assert page_all(store, max_keys=137) == many
    assert page_all(store, max_keys=137, prefix="dir3/") == [k for k in many if k.startswith("dir3/")]


def test_delimiter_rolls_up(store, many):
    listing = store.list_objects("big", delimiter="/")
    assert listing.common_prefixes == [f"dir{d}/" for d in range(10)]
    assert [o.key for o in listing.contents] == sorted(f"top{i}" for i in range(50))
    listing = store.list_objects("big", prefix="dir3/", delimiter="/", max_keys=5000)
    assert listing.common_prefixes == ["dir3/sub/"]
    assert len(listing.contents) == 300
    # paging through a delimited listing: a common prefix marker skips its keys
    assert page_all(store, delimiter="/", max_keys=3) == \
        [f"dir{d}/" for d in range(10)] + sorted(f"top{i}" for i in range(50))


def test_key_successor():
    assert key_successor("a/") == "a0"
    assert key_successor("") is None
    assert key_successor("a\U0010ffff") == "b"
    assert key_successor("\ud7ff") == "\ue000"


def test_sweep_removes_crash_leftovers(tmp_path):
    store = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    store.create_bucket("b1", "111")
    put(store, "b1", "k", big(b"kept"))
    put(store, "b1", "small", b"inline")
    store.db.execute("INSERT INTO blobs (data) VALUES (x'00')")
    (store.root / "b1" / ".tmp-deadbeef").write_bytes(b"partial")
    (store.root / "b1" / ("0" * 32)).write_bytes(b"renamed, never committed")
    (store.root / "gone").mkdir()  # a deleted bucket's directory
    (store.root / "lost+found").mkdir()  # the filesystem's, when the storage dir is a mount
    (store.root / "b1" / "admin-notes").mkdir()
    reopened = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    assert len(files(reopened, "b1")) == 2  # the object's file and the admin's folder
    assert not (reopened.root / "gone").exists()
    assert (reopened.root / "lost+found").is_dir() and (reopened.root / "b1" / "admin-notes").is_dir()
    assert blobs(reopened) == 1
    _, f = reopened.open_object("b1", "k")
    with f:
        assert f.read() == big(b"kept")


def read(store, bucket, key) -> tuple:
    info, f = store.open_object(bucket, key)
    with f:
        return info.etag, f.read()


def etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def test_an_inline_rowid_that_comes_again_is_read_with_its_own_object(store):
    store.create_bucket("b1", "111")
    first = put(store, "b1", "a", b"first").file
    store.delete_object("b1", "a")
    assert put(store, "b1", "b", b"second").file == first  # SQLite hands the newest rowid out again
    assert read(store, "b1", "b") == (etag(b"second"), b"second")
    with pytest.raises(st.NoSuchKey):
        store.open_object("b1", "a")
    put(store, "b1", "b", b"third")  # a replace frees the old row and takes the same rowid again
    assert read(store, "b1", "b") == (etag(b"third"), b"third") and blobs(store) == 1


def test_usage_seqs_never_repeat_once_the_outbox_is_drained(tmp_path):
    store = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    store.create_bucket("b1", "111")
    put(store, "b1", "k", b"x")
    seqs = [e["seq"] for e in store.pending_usage()]
    store.forget_usage(seqs[-1])
    store.forget_usage(1)  # an older acknowledgement does not lower the mark
    assert store.pending_usage() == []
    reopened = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    put(reopened, "b1", "k2", b"y")
    assert [e["seq"] for e in reopened.pending_usage()] == [seqs[-1] + 1]


def test_migration_4_keys_blobs_by_rowid_and_keeps_the_usage_high_water_mark(tmp_path):
    """A database of the third schema: inline blobs under random text ids, an outbox drained
    after seq 7 (AUTOINCREMENT's sqlite_sequence remembers it) with one event left at 9."""
    old = st.Store(tmp_path / "walrus.db", st.MIGRATIONS[:3])
    old.db.execute("INSERT INTO buckets (name, owner, created) VALUES ('b1', '111', 0)")
    for key, blob in (("a", "inline:9f1c"), ("b", "inline:03aa")):
        old.db.execute("INSERT INTO blobs (id, data) VALUES (?, ?)", [blob, key.encode() * 3])
        old.db.execute("INSERT INTO objects (bucket, key, file, size, etag, content_type, metadata, headers, "
                       "last_modified, owner) VALUES ('b1', ?, ?, 3, ?, 'text/plain', '{}', '{}', 0, '111')",
                       [key, blob, etag(key.encode() * 3)])
    old.db.execute("INSERT INTO usage_outbox (seq, account_id, time, stored_delta) VALUES (7, '111', 0, 1)")
    old.db.execute("DELETE FROM usage_outbox")
    old.db.execute("INSERT INTO usage_outbox (seq, account_id, time, stored_delta) VALUES (5, '111', 0, 2)")
    old.db.conn.commit()
    store = WalrusStore(tmp_path / "bukkits", tmp_path / "walrus.db")
    assert read(store, "b1", "a") == (etag(b"aaa"), b"aaa") and read(store, "b1", "b") == (etag(b"bbb"), b"bbb")
    assert {store.head_object("b1", k).file for k in "ab"} == {"inline:1", "inline:2"}
    assert [e["seq"] for e in store.pending_usage()] == [5]
    put(store, "b1", "c", b"c")
    assert [e["seq"] for e in store.pending_usage()] == [5, 8]
    assert store.db.execute("SELECT count(*) FROM sqlite_master WHERE sql LIKE '%AUTOINCREMENT%'").fetchone()[0] == 0


def test_the_kept_bucket_rows_follow_every_change_of_a_bucket(store):
    store.create_bucket("kept", "111")
    assert store.get_bucket("kept").owner == "111"
    grants = {"owner": "111", "grants": [{"grantee": {"type": "Group", "uri": "AllUsers"}, "permission": "READ"}]}
    store.set_bucket_acl("kept", grants)
    assert store.get_bucket("kept").acl == grants
    store.delete_bucket("kept")
    with pytest.raises(st.NoSuchBucket):
        store.get_bucket("kept")
    store.create_bucket("kept", "222")
    assert store.get_bucket("kept") == st.Bucket("kept", "222", store.get_bucket("kept").created)


def test_a_bucket_row_read_while_a_write_was_under_way_is_not_kept():
    kept = st._KeptBuckets()
    row = st.Bucket("b", "111", 0.0)
    token = kept.reading()
    kept.forget("b")  # a write of b ended after the row was read
    kept.keep(row, token)
    assert kept.get("b") is None
    kept.keep(row, kept.reading())
    assert kept.get("b") is row

"""eucacore.db.Store: WAL, synchronous=FULL, migrations once, atomic(), threads, kill -9."""

import os
import signal
import subprocess
import sys
import threading

import pytest

from eucacore.db import Store


def _v1(db):
    db["items"].create({"id": int, "name": str}, pk="id")


def _v2(db):
    db["items"].add_column("note", str)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "sub" / "state.db", [_v1])
    yield s
    s.close()


def test_creates_the_file_in_wal_mode(store):
    assert store.path.exists()
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_synchronous_full_and_foreign_keys(store):
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_migrations_run_once_each_across_reopen(tmp_path):
    calls = []

    def v1(db):
        calls.append(1)
        _v1(db)

    def v2(db):
        calls.append(2)
        _v2(db)

    path = tmp_path / "m.db"
    s = Store(path, [v1])
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == 1
    s.close()
    s = Store(path, [v1, v2])
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "note" in s.db["items"].columns_dict
    s.close()
    s = Store(path, [v1, v2])
    s.close()
    assert calls == [1, 2]


def test_failed_migration_leaves_version_and_schema_unchanged(tmp_path):
    def broken(db):
        db["other"].create({"id": int}, pk="id")
        raise RuntimeError("step failed")

    path = tmp_path / "m.db"
    Store(path, [_v1]).close()
    with pytest.raises(RuntimeError):
        Store(path, [_v1, broken])
    s = Store(path, [_v1])
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "other" not in s.db.table_names()
    s.close()


def test_atomic_commits(store):
    with store.atomic():
        store.db["items"].insert({"id": 1, "name": "a"})
    other = Store(store.path, [_v1])  # a second connection sees the commit
    try:
        assert [r["name"] for r in other.db["items"].rows] == ["a"]
    finally:
        other.close()


def test_atomic_rolls_back_on_exception(store):
    with store.atomic():
        store.db["items"].insert({"id": 1, "name": "kept"})
    with pytest.raises(ZeroDivisionError):
        with store.atomic():
            store.db["items"].insert({"id": 2, "name": "lost"})
            store.db["items"].update(1, {"name": "changed"})
            1 / 0
    assert list(store.db["items"].rows) == [{"id": 1, "name": "kept"}]


def _in_threads(target, n):
    errors = []

    def run(i):
        try:
            target(i)
        except Exception as e:  # reported by the caller; a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


def test_each_thread_has_its_own_connection(store):
    conns = []
    main_conn = store.db.conn
    lock = threading.Lock()

    def work(n):
        with lock:  # one writer at a time: this test is about connections, not contention
            with store.atomic():
                store.db["items"].insert({"id": n, "name": f"t{n}"})
        conns.append(store.db.conn)  # kept alive, so ids cannot be reused
        assert store.db["items"].get(n)["name"] == f"t{n}"

    assert _in_threads(work, 4) == []
    assert len({id(c) for c in conns} | {id(main_conn)}) == 5
    assert store.db["items"].count == 4


def test_concurrent_writers_wait_instead_of_failing(store):
    """Six threads writing at once: each transaction waits for the others (timeout=30),
    none fails with "database is locked"."""

    def work(n):
        for i in range(20):
            with store.atomic():
                store.db["items"].insert({"id": n * 100 + i, "name": f"t{n}"})

    errors = _in_threads(work, 6)
    assert errors == [], f"{len(errors)} writer threads failed: {errors[0]!r}"
    assert store.db["items"].count == 120


def test_close_then_use_reconnects(store):
    store.db["items"].insert({"id": 1, "name": "a"})
    store.close()
    assert store.db["items"].count == 1


_CHILD = """
import sys, time
from eucacore.db import Store

def v1(db):
    db["items"].create({"id": int, "name": str}, pk="id")

s = Store(sys.argv[1], [v1])
for i in range(50):
    with s.atomic():
        s.db["items"].insert({"id": i, "name": "row%d" % i})
print("committed", flush=True)
time.sleep(60)
"""


def test_committed_rows_survive_kill_9(tmp_path):
    path = tmp_path / "crash.db"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "committed", child.stderr.read() if child.poll() is not None else line
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    # The child never closed its connection: the rows live in the WAL, not yet checkpointed.
    s = Store(path, [_v1])
    try:
        assert s.db["items"].count == 50
        assert s.db["items"].get(49)["name"] == "row49"
    finally:
        s.close()

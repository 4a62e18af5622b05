"""walrus.groupcommit over a real SQLite database (WAL, synchronous=FULL), with real threads."""

import contextlib
import sqlite3
import threading
import time

import pytest

from eucacore.db import Store
from walrus.groupcommit import GroupCommit


def _schema(db):
    db.execute("CREATE TABLE rows (name TEXT PRIMARY KEY)")


class Counted:
    """A write transaction on the thread's connection (as WalrusStore._write), counting commits."""

    def __init__(self, store: Store):
        self.store, self.commits = store, 0

    @contextlib.contextmanager
    def __call__(self):
        conn = self.store.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
            self.commits += 1
        except BaseException:
            conn.rollback()
            raise


@pytest.fixture
def db(tmp_path):
    store = Store(tmp_path / "g.db", [_schema])
    return store, Counted(store), tmp_path / "g.db"


def insert(name: str):
    def work(conn):
        conn.execute("INSERT INTO rows (name) VALUES (?)", [name])
        return name
    return work


def committed(path) -> set[str]:
    """The rows another connection sees: only what was committed."""
    with contextlib.closing(sqlite3.connect(path)) as other:
        return {name for (name,) in other.execute("SELECT name FROM rows")}


def run_while_first_holds(committer: GroupCommit, works: list, ready_to_commit) -> list:
    """Run ``works`` in threads while the first one's work is held until all others wait to
    commit; returns each thread's outcome (result or exception)."""
    outcomes = [None] * len(works)
    release = threading.Event()

    def held(conn):
        assert release.wait(10)
        return works[0](conn)

    def call(i, work):
        try:
            outcomes[i] = committer.run(work)
        except Exception as error:  # the outcome the test checks
            outcomes[i] = error

    threads = [threading.Thread(target=call, args=(i, held if i == 0 else w)) for i, w in enumerate(works)]
    threads[0].start()
    time.sleep(0.05)  # the first takes the lead
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 10
    while not ready_to_commit() and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for t in threads:
        t.join(10)
    return outcomes


def test_writers_arriving_during_a_commit_share_the_next_one(db):
    store, begin, path = db
    committer = GroupCommit(begin)
    names = [f"n{i}" for i in range(12)]
    outcomes = run_while_first_holds(committer, [insert(n) for n in names],
                                     lambda: len(committer._waiting) == len(names) - 1)
    assert outcomes == names
    assert committed(path) == set(names)
    assert begin.commits == 2  # the first alone, then the eleven that waited for it together


def test_a_failing_writer_is_undone_alone_and_gets_its_error(db):
    store, begin, path = db
    committer = GroupCommit(begin)

    def half_then_fail(conn):
        conn.execute("INSERT INTO rows (name) VALUES ('half')")
        raise ValueError("refused")

    works = [insert("first"), insert("a"), half_then_fail, insert("b")]
    outcomes = run_while_first_holds(committer, works, lambda: len(committer._waiting) == 3)
    assert outcomes[:2] == ["first", "a"] and outcomes[3] == "b"
    assert isinstance(outcomes[2], ValueError)
    assert committed(path) == {"first", "a", "b"}


def test_a_failed_commit_fails_every_writer_of_the_batch(db):
    store, begin, path = db
    committer = GroupCommit(begin)
    # A deferred foreign key is checked at COMMIT: the whole second batch fails there.
    store.db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store.db.execute("CREATE TABLE child (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")

    def orphan(conn):
        conn.execute("INSERT INTO child (parent) VALUES (42)")

    outcomes = run_while_first_holds(committer, [insert("x"), insert("y"), orphan],
                                     lambda: len(committer._waiting) == 2)
    assert outcomes[0] == "x"
    assert all(isinstance(o, sqlite3.IntegrityError) for o in outcomes[1:])
    assert committed(path) == {"x"}


def test_a_lone_writer_returns_after_its_commit(db):
    store, begin, path = db
    committer = GroupCommit(begin)
    assert committer.run(insert("solo")) == "solo"
    assert committed(path) == {"solo"}
    with pytest.raises(sqlite3.IntegrityError):
        committer.run(insert("solo"))
    assert committed(path) == {"solo"} and begin.commits == 1

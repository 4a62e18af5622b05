"""Each daemon's state: one SQLite database, WAL mode, created and migrated by the daemon.

Every write commits before the caller is answered, and ``synchronous=FULL`` makes a
commit durable, so whatever a daemon acknowledged survives ``kill -9``.
"""

import contextlib
import secrets
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlite_utils

Migration = Callable[[sqlite_utils.Database], None]


class Store:
    """A daemon's database: one connection per thread, schema migrated on open.

    ``migrations`` is the daemon's ordered list of schema steps; step N runs once,
    when the database's ``user_version`` is below N+1.
    """

    def __init__(self, path: str | Path, migrations: Sequence[Migration]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate(migrations)

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite_utils.Database(self._connect())
        return db

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        db = self.db
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, step in enumerate(migrations, start=1):
            if number > version:
                with self.atomic():
                    step(db)
                    db.execute(f"PRAGMA user_version={number}")

    @contextlib.contextmanager
    def atomic(self):
        """A transaction on this thread's connection: all of it commits, or none of it.

        It takes the write lock at once (``BEGIN IMMEDIATE``): a transaction that read
        first and wrote later could otherwise fail at once with "database is locked"
        when another connection committed in between, instead of waiting its turn.
        Nested use is a savepoint.
        """
        conn = self.db.conn
        if conn.in_transaction:
            name = f"sp_{secrets.token_hex(8)}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield self.db
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

"""Group commit: the SQLite transactions of concurrent writers committed together, one fsync for all.

Why: each small PUT's commit costs a write transaction of its own, its WAL pages and an
fsync, and with many PUTs at once the writers also queue on SQLite's write lock.  Here the
writers that arrive while a commit is under way wait; the first of them then runs all their
work in one transaction, each in a savepoint of its own (so one that fails is undone alone),
and commits once.  Durability is unchanged: a writer returns only after the COMMIT that
holds its change has returned, which with ``synchronous=FULL`` means it is on disk.
"""

import threading
from collections.abc import Callable


class _Writer:
    """One caller of :meth:`GroupCommit.run`: its work, its outcome and its wake-up."""

    __slots__ = ("work", "woken", "leads", "result", "error")

    def __init__(self, work: Callable):
        self.work, self.leads = work, False
        self.woken: threading.Event | None = None  # only a writer that has to wait needs one
        self.result = self.error = None


class GroupCommit:
    """``run(work)`` calls ``work(conn)`` in a write transaction that it may share with the work of
    concurrent callers, and returns its result (or raises its error) once that transaction is
    committed.  ``begin`` is a context manager giving a connection inside a write transaction,
    committed when the block ends and rolled back when it raises (``WalrusStore._write``)."""

    def __init__(self, begin: Callable):
        self._begin = begin
        self._lock = threading.Lock()
        self._waiting: list[_Writer] = []
        self._busy = False

    def run(self, work: Callable):
        writer = _Writer(work)
        with self._lock:
            self._waiting.append(writer)
            if self._busy:
                writer.woken = threading.Event()
            else:
                self._busy = writer.leads = True
        if not writer.leads:
            writer.woken.wait()  # done by another's commit, or made the next leader
        if writer.leads:
            self._lead()
        if writer.error is not None:
            raise writer.error
        return writer.result

    def _lead(self) -> None:
        """Commit everything waiting now, wake its writers and hand on to the next one waiting."""
        with self._lock:
            batch, self._waiting = self._waiting, []
        try:
            self._commit(batch)
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting[0].leads = True
                    self._waiting[0].woken.set()
                else:
                    self._busy = False
            for writer in batch:
                writer.leads = False
                if writer.woken is not None:  # the leader itself did not wait
                    writer.woken.set()

    def _commit(self, batch: list[_Writer]) -> None:
        try:
            with self._begin() as conn:
                if len(batch) == 1:  # alone: no savepoint; its error rolls the transaction back
                    batch[0].result = batch[0].work(conn)
                    return
                for writer in batch:
                    self._run_in_savepoint(conn, writer)
        except Exception as error:  # the transaction as a whole failed: so did every writer in it
            for writer in batch:
                writer.result, writer.error = None, writer.error or error

    @staticmethod
    def _run_in_savepoint(conn, writer: _Writer) -> None:
        conn.execute("SAVEPOINT grouped")
        try:
            writer.result = writer.work(conn)
        except Exception as error:
            conn.execute("ROLLBACK TO grouped")
            writer.error = error
        finally:
            conn.execute("RELEASE grouped")

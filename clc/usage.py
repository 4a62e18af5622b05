"""Usage metering for billing: recorded as things happen, reported per account for a time range.

Instances, volumes and snapshots are intervals (one row per resource life, ``end`` NULL while
it lives); S3 usage is events reported by each Walrus.  Reports integrate both over
``[start, end)``; anything still alive counts up to ``min(end, now)``.
"""

import csv
import io
import json

from eucacore import ids
from eucacore.db import Store

#: The report types, in the order a caller lists them.
KINDS = ("instance", "volume", "snapshot", "s3")

#: Column order of each report type, for CSV and for readers of the JSON rows.
COLUMNS: dict[str, list[str]] = {
    "instance": ["account_id", "account_name", "instance_type", "instances", "hours"],
    "volume": ["account_id", "account_name", "count", "gib_hours"],
    "snapshot": ["account_id", "account_name", "count", "gib_hours"],
    "s3": ["account_id", "account_name", "storage_gib_hours", "bytes_in", "bytes_out", "stored_bytes_at_end"],
}

#: The kinds recorded as intervals.
INTERVAL_KINDS = ("instance", "volume", "snapshot")

_HOUR = 3600.0
_GIB = float(2**30)


class UsageLog:
    """Records resource lives and Walrus' S3 events in the CLC's store.

    Every method runs in ``store.atomic()``, so it joins a caller's transaction when nested.
    ``at`` defaults to the clock (``ids.now()``).
    """

    def __init__(self, store: Store):
        self.store = store

    def started(self, account_id: str, kind: str, resource_id: str, subtype: str = "",
                quantity: float = 1.0, at: float | None = None) -> None:
        """Opens ``resource_id``'s interval; does nothing when one is already open."""
        _check_interval_kind(kind)
        with self.store.atomic() as db:
            if self._open(kind, resource_id) is None:
                db["usage_intervals"].insert({"account_id": account_id, "kind": kind, "resource_id": resource_id,
                                              "subtype": subtype, "quantity": float(quantity),
                                              "start": _at(at), "end": None})

    def ended(self, kind: str, resource_id: str, at: float | None = None) -> None:
        """Closes ``resource_id``'s open interval; does nothing when none is open."""
        _check_interval_kind(kind)
        with self.store.atomic() as db:
            db.execute('UPDATE usage_intervals SET "end" = ? WHERE kind = ? AND resource_id = ? AND "end" IS NULL',
                       [_at(at), kind, resource_id])

    def changed(self, kind: str, resource_id: str, subtype: str | None = None,
                quantity: float | None = None, at: float | None = None) -> None:
        """Closes the open interval and opens one with the new subtype and/or quantity, keeping the rest.

        Does nothing when no interval is open or nothing would change.
        """
        _check_interval_kind(kind)
        at = _at(at)
        with self.store.atomic() as db:
            row = self._open(kind, resource_id)
            if row is None:
                return
            new_subtype = row["subtype"] if subtype is None else subtype
            new_quantity = row["quantity"] if quantity is None else float(quantity)
            if (new_subtype, new_quantity) == (row["subtype"], row["quantity"]):
                return
            db["usage_intervals"].update(row["id"], {"end": at})
            db["usage_intervals"].insert({"account_id": row["account_id"], "kind": kind, "resource_id": resource_id,
                                          "subtype": new_subtype, "quantity": new_quantity,
                                          "start": at, "end": None})

    def resized(self, kind: str, resource_id: str, quantity: float, at: float | None = None) -> None:
        """A volume or snapshot's new size: ``changed`` with only the quantity."""
        self.changed(kind, resource_id, quantity=quantity, at=at)

    def record_s3(self, source: str, events: list[dict]) -> int:
        """Stores a Walrus' events (a (source, seq) already stored counts once).

        Each event is {seq, account_id, time, stored_delta, buckets_delta, bytes_in, bytes_out}; the last four
        default to 0.  Returns the highest seq stored for ``source`` (0 if none), which the
        reporter may acknowledge: it sends its events in seq order.
        """
        with self.store.atomic() as db:
            for event in events:
                try:
                    values = [source, int(event["seq"]), event["account_id"], float(event["time"]),
                              int(event.get("stored_delta", 0)), int(event.get("buckets_delta", 0)),
                              int(event.get("bytes_in", 0)),
                              int(event.get("bytes_out", 0))]
                except KeyError as e:
                    raise ValueError(f"S3 usage event from {source!r} lacks {e.args[0]!r}") from None
                db.execute("INSERT OR IGNORE INTO usage_s3 (source, seq, account_id, time, stored_delta, "
                           "buckets_delta, bytes_in, bytes_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", values)
            return db.execute("SELECT COALESCE(MAX(seq), 0) FROM usage_s3 WHERE source = ?", [source]).fetchone()[0]

    def _open(self, kind: str, resource_id: str) -> dict | None:
        rows = list(self.store.db["usage_intervals"].rows_where(
            'kind = ? AND resource_id = ? AND "end" IS NULL', [kind, resource_id], order_by="id DESC", limit=1))
        return rows[0] if rows else None


def report(store: Store, kind: str, start: float, end: float, account_id: str | None = None,
           now: float | None = None) -> list[dict]:
    """Usage of ``kind`` over ``[start, end)``, one row per account (and instance type), in ``COLUMNS[kind]``.

    Sorted by account name, then type; accounts without usage in the range are left out.
    Raises ValueError for an unknown kind or an empty range.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown usage type {kind!r}: expected one of {', '.join(KINDS)}")
    if end <= start:
        raise ValueError(f"usage range is empty: end {end} is not after start {start}")
    # Nothing is counted past now; a window wholly in the future counts nothing.
    stop = max(start, min(end, ids.now() if now is None else now))
    if kind == "s3":
        rows = _s3_report(store, start, end, stop, account_id)
    else:
        rows = _interval_report(store, kind, start, stop, account_id)
    return sorted(rows, key=lambda r: (r["account_name"], r.get("instance_type", ""), r["account_id"]))


def _interval_report(store: Store, kind: str, start: float, stop: float, account_id: str | None) -> list[dict]:
    # Overlap of an interval with [start, stop): an open one lives until stop.
    overlap = 'MIN(COALESCE(u."end", :stop), :stop) - MAX(u.start, :start)'
    sql = (f"SELECT u.account_id, COALESCE(a.name, '') AS account_name, u.subtype, "
           f"COUNT(DISTINCT u.resource_id) AS resources, SUM(u.quantity * ({overlap})) AS used "
           f"FROM usage_intervals u LEFT JOIN accounts a ON a.account_id = u.account_id "
           f"WHERE u.kind = :kind AND ({overlap}) > 0 AND (:account IS NULL OR u.account_id = :account) "
           f"GROUP BY u.account_id, u.subtype")
    params = {"kind": kind, "start": start, "stop": stop, "account": account_id}
    if kind == "instance":
        return [{"account_id": r["account_id"], "account_name": r["account_name"], "instance_type": r["subtype"],
                 "instances": r["resources"], "hours": round(r["used"] / _HOUR, 4)}
                for r in store.db.query(sql, params)]
    by_account: dict[str, dict] = {}
    for r in store.db.query(sql, params):  # sizes carry no subtype; one row per account anyway
        row = by_account.setdefault(r["account_id"], {"account_id": r["account_id"],
                                                      "account_name": r["account_name"],
                                                      "count": 0, "gib_hours": 0.0})
        row["count"] += r["resources"]
        row["gib_hours"] += r["used"] / _HOUR
    for row in by_account.values():
        row["gib_hours"] = round(row["gib_hours"], 4)
    return list(by_account.values())


def _s3_report(store: Store, start: float, end: float, stop: float, account_id: str | None) -> list[dict]:
    # The stored level is a step function; each delta before stop adds delta * (time it held
    # within [start, stop)), which also carries in the level reached before start.
    sql = ("SELECT s.account_id, COALESCE(a.name, '') AS account_name, "
           "SUM(CASE WHEN s.time < :stop THEN s.stored_delta * (:stop - MAX(s.time, :start)) ELSE 0 END) "
           "  AS byte_seconds, "
           "SUM(CASE WHEN s.time >= :start THEN s.bytes_in ELSE 0 END) AS bytes_in, "
           "SUM(CASE WHEN s.time >= :start THEN s.bytes_out ELSE 0 END) AS bytes_out, "
           "SUM(s.stored_delta) AS stored_bytes_at_end "
           "FROM usage_s3 s LEFT JOIN accounts a ON a.account_id = s.account_id "
           "WHERE s.time < :end AND (:account IS NULL OR s.account_id = :account) "
           "GROUP BY s.account_id")
    rows = []
    for r in store.db.query(sql, {"start": start, "end": end, "stop": stop, "account": account_id}):
        row = {"account_id": r["account_id"], "account_name": r["account_name"],
               "storage_gib_hours": round(r["byte_seconds"] / _GIB / _HOUR, 4),
               "bytes_in": r["bytes_in"], "bytes_out": r["bytes_out"],
               "stored_bytes_at_end": r["stored_bytes_at_end"]}
        if row["storage_gib_hours"] or row["bytes_in"] or row["bytes_out"] or row["stored_bytes_at_end"]:
            rows.append(row)
    return rows


def to_csv(rows: list[dict], columns: list[str]) -> str:
    """The rows as CSV: a header line of ``columns``, then one line per row in that order."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_json(kind: str, start: float, end: float, rows: list[dict]) -> str:
    """The report as a JSON object {type, start, end (ISO 8601 UTC), rows}, indented by 2."""
    return json.dumps({"type": kind, "start": ids.isoformat(start), "end": ids.isoformat(end), "rows": rows},
                      indent=2)


def _check_interval_kind(kind: str) -> None:
    if kind not in INTERVAL_KINDS:
        raise ValueError(f"unknown usage kind {kind!r}: expected one of {', '.join(INTERVAL_KINDS)}")


def _at(at: float | None) -> float:
    return ids.now() if at is None else float(at)

"""clc.usage: intervals and S3 events recorded, reports integrated over a range, CSV and JSON."""

import csv
import io
import json

import pytest

from clc import store as clc_store
from clc import usage
from eucacore import ids
from eucacore.db import Store

H = 3600.0
GIB = 2**30
T0 = 1_700_006_400.0  # 2023-11-15T00:00:00Z
DAY = 24 * H
LATER = T0 + 30 * DAY  # "now" for reports: well after every window


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "clc.db", clc_store.MIGRATIONS)
    with s.atomic() as db:
        db["accounts"].insert_all([{"account_id": "111", "name": "alice", "created": T0},
                                   {"account_id": "222", "name": "bob", "created": T0}])
    yield s
    s.close()


@pytest.fixture
def log(store):
    return usage.UsageLog(store)


def report(store, kind, start=T0, end=T0 + DAY, **kw):
    kw.setdefault("now", LATER)
    return usage.report(store, kind, start, end, **kw)


def s3_event(seq, time, account_id="111", stored_delta=0, bytes_in=0, bytes_out=0):
    return {"seq": seq, "account_id": account_id, "time": time, "stored_delta": stored_delta,
            "bytes_in": bytes_in, "bytes_out": bytes_out}


# -- instances ---------------------------------------------------------------------------------

def test_instance_running_two_hours_inside_the_window(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0 + H)
    log.ended("instance", "i-1", at=T0 + 3 * H)
    assert report(store, "instance") == [{"account_id": "111", "account_name": "alice",
                                          "instance_type": "m1.small", "instances": 1, "hours": 2.0}]


def test_instance_straddling_the_window_start_counts_only_the_overlap(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0 - 5 * H)
    log.ended("instance", "i-1", at=T0 + 1.5 * H)
    assert report(store, "instance")[0]["hours"] == 1.5


def test_instance_straddling_the_window_end_counts_only_the_overlap(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0 + DAY - 0.25 * H)
    log.ended("instance", "i-1", at=T0 + DAY + 4 * H)
    assert report(store, "instance")[0]["hours"] == 0.25


def test_instances_of_two_types_are_separate_rows(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0)
    log.ended("instance", "i-1", at=T0 + H)
    log.started("111", "instance", "i-2", "m1.small", at=T0)
    log.ended("instance", "i-2", at=T0 + 2 * H)
    log.started("111", "instance", "i-3", "c1.medium", at=T0 + H)
    log.ended("instance", "i-3", at=T0 + 4 * H)
    rows = report(store, "instance")
    assert [(r["instance_type"], r["instances"], r["hours"]) for r in rows] == [
        ("c1.medium", 1, 3.0), ("m1.small", 2, 3.0)]


def test_running_instance_counts_up_to_now_or_to_the_window_end(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0 + H)
    assert report(store, "instance", now=T0 + 4 * H)[0]["hours"] == 3.0
    assert report(store, "instance", now=LATER)[0]["hours"] == 23.0


def test_running_instance_defaults_to_the_clock(store, log, monkeypatch):
    monkeypatch.setattr(ids, "now", lambda: T0 + 2 * H)
    log.started("111", "instance", "i-1", "m1.small")
    monkeypatch.setattr(ids, "now", lambda: T0 + 3.5 * H)
    assert usage.report(store, "instance", T0, T0 + DAY)[0]["hours"] == 1.5


def test_started_and_ended_are_idempotent(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0)
    log.started("111", "instance", "i-1", "m1.small", at=T0 + H)
    log.ended("instance", "i-1", at=T0 + 2 * H)
    log.ended("instance", "i-1", at=T0 + 5 * H)
    log.ended("instance", "i-unknown", at=T0 + 5 * H)
    assert store.db["usage_intervals"].count == 1
    assert report(store, "instance")[0]["hours"] == 2.0


def test_changed_instance_type_splits_the_hours(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0)
    log.changed("instance", "i-1", subtype="m1.large", at=T0 + H)
    log.ended("instance", "i-1", at=T0 + 3 * H)
    rows = report(store, "instance")
    assert [(r["instance_type"], r["instances"], r["hours"]) for r in rows] == [
        ("m1.large", 1, 2.0), ("m1.small", 1, 1.0)]


def test_changed_without_an_open_interval_or_a_change_does_nothing(store, log):
    log.changed("instance", "i-none", subtype="m1.large", at=T0)
    log.started("111", "instance", "i-1", "m1.small", at=T0)
    log.changed("instance", "i-1", subtype="m1.small", at=T0 + H)
    assert store.db["usage_intervals"].count == 1


def test_usage_outside_the_window_is_omitted(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0 - 3 * H)
    log.ended("instance", "i-1", at=T0)  # ends exactly at the window start
    log.started("222", "instance", "i-2", "m1.small", at=T0 + DAY)  # starts exactly at its end
    assert report(store, "instance") == []


def test_logging_joins_the_callers_transaction(store, log):
    with pytest.raises(RuntimeError), store.atomic():
        log.started("111", "instance", "i-1", "m1.small", at=T0)
        raise RuntimeError("the caller's write failed")
    assert store.db["usage_intervals"].count == 0


# -- volumes and snapshots ---------------------------------------------------------------------

def test_volume_of_10_gib_for_3_hours_is_30_gib_hours(store, log):
    log.started("111", "volume", "vol-1", quantity=10, at=T0 + H)
    log.ended("volume", "vol-1", at=T0 + 4 * H)
    assert report(store, "volume") == [{"account_id": "111", "account_name": "alice", "count": 1,
                                        "gib_hours": 30.0}]


def test_resized_volume_counts_each_size_for_its_time(store, log):
    log.started("111", "volume", "vol-1", quantity=10, at=T0)
    log.resized("volume", "vol-1", 20, at=T0 + H)
    log.ended("volume", "vol-1", at=T0 + 2 * H)
    assert report(store, "volume") == [{"account_id": "111", "account_name": "alice", "count": 1,
                                        "gib_hours": 30.0}]


def test_snapshots_are_reported_apart_from_volumes(store, log):
    log.started("111", "volume", "vol-1", quantity=10, at=T0)
    log.started("111", "snapshot", "snap-1", quantity=4, at=T0 + 12 * H)
    log.started("111", "snapshot", "snap-2", quantity=1, at=T0 + 23 * H)
    assert report(store, "snapshot") == [{"account_id": "111", "account_name": "alice", "count": 2,
                                          "gib_hours": 49.0}]
    assert report(store, "volume")[0]["gib_hours"] == 240.0


# -- S3 ----------------------------------------------------------------------------------------

def test_s3_storage_is_the_integral_of_the_stored_level(store, log):
    log.record_s3("walrus", [s3_event(1, T0, stored_delta=GIB), s3_event(2, T0 + H, stored_delta=GIB),
                             s3_event(3, T0 + 2 * H, stored_delta=-2 * GIB)])
    assert report(store, "s3", T0, T0 + 3 * H) == [{"account_id": "111", "account_name": "alice",
                                                    "storage_gib_hours": 3.0, "bytes_in": 0, "bytes_out": 0,
                                                    "stored_bytes_at_end": 0}]


def test_s3_level_before_the_window_is_carried_in(store, log):
    log.record_s3("walrus", [s3_event(1, T0 - DAY, stored_delta=2 * GIB),
                             s3_event(2, T0 + H, stored_delta=GIB)])
    row = report(store, "s3", T0, T0 + 2 * H)[0]
    assert row["storage_gib_hours"] == 2 * 1 + 3 * 1  # 2 GiB for an hour, then 3 GiB for one
    assert row["stored_bytes_at_end"] == 3 * GIB


def test_s3_duplicate_events_count_once_and_the_highest_seq_is_returned(store, log):
    batch = [s3_event(1, T0, stored_delta=GIB, bytes_in=GIB), s3_event(2, T0 + H, bytes_out=100)]
    assert log.record_s3("walrus", batch) == 2
    assert log.record_s3("walrus", batch) == 2
    assert log.record_s3("walrus-b", [s3_event(1, T0, bytes_in=5)]) == 1
    assert log.record_s3("walrus-c", []) == 0
    row = report(store, "s3", T0, T0 + 2 * H)[0]
    assert (row["storage_gib_hours"], row["bytes_in"], row["bytes_out"]) == (2.0, GIB + 5, 100)


def test_s3_transfer_counts_only_events_inside_the_window(store, log):
    log.record_s3("walrus", [s3_event(1, T0 - 1, bytes_in=1000, bytes_out=1),
                             s3_event(2, T0, bytes_in=10, bytes_out=20),
                             s3_event(3, T0 + H - 1, bytes_in=30, bytes_out=40),
                             s3_event(4, T0 + H, bytes_in=5000, bytes_out=5000)])
    row = report(store, "s3", T0, T0 + H)[0]
    assert (row["bytes_in"], row["bytes_out"], row["storage_gib_hours"]) == (40, 60, 0.0)


def test_s3_event_without_its_account_is_rejected(log):
    with pytest.raises(ValueError, match="account_id"):
        log.record_s3("walrus", [{"seq": 1, "time": T0}])


# -- accounts, ordering, errors ----------------------------------------------------------------

def test_reports_sort_by_account_name_and_filter_by_account(store, log):
    log.started("222", "instance", "i-b", "m1.small", at=T0)
    log.ended("instance", "i-b", at=T0 + H)
    log.started("111", "instance", "i-a", "m1.small", at=T0)
    log.ended("instance", "i-a", at=T0 + 2 * H)
    log.record_s3("walrus", [s3_event(1, T0, "222", bytes_in=7), s3_event(2, T0, "111", bytes_in=9)])
    assert [r["account_name"] for r in report(store, "instance")] == ["alice", "bob"]
    assert [r["account_name"] for r in report(store, "s3")] == ["alice", "bob"]
    only_bob = report(store, "instance", account_id="222")
    assert [(r["account_id"], r["hours"]) for r in only_bob] == [("222", 1.0)]
    assert [r["bytes_in"] for r in report(store, "s3", account_id="222")] == [7]


def test_unknown_account_is_reported_with_an_empty_name(store, log):
    log.started("999", "volume", "vol-1", quantity=1, at=T0)
    log.ended("volume", "vol-1", at=T0 + H)
    assert report(store, "volume")[0]["account_name"] == ""


@pytest.mark.parametrize("kind, start, end", [("cpu", T0, T0 + H), ("instance", T0, T0),
                                              ("instance", T0 + H, T0)])
def test_invalid_report_arguments_raise_value_error(store, kind, start, end):
    with pytest.raises(ValueError) as e:
        usage.report(store, kind, start, end)
    assert "\n" not in str(e.value)


def test_started_with_an_unknown_kind_raises_value_error(log):
    with pytest.raises(ValueError, match="unknown usage kind"):
        log.started("111", "s3", "bucket")


# -- output ------------------------------------------------------------------------------------

def test_columns_cover_every_kind_and_match_report_rows(store, log):
    assert set(usage.COLUMNS) == set(usage.KINDS)
    log.started("111", "instance", "i-1", "m1.small", at=T0)
    log.started("111", "volume", "vol-1", quantity=1, at=T0)
    log.record_s3("walrus", [s3_event(1, T0, bytes_in=1)])
    for kind in ("instance", "volume", "s3"):
        assert list(report(store, kind)[0]) == usage.COLUMNS[kind]


def test_csv_has_a_header_and_one_line_per_row(store, log):
    log.started("111", "instance", "i-1", "m1.small", at=T0)
    log.ended("instance", "i-1", at=T0 + 1.5 * H)
    text = usage.to_csv(report(store, "instance"), usage.COLUMNS["instance"])
    assert text.splitlines() == ["account_id,account_name,instance_type,instances,hours",
                                 "111,alice,m1.small,1,1.5"]
    assert list(csv.DictReader(io.StringIO(text)))[0]["hours"] == "1.5"


def test_json_parses_back(store, log):
    log.started("111", "volume", "vol-1", quantity=10, at=T0)
    log.ended("volume", "vol-1", at=T0 + 3 * H)
    rows = report(store, "volume")
    doc = json.loads(usage.to_json("volume", T0, T0 + DAY, rows))
    assert doc == {"type": "volume", "start": "2023-11-15T00:00:00.000Z",
                   "end": "2023-11-16T00:00:00.000Z", "rows": rows}


def test_a_window_after_now_counts_nothing(store, log):
    log.record_s3("walrus", [s3_event(1, T0, stored_delta=GIB)])
    log.started("111", "instance", "i-1", subtype="m1.small", at=T0)
    now = T0 + H
    rows = usage.report(store, "s3", T0 + 2 * H, T0 + 3 * H, now=now)
    assert [r["storage_gib_hours"] for r in rows] in ([], [0.0])
    assert usage.report(store, "instance", T0 + 2 * H, T0 + 3 * H, now=now) == []

"""Walrus' usage reports to the CLC: the CLC's ReportUsage answered by eucacore.fastsoap as
spyne answers it, and walrus' UsageReporter sending a real store's events over mutual TLS to a
real CLC internal listener: delivered in batches, and kept for the next try when the CLC is
down, refuses Walrus or answers something that is not SOAP."""

import io
import logging
import tempfile
from pathlib import Path

import pytest
import zeep

from clc import internal
from clc.cloud import Cloud
from eucacore import pki, serving, soap
from eucacore.config import default_config
from tests.unit.test_ec2_volumes import InProcessTransport
from tests.unit.test_fastsoap import assert_refused_as_invalid, clc_proxy
from tests.unit.test_serving import Running, echo_app, free_port
from walrus.__main__ import UsageReporter
from walrus.store import WalrusStore

EVENT = {"seq": 1, "accountId": "123456789012", "time": 1700000000.25, "storedDelta": 4096, "bucketsDelta": 1,
         "bytesIn": 4096, "bytesOut": 12}
#: The store's names of a usage event's fields, in usage_s3's order after its source.
COLUMNS = ("seq", "account_id", "time", "stored_delta", "buckets_delta", "bytes_in", "bytes_out")


@pytest.fixture
def cloud(tmp_path):
    cloud = Cloud(default_config(EUCALYPTUS=str(tmp_path / "clc")))
    yield cloud
    cloud.store.close()


def stored(cloud, source: str) -> list[tuple]:
    """The S3 usage rows the CLC holds of ``source``, without it, in seq order."""
    return cloud.store.db.execute(f"SELECT {', '.join(COLUMNS)} FROM usage_s3 WHERE source = ? ORDER BY seq",
                                  [source]).fetchall()


def both(cloud):
    """The CLC's internal application as spyne alone serves it, and as the CLC serves it."""
    return {"spyne": clc_proxy(InProcessTransport(soap.wsgi_app(internal.application(cloud)))),
            "fast": clc_proxy(InProcessTransport(internal.wsgi_app(cloud)))}


def test_report_usage_is_answered_as_spyne_answers_it(cloud):
    events = [EVENT, {"seq": 2, "accountId": "210987654321", "time": 1700000001.5},  # counts absent: 0
              {**EVENT, "seq": 3, "storedDelta": None, "bytesOut": -5}]
    for name, proxy in both(cloud).items():
        reply = proxy.ReportUsage(source=f"walrus-{name}", correlationId="c-7", events=events)
        assert (reply.acknowledged, reply.correlationId, getattr(reply, "return")) == (3, "c-7", True)
        assert proxy.ReportUsage(source=f"walrus-{name}", events=events[:1]).acknowledged == 3  # again: once
        assert proxy.ReportUsage(source=f"walrus-{name}").acknowledged == 3
        assert proxy.ReportUsage(source=f"walrus-new-{name}").acknowledged == 0
    assert stored(cloud, "walrus-fast") == stored(cloud, "walrus-spyne") == [
        (1, "123456789012", 1700000000.25, 4096, 1, 4096, 12), (2, "210987654321", 1700000001.5, 0, 0, 0, 0),
        (3, "123456789012", 1700000000.25, 0, 1, 4096, -5)]


@pytest.mark.parametrize("fields", [
    {"source": "walrus-a", "events": [{"seq": 1, "time": 1.0}]},
    {"source": "walrus-a", "events": [{"seq": 1, "accountId": "", "time": 1.0}]},
    {"source": "walrus-a", "events": [{"accountId": "1", "time": 1.0}]},
    {"source": "", "events": [EVENT]},
])
def test_a_bad_report_is_an_invalid_parameter_fault_and_stores_nothing(cloud, fields):
    for proxy in both(cloud).values():
        with pytest.raises(zeep.exceptions.Fault) as info:
            proxy.ReportUsage(**fields)
        assert info.value.code == "soap11env:Client.InvalidParameterValue"
    assert cloud.store.db.execute("SELECT count(*) FROM usage_s3").fetchone()[0] == 0


def test_an_unreadable_number_and_other_operations_go_as_spyne_would(cloud):
    assert_refused_as_invalid([soap.wsgi_app(internal.application(cloud)), internal.wsgi_app(cloud)],
                              b'<ns0:ReportUsage xmlns:ns0="http://eucalyptus.ucsb.edu/"><ns0:source>w</ns0:source>'
                              b'<ns0:events><ns0:seq>seven</ns0:seq></ns0:events></ns0:ReportUsage>')
    for proxy in both(cloud).values():
        with pytest.raises(zeep.exceptions.Fault) as info:
            proxy.DescribeAccessKey(accessKeyId="AKIANOSUCHKEY0000000")
        assert info.value.code == "soap11env:Client.InvalidAccessKeyId"


# -- Walrus to the CLC over mutual TLS -----------------------------------------------------------

@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    """A cloud CA with the CLC's and Walrus' certificates; Walrus' config reads them from here."""
    keys = tmp_path_factory.mktemp("walrus") / "var/lib/eucalyptus/keys"
    keys.mkdir(parents=True)
    pki.create_ca(keys)
    for kind in ("clc", "walrus"):
        pki.issue(keys, kind, kind, ["127.0.0.1"])
    return keys


def clc_listener(app, keys_dir, peers=frozenset({"walrus"})) -> Running:
    return Running(serving.Listener("clc-internal", app, "127.0.0.1", 0, keys=pki.component_keys(keys_dir, "clc"),
                                    allowed_peers=peers, threads=4))


@pytest.fixture
def clc(cloud, keys_dir):
    running = clc_listener(internal.wsgi_app(cloud), keys_dir)
    yield running.port
    running.stop()


@pytest.fixture
def store():
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as root:
        store = WalrusStore(Path(root) / "bukkits", Path(root) / "walrus.db")
        yield store


def reporter(store, keys_dir, port: int) -> UsageReporter:
    """Walrus' reporter of ``store`` to a CLC on ``port``."""
    config = default_config(EUCALYPTUS=str(keys_dir.parents[3]), CLOUD_HOST="127.0.0.1", CLOUD_SSL_PORT=port)
    return UsageReporter(config, store)


def pending(store) -> list[tuple]:
    return [tuple(e[c] for c in COLUMNS) for e in store.pending_usage(limit=10_000)]


def test_a_report_round_trip_from_walrus_to_the_clc(cloud, clc, store, keys_dir):
    """A bucket, an object and a read of it, then 700 accounts' reads: two reports, all stored once."""
    store.create_bucket("usage", "123456789012")
    store.put_object("usage", "k", io.BytesIO(b"x" * 5000), 5000)
    store.record_transfer("123456789012", 5000)
    for account in range(700):
        store.record_transfer(f"{account:012}", account + 1)
    events = pending(store)
    assert len(events) > 700
    reporter(store, keys_dir, clc).report_once()
    assert pending(store) == []
    assert stored(cloud, store.usage_source) == events


@pytest.mark.parametrize("clc_is", ["down", "refusing Walrus", "not SOAP"])
def test_a_failed_report_is_kept_and_sent_again(cloud, clc, store, keys_dir, caplog, clc_is):
    store.record_transfer("123456789012", 5000)
    events = pending(store)
    if clc_is == "down":
        failing, port = None, free_port()
    else:
        app, peers = {"refusing Walrus": (internal.wsgi_app(cloud), frozenset({"node"})),
                      "not SOAP": (echo_app, frozenset({"walrus"}))}[clc_is]
        failing = clc_listener(app, keys_dir, peers)
        port = failing.port
    try:
        with caplog.at_level(logging.WARNING, "eucalyptus.walrus"):
            reporter(store, keys_dir, port).report_once()
    finally:
        if failing:
            failing.stop()
    assert "usage report to the CLC failed (will retry)" in caplog.text
    assert pending(store) == events and stored(cloud, store.usage_source) == []
    reporter(store, keys_dir, clc).report_once()
    assert pending(store) == [] and stored(cloud, store.usage_source) == events

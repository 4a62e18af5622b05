"""eucalyptus-walrus: the S3-compatible bucket store daemon."""

import gc
import logging
import sys
import threading
import time

from eucacore import daemon, fastsoap, pki, soap
from eucacore.periodic import run_periodically
from eucacore.principal import Principal
from eucacore.serving import Listener, serve

log = logging.getLogger("eucalyptus.walrus")
#: Seconds between reports of S3 usage to the CLC.
USAGE_REPORT_INTERVAL = 5
#: Seconds a key's principal (secret, policies, quotas) is reused before the CLC is asked again:
#: the longest a revoked key or a changed policy or quota may still work on S3.
CREDENTIAL_TTL = 2.0


def _clc(config, keys):
    return soap.client("EucalyptusCLC", config["CLOUD_HOST"], config["CLOUD_SSL_PORT"], keys, timeout=10)


def clc_lookup(config):
    """``lookup(access_key)`` that asks the CLC (over mutual TLS) for the key's secret, owner,
    policies and storage quotas: every request, so a revoked key or policy stops at once."""
    keys = pki.component_keys(config.keys_dir(), "walrus")

    def lookup(access_key: str) -> Principal | None:
        try:
            reply = _clc(config, keys).DescribeAccessKey(accessKeyId=access_key)
        except soap.Fault:
            return None
        return Principal(access_key=reply.accessKeyId, secret_key=reply.secretKey,
                         account_id=reply.accountId or "", user_id=reply.userId or "",
                         account_name=reply.accountName or "", user_name=reply.userName or "",
                         user_path=reply.userPath or "/", is_account_admin=bool(reply.isAccountAdmin),
                         is_cloud_admin=bool(reply.isCloudAdmin), policies=tuple(reply.policies or ()),
                         quotas={q.name: q.limit for q in reply.quotas or []})
    return lookup


class CachedLookup:
    """``lookup`` with each found principal remembered for ``ttl`` seconds, so a burst of S3
    requests costs the CLC one DescribeAccessKey per key and interval, not one per request.
    Unknown keys are not remembered: a new key works at once."""

    def __init__(self, lookup, ttl: float = CREDENTIAL_TTL):
        self.lookup, self.ttl = lookup, ttl
        self._found: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def __call__(self, access_key: str) -> Principal | None:
        now = time.monotonic()
        with self._lock:
            cached = self._found.get(access_key)
        if cached and now - cached[0] < self.ttl:
            return cached[1]
        principal = self.lookup(access_key)
        with self._lock:
            if principal is None:
                self._found.pop(access_key, None)
            else:
                if len(self._found) > 10000:
                    self._found.clear()
                self._found[access_key] = (now, principal)
        return principal


def _wire_event(event: dict) -> dict:
    """A usage event of the store as a ReportUsage ``usageEventType``."""
    return {"seq": event["seq"], "accountId": event["account_id"], "time": event["time"],
            "storedDelta": event["stored_delta"], "bucketsDelta": event["buckets_delta"],
            "bytesIn": event["bytes_in"], "bytesOut": event["bytes_out"]}


class UsageReporter:
    """Sends the store's usage events to the CLC in seq order and forgets what it acknowledged.
    A report (up to 500 events, one a PUT) is written by eucacore.fastsoap: zeep took 30-40 ms
    of CPU to write 500, fastsoap takes 5."""

    def __init__(self, config, store):
        self.config, self.store = config, store
        self.keys = pki.component_keys(config.keys_dir(), "walrus")
        self._stop = threading.Event()

    def report_once(self) -> None:
        while True:
            events = self.store.pending_usage()
            if not events:
                return
            try:
                reply = fastsoap.send(_clc(self.config, self.keys), "ReportUsage", {
                    "source": self.store.usage_source, "events": [_wire_event(e) for e in events]})
            except (soap.Fault, *soap.TransportError) as e:
                log.warning("usage report to the CLC failed (will retry): %s", e)
                return
            self.store.forget_usage(min(reply.get("acknowledged") or 0, events[-1]["seq"]))
            if len(events) < 500:
                return

    def start(self) -> None:
        run_periodically("usage-reporter", self.report_once, lambda: USAGE_REPORT_INTERVAL, self._stop)

    def stop(self) -> None:
        self._stop.set()
        self.report_once()


def start(config) -> None:
    """Serve S3 on WALRUS_PORT; signatures are checked against the CLC's access keys, and node
    controllers read images with their certificates (walrus.nodeauth)."""
    from walrus.api import WalrusApp
    from walrus.nodeauth import NodeAuth
    from walrus.soapapi import is_soap_request, soap_application
    from walrus.store import WalrusStore

    store = WalrusStore(config.walrus_storage_dir(), config.state_dir() / "walrus.db")
    node_auth = NodeAuth(pki.component_keys(config.keys_dir(), "walrus").ca)
    app = WalrusApp(store, CachedLookup(clc_lookup(config)), node_auth=node_auth)
    soap = soap_application(app)

    def s3_port(environ, start_response):
        """S3 REST, and the S3 SOAP API at /soap."""
        return (soap if is_soap_request(environ) else app)(environ, start_response)

    reporter = UsageReporter(config, store)
    reporter.start()
    # What start-up made (botocore's S3 model, spyne's SOAP application) lives as long as the
    # daemon: leave it out of the collector's full passes, which would otherwise walk it all.
    gc.freeze()
    serve([Listener("walrus", s3_port, config["BIND_ADDR"], config["WALRUS_PORT"], threads=32, lean=True)],
          on_stop=reporter.stop)


def main(argv=None) -> int:
    return daemon.run("eucalyptus-walrus", "Eucalyptus Walrus: S3-compatible bucket store.", start, argv)


if __name__ == "__main__":
    sys.exit(main())

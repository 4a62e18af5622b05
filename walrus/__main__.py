"""eucalyptus-walrus: the S3-compatible bucket store daemon."""

import logging
import sys

from eucacore import daemon, pki, soap
from eucacore.awsapi.auth import Credentials
from eucacore.serving import Listener, serve

log = logging.getLogger("eucalyptus.walrus")


def clc_lookup(config):
    """``lookup(access_key)`` that asks the CLC (over mutual TLS) for the key's secret and owner."""
    keys = pki.component_keys(config.keys_dir(), "walrus")

    def lookup(access_key: str) -> Credentials | None:
        clc = soap.client("EucalyptusCLC", config["CLOUD_HOST"], config["CLOUD_SSL_PORT"], keys, timeout=10)
        try:
            reply = clc.DescribeAccessKey(accessKeyId=access_key)
        except soap.Fault:
            return None
        return Credentials(access_key=reply.accessKeyId, secret_key=reply.secretKey,
                           account_id=reply.accountId or "", user_id=reply.userId or "")
    return lookup


def start(config) -> None:
    """Serve S3 on WALRUS_PORT; signatures are checked against the CLC's access keys."""
    from walrus.api import WalrusApp
    from walrus.store import WalrusStore

    store = WalrusStore(config.walrus_storage_dir(), config.state_dir() / "walrus.db")
    app = WalrusApp(store, clc_lookup(config))
    serve([Listener("walrus", app, config["BIND_ADDR"], config["WALRUS_PORT"], threads=32)])


def main(argv=None) -> int:
    return daemon.run("eucalyptus-walrus", "Eucalyptus Walrus: S3-compatible bucket store.", start, argv)


if __name__ == "__main__":
    sys.exit(main())

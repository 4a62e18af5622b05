"""eucalyptus-cc: the cluster controller daemon."""

import sys

from eucacore import daemon, pki
from eucacore.serving import Listener, serve


def start(config) -> None:
    """Serve the CC's SOAP operations on CC_PORT over mutual TLS (caller: the CLC) and poll the nodes."""
    from cc.cluster import ClusterController
    from cc.service import wsgi_app

    cluster = ClusterController(config)
    cluster.start_polling()
    listener = Listener("cc", wsgi_app(cluster), config["BIND_ADDR"], config["CC_PORT"],
                        keys=pki.component_keys(config.keys_dir(), "cluster"), allowed_peers=frozenset({"clc"}))
    serve([listener], on_stop=cluster.stop)


def main(argv=None) -> int:
    return daemon.run("eucalyptus-cc", "Eucalyptus cluster controller: schedules instances on nodes.", start, argv)


if __name__ == "__main__":
    sys.exit(main())

"""eucalyptus-cc: the cluster controller daemon."""

import sys

from eucacore import daemon, pki, soap
from eucacore.serving import Listener, serve


def start(config) -> None:
    """Serve the CC's SOAP operations on CC_PORT over mutual TLS (caller: the CLC) and poll the nodes."""
    from cc.cluster import ClusterController
    from cc.service import application

    cluster = ClusterController(config)
    cluster.start_polling()
    listener = Listener("cc", soap.wsgi_app(application(cluster)), config["BIND_ADDR"], config["CC_PORT"],
                        keys=pki.component_keys(config.keys_dir(), "cluster"), allowed_peers=frozenset({"clc"}))
    serve([listener], on_stop=cluster.stop)


def main(argv=None) -> int:
    return daemon.run("eucalyptus-cc", "Eucalyptus cluster controller: schedules instances on nodes.", start, argv)


if __name__ == "__main__":
    sys.exit(main())

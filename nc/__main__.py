"""eucalyptus-nc: the node controller daemon."""

import sys

from eucacore import daemon, pki
from eucacore.serving import Listener, serve


def start(config) -> None:
    """Serve ncRunInstance and friends on NC_PORT over mutual TLS (callers: cluster controllers)."""
    from nc.node import NodeController
    from nc.service import wsgi_app

    node = NodeController(config)
    node.reconcile()
    listener = Listener("nc", wsgi_app(node), config["BIND_ADDR"], config["NC_PORT"],
                        keys=pki.component_keys(config.keys_dir(), "node"), allowed_peers=frozenset({"cluster"}))
    serve([listener], on_stop=node.shutdown)


def main(argv=None) -> int:
    return daemon.run("eucalyptus-nc", "Eucalyptus node controller: runs instances through libvirt.", start, argv)


if __name__ == "__main__":
    sys.exit(main())

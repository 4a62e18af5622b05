"""eucalyptus-sc: the storage controller daemon."""

import sys

from eucacore import daemon, pki, soap
from eucacore.serving import Listener, serve


def start(config) -> None:
    """Serve the SC's SOAP operations on SC_PORT over mutual TLS (callers: the CLC and the NCs)."""
    from sc.service import application
    from sc.volumes import StorageController

    sc = StorageController(config)
    listener = Listener("sc", soap.wsgi_app(application(sc)), config["BIND_ADDR"], config["SC_PORT"],
                        keys=pki.component_keys(config.keys_dir(), "sc"), allowed_peers=frozenset({"clc", "node"}))
    serve([listener])


def main(argv=None) -> int:
    return daemon.run("eucalyptus-sc", "Eucalyptus storage controller: EBS-style volumes.", start, argv)


if __name__ == "__main__":
    sys.exit(main())

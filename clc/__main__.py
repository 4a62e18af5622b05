"""eucalyptus-cloud: the cloud controller daemon."""

import gc
import sys

from eucacore import daemon, pki
from eucacore.serving import Listener, serve

#: Objects made (and not yet freed) between two young passes of the collector.
YOUNG_OBJECTS = 100_000


def start(config) -> None:
    """Serve the EC2 API on CLOUD_PORT and the component service on CLOUD_SSL_PORT (mutual TLS),
    and poll the clusters."""
    from clc import internal
    from clc.api import CloudApi
    from clc.cloud import Cloud
    from clc.ec2.volumes import fail_interrupted_creations
    from clc.poller import ClusterPoller

    cloud = Cloud(config)
    fail_interrupted_creations(cloud)
    poller = ClusterPoller(cloud)
    poller.start()
    listeners = [
        Listener("clc", CloudApi(cloud), config["BIND_ADDR"], config["CLOUD_PORT"], threads=24),
        Listener("clc-internal", internal.wsgi_app(cloud), config["BIND_ADDR"],
                 config["CLOUD_SSL_PORT"], keys=pki.component_keys(config.keys_dir(), "clc"),
                 allowed_peers=frozenset({"walrus", "sc", "cluster", "node"})),
    ]
    # What start-up made (the service models above all) lives as long as the daemon: leave it
    # out of the collector's passes. A big answer (10,000 instances) holds some 50,000 objects
    # while it is made, all freed by their counts when it is sent: at CPython's default of a
    # young pass every 700 new objects they outlive many passes and reach the old generation,
    # and every such answer costs a full pass (a third of its time, measured). So the young
    # generation holds more than one big answer makes.
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *gc.get_threshold()[1:])
    serve(listeners, on_stop=poller.stop)


def main(argv=None) -> int:
    return daemon.run("eucalyptus-cloud", "Eucalyptus cloud controller: the EC2 and Euare APIs, accounts, images and usage.",
                      start, argv)


if __name__ == "__main__":
    sys.exit(main())

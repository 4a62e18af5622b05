"""Not a benchmark: the NC host the CC benchmarks run (bench_cc_burst.py, bench_cc_scale.py).

One process serves several node controllers, each the NC's own code (nc.node.NodeController
behind nc.service's SOAP application, on its own port over mutual TLS, its own state
directory), so that 200 nodes fit on one 2-core machine. What differs from ``python -m nc``:
the libvirt test driver's host is a simulated machine of HOST_CORES cores and HOST_MEMORY_MIB
MiB (a ``test:///<file>`` host definition: test:///default's 16 cores and 3 GiB hold too few
instances for a burst of 100 on four nodes), each node has its own test driver (the default
one is shared by a whole process), and each port serves with two threads.

    python bench/bench_cc_nchost.py --config SPEC.json

SPEC.json: {"nodes": [{"root": DIR, "port": PORT}, ...], "keys": KEYS_DIR}. Each root gets a
copy of KEYS_DIR (the node's key pair, as on a real node), and each node is served by the NC
daemon's own WSGI application (nc.service.wsgi_app). The process says READY=1 to
$NOTIFY_SOCKET once every port listens, as the daemons do, and stops on SIGTERM.
"""

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eucacore import pki  # noqa: E402
from eucacore.config import default_config  # noqa: E402
from eucacore.serving import Listener, serve  # noqa: E402
from nc.hypervisor import LibvirtHypervisor  # noqa: E402
from nc.node import NodeController  # noqa: E402
from nc.service import wsgi_app  # noqa: E402

HOST_CORES, HOST_MEMORY_MIB = 64, 64 * 1024


def host_definition(path: Path) -> Path:
    """A test driver host of HOST_CORES cores and HOST_MEMORY_MIB MiB, and no domains."""
    path.write_text(f"<node><cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets>"
                    f"<cores>{HOST_CORES}</cores><threads>1</threads><active>{HOST_CORES}</active></cpu>"
                    f"<memory>{HOST_MEMORY_MIB * 1024}</memory></node>")
    return path


def node_listener(root: Path, port: int, keys: Path, host: Path) -> tuple[Listener, NodeController]:
    """One node controller at ``root`` and the listener that serves it on ``port``, as the NC daemon
    serves it."""
    shutil.copytree(keys, root / "var/lib/eucalyptus/keys", dirs_exist_ok=True)
    config = default_config(EUCALYPTUS=str(root), HYPERVISOR="test", NC_PORT=port, BIND_ADDR="127.0.0.1")
    hypervisor = LibvirtHypervisor("test")
    hypervisor.uri = f"test://{host}"  # a private test driver of the simulated host
    node = NodeController(config, hypervisor)
    app = wsgi_app(node)
    listener = Listener(f"nc-{port}", app, "127.0.0.1", port,
                        keys=pki.component_keys(config.keys_dir(), "node"), allowed_peers=frozenset({"cluster"}),
                        threads=2)
    return listener, node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="the host's spec (JSON)")
    spec = json.loads(Path(parser.parse_args().config).read_text())
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s nchost %(name)s: %(message)s")
    logging.getLogger("spyne").setLevel(logging.CRITICAL)
    first = Path(spec["nodes"][0]["root"])
    first.mkdir(parents=True, exist_ok=True)
    host = host_definition(first.parent / f"host-{first.name}.xml")
    served = [node_listener(Path(n["root"]), n["port"], Path(spec["keys"]), host)
              for n in spec["nodes"]]
    serve([listener for listener, _ in served], on_stop=lambda: [node.shutdown() for _, node in served])


if __name__ == "__main__":
    main()

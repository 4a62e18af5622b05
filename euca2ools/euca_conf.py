"""euca_conf: set up the cloud on the CLC host: its CA, the admin's credentials, and the
registration of Walrus, storage controllers, clusters and nodes.

It works on the CLC's own state (keys directory and database), as the original did
on the CLC host. Registering a component issues it a key and certificate signed by
the cloud CA (in the keys directory; copy them to the component's host when it is
another machine) and records it, so the CLC starts talking to it.
"""

import argparse
import os
import re
import sys
from pathlib import Path

from euca2ools import creddir
from eucacore import ids, pki
from eucacore.config import ConfigError, load_config, split_hostport

PROG = "euca_conf"
_KIND_PORT = {"walrus": "WALRUS_PORT", "sc": "SC_PORT", "cluster": "CC_PORT", "node": "NC_PORT"}
_LABEL = {"walrus": "WALRUS", "sc": "SC", "cluster": "CLUSTER", "node": "NODE"}


class ConfError(Exception):
    """A failure to report as one line."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Configure the cloud: initialize, register components.")
    p.add_argument("--config", metavar="PATH", help="eucalyptus.conf (default: $EUCALYPTUS_CONF or /etc/eucalyptus/eucalyptus.conf)")
    p.add_argument("--cred-dir", metavar="DIR", help="where --initialize/--get-credentials write eucarc (default ~/.euca)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--initialize", action="store_true", help="create the cloud CA and the admin account eucalyptus/admin")
    g.add_argument("--get-credentials", metavar="DIR", help="write the admin's eucarc and cloud-cert.pem into DIR")
    g.add_argument("--register-walrus", metavar="HOST")
    g.add_argument("--register-sc", nargs=2, metavar=("ZONE", "HOST"))
    g.add_argument("--register-cluster", nargs=2, metavar=("ZONE", "HOST"))
    g.add_argument("--register-nodes", metavar='"HOST ..."')
    g.add_argument("--deregister-walrus", metavar="HOST")
    g.add_argument("--deregister-sc", metavar="ZONE")
    g.add_argument("--deregister-cluster", metavar="ZONE")
    g.add_argument("--deregister-nodes", metavar='"HOST ..."')
    g.add_argument("--list-walruses", action="store_true")
    g.add_argument("--list-scs", action="store_true")
    g.add_argument("--list-clusters", action="store_true")
    g.add_argument("--list-nodes", action="store_true")
    return p


class Conf:
    """The operations of euca_conf over one CLC's configuration and state."""

    def __init__(self, config):
        from clc.identity import Identity
        from clc.secrets import SecretBox
        from clc.store import open_store
        self.config = config
        self.keys_dir = config.keys_dir()
        self.store = open_store(config)
        self.identity = Identity(self.store, SecretBox.for_keys_dir(self.keys_dir))

    # -- initialize and credentials -----------------------------------------

    def initialize(self, cred_dir: Path) -> list[str]:
        """CA, the CLC's own certificate and the admin account; safe to run again."""
        pki.create_ca(self.keys_dir)
        if not pki.component_keys(self.keys_dir, "clc").exists():
            pki.issue(self.keys_dir, "clc", "clc", [self.config["CLOUD_HOST"]])
        if self.identity.admin_credentials() is None:
            self.identity.create_account("eucalyptus")
        path = self.write_credentials(cred_dir)
        return [f"cloud CA in {self.keys_dir}", f"credentials written to {path}"]

    def write_credentials(self, cred_dir: Path) -> Path:
        """Write the cloud admin's credentials directory (eucarc, iamrc, euca2ools.ini, CA)."""
        from clc.identity import ADMIN_ACCOUNT, ADMIN_USER
        creds = self.identity.admin_credentials()
        if creds is None:
            raise ConfError("the cloud is not initialized: run euca_conf --initialize first")
        ec2_url = f"http://{self.config['CLOUD_HOST']}:{self.config['CLOUD_PORT']}/services/compute"
        endpoints = creddir.Endpoints.of_clc(ec2_url, f"http://{self._walrus_endpoint()}/")
        key = creddir.AccountKey(account_name=ADMIN_ACCOUNT, account_id=creds.account_id,
                                 user_name=ADMIN_USER, access_key=creds.access_key,
                                 secret_key=creds.secret_key)
        return creddir.write_credentials_dir(cred_dir, key, endpoints, self.keys_dir / pki.CA_CERT)

    def _walrus_endpoint(self) -> str:
        rows = list(self.store.db["components"].rows_where("kind = 'walrus'"))
        if rows:
            return f"{rows[0]['host']}:{rows[0]['port']}"
        return f"{self.config['CLOUD_HOST']}:{self.config['WALRUS_PORT']}"

    # -- registration --------------------------------------------------------

    def _require_ca(self) -> None:
        if not (self.keys_dir / pki.CA_CERT).exists():
            raise ConfError("the cloud is not initialized: run euca_conf --initialize first")

    def register(self, kind: str, name: str, partition: str, hostport: str) -> str:
        """Issue ``kind`` its certificate for the host and record it under ``name``."""
        self._require_ca()
        host, port = split_hostport(hostport, self.config[_KIND_PORT[kind]])
        if partition and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", partition):
            raise ConfError(f"bad zone name {partition!r}: letters, digits, '.', '_' and '-' only")
        self._check_unregistered(kind, name)
        table = self.store.db["components"]
        hosts = [r["host"] for r in table.rows_where("kind = ?", [kind])] + [host]
        pki.issue(self.keys_dir, kind, name, hosts)
        with self.store.atomic():
            table.insert({"kind": kind, "name": name, "partition": partition, "host": host, "port": port,
                          "state": "REGISTERED", "last_seen": 0, "registered": ids.now()})
        return f"registered {_LABEL[kind].lower()} {name} at {host}:{port}"

    def _check_unregistered(self, kind: str, name: str) -> None:
        existing = list(self.store.db["components"].rows_where("kind = ? AND name = ?", [kind, name]))
        if existing:
            raise ConfError(f"{_LABEL[kind].lower()} {name} is already registered at "
                            f"{existing[0]['host']}:{existing[0]['port']}")

    def deregister(self, kind: str, name: str) -> str:
        with self.store.atomic():
            cur = self.store.db.execute("DELETE FROM components WHERE kind = ? AND name = ?", [kind, name])
        if cur.rowcount == 0:
            raise ConfError(f"no {_LABEL[kind].lower()} {name} is registered")
        return f"deregistered {_LABEL[kind].lower()} {name}"

    def register_nodes(self, hosts: list[str]) -> list[str]:
        """Register every host, or none of them if any is registered already."""
        for h in hosts:
            self._check_unregistered("node", h)
        out = [self.register("node", h, "", h) for h in hosts]
        self._set_nodes(self._nodes_in_config() + [h for h in hosts if h not in self._nodes_in_config()])
        return out

    def deregister_nodes(self, hosts: list[str]) -> list[str]:
        out = [self.deregister("node", h) for h in hosts]
        self._set_nodes([h for h in self._nodes_in_config() if h not in hosts])
        return out

    def _nodes_in_config(self) -> list[str]:
        return list(load_config(self.config.path)["NODES"]) if self.config.path else []

    def _set_nodes(self, nodes: list[str]) -> None:
        """Rewrite NODES="..." in eucalyptus.conf, as the original's euca_conf did (the CC re-reads it)."""
        path = Path(self.config.path)
        text = path.read_text()
        line = f'NODES="{" ".join(nodes)}"'
        if re.search(r"^\s*NODES\s*=.*$", text, flags=re.M):
            text = re.sub(r"^\s*NODES\s*=.*$", line, text, count=1, flags=re.M)
        else:
            text = text.rstrip("\n") + "\n" + line + "\n"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def listing(self, kind: str) -> list[str]:
        rows = self.store.db["components"].rows_where("kind = ?", [kind], order_by="name")
        return ["\t".join([_LABEL[kind], r["partition"] or "-", r["name"], f"{r['host']}:{r['port']}", r["state"]])
                for r in rows]


def run(args, conf: Conf) -> list[str]:
    cred_dir = Path(args.cred_dir or os.path.expanduser("~/.euca"))
    if args.initialize:
        return conf.initialize(cred_dir)
    if args.get_credentials:
        return [f"credentials written to {conf.write_credentials(Path(args.get_credentials))}"]
    if args.register_walrus:
        return [conf.register("walrus", "walrus", "", args.register_walrus)]
    if args.register_sc:
        zone, host = args.register_sc
        return [conf.register("sc", f"sc-{zone}", zone, host)]
    if args.register_cluster:
        zone, host = args.register_cluster
        return [conf.register("cluster", zone, zone, host)]
    if args.register_nodes:
        return conf.register_nodes(args.register_nodes.split())
    if args.deregister_walrus:
        return [conf.deregister("walrus", "walrus")]
    if args.deregister_sc:
        return [conf.deregister("sc", f"sc-{args.deregister_sc}")]
    if args.deregister_cluster:
        return [conf.deregister("cluster", args.deregister_cluster)]
    if args.deregister_nodes:
        return conf.deregister_nodes(args.deregister_nodes.split())
    for flag, kind in (("list_walruses", "walrus"), ("list_scs", "sc"), ("list_clusters", "cluster"),
                       ("list_nodes", "node")):
        if getattr(args, flag):
            return conf.listing(kind)
    return []


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
        for line in run(args, Conf(config)):
            print(line)
    except (ConfigError, ConfError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

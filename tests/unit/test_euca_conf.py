"""euca2ools.euca_conf run as the administrator runs it: a subprocess over a real config
file, keys directory and CLC database in a temporary $EUCALYPTUS."""

import configparser
import os
from contextlib import closing
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from euca2ools.credentials import parse_eucarc
from eucacore import pki
from eucacore.config import load_config

EXPORTS = ("EC2_URL", "S3_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "EC2_ACCESS_KEY",
           "EC2_SECRET_KEY", "EUCALYPTUS_CERT")


class Cloud:
    """A CLC host's $EUCALYPTUS and eucalyptus.conf under a temporary directory."""

    def __init__(self, root: Path):
        self.root = root
        self.conf = root / "eucalyptus.conf"
        self.cred_dir = root / "cred"
        self.keys = root / "var/lib/eucalyptus/keys"
        self.conf.write_text(f'EUCALYPTUS="{root}"\nCLOUD_HOST="127.0.0.1"\n')

    def run(self, *args, expect=0):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EUCA")}
        env["HOME"] = str(self.root)
        proc = subprocess.run([sys.executable, "-m", "euca2ools.euca_conf", "--config", str(self.conf), *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == expect, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def fails(self, *args):
        """Runs a command that must fail the way euca_conf fails: one line, exit 1."""
        proc = self.run(*args, expect=1)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith("euca_conf: error: ")
        return lines[0]

    def listing(self, flag):
        return [line.split("\t") for line in self.run(flag).stdout.splitlines()]

    def registered(self, kind):
        """Names of registered components of ``kind``, read from the CLC database itself."""
        with closing(sqlite3.connect(self.root / "var/lib/eucalyptus/clc.db")) as db:
            return sorted(r[0] for r in db.execute("SELECT name FROM components WHERE kind = ?", [kind]))

    def eucarc(self):
        return dict(re.findall(r"^export (\w+)=(.*)$", (self.cred_dir / "eucarc").read_text(), flags=re.M))


@pytest.fixture(scope="module")
def initialized(tmp_path_factory):
    """One cloud after --initialize; tests get copies of it."""
    cloud = Cloud(tmp_path_factory.mktemp("template"))
    proc = cloud.run("--cred-dir", str(cloud.cred_dir), "--initialize")
    return cloud, proc


@pytest.fixture
def cloud(initialized, tmp_path):
    template, _ = initialized
    shutil.copytree(template.root, tmp_path / "euca")
    return Cloud(tmp_path / "euca")  # rewrites the config to point at the copy


def cert(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def ou(path):
    return cert(path).subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value


def sans(path):
    ext = cert(path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in ext.get_values_for_type(x509.IPAddress)} | set(ext.get_values_for_type(x509.DNSName))


def test_initialize_writes_ca_and_credentials(initialized):
    cloud, proc = initialized
    assert "credentials written to" in proc.stdout
    assert (cloud.keys / pki.CA_CERT).exists() and (cloud.keys / pki.CA_KEY).exists()
    assert ou(cloud.keys / "clc-cert.pem") == "clc"
    assert (cloud.cred_dir / pki.CA_CERT).read_bytes() == (cloud.keys / pki.CA_CERT).read_bytes()
    eucarc = cloud.cred_dir / "eucarc"
    assert stat.S_IMODE(eucarc.stat().st_mode) == 0o600
    exports = cloud.eucarc()
    assert set(EXPORTS) <= set(exports)
    assert exports["EC2_URL"] == "http://127.0.0.1:8773/services/compute"
    assert exports["S3_URL"] == "http://127.0.0.1:8776/"
    assert re.fullmatch(r"[A-Z0-9]{20}", exports["AWS_ACCESS_KEY_ID"])
    assert len(exports["AWS_SECRET_ACCESS_KEY"]) == 40
    assert exports["EC2_ACCESS_KEY"] == exports["AWS_ACCESS_KEY_ID"]
    assert exports["EC2_SECRET_KEY"] == exports["AWS_SECRET_ACCESS_KEY"]
    assert exports["EUCALYPTUS_CERT"].endswith("/cloud-cert.pem")


def test_initialize_writes_iamrc_ini_and_service_urls(initialized):
    cloud, _ = initialized
    exports = cloud.eucarc()
    base = "http://127.0.0.1:8773/services/"
    assert exports["EUARE_URL"] == exports["AWS_IAM_URL"] == base + "Euare"
    assert exports["EUCA_PROPERTIES_URL"] == base + "Properties"
    assert exports["EUCA_REPORTING_URL"] == base + "Reporting"
    assert exports["AWS_CREDENTIAL_FILE"] == "${EUCA_KEY_DIR}/iamrc"
    for name in ("iamrc", "euca2ools.ini"):
        assert stat.S_IMODE((cloud.cred_dir / name).stat().st_mode) == 0o600
    assert (cloud.cred_dir / "iamrc").read_text().splitlines() == [
        f"AWSAccessKeyId={exports['AWS_ACCESS_KEY_ID']}",
        f"AWSSecretKey={exports['AWS_SECRET_ACCESS_KEY']}"]
    ini = configparser.ConfigParser()
    ini.read(cloud.cred_dir / "euca2ools.ini")
    assert ini["user eucalyptus-admin"]["key-id"] == exports["AWS_ACCESS_KEY_ID"]
    assert ini["user eucalyptus-admin"]["account-id"] == exports["EC2_ACCOUNT_NUMBER"]
    assert ini["region eucalyptus"]["iam-url"] == base + "Euare"
    assert ini["region eucalyptus"]["user"] == "eucalyptus-admin"
    parsed = parse_eucarc(str(cloud.cred_dir / "eucarc"), environ={})
    assert parsed["AWS_CREDENTIAL_FILE"] == str((cloud.cred_dir / "iamrc").resolve())


def test_eucarc_is_usable_from_a_shell(initialized):
    cloud, _ = initialized
    out = subprocess.run(["bash", "-c", f". {cloud.cred_dir}/eucarc && echo $EUCALYPTUS_CERT"],
                         capture_output=True, text=True, check=True, cwd="/").stdout.strip()
    assert Path(out) == (cloud.cred_dir / pki.CA_CERT).resolve()
    assert Path(out).exists()


def test_second_initialize_keeps_ca_and_access_key(cloud):
    before_keys, before_ca = cloud.eucarc(), pki.fingerprint(cloud.keys / pki.CA_CERT)
    cloud.run("--cred-dir", str(cloud.cred_dir), "--initialize")
    assert cloud.eucarc()["AWS_ACCESS_KEY_ID"] == before_keys["AWS_ACCESS_KEY_ID"]
    assert cloud.eucarc()["AWS_SECRET_ACCESS_KEY"] == before_keys["AWS_SECRET_ACCESS_KEY"]
    assert pki.fingerprint(cloud.keys / pki.CA_CERT) == before_ca


def test_register_before_initialize_fails_with_one_line(tmp_path):
    cloud = Cloud(tmp_path)
    line = cloud.fails("--register-walrus", "10.0.0.5")
    assert "--initialize" in line
    assert not (cloud.keys / "walrus-cert.pem").exists()


def test_missing_config_fails_with_one_line(tmp_path):
    cloud = Cloud(tmp_path)
    cloud.conf.unlink()
    assert "cannot read configuration file" in cloud.fails("--list-nodes")


def test_register_list_and_deregister_walrus_sc_cluster(cloud):
    assert "registered walrus" in cloud.run("--register-walrus", "10.0.0.5").stdout
    cloud.run("--register-sc", "zone1", "10.0.0.6")
    cloud.run("--register-cluster", "zone1", "10.0.0.7:9000")
    for kind, host in (("walrus", "10.0.0.5"), ("sc", "10.0.0.6"), ("cluster", "10.0.0.7")):
        pair = pki.component_keys(cloud.keys, kind)
        assert pair.exists(), kind
        assert ou(pair.cert) == kind
        assert host in sans(pair.cert)
        cert(pair.cert).verify_directly_issued_by(cert(cloud.keys / pki.CA_CERT))
        assert stat.S_IMODE(pair.key.stat().st_mode) == 0o600
    assert cloud.listing("--list-walruses") == [["WALRUS", "-", "walrus", "10.0.0.5:8776", "REGISTERED"]]
    assert cloud.listing("--list-scs") == [["SC", "zone1", "sc-zone1", "10.0.0.6:8777", "REGISTERED"]]
    assert cloud.listing("--list-clusters") == [["CLUSTER", "zone1", "zone1", "10.0.0.7:9000", "REGISTERED"]]
    # Credentials now point S3 at the registered Walrus.
    cloud.run("--get-credentials", str(cloud.root / "fresh"))
    assert "export S3_URL=http://10.0.0.5:8776/\n" in (cloud.root / "fresh" / "eucarc").read_text()

    assert "deregistered walrus" in cloud.run("--deregister-walrus", "10.0.0.5").stdout
    cloud.run("--deregister-sc", "zone1")
    cloud.run("--deregister-cluster", "zone1")
    assert [cloud.registered(kind) for kind in ("walrus", "sc", "cluster")] == [[], [], []]


def test_registering_twice_fails(cloud):
    cloud.run("--register-cluster", "zone1", "10.0.0.7")
    line = cloud.fails("--register-cluster", "zone1", "10.0.0.8")
    assert "already registered" in line
    assert cloud.registered("cluster") == ["zone1"]


def test_bad_zone_name_fails(cloud):
    assert "bad zone name" in cloud.fails("--register-sc", "zone 1;rm", "10.0.0.6")


def test_deregister_unknown_fails(cloud):
    assert "no cluster nowhere is registered" in cloud.fails("--deregister-cluster", "nowhere")


def test_register_nodes_rewrites_nodes_in_the_config(cloud):
    cloud.run("--register-nodes", "10.0.0.1 10.0.0.2")
    assert list(load_config(cloud.conf)["NODES"]) == ["10.0.0.1", "10.0.0.2"]
    assert cloud.conf.read_text().count("NODES=") == 1
    assert [row[2:4] for row in cloud.listing("--list-nodes")] == [["10.0.0.1", "10.0.0.1:8775"],
                                                                   ["10.0.0.2", "10.0.0.2:8775"]]
    assert ou(cloud.keys / "node-cert.pem") == "node"

    cloud.run("--deregister-nodes", "10.0.0.1")
    assert list(load_config(cloud.conf)["NODES"]) == ["10.0.0.2"]
    assert cloud.registered("node") == ["10.0.0.2"]
    assert f'EUCALYPTUS="{cloud.root}"' in cloud.conf.read_text()  # the rest of the file is kept


def test_each_registered_node_has_a_certificate_for_its_host(cloud):
    """Every node needs a certificate whose SAN names it; registering the second node
    must not take the first node's away."""
    cloud.run("--register-nodes", "10.0.0.1 10.0.0.2")
    covered = set()
    for path in cloud.keys.glob("*-cert.pem"):
        if path.name != pki.CA_CERT and ou(path) == "node":
            covered |= sans(path)
    assert {"10.0.0.1", "10.0.0.2"} <= covered, covered


def test_failed_register_nodes_leaves_config_and_database_agreeing(cloud):
    cloud.run("--register-nodes", "10.0.0.1")
    cloud.fails("--register-nodes", "10.0.0.3 10.0.0.1")  # 10.0.0.1 is already registered
    assert cloud.registered("node") == sorted(load_config(cloud.conf)["NODES"])

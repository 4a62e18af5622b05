"""eucalyptus.conf: the shipped file, defaults, and one clear line for each kind of bad file."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eucacore.config import ConfigError, default_config, load_config

SHIPPED = Path(__file__).resolve().parents[2] / "etc" / "eucalyptus" / "eucalyptus.conf"

DEFAULTS = {
    "EUCALYPTUS": "/", "EUCA_USER": "eucalyptus", "LOGLEVEL": "INFO", "LOGROLLNUMBER": 10,
    "LOGMAXSIZE": 104857600, "BIND_ADDR": "0.0.0.0", "CLOUD_HOST": "127.0.0.1",
    "CLOUD_PORT": 8773, "CLOUD_SSL_PORT": 8443, "CC_PORT": 8774, "NC_PORT": 8775,
    "WALRUS_PORT": 8776, "SC_PORT": 8777, "NC_SERVICE": "axis2/services/EucalyptusNC",
    "CC_SERVICE": "axis2/services/EucalyptusCC", "NC_POLLING_FREQUENCY": 6,
    "CLC_POLLING_FREQUENCY": 6, "INSTANCE_TIMEOUT": 300, "SCHEDPOLICY": "ROUNDROBIN",
    "POWER_IDLETHRESH": 300, "POWER_WAKETHRESH": 300, "NODES": [], "HYPERVISOR": "kvm",
    "USE_VIRTIO_ROOT": True, "USE_VIRTIO_DISK": True, "USE_VIRTIO_NET": True,
    "MAX_MEM": 0, "MAX_CORES": 0, "MAX_DISK": 0, "SWAP_SIZE": 512, "INSTANCE_PATH": "",
    "NC_CACHE_SIZE": 99999, "NC_WORK_SIZE": 50000, "CONCURRENT_DISK_OPS": 4,
    "DISABLE_KEY_INJECTION": False, "MANUAL_INSTANCES_CLEANUP": False,
    "WALRUS_DOWNLOAD_MAX_ATTEMPTS": 9, "WALRUS_STORAGE_DIR": "", "SC_VOLUMES_DIR": "",
    "VNET_MODE": "SYSTEM", "VNET_PRIVINTERFACE": "eth0", "VNET_PUBINTERFACE": "eth0",
    "VNET_BRIDGE": "br0", "VNET_SUBNET": "", "VNET_NETMASK": "", "VNET_ADDRSPERNET": 32,
    "VNET_PUBLICIPS": [], "VNET_DNS": "", "VNET_DOMAINNAME": "eucalyptus.internal",
    "VNET_BROADCAST": "", "VNET_ROUTER": "", "VNET_MACMAP": {}, "VNET_LOCALIP": "",
    "DISABLE_TUNNELING": False, "VNET_DHCPDAEMON": "/usr/sbin/dhcpd",
    "VNET_DHCPUSER": "dhcpd", "VNET_MACPREFIX": "d0:0d",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eucalyptus.conf"
    path.write_text(text)
    return path


def test_shipped_file_gives_the_defaults():
    config = load_config(SHIPPED)
    assert {key: config[key] for key in DEFAULTS} == DEFAULTS
    assert dict(config) == dict(default_config())


def test_shipped_file_sets_every_key():
    text = SHIPPED.read_text()
    for key in default_config():
        assert f'\n{key}="' in text, key


def test_empty_file_gives_all_defaults(tmp_path):
    config = load_config(write(tmp_path, "# nothing but a comment\n\n"))
    assert {key: config[key] for key in DEFAULTS} == DEFAULTS
    assert config.path == str(tmp_path / "eucalyptus.conf")


def test_path_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EUCALYPTUS_CONF", str(write(tmp_path, 'CC_PORT="9000"\n')))
    assert load_config()["CC_PORT"] == 9000


def test_values_are_typed_and_unquoted_values_accepted(tmp_path):
    config = load_config(write(tmp_path, textwrap.dedent("""
        EUCALYPTUS="/opt/euca"
        NODES="10.0.0.2 node3:8775  node4.example.com"
        CC_PORT=9774
        VNET_MODE='MANAGED-NOVLAN'   # trailing comment
        VNET_SUBNET="172.16.0.0"
        VNET_NETMASK="255.255.0.0"
        VNET_DNS="10.0.0.1"
        VNET_ADDRSPERNET="64"
        VNET_PUBLICIPS="192.168.1.100-192.168.1.150 192.168.1.200"
        VNET_MACMAP="D0:0D:00:00:00:01=172.16.0.2 d0:0d:00:00:00:02=172.16.0.3"
        DISABLE_TUNNELING="Y"
        USE_VIRTIO_NET="0"
        INSTANCE_PATH="/srv/instances"
    """)))
    assert config["NODES"] == ["10.0.0.2", "node3:8775", "node4.example.com"]
    assert config["CC_PORT"] == 9774
    assert config["VNET_MODE"] == "MANAGED-NOVLAN"
    assert config["VNET_ADDRSPERNET"] == 64
    assert config["VNET_PUBLICIPS"] == ["192.168.1.100-192.168.1.150", "192.168.1.200"]
    assert config["VNET_MACMAP"] == {"d0:0d:00:00:00:01": "172.16.0.2", "d0:0d:00:00:00:02": "172.16.0.3"}
    assert config["DISABLE_TUNNELING"] is True and config["USE_VIRTIO_NET"] is False
    assert config.state_dir() == Path("/opt/euca/var/lib/eucalyptus")
    assert config.keys_dir() == Path("/opt/euca/var/lib/eucalyptus/keys")
    assert config.log_dir() == Path("/opt/euca/var/log/eucalyptus")
    assert config.instance_path() == Path("/srv/instances")
    assert config.walrus_storage_dir() == Path("/opt/euca/var/lib/eucalyptus/bukkits")
    assert config.sc_volumes_dir() == Path("/opt/euca/var/lib/eucalyptus/volumes")


def test_config_is_read_only():
    config = default_config()
    with pytest.raises(TypeError):
        config["CC_PORT"] = 1  # type: ignore[index]


def test_default_config_applies_and_validates_overrides():
    config = default_config(HYPERVISOR="test", NODES=["a", "b:9"], DISABLE_TUNNELING=True, CC_PORT=9000)
    assert (config["HYPERVISOR"], config["NODES"], config["DISABLE_TUNNELING"], config["CC_PORT"]) == (
        "test", ["a", "b:9"], True, 9000)
    with pytest.raises(ConfigError, match=r'^<default_config>: SC_PORT: expected an integer from 1 to 65535, got "0"$'):
        default_config(SC_PORT=0)


MANAGED_OK = 'VNET_SUBNET="10.1.0.0"\nVNET_NETMASK="255.255.0.0"\nVNET_DNS="10.0.0.1"\n'

BAD_FILES = {
    "bad port": ('LOGLEVEL="DEBUG"\nCC_PORT="80x"\n', 2, "CC_PORT",
                 'expected an integer from 1 to 65535, got "80x"'),
    "port out of range": ('\n\nNC_PORT="70000"\n', 3, "NC_PORT",
                          'expected an integer from 1 to 65535, got "70000"'),
    "bad IP": ('# comment\nBIND_ADDR="10.0.0.256"\n', 2, "BIND_ADDR", 'expected an IPv4 address, got "10.0.0.256"'),
    "mode not allowed": ('VNET_MODE="EDGE"\n', 1, "VNET_MODE",
                         'expected one of SYSTEM STATIC MANAGED MANAGED-NOVLAN, got "EDGE"'),
    "addrspernet not a power of two": ('VNET_ADDRSPERNET="48"\n', 1, "VNET_ADDRSPERNET",
                                       'expected a power of 2 from 16 to 2048, got "48"'),
    "addrspernet too big": ('VNET_ADDRSPERNET="4096"\n', 1, "VNET_ADDRSPERNET",
                            'expected a power of 2 from 16 to 2048, got "4096"'),
    "bad MAC map": ('VNET_MACMAP="d0:0d:00:00:00:01=10.0.0.2 d0:0d:zz=10.0.0.3"\n', 1, "VNET_MACMAP",
                    "expected space-separated MAC=IP pairs"),
    "bad public IP range": ('\nVNET_PUBLICIPS="192.168.1.10-192.168.1.x"\n', 2, "VNET_PUBLICIPS",
                            "expected space-separated IPv4 addresses or ranges a.b.c.d-a.b.c.e"),
    "backwards public IP range": ('VNET_PUBLICIPS="192.168.1.10-192.168.1.2"\n', 1, "VNET_PUBLICIPS",
                                  "with the low address first"),
    "bad node": ('NODES="node1 node2:99999"\n', 1, "NODES", "expected space-separated host or host:port"),
    "bad netmask": ('VNET_NETMASK="255.0.255.0"\n', 1, "VNET_NETMASK", "expected an IPv4 netmask"),
    "bad hypervisor": ('HYPERVISOR="vmware"\n', 1, "HYPERVISOR", 'expected one of kvm qemu xen test, got "vmware"'),
    "bad flag": ('USE_VIRTIO_ROOT="yes"\n', 1, "USE_VIRTIO_ROOT", 'expected 0 or 1, got "yes"'),
    "polling out of range": ('NC_POLLING_FREQUENCY="0"\n', 1, "NC_POLLING_FREQUENCY",
                             'expected an integer from 1 to 3600, got "0"'),
    "negative MAX_MEM": ('MAX_MEM="-1"\n', 1, "MAX_MEM", 'expected a non-negative integer, got "-1"'),
    "unknown key": ('CC_PORT="8774"\nCC_PROT="8774"\n', 2, "CC_PROT", "unknown key; did you mean CC_PORT?"),
    "key set twice": ('CC_PORT="8774"\nCC_PORT="8775"\n', 2, "CC_PORT", "set twice (first on line 1)"),
    "syntax error": ('CC_PORT="8774"\n\nthis is not a setting\n', 3, None,
                     "expected KEY=\"value\", got 'this is not a setting'"),
    "section header": ('[cc]\nCC_PORT="8774"\n', 1, None, "expected KEY=\"value\""),
    "unbalanced quote": ('CC_PORT="8774\n', 1, None, "expected KEY=\"value\""),
    "MANAGED without subnet": ('VNET_MODE="MANAGED"\nVNET_DNS="10.0.0.1"\n', 1, "VNET_MODE",
                               "expected VNET_SUBNET and VNET_NETMASK to be set in MANAGED mode"),
    "MANAGED-NOVLAN without DNS": ('VNET_SUBNET="10.1.0.0"\nVNET_NETMASK="255.255.0.0"\nVNET_MODE="MANAGED-NOVLAN"\n',
                                   3, "VNET_MODE", "expected VNET_DNS to be set in MANAGED-NOVLAN mode"),
    "STATIC without map": (MANAGED_OK + 'VNET_MODE="STATIC"\n', 4, "VNET_MODE",
                           "expected VNET_BROADCAST, VNET_ROUTER and VNET_MACMAP to be set in STATIC mode"),
    "subnet not a network": ('VNET_SUBNET="10.1.2.3"\nVNET_NETMASK="255.255.0.0"\n', 1, "VNET_SUBNET",
                             'expected a network address for netmask 255.255.0.0, got "10.1.2.3"'),
}


@pytest.mark.parametrize("text, line, key, expected", BAD_FILES.values(), ids=list(BAD_FILES))
def test_bad_file_gives_one_line_naming_file_line_key_and_expectation(tmp_path, text, line, key, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    prefix = f"{path}:{line}: " + (f"{key}: " if key else "")
    assert message.startswith(prefix), message
    assert expected in message, message
    assert (caught.value.path, caught.value.line, caught.value.key) == (str(path), line, key)


def test_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "nowhere.conf"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: cannot read configuration file: No such file or directory"


def test_first_problem_in_file_order_is_reported(tmp_path):
    path = write(tmp_path, 'SC_PORT="x"\nCC_PORT="y"\n')
    with pytest.raises(ConfigError, match=r":1: SC_PORT: "):
        load_config(path)


def test_daemon_main_exits_1_with_one_line_and_no_traceback(tmp_path):
    path = write(tmp_path, 'LOGLEVEL="INFO"\nCC_PORT="80x"\n')
    code = "import sys; from eucacore.config import load_or_exit; load_or_exit(sys.argv[1]); print('started')"
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f'eucalyptus: {path}:2: CC_PORT: expected an integer from 1 to 65535, got "80x"\n'


def test_load_or_exit_returns_the_config_when_good(tmp_path):
    from eucacore.config import load_or_exit

    assert load_or_exit(write(tmp_path, 'CC_PORT="9000"\n'))["CC_PORT"] == 9000


def test_first_problem_in_file_order_wins_over_unknown_key(tmp_path):
    path = write(tmp_path, 'CC_PORT="y"\nNO_SUCH_KEY="1"\n')
    with pytest.raises(ConfigError, match=r":1: CC_PORT: "):
        load_config(path)

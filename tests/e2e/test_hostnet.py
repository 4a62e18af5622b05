"""eucacore.hostnet on this host, without VMs: ``up`` makes the bridge, dnsmasq and the NAT and
metadata rules; ``down`` removes all of it, also after a failed ``up``, and twice in a row."""

import ipaddress
import os
import subprocess
from pathlib import Path

import pytest
from pyroute2 import IPRoute

from eucacore import hostnet

pytestmark = pytest.mark.e2e


def rules() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def bridge_addresses(name: str) -> list[str] | None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        return [a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=found[0], family=2)] if found else None


@pytest.fixture
def network(tmp_path):
    net = hostnet.HostNetwork(f"eucahn{os.getpid() % 100000}", hostnet.free_subnet(), tmp_path / "state")
    yield net
    net.down()


def test_up_makes_everything_and_down_removes_it(network):
    forward_before = hostnet.IP_FORWARD.read_text()
    network.up(nat=True, metadata=("127.0.0.1", 8773))
    network.up(nat=True, metadata=("127.0.0.1", 8773))  # again: nothing doubled
    assert bridge_addresses(network.bridge) == [network.gateway]
    assert network.dnsmasq_pid()
    tagged = [line for line in rules().splitlines() if network.tag in line]
    assert len(tagged) == 5, tagged
    assert any("MASQUERADE" in line and str(network.subnet) in line for line in tagged)
    assert any("--to-destination 127.0.0.1:8773" in line and "169.254.169.254" in line for line in tagged)
    assert hostnet.IP_FORWARD.read_text().strip() == "1"
    assert Path(f"/proc/sys/net/ipv4/conf/{network.bridge}/route_localnet").read_text().strip() == "1"
    assert network.leases() == {}

    network.route_metadata(None)
    assert "169.254.169.254" not in "\n".join(line for line in rules().splitlines() if network.tag in line)

    pid = network.dnsmasq_pid()
    network.down()
    network.down()
    assert bridge_addresses(network.bridge) is None
    assert network.tag not in rules()
    assert not os.path.exists(f"/proc/{pid}")
    assert hostnet.IP_FORWARD.read_text() == forward_before
    assert list(network.state_dir.iterdir()) == []


def test_a_subnet_of_the_host_is_refused_and_nothing_stays(tmp_path):
    with IPRoute() as ipr:
        taken = hostnet._host_networks(ipr)[0]
    net = hostnet.HostNetwork(f"eucahx{os.getpid() % 100000}", ipaddress.IPv4Network(taken), tmp_path)
    with pytest.raises(hostnet.HostNetError, match="overlaps"):
        net.up(nat=False)
    assert bridge_addresses(net.bridge) is None and net.dnsmasq_pid() is None


def test_leases_are_read_from_dnsmasqs_file(network):
    network.state_dir.mkdir(parents=True)
    (network.state_dir / "dnsmasq.leases").write_text(
        "1763800000 d0:0d:12:34:56:78 10.213.0.57 guest 01:d0:0d:12:34:56:78\n"
        "1763800001 D0:0D:AA:BB:CC:DD 10.213.0.58 * *\n")
    assert network.leases() == {"d0:0d:12:34:56:78": "10.213.0.57", "d0:0d:aa:bb:cc:dd": "10.213.0.58"}

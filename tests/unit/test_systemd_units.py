"""The shipped systemd units pass `systemd-analyze verify` and start the daemons as notify services."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "etc" / "systemd"
DAEMONS = ["eucalyptus-cloud", "eucalyptus-cc", "eucalyptus-nc", "eucalyptus-walrus", "eucalyptus-sc"]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def read_unit(name: str) -> configparser.RawConfigParser:
    unit = configparser.RawConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNIT_DIR / f"{name}.service")
    return unit


def console_script(name: str) -> str:
    """The daemon's console script as installed beside this Python."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"console script {name} is not installed")
    return found


@pytest.mark.parametrize("name", DAEMONS)
def test_unit_runs_the_daemon_as_a_notify_service(name):
    unit = read_unit(name)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"] == f"/usr/bin/{name} --config /etc/eucalyptus/eucalyptus.conf"
    assert service["KillSignal"] == "SIGTERM"
    assert service["TimeoutStopSec"] == "60"
    assert service["Restart"] == "on-failure"
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert unit["Unit"]["Description"] and unit["Unit"]["Documentation"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_node_controller_starts_after_libvirt():
    assert "libvirtd.service" in read_unit("eucalyptus-nc")["Unit"]["After"].split()


@pytest.mark.skipif(not Path(SYSTEMD_ANALYZE).exists(), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", DAEMONS)
def test_systemd_analyze_verify_passes(name, tmp_path):
    # verify insists that ExecStart exists, so point it at the installed console script.
    text = (UNIT_DIR / f"{name}.service").read_text()
    unit_path = tmp_path / f"{name}.service"
    unit_path.write_text(text.replace(f"ExecStart=/usr/bin/{name} ", f"ExecStart={console_script(name)} "))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # Unknown keys and bad values are only warnings with exit 0: none may name our unit.
    assert f"{name}.service" not in output, output

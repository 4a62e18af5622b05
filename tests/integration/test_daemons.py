"""Item 1 and 2 at the process level: --help, --version, a bad config, SIGTERM draining."""

import subprocess
import sys

import pytest

from eucacore import __version__

pytestmark = pytest.mark.integration
MODULES = ["clc", "cc", "nc", "walrus", "sc"]


@pytest.mark.parametrize("module", MODULES)
def test_help_and_version(module):
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--config" in out.stdout and "--version" in out.stdout
    out = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and __version__ in out.stdout


@pytest.mark.parametrize("module", MODULES)
def test_bad_config_stops_with_one_line(module, tmp_path):
    conf = tmp_path / "eucalyptus.conf"
    conf.write_text('# a comment\nCC_PORT="87x4"\n')
    out = subprocess.run([sys.executable, "-m", module, "--config", str(conf)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == f'eucalyptus: {conf}:2: CC_PORT: expected an integer from 1 to 65535, got "87x4"'


def test_sigterm_exits_cleanly(tmp_path):
    """A daemon told to stop by SIGTERM stops serving and exits 0."""
    from tests.cloudharness import Cloud
    cloud = Cloud(tmp_path)
    cloud.setup()
    cloud.start_daemon("sc")
    assert cloud.stop_daemon("sc") == 0
    assert "stopped" in cloud.logs["sc"].read_text()

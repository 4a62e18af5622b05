"""Starting a daemon the way systemd does: with a NOTIFY_SOCKET, waiting for its READY=1."""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class LaunchError(Exception):
    """The daemon exited or stayed silent instead of becoming ready."""


def launch(module: str, conf: Path, log_path: Path, timeout: float = 60, detach: bool = False,
           env: dict | None = None) -> subprocess.Popen:
    """Run ``python -m module --config conf`` and return once it has sent READY=1.

    stderr goes to ``log_path`` (appended). With ``detach`` the daemon gets its own
    session, so it outlives the command that started it.
    """
    with tempfile.TemporaryDirectory(prefix="euca-notify-") as tmp:
        notify_path = Path(tmp) / "notify.sock"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(notify_path))
        sock.settimeout(0.5)
        child_env = dict(env or os.environ, NOTIFY_SOCKET=str(notify_path), PYTHONUNBUFFERED="1")
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", module, "--config", str(conf)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                    env=child_env, start_new_session=detach)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise LaunchError(f"{module} exited with status {proc.returncode}: "
                                      f"{Path(log_path).read_text(errors='replace')[-2000:]}")
                try:
                    if b"READY=1" in sock.recv(4096):
                        return proc
                except socket.timeout:
                    continue
            proc.kill()
            raise LaunchError(f"{module} did not become ready in {timeout:.0f}s; see {log_path}")
        finally:
            sock.close()

"""The real S3 clients the integration tests drive: the aws CLI, s3cmd and rclone.

``make deps`` installs them (awscli with the venv's test extra, s3cmd and rclone as
Debian packages); a missing one fails the test with the package to install.  Each tool
gets its own configuration under a work directory and a HOME there, so nothing of the
user's ~/.aws, ~/.s3cfg or rclone.conf is read.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

#: Where each tool comes from, for the message when it is missing.
PACKAGES = {"aws": "the pip package awscli (the [test] extra of setup.cfg)",
            "s3cmd": "the Debian package s3cmd", "rclone": "the Debian package rclone"}
#: Variables that would make a tool read another configuration or go through a proxy.
_FOREIGN_ENV = ("AWS_", "RCLONE_", "S3CMD", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """An S3 service (``url`` like http://127.0.0.1:8773) and the key pair to sign with."""

    url: str
    access_key: str
    secret_key: str
    region: str = "eucalyptus"

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc


def locate(name: str) -> str:
    """The path of the program ``name``: the running venv's bin first (pip puts ``aws``
    there), then PATH.  AssertionError naming the package to install when it is nowhere."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} is not installed: install {PACKAGES[name]} (`make deps` does)")
    return found


def run(argv: list[str], env: dict, timeout: float = 90, check: bool = True,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` and capture its output; AssertionError with that output when it fails
    (``check``) or outlives ``timeout`` seconds."""
    try:
        proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{argv} did not finish in {timeout}s\nstdout: {e.stdout}\nstderr: {e.stderr}") from None
    if check and proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode})\nstdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


class Tool:
    """One command-line S3 client configured for an endpoint; calling it runs one command."""

    name = ""

    def __init__(self, endpoint: Endpoint, workdir: Path):
        self.endpoint = endpoint
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.program = locate(self.name)
        self.env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_FOREIGN_ENV)}
        self.env.update(HOME=str(self.workdir), NO_PROXY="*")
        self.configure()

    def configure(self) -> None:
        """Write the tool's configuration files and set its environment."""

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return [self.program, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 90) -> subprocess.CompletedProcess:
        return run(self.argv(args), self.env, timeout, check, cwd=self.workdir)


class AwsCli(Tool):
    """The aws CLI (v1) with path-style addressing; files of ``multipart_threshold`` and
    more go up in ``multipart_chunksize`` parts.  No retries, so a failure shows at once."""

    name = "aws"

    def __init__(self, endpoint: Endpoint, workdir: Path, multipart_threshold: str = "8MB",
                 multipart_chunksize: str = "8MB"):
        self.multipart = (multipart_threshold, multipart_chunksize)
        super().__init__(endpoint, workdir)

    def configure(self) -> None:
        config = self.workdir / "aws-config"
        config.write_text("[default]\n"
                          f"region = {self.endpoint.region}\n"
                          "max_attempts = 1\n"
                          "s3 =\n"
                          "    addressing_style = path\n"
                          f"    multipart_threshold = {self.multipart[0]}\n"
                          f"    multipart_chunksize = {self.multipart[1]}\n")
        self.env.update(AWS_CONFIG_FILE=str(config),
                        AWS_SHARED_CREDENTIALS_FILE=str(self.workdir / "aws-credentials-unused"),
                        AWS_ACCESS_KEY_ID=self.endpoint.access_key,
                        AWS_SECRET_ACCESS_KEY=self.endpoint.secret_key,
                        AWS_DEFAULT_REGION=self.endpoint.region,
                        AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return [self.program, "--endpoint-url", self.endpoint.url, *args]

    def json(self, *args: str) -> dict:
        """The JSON output of an ``aws s3api`` command ({} when it prints nothing)."""
        out = self(*args, "--output", "json").stdout
        return json.loads(out) if out.strip() else {}


class S3cmd(Tool):
    """s3cmd over plain HTTP with path-style addressing, signing with SigV4 or,
    with ``signature_v2``, the S3 HmacV1 scheme."""

    name = "s3cmd"

    def __init__(self, endpoint: Endpoint, workdir: Path, signature_v2: bool = False):
        self.signature_v2 = signature_v2
        super().__init__(endpoint, workdir)

    @property
    def config(self) -> Path:
        return self.workdir / "s3cfg"

    def configure(self) -> None:
        # host_bucket without %(bucket)s keeps s3cmd on path-style requests.
        self.config.write_text("[default]\n"
                               f"access_key = {self.endpoint.access_key}\n"
                               f"secret_key = {self.endpoint.secret_key}\n"
                               f"host_base = {self.endpoint.netloc}\n"
                               f"host_bucket = {self.endpoint.netloc}\n"
                               "bucket_location = US\n"
                               "use_https = False\n"
                               f"signature_v2 = {self.signature_v2}\n"
                               "progress_meter = False\n")

    def argv(self, args: tuple[str, ...]) -> list[str]:
        return [self.program, "--config", str(self.config), *args]


class Rclone(Tool):
    """rclone with a remote named ``walrus`` configured only through RCLONE_CONFIG_WALRUS_*
    variables; one try per operation, so a failure shows at once."""

    name = "rclone"
    remote = "walrus"

    def configure(self) -> None:
        config = self.workdir / "rclone.conf"
        config.write_text("")
        prefix = f"RCLONE_CONFIG_{self.remote.upper()}_"
        self.env.update({
            "RCLONE_CONFIG": str(config), "RCLONE_RETRIES": "1", "RCLONE_LOW_LEVEL_RETRIES": "1",
            prefix + "TYPE": "s3", prefix + "PROVIDER": "Other", prefix + "ENDPOINT": self.endpoint.url,
            prefix + "ACCESS_KEY_ID": self.endpoint.access_key,
            prefix + "SECRET_ACCESS_KEY": self.endpoint.secret_key,
            prefix + "REGION": self.endpoint.region, prefix + "FORCE_PATH_STYLE": "true",
        })

    def path(self, path: str) -> str:
        """``path`` (bucket/key) on the configured remote."""
        return f"{self.remote}:{path}"

"""The credentials directory: what ``euca_conf --get-credentials`` and
``euare-accountcreate -d`` hand to a user.

One directory holds a eucarc (source it in a shell), an iamrc (for tools that
read ``AWS_CREDENTIAL_FILE``), a euca2ools 3.x ``euca2ools.ini`` and, when the
cloud's CA certificate is at hand, ``cloud-cert.pem``. Every file is written
owner-only and atomically (a reader sees the old file or the new one, never
half of one); a directory this creates is owner-only too.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import tempfile
from pathlib import Path

from euca2ools.credentials import DEFAULT_REGION, Creds, service_url

EUCARC = 'eucarc'
IAMRC = 'iamrc'
EUCA2OOLS_INI = 'euca2ools.ini'
CLOUD_CERT = 'cloud-cert.pem'


@dataclasses.dataclass(frozen=True)
class AccountKey:
    """An access key of one user of one account, as the directory records it."""

    account_name: str
    account_id: str
    user_name: str
    access_key: str
    secret_key: str = dataclasses.field(repr=False)

    @property
    def ini_user(self) -> str:
        """The euca2ools.ini user section name, ``ACCOUNT-USER``."""
        return f'{self.account_name}-{self.user_name}'


@dataclasses.dataclass(frozen=True)
class Endpoints:
    """The cloud's service URLs and region as the directory records them."""

    ec2_url: str
    s3_url: str | None
    euare_url: str
    properties_url: str
    reporting_url: str
    region: str = DEFAULT_REGION

    @classmethod
    def of_clc(cls, ec2_url: str, s3_url: str | None,
               region: str = DEFAULT_REGION) -> 'Endpoints':
        """The endpoints of a CLC whose EC2 service is at ``ec2_url`` (the rest share its port)."""
        return cls(ec2_url=ec2_url, s3_url=s3_url,
                   euare_url=service_url(ec2_url, 'euare'),
                   properties_url=service_url(ec2_url, 'properties'),
                   reporting_url=service_url(ec2_url, 'reporting'), region=region)

    @classmethod
    def of_creds(cls, creds: Creds) -> 'Endpoints':
        """The endpoints a command's own credentials use."""
        return cls(ec2_url=creds.url('ec2'), s3_url=creds.s3_url, euare_url=creds.url('euare'),
                   properties_url=creds.url('properties'),
                   reporting_url=creds.url('reporting'), region=creds.region)


def eucarc_text(key: AccountKey, endpoints: Endpoints, with_cert: bool) -> str:
    """A eucarc exporting the endpoints and keys (Eucalyptus 3.x variable names)."""
    exports = [('EC2_URL', endpoints.ec2_url), ('S3_URL', endpoints.s3_url),
               ('EUARE_URL', endpoints.euare_url), ('AWS_IAM_URL', endpoints.euare_url),
               ('EUCA_PROPERTIES_URL', endpoints.properties_url),
               ('EUCA_REPORTING_URL', endpoints.reporting_url),
               ('AWS_ACCESS_KEY_ID', key.access_key), ('AWS_SECRET_ACCESS_KEY', key.secret_key),
               ('AWS_ACCESS_KEY', key.access_key), ('AWS_SECRET_KEY', key.secret_key),
               ('EC2_ACCESS_KEY', key.access_key), ('EC2_SECRET_KEY', key.secret_key),
               ('EC2_ACCOUNT_NUMBER', key.account_id), ('EC2_USER_ID', key.account_id)]
    lines = ['EUCA_KEY_DIR=$(cd $(dirname ${BASH_SOURCE:-$0}); pwd -P)']
    lines += [f'export {name}={shlex.quote(value)}' for name, value in exports if value]
    # ${EUCA_KEY_DIR} stays unquoted so that the shell expands it.
    lines.append(f'export AWS_CREDENTIAL_FILE=${{EUCA_KEY_DIR}}/{IAMRC}')
    if with_cert:
        lines.append(f'export EUCALYPTUS_CERT=${{EUCA_KEY_DIR}}/{CLOUD_CERT}')
    region = shlex.quote(endpoints.region)
    lines += [f'export AWS_DEFAULT_REGION={region}', f'export EUCA_DEFAULT_REGION={region}']
    return '\n'.join(lines) + '\n'


def iamrc_text(key: AccountKey) -> str:
    """The AWS_CREDENTIAL_FILE format of the IAM command-line tools."""
    return f'AWSAccessKeyId={key.access_key}\nAWSSecretKey={key.secret_key}\n'


def euca2ools_ini_text(key: AccountKey, endpoints: Endpoints) -> str:
    """A euca2ools 3.x configuration: the user's keys and the region using them."""
    region = [('ec2-url', endpoints.ec2_url), ('s3-url', endpoints.s3_url),
              ('iam-url', endpoints.euare_url), ('user', key.ini_user)]
    lines = [f'[user {key.ini_user}]', f'key-id = {key.access_key}',
             f'secret-key = {key.secret_key}', f'account-id = {key.account_id}', '',
             f'[region {endpoints.region}]']
    lines += [f'{name} = {value}' for name, value in region if value]
    return '\n'.join(lines) + '\n'


def prepare_credentials_dir(directory: Path | str) -> Path:
    """The directory, created 0700 if missing; OSError if it cannot be written.

    Call it before creating what will be written there, so a bad directory is
    found before an account or key exists that nobody would get the secret of.
    """
    directory = Path(directory)
    if not directory.is_dir():
        directory.mkdir(parents=True, mode=0o700)
        directory.chmod(0o700)  # mkdir's mode is cut by the umask
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f'cannot write credentials into {directory}')
    return directory


def write_credentials_dir(directory: Path | str, key: AccountKey, endpoints: Endpoints,
                          ca_cert: Path | str | None = None) -> Path:
    """Write eucarc, iamrc, euca2ools.ini (and a copy of ``ca_cert``) into ``directory``.

    Returns the eucarc's path. A missing ``ca_cert`` file is the same as none:
    the eucarc then names no EUCALYPTUS_CERT.
    """
    directory = prepare_credentials_dir(directory)
    cert = Path(ca_cert).read_bytes() if ca_cert and Path(ca_cert).is_file() else None
    if cert is not None:
        _write_private(directory / CLOUD_CERT, cert)
    _write_private(directory / IAMRC, iamrc_text(key).encode())
    _write_private(directory / EUCA2OOLS_INI, euca2ools_ini_text(key, endpoints).encode())
    # The eucarc last: it names the others, so it appears only once they exist.
    eucarc = directory / EUCARC
    _write_private(eucarc, eucarc_text(key, endpoints, with_cert=cert is not None).encode())
    return eucarc


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically by a 0600 file holding ``data``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.')
    try:
        with os.fdopen(fd, 'wb') as out:  # mkstemp creates it 0600
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

"""Where euca-* commands find their endpoints and keys.

Order of precedence, per setting: command-line options, then environment
variables, then the eucarc at ``~/.euca/eucarc`` (read as text, never run).
The CLC serves all its services on one port, so an endpoint that is set
nowhere is EC2_URL with the service's path (``/services/Euare``...).
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Mapping

DEFAULT_REGION = 'eucalyptus'

# Each setting and the variables that carry it, first match wins (euca2ools 3.x
# names first, then the 1.x/2.x names the eucarc also exports).
SERVICE_URL_VARS = {
    'ec2': ('EC2_URL',),
    'euare': ('EUARE_URL', 'AWS_IAM_URL'),
    'properties': ('EUCA_PROPERTIES_URL',),
    'reporting': ('EUCA_REPORTING_URL',),
}
# Where the CLC serves each service, on its EC2 port.
SERVICE_PATHS = {
    'ec2': '/services/compute',
    'euare': '/services/Euare',
    'properties': '/services/Properties',
    'reporting': '/services/Reporting',
}
SERVICE_LABELS = {'ec2': 'compute', 'euare': 'Euare (IAM)', 'properties': 'cloud properties',
                  'reporting': 'usage reporting'}
EC2_URL_VARS = SERVICE_URL_VARS['ec2']
S3_URL_VARS = ('S3_URL',)
ACCESS_KEY_VARS = ('AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY', 'EC2_ACCESS_KEY')
SECRET_KEY_VARS = ('AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_KEY', 'EC2_SECRET_KEY')
REGION_VARS = ('EUCA_DEFAULT_REGION', 'AWS_DEFAULT_REGION')
CA_CERT_VARS = ('EUCALYPTUS_CERT',)


class CredentialsError(Exception):
    """Raised when a required setting is found nowhere; the message names it."""


def service_url(url: str, service: str) -> str:
    """``url`` (any of the CLC's endpoints) with the path the CLC serves ``service`` at."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, SERVICE_PATHS[service], '', ''))


@dataclasses.dataclass(frozen=True)
class Creds:
    """Everything needed to talk to the cloud's endpoints.

    ``ec2_url`` is None only for a command of another service whose own URL
    was given; the ``*_url`` of other services are None unless set explicitly
    (:meth:`url` derives them).
    """

    ec2_url: str | None
    s3_url: str | None
    access_key: str
    secret_key: str
    region: str
    ca_cert: str | None
    euare_url: str | None = None
    properties_url: str | None = None
    reporting_url: str | None = None

    def url(self, service: str = 'ec2') -> str:
        """The endpoint of ``service``: its own setting, else derived from one that is set."""
        explicit = getattr(self, f'{service}_url')
        if explicit:
            return explicit
        known = [getattr(self, f'{name}_url') for name in SERVICE_URL_VARS]
        return service_url(next(url for url in known if url), service)

    def verify(self, service: str = 'ec2') -> bool | str:
        """The explicit ``verify=`` for botocore talking to ``service``.

        Always explicit, so REQUESTS_CA_BUNDLE/AWS_CA_BUNDLE in the environment
        cannot silently replace the cloud's certificate.
        """
        if self.url(service).lower().startswith('https:') and self.ca_cert:
            return self.ca_cert
        return True


_ASSIGNMENT = re.compile(r'^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$')
_VARIABLE = re.compile(r'\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))')


def parse_eucarc(path: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Read a eucarc's ``[export] KEY=value`` lines into a dict without a shell.

    Quotes are stripped, ``$VAR``/``${VAR}`` expand from earlier lines and then
    from ``environ``; an ``EUCA_KEY_DIR=$(...)`` line means the eucarc's own
    directory. Other lines (aliases, comments, other command substitutions)
    are skipped.
    """
    environ = os.environ if environ is None else environ
    key_dir = os.path.dirname(os.path.realpath(path))
    values: dict[str, str] = {}
    with open(path, encoding='utf-8') as eucarc:
        for line in eucarc:
            match = _ASSIGNMENT.match(line.rstrip('\n'))
            if not match:
                continue
            name, raw = match.groups()
            if name == 'EUCA_KEY_DIR' and ('$(' in raw or '`' in raw):
                values[name] = key_dir
                continue
            if '$(' in raw or '`' in raw:
                continue
            values[name] = _shell_value(raw, lambda var: values.get(var, environ.get(var, '')))
    return values


def _shell_value(raw: str, lookup) -> str:
    """Evaluate one shell word: quotes removed, variables expanded except in ''."""
    out: list[str] = []
    i, quote = 0, None
    raw = raw.strip()
    while i < len(raw):
        char = raw[i]
        if quote == "'":
            if char == "'":
                quote = None
            else:
                out.append(char)
        elif char == '"':
            quote = None if quote == '"' else '"'
        elif char == "'" and quote is None:
            quote = "'"
        elif char == '\\' and i + 1 < len(raw):
            i += 1
            out.append(raw[i])
        elif char == '$':
            match = _VARIABLE.match(raw, i)
            if match:
                out.append(lookup(match.group(1) or match.group(2)))
                i = match.end()
                continue
            out.append(char)
        elif quote is None and (char.isspace() or char == ';'):
            break
        else:
            out.append(char)
        i += 1
    return ''.join(out)


def _first(sources: list[Mapping[str, str]], names: tuple[str, ...]) -> str | None:
    for source in sources:
        for name in names:
            if source.get(name):
                return source[name]
    return None


def _endpoint_requirement(service: str) -> tuple[str, tuple[str, ...]]:
    """What a ``service`` command needs to find its endpoint: (label, variables)."""
    if service == 'ec2':
        return 'EC2 endpoint URL (EC2_URL or -U)', EC2_URL_VARS
    names = SERVICE_URL_VARS[service] + EC2_URL_VARS
    return (f'{SERVICE_LABELS[service]} endpoint URL ({", ".join(names)} or -U)', names)


def load_credentials(args, environ: Mapping[str, str] | None = None,
                     eucarc_path: str | None = None, service: str = 'ec2') -> Creds:
    """Resolve a Creds for a ``service`` command from options, environment and eucarc.

    ``args`` may carry ``url`` (the endpoint of ``service``), ``access_key_id``,
    ``secret_key``, ``region`` (absent or None means unset). The eucarc is read
    only when some setting is still missing after options and environment.
    Raises CredentialsError.
    """
    environ = os.environ if environ is None else environ
    cli = {name: getattr(args, attr, None) for name, attr in (
        (SERVICE_URL_VARS[service][0], 'url'), ('AWS_ACCESS_KEY_ID', 'access_key_id'),
        ('AWS_SECRET_ACCESS_KEY', 'secret_key'), ('EUCA_DEFAULT_REGION', 'region'))}
    cli = {name: value for name, value in cli.items() if value}
    sources: list[Mapping[str, str]] = [cli, environ]
    endpoint = _endpoint_requirement(service)
    wanted = (endpoint[1], ACCESS_KEY_VARS, SECRET_KEY_VARS)
    if not all(_first(sources, names) for names in wanted):
        eucarc = _read_default_eucarc(environ, eucarc_path)
        if eucarc:
            sources.append(eucarc)
    missing = [label for label, names in (
        endpoint,
        ('access key ID (AWS_ACCESS_KEY_ID or -I)', ACCESS_KEY_VARS),
        ('secret key (AWS_SECRET_ACCESS_KEY or -S)', SECRET_KEY_VARS))
        if not _first(sources, names)]
    if missing:
        raise CredentialsError('missing ' + ', '.join(missing)
                               + '; source a eucarc or create ~/.euca/eucarc')
    urls = {f'{name}_url': _first(sources, names) for name, names in SERVICE_URL_VARS.items()}
    return Creds(s3_url=_first(sources, S3_URL_VARS),
                 access_key=_first(sources, ACCESS_KEY_VARS),
                 secret_key=_first(sources, SECRET_KEY_VARS),
                 region=_first(sources, REGION_VARS) or DEFAULT_REGION,
                 ca_cert=_first(sources, CA_CERT_VARS), **urls)


def _read_default_eucarc(environ: Mapping[str, str], path: str | None) -> dict[str, str]:
    if path is None:
        home = environ.get('HOME') or os.path.expanduser('~')
        path = os.path.join(home, '.euca', 'eucarc')
    if not os.path.isfile(path):
        return {}
    try:
        return parse_eucarc(path, environ)
    except (OSError, UnicodeDecodeError) as err:
        raise CredentialsError(f'cannot read {path}: {err}') from err

"""What every euca-*/euare-* command shares: common options, the boto3 client, errors.

A command is ``run(parser, action, argv, service=...)``: parse the arguments,
resolve the credentials, build a client of the command's service (``ec2``,
``euare``, ``properties``, ``reporting``), ``action(client, args)`` returns
the lines to print. Failures become one line on stderr and exit code 1;
``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

import botocore.config
import botocore.exceptions

from euca2ools.credentials import (SERVICE_LABELS, SERVICE_URL_VARS, Creds, CredentialsError,
                                   load_credentials)
from eucacore.awsapi import models

Action = Callable[[object, argparse.Namespace], list[str]]

# One retry: a CLI user waits on every attempt, and the CLC is on the LAN.
_CLIENT_CONFIG = botocore.config.Config(
    retries={'mode': 'standard', 'total_max_attempts': 2},
    connect_timeout=10, read_timeout=120)


class CommandError(Exception):
    """A failure the command reports as one line, ``prog: error: <message>``."""


def command_parser(prog: str, description: str, *, cloud: bool = True,
                   service: str = 'ec2') -> argparse.ArgumentParser:
    """An ArgumentParser with euca2ools 3.x's common options (for ``cloud`` commands).

    ``-U`` sets the endpoint of ``service``, the one the command talks to.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if cloud:
        group = parser.add_argument_group('standard options')
        group.add_argument('-U', '--url', metavar='URL',
                           help=f'{SERVICE_LABELS[service]} service endpoint URL '
                                f'(default: ${SERVICE_URL_VARS[service][0]})')
        group.add_argument('-I', '--access-key-id', metavar='KEY_ID',
                           help='access key ID (default: $AWS_ACCESS_KEY_ID)')
        group.add_argument('-S', '--secret-key', metavar='KEY',
                           help='secret access key (default: $AWS_SECRET_ACCESS_KEY)')
        group.add_argument('--region', metavar='REGION',
                           help='region name to sign requests for (default: eucalyptus)')
        group.add_argument('--show-empty-fields', action='store_true',
                           help='show empty values as "(nil)"')
    parser.add_argument('--debug', action='store_true',
                        help='show debugging output and tracebacks')
    return parser


def parse_filter(text: str) -> tuple[str, str]:
    """argparse type for ``--filter name=value``."""
    name, sep, value = text.partition('=')
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"filter '{text}' must have format NAME=VALUE")
    return name, value


def add_filter_option(parser: argparse.ArgumentParser) -> None:
    """Add euca2ools' repeatable ``-F/--filter NAME=VALUE``."""
    parser.add_argument('-F', '--filter', dest='filters', metavar='NAME=VALUE',
                        action='append', type=parse_filter, default=[],
                        help='restrict results to those that meet criteria (repeatable)')


def build_filters(pairs: Sequence[tuple[str, str]]) -> list[dict]:
    """[(name, value), ...] -> EC2 Filters, values of one name grouped, order kept."""
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return [{'Name': name, 'Values': values} for name, values in grouped.items()]


def empty_field(args: argparse.Namespace) -> str:
    """What a missing field prints as for this invocation."""
    return '(nil)' if getattr(args, 'show_empty_fields', False) else ''


def make_client(service: str, creds: Creds):
    """A boto3 client of one of the cloud's services, independent of ~/.aws and AWS_* settings."""
    # models' session ignores named profiles: they belong to other clouds, and
    # AWS_PROFILE must not pick one (nor fail the command when it names a
    # profile this machine lacks).
    return models.client(service, endpoint_url=creds.url(service),
                         access_key=creds.access_key, secret_key=creds.secret_key,
                         region=creds.region, verify=creds.verify(service),
                         config=_CLIENT_CONFIG)


def make_ec2_client(creds: Creds):
    """A boto3 EC2 client for the cloud."""
    return make_client('ec2', creds)


def describe_error(err: BaseException, url: str | None = None,
                   url_variable: str = 'EC2_URL') -> str:
    """The one-line message (without the ``prog:`` prefix) for a failure.

    ``url`` is the endpoint the command talked to, named by ``url_variable``.
    """
    if isinstance(err, botocore.exceptions.ClientError):
        error = err.response.get('Error', {})
        code = error.get('Code') or 'Unknown'
        message = error.get('Message') or str(err)
        return f'error ({code}): {message}'
    if isinstance(err, (botocore.exceptions.EndpointConnectionError,
                        botocore.exceptions.ConnectionError)):
        url = url or getattr(err, 'kwargs', {}).get('endpoint_url', '')
        return f'error: cannot reach {url_variable} {url}: {_connection_reason(err)}'
    if isinstance(err, CredentialsError):
        return f'error: {err}'
    return f'error: {err}'


def _connection_reason(err: BaseException) -> str:
    """The innermost OS-level reason ('Connection refused') of a connection error."""
    seen = set()
    todo: list[BaseException | None] = [getattr(err, 'kwargs', {}).get('error'), err]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        todo.extend((current.__cause__, current.__context__))
        todo.extend(arg for arg in getattr(current, 'args', ()) if isinstance(arg, BaseException))
    inner = getattr(err, 'kwargs', {}).get('error')
    return str(inner or err)


def run(parser: argparse.ArgumentParser, action: Action,
        argv: Sequence[str] | None = None, *, service: str = 'ec2',
        with_credentials: bool = False) -> int:
    """Run one command of ``service``; return its exit code.

    ``with_credentials``: the action also gets the resolved Creds,
    ``action(client, args, creds)``, for commands that hand out endpoints.
    """
    args = parser.parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    creds = None
    try:
        creds = load_credentials(args, service=service)
        client = make_client(service, creds)
        lines = action(client, args, creds) if with_credentials else action(client, args)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
            CredentialsError, CommandError, OSError) as err:
        if args.debug:
            traceback.print_exc()
        message = describe_error(err, creds and creds.url(service), SERVICE_URL_VARS[service][0])
        print(f'{parser.prog}: {message}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    emit(lines)
    return 0


def emit(lines: Sequence[str]) -> None:
    """Print output lines, tolerating a closed pipe (``| head``)."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()

"""The euare-* commands (euca2ools 3.x's IAM and Eucalyptus account tools).

Shared here: the common options (every command takes ``--as-account``, the
cloud admin acting inside another account, sent as ``DelegateAccount``), the
request builder, Marker pagination, policy documents and key output. The
commands live in ``accounts``, ``quotas``, ``users``, ``groups`` and
``policies``; each is ``<command>_parser()``, a pure ``<command>_request(args)``
where there is a request to build, and the console script ``<command>(argv)``.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence

import botocore.exceptions

from euca2ools import cli, output
from eucacore.awsapi.models import DELEGATE

SERVICE = 'euare'
#: The user every account has, who may do anything in it.
ACCOUNT_ADMIN = 'admin'


def euare_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An ArgumentParser with the common options of euare-* commands."""
    parser = cli.command_parser(prog, description, service=SERVICE)
    parser.add_argument('--as-account', dest='as_account', metavar='ACCOUNT',
                        help='[Eucalyptus cloud admin] act as the admin of ACCOUNT')
    return parser


def euare_request(args: argparse.Namespace, **fields) -> dict:
    """Keyword arguments of a Euare call: the ``fields`` that are set, plus ``--as-account``."""
    request = {name: value for name, value in fields.items() if value is not None}
    if getattr(args, 'as_account', None):
        request[DELEGATE] = args.as_account
    return request


def run(parser: argparse.ArgumentParser, action, argv: Sequence[str] | None,
        **options) -> int:
    """Run a euare-* command against the Euare endpoint; see :func:`cli.run`."""
    return cli.run(parser, action, argv, service=SERVICE, **options)


def pages(call: Callable[..., Mapping], request: Mapping) -> Iterator[Mapping]:
    """Each response of a Marker-paginated IAM call, following IsTruncated/Marker."""
    request = dict(request)
    while True:
        response = call(**request)
        yield response
        if not (response.get('IsTruncated') and response.get('Marker')):
            return
        request['Marker'] = response['Marker']


def list_all(call: Callable[..., Mapping], key: str, request: Mapping) -> list:
    """Every item under ``key`` of a Marker-paginated IAM listing."""
    return [item for response in pages(call, request) for item in response.get(key) or ()]


def is_no_such_entity(err: Exception) -> bool:
    """Whether a call failed because what it named does not exist."""
    return (isinstance(err, botocore.exceptions.ClientError)
            and err.response.get('Error', {}).get('Code') == 'NoSuchEntity')


# --- options -----------------------------------------------------------------

def add_account_option(parser: argparse.ArgumentParser, help_text: str,
                       required: bool = True) -> None:
    """``-a/--account-name ACCOUNT``."""
    parser.add_argument('-a', '--account-name', dest='account_name', metavar='ACCOUNT',
                        required=required, help=help_text)


def add_user_option(parser: argparse.ArgumentParser, help_text: str,
                    required: bool = True) -> None:
    """``-u/--user-name USER``."""
    parser.add_argument('-u', '--user-name', dest='user_name', metavar='USER',
                        required=required, help=help_text)


def add_group_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``-g/--group-name GROUP`` (required)."""
    parser.add_argument('-g', '--group-name', dest='group_name', metavar='GROUP',
                        required=True, help=help_text)


def add_path_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``-p/--path PATH`` of a new user or group."""
    parser.add_argument('-p', '--path', metavar='PATH',
                        help=f'path for the new {what} (default: "/")')


def add_path_prefix_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``-p/--path-prefix PATH`` of a listing."""
    parser.add_argument('-p', '--path-prefix', dest='path_prefix', metavar='PATH',
                        help=f'restrict results to {what} whose paths begin with PATH')


def add_recursive_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``-r/--recursive`` and ``-P/--pretend`` of a deletion."""
    parser.add_argument('-r', '--recursive', action='store_true',
                        help=f'first remove everything that belongs to the {what}')
    parser.add_argument('-P', '--pretend', action='store_true',
                        help='list what -r would remove instead of removing anything')


# --- output ------------------------------------------------------------------

def format_access_key(response: Mapping, empty: str = '') -> list[str]:
    """CreateAccessKey -> AKID SECRET."""
    key = response.get('AccessKey') or {}
    return [output.tabify((key.get('AccessKeyId'), key.get('SecretAccessKey')), empty)]


def format_entity(entity: Mapping) -> list[str]:
    """A user or group, as -v prints it: its ARN, then its id."""
    return [entity.get('Arn') or '', entity.get('UserId') or entity.get('GroupId') or '']


def format_arns(entities: Sequence[Mapping], indent: str = '') -> list[str]:
    """One ARN a line."""
    return [indent + (entity.get('Arn') or '') for entity in entities]


def policy_document_text(document, pretty: bool = False) -> str:
    """A policy document as GetXxxPolicy returned it (URL-encoded, as IAM sends it), readable."""
    if isinstance(document, (dict, list)):
        text = json.dumps(document)
    else:
        text = urllib.parse.unquote(document or '')
    if pretty:
        try:
            return json.dumps(json.loads(text), indent=4)
        except ValueError:
            return text
    return text

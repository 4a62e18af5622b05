"""Account quotas: ``euare-accountsetquota`` and ``euare-accountlistquotas``.

A quota is a ``Limit`` statement in an account policy (Eucalyptus' way); this
command keeps them all in the account's policy named ``quota``, rewriting it
from the merge of what it held and the ``-q`` settings given.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

import botocore.exceptions

from euca2ools import cli, euare, output
from euca2ools.cli import CommandError
from euca2ools.euare import euare_request
from eucacore import policy

QUOTA_POLICY = 'quota'
_UNLIMITED = ('-1', 'unlimited')


def parse_quota_setting(text: str) -> tuple[str, str]:
    """argparse type for ``-q NAME=VALUE`` (names and values are checked later)."""
    name, sep, value = text.partition('=')
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"quota '{text}' must have format NAME=VALUE")
    return name.strip(), value.strip()


def quota_updates(settings: Sequence[tuple[str, str]]) -> dict[str, int | None]:
    """-q settings -> {quota name: limit, or None to remove it}; a later setting wins.

    Raises CommandError naming the valid quotas for an unknown name, or for a
    value that is neither a non-negative integer nor -1/unlimited.
    """
    updates: dict[str, int | None] = {}
    for name, value in settings:
        if name not in policy.QUOTAS:
            raise CommandError(f"unknown quota '{name}'; valid quotas: {', '.join(policy.QUOTAS)}")
        if value.lower() in _UNLIMITED:
            updates[name] = None
        elif value.isascii() and value.isdigit():
            updates[name] = int(value)
        else:
            raise CommandError(f"quota {name}: '{value}' is not a non-negative integer, "
                               "-1 or unlimited")
    return updates


def merge_quotas(current: Mapping[str, int],
                 updates: Mapping[str, int | None]) -> dict[str, int]:
    """The quotas after applying ``updates`` (None removes a quota), in QUOTAS order."""
    merged = dict(current)
    for name, value in updates.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return {name: merged[name] for name in policy.QUOTAS if name in merged}


def current_quotas(document: str | None) -> dict[str, int]:
    """The quotas a ``quota`` policy document sets ({} for none)."""
    if document is None:
        return {}
    try:
        return policy.limits([policy.parse(euare.policy_document_text(document))])
    except policy.PolicyError as err:
        raise CommandError(f"the account's '{QUOTA_POLICY}' policy cannot be read: {err}") from None


def quota_policy_request(args: argparse.Namespace, quotas: Mapping[str, int]) -> dict:
    """PutAccountPolicy keyword arguments that set exactly ``quotas``."""
    return euare_request(args, AccountName=args.account_name, PolicyName=QUOTA_POLICY,
                         PolicyDocument=policy.quota_policy(quotas))


def _quota_help() -> str:
    return 'quotas: ' + '; '.join(f'{quota.name} ({quota.description}, {quota.unit})'
                                  for quota in policy.QUOTAS.values())


def account_set_quota_parser() -> argparse.ArgumentParser:
    """Arguments of euare-accountsetquota."""
    parser = euare.euare_parser('euare-accountsetquota', "Set or remove an account's quotas")
    parser.epilog = _quota_help()
    euare.add_account_option(parser, 'account to set quotas of (required)')
    parser.add_argument('-q', '--quota', dest='quotas', metavar='NAME=VALUE', action='append',
                        type=parse_quota_setting, required=True,
                        help='set a quota; -1 or "unlimited" removes it (repeatable)')
    return parser


def _get_quota_document(iam, args: argparse.Namespace) -> str | None:
    try:
        response = iam.get_account_policy(
            **euare_request(args, AccountName=args.account_name, PolicyName=QUOTA_POLICY))
    except botocore.exceptions.ClientError as err:
        if euare.is_no_such_entity(err):
            return None
        raise
    return response.get('PolicyDocument')


def account_set_quota(argv=None) -> int:
    """euare-accountsetquota: prints nothing."""
    def action(iam, args):
        updates = quota_updates(args.quotas)
        document = _get_quota_document(iam, args)
        quotas = merge_quotas(current_quotas(document), updates)
        if quotas:
            iam.put_account_policy(**quota_policy_request(args, quotas))
        elif document is not None:
            iam.delete_account_policy(**euare_request(args, AccountName=args.account_name,
                                                      PolicyName=QUOTA_POLICY))
        return []
    return euare.run(account_set_quota_parser(), action, argv)


def account_list_quotas_parser() -> argparse.ArgumentParser:
    """Arguments of euare-accountlistquotas."""
    parser = euare.euare_parser('euare-accountlistquotas', "Show accounts' quotas and usage")
    euare.add_account_option(parser, 'account to show (default: all the caller may see)',
                             required=False)
    return parser


def format_quotas(response: Mapping, empty: str = '') -> list[str]:
    """ListAccountQuotas -> QUOTA account name used limit (limit -1: unlimited)."""
    lines = []
    for quota in response.get('Quotas') or ():
        limit = quota.get('Limit')
        lines.append(output.tabify((
            'QUOTA', quota.get('AccountName'), quota.get('Name'), quota.get('Used'),
            'unlimited' if limit == -1 else limit), empty))
    return lines


def account_list_quotas(argv=None) -> int:
    """euare-accountlistquotas: see :func:`format_quotas`."""
    def action(iam, args):
        response = iam.list_account_quotas(**euare_request(args, AccountName=args.account_name))
        return format_quotas(response, cli.empty_field(args))
    return euare.run(account_list_quotas_parser(), action, argv)

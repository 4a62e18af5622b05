"""The euare-account* commands of the cloud admin: create, list and delete accounts.

(Account policies are in ``euare.policies``, quotas in ``euare.quotas``.)
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from euca2ools import cli, creddir, euare, output
from euca2ools.credentials import Creds
from euca2ools.euare import euare_request


def account_create_parser() -> argparse.ArgumentParser:
    """Arguments of euare-accountcreate."""
    parser = euare.euare_parser('euare-accountcreate', 'Create a new account')
    euare.add_account_option(parser, 'name of the new account (required)')
    parser.add_argument('-k', '--create-accesskey', dest='create_accesskey', action='store_true',
                        help="create an access key for the new account's admin user and show it")
    parser.add_argument('-d', '--credentials-dir', dest='credentials_dir', metavar='DIR',
                        help="write the admin user's eucarc, iamrc and euca2ools.ini into DIR, "
                             'with your own endpoints (implies -k)')
    return parser


def format_account(account: Mapping, empty: str = '') -> str:
    """NAME ID."""
    return output.tabify((account.get('AccountName'), account.get('AccountId')), empty)


def account_create(argv=None) -> int:
    """euare-accountcreate: NAME ID, then with -k/-d ``AKID SECRET``."""
    def action(iam, args, creds: Creds):
        empty = cli.empty_field(args)
        if args.credentials_dir:
            creddir.prepare_credentials_dir(args.credentials_dir)
        account = iam.create_account(
            **euare_request(args, AccountName=args.account_name)).get('Account') or {}
        lines = [format_account(account, empty)]
        if args.create_accesskey or args.credentials_dir:
            response = iam.create_access_key(UserName=euare.ACCOUNT_ADMIN,
                                             DelegateAccount=args.account_name)
            lines += euare.format_access_key(response, empty)
            if args.credentials_dir:
                key = response.get('AccessKey') or {}
                creddir.write_credentials_dir(
                    args.credentials_dir,
                    creddir.AccountKey(account_name=args.account_name,
                                       account_id=account.get('AccountId') or '',
                                       user_name=euare.ACCOUNT_ADMIN,
                                       access_key=key.get('AccessKeyId') or '',
                                       secret_key=key.get('SecretAccessKey') or ''),
                    creddir.Endpoints.of_creds(creds), creds.ca_cert)
        return lines
    return euare.run(account_create_parser(), action, argv, with_credentials=True)


def account_list_parser() -> argparse.ArgumentParser:
    """Arguments of euare-accountlist."""
    return euare.euare_parser('euare-accountlist', "List the cloud's accounts")


def account_list(argv=None) -> int:
    """euare-accountlist: NAME ID per account."""
    def action(iam, args):
        accounts = euare.list_all(iam.list_accounts, 'Accounts', euare_request(args))
        return [format_account(account, cli.empty_field(args)) for account in accounts]
    return euare.run(account_list_parser(), action, argv)


def account_del_parser() -> argparse.ArgumentParser:
    """Arguments of euare-accountdel."""
    parser = euare.euare_parser('euare-accountdel', 'Delete an account')
    euare.add_account_option(parser, 'name of the account to delete (required)')
    parser.add_argument('-r', '--recursive', action='store_true',
                        help="delete the account's users, groups, keys and policies too")
    return parser


def account_del_request(args: argparse.Namespace) -> dict:
    """DeleteAccount keyword arguments for parsed options."""
    return euare_request(args, AccountName=args.account_name,
                         Recursive=True if args.recursive else None)


def account_del(argv=None) -> int:
    """euare-accountdel: prints nothing."""
    def action(iam, args):
        iam.delete_account(**account_del_request(args))
        return []
    return euare.run(account_del_parser(), action, argv)

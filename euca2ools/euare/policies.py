"""Policies attached to users, groups and accounts: upload, list, get, delete.

The four commands are the same for each kind of owner; only the option naming
the owner and the Euare operations differ (``put_user_policy``,
``put_group_policy``, ``put_account_policy``...), so one implementation serves
all twelve euare-*policy commands.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

from euca2ools import euare


@dataclasses.dataclass(frozen=True)
class PolicyOwner:
    """A kind of entity policies attach to, and how commands name one."""

    kind: str      # 'user': part of command names and of boto3 method names
    option: str    # '-u'
    dest: str      # 'user_name', the parsed option and the long option's name
    param: str     # 'UserName', the Euare request member

    def method(self, template: str) -> str:
        """The boto3 method name, ``template`` with ``{kind}`` filled in."""
        return template.format(kind=self.kind)

    def add_option(self, parser: argparse.ArgumentParser, help_text: str) -> None:
        """The required option naming the owner."""
        parser.add_argument(self.option, '--' + self.dest.replace('_', '-'), dest=self.dest,
                            metavar=self.kind.upper(), required=True, help=help_text)


USER = PolicyOwner('user', '-u', 'user_name', 'UserName')
GROUP = PolicyOwner('group', '-g', 'group_name', 'GroupName')
ACCOUNT = PolicyOwner('account', '-a', 'account_name', 'AccountName')


def _owner_request(owner: PolicyOwner, args: argparse.Namespace, **fields) -> dict:
    return euare.euare_request(args, **{owner.param: getattr(args, owner.dest)}, **fields)


def _add_policy_name(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument('-p', '--policy-name', dest='policy_name', metavar='POLICY',
                        required=True, help=help_text)


# --- upload ------------------------------------------------------------------

def upload_policy_parser(owner: PolicyOwner) -> argparse.ArgumentParser:
    """Arguments of euare-<kind>uploadpolicy."""
    parser = euare.euare_parser(f'euare-{owner.kind}uploadpolicy',
                                f'Attach a policy to {"an" if owner.kind == "account" else "a"} '
                                f'{owner.kind}')
    owner.add_option(parser, f'{owner.kind} to attach the policy to (required)')
    _add_policy_name(parser, 'name to give the policy (required)')
    document = parser.add_mutually_exclusive_group(required=True)
    document.add_argument('-o', '--policy-content', dest='policy_content', metavar='POLICY_CONTENT',
                          help='the policy document (JSON)')
    document.add_argument('-f', '--policy-document', dest='policy_file', metavar='FILE',
                          help='file containing the policy document')
    return parser


def upload_policy_request(owner: PolicyOwner, args: argparse.Namespace,
                          document: str | None = None) -> dict:
    """Put<Kind>Policy keyword arguments; ``document`` is the -f file's text, else -o."""
    return _owner_request(owner, args, PolicyName=args.policy_name,
                          PolicyDocument=document if document is not None else args.policy_content)


def upload_policy(owner: PolicyOwner, argv: Sequence[str] | None) -> int:
    """euare-<kind>uploadpolicy: prints nothing."""
    def action(iam, args):
        document = None
        if args.policy_file:
            with open(args.policy_file, encoding='utf-8') as policy_file:
                document = policy_file.read()
        getattr(iam, owner.method('put_{kind}_policy'))(
            **upload_policy_request(owner, args, document))
        return []
    return euare.run(upload_policy_parser(owner), action, argv)


# --- list, get, delete -------------------------------------------------------

def list_policies_parser(owner: PolicyOwner) -> argparse.ArgumentParser:
    """Arguments of euare-<kind>listpolicies."""
    parser = euare.euare_parser(f'euare-{owner.kind}listpolicies',
                                f"List the policies attached to a {owner.kind}")
    owner.add_option(parser, f'{owner.kind} to list the policies of (required)')
    return parser


def list_policies(owner: PolicyOwner, argv: Sequence[str] | None) -> int:
    """euare-<kind>listpolicies: one policy name a line."""
    def action(iam, args):
        return euare.list_all(getattr(iam, owner.method('list_{kind}_policies')),
                              'PolicyNames', _owner_request(owner, args))
    return euare.run(list_policies_parser(owner), action, argv)


def get_policy_parser(owner: PolicyOwner) -> argparse.ArgumentParser:
    """Arguments of euare-<kind>getpolicy."""
    parser = euare.euare_parser(f'euare-{owner.kind}getpolicy',
                                f"Display a {owner.kind}'s policy")
    owner.add_option(parser, f'{owner.kind} the policy is attached to (required)')
    _add_policy_name(parser, 'name of the policy to show (required)')
    parser.add_argument('--pretty-print', dest='pretty_print', action='store_true',
                        help='reformat the policy for easier reading')
    return parser


def get_policy(owner: PolicyOwner, argv: Sequence[str] | None) -> int:
    """euare-<kind>getpolicy: the policy document."""
    def action(iam, args):
        response = getattr(iam, owner.method('get_{kind}_policy'))(
            **_owner_request(owner, args, PolicyName=args.policy_name))
        return [euare.policy_document_text(response.get('PolicyDocument'), args.pretty_print)]
    return euare.run(get_policy_parser(owner), action, argv)


def delete_policy_parser(owner: PolicyOwner) -> argparse.ArgumentParser:
    """Arguments of euare-<kind>delpolicy."""
    parser = euare.euare_parser(f'euare-{owner.kind}delpolicy',
                                f'Remove a policy from a {owner.kind}')
    owner.add_option(parser, f'{owner.kind} the policy is attached to (required)')
    _add_policy_name(parser, 'name of the policy to delete (required)')
    return parser


def delete_policy(owner: PolicyOwner, argv: Sequence[str] | None) -> int:
    """euare-<kind>delpolicy: prints nothing."""
    def action(iam, args):
        getattr(iam, owner.method('delete_{kind}_policy'))(
            **_owner_request(owner, args, PolicyName=args.policy_name))
        return []
    return euare.run(delete_policy_parser(owner), action, argv)


# --- the console scripts -----------------------------------------------------

def user_upload_policy(argv=None) -> int:
    """euare-useruploadpolicy."""
    return upload_policy(USER, argv)


def user_list_policies(argv=None) -> int:
    """euare-userlistpolicies."""
    return list_policies(USER, argv)


def user_get_policy(argv=None) -> int:
    """euare-usergetpolicy."""
    return get_policy(USER, argv)


def user_del_policy(argv=None) -> int:
    """euare-userdelpolicy."""
    return delete_policy(USER, argv)


def group_upload_policy(argv=None) -> int:
    """euare-groupuploadpolicy."""
    return upload_policy(GROUP, argv)


def group_list_policies(argv=None) -> int:
    """euare-grouplistpolicies."""
    return list_policies(GROUP, argv)


def group_get_policy(argv=None) -> int:
    """euare-groupgetpolicy."""
    return get_policy(GROUP, argv)


def group_del_policy(argv=None) -> int:
    """euare-groupdelpolicy."""
    return delete_policy(GROUP, argv)


def account_upload_policy(argv=None) -> int:
    """euare-accountuploadpolicy."""
    return upload_policy(ACCOUNT, argv)


def account_list_policies(argv=None) -> int:
    """euare-accountlistpolicies."""
    return list_policies(ACCOUNT, argv)


def account_get_policy(argv=None) -> int:
    """euare-accountgetpolicy."""
    return get_policy(ACCOUNT, argv)


def account_del_policy(argv=None) -> int:
    """euare-accountdelpolicy."""
    return delete_policy(ACCOUNT, argv)

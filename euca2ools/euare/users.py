"""The euare-user* commands: users, their access keys, passwords and groups.

(A user's policies are in ``euare.policies``.)
"""

from __future__ import annotations

import argparse
import dataclasses

import botocore.exceptions

from euca2ools import cli, euare
from euca2ools.euare import euare_request

_KEY_STATUSES = ('Active', 'Inactive')


# --- create, list, show, delete ----------------------------------------------

def user_create_parser() -> argparse.ArgumentParser:
    """Arguments of euare-usercreate."""
    parser = euare.euare_parser('euare-usercreate', 'Create a new user')
    euare.add_user_option(parser, 'name of the new user (required)')
    euare.add_path_option(parser, 'user')
    parser.add_argument('-g', '--group-name', dest='groups', metavar='GROUP', action='append',
                        default=[], help='add the new user to a group (repeatable)')
    parser.add_argument('-k', '--create-accesskey', dest='create_accesskey', action='store_true',
                        help="create an access key for the new user and show it")
    parser.add_argument('-v', '--verbose', action='store_true',
                        help="show the new user's ARN and ID")
    return parser


def user_create_request(args: argparse.Namespace) -> dict:
    """CreateUser keyword arguments for parsed options."""
    return euare_request(args, UserName=args.user_name, Path=args.path)


def user_create(argv=None) -> int:
    """euare-usercreate: with -v the ARN and ID, with -k ``AKID SECRET``."""
    def action(iam, args):
        response = iam.create_user(**user_create_request(args))
        for group in args.groups:
            iam.add_user_to_group(**euare_request(args, GroupName=group, UserName=args.user_name))
        lines = euare.format_entity(response.get('User') or {}) if args.verbose else []
        if args.create_accesskey:
            key = iam.create_access_key(**euare_request(args, UserName=args.user_name))
            lines += euare.format_access_key(key, cli.empty_field(args))
        return lines
    return euare.run(user_create_parser(), action, argv)


def user_list_by_path_parser() -> argparse.ArgumentParser:
    """Arguments of euare-userlistbypath."""
    parser = euare.euare_parser('euare-userlistbypath', "List your account's users")
    euare.add_path_prefix_option(parser, 'users')
    return parser


def user_list_by_path(argv=None) -> int:
    """euare-userlistbypath: one user ARN a line."""
    def action(iam, args):
        users = euare.list_all(iam.list_users, 'Users',
                               euare_request(args, PathPrefix=args.path_prefix))
        return euare.format_arns(users)
    return euare.run(user_list_by_path_parser(), action, argv)


def user_get_attributes_parser() -> argparse.ArgumentParser:
    """Arguments of euare-usergetattributes."""
    parser = euare.euare_parser('euare-usergetattributes', 'Display basic information about a user')
    euare.add_user_option(parser, 'user to describe (default: yourself)', required=False)
    return parser


def user_get_attributes(argv=None) -> int:
    """euare-usergetattributes: the user's ARN, then its ID."""
    def action(iam, args):
        response = iam.get_user(**euare_request(args, UserName=args.user_name))
        return euare.format_entity(response.get('User') or {})
    return euare.run(user_get_attributes_parser(), action, argv)


@dataclasses.dataclass(frozen=True)
class UserResources:
    """What belongs to a user and must go before the user can (``euare-userdel -r``)."""

    access_keys: tuple[str, ...]
    policies: tuple[str, ...]
    groups: tuple[str, ...]
    has_login_profile: bool

    def lines(self) -> list[str]:
        """What ``-P/--pretend`` prints."""
        return (['accesskeys'] + ['\t' + key for key in self.access_keys]
                + ['policies'] + ['\t' + name for name in self.policies]
                + ['groups'] + ['\t' + name for name in self.groups]
                + (['loginprofile'] if self.has_login_profile else []))


def user_resources(iam, args: argparse.Namespace) -> UserResources:
    """Look up everything ``euare-userdel -r`` removes."""
    request = euare_request(args, UserName=args.user_name)
    keys = euare.list_all(iam.list_access_keys, 'AccessKeyMetadata', request)
    policies = euare.list_all(iam.list_user_policies, 'PolicyNames', request)
    groups = euare.list_all(iam.list_groups_for_user, 'Groups', request)
    try:
        iam.get_login_profile(**request)
        has_login_profile = True
    except botocore.exceptions.ClientError as err:
        if not euare.is_no_such_entity(err):
            raise
        has_login_profile = False
    return UserResources(access_keys=tuple(key['AccessKeyId'] for key in keys),
                         policies=tuple(policies),
                         groups=tuple(group['GroupName'] for group in groups),
                         has_login_profile=has_login_profile)


def remove_user_resources(iam, args: argparse.Namespace, resources: UserResources) -> None:
    """Delete a user's keys, policies, login profile and group memberships."""
    request = euare_request(args, UserName=args.user_name)
    for key in resources.access_keys:
        iam.delete_access_key(AccessKeyId=key, **request)
    for name in resources.policies:
        iam.delete_user_policy(PolicyName=name, **request)
    if resources.has_login_profile:
        iam.delete_login_profile(**request)
    for group in resources.groups:
        iam.remove_user_from_group(GroupName=group, **request)


def user_del_parser() -> argparse.ArgumentParser:
    """Arguments of euare-userdel."""
    parser = euare.euare_parser('euare-userdel', 'Delete a user')
    euare.add_user_option(parser, 'name of the user to delete (required)')
    euare.add_recursive_options(parser, 'user')
    return parser


def user_del(argv=None) -> int:
    """euare-userdel: prints nothing (with -P, what -r would remove)."""
    def action(iam, args):
        if args.pretend:
            return user_resources(iam, args).lines()
        if args.recursive:
            remove_user_resources(iam, args, user_resources(iam, args))
        iam.delete_user(**euare_request(args, UserName=args.user_name))
        return []
    return euare.run(user_del_parser(), action, argv)


# --- access keys -------------------------------------------------------------

def _key_owner_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = euare.euare_parser(prog, description)
    euare.add_user_option(parser, 'user the key belongs to (default: yourself)', required=False)
    return parser


def _add_key_id(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument('-k', '--user-key-id', dest='key_id', metavar='KEY_ID', required=True,
                        help=help_text)


def user_add_key_parser() -> argparse.ArgumentParser:
    """Arguments of euare-useraddkey."""
    return _key_owner_parser('euare-useraddkey', 'Create a new access key for a user')


def user_add_key(argv=None) -> int:
    """euare-useraddkey: ``AKID SECRET``."""
    def action(iam, args):
        response = iam.create_access_key(**euare_request(args, UserName=args.user_name))
        return euare.format_access_key(response, cli.empty_field(args))
    return euare.run(user_add_key_parser(), action, argv)


def user_list_keys_parser() -> argparse.ArgumentParser:
    """Arguments of euare-userlistkeys."""
    return _key_owner_parser('euare-userlistkeys', "List a user's access keys")


def format_access_keys(keys, empty: str = '') -> list[str]:
    """ListAccessKeys' AccessKeyMetadata -> for each key, its id line, then its status line."""
    lines: list[str] = []
    for key in keys:
        lines += [key.get('AccessKeyId') or empty, key.get('Status') or empty]
    return lines


def user_list_keys(argv=None) -> int:
    """euare-userlistkeys: AKID and STATUS lines."""
    def action(iam, args):
        keys = euare.list_all(iam.list_access_keys, 'AccessKeyMetadata',
                              euare_request(args, UserName=args.user_name))
        return format_access_keys(keys, cli.empty_field(args))
    return euare.run(user_list_keys_parser(), action, argv)


def user_mod_key_parser() -> argparse.ArgumentParser:
    """Arguments of euare-usermodkey."""
    parser = _key_owner_parser('euare-usermodkey', "Change the status of a user's access key")
    _add_key_id(parser, 'ID of the access key to change (required)')
    parser.add_argument('-s', '--status', required=True, choices=_KEY_STATUSES,
                        help='status to give the key (required)')
    return parser


def user_mod_key_request(args: argparse.Namespace) -> dict:
    """UpdateAccessKey keyword arguments for parsed options."""
    return euare_request(args, UserName=args.user_name, AccessKeyId=args.key_id,
                         Status=args.status)


def user_mod_key(argv=None) -> int:
    """euare-usermodkey: prints nothing."""
    def action(iam, args):
        iam.update_access_key(**user_mod_key_request(args))
        return []
    return euare.run(user_mod_key_parser(), action, argv)


def user_del_key_parser() -> argparse.ArgumentParser:
    """Arguments of euare-userdelkey."""
    parser = _key_owner_parser('euare-userdelkey', "Delete a user's access key")
    _add_key_id(parser, 'ID of the access key to delete (required)')
    return parser


def user_del_key(argv=None) -> int:
    """euare-userdelkey: prints nothing."""
    def action(iam, args):
        iam.delete_access_key(**euare_request(args, UserName=args.user_name,
                                              AccessKeyId=args.key_id))
        return []
    return euare.run(user_del_key_parser(), action, argv)


# --- passwords and groups ----------------------------------------------------

def user_add_login_profile_parser() -> argparse.ArgumentParser:
    """Arguments of euare-useraddloginprofile."""
    parser = euare.euare_parser('euare-useraddloginprofile', 'Give a user a password')
    euare.add_user_option(parser, 'user to give a password to (required)')
    parser.add_argument('-p', '--password', required=True, help="the user's new password")
    return parser


def user_add_login_profile(argv=None) -> int:
    """euare-useraddloginprofile: prints nothing."""
    def action(iam, args):
        iam.create_login_profile(**euare_request(args, UserName=args.user_name,
                                                 Password=args.password))
        return []
    return euare.run(user_add_login_profile_parser(), action, argv)


def user_del_login_profile_parser() -> argparse.ArgumentParser:
    """Arguments of euare-userdelloginprofile."""
    parser = euare.euare_parser('euare-userdelloginprofile', "Delete a user's password")
    euare.add_user_option(parser, 'user whose password to delete (required)')
    return parser


def user_del_login_profile(argv=None) -> int:
    """euare-userdelloginprofile: prints nothing."""
    def action(iam, args):
        iam.delete_login_profile(**euare_request(args, UserName=args.user_name))
        return []
    return euare.run(user_del_login_profile_parser(), action, argv)


def user_list_groups_parser() -> argparse.ArgumentParser:
    """Arguments of euare-userlistgroups."""
    parser = euare.euare_parser('euare-userlistgroups', 'List the groups a user is a member of')
    euare.add_user_option(parser, 'user to list the groups of (required)')
    return parser


def user_list_groups(argv=None) -> int:
    """euare-userlistgroups: one group ARN a line."""
    def action(iam, args):
        groups = euare.list_all(iam.list_groups_for_user, 'Groups',
                                euare_request(args, UserName=args.user_name))
        return euare.format_arns(groups)
    return euare.run(user_list_groups_parser(), action, argv)


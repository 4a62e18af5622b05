"""The euare-group* commands: groups and their members.

(A group's policies are in ``euare.policies``.)
"""

from __future__ import annotations

import argparse
import dataclasses

from euca2ools import euare
from euca2ools.euare import euare_request


def group_create_parser() -> argparse.ArgumentParser:
    """Arguments of euare-groupcreate."""
    parser = euare.euare_parser('euare-groupcreate', 'Create a new group')
    euare.add_group_option(parser, 'name of the new group (required)')
    euare.add_path_option(parser, 'group')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help="show the new group's ARN and ID")
    return parser


def group_create_request(args: argparse.Namespace) -> dict:
    """CreateGroup keyword arguments for parsed options."""
    return euare_request(args, GroupName=args.group_name, Path=args.path)


def group_create(argv=None) -> int:
    """euare-groupcreate: prints nothing (with -v the ARN and ID)."""
    def action(iam, args):
        response = iam.create_group(**group_create_request(args))
        return euare.format_entity(response.get('Group') or {}) if args.verbose else []
    return euare.run(group_create_parser(), action, argv)


def group_list_by_path_parser() -> argparse.ArgumentParser:
    """Arguments of euare-grouplistbypath."""
    parser = euare.euare_parser('euare-grouplistbypath', "List your account's groups")
    euare.add_path_prefix_option(parser, 'groups')
    return parser


def group_list_by_path(argv=None) -> int:
    """euare-grouplistbypath: ``groups``, then one tab-indented group ARN a line."""
    def action(iam, args):
        groups = euare.list_all(iam.list_groups, 'Groups',
                                euare_request(args, PathPrefix=args.path_prefix))
        return ['groups'] + euare.format_arns(groups, indent='\t')
    return euare.run(group_list_by_path_parser(), action, argv)


def _group_users(iam, args: argparse.Namespace) -> tuple[dict, list]:
    """GetGroup, all pages: (the group, its users)."""
    responses = list(euare.pages(iam.get_group, euare_request(args, GroupName=args.group_name)))
    users = [user for response in responses for user in response.get('Users') or ()]
    return responses[0].get('Group') or {}, users


def group_list_users_parser() -> argparse.ArgumentParser:
    """Arguments of euare-grouplistusers."""
    parser = euare.euare_parser('euare-grouplistusers', 'List the members of a group')
    euare.add_group_option(parser, 'group to list the members of (required)')
    return parser


def format_group_users(group: dict, users: list) -> list[str]:
    """The group's ARN, ``users``, then one tab-indented user ARN a line."""
    return [group.get('Arn') or '', 'users'] + euare.format_arns(users, indent='\t')


def group_list_users(argv=None) -> int:
    """euare-grouplistusers: see :func:`format_group_users`."""
    def action(iam, args):
        return format_group_users(*_group_users(iam, args))
    return euare.run(group_list_users_parser(), action, argv)


@dataclasses.dataclass(frozen=True)
class GroupResources:
    """What must go before a group can (``euare-groupdel -r``)."""

    users: tuple[str, ...]
    policies: tuple[str, ...]

    def lines(self) -> list[str]:
        """What ``-P/--pretend`` prints."""
        return (['users'] + ['\t' + name for name in self.users]
                + ['policies'] + ['\t' + name for name in self.policies])


def group_resources(iam, args: argparse.Namespace) -> GroupResources:
    """Look up the members and policies ``euare-groupdel -r`` removes."""
    _, users = _group_users(iam, args)
    policies = euare.list_all(iam.list_group_policies, 'PolicyNames',
                              euare_request(args, GroupName=args.group_name))
    return GroupResources(users=tuple(user['UserName'] for user in users),
                          policies=tuple(policies))


def group_del_parser() -> argparse.ArgumentParser:
    """Arguments of euare-groupdel."""
    parser = euare.euare_parser('euare-groupdel', 'Delete a group')
    euare.add_group_option(parser, 'name of the group to delete (required)')
    euare.add_recursive_options(parser, 'group')
    return parser


def group_del(argv=None) -> int:
    """euare-groupdel: prints nothing (with -P, what -r would remove)."""
    def action(iam, args):
        if args.pretend:
            return group_resources(iam, args).lines()
        request = euare_request(args, GroupName=args.group_name)
        if args.recursive:
            resources = group_resources(iam, args)
            for user in resources.users:
                iam.remove_user_from_group(UserName=user, **request)
            for name in resources.policies:
                iam.delete_group_policy(PolicyName=name, **request)
        iam.delete_group(**request)
        return []
    return euare.run(group_del_parser(), action, argv)


def _membership_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = euare.euare_parser(prog, description)
    euare.add_group_option(parser, 'the group (required)')
    euare.add_user_option(parser, 'the user (required)')
    return parser


def group_add_user_parser() -> argparse.ArgumentParser:
    """Arguments of euare-groupadduser."""
    return _membership_parser('euare-groupadduser', 'Add a user to a group')


def group_membership_request(args: argparse.Namespace) -> dict:
    """AddUserToGroup / RemoveUserFromGroup keyword arguments."""
    return euare_request(args, GroupName=args.group_name, UserName=args.user_name)


def group_add_user(argv=None) -> int:
    """euare-groupadduser: prints nothing."""
    def action(iam, args):
        iam.add_user_to_group(**group_membership_request(args))
        return []
    return euare.run(group_add_user_parser(), action, argv)


def group_remove_user_parser() -> argparse.ArgumentParser:
    """Arguments of euare-groupremoveuser."""
    return _membership_parser('euare-groupremoveuser', 'Remove a user from a group')


def group_remove_user(argv=None) -> int:
    """euare-groupremoveuser: prints nothing."""
    def action(iam, args):
        iam.remove_user_from_group(**group_membership_request(args))
        return []
    return euare.run(group_remove_user_parser(), action, argv)

"""The tag commands: euca-create-tags, euca-describe-tags and euca-delete-tags.

As in ``euca2ools.ec2``: a parser, a pure request builder and a formatter per
command, and the console script ``<command>(argv=None)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from euca2ools import cli, ec2, output


def parse_tag(text: str) -> dict:
    """argparse type for create's ``--tag KEY[=VALUE]``; no value is the empty string."""
    key, _, value = text.partition('=')
    if not key:
        raise argparse.ArgumentTypeError(f"tag '{text}' must have format KEY[=VALUE]")
    return {'Key': key, 'Value': value}


def parse_tag_to_delete(text: str) -> dict:
    """argparse type for delete's ``--tag KEY[=[VALUE]]``.

    ``KEY`` deletes the tag whatever its value, ``KEY=`` only if its value is
    empty, ``KEY=VALUE`` only if its value is VALUE.
    """
    key, sep, value = text.partition('=')
    if not key:
        raise argparse.ArgumentTypeError(f"tag '{text}' must have format KEY[=[VALUE]]")
    return {'Key': key, 'Value': value} if sep else {'Key': key}


def _tagging_parser(prog: str, description: str, tag_type, tag_help: str,
                    metavar: str) -> argparse.ArgumentParser:
    parser = cli.command_parser(prog, description)
    parser.add_argument('resources', metavar='RESOURCE', nargs='+',
                        help='ID(s) of the resource(s) (at least 1 required)')
    parser.add_argument('--tag', dest='tags', metavar=metavar, type=tag_type, action='append',
                        required=True, help=tag_help)
    return parser


def create_tags_parser() -> argparse.ArgumentParser:
    """Arguments of euca-create-tags."""
    return _tagging_parser(
        'euca-create-tags', 'Add or overwrite tags for one or more resources', parse_tag,
        'key and optional value of the tag to create, separated by "="; without a value '
        "the tag's value is the empty string (repeatable, at least 1 required)",
        'KEY[=VALUE]')


def tags_request(args: argparse.Namespace) -> dict:
    """CreateTags / DeleteTags keyword arguments for parsed options."""
    return {'Resources': args.resources, 'Tags': args.tags}


def format_tags_created(resources: Sequence[str], tags: Sequence[Mapping],
                        empty: str = '') -> list[str]:
    """CreateTags -> TAG type id key value, for each resource and tag."""
    lines: list[str] = []
    for resource_id in resources:
        lines.extend(output.format_tags(tags, resource_id, empty))
    return lines


def create_tags(argv=None) -> int:
    """euca-create-tags: TAG type id key value per resource and tag."""
    def action(client, args):
        client.create_tags(**tags_request(args))
        return format_tags_created(args.resources, args.tags, cli.empty_field(args))
    return cli.run(create_tags_parser(), action, argv)


def describe_tags_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-tags."""
    parser = cli.command_parser('euca-describe-tags',
                                "List tags associated with your account's resources")
    cli.add_filter_option(parser)
    return parser


def describe_tags_request(args: argparse.Namespace) -> dict:
    """DescribeTags keyword arguments for parsed options."""
    return ec2.with_filters({}, args)


def format_described_tags(response: Mapping, empty: str = '') -> list[str]:
    """DescribeTags -> TAG id type key value (id before type, unlike the TAG lines of
    other commands, as euca-describe-tags printed them)."""
    return [output.tabify(('TAG', tag.get('ResourceId'), tag.get('ResourceType'),
                           tag.get('Key'), tag.get('Value')), empty)
            for tag in response.get('Tags', ())]


def describe_tags(argv=None) -> int:
    """euca-describe-tags: TAG id type key value."""
    def action(client, args):
        response = client.describe_tags(**describe_tags_request(args))
        return format_described_tags(response, cli.empty_field(args))
    return cli.run(describe_tags_parser(), action, argv)


def delete_tags_parser() -> argparse.ArgumentParser:
    """Arguments of euca-delete-tags."""
    return _tagging_parser(
        'euca-delete-tags', 'Delete tags from one or more resources', parse_tag_to_delete,
        'key and optional value of the tag to delete, separated by "=". "KEY" deletes the '
        'tag whatever its value, "KEY=" only if its value is empty, "KEY=VALUE" only if its '
        'value is VALUE (repeatable, at least 1 required)',
        'KEY[=[VALUE]]')


def delete_tags(argv=None) -> int:
    """euca-delete-tags: prints nothing."""
    def action(client, args):
        client.delete_tags(**tags_request(args))
        return []
    return cli.run(delete_tags_parser(), action, argv)

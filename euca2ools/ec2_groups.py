"""The security group commands: euca-create-group, euca-describe-groups,
euca-delete-group, euca-authorize and euca-revoke.

As in ``euca2ools.ec2``: a parser, a pure request builder and a formatter per
command, and the console script ``<command>(argv=None)``. A GROUP argument
that starts with ``sg-`` is a group id, anything else a name (the CLC refuses
names of that form).
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
from collections.abc import Mapping, Sequence

from euca2ools import cli, ec2, output
from euca2ools.cli import CommandError

PROTOCOLS = ('tcp', 'udp', 'icmp', '6', '17', '1')
_ICMP = ('icmp', '1')
_PORTED = {'tcp': 'tcp', '6': 'tcp', 'udp': 'udp', '17': 'udp'}
_WORLD = '0.0.0.0/0'
#: Options whose value may start with "-1" ("-t -1:-1", "-p -1").
_NEGATIVE_VALUED = {'-t': '--icmp-type-code', '--icmp-type-code': '--icmp-type-code',
                    '-p': '--port-range', '--port-range': '--port-range'}
_NEGATIVE = re.compile(r'-\d')


def is_group_id(group: str) -> bool:
    """Whether a GROUP argument is a group id rather than a name."""
    return group.startswith('sg-')


def _group_key(group: str) -> dict:
    return {'GroupId': group} if is_group_id(group) else {'GroupName': group}


# --- create, describe, delete ------------------------------------------------

def create_group_parser() -> argparse.ArgumentParser:
    """Arguments of euca-create-group."""
    parser = cli.command_parser('euca-create-group', 'Create a new security group')
    parser.add_argument('name', metavar='GROUP', help='name of the new group')
    parser.add_argument('-d', '--description', metavar='DESC', required=True,
                        help='description of the new group (required)')
    return parser


def create_group_request(args: argparse.Namespace) -> dict:
    """CreateSecurityGroup keyword arguments for parsed options."""
    return {'GroupName': args.name, 'Description': args.description}


def format_group_created(response: Mapping, request: Mapping, empty: str = '') -> list[str]:
    """CreateSecurityGroup -> GROUP id name description."""
    return [output.tabify(('GROUP', response.get('GroupId'), request['GroupName'],
                           request['Description']), empty)]


def create_group(argv=None) -> int:
    """euca-create-group: GROUP id name description."""
    def action(client, args):
        request = create_group_request(args)
        response = client.create_security_group(**request)
        return format_group_created(response, request, cli.empty_field(args))
    return cli.run(create_group_parser(), action, argv)


def describe_groups_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-groups."""
    parser = cli.command_parser(
        'euca-describe-groups',
        'Show information about security groups. Filters match literal strings only: '
        '"ip-permission.from-port=22" does not match a rule for ports 20-30.')
    parser.add_argument('groups', metavar='GROUP', nargs='*',
                        help='limit results to specific security groups (names or ids)')
    cli.add_filter_option(parser)
    return parser


def describe_groups_request(args: argparse.Namespace) -> dict:
    """DescribeSecurityGroups keyword arguments: sg-… as GroupIds, the rest as GroupNames."""
    request: dict = {}
    ids = [group for group in args.groups if is_group_id(group)]
    names = [group for group in args.groups if not is_group_id(group)]
    if ids:
        request['GroupIds'] = ids
    if names:
        request['GroupNames'] = names
    return ec2.with_filters(request, args)


def format_groups(response: Mapping, empty: str = '') -> list[str]:
    """DescribeSecurityGroups -> for each group its GROUP, PERMISSION and TAG lines."""
    lines: list[str] = []
    for group in response.get('SecurityGroups', ()):
        lines.extend(format_group(group, empty))
    return lines


def format_group(group: Mapping, empty: str = '') -> list[str]:
    """GROUP id owner name description vpc, then a PERMISSION line per source or
    destination of each rule (ingress first), then TAG lines."""
    lines = [output.tabify(('GROUP', group.get('GroupId'), group.get('OwnerId'),
                            group.get('GroupName'), group.get('Description'),
                            group.get('VpcId')), empty)]
    for rules, direction, preposition in ((group.get('IpPermissions'), 'ingress', 'FROM'),
                                          (group.get('IpPermissionsEgress'), 'egress', 'TO')):
        for rule in rules or ():
            lines.extend(_permission_lines(group, rule, direction, preposition, empty))
    lines.extend(output.format_tags(group.get('Tags'),
                                    group.get('GroupId') or group.get('GroupName') or '', empty))
    return lines


def _permission_lines(group: Mapping, rule: Mapping, direction: str, preposition: str,
                      empty: str) -> list[str]:
    base = ('PERMISSION', group.get('OwnerId'), group.get('GroupName'), 'ALLOWS',
            rule.get('IpProtocol'), rule.get('FromPort'), rule.get('ToPort'))
    lines = [output.tabify(base + (preposition, 'CIDR', cidr.get('CidrIp'), direction), empty)
             for cidr in rule.get('IpRanges') or ()]
    for pair in rule.get('UserIdGroupPairs') or ():
        if pair.get('GroupId'):
            source = ('ID', pair['GroupId'])
        else:
            source = ('GRPNAME', pair.get('GroupName'))
        lines.append(output.tabify(base + (preposition, 'USER', pair.get('UserId')) + source
                                   + (direction,), empty))
    return lines


def describe_groups(argv=None) -> int:
    """euca-describe-groups: GROUP, PERMISSION and TAG lines."""
    def action(client, args):
        response = client.describe_security_groups(**describe_groups_request(args))
        return format_groups(response, cli.empty_field(args))
    return cli.run(describe_groups_parser(), action, argv)


def delete_group_parser() -> argparse.ArgumentParser:
    """Arguments of euca-delete-group."""
    parser = cli.command_parser('euca-delete-group', 'Delete a security group')
    parser.add_argument('group', metavar='GROUP',
                        help='name or ID of the security group to delete')
    return parser


def delete_group(argv=None) -> int:
    """euca-delete-group: RETURN true."""
    def action(client, args):
        response = client.delete_security_group(**_group_key(args.group))
        return [output.tabify(('RETURN', response.get('Return', True)), cli.empty_field(args))]
    return cli.run(delete_group_parser(), action, argv)


# --- authorize and revoke ----------------------------------------------------

def rule_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Arguments of euca-authorize and euca-revoke (the same rule options)."""
    parser = cli.command_parser(prog, description)
    parser.add_argument('group', metavar='GROUP',
                        help='name or ID of the security group to modify')
    parser.add_argument('--egress', action='store_true',
                        help='manage an egress rule, which controls traffic leaving the group '
                             '(groups by ID only)')
    parser.add_argument('-P', '--protocol', choices=PROTOCOLS, default='tcp',
                        help='protocol to affect (default: tcp)')
    parser.add_argument('-p', '--port-range', dest='port_range', metavar='RANGE',
                        help='range of ports ("from-to"), a single port or a service name '
                             '(required for tcp and udp)')
    parser.add_argument('-t', '--icmp-type-code', dest='icmp_type_code', metavar='TYPE:CODE',
                        help='ICMP type and code, "type:code" (default for icmp: -1:-1)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('-s', '--cidr', metavar='CIDR',
                        help='IP range (default: 0.0.0.0/0 unless -o is given)')
    source.add_argument('-o', dest='source_group', metavar='GROUP',
                        help='name or ID of a security group to allow traffic from/to')
    parser.add_argument('-u', dest='source_owner', metavar='ACCOUNT',
                        help='ID of the account that owns the group given with -o')
    return parser


def attach_negative_values(argv: Sequence[str]) -> list[str]:
    """argv with ``-t -1:-1``-like pairs joined as ``--icmp-type-code=-1:-1``.

    argparse would take a value such as "-1:-1" for an unknown option.
    """
    joined: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if (item in _NEGATIVE_VALUED and index + 1 < len(items)
                and _NEGATIVE.match(items[index + 1])):
            joined.append(f'{_NEGATIVE_VALUED[item]}={items[index + 1]}')
            index += 2
            continue
        joined.append(item)
        index += 1
    return joined


def parse_icmp_type_code(text: str | None) -> tuple[int, int]:
    """``-t TYPE:CODE`` -> (type, code); -1 stands for any. Raises CommandError."""
    kind, sep, code = (text or '-1:-1').partition(':')
    try:
        if not sep:
            raise ValueError(text)
        numbers = int(kind), int(code)
    except ValueError:
        raise CommandError('argument -t/--icmp-type-code: value must have format "1:2"') from None
    if min(numbers) < -1:
        raise CommandError('argument -t/--icmp-type-code: type, code must be at least -1')
    return numbers


def parse_port_range(text: str | None, protocol: str) -> tuple[int, int]:
    """``-p PORT|FROM-TO|SERVICE`` -> (from, to) for tcp/udp; -1 means the lowest/highest port.

    Raises CommandError for a missing or unreadable range.
    """
    if not text:
        raise CommandError(f'argument -p/--port-range is required for protocol {protocol}')
    if ':' in text:
        raise CommandError('argument -p/--port-range: multi-port range must be separated by '
                           '"-", not ":"')
    ports = _numeric_range(text) or _service_port(text, _PORTED[protocol])
    if min(ports) < -1:
        raise CommandError('argument -p/--port-range: port number(s) must be at least -1')
    return (1 if ports[0] == -1 else ports[0]), (65535 if ports[1] == -1 else ports[1])


def _numeric_range(text: str) -> tuple[int, int] | None:
    """'22' -> (22, 22), '20-30' -> (20, 30), '-1' -> (-1, -1); None for anything else."""
    try:
        return int(text), int(text)
    except ValueError:
        pass
    low, sep, high = text.partition('-')
    try:
        return (int(low), int(high)) if sep else None
    except ValueError:
        return None


def _service_port(name: str, protocol: str) -> tuple[int, int]:
    try:
        port = socket.getservbyname(name, protocol)
    except OSError:
        raise CommandError(f"argument -p/--port-range: '{name}' is neither a port number, range "
                           "of port numbers, nor a recognized service name") from None
    return port, port


def rule_request(args: argparse.Namespace) -> dict:
    """Authorize/RevokeSecurityGroupIngress/Egress keyword arguments: one IpPermission.

    Raises CommandError for options that do not fit together, as euca2ools did.
    """
    request = _group_key(args.group)
    if args.egress and not is_group_id(args.group):
        raise CommandError('egress rules must use group IDs, not names')
    permission: dict = {'IpProtocol': args.protocol}
    if args.protocol in _ICMP:
        if args.port_range:
            raise CommandError('argument -p/--port-range: not compatible with protocol '
                               + args.protocol)
        permission['FromPort'], permission['ToPort'] = parse_icmp_type_code(args.icmp_type_code)
    else:
        if args.icmp_type_code:
            raise CommandError('argument -t/--icmp-type-code: not compatible with protocol '
                               + args.protocol)
        permission['FromPort'], permission['ToPort'] = parse_port_range(args.port_range,
                                                                        args.protocol)
    if args.source_group:
        permission['UserIdGroupPairs'] = [_source_pair(args)]
    else:
        permission['IpRanges'] = [{'CidrIp': args.cidr or _WORLD}]
    request['IpPermissions'] = [permission]
    return request


def _source_pair(args: argparse.Namespace) -> dict:
    if is_group_id(args.source_group):
        pair = {'GroupId': args.source_group}
    elif args.egress:
        raise CommandError('argument -o: egress rules must use group IDs, not names')
    elif not args.source_owner:
        raise CommandError('argument -u is required when -o names a security group by name')
    else:
        pair = {'GroupName': args.source_group}
    if args.source_owner:
        pair['UserId'] = args.source_owner
    return pair


def format_rule_change(request: Mapping, group: str, empty: str = '') -> list[str]:
    """What euca-authorize/revoke print: GROUP group, then
    PERMISSION group ALLOWS proto from to [USER id] [GRPID|GRPNAME g] [FROM CIDR cidr]."""
    permission = request['IpPermissions'][0]
    fields = ['PERMISSION', group, 'ALLOWS', permission['IpProtocol'],
              permission.get('FromPort'), permission.get('ToPort')]
    for pair in permission.get('UserIdGroupPairs') or ():
        if pair.get('UserId'):
            fields += ['USER', pair['UserId']]
        if pair.get('GroupId'):
            fields += ['GRPID', pair['GroupId']]
        else:
            fields += ['GRPNAME', pair.get('GroupName')]
    for cidr in permission.get('IpRanges') or ():
        fields += ['FROM', 'CIDR', cidr.get('CidrIp')]
    return [output.tabify(('GROUP', group), empty), output.tabify(fields, empty)]


def _run_rule_command(prog: str, description: str, call_names: tuple[str, str], argv) -> int:
    def action(client, args):
        request = rule_request(args)
        getattr(client, call_names[1] if args.egress else call_names[0])(**request)
        return format_rule_change(request, args.group, cli.empty_field(args))
    argv = attach_negative_values(sys.argv[1:] if argv is None else argv)
    return cli.run(rule_parser(prog, description), action, argv)


def authorize(argv=None) -> int:
    """euca-authorize: add a rule to a security group; GROUP and PERMISSION lines."""
    return _run_rule_command(
        'euca-authorize', 'Add a rule to a security group that allows traffic to pass',
        ('authorize_security_group_ingress', 'authorize_security_group_egress'), argv)


def revoke(argv=None) -> int:
    """euca-revoke: remove a rule from a security group; GROUP and PERMISSION lines."""
    return _run_rule_command(
        'euca-revoke', 'Remove a rule from a security group',
        ('revoke_security_group_ingress', 'revoke_security_group_egress'), argv)

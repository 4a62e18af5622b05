"""The elastic IP commands: euca-allocate-address, euca-describe-addresses,
euca-associate-address, euca-disassociate-address and euca-release-address.

As in ``euca2ools.ec2``: a parser, a pure request builder and a formatter per
command, and the console script ``<command>(argv=None)``. An address is named
by its public IP, or (VPC style) by an ``eipalloc-…`` allocation id.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from euca2ools import cli, ec2, output
from euca2ools.cli import CommandError

_ALLOCATION_PREFIX = 'eipalloc-'


def allocate_address_parser() -> argparse.ArgumentParser:
    """Arguments of euca-allocate-address."""
    parser = cli.command_parser('euca-allocate-address', 'Allocate a public IP address')
    parser.add_argument('-d', '--domain', choices=('vpc',),
                        help='"vpc" to allocate the address for use in a VPC')
    return parser


def allocate_address_request(args: argparse.Namespace) -> dict:
    """AllocateAddress keyword arguments for parsed options."""
    return {'Domain': args.domain} if args.domain else {}


def format_address_allocated(response: Mapping, empty: str = '') -> list[str]:
    """AllocateAddress -> ADDRESS ip domain allocationId."""
    return [output.tabify(('ADDRESS', response.get('PublicIp'),
                           response.get('Domain') or 'standard',
                           response.get('AllocationId')), empty)]


def allocate_address(argv=None) -> int:
    """euca-allocate-address: ADDRESS ip domain allocationId."""
    def action(client, args):
        response = client.allocate_address(**allocate_address_request(args))
        return format_address_allocated(response, cli.empty_field(args))
    return cli.run(allocate_address_parser(), action, argv)


def describe_addresses_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-addresses."""
    parser = cli.command_parser('euca-describe-addresses',
                                'Show information about elastic IP addresses')
    parser.add_argument('addresses', metavar='ADDRESS', nargs='*',
                        help='limit results to specific elastic IP addresses or allocation IDs')
    cli.add_filter_option(parser)
    return parser


def describe_addresses_request(args: argparse.Namespace) -> dict:
    """DescribeAddresses keyword arguments: eipalloc-… as AllocationIds, the rest as PublicIps."""
    request: dict = {}
    allocations = sorted({a for a in args.addresses if a.startswith(_ALLOCATION_PREFIX)})
    public_ips = sorted(set(args.addresses) - set(allocations))
    if allocations:
        request['AllocationIds'] = allocations
    if public_ips:
        request['PublicIps'] = public_ips
    return ec2.with_filters(request, args)


def format_addresses(response: Mapping, empty: str = '') -> list[str]:
    """DescribeAddresses -> ADDRESS ip instance domain allocationId associationId
    networkInterface privateIp."""
    return [output.tabify(('ADDRESS', address.get('PublicIp'), address.get('InstanceId'),
                           address.get('Domain') or 'standard', address.get('AllocationId'),
                           address.get('AssociationId'), address.get('NetworkInterfaceId'),
                           address.get('PrivateIpAddress')), empty)
            for address in response.get('Addresses', ())]


def describe_addresses(argv=None) -> int:
    """euca-describe-addresses: ADDRESS lines."""
    def action(client, args):
        response = client.describe_addresses(**describe_addresses_request(args))
        return format_addresses(response, cli.empty_field(args))
    return cli.run(describe_addresses_parser(), action, argv)


def _address_or_allocation(args: argparse.Namespace) -> dict:
    """{'PublicIp': …} or {'AllocationId': …} from ADDRESS / -a; exactly one must be given."""
    if args.address is not None and args.allocation_id is not None:
        raise CommandError('argument -a/--allocation-id: not allowed with an IP address')
    if args.address is None and args.allocation_id is None:
        raise CommandError('argument -a/--allocation-id or an IP address is required')
    if args.allocation_id is not None:
        return {'AllocationId': args.allocation_id}
    return {'PublicIp': args.address}


def associate_address_parser() -> argparse.ArgumentParser:
    """Arguments of euca-associate-address."""
    parser = cli.command_parser('euca-associate-address',
                                'Associate an elastic IP address with a running instance')
    parser.add_argument('address', metavar='ADDRESS', nargs='?',
                        help='IP address to associate (required unless -a is given)')
    parser.add_argument('-a', '--allocation-id', dest='allocation_id', metavar='ALLOC',
                        help='[VPC only] allocation ID of the address to associate')
    parser.add_argument('-i', '--instance-id', dest='instance', metavar='INSTANCE',
                        required=True, help='ID of the instance to associate the address with')
    parser.add_argument('-p', '--private-ip-address', dest='private_ip', metavar='ADDRESS',
                        help='[VPC only] private address to associate the address with')
    return parser


def associate_address_request(args: argparse.Namespace) -> dict:
    """AssociateAddress keyword arguments; an eipalloc-… ADDRESS counts as -a.

    Raises CommandError unless exactly one of ADDRESS and -a is given.
    """
    request = _address_or_allocation(args)
    if request.get('PublicIp', '').startswith(_ALLOCATION_PREFIX):
        request = {'AllocationId': request['PublicIp']}
    request['InstanceId'] = args.instance
    if args.private_ip:
        request['PrivateIpAddress'] = args.private_ip
    return request


def format_address_associated(request: Mapping, response: Mapping,
                              empty: str = '') -> list[str]:
    """AssociateAddress -> ADDRESS ip instance, or for an allocation id
    ADDRESS instance allocationId associationId privateIp."""
    if request.get('AllocationId'):
        fields = ('ADDRESS', request.get('InstanceId'), request['AllocationId'],
                  response.get('AssociationId'), request.get('PrivateIpAddress'))
    else:
        fields = ('ADDRESS', request.get('PublicIp'), request.get('InstanceId'))
    return [output.tabify(fields, empty)]


def associate_address(argv=None) -> int:
    """euca-associate-address: ADDRESS ip instance."""
    def action(client, args):
        request = associate_address_request(args)
        response = client.associate_address(**request)
        return format_address_associated(request, response, cli.empty_field(args))
    return cli.run(associate_address_parser(), action, argv)


def disassociate_address_parser() -> argparse.ArgumentParser:
    """Arguments of euca-disassociate-address."""
    parser = cli.command_parser('euca-disassociate-address',
                                'Disassociate an elastic IP address from an instance')
    parser.add_argument('address', metavar='ADDRESS', nargs='?',
                        help='elastic IP address to disassociate (required unless -a is given)')
    parser.add_argument('-a', '--association-id', dest='association_id', metavar='ASSOC',
                        help="[VPC only] address's association ID")
    return parser


def disassociate_address_request(args: argparse.Namespace) -> dict:
    """DisassociateAddress keyword arguments; exactly one of ADDRESS and -a (CommandError)."""
    if args.address:
        if args.association_id:
            raise CommandError('argument -a/--association-id: not allowed with an IP address')
        if args.address.startswith('eipassoc'):
            raise CommandError('VPC elastic IP association IDs must be specified with '
                               '-a/--association-id')
        return {'PublicIp': args.address}
    if not args.association_id:
        raise CommandError('argument -a/--association-id or an IP address is required')
    return {'AssociationId': args.association_id}


def disassociate_address(argv=None) -> int:
    """euca-disassociate-address: ADDRESS ip-or-association."""
    def action(client, args):
        request = disassociate_address_request(args)
        client.disassociate_address(**request)
        target = request.get('PublicIp') or request.get('AssociationId')
        return [output.tabify(('ADDRESS', target), cli.empty_field(args))]
    return cli.run(disassociate_address_parser(), action, argv)


def release_address_parser() -> argparse.ArgumentParser:
    """Arguments of euca-release-address."""
    parser = cli.command_parser('euca-release-address', 'Release an elastic IP address')
    parser.add_argument('address', metavar='ADDRESS', nargs='?',
                        help='address to release (required unless -a is given)')
    parser.add_argument('-a', '--allocation-id', dest='allocation_id', metavar='ALLOC',
                        help='[VPC only] allocation ID of the address to release')
    return parser


def release_address_request(args: argparse.Namespace) -> dict:
    """ReleaseAddress keyword arguments; exactly one of ADDRESS and -a (CommandError)."""
    return _address_or_allocation(args)


def release_address(argv=None) -> int:
    """euca-release-address: ADDRESS ip allocationId."""
    def action(client, args):
        request = release_address_request(args)
        client.release_address(**request)
        return [output.tabify(('ADDRESS', request.get('PublicIp'), request.get('AllocationId')),
                              cli.empty_field(args))]
    return cli.run(release_address_parser(), action, argv)

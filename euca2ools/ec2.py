"""The euca-* EC2 commands: each is parse -> one or two boto3 calls -> lines.

For each command there is ``<command>_parser()`` (argparse), usually a pure
``<command>_request(args)`` giving the boto3 keyword arguments, and the
console-script ``<command>(argv=None)`` that setup.cfg names.

Regions, zones, key pairs, register/describe images and run/describe/terminate
instances live here, with the helpers the other command modules share;
``ec2_groups``, ``ec2_addresses``, ``ec2_storage``, ``ec2_tags``,
``ec2_instances`` and ``ec2_images`` hold the rest.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from importlib import metadata

from euca2ools import cli, output
from euca2ools.cli import CommandError

EUCA2OOLS_COMPAT_VERSION = '3.4'
ARCHITECTURES = ('i386', 'x86_64', 'armhf', 'ppc', 'ppc64', 'ppc64le')


def with_filters(request: dict, args: argparse.Namespace) -> dict:
    """``request`` with the -F/--filter options as EC2 Filters, if any were given."""
    if getattr(args, 'filters', None):
        request['Filters'] = cli.build_filters(args.filters)
    return request


def add_permission_entity_options(parser: argparse.ArgumentParser, permission: str) -> None:
    """Add euca2ools' repeatable ``-a/--add ENTITY`` and ``-r/--remove ENTITY``."""
    parser.add_argument('-a', '--add', metavar='ENTITY', action='append', default=[],
                        help=f'account to grant {permission} permission, or "all" for all '
                             'accounts (repeatable)')
    parser.add_argument('-r', '--remove', metavar='ENTITY', action='append', default=[],
                        help=f'account to remove {permission} permission from, or "all" '
                             'for all accounts (repeatable)')


def permission_changes(add: list[str], remove: list[str]) -> dict:
    """-a/-r entities -> an EC2 permission modification ``{'Add': [...], 'Remove': [...]}``.

    ``all`` is the group of all accounts, anything else an account id. Raises
    CommandError when neither list names anyone.
    """
    def grantee(entity: str) -> dict:
        return {'Group': entity} if entity == 'all' else {'UserId': entity}
    changes = {}
    if add:
        changes['Add'] = [grantee(entity) for entity in add]
    if remove:
        changes['Remove'] = [grantee(entity) for entity in remove]
    if not changes:
        raise CommandError('at least one entity must be specified with -a/--add or -r/--remove')
    return changes


def owned_or_permitted_requests(args: argparse.Namespace, narrowing: dict[str, list[str]],
                                not_with_all: Sequence[tuple[list[str], str]],
                                owner_key: str, permitted_key: str) -> list[dict]:
    """The Describe calls of a command listing what its account owns or may use (images,
    snapshots), as euca2ools made them.

    ``narrowing`` maps request keys to the values of the options naming ids, owners or
    permitted accounts; those given make one call. Without any of them and without
    -a/--all: two calls, ``owner_key`` self and ``permitted_key`` self. Raises
    CommandError when -a is given with one of ``not_with_all`` ((values, option text)).
    """
    if args.all:
        for given, option in not_with_all:
            if given:
                raise CommandError(f'argument -a/--all: not allowed with {option}')
    request = {key: values for key, values in narrowing.items() if values}
    narrowed = bool(request)
    with_filters(request, args)
    if args.all or narrowed:
        return [request]
    return [dict(request, **{owner_key: ['self']}), dict(request, **{permitted_key: ['self']})]


# --- regions and zones -------------------------------------------------------

def describe_regions_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-regions."""
    parser = cli.command_parser('euca-describe-regions', 'Display information about regions')
    parser.add_argument('regions', metavar='REGION', nargs='*',
                        help='limit results to specific regions')
    cli.add_filter_option(parser)
    return parser


def describe_regions_request(args: argparse.Namespace) -> dict:
    """DescribeRegions keyword arguments for parsed options."""
    request = {'RegionNames': args.regions} if args.regions else {}
    return with_filters(request, args)


def describe_regions(argv=None) -> int:
    """euca-describe-regions: REGION name endpoint."""
    def action(ec2, args):
        response = ec2.describe_regions(**describe_regions_request(args))
        return output.format_regions(response, cli.empty_field(args))
    return cli.run(describe_regions_parser(), action, argv)


def describe_availability_zones_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-availability-zones."""
    parser = cli.command_parser('euca-describe-availability-zones',
                                'Display availability zones within the current region')
    parser.add_argument('zones', metavar='ZONE', nargs='*',
                        help='limit results to specific availability zones '
                             '("verbose" lists free/max instances per type)')
    cli.add_filter_option(parser)
    return parser


def describe_availability_zones_request(args: argparse.Namespace) -> dict:
    """DescribeAvailabilityZones keyword arguments for parsed options."""
    request = {'ZoneNames': args.zones} if args.zones else {}
    return with_filters(request, args)


def describe_availability_zones(argv=None) -> int:
    """euca-describe-availability-zones: AVAILABILITYZONE name state."""
    def action(ec2, args):
        response = ec2.describe_availability_zones(**describe_availability_zones_request(args))
        return output.format_availability_zones(response, cli.empty_field(args))
    return cli.run(describe_availability_zones_parser(), action, argv)


# --- key pairs ---------------------------------------------------------------

def create_keypair_parser() -> argparse.ArgumentParser:
    """Arguments of euca-create-keypair."""
    parser = cli.command_parser('euca-create-keypair',
                                'Create a new SSH key pair for use with instances')
    parser.add_argument('name', metavar='KEYPAIR', help='name of the new key pair')
    parser.add_argument('-f', '--filename', metavar='FILE',
                        help='file name to save the private key to (mode 0600)')
    return parser


def save_private_key(path: str, material: str) -> None:
    """Write a private key readable by its owner only (0600 from creation on)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as keyfile:
        os.fchmod(keyfile.fileno(), 0o600)
        keyfile.write(material if material.endswith('\n') else material + '\n')


def create_keypair(argv=None) -> int:
    """euca-create-keypair: KEYPAIR name fingerprint, then the key (or into -f FILE)."""
    def action(ec2, args):
        response = ec2.create_key_pair(KeyName=args.name)
        if args.filename:
            save_private_key(args.filename, response.get('KeyMaterial', ''))
        return output.format_keypair_created(response, with_material=not args.filename,
                                             empty=cli.empty_field(args))
    return cli.run(create_keypair_parser(), action, argv)


def describe_keypairs_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-keypairs."""
    parser = cli.command_parser('euca-describe-keypairs', 'Display information about key pairs')
    parser.add_argument('names', metavar='KEYPAIR', nargs='*',
                        help='limit results to specific key pairs')
    cli.add_filter_option(parser)
    return parser


def describe_keypairs_request(args: argparse.Namespace) -> dict:
    """DescribeKeyPairs keyword arguments for parsed options."""
    request = {'KeyNames': args.names} if args.names else {}
    return with_filters(request, args)


def describe_keypairs(argv=None) -> int:
    """euca-describe-keypairs: KEYPAIR name fingerprint."""
    def action(ec2, args):
        response = ec2.describe_key_pairs(**describe_keypairs_request(args))
        return output.format_keypairs(response, cli.empty_field(args))
    return cli.run(describe_keypairs_parser(), action, argv)


def delete_keypair_parser() -> argparse.ArgumentParser:
    """Arguments of euca-delete-keypair."""
    parser = cli.command_parser('euca-delete-keypair', 'Delete a key pair')
    parser.add_argument('name', metavar='KEYPAIR', help='name of the key pair to delete')
    return parser


def delete_keypair(argv=None) -> int:
    """euca-delete-keypair: KEYPAIR name."""
    def action(ec2, args):
        ec2.delete_key_pair(KeyName=args.name)
        return output.format_keypair_deleted(args.name, cli.empty_field(args))
    return cli.run(delete_keypair_parser(), action, argv)


def import_keypair_parser() -> argparse.ArgumentParser:
    """Arguments of euca-import-keypair."""
    parser = cli.command_parser('euca-import-keypair',
                                'Import a public RSA key as a new key pair')
    parser.add_argument('name', metavar='KEYPAIR', help='name for the new key pair')
    parser.add_argument('-f', '--public-key-file', dest='public_key_file', metavar='FILE',
                        required=True,
                        help='name of a file containing the public key to import (required)')
    return parser


def import_keypair_request(args: argparse.Namespace, public_key: bytes) -> dict:
    """ImportKeyPair keyword arguments; boto3 base64-encodes the key file's bytes itself."""
    return {'KeyName': args.name, 'PublicKeyMaterial': public_key}


def import_keypair(argv=None) -> int:
    """euca-import-keypair: KEYPAIR name fingerprint."""
    def action(ec2, args):
        with open(args.public_key_file, 'rb') as key_file:
            public_key = key_file.read()
        response = ec2.import_key_pair(**import_keypair_request(args, public_key))
        return output.format_keypairs({'KeyPairs': [response]}, cli.empty_field(args))
    return cli.run(import_keypair_parser(), action, argv)


# --- images ------------------------------------------------------------------

def register_parser() -> argparse.ArgumentParser:
    """Arguments of euca-register."""
    parser = cli.command_parser('euca-register', 'Register a new image')
    parser.add_argument('location', metavar='BUCKET/MANIFEST',
                        help='path to the uploaded bundle manifest, e.g. mybucket/img.manifest.xml')
    parser.add_argument('-n', '--name', required=True, help='name of the new image')
    parser.add_argument('-d', '--description', help='description of the new image')
    parser.add_argument('-a', '--architecture', choices=ARCHITECTURES,
                        help='CPU architecture of the new image')
    parser.add_argument('--kernel', metavar='KERNEL', help='ID of the kernel (eki-…)')
    parser.add_argument('--ramdisk', metavar='RAMDISK', help='ID of the ramdisk (eri-…)')
    parser.add_argument('--virtualization-type', choices=('paravirtual', 'hvm'),
                        help='virtualization type of the new image')
    return parser


def register_request(args: argparse.Namespace) -> dict:
    """RegisterImage keyword arguments for parsed options."""
    request = {'ImageLocation': args.location, 'Name': args.name}
    for key, value in (('Description', args.description), ('Architecture', args.architecture),
                       ('KernelId', args.kernel), ('RamdiskId', args.ramdisk),
                       ('VirtualizationType', args.virtualization_type)):
        if value:
            request[key] = value
    return request


def register(argv=None) -> int:
    """euca-register: IMAGE emi-xxxxxxxx."""
    def action(ec2, args):
        response = ec2.register_image(**register_request(args))
        return output.format_image_registered(response, cli.empty_field(args))
    return cli.run(register_parser(), action, argv)


def describe_images_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-images."""
    parser = cli.command_parser(
        'euca-describe-images',
        'Show information about images. By default, only images your account owns '
        'and images for which your account has explicit launch permissions are shown.')
    parser.add_argument('images', metavar='IMAGE', nargs='*',
                        help='limit results to specific images')
    parser.add_argument('-a', '--all', action='store_true', help='describe all images')
    parser.add_argument('-o', '--owner', dest='owners', metavar='ACCOUNT', action='append',
                        default=[], help='describe images owned by the specified owner')
    parser.add_argument('-x', '--executable-by', dest='executable_by', metavar='ACCOUNT',
                        action='append', default=[],
                        help='describe images the specified account may launch')
    cli.add_filter_option(parser)
    return parser


def describe_images_requests(args: argparse.Namespace) -> list[dict]:
    """The DescribeImages calls to make, as euca2ools does.

    Without -a, images or -o/-x: two calls, owned by self and executable by self.
    Raises CommandError when -a is combined with a narrowing option.
    """
    return owned_or_permitted_requests(
        args, {'ImageIds': args.images, 'Owners': args.owners,
               'ExecutableUsers': args.executable_by},
        ((args.images, 'a list of images'), (args.executable_by, 'argument -x/--executable-by'),
         (args.owners, 'argument -o/--owner')),
        'Owners', 'ExecutableUsers')


def describe_images(argv=None) -> int:
    """euca-describe-images: IMAGE lines, sorted by id."""
    def action(ec2, args):
        responses = [ec2.describe_images(**request)
                     for request in describe_images_requests(args)]
        return output.format_images(responses, cli.empty_field(args))
    return cli.run(describe_images_parser(), action, argv)


# --- instances ---------------------------------------------------------------

def parse_instance_count(text: str) -> tuple[int, int]:
    """argparse type for ``-n MIN[-MAX]``."""
    low, _, high = text.partition('-')
    try:
        counts = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' must be a number of instances or a range MIN-MAX") from None
    if counts[0] < 1 or counts[1] < counts[0]:
        raise argparse.ArgumentTypeError(
            f"'{text}': counts must be at least 1 and MIN no greater than MAX")
    return counts


def run_instances_parser() -> argparse.ArgumentParser:
    """Arguments of euca-run-instances."""
    parser = cli.command_parser('euca-run-instances', 'Launch instances of a machine image')
    parser.add_argument('image', metavar='IMAGE', help='ID of the image to run (emi-…)')
    parser.add_argument('-n', '--instance-count', dest='count', metavar='MIN[-MAX]',
                        type=parse_instance_count, default=(1, 1),
                        help='number of instances to launch (default: 1)')
    parser.add_argument('-t', '--instance-type', dest='instance_type', metavar='TYPE',
                        help='type of instance to launch (e.g. m1.small)')
    parser.add_argument('-k', '--key', metavar='KEYPAIR',
                        help='name of the key pair to inject into the instances')
    parser.add_argument('-z', '--availability-zone', dest='zone', metavar='ZONE',
                        help='availability zone to run the instances in')
    parser.add_argument('-g', '--group', dest='groups', metavar='GROUP', action='append',
                        default=[], help='security group to run the instances in (repeatable)')
    parser.add_argument('--kernel', metavar='KERNEL', help='ID of the kernel to boot')
    parser.add_argument('--ramdisk', metavar='RAMDISK', help='ID of the ramdisk to boot')
    data = parser.add_mutually_exclusive_group()
    data.add_argument('-d', '--user-data', dest='user_data', metavar='DATA',
                      help='user data to pass to the instances')
    data.add_argument('-f', '--user-data-file', dest='user_data_file', metavar='FILE',
                      help='file containing user data to pass to the instances')
    return parser


def run_instances_request(args: argparse.Namespace, user_data: bytes | str | None = None) -> dict:
    """RunInstances keyword arguments; ``user_data`` is -d or the -f file's bytes.

    boto3 base64-encodes UserData itself, so it is passed raw.
    """
    request: dict = {'ImageId': args.image, 'MinCount': args.count[0],
                     'MaxCount': args.count[1]}
    for key, value in (('InstanceType', args.instance_type), ('KeyName', args.key),
                       ('KernelId', args.kernel), ('RamdiskId', args.ramdisk)):
        if value:
            request[key] = value
    if args.zone:
        request['Placement'] = {'AvailabilityZone': args.zone}
    if args.groups:
        request['SecurityGroups'] = args.groups
    if user_data is None:
        user_data = args.user_data
    if user_data:
        request['UserData'] = user_data
    return request


def run_instances(argv=None) -> int:
    """euca-run-instances: the new reservation's RESERVATION and INSTANCE lines."""
    def action(ec2, args):
        user_data = None
        if args.user_data_file:
            with open(args.user_data_file, 'rb') as data_file:
                user_data = data_file.read()
        reservation = ec2.run_instances(**run_instances_request(args, user_data))
        return output.format_reservation(reservation, cli.empty_field(args))
    return cli.run(run_instances_parser(), action, argv)


def describe_instances_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-instances."""
    parser = cli.command_parser('euca-describe-instances', 'Show information about instances')
    parser.add_argument('instances', metavar='INSTANCE', nargs='*',
                        help='limit results to specific instances')
    cli.add_filter_option(parser)
    return parser


def describe_instances_request(args: argparse.Namespace) -> dict:
    """DescribeInstances keyword arguments for parsed options."""
    request = {'InstanceIds': args.instances} if args.instances else {}
    return with_filters(request, args)


def describe_instances(argv=None) -> int:
    """euca-describe-instances: RESERVATION, INSTANCE, BLOCKDEVICE, TAG lines."""
    def action(ec2, args):
        response = ec2.describe_instances(**describe_instances_request(args))
        return output.format_reservations(response, cli.empty_field(args))
    return cli.run(describe_instances_parser(), action, argv)


def terminate_instances_parser() -> argparse.ArgumentParser:
    """Arguments of euca-terminate-instances."""
    parser = cli.command_parser('euca-terminate-instances', 'Terminate one or more instances')
    parser.add_argument('instances', metavar='INSTANCE', nargs='+',
                        help='ID(s) of the instance(s) to terminate')
    return parser


def terminate_instances(argv=None) -> int:
    """euca-terminate-instances: INSTANCE id previous-state current-state."""
    def action(ec2, args):
        response = ec2.terminate_instances(InstanceIds=args.instances)
        return output.format_terminated(response, cli.empty_field(args))
    return cli.run(terminate_instances_parser(), action, argv)


# --- version -----------------------------------------------------------------

def version_line() -> str:
    """What euca-version prints."""
    try:
        ours = metadata.version('eucalyptus-py')
    except metadata.PackageNotFoundError:
        ours = 'unknown'
    return f'euca2ools {EUCA2OOLS_COMPAT_VERSION} (eucalyptus-py {ours})'


def version(argv=None) -> int:
    """euca-version: the version line; needs no cloud."""
    parser = cli.command_parser('euca-version', 'Display the version of euca2ools',
                                cloud=False)
    parser.parse_args(argv)
    cli.emit([version_line()])
    return 0

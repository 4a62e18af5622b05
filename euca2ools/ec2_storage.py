"""The EBS commands: volumes (euca-create-volume, euca-describe-volumes,
euca-delete-volume, euca-attach-volume, euca-detach-volume) and snapshots
(euca-create-snapshot, euca-describe-snapshots, euca-delete-snapshot,
euca-modify-snapshot-attribute).

As in ``euca2ools.ec2``: a parser, a pure request builder and a formatter per
command, and the console script ``<command>(argv=None)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping

from euca2ools import cli, ec2, output
from euca2ools.cli import CommandError

CREATE_VOLUME_PERMISSION = 'createVolumePermission'


# --- volumes -----------------------------------------------------------------

def create_volume_parser() -> argparse.ArgumentParser:
    """Arguments of euca-create-volume."""
    parser = cli.command_parser('euca-create-volume', 'Create a new volume')
    parser.add_argument('-z', '--availability-zone', dest='zone', metavar='ZONE', required=True,
                        help='availability zone in which to create the new volume (required)')
    parser.add_argument('-s', '--size', type=int,
                        help='size of the new volume in GiB (required unless --snapshot is used)')
    parser.add_argument('--snapshot', metavar='SNAPSHOT',
                        help='snapshot from which to create the new volume')
    parser.add_argument('-t', '--type', dest='volume_type', metavar='VOLTYPE', help='volume type')
    parser.add_argument('-i', '--iops', type=int, help='number of I/O operations per second')
    return parser


def create_volume_request(args: argparse.Namespace) -> dict:
    """CreateVolume keyword arguments. Raises CommandError without -s or --snapshot,
    and for --iops without a -t other than "standard"."""
    if not args.size and not args.snapshot:
        raise CommandError('-s/--size or --snapshot must be specified')
    if args.iops and not args.volume_type:
        raise CommandError('argument -i/--iops: -t/--type is required')
    if args.iops and args.volume_type == 'standard':
        raise CommandError('argument -i/--iops: not allowed with volume type "standard"')
    request: dict = {'AvailabilityZone': args.zone}
    for key, value in (('Size', args.size), ('SnapshotId', args.snapshot),
                       ('VolumeType', args.volume_type), ('Iops', args.iops)):
        if value:
            request[key] = value
    return request


def format_volume_created(response: Mapping, empty: str = '') -> list[str]:
    """CreateVolume -> VOLUME id size snapshot zone status createTime."""
    return [output.tabify(('VOLUME', response.get('VolumeId'), response.get('Size'),
                           response.get('SnapshotId'), response.get('AvailabilityZone'),
                           response.get('State'), response.get('CreateTime')), empty)]


def create_volume(argv=None) -> int:
    """euca-create-volume: VOLUME id size snapshot zone status createTime."""
    def action(client, args):
        response = client.create_volume(**create_volume_request(args))
        return format_volume_created(response, cli.empty_field(args))
    return cli.run(create_volume_parser(), action, argv)


def describe_volumes_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-volumes."""
    parser = cli.command_parser('euca-describe-volumes', 'Display information about volumes')
    parser.add_argument('volumes', metavar='VOLUME', nargs='*',
                        help='limit results to specific volumes')
    cli.add_filter_option(parser)
    return parser


def describe_volumes_request(args: argparse.Namespace) -> dict:
    """DescribeVolumes keyword arguments for parsed options."""
    request = {'VolumeIds': args.volumes} if args.volumes else {}
    return ec2.with_filters(request, args)


def format_volumes(response: Mapping, empty: str = '') -> list[str]:
    """DescribeVolumes -> for each volume its VOLUME, ATTACHMENT and TAG lines."""
    lines: list[str] = []
    for volume in response.get('Volumes', ()):
        lines.extend(format_volume(volume, empty))
    return lines


def format_volume(volume: Mapping, empty: str = '') -> list[str]:
    """VOLUME id size snapshot zone status createTime type iops, then ATTACHMENT and TAG lines."""
    lines = [output.tabify(('VOLUME', volume.get('VolumeId'), volume.get('Size'),
                            volume.get('SnapshotId'), volume.get('AvailabilityZone'),
                            volume.get('State'), volume.get('CreateTime'),
                            volume.get('VolumeType') or 'standard', volume.get('Iops')), empty)]
    lines.extend(output.format_attachment(attachment, empty)
                 for attachment in volume.get('Attachments') or ())
    lines.extend(output.format_tags(volume.get('Tags'), volume.get('VolumeId', ''), empty))
    return lines


def describe_volumes(argv=None) -> int:
    """euca-describe-volumes: VOLUME, ATTACHMENT and TAG lines."""
    def action(client, args):
        response = client.describe_volumes(**describe_volumes_request(args))
        return format_volumes(response, cli.empty_field(args))
    return cli.run(describe_volumes_parser(), action, argv)


def delete_volume_parser() -> argparse.ArgumentParser:
    """Arguments of euca-delete-volume."""
    parser = cli.command_parser('euca-delete-volume', 'Delete a volume')
    parser.add_argument('volume', metavar='VOLUME', help='ID of the volume to delete')
    return parser


def delete_volume(argv=None) -> int:
    """euca-delete-volume: VOLUME id."""
    def action(client, args):
        client.delete_volume(VolumeId=args.volume)
        return [output.tabify(('VOLUME', args.volume), cli.empty_field(args))]
    return cli.run(delete_volume_parser(), action, argv)


def attach_volume_parser() -> argparse.ArgumentParser:
    """Arguments of euca-attach-volume."""
    parser = cli.command_parser('euca-attach-volume', 'Attach an EBS volume to an instance')
    parser.add_argument('-i', '--instance', metavar='INSTANCE', required=True,
                        help='instance to attach the volume to (required)')
    parser.add_argument('-d', '--device', required=True,
                        help='device name exposed to the instance (required)')
    parser.add_argument('volume', metavar='VOLUME', help='ID of the volume to attach')
    return parser


def attach_volume_request(args: argparse.Namespace) -> dict:
    """AttachVolume keyword arguments for parsed options."""
    return {'VolumeId': args.volume, 'InstanceId': args.instance, 'Device': args.device}


def attach_volume(argv=None) -> int:
    """euca-attach-volume: ATTACHMENT volume instance device status attachTime."""
    def action(client, args):
        response = client.attach_volume(**attach_volume_request(args))
        return [output.format_attachment(response, cli.empty_field(args))]
    return cli.run(attach_volume_parser(), action, argv)


def detach_volume_parser() -> argparse.ArgumentParser:
    """Arguments of euca-detach-volume."""
    parser = cli.command_parser('euca-detach-volume', 'Detach a volume from an instance')
    parser.add_argument('volume', metavar='VOLUME', help='ID of the volume to detach')
    parser.add_argument('-i', '--instance', metavar='INSTANCE', help='instance to detach from')
    parser.add_argument('-d', '--device', help='device name')
    parser.add_argument('-f', '--force', action='store_true',
                        help='detach without waiting for the instance. Data may be lost.')
    return parser


def detach_volume_request(args: argparse.Namespace) -> dict:
    """DetachVolume keyword arguments for parsed options."""
    request: dict = {'VolumeId': args.volume}
    if args.instance:
        request['InstanceId'] = args.instance
    if args.device:
        request['Device'] = args.device
    if args.force:
        request['Force'] = True
    return request


def detach_volume(argv=None) -> int:
    """euca-detach-volume: ATTACHMENT volume instance device status attachTime."""
    def action(client, args):
        response = client.detach_volume(**detach_volume_request(args))
        return [output.format_attachment(response, cli.empty_field(args))]
    return cli.run(detach_volume_parser(), action, argv)


# --- snapshots ---------------------------------------------------------------

def create_snapshot_parser() -> argparse.ArgumentParser:
    """Arguments of euca-create-snapshot."""
    parser = cli.command_parser('euca-create-snapshot', 'Create a snapshot of a volume')
    parser.add_argument('volume', metavar='VOLUME', help='volume to create a snapshot of')
    parser.add_argument('-d', '--description', metavar='DESC', help='snapshot description')
    return parser


def create_snapshot_request(args: argparse.Namespace) -> dict:
    """CreateSnapshot keyword arguments for parsed options."""
    request = {'VolumeId': args.volume}
    if args.description:
        request['Description'] = args.description
    return request


def format_snapshot_created(response: Mapping, empty: str = '') -> list[str]:
    """CreateSnapshot -> SNAPSHOT id volume status startTime owner volumeSize description
    (no progress column, as euca2ools printed it)."""
    return [output.tabify(('SNAPSHOT', response.get('SnapshotId'), response.get('VolumeId'),
                           response.get('State'), response.get('StartTime'),
                           response.get('OwnerId'), response.get('VolumeSize'),
                           response.get('Description')), empty)]


def create_snapshot(argv=None) -> int:
    """euca-create-snapshot: SNAPSHOT line of the new snapshot."""
    def action(client, args):
        response = client.create_snapshot(**create_snapshot_request(args))
        return format_snapshot_created(response, cli.empty_field(args))
    return cli.run(create_snapshot_parser(), action, argv)


def describe_snapshots_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-snapshots."""
    parser = cli.command_parser(
        'euca-describe-snapshots',
        'Show information about snapshots. By default, only snapshots your account owns '
        'and snapshots for which your account has explicit restore permissions are shown.')
    parser.add_argument('snapshots', metavar='SNAPSHOT', nargs='*',
                        help='limit results to specific snapshots')
    parser.add_argument('-a', '--all', action='store_true', help='describe all snapshots')
    parser.add_argument('-o', '--owner', dest='owners', metavar='ACCOUNT', action='append',
                        default=[], help='limit results to snapshots owned by specific accounts')
    parser.add_argument('-r', '--restorable-by', dest='restorable_by', metavar='ACCOUNT',
                        action='append', default=[],
                        help='limit results to snapshots restorable by specific accounts')
    cli.add_filter_option(parser)
    return parser


def describe_snapshots_requests(args: argparse.Namespace) -> list[dict]:
    """The DescribeSnapshots calls to make, as euca-describe-images does for images.

    Without -a, snapshots or -o/-r: two calls, owned by self and restorable by self.
    Raises CommandError when -a is combined with -o or -r.
    """
    return ec2.owned_or_permitted_requests(
        args, {'SnapshotIds': args.snapshots, 'OwnerIds': args.owners,
               'RestorableByUserIds': args.restorable_by},
        ((args.owners, 'argument -o/--owner'), (args.restorable_by, 'argument -r/--restorable-by')),
        'OwnerIds', 'RestorableByUserIds')


def format_snapshots(responses: Iterable[Mapping], empty: str = '') -> list[str]:
    """One or more DescribeSnapshots responses -> SNAPSHOT and TAG lines, each snapshot once."""
    snapshots: dict[str, Mapping] = {}
    for response in responses:
        for snapshot in response.get('Snapshots', ()):
            snapshots.setdefault(snapshot.get('SnapshotId', ''), snapshot)
    lines: list[str] = []
    for snapshot in snapshots.values():
        lines.extend(format_snapshot(snapshot, empty))
    return lines


def format_snapshot(snapshot: Mapping, empty: str = '') -> list[str]:
    """SNAPSHOT id volume status startTime progress owner volumeSize description, then TAGs."""
    lines = [output.tabify(('SNAPSHOT', snapshot.get('SnapshotId'), snapshot.get('VolumeId'),
                            snapshot.get('State'), snapshot.get('StartTime'),
                            snapshot.get('Progress'), snapshot.get('OwnerId'),
                            snapshot.get('VolumeSize'), snapshot.get('Description')), empty)]
    lines.extend(output.format_tags(snapshot.get('Tags'), snapshot.get('SnapshotId', ''), empty))
    return lines


def describe_snapshots(argv=None) -> int:
    """euca-describe-snapshots: SNAPSHOT and TAG lines."""
    def action(client, args):
        responses = [client.describe_snapshots(**request)
                     for request in describe_snapshots_requests(args)]
        return format_snapshots(responses, cli.empty_field(args))
    return cli.run(describe_snapshots_parser(), action, argv)


def delete_snapshot_parser() -> argparse.ArgumentParser:
    """Arguments of euca-delete-snapshot."""
    parser = cli.command_parser('euca-delete-snapshot', 'Delete a snapshot')
    parser.add_argument('snapshot', metavar='SNAPSHOT', help='ID of the snapshot to delete')
    return parser


def delete_snapshot(argv=None) -> int:
    """euca-delete-snapshot: SNAPSHOT id."""
    def action(client, args):
        client.delete_snapshot(SnapshotId=args.snapshot)
        return [output.tabify(('SNAPSHOT', args.snapshot), cli.empty_field(args))]
    return cli.run(delete_snapshot_parser(), action, argv)


def modify_snapshot_attribute_parser() -> argparse.ArgumentParser:
    """Arguments of euca-modify-snapshot-attribute."""
    parser = cli.command_parser('euca-modify-snapshot-attribute',
                                'Modify an attribute of a snapshot')
    parser.add_argument('snapshot', metavar='SNAPSHOT', help='ID of the snapshot to modify')
    parser.add_argument('-c', '--create-volume-permission', dest='create_volume_permission',
                        action='store_true', required=True,
                        help='grant/revoke volume creation permission with -a/-r (required)')
    ec2.add_permission_entity_options(parser, 'volume creation')
    return parser


def modify_snapshot_attribute_request(args: argparse.Namespace) -> dict:
    """ModifySnapshotAttribute keyword arguments; CommandError without any -a/-r."""
    return {'SnapshotId': args.snapshot, 'Attribute': CREATE_VOLUME_PERMISSION,
            'CreateVolumePermission': ec2.permission_changes(args.add, args.remove)}


def modify_snapshot_attribute(argv=None) -> int:
    """euca-modify-snapshot-attribute: createVolumePermission id ADD|REMOVE kind entity."""
    def action(client, args):
        request = modify_snapshot_attribute_request(args)
        client.modify_snapshot_attribute(**request)
        return output.format_permission_changes(CREATE_VOLUME_PERMISSION, args.snapshot,
                                                request['CreateVolumePermission'],
                                                cli.empty_field(args))
    return cli.run(modify_snapshot_attribute_parser(), action, argv)

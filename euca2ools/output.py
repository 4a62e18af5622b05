"""euca2ools 3.x tab-separated output, built from boto3 response dicts.

Every function here is pure: a response dict (as boto3 returns it) in, a list
of output lines out. ``empty`` is what a missing field prints as: '' normally,
'(nil)' under --show-empty-fields, as euca2ools' tabify does.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence

# Resource id prefix -> the type name TAG lines carry (euca2ools' map, trimmed
# to what this cloud has).
_RESOURCE_TYPES = {
    'ami': 'image', 'aki': 'image', 'ari': 'image',
    'emi': 'image', 'eki': 'image', 'eri': 'image',
    'i': 'instance', 'sg': 'security-group', 'snap': 'snapshot',
    'vol': 'volume', 'eipalloc': 'allocation-id', 'bun': 'bundle',
}


def format_value(value) -> str | None:
    """Render one field as the EC2 XML carried it: bools lowercase, times ISO."""
    if value is None:
        return None
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc)
        return value.strftime('%Y-%m-%dT%H:%M:%S.') + f'{value.microsecond // 1000:03d}Z'
    return str(value)


def tabify(fields: Iterable, empty: str = '') -> str:
    """Join fields with tabs; None and '' become ``empty``."""
    rendered = (format_value(field) for field in fields)
    return '\t'.join(field if field else empty for field in rendered)


def resource_type(resource_id: str) -> str | None:
    """The EC2 resource type named by an id's prefix ('i-…' -> 'instance')."""
    prefix = resource_id.split('-', 1)[0] if '-' in resource_id else ''
    return _RESOURCE_TYPES.get(prefix)


def format_tags(tags: Sequence[Mapping] | None, resource_id: str, empty: str = '') -> list[str]:
    """TAG type id key value, one line per tag."""
    return [tabify(('TAG', resource_type(resource_id), resource_id,
                    tag.get('Key'), tag.get('Value')), empty)
            for tag in tags or ()]


def format_regions(response: Mapping, empty: str = '') -> list[str]:
    """DescribeRegions -> REGION name endpoint."""
    return [tabify(('REGION', region.get('RegionName'), region.get('Endpoint')), empty)
            for region in response.get('Regions', ())]


def format_availability_zones(response: Mapping, empty: str = '') -> list[str]:
    """DescribeAvailabilityZones -> AVAILABILITYZONE name state messages.

    Eucalyptus' ``verbose`` listing arrives as extra zones named ``|- m1.small``
    whose state holds the free/max counts; they print through unchanged.
    """
    lines = []
    for zone in response.get('AvailabilityZones', ()):
        messages = ', '.join(message.get('Message') or ''
                             for message in zone.get('Messages') or ())
        lines.append(tabify(('AVAILABILITYZONE', zone.get('ZoneName'),
                             zone.get('State'), messages), empty))
    return lines


def format_keypair_created(response: Mapping, with_material: bool = True,
                           empty: str = '') -> list[str]:
    """CreateKeyPair -> KEYPAIR name fingerprint, then the private key unless saved."""
    lines = [tabify(('KEYPAIR', response.get('KeyName'), response.get('KeyFingerprint')),
                    empty)]
    if with_material:
        lines.append(response.get('KeyMaterial', '').rstrip('\n'))
    return lines


def format_keypairs(response: Mapping, empty: str = '') -> list[str]:
    """DescribeKeyPairs -> KEYPAIR name fingerprint."""
    return [tabify(('KEYPAIR', pair.get('KeyName'), pair.get('KeyFingerprint')), empty)
            for pair in response.get('KeyPairs', ())]


def format_keypair_deleted(name: str, empty: str = '') -> list[str]:
    """DeleteKeyPair -> KEYPAIR name (the response itself carries nothing)."""
    return [tabify(('KEYPAIR', name), empty)]


def format_image_registered(response: Mapping, empty: str = '') -> list[str]:
    """RegisterImage -> IMAGE emi-xxxxxxxx."""
    return [tabify(('IMAGE', response.get('ImageId')), empty)]


def format_images(responses: Iterable[Mapping], empty: str = '') -> list[str]:
    """One or more DescribeImages responses -> IMAGE lines, de-duplicated, by id."""
    images: dict[str, Mapping] = {}
    for response in responses:
        for image in response.get('Images', ()):
            images.setdefault(image.get('ImageId', ''), image)
    lines: list[str] = []
    for _, image in sorted(images.items()):
        lines.extend(format_image(image, empty))
    return lines


def format_image(image: Mapping, empty: str = '') -> list[str]:
    """IMAGE id location owner state public arch type kernel ramdisk platform
    rootDevType virtType hypervisor, then BLOCKDEVICEMAPPING and TAG lines."""
    if image.get('Name'):
        location = '/'.join((image.get('OwnerId') or '', image['Name']))
    else:
        location = image.get('ImageLocation')
    lines = [tabify((
        'IMAGE', image.get('ImageId'), location,
        image.get('ImageOwnerAlias') or image.get('OwnerId'), image.get('State'),
        'public' if image.get('Public') else 'private',
        image.get('Architecture'), image.get('ImageType'), image.get('KernelId'),
        image.get('RamdiskId'), image.get('Platform'), image.get('RootDeviceType'),
        image.get('VirtualizationType'), image.get('Hypervisor')), empty)]
    for mapping in image.get('BlockDeviceMappings') or ():
        lines.append(_format_blockdevice_mapping(mapping, empty))
    lines.extend(format_tags(image.get('Tags'), image.get('ImageId', ''), empty))
    return lines


def _format_blockdevice_mapping(mapping: Mapping, empty: str) -> str:
    if mapping.get('VirtualName'):
        return tabify(('BLOCKDEVICEMAPPING', 'EPHEMERAL', mapping.get('DeviceName'),
                       mapping.get('VirtualName')), empty)
    ebs = mapping.get('Ebs') or {}
    return tabify(('BLOCKDEVICEMAPPING', 'EBS', mapping.get('DeviceName'),
                   ebs.get('SnapshotId'), ebs.get('VolumeSize'),
                   ebs.get('DeleteOnTermination'), ebs.get('VolumeType'),
                   ebs.get('Iops')), empty)


def format_reservations(response: Mapping, empty: str = '') -> list[str]:
    """DescribeInstances -> for each reservation its RESERVATION/INSTANCE/... lines."""
    lines: list[str] = []
    for reservation in response.get('Reservations', ()):
        lines.extend(format_reservation(reservation, empty))
    return lines


def format_reservation(reservation: Mapping, empty: str = '') -> list[str]:
    """RESERVATION r-id owner groups, then its instances by launch time.

    Also takes a RunInstances response, which is one reservation.
    """
    groups = ', '.join(group.get('GroupName') or group.get('GroupId') or ''
                       for group in reservation.get('Groups') or ())
    lines = [tabify(('RESERVATION', reservation.get('ReservationId'),
                     reservation.get('OwnerId'), groups), empty)]
    instances = sorted(reservation.get('Instances') or (), key=_launch_order)
    for instance in instances:
        lines.extend(format_instance(instance, empty))
    return lines


def _launch_order(instance: Mapping):
    return (format_value(instance.get('LaunchTime')) or '', instance.get('AmiLaunchIndex') or 0)


def format_instance(instance: Mapping, empty: str = '') -> list[str]:
    """INSTANCE + the 32 euca2ools 3.x fields, then BLOCKDEVICE and TAG lines."""
    placement = instance.get('Placement') or {}
    monitoring = (instance.get('Monitoring') or {}).get('State')
    fields = (
        'INSTANCE', instance.get('InstanceId'), instance.get('ImageId'),
        instance.get('PublicDnsName'), instance.get('PrivateDnsName'),
        (instance.get('State') or {}).get('Name'), instance.get('KeyName'),
        instance.get('AmiLaunchIndex'),
        ','.join(code.get('ProductCodeId') or ''
                 for code in instance.get('ProductCodes') or ()),
        instance.get('InstanceType'), instance.get('LaunchTime'),
        placement.get('AvailabilityZone'), instance.get('KernelId'),
        instance.get('RamdiskId'), instance.get('Platform'),
        'monitoring-' + monitoring if monitoring else None,
        instance.get('PublicIpAddress'), instance.get('PrivateIpAddress'),
        instance.get('VpcId'), instance.get('SubnetId'), instance.get('RootDeviceType'),
        instance.get('InstanceLifecycle'), instance.get('SpotInstanceRequestId'),
        None,  # license: EC2 never returns one
        placement.get('GroupName'), instance.get('VirtualizationType'),
        instance.get('Hypervisor'), instance.get('ClientToken'),
        ','.join(group.get('GroupId') or '' for group in instance.get('SecurityGroups') or ()),
        placement.get('Tenancy'), instance.get('EbsOptimized'),
        (instance.get('IamInstanceProfile') or {}).get('Arn'),
        instance.get('Architecture'))
    lines = [tabify(fields, empty)]
    for device in instance.get('BlockDeviceMappings') or ():
        ebs = device.get('Ebs') or {}
        lines.append(tabify(('BLOCKDEVICE', device.get('DeviceName'), ebs.get('VolumeId'),
                             ebs.get('AttachTime'), ebs.get('DeleteOnTermination'),
                             ebs.get('VolumeType'), ebs.get('Iops')), empty))
    lines.extend(format_tags(instance.get('Tags'), instance.get('InstanceId', ''), empty))
    return lines


def format_terminated(response: Mapping, empty: str = '') -> list[str]:
    """TerminateInstances -> INSTANCE id previousState currentState."""
    return format_state_changes(response.get('TerminatingInstances'), empty)


def format_state_changes(changes: Iterable[Mapping] | None, empty: str = '') -> list[str]:
    """Terminating/Stopping/StartingInstances -> INSTANCE id previousState currentState."""
    return [tabify(('INSTANCE', change.get('InstanceId'),
                    (change.get('PreviousState') or {}).get('Name'),
                    (change.get('CurrentState') or {}).get('Name')), empty)
            for change in changes or ()]


def format_attachment(attachment: Mapping, empty: str = '') -> str:
    """ATTACHMENT volume instance device status attachTime (a volume's, or Attach/DetachVolume)."""
    return tabify(('ATTACHMENT', attachment.get('VolumeId'), attachment.get('InstanceId'),
                   attachment.get('Device'), attachment.get('State'),
                   attachment.get('AttachTime')), empty)


def format_permission_changes(attribute: str, resource_id: str, changes: Mapping,
                              empty: str = '') -> list[str]:
    """A Modify*Attribute permission change, as euca2ools echoed it:
    ``<attribute> id ADD|REMOVE Group|UserId entity``, one line per grantee."""
    lines = []
    for operation in ('Add', 'Remove'):
        for grantee in changes.get(operation) or ():
            for kind, entity in grantee.items():
                lines.append(tabify((attribute, resource_id, operation.upper(), kind, entity),
                                    empty))
    return lines

"""Image commands beyond register/describe: euca-create-image, euca-deregister,
euca-describe-image-attribute, euca-modify-image-attribute and
euca-reset-image-attribute.

As in ``euca2ools.ec2``: a parser, a pure request builder and a formatter per
command, and the console script ``<command>(argv=None)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from euca2ools import cli, ec2, output
from euca2ools.cli import CommandError

LAUNCH_PERMISSION = 'launchPermission'
#: boto3's grantee keys -> the EC2 XML names euca-describe-image-attribute printed.
_GRANTEE_NAMES = {'Group': 'group', 'UserId': 'userId', 'OrganizationArn': 'organizationArn',
                  'OrganizationalUnitArn': 'organizationalUnitArn'}


def create_image_parser() -> argparse.ArgumentParser:
    """Arguments of euca-create-image."""
    parser = cli.command_parser('euca-create-image', "Create a new image from a running or stopped "
                                                     "instance's root disk")
    parser.add_argument('instance', metavar='INSTANCE', help='ID of the instance to image')
    parser.add_argument('-n', '--name', required=True, help='name of the new image (required)')
    parser.add_argument('-d', '--description', help='description of the new image')
    parser.add_argument('--no-reboot', action='store_true',
                        help='do not pause the instance while its disk is copied')
    return parser


def create_image_request(args: argparse.Namespace) -> dict:
    """CreateImage keyword arguments for parsed options."""
    request = {'InstanceId': args.instance, 'Name': args.name}
    if args.description:
        request['Description'] = args.description
    if args.no_reboot:
        request['NoReboot'] = True
    return request


def create_image(argv=None) -> int:
    """euca-create-image: IMAGE id (pending until the node has copied the disk)."""
    def action(client, args):
        return [output.tabify(('IMAGE', client.create_image(**create_image_request(args))['ImageId']))]
    return cli.run(create_image_parser(), action, argv)


def deregister_parser() -> argparse.ArgumentParser:
    """Arguments of euca-deregister."""
    parser = cli.command_parser(
        'euca-deregister',
        'De-register an image. After you de-register an image it cannot be used to launch '
        'new instances.')
    parser.add_argument('image', metavar='IMAGE', help='ID of the image to de-register')
    return parser


def deregister(argv=None) -> int:
    """euca-deregister: IMAGE id."""
    def action(client, args):
        client.deregister_image(ImageId=args.image)
        return [output.tabify(('IMAGE', args.image), cli.empty_field(args))]
    return cli.run(deregister_parser(), action, argv)


# --- describe ----------------------------------------------------------------

def describe_image_attribute_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-image-attribute: the image and exactly one attribute."""
    parser = cli.command_parser('euca-describe-image-attribute',
                                'Show information about an attribute of an image')
    parser.add_argument('image', metavar='IMAGE', help='image to describe')
    which = parser.add_mutually_exclusive_group(required=True)
    for flags, attribute, text in (
            (('-l', '--launch-permission'), LAUNCH_PERMISSION, 'display launch permissions'),
            (('-p', '--product-codes'), 'productCodes', 'list associated product codes'),
            (('-B', '--block-device-mapping'), 'blockDeviceMapping',
             'describe block device mappings'),
            (('-k', '--kernel'), 'kernel', 'show associated kernel image ID'),
            (('-r', '--ramdisk'), 'ramdisk', 'show associated ramdisk image ID'),
            (('--description',), 'description', "show the image's description")):
        which.add_argument(*flags, dest='attribute', action='store_const', const=attribute,
                           help=text)
    return parser


def describe_image_attribute_request(args: argparse.Namespace) -> dict:
    """DescribeImageAttribute keyword arguments for parsed options."""
    return {'ImageId': args.image, 'Attribute': args.attribute}


def format_image_attribute(response: Mapping, empty: str = '') -> list[str]:
    """DescribeImageAttribute -> ``<attribute> image-id <kind> <value>`` lines:
    launchPermission id group|userId entity, productCodes id productCode code,
    blockDeviceMapping id blockDeviceMap "device: source", kernel/ramdisk/description id - value.
    """
    image_id = response.get('ImageId')
    lines = []
    for grantee in response.get('LaunchPermissions') or ():
        for kind, entity in grantee.items():
            lines.append(output.tabify((LAUNCH_PERMISSION, image_id,
                                        _GRANTEE_NAMES.get(kind, kind), entity), empty))
    for code in response.get('ProductCodes') or ():
        text = code.get('ProductCodeId')
        if code.get('ProductCodeType'):
            text = f"[{code['ProductCodeType']}: {text}]"
        lines.append(output.tabify(('productCodes', image_id, 'productCode', text), empty))
    for mapping in response.get('BlockDeviceMappings') or ():
        source = mapping.get('VirtualName') or (mapping.get('Ebs') or {}).get('SnapshotId')
        lines.append(output.tabify(('blockDeviceMapping', image_id, 'blockDeviceMap',
                                    f"{mapping.get('DeviceName')}: {source}"), empty))
    for attribute, key in (('kernel', 'KernelId'), ('ramdisk', 'RamdiskId'),
                           ('description', 'Description')):
        value = (response.get(key) or {}).get('Value')
        if value:
            lines.append(output.tabify((attribute, image_id, None, value), empty))
    return lines


def describe_image_attribute(argv=None) -> int:
    """euca-describe-image-attribute: one line per value of the attribute."""
    def action(client, args):
        response = client.describe_image_attribute(**describe_image_attribute_request(args))
        return format_image_attribute(response, cli.empty_field(args))
    return cli.run(describe_image_attribute_parser(), action, argv)


# --- modify and reset --------------------------------------------------------

def modify_image_attribute_parser() -> argparse.ArgumentParser:
    """Arguments of euca-modify-image-attribute: the image and one kind of change."""
    parser = cli.command_parser('euca-modify-image-attribute', 'Modify an attribute of an image')
    parser.add_argument('image', metavar='IMAGE', help='image to modify')
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument('--description', metavar='DESC', help="change the image's description")
    which.add_argument('-p', '--product-code', dest='product_codes', metavar='CODE',
                       action='append', help='product code to add to the image (repeatable)')
    which.add_argument('-l', '--launch-permission', dest='launch_permission',
                       action='store_true', help='grant/revoke launch permissions with -a/-r')
    ec2.add_permission_entity_options(parser, 'launch')
    return parser


def modify_image_attribute_request(args: argparse.Namespace) -> dict:
    """ModifyImageAttribute keyword arguments. Raises CommandError for -l without -a/-r,
    and for -a/-r without -l."""
    request: dict = {'ImageId': args.image}
    if args.launch_permission:
        request['LaunchPermission'] = ec2.permission_changes(args.add, args.remove)
        return request
    for option, given in (('-a/--add', args.add), ('-r/--remove', args.remove)):
        if given:
            raise CommandError(f'argument {option} may only be used with -l/--launch-permission')
    if args.description is not None:
        request['Description'] = {'Value': args.description}
    else:
        request['ProductCodes'] = args.product_codes
    return request


def format_image_attribute_changes(request: Mapping, empty: str = '') -> list[str]:
    """What euca-modify-image-attribute echoed: description id - text,
    productcodes id productCode code, or launchPermission id ADD|REMOVE kind entity."""
    image_id = request['ImageId']
    if 'LaunchPermission' in request:
        return output.format_permission_changes(LAUNCH_PERMISSION, image_id,
                                                request['LaunchPermission'], empty)
    if 'Description' in request:
        return [output.tabify(('description', image_id, None, request['Description']['Value']),
                              empty)]
    return [output.tabify(('productcodes', image_id, 'productCode', code), empty)
            for code in request.get('ProductCodes') or ()]


def modify_image_attribute(argv=None) -> int:
    """euca-modify-image-attribute: the change made, one line per value."""
    def action(client, args):
        request = modify_image_attribute_request(args)
        client.modify_image_attribute(**request)
        return format_image_attribute_changes(request, cli.empty_field(args))
    return cli.run(modify_image_attribute_parser(), action, argv)


def reset_image_attribute_parser() -> argparse.ArgumentParser:
    """Arguments of euca-reset-image-attribute."""
    parser = cli.command_parser('euca-reset-image-attribute',
                                'Reset an attribute of an image to its default value')
    parser.add_argument('image', metavar='IMAGE',
                        help='ID of the image whose attribute should be reset')
    parser.add_argument('-l', '--launch-permission', dest='attribute', action='store_const',
                        const=LAUNCH_PERMISSION, required=True,
                        help='reset launch permissions (required)')
    return parser


def reset_image_attribute_request(args: argparse.Namespace) -> dict:
    """ResetImageAttribute keyword arguments for parsed options."""
    return {'ImageId': args.image, 'Attribute': args.attribute}


def reset_image_attribute(argv=None) -> int:
    """euca-reset-image-attribute: launchPermission id RESET."""
    def action(client, args):
        client.reset_image_attribute(**reset_image_attribute_request(args))
        return [output.tabify((LAUNCH_PERMISSION, args.image, 'RESET'), cli.empty_field(args))]
    return cli.run(reset_image_attribute_parser(), action, argv)

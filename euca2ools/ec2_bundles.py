"""Bundle commands: euca-bundle-image, euca-upload-bundle and euca-bundle-and-upload-image.

A bundle (eucacore.bundle) is the image tarred, gzipped, encrypted with a random AES key and
cut into 10 MiB parts, with a manifest that carries the key encrypted for the cloud
certificate (``--ec2cert``, default $EUCALYPTUS_CERT, which the eucarc exports). This cloud
issues no user certificates: a user who has a key pair of their own (``-c``/``-k``, default
$EC2_CERT/$EC2_PRIVATE_KEY) gets the key encrypted for them too and a signed manifest, as
euca2ools made; without one the manifest carries the cloud's copy only and an empty signature.

Uploading puts the parts, then the manifest (so a manifest in Walrus always names complete
parts), with the ``aws-exec-read`` ACL, into the bucket of ``-b BUCKET[/PREFIX]``, made if
missing. The object storage endpoint is ``-U`` or $S3_URL. Register the result with
``euca-register BUCKET/PREFIX/NAME.manifest.xml``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import traceback
from pathlib import Path

import botocore.config
import botocore.exceptions

from euca2ools import cli
from euca2ools.cli import CommandError
from euca2ools.credentials import CredentialsError, load_credentials, parse_eucarc
from eucacore import bundle
from eucacore.awsapi import models

DEFAULT_ACL = 'aws-exec-read'
ARCHITECTURES = ('i386', 'x86_64')
_S3_CONFIG = botocore.config.Config(s3={'addressing_style': 'path'}, signature_version='s3v4',
                                    retries={'mode': 'standard', 'total_max_attempts': 3},
                                    connect_timeout=10, read_timeout=300)


def _setting(name: str) -> str | None:
    """An environment variable, else the export of ~/.euca/eucarc (read as text, never run)."""
    if os.environ.get(name):
        return os.environ[name]
    eucarc = Path(os.environ.get('HOME') or os.path.expanduser('~')) / '.euca' / 'eucarc'
    return parse_eucarc(str(eucarc)).get(name) if eucarc.is_file() else None


def _read(path: str | None, what: str) -> bytes | None:
    try:
        return Path(path).read_bytes() if path else None
    except OSError as e:
        raise CommandError(f'cannot read {what} {path}: {e.strerror}') from None


# --- bundling ------------------------------------------------------------------------------

def _add_bundle_options(parser: argparse.ArgumentParser) -> None:
    """The options that say what to bundle and for whom (euca-bundle-image's)."""
    parser.add_argument('-i', '--image', required=True, metavar='FILE', help='file containing the image to bundle')
    parser.add_argument('-p', '--prefix', help='file name prefix for the bundle (default: the image file name)')
    parser.add_argument('-r', '--arch', choices=ARCHITECTURES, default='x86_64',
                        help="the image's processor architecture (default: x86_64)")
    parser.add_argument('--kernel', metavar='IMAGE',
                        help='ID of the kernel to boot the image with, or "true" to bundle a kernel')
    parser.add_argument('--ramdisk', metavar='IMAGE',
                        help='ID of the ramdisk to boot the image with, or "true" to bundle a ramdisk')
    parser.add_argument('-c', '--cert', metavar='FILE', help='your X.509 certificate (default: $EC2_CERT)')
    parser.add_argument('-k', '--privatekey', metavar='FILE',
                        help='your private key, to sign the manifest with (default: $EC2_PRIVATE_KEY)')
    parser.add_argument('-u', '--user', metavar='ACCOUNT', help='your account ID (default: $EC2_USER_ID)')
    parser.add_argument('--ec2cert', metavar='FILE',
                        help="the cloud's certificate, for which the bundle's key is encrypted "
                             '(default: $EUCALYPTUS_CERT)')


def bundle_options(args: argparse.Namespace) -> dict:
    """create_bundle's keyword arguments (besides image and destination) for parsed options.
    Raises CommandError for contradictory markings or a missing cloud certificate."""
    marked = [kind for kind, value in (('kernel', args.kernel), ('ramdisk', args.ramdisk)) if value == bundle.MARKER]
    if len(marked) > 1:
        raise CommandError('an image cannot be both a kernel and a ramdisk')
    image_type = marked[0] if marked else 'machine'
    if marked and args.kernel and args.ramdisk:
        raise CommandError(f'a {image_type} image cannot have a kernel or ramdisk of its own')
    ec2cert = args.ec2cert or _setting('EUCALYPTUS_CERT')
    if not ec2cert:
        raise CommandError("missing the cloud's certificate (--ec2cert or EUCALYPTUS_CERT; "
                           'the eucarc of euca_conf --get-credentials sets it)')
    cert, key = args.cert or _setting('EC2_CERT'), args.privatekey or _setting('EC2_PRIVATE_KEY')
    if bool(cert) != bool(key):
        raise CommandError('a user certificate (-c) and private key (-k) go together: give both or neither')
    return {'ec2_cert': _read(ec2cert, 'cloud certificate'), 'prefix': args.prefix, 'image_type': image_type,
            'architecture': args.arch, 'account_id': args.user or _setting('EC2_USER_ID') or '',
            'kernel_id': '' if image_type != 'machine' else args.kernel or '',
            'ramdisk_id': '' if image_type != 'machine' else args.ramdisk or '',
            'user_cert': _read(cert, 'certificate'), 'user_key': _read(key, 'private key')}


def _bundle(args: argparse.Namespace, destination: Path) -> bundle.Bundle:
    if not Path(args.image).is_file():
        raise CommandError(f'the image {args.image} is not a file')
    try:
        return bundle.create_bundle(args.image, destination, **bundle_options(args))
    except ValueError as e:  # a certificate or key that is not PEM
        raise CommandError(f'cannot bundle {args.image}: {e}') from None


def bundle_image_parser() -> argparse.ArgumentParser:
    """Arguments of euca-bundle-image."""
    parser = cli.command_parser('euca-bundle-image', 'Prepare an image for uploading to a cloud', cloud=False)
    _add_bundle_options(parser)
    parser.add_argument('-d', '--destination', metavar='DIR', default=tempfile.gettempdir(),
                        help="where to put the bundle's files (default: $TMPDIR or /tmp)")
    return parser


def bundle_image(argv=None) -> int:
    """euca-bundle-image: ``Wrote PART`` for each part, then ``Wrote manifest MANIFEST``."""
    def action(args, _s3):
        made = _bundle(args, Path(args.destination))
        return [f'Wrote {part}' for part in made.parts] + [f'Wrote manifest {made.manifest}']
    return _run(bundle_image_parser(), action, argv, storage=False)


# --- uploading -------------------------------------------------------------------------------

def _storage_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser with the options of a command that talks to object storage (Walrus)."""
    parser = cli.command_parser(prog, description, cloud=False)
    group = parser.add_argument_group('standard options')
    group.add_argument('-U', '--url', metavar='URL', help='object storage service endpoint URL (default: $S3_URL)')
    group.add_argument('-I', '--access-key-id', metavar='KEY_ID', help='access key ID (default: $AWS_ACCESS_KEY_ID)')
    group.add_argument('-S', '--secret-key', metavar='KEY', help='secret access key (default: $AWS_SECRET_ACCESS_KEY)')
    group.add_argument('--region', metavar='REGION', help='region name to sign requests for (default: eucalyptus)')
    parser.add_argument('-b', '--bucket', required=True, metavar='BUCKET[/PREFIX]',
                        help='bucket to upload the bundle to, and an optional key prefix')
    parser.add_argument('--acl', default=DEFAULT_ACL, help=f'canned ACL of the uploaded files (default: {DEFAULT_ACL})')
    return parser


def _s3_client(args: argparse.Namespace):
    """A boto3 S3 client of the object storage endpoint (-U, else $S3_URL) with the user's keys.
    The keys are resolved as every command does; a -U stands in for the EC2 URL there."""
    creds = load_credentials(args)
    url = args.url or creds.s3_url
    if not url:
        raise CommandError('missing the object storage endpoint URL (S3_URL or -U)')
    creds = dataclasses.replace(creds, s3_url=url)
    return models.client('s3', endpoint_url=url, access_key=creds.access_key, secret_key=creds.secret_key,
                         region=creds.region, verify=creds.verify('s3'), config=_S3_CONFIG)


def upload(s3, made: bundle.Bundle, location: str, acl: str) -> str:
    """Put the bundle's parts, then its manifest, into ``location`` (BUCKET[/PREFIX]); the
    manifest's BUCKET/KEY, as euca-register takes it."""
    bucket, _, prefix = location.partition('/')
    prefix = prefix.strip('/') + '/' if prefix.strip('/') else ''
    try:
        s3.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as err:
        if err.response.get('Error', {}).get('Code') != 'BucketAlreadyOwnedByYou':
            raise
    for path in (*made.parts, made.manifest):
        with open(path, 'rb') as body:
            s3.put_object(Bucket=bucket, Key=prefix + path.name, Body=body, ACL=acl)
    return f'{bucket}/{prefix}{made.manifest.name}'


def upload_bundle_parser() -> argparse.ArgumentParser:
    """Arguments of euca-upload-bundle."""
    parser = _storage_parser('euca-upload-bundle', 'Upload a bundle prepared by euca-bundle-image to the cloud')
    parser.add_argument('-m', '--manifest', required=True, metavar='FILE', help="the bundle's manifest file")
    parser.add_argument('-d', '--directory', metavar='DIR',
                        help="directory that holds the bundle's parts (default: the manifest's)")
    return parser


def local_bundle(manifest: str, directory: str | None) -> bundle.Bundle:
    """The bundle a local manifest describes, its parts in ``directory`` or beside it.
    Raises CommandError if the manifest cannot be read or a part is missing."""
    path = Path(manifest)
    try:
        names = bundle.part_names(_read(manifest, 'manifest'))
    except bundle.BundleError as e:
        raise CommandError(f'{manifest}: {e}') from None
    parts = tuple(Path(directory or path.parent) / name for name in names)
    missing = [str(part) for part in parts if not part.is_file()]
    if missing:
        raise CommandError(f'missing part {missing[0]} of {manifest}')
    return bundle.Bundle(path, parts)


def upload_bundle(argv=None) -> int:
    """euca-upload-bundle: ``Uploaded BUCKET/KEY`` of the manifest."""
    def action(args, s3):
        return [f'Uploaded {upload(s3, local_bundle(args.manifest, args.directory), args.bucket, args.acl)}']
    return _run(upload_bundle_parser(), action, argv, storage=True)


def bundle_and_upload_image_parser() -> argparse.ArgumentParser:
    """Arguments of euca-bundle-and-upload-image."""
    parser = _storage_parser('euca-bundle-and-upload-image', 'Prepare an image and upload it to the cloud')
    _add_bundle_options(parser)
    parser.add_argument('-d', '--directory', metavar='DIR',
                        help="where to put the bundle's files while they are uploaded (default: a "
                             'temporary directory, removed afterwards)')
    return parser


def bundle_and_upload_image(argv=None) -> int:
    """euca-bundle-and-upload-image: ``Uploaded BUCKET/KEY`` of the manifest."""
    def action(args, s3):
        if args.directory:
            return [f'Uploaded {upload(s3, _bundle(args, Path(args.directory)), args.bucket, args.acl)}']
        with tempfile.TemporaryDirectory(prefix='euca-bundle-') as work:
            return [f'Uploaded {upload(s3, _bundle(args, Path(work)), args.bucket, args.acl)}']
    return _run(bundle_and_upload_image_parser(), action, argv, storage=True)


# --- running ---------------------------------------------------------------------------------

def _run(parser: argparse.ArgumentParser, action, argv, *, storage: bool) -> int:
    """Parse, run ``action(args, s3 client or None)``, print its lines; a failure is one line
    on stderr and exit code 1 (``--debug`` adds the traceback)."""
    args = parser.parse_args(argv)
    try:
        lines = action(args, _s3_client(args) if storage else None)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, CredentialsError,
            CommandError, bundle.BundleError, OSError) as err:
        if args.debug:
            traceback.print_exc()
        print(f'{parser.prog}: {cli.describe_error(err, getattr(args, "url", None), "S3_URL")}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    cli.emit(lines)
    return 0

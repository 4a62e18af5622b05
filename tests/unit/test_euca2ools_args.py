"""Argument parsing of each euca-* command and the requests built from it."""

import argparse

import pytest

from euca2ools import cli, ec2
from euca2ools.cli import CommandError

PARSERS = [ec2.describe_regions_parser, ec2.describe_availability_zones_parser,
           ec2.create_keypair_parser, ec2.describe_keypairs_parser,
           ec2.delete_keypair_parser, ec2.register_parser, ec2.describe_images_parser,
           ec2.run_instances_parser, ec2.describe_instances_parser,
           ec2.terminate_instances_parser]


@pytest.mark.parametrize('make_parser', PARSERS)
def test_help_exits_zero_and_lists_common_options(make_parser, capsys):
    with pytest.raises(SystemExit) as caught:
        make_parser().parse_args(['--help'])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for option in ('-U URL', '--url', '-I KEY_ID', '-S KEY', '--region', '--debug'):
        assert option in text


@pytest.mark.parametrize('make_parser', PARSERS)
def test_common_options(make_parser):
    required = {ec2.create_keypair_parser: ['k'], ec2.delete_keypair_parser: ['k'],
                ec2.register_parser: ['b/m.manifest.xml', '-n', 'img'],
                ec2.run_instances_parser: ['emi-1'],
                ec2.terminate_instances_parser: ['i-1']}.get(make_parser, [])
    args = make_parser().parse_args(['-U', 'http://clc:8773/services/Eucalyptus', '-I', 'AK',
                                     '-S', 'SK', '--region', 'r1', '--debug'] + required)
    assert (args.url, args.access_key_id, args.secret_key, args.region, args.debug) == (
        'http://clc:8773/services/Eucalyptus', 'AK', 'SK', 'r1', True)


def test_version_parser_takes_no_cloud_options(capsys):
    assert ec2.version([]) == 0
    assert capsys.readouterr().out.startswith('euca2ools 3.4 (eucalyptus-py ')
    with pytest.raises(SystemExit):
        ec2.version(['-U', 'http://x/'])


# --- filters -----------------------------------------------------------------

def test_parse_filter():
    assert cli.parse_filter('instance-state-name=running') == ('instance-state-name', 'running')
    assert cli.parse_filter('tag:Name=a=b') == ('tag:Name', 'a=b')
    assert cli.parse_filter('name=') == ('name', '')
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_filter('novalue')


def test_build_filters_groups_values():
    assert cli.build_filters([('a', '1'), ('b', '2'), ('a', '3')]) == [
        {'Name': 'a', 'Values': ['1', '3']}, {'Name': 'b', 'Values': ['2']}]


def test_bad_filter_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as caught:
        ec2.describe_instances_parser().parse_args(['--filter', 'oops'])
    assert caught.value.code == 2
    assert 'NAME=VALUE' in capsys.readouterr().err


# --- per command -------------------------------------------------------------

def test_describe_regions_request():
    parser = ec2.describe_regions_parser()
    assert ec2.describe_regions_request(parser.parse_args([])) == {}
    assert ec2.describe_regions_request(parser.parse_args(['eucalyptus', '-F', 'endpoint=x'])) == {
        'RegionNames': ['eucalyptus'], 'Filters': [{'Name': 'endpoint', 'Values': ['x']}]}


def test_describe_availability_zones_request_verbose():
    args = ec2.describe_availability_zones_parser().parse_args(['verbose'])
    assert ec2.describe_availability_zones_request(args) == {'ZoneNames': ['verbose']}


def test_create_keypair_args():
    args = ec2.create_keypair_parser().parse_args(['mykey', '-f', '/tmp/mykey.priv'])
    assert (args.name, args.filename) == ('mykey', '/tmp/mykey.priv')
    assert ec2.create_keypair_parser().parse_args(['mykey']).filename is None


def test_save_private_key_mode_0600(tmp_path):
    path = tmp_path / 'mykey.priv'
    path.write_text('old')
    path.chmod(0o644)
    ec2.save_private_key(str(path), '-----BEGIN RSA PRIVATE KEY-----\nx\n-----END')
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == '-----BEGIN RSA PRIVATE KEY-----\nx\n-----END\n'


def test_describe_keypairs_and_delete_keypair_args():
    args = ec2.describe_keypairs_parser().parse_args(['a', 'b'])
    assert ec2.describe_keypairs_request(args) == {'KeyNames': ['a', 'b']}
    assert ec2.delete_keypair_parser().parse_args(['a']).name == 'a'
    with pytest.raises(SystemExit):
        ec2.delete_keypair_parser().parse_args([])


def test_register_request_minimal_and_full():
    parser = ec2.register_parser()
    minimal = parser.parse_args(['images/centos.manifest.xml', '-n', 'centos'])
    assert ec2.register_request(minimal) == {'ImageLocation': 'images/centos.manifest.xml',
                                             'Name': 'centos'}
    full = parser.parse_args(['images/centos.manifest.xml', '-n', 'centos', '--description',
                              'CentOS 6', '--kernel', 'eki-1', '--ramdisk', 'eri-1',
                              '-a', 'x86_64', '--virtualization-type', 'paravirtual'])
    assert ec2.register_request(full) == {
        'ImageLocation': 'images/centos.manifest.xml', 'Name': 'centos',
        'Description': 'CentOS 6', 'Architecture': 'x86_64', 'KernelId': 'eki-1',
        'RamdiskId': 'eri-1', 'VirtualizationType': 'paravirtual'}


def test_register_requires_name_and_valid_arch():
    with pytest.raises(SystemExit):
        ec2.register_parser().parse_args(['images/x.manifest.xml'])
    with pytest.raises(SystemExit):
        ec2.register_parser().parse_args(['images/x.manifest.xml', '-n', 'x', '-a', 'sparc'])


def test_describe_images_default_is_owned_plus_executable():
    args = ec2.describe_images_parser().parse_args([])
    assert ec2.describe_images_requests(args) == [{'Owners': ['self']},
                                                  {'ExecutableUsers': ['self']}]


def test_describe_images_all_ids_owner():
    parser = ec2.describe_images_parser()
    assert ec2.describe_images_requests(parser.parse_args(['-a'])) == [{}]
    assert ec2.describe_images_requests(parser.parse_args(['emi-1', 'eki-2'])) == [
        {'ImageIds': ['emi-1', 'eki-2']}]
    assert ec2.describe_images_requests(parser.parse_args(['-o', 'self', '-o', '1234'])) == [
        {'Owners': ['self', '1234']}]
    assert ec2.describe_images_requests(parser.parse_args(['-x', 'all'])) == [
        {'ExecutableUsers': ['all']}]


def test_describe_images_filters_apply_to_both_default_calls():
    args = ec2.describe_images_parser().parse_args(['-F', 'image-type=kernel'])
    filters = [{'Name': 'image-type', 'Values': ['kernel']}]
    assert ec2.describe_images_requests(args) == [
        {'Filters': filters, 'Owners': ['self']},
        {'Filters': filters, 'ExecutableUsers': ['self']}]


@pytest.mark.parametrize('argv', [['-a', 'emi-1'], ['-a', '-o', 'self'], ['-a', '-x', 'all']])
def test_describe_images_all_conflicts(argv):
    with pytest.raises(CommandError, match='-a/--all: not allowed'):
        ec2.describe_images_requests(ec2.describe_images_parser().parse_args(argv))


@pytest.mark.parametrize('text, counts', [('1', (1, 1)), ('3', (3, 3)), ('2-5', (2, 5))])
def test_instance_count(text, counts):
    assert ec2.parse_instance_count(text) == counts


@pytest.mark.parametrize('text', ['0', 'x', '3-2', '1-x', '-1'])
def test_instance_count_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError):
        ec2.parse_instance_count(text)


def test_run_instances_request_minimal():
    args = ec2.run_instances_parser().parse_args(['emi-0a1b2c3d'])
    assert ec2.run_instances_request(args) == {'ImageId': 'emi-0a1b2c3d', 'MinCount': 1,
                                               'MaxCount': 1}


def test_run_instances_request_full():
    args = ec2.run_instances_parser().parse_args([
        'emi-0a1b2c3d', '-n', '2-3', '-t', 'm1.large', '-k', 'mykey', '-z', 'cluster01',
        '-g', 'web', '-g', 'ssh', '--kernel', 'eki-1', '--ramdisk', 'eri-1',
        '-d', '#!/bin/sh\necho hi'])
    assert ec2.run_instances_request(args) == {
        'ImageId': 'emi-0a1b2c3d', 'MinCount': 2, 'MaxCount': 3, 'InstanceType': 'm1.large',
        'KeyName': 'mykey', 'KernelId': 'eki-1', 'RamdiskId': 'eri-1',
        'Placement': {'AvailabilityZone': 'cluster01'}, 'SecurityGroups': ['web', 'ssh'],
        'UserData': '#!/bin/sh\necho hi'}


def test_run_instances_user_data_file_content_wins():
    args = ec2.run_instances_parser().parse_args(['emi-1', '-f', 'data.txt'])
    assert args.user_data_file == 'data.txt'
    assert ec2.run_instances_request(args, b'\x00binary')['UserData'] == b'\x00binary'


def test_run_instances_user_data_options_exclusive():
    with pytest.raises(SystemExit):
        ec2.run_instances_parser().parse_args(['emi-1', '-d', 'x', '-f', 'y'])


def test_run_instances_requires_image():
    with pytest.raises(SystemExit):
        ec2.run_instances_parser().parse_args([])


def test_describe_instances_request():
    parser = ec2.describe_instances_parser()
    assert ec2.describe_instances_request(parser.parse_args([])) == {}
    args = parser.parse_args(['i-1', 'i-2', '--filter', 'instance-state-name=running',
                              '--filter', 'instance-state-name=pending'])
    assert ec2.describe_instances_request(args) == {
        'InstanceIds': ['i-1', 'i-2'],
        'Filters': [{'Name': 'instance-state-name', 'Values': ['running', 'pending']}]}


def test_terminate_instances_needs_an_instance():
    assert ec2.terminate_instances_parser().parse_args(['i-1', 'i-2']).instances == ['i-1', 'i-2']
    with pytest.raises(SystemExit):
        ec2.terminate_instances_parser().parse_args([])


def test_show_empty_fields_option():
    args = ec2.describe_instances_parser().parse_args(['--show-empty-fields'])
    assert cli.empty_field(args) == '(nil)'
    assert cli.empty_field(ec2.describe_instances_parser().parse_args([])) == ''

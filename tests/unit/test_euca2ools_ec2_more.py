"""The euca-* commands for groups, addresses, volumes, snapshots, tags, key import,
instance control and image attributes: parsers, request builders, output, and
whole commands run in-process against a botocore Stubber of the ec2 model.

The stubber checks every request against botocore's EC2 model, so a request
naming a member the model lacks (or missing a required one) fails.
"""

import argparse
import base64
import datetime

import pytest
from botocore.stub import Stubber

from euca2ools import (cli, ec2, ec2_addresses, ec2_groups, ec2_images, ec2_instances,
                       ec2_storage, ec2_tags, output)
from euca2ools.cli import CommandError
from eucacore.awsapi import models

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2024, 3, 5, 17, 4, 9, 123000, tzinfo=UTC)
WHEN_TEXT = '2024-03-05T17:04:09.123Z'
OWNER = '123456789012'


@pytest.fixture(scope='module')
def ec2_client():
    """One EC2 client for the module (building one loads botocore's large EC2 model)."""
    return models.client('ec2', endpoint_url='http://stub.invalid/', access_key='AK',
                         secret_key='SK')


@pytest.fixture
def stub(ec2_client, monkeypatch, tmp_path):
    """A Stubber of the EC2 client the next command gets (all its responses must be used)."""
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('EC2_URL', 'http://clc:8773/services/compute')
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AK')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'SK')
    monkeypatch.delenv('AWS_PROFILE', raising=False)
    stubber = Stubber(ec2_client)
    stubber.activate()
    monkeypatch.setattr(cli, 'make_client', lambda service, creds: ec2_client)
    yield stubber
    stubber.deactivate()
    stubber.assert_no_pending_responses()


def parse(make_parser, *argv):
    return make_parser().parse_args(list(argv))


# --- every new command's parser ------------------------------------------------

PARSERS = {
    ec2.import_keypair_parser: ['k', '-f', 'k.pub'],
    ec2_groups.create_group_parser: ['g', '-d', 'desc'],
    ec2_groups.describe_groups_parser: [],
    ec2_groups.delete_group_parser: ['g'],
    (lambda: ec2_groups.rule_parser('euca-authorize', 'x')): ['g'],
    ec2_addresses.allocate_address_parser: [],
    ec2_addresses.describe_addresses_parser: [],
    ec2_addresses.associate_address_parser: ['10.0.0.1', '-i', 'i-1'],
    ec2_addresses.disassociate_address_parser: ['10.0.0.1'],
    ec2_addresses.release_address_parser: ['10.0.0.1'],
    ec2_storage.create_volume_parser: ['-z', 'zone-a', '-s', '1'],
    ec2_storage.describe_volumes_parser: [],
    ec2_storage.delete_volume_parser: ['vol-1'],
    ec2_storage.attach_volume_parser: ['-i', 'i-1', '-d', '/dev/vdb', 'vol-1'],
    ec2_storage.detach_volume_parser: ['vol-1'],
    ec2_storage.create_snapshot_parser: ['vol-1'],
    ec2_storage.describe_snapshots_parser: [],
    ec2_storage.delete_snapshot_parser: ['snap-1'],
    ec2_storage.modify_snapshot_attribute_parser: ['snap-1', '-c', '-a', 'all'],
    ec2_tags.create_tags_parser: ['i-1', '--tag', 'a=b'],
    ec2_tags.describe_tags_parser: [],
    ec2_tags.delete_tags_parser: ['i-1', '--tag', 'a'],
    ec2_instances.describe_instance_types_parser: [],
    ec2_instances.reboot_instances_parser: ['i-1'],
    ec2_instances.stop_instances_parser: ['i-1'],
    ec2_instances.start_instances_parser: ['i-1'],
    ec2_instances.get_console_output_parser: ['i-1'],
    ec2_instances.describe_instance_status_parser: [],
    ec2_images.deregister_parser: ['emi-1'],
    ec2_images.create_image_parser: ['i-1', '-n', 'snap'],
    ec2_images.describe_image_attribute_parser: ['emi-1', '-l'],
    ec2_images.modify_image_attribute_parser: ['emi-1', '-l', '-a', 'all'],
    ec2_images.reset_image_attribute_parser: ['emi-1', '-l'],
}


@pytest.mark.parametrize('make_parser', list(PARSERS))
def test_help_lists_common_options(make_parser, capsys):
    with pytest.raises(SystemExit) as caught:
        make_parser().parse_args(['--help'])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for option in ('-U URL', '-I KEY_ID', '-S KEY', '--region', '--show-empty-fields', '--debug'):
        assert option in text


@pytest.mark.parametrize('make_parser', list(PARSERS))
def test_common_options_with_required_arguments(make_parser):
    args = make_parser().parse_args(['-U', 'http://clc/', '-I', 'AK', '-S', 'SK',
                                     '--show-empty-fields'] + PARSERS[make_parser])
    assert (args.url, args.access_key_id, args.secret_key) == ('http://clc/', 'AK', 'SK')
    assert cli.empty_field(args) == '(nil)'


# --- shared helpers ------------------------------------------------------------

def test_permission_changes():
    assert ec2.permission_changes(['all', OWNER], []) == {
        'Add': [{'Group': 'all'}, {'UserId': OWNER}]}
    assert ec2.permission_changes([], ['all']) == {'Remove': [{'Group': 'all'}]}
    with pytest.raises(CommandError, match='at least one entity'):
        ec2.permission_changes([], [])


def test_format_permission_changes_and_state_changes():
    changes = {'Add': [{'UserId': OWNER}], 'Remove': [{'Group': 'all'}]}
    assert output.format_permission_changes('launchPermission', 'emi-1', changes) == [
        f'launchPermission\temi-1\tADD\tUserId\t{OWNER}',
        'launchPermission\temi-1\tREMOVE\tGroup\tall']
    assert output.format_state_changes([
        {'InstanceId': 'i-1', 'PreviousState': {'Name': 'running'},
         'CurrentState': {'Name': 'stopping'}}]) == ['INSTANCE\ti-1\trunning\tstopping']
    assert output.format_state_changes(None) == []


# --- key pairs -----------------------------------------------------------------

def test_import_keypair_request_passes_raw_key():
    args = parse(ec2.import_keypair_parser, 'mykey', '-f', 'k.pub')
    assert args.public_key_file == 'k.pub'
    assert ec2.import_keypair_request(args, b'ssh-rsa AAAA me') == {
        'KeyName': 'mykey', 'PublicKeyMaterial': b'ssh-rsa AAAA me'}
    with pytest.raises(SystemExit):
        parse(ec2.import_keypair_parser, 'mykey')


def test_import_keypair_command(stub, tmp_path, capsys):
    key_file = tmp_path / 'k.pub'
    key_file.write_bytes(b'ssh-rsa AAAAB3 me@host\n')
    stub.add_response('import_key_pair', {'KeyName': 'mykey', 'KeyFingerprint': 'aa:bb'},
                      {'KeyName': 'mykey', 'PublicKeyMaterial': b'ssh-rsa AAAAB3 me@host\n'})
    assert ec2.import_keypair(['mykey', '-f', str(key_file)]) == 0
    assert capsys.readouterr().out == 'KEYPAIR\tmykey\taa:bb\n'


def test_import_keypair_missing_file_is_one_line(stub, tmp_path, capsys):
    assert ec2.import_keypair(['mykey', '-f', str(tmp_path / 'absent.pub')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('euca-import-keypair: error: ') and err.count('\n') == 1


# --- security groups -----------------------------------------------------------

def test_create_group_request_and_output():
    args = parse(ec2_groups.create_group_parser, 'web', '-d', 'web tier')
    request = ec2_groups.create_group_request(args)
    assert request == {'GroupName': 'web', 'Description': 'web tier'}
    assert ec2_groups.format_group_created({'GroupId': 'sg-1'}, request) == [
        'GROUP\tsg-1\tweb\tweb tier']
    with pytest.raises(SystemExit):
        parse(ec2_groups.create_group_parser, 'web')


def test_describe_groups_request_splits_ids_and_names():
    args = parse(ec2_groups.describe_groups_parser, 'web', 'sg-0a1b2c3d', 'db',
                 '-F', 'ip-permission.from-port=22')
    assert ec2_groups.describe_groups_request(args) == {
        'GroupIds': ['sg-0a1b2c3d'], 'GroupNames': ['web', 'db'],
        'Filters': [{'Name': 'ip-permission.from-port', 'Values': ['22']}]}
    assert ec2_groups.describe_groups_request(parse(ec2_groups.describe_groups_parser)) == {}


WEB_GROUP = {
    'GroupId': 'sg-0000aaaa', 'OwnerId': OWNER, 'GroupName': 'web', 'Description': 'web tier',
    'IpPermissions': [
        {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
         'IpRanges': [{'CidrIp': '10.0.0.0/8'}, {'CidrIp': '192.168.0.0/16'}],
         'UserIdGroupPairs': []},
        {'IpProtocol': 'tcp', 'FromPort': 80, 'ToPort': 80, 'IpRanges': [],
         'UserIdGroupPairs': [{'UserId': OWNER, 'GroupId': 'sg-0000bbbb', 'GroupName': 'lb'},
                              {'UserId': '210987654321', 'GroupName': 'other'}]}],
    'IpPermissionsEgress': [{'IpProtocol': '-1', 'IpRanges': [{'CidrIp': '0.0.0.0/0'}],
                             'UserIdGroupPairs': []}],
    'Tags': [{'Key': 'tier', 'Value': 'front'}],
}


def test_format_group_lines():
    assert ec2_groups.format_groups({'SecurityGroups': [WEB_GROUP]}) == [
        f'GROUP\tsg-0000aaaa\t{OWNER}\tweb\tweb tier\t',
        f'PERMISSION\t{OWNER}\tweb\tALLOWS\ttcp\t22\t22\tFROM\tCIDR\t10.0.0.0/8\tingress',
        f'PERMISSION\t{OWNER}\tweb\tALLOWS\ttcp\t22\t22\tFROM\tCIDR\t192.168.0.0/16\tingress',
        f'PERMISSION\t{OWNER}\tweb\tALLOWS\ttcp\t80\t80\tFROM\tUSER\t{OWNER}\tID\tsg-0000bbbb'
        '\tingress',
        f'PERMISSION\t{OWNER}\tweb\tALLOWS\ttcp\t80\t80\tFROM\tUSER\t210987654321\tGRPNAME'
        '\tother\tingress',
        f'PERMISSION\t{OWNER}\tweb\tALLOWS\t-1\t\t\tTO\tCIDR\t0.0.0.0/0\tegress',
        'TAG\tsecurity-group\tsg-0000aaaa\ttier\tfront']


def test_format_group_show_empty_fields():
    lines = ec2_groups.format_group(dict(WEB_GROUP, IpPermissions=[], Tags=[]), '(nil)')
    assert lines == [f'GROUP\tsg-0000aaaa\t{OWNER}\tweb\tweb tier\t(nil)',
                     f'PERMISSION\t{OWNER}\tweb\tALLOWS\t-1\t(nil)\t(nil)\tTO\tCIDR\t0.0.0.0/0'
                     '\tegress']


def rule(*argv):
    return ec2_groups.rule_request(
        ec2_groups.rule_parser('euca-authorize', 'x').parse_args(
            ec2_groups.attach_negative_values(list(argv))))


def test_rule_request_tcp_port_and_cidr():
    assert rule('web', '-p', '22', '-s', '10.0.0.0/8') == {
        'GroupName': 'web', 'IpPermissions': [{
            'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
            'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}]}


def test_rule_request_defaults_to_the_world_and_takes_ranges_and_services():
    request = rule('sg-0a1b2c3d', '-P', 'udp', '-p', '1000-2000')
    assert request['GroupId'] == 'sg-0a1b2c3d'
    assert request['IpPermissions'] == [{'IpProtocol': 'udp', 'FromPort': 1000, 'ToPort': 2000,
                                         'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}]
    assert rule('web', '-p', 'ssh')['IpPermissions'][0]['FromPort'] == 22
    permission = rule('web', '-p', '-1')['IpPermissions'][0]
    assert (permission['FromPort'], permission['ToPort']) == (1, 65535)


def test_rule_request_icmp_type_code_with_negative_values():
    permission = rule('web', '-P', 'icmp', '-t', '-1:-1')['IpPermissions'][0]
    assert (permission['IpProtocol'], permission['FromPort'], permission['ToPort']) == (
        'icmp', -1, -1)
    permission = rule('web', '-P', 'icmp', '--icmp-type-code', '8:0')['IpPermissions'][0]
    assert (permission['FromPort'], permission['ToPort']) == (8, 0)
    permission = rule('web', '-P', 'icmp')['IpPermissions'][0]
    assert (permission['FromPort'], permission['ToPort']) == (-1, -1)


def test_rule_request_source_groups():
    by_id = rule('web', '-p', '80', '-o', 'sg-0000bbbb')['IpPermissions'][0]
    assert by_id['UserIdGroupPairs'] == [{'GroupId': 'sg-0000bbbb'}]
    assert 'IpRanges' not in by_id  # -o does not also open the rule to 0.0.0.0/0
    by_name = rule('web', '-p', '80', '-o', 'lb', '-u', OWNER)['IpPermissions'][0]
    assert by_name['UserIdGroupPairs'] == [{'GroupName': 'lb', 'UserId': OWNER}]


@pytest.mark.parametrize('argv, message', [
    (['web', '-P', 'icmp', '-p', '22'], '-p/--port-range: not compatible with protocol icmp'),
    (['web', '-t', '8:0', '-p', '22'], '-t/--icmp-type-code: not compatible'),
    (['web'], '-p/--port-range is required for protocol tcp'),
    (['web', '-p', '20:30'], 'separated by "-", not ":"'),
    (['web', '-p', 'no-such-service'], 'neither a port number'),
    (['web', '-p', '-5'], 'must be at least -1'),
    (['web', '-P', 'icmp', '-t', '8'], 'must have format "1:2"'),
    (['web', '-P', 'icmp', '-t', '-2:0'], 'must be at least -1'),
    (['web', '-p', '80', '-o', 'lb'], '-u is required when -o names a security group by name'),
    (['web', '--egress', '-p', '80'], 'egress rules must use group IDs'),
    (['sg-0a1b2c3d', '--egress', '-p', '80', '-o', 'lb', '-u', OWNER],
     '-o: egress rules must use group IDs'),
])
def test_rule_request_refusals(argv, message):
    with pytest.raises(CommandError, match=message.replace('(', r'\(')):
        rule(*argv)


def test_cidr_and_source_group_are_exclusive():
    with pytest.raises(SystemExit):
        rule('web', '-p', '22', '-s', '10.0.0.0/8', '-o', 'sg-1')


def test_attach_negative_values_only_touches_negative_values():
    assert ec2_groups.attach_negative_values(
        ['web', '-t', '-1:-1', '-p', '-1', '-s', '10.0.0.0/8', '-p', '--debug']) == [
        'web', '--icmp-type-code=-1:-1', '--port-range=-1', '-s', '10.0.0.0/8', '-p',
        '--debug']


def test_format_rule_change():
    request = rule('web', '-p', '80', '-o', 'lb', '-u', OWNER)
    assert ec2_groups.format_rule_change(request, 'web') == [
        'GROUP\tweb', f'PERMISSION\tweb\tALLOWS\ttcp\t80\t80\tUSER\t{OWNER}\tGRPNAME\tlb']
    request = rule('sg-1', '-P', 'icmp', '-t', '-1:-1')
    assert ec2_groups.format_rule_change(request, 'sg-1')[1] == (
        'PERMISSION\tsg-1\tALLOWS\ticmp\t-1\t-1\tFROM\tCIDR\t0.0.0.0/0')


def test_authorize_command_with_icmp_any(stub, capsys):
    stub.add_response('authorize_security_group_ingress', {'Return': True}, {
        'GroupName': 'web', 'IpPermissions': [{'IpProtocol': 'icmp', 'FromPort': -1,
                                               'ToPort': -1,
                                               'IpRanges': [{'CidrIp': '0.0.0.0/0'}]}]})
    assert ec2_groups.authorize(['web', '-P', 'icmp', '-t', '-1:-1']) == 0
    assert capsys.readouterr().out == (
        'GROUP\tweb\nPERMISSION\tweb\tALLOWS\ticmp\t-1\t-1\tFROM\tCIDR\t0.0.0.0/0\n')


def test_revoke_egress_command(stub, capsys):
    stub.add_response('revoke_security_group_egress', {'Return': True}, {
        'GroupId': 'sg-0a1b2c3d', 'IpPermissions': [{'IpProtocol': 'udp', 'FromPort': 53,
                                                     'ToPort': 53,
                                                     'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}]})
    assert ec2_groups.revoke(['sg-0a1b2c3d', '--egress', '-P', 'udp', '-p', '53',
                              '-s', '10.0.0.0/8']) == 0
    assert capsys.readouterr().out.startswith('GROUP\tsg-0a1b2c3d\n')


def test_rule_refusal_is_one_line_without_a_call(stub, capsys):
    assert ec2_groups.authorize(['web']) == 1
    assert capsys.readouterr().err == (
        'euca-authorize: error: argument -p/--port-range is required for protocol tcp\n')


def test_delete_group_by_id_and_name(stub, capsys):
    stub.add_response('delete_security_group', {'Return': True}, {'GroupId': 'sg-0a1b2c3d'})
    stub.add_response('delete_security_group', {}, {'GroupName': 'web'})
    assert ec2_groups.delete_group(['sg-0a1b2c3d']) == 0
    assert ec2_groups.delete_group(['web']) == 0
    assert capsys.readouterr().out == 'RETURN\ttrue\nRETURN\ttrue\n'


def test_delete_group_error_is_one_line_and_debug_adds_traceback(stub, capsys):
    for _ in range(2):
        stub.add_client_error('delete_security_group', 'InvalidGroup.NotFound',
                              "The security group 'nope' does not exist")
    assert ec2_groups.delete_group(['nope']) == 1
    assert capsys.readouterr().err == ("euca-delete-group: error (InvalidGroup.NotFound): "
                                       "The security group 'nope' does not exist\n")
    assert ec2_groups.delete_group(['nope', '--debug']) == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err and err.rstrip().endswith("'nope' does not exist")


def test_describe_groups_command(stub, capsys):
    stub.add_response('describe_security_groups', {'SecurityGroups': [WEB_GROUP]},
                      {'GroupNames': ['web']})
    assert ec2_groups.describe_groups(['web']) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f'GROUP\tsg-0000aaaa\t{OWNER}\tweb\tweb tier\t'


# --- addresses -----------------------------------------------------------------

def test_allocate_address_request_and_output():
    assert ec2_addresses.allocate_address_request(
        parse(ec2_addresses.allocate_address_parser)) == {}
    assert ec2_addresses.allocate_address_request(
        parse(ec2_addresses.allocate_address_parser, '-d', 'vpc')) == {'Domain': 'vpc'}
    assert ec2_addresses.format_address_allocated({'PublicIp': '10.1.1.1'}) == [
        'ADDRESS\t10.1.1.1\tstandard\t']
    assert ec2_addresses.format_address_allocated(
        {'PublicIp': '10.1.1.1', 'Domain': 'vpc', 'AllocationId': 'eipalloc-1'}) == [
        'ADDRESS\t10.1.1.1\tvpc\teipalloc-1']


def test_describe_addresses_request_and_output():
    args = parse(ec2_addresses.describe_addresses_parser, '10.1.1.2', 'eipalloc-1', '10.1.1.1',
                 '-F', 'instance-id=i-1')
    assert ec2_addresses.describe_addresses_request(args) == {
        'AllocationIds': ['eipalloc-1'], 'PublicIps': ['10.1.1.1', '10.1.1.2'],
        'Filters': [{'Name': 'instance-id', 'Values': ['i-1']}]}
    response = {'Addresses': [
        {'PublicIp': '10.1.1.1', 'InstanceId': 'i-1', 'Domain': 'standard',
         'AllocationId': 'eipalloc-1', 'PrivateIpAddress': '172.16.0.5'},
        {'PublicIp': '10.1.1.2'}]}
    assert ec2_addresses.format_addresses(response) == [
        'ADDRESS\t10.1.1.1\ti-1\tstandard\teipalloc-1\t\t\t172.16.0.5',
        'ADDRESS\t10.1.1.2\t\tstandard\t\t\t\t']


def test_associate_address_request_forms():
    parser = ec2_addresses.associate_address_parser
    assert ec2_addresses.associate_address_request(parse(parser, '10.1.1.1', '-i', 'i-1')) == {
        'PublicIp': '10.1.1.1', 'InstanceId': 'i-1'}
    assert ec2_addresses.associate_address_request(parse(parser, 'eipalloc-1', '-i', 'i-1')) == {
        'AllocationId': 'eipalloc-1', 'InstanceId': 'i-1'}
    assert ec2_addresses.associate_address_request(
        parse(parser, '-a', 'eipalloc-1', '-i', 'i-1', '-p', '172.16.0.5')) == {
        'AllocationId': 'eipalloc-1', 'InstanceId': 'i-1', 'PrivateIpAddress': '172.16.0.5'}
    with pytest.raises(CommandError, match='not allowed with an IP address'):
        ec2_addresses.associate_address_request(
            parse(parser, '10.1.1.1', '-a', 'eipalloc-1', '-i', 'i-1'))
    with pytest.raises(CommandError, match='or an IP address is required'):
        ec2_addresses.associate_address_request(parse(parser, '-i', 'i-1'))
    with pytest.raises(SystemExit):
        parse(parser, '10.1.1.1')


def test_format_address_associated():
    assert ec2_addresses.format_address_associated(
        {'PublicIp': '10.1.1.1', 'InstanceId': 'i-1'}, {}) == ['ADDRESS\t10.1.1.1\ti-1']
    assert ec2_addresses.format_address_associated(
        {'AllocationId': 'eipalloc-1', 'InstanceId': 'i-1'},
        {'AssociationId': 'eipassoc-1'}) == ['ADDRESS\ti-1\teipalloc-1\teipassoc-1\t']


def test_disassociate_and_release_requests():
    parser = ec2_addresses.disassociate_address_parser
    assert ec2_addresses.disassociate_address_request(parse(parser, '10.1.1.1')) == {
        'PublicIp': '10.1.1.1'}
    assert ec2_addresses.disassociate_address_request(parse(parser, '-a', 'eipassoc-1')) == {
        'AssociationId': 'eipassoc-1'}
    for argv, message in ((['10.1.1.1', '-a', 'eipassoc-1'], 'not allowed with an IP'),
                          (['eipassoc-1'], 'must be specified with -a'),
                          ([], 'or an IP address is required')):
        with pytest.raises(CommandError, match=message):
            ec2_addresses.disassociate_address_request(parse(parser, *argv))
    parser = ec2_addresses.release_address_parser
    assert ec2_addresses.release_address_request(parse(parser, '10.1.1.1')) == {
        'PublicIp': '10.1.1.1'}
    assert ec2_addresses.release_address_request(parse(parser, '-a', 'eipalloc-1')) == {
        'AllocationId': 'eipalloc-1'}
    with pytest.raises(CommandError):
        ec2_addresses.release_address_request(parse(parser))


def test_address_commands(stub, capsys):
    stub.add_response('allocate_address', {'PublicIp': '10.1.1.1', 'Domain': 'standard'}, {})
    stub.add_response('associate_address', {}, {'PublicIp': '10.1.1.1', 'InstanceId': 'i-1'})
    stub.add_response('disassociate_address', {}, {'PublicIp': '10.1.1.1'})
    stub.add_response('release_address', {}, {'PublicIp': '10.1.1.1'})
    assert ec2_addresses.allocate_address([]) == 0
    assert ec2_addresses.associate_address(['10.1.1.1', '-i', 'i-1']) == 0
    assert ec2_addresses.disassociate_address(['10.1.1.1']) == 0
    assert ec2_addresses.release_address(['10.1.1.1', '--show-empty-fields']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'ADDRESS\t10.1.1.1\tstandard\t', 'ADDRESS\t10.1.1.1\ti-1', 'ADDRESS\t10.1.1.1',
        'ADDRESS\t10.1.1.1\t(nil)']


# --- volumes -------------------------------------------------------------------

def test_create_volume_request():
    parser = ec2_storage.create_volume_parser
    assert ec2_storage.create_volume_request(parse(parser, '-z', 'zone-a', '-s', '5')) == {
        'AvailabilityZone': 'zone-a', 'Size': 5}
    assert ec2_storage.create_volume_request(
        parse(parser, '-z', 'zone-a', '--snapshot', 'snap-1', '-t', 'io1', '-i', '100')) == {
        'AvailabilityZone': 'zone-a', 'SnapshotId': 'snap-1', 'VolumeType': 'io1',
        'Iops': 100}


@pytest.mark.parametrize('argv, message', [
    ([], '-s/--size or --snapshot must be specified'),
    (['-s', '1', '-i', '100'], '-t/--type is required'),
    (['-s', '1', '-i', '100', '-t', 'standard'], 'not allowed with volume type "standard"'),
])
def test_create_volume_refusals(argv, message):
    with pytest.raises(CommandError, match=message):
        ec2_storage.create_volume_request(
            parse(ec2_storage.create_volume_parser, '-z', 'zone-a', *argv))


def test_create_volume_needs_zone():
    with pytest.raises(SystemExit):
        parse(ec2_storage.create_volume_parser, '-s', '1')


def test_format_volume_created():
    response = {'VolumeId': 'vol-1', 'Size': 1, 'AvailabilityZone': 'zone-a',
                'State': 'creating', 'CreateTime': WHEN, 'VolumeType': 'standard'}
    assert ec2_storage.format_volume_created(response) == [
        f'VOLUME\tvol-1\t1\t\tzone-a\tcreating\t{WHEN_TEXT}']


VOLUME = {'VolumeId': 'vol-1', 'Size': 2, 'SnapshotId': 'snap-1', 'AvailabilityZone': 'zone-a',
          'State': 'in-use', 'CreateTime': WHEN,
          'Attachments': [{'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/vdb',
                           'State': 'attached', 'AttachTime': WHEN}],
          'Tags': [{'Key': 'Name', 'Value': 'data'}]}


def test_format_volumes():
    assert ec2_storage.format_volumes({'Volumes': [VOLUME]}) == [
        f'VOLUME\tvol-1\t2\tsnap-1\tzone-a\tin-use\t{WHEN_TEXT}\tstandard\t',
        f'ATTACHMENT\tvol-1\ti-1\t/dev/vdb\tattached\t{WHEN_TEXT}',
        'TAG\tvolume\tvol-1\tName\tdata']
    line = ec2_storage.format_volume(dict(VOLUME, VolumeType='io1', Iops=100, Attachments=[],
                                          Tags=[]), '(nil)')
    assert line == [f'VOLUME\tvol-1\t2\tsnap-1\tzone-a\tin-use\t{WHEN_TEXT}\tio1\t100']


def test_volume_requests():
    assert ec2_storage.describe_volumes_request(
        parse(ec2_storage.describe_volumes_parser, 'vol-1', '-F', 'status=available')) == {
        'VolumeIds': ['vol-1'], 'Filters': [{'Name': 'status', 'Values': ['available']}]}
    assert ec2_storage.attach_volume_request(
        parse(ec2_storage.attach_volume_parser, 'vol-1', '-i', 'i-1', '-d', '/dev/vdb')) == {
        'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/vdb'}
    with pytest.raises(SystemExit):
        parse(ec2_storage.attach_volume_parser, 'vol-1', '-i', 'i-1')
    assert ec2_storage.detach_volume_request(
        parse(ec2_storage.detach_volume_parser, 'vol-1')) == {'VolumeId': 'vol-1'}
    assert ec2_storage.detach_volume_request(
        parse(ec2_storage.detach_volume_parser, 'vol-1', '-i', 'i-1', '-d', '/dev/vdb',
              '-f')) == {'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/vdb',
                         'Force': True}


def test_volume_commands(stub, capsys):
    attachment = {'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/vdb',
                  'State': 'attaching', 'AttachTime': WHEN}
    stub.add_response('create_volume', {'VolumeId': 'vol-1', 'Size': 1, 'State': 'creating',
                                       'AvailabilityZone': 'zone-a', 'CreateTime': WHEN},
                      {'AvailabilityZone': 'zone-a', 'Size': 1})
    stub.add_response('attach_volume', attachment,
                      {'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/vdb'})
    stub.add_response('detach_volume', dict(attachment, State='detaching'), {'VolumeId': 'vol-1'})
    stub.add_response('delete_volume', {}, {'VolumeId': 'vol-1'})
    assert ec2_storage.create_volume(['-z', 'zone-a', '-s', '1']) == 0
    assert ec2_storage.attach_volume(['vol-1', '-i', 'i-1', '-d', '/dev/vdb']) == 0
    assert ec2_storage.detach_volume(['vol-1']) == 0
    assert ec2_storage.delete_volume(['vol-1']) == 0
    assert capsys.readouterr().out.splitlines() == [
        f'VOLUME\tvol-1\t1\t\tzone-a\tcreating\t{WHEN_TEXT}',
        f'ATTACHMENT\tvol-1\ti-1\t/dev/vdb\tattaching\t{WHEN_TEXT}',
        f'ATTACHMENT\tvol-1\ti-1\t/dev/vdb\tdetaching\t{WHEN_TEXT}',
        'VOLUME\tvol-1']


# --- snapshots -----------------------------------------------------------------

SNAPSHOT = {'SnapshotId': 'snap-1', 'VolumeId': 'vol-1', 'State': 'completed',
            'StartTime': WHEN, 'Progress': '100%', 'OwnerId': OWNER, 'VolumeSize': 2,
            'Description': 'nightly', 'Tags': [{'Key': 'k', 'Value': 'v'}]}


def test_create_snapshot_request_and_output():
    parser = ec2_storage.create_snapshot_parser
    assert ec2_storage.create_snapshot_request(parse(parser, 'vol-1')) == {'VolumeId': 'vol-1'}
    assert ec2_storage.create_snapshot_request(parse(parser, 'vol-1', '-d', 'nightly')) == {
        'VolumeId': 'vol-1', 'Description': 'nightly'}
    assert ec2_storage.format_snapshot_created(dict(SNAPSHOT, State='pending')) == [
        f'SNAPSHOT\tsnap-1\tvol-1\tpending\t{WHEN_TEXT}\t{OWNER}\t2\tnightly']


def test_describe_snapshots_requests():
    parser = ec2_storage.describe_snapshots_parser
    assert ec2_storage.describe_snapshots_requests(parse(parser)) == [
        {'OwnerIds': ['self']}, {'RestorableByUserIds': ['self']}]
    assert ec2_storage.describe_snapshots_requests(parse(parser, '-a')) == [{}]
    assert ec2_storage.describe_snapshots_requests(parse(parser, 'snap-1')) == [
        {'SnapshotIds': ['snap-1']}]
    assert ec2_storage.describe_snapshots_requests(
        parse(parser, '-o', 'self', '-r', OWNER, '-F', 'status=completed')) == [
        {'OwnerIds': ['self'], 'RestorableByUserIds': [OWNER],
         'Filters': [{'Name': 'status', 'Values': ['completed']}]}]
    for argv in (['-a', '-o', 'self'], ['-a', '-r', OWNER]):
        with pytest.raises(CommandError, match='-a/--all: not allowed'):
            ec2_storage.describe_snapshots_requests(parse(parser, *argv))


def test_format_snapshots_each_once():
    other = dict(SNAPSHOT, SnapshotId='snap-2', Tags=[], Description=None)
    assert ec2_storage.format_snapshots([{'Snapshots': [SNAPSHOT]},
                                         {'Snapshots': [other, SNAPSHOT]}]) == [
        f'SNAPSHOT\tsnap-1\tvol-1\tcompleted\t{WHEN_TEXT}\t100%\t{OWNER}\t2\tnightly',
        'TAG\tsnapshot\tsnap-1\tk\tv',
        f'SNAPSHOT\tsnap-2\tvol-1\tcompleted\t{WHEN_TEXT}\t100%\t{OWNER}\t2\t']


def test_describe_snapshots_default_makes_two_calls(stub, capsys):
    stub.add_response('describe_snapshots', {'Snapshots': [SNAPSHOT]}, {'OwnerIds': ['self']})
    stub.add_response('describe_snapshots', {'Snapshots': [SNAPSHOT]},
                      {'RestorableByUserIds': ['self']})
    assert ec2_storage.describe_snapshots([]) == 0
    assert capsys.readouterr().out.count('SNAPSHOT\t') == 1


def test_modify_snapshot_attribute(stub, capsys):
    args = parse(ec2_storage.modify_snapshot_attribute_parser, 'snap-1', '-c', '-a', OWNER,
                 '-r', 'all')
    request = ec2_storage.modify_snapshot_attribute_request(args)
    assert request == {'SnapshotId': 'snap-1', 'Attribute': 'createVolumePermission',
                       'CreateVolumePermission': {'Add': [{'UserId': OWNER}],
                                                  'Remove': [{'Group': 'all'}]}}
    with pytest.raises(SystemExit):
        parse(ec2_storage.modify_snapshot_attribute_parser, 'snap-1', '-a', 'all')
    stub.add_response('modify_snapshot_attribute', {}, request)
    assert ec2_storage.modify_snapshot_attribute(['snap-1', '-c', '-a', OWNER,
                                                  '-r', 'all']) == 0
    assert capsys.readouterr().out.splitlines() == [
        f'createVolumePermission\tsnap-1\tADD\tUserId\t{OWNER}',
        'createVolumePermission\tsnap-1\tREMOVE\tGroup\tall']
    assert ec2_storage.modify_snapshot_attribute(['snap-1', '-c']) == 1
    assert 'at least one entity' in capsys.readouterr().err


def test_delete_snapshot_command(stub, capsys):
    stub.add_response('delete_snapshot', {}, {'SnapshotId': 'snap-1'})
    assert ec2_storage.delete_snapshot(['snap-1']) == 0
    assert capsys.readouterr().out == 'SNAPSHOT\tsnap-1\n'


# --- tags ----------------------------------------------------------------------

def test_parse_tags():
    assert ec2_tags.parse_tag('Name=web server') == {'Key': 'Name', 'Value': 'web server'}
    assert ec2_tags.parse_tag('a=b=c') == {'Key': 'a', 'Value': 'b=c'}
    assert ec2_tags.parse_tag('flag') == {'Key': 'flag', 'Value': ''}
    assert ec2_tags.parse_tag_to_delete('flag') == {'Key': 'flag'}
    assert ec2_tags.parse_tag_to_delete('flag=') == {'Key': 'flag', 'Value': ''}
    assert ec2_tags.parse_tag_to_delete('a=b') == {'Key': 'a', 'Value': 'b'}
    for parse_one in (ec2_tags.parse_tag, ec2_tags.parse_tag_to_delete):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_one('=value')


def test_tags_requests_and_output():
    args = parse(ec2_tags.create_tags_parser, 'i-1', 'vol-1', '--tag', 'a=1', '--tag', 'b')
    assert ec2_tags.tags_request(args) == {'Resources': ['i-1', 'vol-1'],
                                           'Tags': [{'Key': 'a', 'Value': '1'},
                                                    {'Key': 'b', 'Value': ''}]}
    assert ec2_tags.format_tags_created(args.resources, args.tags) == [
        'TAG\tinstance\ti-1\ta\t1', 'TAG\tinstance\ti-1\tb\t',
        'TAG\tvolume\tvol-1\ta\t1', 'TAG\tvolume\tvol-1\tb\t']
    with pytest.raises(SystemExit):
        parse(ec2_tags.create_tags_parser, 'i-1')
    with pytest.raises(SystemExit):
        parse(ec2_tags.delete_tags_parser, '--tag', 'a')
    assert ec2_tags.describe_tags_request(
        parse(ec2_tags.describe_tags_parser, '-F', 'resource-type=volume')) == {
        'Filters': [{'Name': 'resource-type', 'Values': ['volume']}]}


def test_format_described_tags_puts_id_before_type():
    response = {'Tags': [{'ResourceId': 'vol-1', 'ResourceType': 'volume', 'Key': 'Name',
                          'Value': 'data'},
                         {'ResourceId': 'i-1', 'ResourceType': 'instance', 'Key': 'flag',
                          'Value': ''}]}
    assert ec2_tags.format_described_tags(response) == [
        'TAG\tvol-1\tvolume\tName\tdata', 'TAG\ti-1\tinstance\tflag\t']
    assert ec2_tags.format_described_tags(response, '(nil)')[1] == (
        'TAG\ti-1\tinstance\tflag\t(nil)')


def test_delete_tags_command_prints_nothing(stub, capsys):
    stub.add_response('delete_tags', {}, {'Resources': ['vol-1'],
                                         'Tags': [{'Key': 'a'}, {'Key': 'b', 'Value': ''}]})
    assert ec2_tags.delete_tags(['vol-1', '--tag', 'a', '--tag', 'b=']) == 0
    assert capsys.readouterr().out == ''


# --- instances -----------------------------------------------------------------

def instance_type(name, cpus, memory, disk=None):
    described = {'InstanceType': name, 'VCpuInfo': {'DefaultVCpus': cpus},
                 'MemoryInfo': {'SizeInMiB': memory}}
    if disk:
        described['InstanceStorageInfo'] = {'TotalSizeInGB': disk}
    return described


TYPES = [instance_type('m1.small', 1, 256, 5), instance_type('c1.xlarge', 2, 2048, 10)]
VERBOSE_ZONES = {'AvailabilityZones': [
    {'ZoneName': 'zone-b', 'State': 'available'},
    {'ZoneName': '|- vm types', 'State': 'free / max   cpu   ram  disk'},
    {'ZoneName': '|- m1.small', 'State': '0002 / 0004   1    256     5'},
    {'ZoneName': '|- c1.xlarge', 'State': '0001 / 0001   2   2048    10'},
    {'ZoneName': 'zone-a', 'State': 'available'},
    {'ZoneName': '|- vm types', 'State': 'free / max   cpu   ram  disk'},
    {'ZoneName': '|- m1.small', 'State': '0004 / 0004   1    256     5'},
]}


def test_capacity_of_zones():
    assert ec2_instances.capacity_of_zones(VERBOSE_ZONES) == {
        'zone-b': {'m1.small': (2, 4), 'c1.xlarge': (1, 1)}, 'zone-a': {'m1.small': (4, 4)}}
    assert ec2_instances.capacity_of_zones({'AvailabilityZones': [
        {'ZoneName': 'zone-a', 'State': 'available'}]}) == {'zone-a': {}}


def test_format_instance_types_table():
    assert ec2_instances.format_instance_types(TYPES + [instance_type('t1.tiny', 1, 64)]) == [
        'INSTANCETYPE\tName       CPUs  Memory (MiB)  Disk (GiB)',
        'INSTANCETYPE\tm1.small      1           256           5',
        'INSTANCETYPE\tc1.xlarge     2          2048          10',
        'INSTANCETYPE\tt1.tiny       1            64           0']


def test_format_instance_types_with_capacity_summed_and_by_zone():
    capacity = ec2_instances.capacity_of_zones(VERBOSE_ZONES)
    assert ec2_instances.format_instance_types(TYPES, capacity) == [
        'INSTANCETYPE\tName       CPUs  Memory (MiB)  Disk (GiB)  Used / Total  Used %',
        'INSTANCETYPE\tm1.small      1           256           5     2 /     8     25%',
        'INSTANCETYPE\tc1.xlarge     2          2048          10     0 /     1      0%']
    by_zone = ec2_instances.format_instance_types(TYPES, capacity, by_zone=True)
    assert by_zone[0] == 'AVAILABILITYZONE\tzone-a'
    assert by_zone[2:5] == [
        'INSTANCETYPE\tm1.small      1           256           5     0 /     4      0%',
        'INSTANCETYPE\tc1.xlarge     2          2048          10     0 /     0        ',
        '']
    assert by_zone[5] == 'AVAILABILITYZONE\tzone-b'
    assert by_zone[7] == (
        'INSTANCETYPE\tm1.small      1           256           5     2 /     4     50%')


def test_describe_instance_types_show_capacity_asks_verbose_zones(stub, capsys):
    stub.add_response('describe_instance_types', {'InstanceTypes': TYPES[:1]},
                      {'InstanceTypes': ['m1.small']})
    stub.add_response('describe_availability_zones', VERBOSE_ZONES, {'ZoneNames': ['verbose']})
    assert ec2_instances.describe_instance_types(['m1.small', '--show-capacity']) == 0
    assert capsys.readouterr().out.splitlines()[1] == (
        'INSTANCETYPE\tm1.small     1           256           5     2 /     8     25%')


def test_describe_instance_types_plain_makes_one_call(stub, capsys):
    stub.add_response('describe_instance_types', {'InstanceTypes': TYPES}, {})
    assert ec2_instances.describe_instance_types([]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_reboot_stop_start_commands(stub, capsys):
    def change(instance_id, before, after):
        return {'InstanceId': instance_id, 'PreviousState': {'Name': before, 'Code': 16},
                'CurrentState': {'Name': after, 'Code': 64}}
    stub.add_response('reboot_instances', {}, {'InstanceIds': ['i-1', 'i-2']})
    stub.add_response('stop_instances', {'StoppingInstances': [change('i-1', 'running',
                                                                     'stopping')]},
                      {'InstanceIds': ['i-1'], 'Force': True})
    stub.add_response('start_instances', {'StartingInstances': [change('i-1', 'stopped',
                                                                      'pending')]},
                      {'InstanceIds': ['i-1']})
    assert ec2_instances.reboot_instances(['i-1', 'i-2']) == 0
    assert ec2_instances.stop_instances(['i-1', '-f']) == 0
    assert ec2_instances.start_instances(['i-1']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'INSTANCE\ti-1\trunning\tstopping', 'INSTANCE\ti-1\tstopped\tpending']


def test_stop_request_and_required_instances():
    assert ec2_instances.stop_instances_request(
        parse(ec2_instances.stop_instances_parser, 'i-1', 'i-2')) == {
        'InstanceIds': ['i-1', 'i-2']}
    for make_parser in (ec2_instances.reboot_instances_parser,
                        ec2_instances.stop_instances_parser,
                        ec2_instances.start_instances_parser):
        with pytest.raises(SystemExit):
            parse(make_parser)


def test_unsupported_action_is_one_line(stub, capsys):
    stub.add_client_error('stop_instances', 'Unsupported',
                          'The action StopInstances is not supported by this cloud yet.')
    assert ec2_instances.stop_instances(['i-1']) == 1
    assert capsys.readouterr().err == (
        'euca-stop-instances: error (Unsupported): '
        'The action StopInstances is not supported by this cloud yet.\n')


def test_escape_control_characters():
    assert ec2_instances.escape_control_characters('a\x00b\x1b[0m\tc\r\nd\x7f\ufffd') == (
        'a^@b^[[0m\tc\r\nd^??')


def test_format_console_output():
    response = {'InstanceId': 'i-1', 'Timestamp': WHEN, 'Output': 'boot\x07\nlogin: '}
    assert ec2_instances.format_console_output(response) == ['i-1', WHEN_TEXT,
                                                             'boot^G\nlogin: ']
    assert ec2_instances.format_console_output(response, raw=True)[2] == 'boot\x07\nlogin: '
    assert ec2_instances.format_console_output({'InstanceId': 'i-1'}, empty='(nil)') == [
        'i-1', '(nil)', '']


def test_get_console_output_decodes_base64(stub, capsys):
    console = 'Linux version 5.10\r\n\x1b[1mWelcome\x1b[0m\r\n'.encode() + b'\xff'
    stub.add_response('get_console_output', {'InstanceId': 'i-1', 'Timestamp': WHEN,
                                           'Output': base64.b64encode(console).decode()},
                      {'InstanceId': 'i-1'})
    assert ec2_instances.get_console_output(['i-1']) == 0
    assert capsys.readouterr().out == (
        f'i-1\n{WHEN_TEXT}\nLinux version 5.10\r\n^[[1mWelcome^[[0m\r\n?\n')


STATUS = {
    'InstanceId': 'i-1', 'AvailabilityZone': 'zone-a',
    'InstanceState': {'Code': 16, 'Name': 'running'},
    'SystemStatus': {'Status': 'ok', 'Details': [{'Name': 'reachability', 'Status': 'passed'}]},
    'InstanceStatus': {'Status': 'impaired', 'Details': [
        {'Name': 'reachability', 'Status': 'failed', 'ImpairedSince': WHEN}]},
    'Events': [{'Code': 'system-reboot', 'Description': 'maintenance',
                'NotBefore': WHEN + datetime.timedelta(days=2)},
               {'Code': 'instance-stop', 'NotBefore': WHEN,
                'NotAfter': WHEN + datetime.timedelta(days=1)}],
}


def test_format_instance_statuses():
    assert ec2_instances.format_instance_statuses({'InstanceStatuses': [STATUS]}) == [
        f'INSTANCE\ti-1\tzone-a\trunning\t16\timpaired\tok\tretiring\t{WHEN_TEXT}',
        'SYSTEMSTATUS\treachability\tpassed\t',
        f'INSTANCESTATUS\treachability\tfailed\t{WHEN_TEXT}',
        'EVENT\tsystem-reboot\t2024-03-07T17:04:09.123Z\t\tmaintenance',
        f'EVENT\tinstance-stop\t{WHEN_TEXT}\t2024-03-06T17:04:09.123Z\t']


def test_format_instance_statuses_hide_healthy():
    healthy = {'InstanceId': 'i-2', 'InstanceState': {'Code': 16, 'Name': 'running'},
               'SystemStatus': {'Status': 'ok'}, 'InstanceStatus': {'Status': 'ok'}}
    response = {'InstanceStatuses': [healthy, STATUS]}
    assert ec2_instances.format_instance_statuses(response)[0] == (
        'INSTANCE\ti-2\t\trunning\t16\tok\tok\tactive\t')
    assert ec2_instances.format_instance_statuses(response, hide_healthy=True)[0].startswith(
        'INSTANCE\ti-1\t')


def test_describe_instance_status_request():
    parser = ec2_instances.describe_instance_status_parser
    assert ec2_instances.describe_instance_status_request(parse(parser)) == {}
    assert ec2_instances.describe_instance_status_request(
        parse(parser, 'i-1', '--include-all-instances', '-F', 'instance-state-name=stopped')) == {
        'InstanceIds': ['i-1'], 'IncludeAllInstances': True,
        'Filters': [{'Name': 'instance-state-name', 'Values': ['stopped']}]}


# --- images --------------------------------------------------------------------

@pytest.mark.parametrize('option, attribute', [
    ('-l', 'launchPermission'), ('--launch-permission', 'launchPermission'),
    ('-p', 'productCodes'), ('-B', 'blockDeviceMapping'), ('-k', 'kernel'),
    ('--kernel', 'kernel'), ('-r', 'ramdisk'), ('--ramdisk', 'ramdisk'),
    ('--description', 'description')])
def test_describe_image_attribute_request(option, attribute):
    args = parse(ec2_images.describe_image_attribute_parser, 'emi-1', option)
    assert ec2_images.describe_image_attribute_request(args) == {'ImageId': 'emi-1',
                                                                 'Attribute': attribute}


def test_describe_image_attribute_needs_exactly_one():
    for argv in (['emi-1'], ['emi-1', '-l', '-B']):
        with pytest.raises(SystemExit):
            parse(ec2_images.describe_image_attribute_parser, *argv)


def test_format_image_attribute():
    assert ec2_images.format_image_attribute({
        'ImageId': 'emi-1', 'LaunchPermissions': [{'Group': 'all'}, {'UserId': OWNER}]}) == [
        'launchPermission\temi-1\tgroup\tall', f'launchPermission\temi-1\tuserId\t{OWNER}']
    assert ec2_images.format_image_attribute({
        'ImageId': 'emi-1', 'BlockDeviceMappings': [
            {'DeviceName': '/dev/sda2', 'VirtualName': 'ephemeral0'},
            {'DeviceName': '/dev/sdb', 'Ebs': {'SnapshotId': 'snap-1'}}]}) == [
        'blockDeviceMapping\temi-1\tblockDeviceMap\t/dev/sda2: ephemeral0',
        'blockDeviceMapping\temi-1\tblockDeviceMap\t/dev/sdb: snap-1']
    assert ec2_images.format_image_attribute({
        'ImageId': 'emi-1', 'ProductCodes': [{'ProductCodeId': 'pc1',
                                              'ProductCodeType': 'devpay'}]}) == [
        'productCodes\temi-1\tproductCode\t[devpay: pc1]']
    assert ec2_images.format_image_attribute(
        {'ImageId': 'emi-1', 'KernelId': {'Value': 'eki-1'}}) == ['kernel\temi-1\t\teki-1']
    assert ec2_images.format_image_attribute(
        {'ImageId': 'emi-1', 'Description': {'Value': 'CentOS'}}, '(nil)') == [
        'description\temi-1\t(nil)\tCentOS']
    assert ec2_images.format_image_attribute({'ImageId': 'emi-1', 'LaunchPermissions': []}) == []


def test_modify_image_attribute_requests():
    parser = ec2_images.modify_image_attribute_parser
    assert ec2_images.modify_image_attribute_request(
        parse(parser, 'emi-1', '-l', '-a', 'all', '-r', OWNER)) == {
        'ImageId': 'emi-1', 'LaunchPermission': {'Add': [{'Group': 'all'}],
                                                 'Remove': [{'UserId': OWNER}]}}
    assert ec2_images.modify_image_attribute_request(
        parse(parser, 'emi-1', '--description', 'new text')) == {
        'ImageId': 'emi-1', 'Description': {'Value': 'new text'}}
    assert ec2_images.modify_image_attribute_request(
        parse(parser, 'emi-1', '-p', 'pc1', '-p', 'pc2')) == {
        'ImageId': 'emi-1', 'ProductCodes': ['pc1', 'pc2']}
    with pytest.raises(CommandError, match='at least one entity'):
        ec2_images.modify_image_attribute_request(parse(parser, 'emi-1', '-l'))
    with pytest.raises(CommandError, match='-a/--add may only be used with -l'):
        ec2_images.modify_image_attribute_request(
            parse(parser, 'emi-1', '--description', 'x', '-a', 'all'))
    for argv in (['emi-1'], ['emi-1', '-l', '--description', 'x']):
        with pytest.raises(SystemExit):
            parse(parser, *argv)


def test_format_image_attribute_changes():
    assert ec2_images.format_image_attribute_changes(
        {'ImageId': 'emi-1', 'LaunchPermission': {'Add': [{'Group': 'all'}]}}) == [
        'launchPermission\temi-1\tADD\tGroup\tall']
    assert ec2_images.format_image_attribute_changes(
        {'ImageId': 'emi-1', 'Description': {'Value': 'x'}}) == ['description\temi-1\t\tx']
    assert ec2_images.format_image_attribute_changes(
        {'ImageId': 'emi-1', 'ProductCodes': ['pc1']}) == [
        'productcodes\temi-1\tproductCode\tpc1']


def test_image_attribute_commands(stub, capsys):
    stub.add_response('modify_image_attribute', {},
                      {'ImageId': 'emi-1', 'LaunchPermission': {'Add': [{'UserId': OWNER}]}})
    stub.add_response('describe_image_attribute',
                      {'ImageId': 'emi-1', 'LaunchPermissions': [{'UserId': OWNER}]},
                      {'ImageId': 'emi-1', 'Attribute': 'launchPermission'})
    stub.add_response('reset_image_attribute', {},
                      {'ImageId': 'emi-1', 'Attribute': 'launchPermission'})
    stub.add_response('deregister_image', {'Return': True}, {'ImageId': 'emi-1'})
    assert ec2_images.modify_image_attribute(['emi-1', '-l', '-a', OWNER]) == 0
    assert ec2_images.describe_image_attribute(['emi-1', '-l']) == 0
    assert ec2_images.reset_image_attribute(['emi-1', '-l']) == 0
    assert ec2_images.deregister(['emi-1']) == 0
    assert capsys.readouterr().out.splitlines() == [
        f'launchPermission\temi-1\tADD\tUserId\t{OWNER}',
        f'launchPermission\temi-1\tuserId\t{OWNER}',
        'launchPermission\temi-1\tRESET',
        'IMAGE\temi-1']


def test_reset_image_attribute_needs_l():
    with pytest.raises(SystemExit):
        parse(ec2_images.reset_image_attribute_parser, 'emi-1')


def test_create_image_request_and_output(stub, capsys):
    args = parse(ec2_images.create_image_parser, 'i-1', '-n', 'web', '-d', 'web server', '--no-reboot')
    assert ec2_images.create_image_request(args) == {'InstanceId': 'i-1', 'Name': 'web',
                                                     'Description': 'web server', 'NoReboot': True}
    stub.add_response('create_image', {'ImageId': 'emi-0000beef'}, {'InstanceId': 'i-1', 'Name': 'web'})
    assert ec2_images.create_image(['i-1', '-n', 'web']) == 0
    assert capsys.readouterr().out == 'IMAGE\temi-0000beef\n'

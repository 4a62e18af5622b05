"""The EC2 wire layer both ways against botocore itself.

botocore's EC2Serializer -> Ec2Protocol.parse must give back the boto3 input;
Ec2Protocol.serialize -> botocore's EC2QueryParser must give back the output.
"""

import datetime
import functools

import botocore.model
import botocore.parsers
import botocore.serialize
import pytest
from lxml import etree

from eucacore.awsapi.ec2 import Ec2Protocol
from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.shapes import Keyed, TextWriter, XmlWriter

UTC = datetime.timezone.utc
T1 = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T2 = datetime.datetime(2023, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)


@pytest.fixture(scope='module')
def protocol():
    return Ec2Protocol()


def botocore_params(protocol, operation, params):
    serializer = botocore.serialize.create_serializer('ec2', include_validation=True)
    request = serializer.serialize_to_request(
        params, protocol.service_model.operation_model(operation))
    # On the wire every value is text.
    return {name: str(value) for name, value in request['body'].items()}


TAGS = [{'Key': 'Name', 'Value': 'web'}, {'Key': 'env', 'Value': 'prod'}]

REQUESTS = [
    ('RunInstances', {
        'ImageId': 'emi-12345678', 'MinCount': 1, 'MaxCount': 3, 'KeyName': 'mykey',
        'InstanceType': 'm1.small', 'UserData': 'IyEvYmluL3NoCmVjaG8gaGk=',
        'SecurityGroups': ['default'], 'SecurityGroupIds': ['sg-1', 'sg-2'],
        'Placement': {'AvailabilityZone': 'zone-a'}, 'KernelId': 'eki-1',
        'RamdiskId': 'eri-1', 'DryRun': False,
        'BlockDeviceMappings': [
            {'DeviceName': '/dev/sda1', 'Ebs': {'VolumeSize': 20, 'DeleteOnTermination': True,
                                                'VolumeType': 'standard'}},
            {'DeviceName': '/dev/sdb', 'VirtualName': 'ephemeral0'},
            {'DeviceName': '/dev/sdc', 'NoDevice': ''}],
        'TagSpecifications': [{'ResourceType': 'instance', 'Tags': TAGS},
                              {'ResourceType': 'volume', 'Tags': TAGS[:1]}]}),
    ('RunInstances', {'ImageId': 'emi-1', 'MinCount': 1, 'MaxCount': 1, 'DryRun': True}),
    ('DescribeInstances', {
        'InstanceIds': ['i-1', 'i-2'], 'MaxResults': 10, 'NextToken': 'tok',
        'Filters': [{'Name': 'instance-state-name', 'Values': ['running', 'pending']},
                    {'Name': 'tag:Name', 'Values': ['web']}]}),
    ('DescribeInstances', {}),
    ('TerminateInstances', {'InstanceIds': ['i-1', 'i-2', 'i-3']}),
    ('RebootInstances', {'InstanceIds': ['i-1'], 'DryRun': True}),
    ('StopInstances', {'InstanceIds': ['i-1'], 'Force': True}),
    ('StartInstances', {'InstanceIds': ['i-1']}),
    ('GetConsoleOutput', {'InstanceId': 'i-1', 'Latest': True}),
    ('CreateKeyPair', {'KeyName': 'mykey', 'DryRun': True}),
    ('ImportKeyPair', {'KeyName': 'imported', 'PublicKeyMaterial': b'ssh-rsa AAAAB3Nza\x00\xff'}),
    ('DescribeKeyPairs', {'KeyNames': ['a', 'b'],
                          'Filters': [{'Name': 'fingerprint', 'Values': ['aa:bb']}]}),
    ('DeleteKeyPair', {'KeyName': 'mykey'}),
    ('CreateSecurityGroup', {'GroupName': 'web', 'Description': 'web servers',
                             'TagSpecifications': [{'ResourceType': 'security-group',
                                                    'Tags': TAGS}]}),
    ('DescribeSecurityGroups', {'GroupNames': ['default'], 'GroupIds': ['sg-1'],
                                'DryRun': True}),
    ('AuthorizeSecurityGroupIngress', {
        'GroupName': 'web',
        'IpPermissions': [
            {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
             'IpRanges': [{'CidrIp': '10.0.0.0/8', 'Description': 'ssh'},
                          {'CidrIp': '192.168.0.0/16'}]},
            {'IpProtocol': 'icmp', 'FromPort': -1, 'ToPort': -1,
             'UserIdGroupPairs': [{'GroupName': 'default', 'UserId': '123456789012'}]}]}),
    ('AuthorizeSecurityGroupIngress', {'GroupName': 'web', 'IpProtocol': 'tcp',
                                       'FromPort': 80, 'ToPort': 80, 'CidrIp': '0.0.0.0/0'}),
    ('RegisterImage', {
        'Name': 'debian', 'ImageLocation': 'bucket/debian.manifest.xml',
        'Architecture': 'x86_64', 'RootDeviceName': '/dev/sda1', 'KernelId': 'eki-1',
        'RamdiskId': 'eri-1', 'Description': 'Debian 12', 'VirtualizationType': 'paravirtual',
        'BlockDeviceMappings': [{'DeviceName': '/dev/sda1',
                                 'Ebs': {'SnapshotId': 'snap-1', 'VolumeSize': 8}}]}),
    ('DescribeImages', {'ImageIds': ['emi-1'], 'Owners': ['self', 'amazon'],
                        'ExecutableUsers': ['all'],
                        'Filters': [{'Name': 'architecture', 'Values': ['x86_64']}]}),
    ('DeregisterImage', {'ImageId': 'emi-1'}),
    ('ModifyImageAttribute', {
        'ImageId': 'emi-1', 'Attribute': 'launchPermission',
        'LaunchPermission': {'Add': [{'Group': 'all'}], 'Remove': [{'UserId': '111'}]},
        'Description': {'Value': 'new description'}}),
    ('DescribeImageAttribute', {'ImageId': 'emi-1', 'Attribute': 'launchPermission'}),
    ('CreateTags', {'Resources': ['i-1', 'vol-1'], 'Tags': TAGS}),
    ('DeleteTags', {'Resources': ['i-1'], 'Tags': [{'Key': 'env'}]}),
    ('DescribeTags', {'Filters': [{'Name': 'resource-type', 'Values': ['instance']}],
                      'MaxResults': 50}),
    ('CreateVolume', {'AvailabilityZone': 'zone-a', 'Size': 10, 'SnapshotId': 'snap-1',
                      'VolumeType': 'standard', 'Encrypted': False,
                      'TagSpecifications': [{'ResourceType': 'volume', 'Tags': TAGS}]}),
    ('AttachVolume', {'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/sdf'}),
    ('DetachVolume', {'VolumeId': 'vol-1', 'Force': True}),
    ('DescribeVolumes', {'VolumeIds': ['vol-1'], 'MaxResults': 5}),
    ('CreateSnapshot', {'VolumeId': 'vol-1', 'Description': 'nightly'}),
    ('DescribeSnapshots', {'OwnerIds': ['self'], 'SnapshotIds': ['snap-1'],
                           'RestorableByUserIds': ['all']}),
    ('AllocateAddress', {'Domain': 'standard'}),
    ('AssociateAddress', {'InstanceId': 'i-1', 'PublicIp': '203.0.113.7'}),
    ('DisassociateAddress', {'PublicIp': '203.0.113.7'}),
    ('ReleaseAddress', {'PublicIp': '203.0.113.7'}),
    ('DescribeAddresses', {'PublicIps': ['203.0.113.7'],
                           'Filters': [{'Name': 'domain', 'Values': ['standard']}]}),
    ('DescribeAvailabilityZones', {'ZoneNames': ['zone-a', 'zone-b'],
                                   'AllAvailabilityZones': True}),
    ('DescribeRegions', {'RegionNames': ['eucalyptus'], 'AllRegions': False}),
    ('ModifyInstanceAttribute', {'InstanceId': 'i-1', 'InstanceType': {'Value': 'm1.large'},
                                 'DisableApiTermination': {'Value': True},
                                 'UserData': {'Value': b'#!/bin/sh\n'},
                                 'Groups': ['sg-1', 'sg-2']}),
    ('DescribeSpotPriceHistory', {'StartTime': T1, 'EndTime': T2,
                                  'InstanceTypes': ['m1.small']}),
]


@pytest.mark.parametrize('operation,params', REQUESTS,
                         ids=[f'{op}-{i}' for i, (op, _) in enumerate(REQUESTS)])
def test_botocore_request_parses_back(protocol, operation, params):
    wire = botocore_params(protocol, operation, params)
    wire.update({'AWSAccessKeyId': 'AKID', 'SignatureVersion': '2', 'Signature': 'x',
                 'SignatureMethod': 'HmacSHA256', 'Timestamp': '2024-01-01T00:00:00Z'})
    assert protocol.parse(wire) == (operation, params)


def test_parse_accepts_hand_written_names(protocol):
    # euca2ools-style lower-case locationName and bare member names.
    assert protocol.parse({'Action': 'DescribeKeyPairs', 'KeyName.1': 'a',
                           'dryRun': 'TRUE'}) == (
        'DescribeKeyPairs', {'KeyNames': ['a'], 'DryRun': True})
    assert protocol.parse({'Action': 'TerminateInstances', 'InstanceId': 'i-1'}) == (
        'TerminateInstances', {'InstanceIds': ['i-1']})


@pytest.mark.parametrize('params,code', [
    ({'Action': 'FlyToTheMoon'}, 'InvalidAction'),
    ({'Version': '2016-11-15'}, 'MissingAction'),
    ({'Action': 'RunInstances', 'ImageId': 'emi-1', 'MaxCount': '1'}, 'MissingParameter'),
    ({'Action': 'RunInstances', 'MinCount': 'one', 'MaxCount': '1'}, 'InvalidParameterValue'),
    ({'Action': 'DescribeInstances', 'DryRun': 'maybe'}, 'InvalidParameterValue'),
    ({'Action': 'DescribeInstances', 'Bogus': '1'}, 'InvalidParameterValue'),
    ({'Action': 'DescribeInstances', 'Filter.1.Nme': 'x'}, 'InvalidParameterValue'),
    ({'Action': 'DescribeInstances', 'InstanceId.x': 'i-1'}, 'InvalidParameterValue'),
    ({'Action': 'ImportKeyPair', 'KeyName': 'k', 'PublicKeyMaterial': '***'},
     'InvalidParameterValue'),
    ({'Action': 'DescribeSpotPriceHistory', 'StartTime': 'yesterday-ish'},
     'InvalidParameterValue'),
])
def test_parse_errors(protocol, params, code):
    with pytest.raises(AWSError) as info:
        protocol.parse(params)
    assert info.value.code == code
    assert info.value.status == 400


def test_list_items_follow_index_order(protocol):
    _, parsed = protocol.parse({'Action': 'TerminateInstances', 'InstanceId.10': 'c',
                                'InstanceId.2': 'b', 'InstanceId.1': 'a'})
    assert parsed == {'InstanceIds': ['a', 'b', 'c']}


# ---------------------------------------------------------------- responses

INSTANCE = {
    'InstanceId': 'i-12345678', 'ImageId': 'emi-1', 'InstanceType': 'm1.small',
    'State': {'Code': 16, 'Name': 'running'}, 'PrivateDnsName': 'euca-10-0-0-5',
    'PublicDnsName': 'euca-203-0-113-7', 'KeyName': 'mykey', 'AmiLaunchIndex': 0,
    'LaunchTime': T2, 'Placement': {'AvailabilityZone': 'zone-a'},
    'KernelId': 'eki-1', 'RamdiskId': 'eri-1', 'Monitoring': {'State': 'disabled'},
    'PrivateIpAddress': '10.0.0.5', 'PublicIpAddress': '203.0.113.7',
    'Architecture': 'x86_64', 'RootDeviceType': 'instance-store',
    'RootDeviceName': '/dev/sda1', 'VirtualizationType': 'paravirtual',
    'Tags': TAGS, 'SecurityGroups': [{'GroupName': 'default', 'GroupId': 'sg-1'}],
    'BlockDeviceMappings': [{'DeviceName': '/dev/sdf', 'Ebs': {
        'VolumeId': 'vol-1', 'Status': 'attached', 'AttachTime': T1,
        'DeleteOnTermination': False}}],
    'StateReason': {'Code': 'pending', 'Message': 'pending'},
}
IMAGE = {'ImageId': 'emi-1', 'ImageLocation': 'b/debian.manifest.xml',
         'State': 'available', 'OwnerId': '123456789012', 'Public': True,
         'Architecture': 'x86_64', 'ImageType': 'machine', 'KernelId': 'eki-1',
         'RamdiskId': 'eri-1', 'Name': 'debian', 'Description': 'Debian',
         'RootDeviceType': 'instance-store', 'RootDeviceName': '/dev/sda1',
         'VirtualizationType': 'paravirtual', 'Hypervisor': 'xen',
         'CreationDate': '2024-01-01T00:00:00.000Z', 'Tags': TAGS,
         'BlockDeviceMappings': [{'DeviceName': '/dev/sdb', 'VirtualName': 'ephemeral0'}]}
PERMISSIONS = [
    {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22,
     'IpRanges': [{'CidrIp': '0.0.0.0/0'}], 'Ipv6Ranges': [], 'PrefixListIds': [],
     'UserIdGroupPairs': []},
    {'IpProtocol': 'icmp', 'FromPort': -1, 'ToPort': -1, 'IpRanges': [],
     'UserIdGroupPairs': [{'UserId': '123456789012', 'GroupName': 'default',
                           'GroupId': 'sg-1'}]}]
VOLUME = {'VolumeId': 'vol-1', 'Size': 10, 'SnapshotId': 'snap-1',
          'AvailabilityZone': 'zone-a', 'State': 'in-use', 'CreateTime': T1,
          'VolumeType': 'standard', 'Encrypted': False, 'Tags': TAGS,
          'Attachments': [{'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/sdf',
                           'State': 'attached', 'AttachTime': T2,
                           'DeleteOnTermination': False}]}

RESPONSES = [
    ('DescribeInstances', {'Reservations': [
        {'ReservationId': 'r-1', 'OwnerId': '123456789012', 'Instances': [INSTANCE],
         'Groups': [{'GroupName': 'default', 'GroupId': 'sg-1'}]},
        {'ReservationId': 'r-2', 'OwnerId': '123456789012', 'Instances': [],
         'Groups': []}]}),
    ('RunInstances', {'ReservationId': 'r-1', 'OwnerId': '123456789012',
                      'Groups': [{'GroupName': 'default', 'GroupId': 'sg-1'}],
                      'Instances': [INSTANCE, dict(INSTANCE, InstanceId='i-2',
                                                    AmiLaunchIndex=1)]}),
    ('TerminateInstances', {'TerminatingInstances': [
        {'InstanceId': 'i-1', 'CurrentState': {'Code': 32, 'Name': 'shutting-down'},
         'PreviousState': {'Code': 16, 'Name': 'running'}}]}),
    ('GetConsoleOutput', {'InstanceId': 'i-1', 'Output': 'Ym9vdGluZw==', 'Timestamp': T1}),
    ('DescribeImages', {'Images': [IMAGE, dict(IMAGE, ImageId='eki-1', ImageType='kernel',
                                               Public=False, Tags=[])]}),
    ('RegisterImage', {'ImageId': 'emi-2'}),
    ('CreateKeyPair', {'KeyName': 'mykey', 'KeyFingerprint': '1f:51:ae',
                       'KeyMaterial': '-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----',
                       'KeyPairId': 'key-1'}),
    ('DescribeKeyPairs', {'KeyPairs': [{'KeyName': 'a', 'KeyFingerprint': 'aa',
                                        'KeyPairId': 'key-1', 'CreateTime': T1},
                                       {'KeyName': 'b', 'KeyFingerprint': 'bb'}]}),
    ('DeleteKeyPair', {'Return': True, 'KeyPairId': 'key-1'}),
    ('ImportKeyPair', {'KeyName': 'k', 'KeyFingerprint': 'ff', 'KeyPairId': 'key-2'}),
    ('DescribeAvailabilityZones', {'AvailabilityZones': [
        {'ZoneName': 'zone-a', 'State': 'available', 'RegionName': 'eucalyptus',
         'Messages': [{'Message': 'ok'}]},
        {'ZoneName': 'zone-b', 'State': 'available', 'RegionName': 'eucalyptus',
         'Messages': []}]}),
    ('DescribeRegions', {'Regions': [{'RegionName': 'eucalyptus',
                                      'Endpoint': 'http://clc:8773/services/compute'}]}),
    ('CreateSecurityGroup', {'GroupId': 'sg-9', 'Tags': TAGS}),
    ('DescribeSecurityGroups', {'SecurityGroups': [
        {'GroupName': 'web', 'GroupId': 'sg-9', 'OwnerId': '123456789012',
         'Description': 'web', 'IpPermissions': PERMISSIONS,
         'IpPermissionsEgress': [], 'Tags': TAGS}]}),
    ('AuthorizeSecurityGroupIngress', {'Return': True}),
    ('RevokeSecurityGroupIngress', {'Return': False}),
    ('CreateVolume', VOLUME),
    ('DescribeVolumes', {'Volumes': [VOLUME, dict(VOLUME, VolumeId='vol-2',
                                                  State='available', Attachments=[])],
                         'NextToken': 'more'}),
    ('AttachVolume', {'VolumeId': 'vol-1', 'InstanceId': 'i-1', 'Device': '/dev/sdf',
                      'State': 'attaching', 'AttachTime': T1}),
    ('DescribeSnapshots', {'Snapshots': [
        {'SnapshotId': 'snap-1', 'VolumeId': 'vol-1', 'State': 'completed',
         'StartTime': T1, 'Progress': '100%', 'OwnerId': '123456789012',
         'VolumeSize': 10, 'Description': 'nightly', 'Tags': []}]}),
    ('AllocateAddress', {'PublicIp': '203.0.113.7', 'Domain': 'standard'}),
    ('AssociateAddress', {'AssociationId': 'eipassoc-1'}),
    ('DescribeAddresses', {'Addresses': [
        {'PublicIp': '203.0.113.7', 'InstanceId': 'i-1', 'Domain': 'standard'},
        {'PublicIp': '203.0.113.8', 'Domain': 'standard'}]}),
    ('DescribeTags', {'Tags': [
        {'ResourceId': 'i-1', 'ResourceType': 'instance', 'Key': 'Name', 'Value': 'web'},
        {'ResourceId': 'vol-1', 'ResourceType': 'volume', 'Key': 'env', 'Value': ''}]}),
    ('DescribeImageAttribute', {'ImageId': 'emi-1', 'LaunchPermissions': [
        {'Group': 'all'}, {'UserId': '111'}], 'Description': {'Value': 'x'}}),
]


def botocore_parse(protocol, operation, body, status=200):
    parser = botocore.parsers.create_parser('ec2')
    shape = protocol.service_model.operation_model(operation).output_shape
    return parser.parse({'body': body, 'headers': {}, 'status_code': status}, shape)


@pytest.mark.parametrize('operation,output', RESPONSES,
                         ids=[f'{op}-{i}' for i, (op, _) in enumerate(RESPONSES)])
def test_serialized_response_parses_back(protocol, operation, output):
    body = protocol.serialize(operation, output, 'req-1234')
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    parsed = botocore_parse(protocol, operation, body)
    assert parsed.pop('ResponseMetadata')['RequestId'] == 'req-1234'
    assert parsed == output


@pytest.mark.parametrize('operation,output', RESPONSES,
                         ids=[f'{op}-{i}' for i, (op, _) in enumerate(RESPONSES)])
def test_text_writer_writes_what_the_element_writer_builds(protocol, operation, output):
    shape = protocol.service_model.operation_model(operation).output_shape
    root = etree.Element('{urn:x}R', nsmap={None: 'urn:x'})
    XmlWriter('urn:x').fill(root, shape, output)
    expected = etree.tostring(root, encoding='unicode')
    assert f'<R xmlns="urn:x">{TextWriter().text(shape, output)}</R>' == expected


def test_text_writer_refuses_a_recursive_shape_and_keeps_writing_others(protocol):
    model = botocore.model.ServiceModel({
        'metadata': {'protocol': 'ec2', 'apiVersion': '2016-11-15', 'endpointPrefix': 'x'}, 'operations': {},
        'shapes': {'Node': {'type': 'structure', 'members': {'Name': {'shape': 'Text'},
                                                             'Children': {'shape': 'Nodes'}}},
                   'Nodes': {'type': 'list', 'member': {'shape': 'Node'}},
                   'Leaf': {'type': 'structure', 'members': {'Name': {'shape': 'Text'}}},
                   'Text': {'type': 'string'}}})
    writer = TextWriter()
    with pytest.raises(ValueError, match='recursive'):
        writer.text(model.shape_for('Node'), {'Name': 'a', 'Children': []})
    assert writer.text(model.shape_for('Leaf'), {'Name': 'a&b'}) == '<Name>a&amp;b</Name>'


def test_a_keyed_value_is_written_as_its_value_and_built_again_only_when_its_key_changes(protocol):
    built = []

    def instance(instance_id, state):
        built.append((instance_id, state))
        return {'InstanceId': instance_id, 'LaunchTime': T1, 'State': {'Code': 16, 'Name': state}}

    def answer(*instances):
        return {'Reservations': [{'ReservationId': 'r-1', 'Instances': [
            Keyed(instance_id, (instance_id, state), functools.partial(instance, instance_id, state))
            for instance_id, state in instances]}]}
    expected = protocol.serialize('DescribeInstances', {'Reservations': [{'ReservationId': 'r-1', 'Instances': [
        instance('i-1', 'running'), instance('i-2', 'running')]}]}, 'req-1')
    built.clear()
    assert protocol.serialize('DescribeInstances', answer(('i-1', 'running'), ('i-2', 'running')), 'req-1') == expected
    body = protocol.serialize('DescribeInstances', answer(('i-1', 'running'), ('i-2', 'stopped'), ('i-3', 'running')),
                              'req-1')
    assert body.count(b'<item>') == 4 and b'<name>stopped</name>' in body
    assert built == [('i-1', 'running'), ('i-2', 'running'), ('i-2', 'stopped'), ('i-3', 'running')]
    assert b'<name>running</name>' in protocol.serialize('DescribeInstances', answer(('i-2', 'running')), 'req-1')
    assert built[-1] == ('i-2', 'running')  # kept with its latest key only
    assert dict(answer(('i-4', 'running'))['Reservations'][0]['Instances'][0])['InstanceId'] == 'i-4'  # a mapping


def test_a_text_writer_keeps_the_texts_of_the_last_values_written():
    shape = Ec2Protocol().service_model.shape_for('Instance')
    built, writer = [], TextWriter(remember=2)

    def instance(instance_id):
        built.append(instance_id)
        return {'InstanceId': instance_id}
    for instance_id in ('i-1', 'i-2', 'i-1', 'i-3', 'i-2', 'i-1'):
        text = writer.text(shape, Keyed(instance_id, instance_id, functools.partial(instance, instance_id)))
        assert text == f'<instanceId>{instance_id}</instanceId>'
    assert built == ['i-1', 'i-2', 'i-3', 'i-1']  # i-1 went first when i-3 came


def test_text_is_escaped_as_lxml_escapes_it(protocol):
    body = protocol.serialize('DescribeKeyPairs', {'KeyPairs': [{'KeyName': 'a&b <c>\r"d\'', 'KeyFingerprint': 'é'}]},
                              'req-1')
    assert '<keyName>a&amp;b &lt;c&gt;&#13;"d\'</keyName><keyFingerprint>é</keyFingerprint>' in body.decode()
    assert botocore_parse(protocol, 'DescribeKeyPairs', body)['KeyPairs'][0]['KeyName'] == 'a&b <c>\r"d\''


def test_text_xml_cannot_carry_is_refused_as_lxml_refuses_it(protocol):
    with pytest.raises(ValueError):
        protocol.serialize('DescribeKeyPairs', {'KeyPairs': [{'KeyName': 'bell\x07'}]}, 'req-1')


def test_response_shape_is_ec2s(protocol):
    body = protocol.serialize('DescribeInstances', {'Reservations': [
        {'ReservationId': 'r-1', 'Instances': [{'InstanceId': 'i-1', 'LaunchTime': T1,
                                                'Unknown': 'ignored'}]}]}, 'req-1')
    text = body.decode()
    assert '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' in text
    assert '<requestId>req-1</requestId>' in text
    assert '<reservationSet><item><reservationId>r-1</reservationId>' in text
    assert '<launchTime>2024-05-06T07:08:09.000Z</launchTime>' in text
    assert 'Unknown' not in text and 'ignored' not in text


def test_operation_without_output_answers_return_true(protocol):
    body = protocol.serialize('DeleteTags', {}, 'req-1')
    assert b'<return>true</return>' in body


@pytest.mark.parametrize('error', [
    AWSError('InvalidKeyPair.NotFound', "The key pair 'x' does not exist"),
    AWSError('AuthFailure', 'AWS was not able to validate the provided access credentials', 401),
    AWSError('InternalError', 'An internal error has occurred', 500),
])
def test_error_document_parses_back(protocol, error):
    status, body = protocol.serialize_error(error, 'req-err')
    assert status == error.status
    parsed = botocore_parse(protocol, 'DescribeKeyPairs', body, status)
    assert parsed['Error']['Code'] == error.code
    assert parsed['Error']['Message'] == error.message
    assert parsed['ResponseMetadata']['RequestId'] == 'req-err'

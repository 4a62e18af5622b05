"""euca2ools.output: boto3 response dicts -> euca2ools 3.x tab-separated lines."""

import datetime

from dateutil.tz import tzutc

from euca2ools import output

LAUNCH = datetime.datetime(2024, 3, 5, 17, 4, 9, 123000, tzinfo=tzutc())

# What boto3 returns for a running EC2-classic instance on this cloud.
RUNNING_INSTANCE = {
    'AmiLaunchIndex': 0,
    'ImageId': 'emi-0a1b2c3d',
    'InstanceId': 'i-5e6f7a8b',
    'InstanceType': 'm1.small',
    'KernelId': 'eki-11112222',
    'RamdiskId': 'eri-33334444',
    'KeyName': 'mykey',
    'LaunchTime': LAUNCH,
    'Monitoring': {'State': 'disabled'},
    'Placement': {'AvailabilityZone': 'cluster01', 'GroupName': '', 'Tenancy': 'default'},
    'PrivateDnsName': 'euca-172-16-1-5.eucalyptus.internal',
    'PrivateIpAddress': '172.16.1.5',
    'ProductCodes': [],
    'PublicDnsName': 'euca-10-1-1-50.eucalyptus.example.com',
    'State': {'Code': 16, 'Name': 'running'},
    'Architecture': 'x86_64',
    'BlockDeviceMappings': [],
    'ClientToken': '',
    'EbsOptimized': False,
    'Hypervisor': 'xen',
    'RootDeviceType': 'instance-store',
    'SecurityGroups': [{'GroupName': 'default', 'GroupId': 'sg-0000aaaa'}],
    'VirtualizationType': 'paravirtual',
    'PublicIpAddress': '10.1.1.50',
    'Tags': [{'Key': 'Name', 'Value': 'web server'}],
}

RESERVATION = {
    'ReservationId': 'r-9c8d7e6f',
    'OwnerId': '123456789012',
    'Groups': [{'GroupName': 'default', 'GroupId': 'sg-0000aaaa'}],
    'Instances': [RUNNING_INSTANCE],
}

EXPECTED_INSTANCE = [
    'INSTANCE', 'i-5e6f7a8b', 'emi-0a1b2c3d', 'euca-10-1-1-50.eucalyptus.example.com',
    'euca-172-16-1-5.eucalyptus.internal', 'running', 'mykey', '0', '', 'm1.small',
    '2024-03-05T17:04:09.123Z', 'cluster01', 'eki-11112222', 'eri-33334444', '',
    'monitoring-disabled', '10.1.1.50', '172.16.1.5', '', '', 'instance-store', '', '', '',
    '', 'paravirtual', 'xen', '', 'sg-0000aaaa', 'default', 'false', '', 'x86_64']


# --- primitives --------------------------------------------------------------

def test_format_value_kinds():
    assert output.format_value(None) is None
    assert output.format_value(True) == 'true'
    assert output.format_value(False) == 'false'
    assert output.format_value(0) == '0'
    assert output.format_value(LAUNCH) == '2024-03-05T17:04:09.123Z'


def test_format_value_converts_to_utc():
    eastern = datetime.timezone(datetime.timedelta(hours=-5))
    moment = datetime.datetime(2024, 1, 1, 7, 0, 0, tzinfo=eastern)
    assert output.format_value(moment) == '2024-01-01T12:00:00.000Z'


def test_tabify_empties_and_zero():
    assert output.tabify(['A', None, '', 0, False]) == 'A\t\t\t0\tfalse'
    assert output.tabify(['A', None, 'b'], empty='(nil)') == 'A\t(nil)\tb'


def test_resource_type():
    assert output.resource_type('i-12345678') == 'instance'
    assert output.resource_type('emi-12345678') == 'image'
    assert output.resource_type('eki-12345678') == 'image'
    assert output.resource_type('vol-12345678') == 'volume'
    assert output.resource_type('unknown') is None


# --- regions, zones, key pairs, images ---------------------------------------

def test_regions():
    response = {'Regions': [
        {'RegionName': 'eucalyptus', 'Endpoint': 'http://10.1.1.10:8773/services/Eucalyptus'},
        {'RegionName': 'walrus', 'Endpoint': 'http://10.1.1.10:8773/services/Walrus'}],
        'ResponseMetadata': {'RequestId': 'x'}}
    assert output.format_regions(response) == [
        'REGION\teucalyptus\thttp://10.1.1.10:8773/services/Eucalyptus',
        'REGION\twalrus\thttp://10.1.1.10:8773/services/Walrus']


def test_regions_empty():
    assert output.format_regions({'Regions': []}) == []


def test_availability_zones_plain_and_verbose():
    response = {'AvailabilityZones': [
        {'ZoneName': 'cluster01', 'State': 'available', 'RegionName': 'eucalyptus',
         'Messages': []},
        {'ZoneName': '|- vm types', 'State': 'free / max   cpu   ram  disk', 'Messages': []},
        {'ZoneName': '|- m1.small', 'State': '0004 / 0004   1    256     5', 'Messages': []},
        {'ZoneName': 'cluster02', 'State': 'unavailable',
         'Messages': [{'Message': 'cc down'}, {'Message': 'no nodes'}]},
    ]}
    assert output.format_availability_zones(response) == [
        'AVAILABILITYZONE\tcluster01\tavailable\t',
        'AVAILABILITYZONE\t|- vm types\tfree / max   cpu   ram  disk\t',
        'AVAILABILITYZONE\t|- m1.small\t0004 / 0004   1    256     5\t',
        'AVAILABILITYZONE\tcluster02\tunavailable\tcc down, no nodes']


KEY_MATERIAL = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpA\n-----END RSA PRIVATE KEY-----'
CREATED_KEY = {'KeyName': 'mykey', 'KeyFingerprint': '1f:51:ae:28:bf:89:e9:d8:1f:25',
               'KeyMaterial': KEY_MATERIAL, 'KeyPairId': 'key-0123'}


def test_keypair_created_prints_material():
    assert output.format_keypair_created(CREATED_KEY) == [
        'KEYPAIR\tmykey\t1f:51:ae:28:bf:89:e9:d8:1f:25', KEY_MATERIAL]


def test_keypair_created_saved_prints_only_keypair_line():
    assert output.format_keypair_created(CREATED_KEY, with_material=False) == [
        'KEYPAIR\tmykey\t1f:51:ae:28:bf:89:e9:d8:1f:25']


def test_keypairs():
    response = {'KeyPairs': [{'KeyName': 'a', 'KeyFingerprint': 'aa:bb'},
                             {'KeyName': 'b', 'KeyFingerprint': 'cc:dd'}]}
    assert output.format_keypairs(response) == ['KEYPAIR\ta\taa:bb', 'KEYPAIR\tb\tcc:dd']


def test_keypair_deleted():
    assert output.format_keypair_deleted('mykey') == ['KEYPAIR\tmykey']


def test_image_registered():
    assert output.format_image_registered({'ImageId': 'emi-0a1b2c3d'}) == ['IMAGE\temi-0a1b2c3d']


MACHINE_IMAGE = {
    'ImageId': 'emi-0a1b2c3d', 'ImageLocation': 'images/centos.manifest.xml',
    'State': 'available', 'OwnerId': '123456789012', 'Public': True,
    'Architecture': 'x86_64', 'ImageType': 'machine', 'KernelId': 'eki-11112222',
    'RamdiskId': 'eri-33334444', 'RootDeviceType': 'instance-store',
    'VirtualizationType': 'paravirtual', 'Hypervisor': 'xen',
    'BlockDeviceMappings': [], 'Tags': [{'Key': 'os', 'Value': 'centos'}],
}
KERNEL_IMAGE = {
    'ImageId': 'eki-11112222', 'ImageLocation': 'kernels/vmlinuz.manifest.xml',
    'State': 'available', 'OwnerId': '123456789012', 'Public': False,
    'Architecture': 'x86_64', 'ImageType': 'kernel', 'RootDeviceType': 'instance-store',
}


def test_images_sorted_deduplicated_with_tags():
    owned = {'Images': [MACHINE_IMAGE, KERNEL_IMAGE]}
    executable = {'Images': [MACHINE_IMAGE]}
    assert output.format_images([owned, executable]) == [
        'IMAGE\teki-11112222\tkernels/vmlinuz.manifest.xml\t123456789012\tavailable\tprivate'
        '\tx86_64\tkernel\t\t\t\tinstance-store\t\t',
        'IMAGE\temi-0a1b2c3d\timages/centos.manifest.xml\t123456789012\tavailable\tpublic'
        '\tx86_64\tmachine\teki-11112222\teri-33334444\t\tinstance-store\tparavirtual\txen',
        'TAG\timage\temi-0a1b2c3d\tos\tcentos']


def test_image_with_name_shows_owner_slash_name_and_alias():
    image = dict(KERNEL_IMAGE, Name='vmlinuz-3.10', ImageOwnerAlias='eucalyptus')
    line = output.format_image(image)[0].split('\t')
    assert line[2] == '123456789012/vmlinuz-3.10'
    assert line[3] == 'eucalyptus'
    assert len(line) == 14


def test_image_block_device_mappings():
    image = dict(MACHINE_IMAGE, Tags=[], BlockDeviceMappings=[
        {'DeviceName': '/dev/sda2', 'VirtualName': 'ephemeral0'},
        {'DeviceName': '/dev/sda1', 'Ebs': {'SnapshotId': 'snap-1', 'VolumeSize': 10,
                                            'DeleteOnTermination': True,
                                            'VolumeType': 'standard'}}])
    assert output.format_image(image)[1:] == [
        'BLOCKDEVICEMAPPING\tEPHEMERAL\t/dev/sda2\tephemeral0',
        'BLOCKDEVICEMAPPING\tEBS\t/dev/sda1\tsnap-1\t10\ttrue\tstandard\t']


# --- instances ---------------------------------------------------------------

def test_instance_line_has_all_3x_fields_in_order():
    lines = output.format_instance(RUNNING_INSTANCE)
    assert lines[0].split('\t') == EXPECTED_INSTANCE
    assert len(EXPECTED_INSTANCE) == 33  # INSTANCE + 32 fields
    assert lines[1:] == ['TAG\tinstance\ti-5e6f7a8b\tName\tweb server']


def test_pending_instance_from_run_instances_has_empty_fields():
    pending = {'InstanceId': 'i-00000001', 'ImageId': 'emi-0a1b2c3d',
               'State': {'Code': 0, 'Name': 'pending'}, 'AmiLaunchIndex': 0,
               'InstanceType': 'm1.small', 'LaunchTime': LAUNCH,
               'Placement': {'AvailabilityZone': 'cluster01'}}
    fields = output.format_instance(pending)[0].split('\t')
    assert len(fields) == 33
    assert fields[:11] == ['INSTANCE', 'i-00000001', 'emi-0a1b2c3d', '', '', 'pending', '',
                           '0', '', 'm1.small', '2024-03-05T17:04:09.123Z']
    assert fields[15] == ''  # no monitoring element at all
    assert set(fields[12:]) == {''}


def test_instance_show_empty_fields():
    fields = output.format_instance({'InstanceId': 'i-1'}, empty='(nil)')[0].split('\t')
    assert fields[1] == 'i-1' and fields[2] == '(nil)' and fields[-1] == '(nil)'


def test_instance_product_codes_groups_and_block_devices():
    instance = dict(RUNNING_INSTANCE, Tags=[],
                    ProductCodes=[{'ProductCodeId': 'pc1', 'ProductCodeType': 'devpay'},
                                  {'ProductCodeId': 'pc2'}],
                    SecurityGroups=[{'GroupId': 'sg-1', 'GroupName': 'a'},
                                    {'GroupId': 'sg-2', 'GroupName': 'b'}],
                    IamInstanceProfile={'Arn': 'arn:aws:iam::123:instance-profile/p'},
                    BlockDeviceMappings=[{'DeviceName': '/dev/sdb', 'Ebs': {
                        'VolumeId': 'vol-1', 'AttachTime': LAUNCH, 'DeleteOnTermination': False,
                        'Status': 'attached'}}])
    lines = output.format_instance(instance)
    fields = lines[0].split('\t')
    assert fields[8] == 'pc1,pc2'
    assert fields[28] == 'sg-1,sg-2'
    assert fields[31] == 'arn:aws:iam::123:instance-profile/p'
    assert lines[1:] == ['BLOCKDEVICE\t/dev/sdb\tvol-1\t2024-03-05T17:04:09.123Z\tfalse\t\t']


def test_reservation_with_instances_sorted_by_launch():
    later = dict(RUNNING_INSTANCE, InstanceId='i-later', Tags=[], AmiLaunchIndex=1,
                 LaunchTime=LAUNCH + datetime.timedelta(seconds=5))
    first = dict(RUNNING_INSTANCE, Tags=[])
    lines = output.format_reservation(dict(RESERVATION, Instances=[later, first]))
    assert lines[0] == 'RESERVATION\tr-9c8d7e6f\t123456789012\tdefault'
    assert [line.split('\t')[1] for line in lines[1:]] == ['i-5e6f7a8b', 'i-later']


def test_reservation_group_names_fall_back_to_ids():
    reservation = {'ReservationId': 'r-1', 'OwnerId': '1',
                   'Groups': [{'GroupName': 'web'}, {'GroupId': 'sg-2'}], 'Instances': []}
    assert output.format_reservation(reservation) == ['RESERVATION\tr-1\t1\tweb, sg-2']


def test_reservations_of_describe_instances():
    response = {'Reservations': [RESERVATION, dict(RESERVATION, ReservationId='r-2',
                                                   Instances=[])]}
    lines = output.format_reservations(response)
    assert lines == [
        'RESERVATION\tr-9c8d7e6f\t123456789012\tdefault',
        '\t'.join(EXPECTED_INSTANCE),
        'TAG\tinstance\ti-5e6f7a8b\tName\tweb server',
        'RESERVATION\tr-2\t123456789012\tdefault']


def test_reservations_empty():
    assert output.format_reservations({'Reservations': []}) == []


def test_terminated():
    response = {'TerminatingInstances': [
        {'InstanceId': 'i-1', 'CurrentState': {'Code': 32, 'Name': 'shutting-down'},
         'PreviousState': {'Code': 16, 'Name': 'running'}},
        {'InstanceId': 'i-2', 'CurrentState': {'Code': 48, 'Name': 'terminated'},
         'PreviousState': {'Code': 48, 'Name': 'terminated'}}]}
    assert output.format_terminated(response) == [
        'INSTANCE\ti-1\trunning\tshutting-down', 'INSTANCE\ti-2\tterminated\tterminated']

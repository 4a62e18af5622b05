"""The credentials-directory writer shared by euca_conf and euare-accountcreate."""

import configparser
import os
import stat
import subprocess

import pytest

from euca2ools import creddir
from euca2ools.credentials import Creds, load_credentials, parse_eucarc

KEY = creddir.AccountKey(account_name='dev', account_id='000000000042', user_name='admin',
                         access_key='AKIAEXAMPLE000000001', secret_key='s3cr3t/Key+0001')
ENDPOINTS = creddir.Endpoints.of_clc('http://10.1.1.10:8773/services/compute',
                                     'http://10.1.1.11:8776/')
CERT = b'-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'


@pytest.fixture
def cert(tmp_path):
    path = tmp_path / 'ca.pem'
    path.write_bytes(CERT)
    return path


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_endpoints_of_clc_share_the_ec2_port():
    assert ENDPOINTS == creddir.Endpoints(
        ec2_url='http://10.1.1.10:8773/services/compute', s3_url='http://10.1.1.11:8776/',
        euare_url='http://10.1.1.10:8773/services/Euare',
        properties_url='http://10.1.1.10:8773/services/Properties',
        reporting_url='http://10.1.1.10:8773/services/Reporting', region='eucalyptus')


def test_endpoints_of_creds_keep_explicit_urls():
    creds = Creds(ec2_url='http://a:8773/services/compute', s3_url=None, access_key='k',
                  secret_key='s', region='r1', ca_cert=None, euare_url='http://iam.a/')
    endpoints = creddir.Endpoints.of_creds(creds)
    assert endpoints.euare_url == 'http://iam.a/'
    assert endpoints.properties_url == 'http://a:8773/services/Properties'
    assert (endpoints.s3_url, endpoints.region) == (None, 'r1')


def test_writes_every_file_owner_only(tmp_path, cert):
    target = tmp_path / 'a' / 'creds'
    eucarc = creddir.write_credentials_dir(target, KEY, ENDPOINTS, cert)
    assert eucarc == target / 'eucarc'
    assert sorted(os.listdir(target)) == ['cloud-cert.pem', 'euca2ools.ini', 'eucarc', 'iamrc']
    assert mode(target) == 0o700
    for name in os.listdir(target):
        assert mode(target / name) == 0o600, name
    assert (target / 'cloud-cert.pem').read_bytes() == CERT


def test_eucarc_parses_with_the_eucarc_parser(tmp_path, cert):
    creddir.write_credentials_dir(tmp_path, KEY, ENDPOINTS, cert)
    values = parse_eucarc(str(tmp_path / 'eucarc'), environ={})
    key_dir = os.path.realpath(tmp_path)
    assert values == {
        'EUCA_KEY_DIR': key_dir,
        'EC2_URL': 'http://10.1.1.10:8773/services/compute', 'S3_URL': 'http://10.1.1.11:8776/',
        'EUARE_URL': 'http://10.1.1.10:8773/services/Euare',
        'AWS_IAM_URL': 'http://10.1.1.10:8773/services/Euare',
        'EUCA_PROPERTIES_URL': 'http://10.1.1.10:8773/services/Properties',
        'EUCA_REPORTING_URL': 'http://10.1.1.10:8773/services/Reporting',
        'AWS_ACCESS_KEY_ID': KEY.access_key, 'AWS_SECRET_ACCESS_KEY': KEY.secret_key,
        'AWS_ACCESS_KEY': KEY.access_key, 'AWS_SECRET_KEY': KEY.secret_key,
        'EC2_ACCESS_KEY': KEY.access_key, 'EC2_SECRET_KEY': KEY.secret_key,
        'EC2_ACCOUNT_NUMBER': '000000000042', 'EC2_USER_ID': '000000000042',
        'AWS_CREDENTIAL_FILE': f'{key_dir}/iamrc',
        'EUCALYPTUS_CERT': f'{key_dir}/cloud-cert.pem',
        'AWS_DEFAULT_REGION': 'eucalyptus', 'EUCA_DEFAULT_REGION': 'eucalyptus'}
    creds = load_credentials(None, environ={}, eucarc_path=str(tmp_path / 'eucarc'),
                             service='euare')
    assert creds.url('euare') == 'http://10.1.1.10:8773/services/Euare'
    assert creds.ca_cert == f'{key_dir}/cloud-cert.pem'


def test_eucarc_sources_in_a_shell(tmp_path, cert):
    creddir.write_credentials_dir(tmp_path, KEY, ENDPOINTS, cert)
    out = subprocess.run(
        ['bash', '-c', f'. {tmp_path}/eucarc && echo "$AWS_SECRET_ACCESS_KEY $AWS_CREDENTIAL_FILE"'],
        capture_output=True, text=True, check=True, cwd='/').stdout.split()
    assert out == [KEY.secret_key, f'{os.path.realpath(tmp_path)}/iamrc']


def test_iamrc(tmp_path):
    creddir.write_credentials_dir(tmp_path, KEY, ENDPOINTS)
    assert (tmp_path / 'iamrc').read_text() == (
        'AWSAccessKeyId=AKIAEXAMPLE000000001\nAWSSecretKey=s3cr3t/Key+0001\n')


def test_euca2ools_ini(tmp_path):
    creddir.write_credentials_dir(tmp_path, KEY, ENDPOINTS)
    ini = configparser.ConfigParser()
    ini.read(tmp_path / 'euca2ools.ini')
    assert ini.sections() == ['user dev-admin', 'region eucalyptus']
    assert dict(ini['user dev-admin']) == {'key-id': KEY.access_key,
                                           'secret-key': KEY.secret_key,
                                           'account-id': '000000000042'}
    assert dict(ini['region eucalyptus']) == {
        'ec2-url': 'http://10.1.1.10:8773/services/compute', 's3-url': 'http://10.1.1.11:8776/',
        'iam-url': 'http://10.1.1.10:8773/services/Euare', 'user': 'dev-admin'}


def test_without_cert_or_s3(tmp_path):
    endpoints = creddir.Endpoints.of_clc('http://h:8773/services/compute', None)
    creddir.write_credentials_dir(tmp_path, KEY, endpoints, tmp_path / 'absent.pem')
    assert not (tmp_path / 'cloud-cert.pem').exists()
    values = parse_eucarc(str(tmp_path / 'eucarc'), environ={})
    assert 'EUCALYPTUS_CERT' not in values and 'S3_URL' not in values
    assert 's3-url' not in (tmp_path / 'euca2ools.ini').read_text()


def test_rewrite_replaces_files_and_leaves_no_temporaries(tmp_path, cert):
    tmp_path.chmod(0o755)
    (tmp_path / 'eucarc').write_text('old')
    (tmp_path / 'eucarc').chmod(0o644)
    creddir.write_credentials_dir(tmp_path, KEY, ENDPOINTS, cert)
    newer = creddir.AccountKey('dev', '000000000042', 'admin', 'AKIAEXAMPLE000000002', 'x')
    creddir.write_credentials_dir(tmp_path, newer, ENDPOINTS, cert)
    assert sorted(os.listdir(tmp_path)) == ['ca.pem', 'cloud-cert.pem', 'euca2ools.ini',
                                            'eucarc', 'iamrc']
    assert 'AKIAEXAMPLE000000002' in (tmp_path / 'eucarc').read_text()
    assert mode(tmp_path / 'eucarc') == 0o600
    assert mode(tmp_path) == 0o755  # an existing directory is the caller's to set


def test_secret_is_quoted_for_the_shell(tmp_path):
    odd = creddir.AccountKey('dev', '1', 'admin', 'AKIAEXAMPLE000000003', "a b'$c")
    creddir.write_credentials_dir(tmp_path, odd, ENDPOINTS)
    assert parse_eucarc(str(tmp_path / 'eucarc'), environ={})['AWS_SECRET_ACCESS_KEY'] == "a b'$c"


def test_secret_stays_out_of_repr():
    assert KEY.secret_key not in repr(KEY)

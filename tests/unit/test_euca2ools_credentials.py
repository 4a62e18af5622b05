"""The eucarc parser and the credential precedence of euca2ools.credentials."""

import argparse
import os

import pytest

from euca2ools.credentials import (DEFAULT_REGION, Creds, CredentialsError,
                                   load_credentials, parse_eucarc, service_url)

# As Eucalyptus 3.x's X509Download writes it (abridged, keys invented).
EUCARC_3X = """\
EUCA_KEY_DIR=$(cd $(dirname ${BASH_SOURCE:-$0}); pwd -P)
export EC2_URL=http://10.1.1.10:8773/services/Eucalyptus
export S3_URL=http://10.1.1.10:8773/services/Walrus
export EUARE_URL=http://10.1.1.10:8773/services/Euare
export TOKEN_URL=http://10.1.1.10:8773/services/Tokens
export EUSTORE_URL=http://emis.eucalyptus.com/
export EC2_PRIVATE_KEY=${EUCA_KEY_DIR}/euca2-admin-1a2b3c4d-pk.pem
export EC2_CERT=${EUCA_KEY_DIR}/euca2-admin-1a2b3c4d-cert.pem
export EC2_JVM_ARGS=-Djavax.net.ssl.trustStore=${EUCA_KEY_DIR}/jssecacerts
export EUCALYPTUS_CERT=${EUCA_KEY_DIR}/cloud-cert.pem
export EC2_ACCOUNT_NUMBER='123456789012'
export EC2_ACCESS_KEY='AKIEUCAEXAMPLE0001'
export EC2_SECRET_KEY='s3cr3t/Example+Key0001'
export AWS_ACCESS_KEY='AKIEUCAEXAMPLE0001'
export AWS_SECRET_KEY='s3cr3t/Example+Key0001'
export AWS_CREDENTIAL_FILE=${EUCA_KEY_DIR}/iamrc
export EC2_USER_ID='123456789012'
alias ec2-bundle-image="ec2-bundle-image --cert ${EC2_CERT} --privatekey ${EC2_PRIVATE_KEY} --user ${EC2_ACCOUNT_NUMBER} --ec2cert ${EUCALYPTUS_CERT}"
alias ec2-upload-bundle="ec2-upload-bundle -a ${EC2_ACCESS_KEY} -s ${EC2_SECRET_KEY} --url ${S3_URL}"
"""


def write(path, text):
    path.write_text(text)
    return str(path)


def opts(**values):
    base = dict(url=None, access_key_id=None, secret_key=None, region=None)
    base.update(values)
    return argparse.Namespace(**base)


# --- parse_eucarc ------------------------------------------------------------

def test_eucarc_3x_values_and_key_dir(tmp_path):
    values = parse_eucarc(write(tmp_path / 'eucarc', EUCARC_3X), environ={})
    key_dir = os.path.realpath(tmp_path)
    assert values['EUCA_KEY_DIR'] == key_dir
    assert values['EC2_URL'] == 'http://10.1.1.10:8773/services/Eucalyptus'
    assert values['S3_URL'] == 'http://10.1.1.10:8773/services/Walrus'
    assert values['EUCALYPTUS_CERT'] == f'{key_dir}/cloud-cert.pem'
    assert values['EC2_ACCESS_KEY'] == 'AKIEUCAEXAMPLE0001'
    assert values['AWS_SECRET_KEY'] == 's3cr3t/Example+Key0001'
    assert values['EC2_JVM_ARGS'] == f'-Djavax.net.ssl.trustStore={key_dir}/jssecacerts'
    assert 'ec2-bundle-image' not in values
    assert not any(name.startswith('alias') for name in values)


def test_eucarc_2x_readlink_key_dir(tmp_path):
    text = ('EUCA_KEY_DIR=$(dirname $(readlink -f ${BASH_SOURCE}))\n'
            'export EUCALYPTUS_CERT=${EUCA_KEY_DIR}/cloud-cert.pem\n')
    values = parse_eucarc(write(tmp_path / 'eucarc', text), environ={})
    assert values['EUCALYPTUS_CERT'] == os.path.join(os.path.realpath(tmp_path), 'cloud-cert.pem')


def test_eucarc_key_dir_follows_symlink(tmp_path):
    real_dir = tmp_path / 'creds'
    real_dir.mkdir()
    write(real_dir / 'eucarc', EUCARC_3X)
    (tmp_path / 'link').symlink_to(real_dir / 'eucarc')
    values = parse_eucarc(str(tmp_path / 'link'), environ={})
    assert values['EUCA_KEY_DIR'] == os.path.realpath(real_dir)


def test_eucarc_quotes_and_expansion(tmp_path):
    text = '\n'.join([
        '# a comment line',
        'PLAIN=value',
        'export DOUBLE="two words"',
        "export SINGLE='no $PLAIN expansion'",
        'export BRACED=${PLAIN}/x',
        'export BARE=$PLAIN-y',
        'export FROM_ENV=$HOME/z',
        'export UNKNOWN=${NOT_SET}end',
        'export TRAILING=abc # comment',
        'export ESCAPED=a\\ b',
        'export SUBST=$(hostname)',
        'export',
        'if [ -f x ]; then echo; fi',
        '',
    ])
    values = parse_eucarc(write(tmp_path / 'eucarc', text), environ={'HOME': '/home/u'})
    assert values['PLAIN'] == 'value'
    assert values['DOUBLE'] == 'two words'
    assert values['SINGLE'] == 'no $PLAIN expansion'
    assert values['BRACED'] == 'value/x'
    assert values['BARE'] == 'value-y'
    assert values['FROM_ENV'] == '/home/u/z'
    assert values['UNKNOWN'] == 'end'
    assert values['TRAILING'] == 'abc'
    assert values['ESCAPED'] == 'a b'
    assert 'SUBST' not in values
    assert set(values) == {'PLAIN', 'DOUBLE', 'SINGLE', 'BRACED', 'BARE', 'FROM_ENV',
                           'UNKNOWN', 'TRAILING', 'ESCAPED'}


def test_eucarc_later_line_wins(tmp_path):
    text = 'export EC2_URL=http://a/\nexport EC2_URL=http://b/\n'
    assert parse_eucarc(write(tmp_path / 'eucarc', text), environ={})['EC2_URL'] == 'http://b/'


# --- load_credentials --------------------------------------------------------

ENV = {'EC2_URL': 'http://env:8773/services/Eucalyptus',
       'AWS_ACCESS_KEY_ID': 'ENVKEY', 'AWS_SECRET_ACCESS_KEY': 'ENVSECRET'}


def test_environment_only(tmp_path):
    creds = load_credentials(opts(), environ=ENV, eucarc_path=str(tmp_path / 'none'))
    assert creds == Creds(ec2_url=ENV['EC2_URL'], s3_url=None, access_key='ENVKEY',
                          secret_key='ENVSECRET', region=DEFAULT_REGION, ca_cert=None)


def test_options_beat_environment(tmp_path):
    creds = load_credentials(
        opts(url='http://cli:8773/', access_key_id='CLIKEY', secret_key='CLISECRET',
             region='cli-region'),
        environ=dict(ENV, EUCA_DEFAULT_REGION='env-region'),
        eucarc_path=str(tmp_path / 'none'))
    assert (creds.ec2_url, creds.access_key, creds.secret_key, creds.region) == (
        'http://cli:8773/', 'CLIKEY', 'CLISECRET', 'cli-region')


@pytest.mark.parametrize('variables, expected', [
    ({'AWS_ACCESS_KEY_ID': 'a', 'AWS_ACCESS_KEY': 'b', 'EC2_ACCESS_KEY': 'c'}, 'a'),
    ({'AWS_ACCESS_KEY': 'b', 'EC2_ACCESS_KEY': 'c'}, 'b'),
    ({'EC2_ACCESS_KEY': 'c'}, 'c'),
])
def test_access_key_variable_order(tmp_path, variables, expected):
    environ = dict(variables, EC2_URL='http://x/', EC2_SECRET_KEY='s')
    creds = load_credentials(opts(), environ=environ, eucarc_path=str(tmp_path / 'none'))
    assert creds.access_key == expected


@pytest.mark.parametrize('variables, expected', [
    ({'AWS_SECRET_ACCESS_KEY': 'a', 'AWS_SECRET_KEY': 'b', 'EC2_SECRET_KEY': 'c'}, 'a'),
    ({'AWS_SECRET_KEY': 'b', 'EC2_SECRET_KEY': 'c'}, 'b'),
    ({'EC2_SECRET_KEY': 'c'}, 'c'),
])
def test_secret_key_variable_order(tmp_path, variables, expected):
    environ = dict(variables, EC2_URL='http://x/', EC2_ACCESS_KEY='k')
    creds = load_credentials(opts(), environ=environ, eucarc_path=str(tmp_path / 'none'))
    assert creds.secret_key == expected


def test_region_variable_order(tmp_path):
    none = str(tmp_path / 'none')
    both = dict(ENV, EUCA_DEFAULT_REGION='euca', AWS_DEFAULT_REGION='aws')
    assert load_credentials(opts(), environ=both, eucarc_path=none).region == 'euca'
    only_aws = dict(ENV, AWS_DEFAULT_REGION='aws')
    assert load_credentials(opts(), environ=only_aws, eucarc_path=none).region == 'aws'


def test_eucarc_used_when_environment_empty(tmp_path):
    home = tmp_path / 'home'
    (home / '.euca').mkdir(parents=True)
    write(home / '.euca' / 'eucarc', EUCARC_3X)
    creds = load_credentials(opts(), environ={'HOME': str(home)})
    key_dir = os.path.realpath(home / '.euca')
    assert creds == Creds(ec2_url='http://10.1.1.10:8773/services/Eucalyptus',
                          s3_url='http://10.1.1.10:8773/services/Walrus',
                          access_key='AKIEUCAEXAMPLE0001',
                          secret_key='s3cr3t/Example+Key0001',
                          region='eucalyptus', ca_cert=f'{key_dir}/cloud-cert.pem',
                          euare_url='http://10.1.1.10:8773/services/Euare')


def test_environment_beats_eucarc_setting_by_setting(tmp_path):
    eucarc = write(tmp_path / 'eucarc', EUCARC_3X)
    creds = load_credentials(opts(access_key_id='CLIKEY'),
                             environ={'EC2_URL': 'http://env:8773/'}, eucarc_path=eucarc)
    assert creds.ec2_url == 'http://env:8773/'
    assert creds.access_key == 'CLIKEY'
    assert creds.secret_key == 's3cr3t/Example+Key0001'


def test_eucarc_not_read_when_everything_set(tmp_path):
    eucarc = write(tmp_path / 'eucarc', EUCARC_3X)
    creds = load_credentials(opts(), environ=ENV, eucarc_path=eucarc)
    assert creds.s3_url is None and creds.ca_cert is None


def test_missing_everything_names_what_is_missing(tmp_path):
    with pytest.raises(CredentialsError) as caught:
        load_credentials(opts(), environ={'HOME': str(tmp_path)})
    message = str(caught.value)
    assert 'EC2_URL' in message and 'AWS_ACCESS_KEY_ID' in message
    assert 'AWS_SECRET_ACCESS_KEY' in message


def test_missing_only_secret(tmp_path):
    environ = {'EC2_URL': 'http://x/', 'EC2_ACCESS_KEY': 'k', 'HOME': str(tmp_path)}
    with pytest.raises(CredentialsError) as caught:
        load_credentials(opts(), environ=environ)
    assert 'secret key' in str(caught.value)
    assert 'EC2_URL' not in str(caught.value)


def test_empty_variables_count_as_unset(tmp_path):
    environ = dict(ENV, AWS_ACCESS_KEY_ID='', EC2_ACCESS_KEY='fallback')
    creds = load_credentials(opts(), environ=environ, eucarc_path=str(tmp_path / 'none'))
    assert creds.access_key == 'fallback'


# --- verify ------------------------------------------------------------------

def creds_for(url, ca_cert):
    return Creds(ec2_url=url, s3_url=None, access_key='k', secret_key='s',
                 region='eucalyptus', ca_cert=ca_cert)


def test_verify_uses_cloud_cert_for_https():
    assert creds_for('https://clc:8773/', '/keys/cloud-cert.pem').verify() == '/keys/cloud-cert.pem'


def test_verify_is_explicit_true_without_cloud_cert():
    assert creds_for('https://clc:8773/', None).verify() is True


def test_verify_ignores_cert_for_http():
    assert creds_for('http://clc:8773/', '/keys/cloud-cert.pem').verify() is True


# --- other services' endpoints -------------------------------------------------

def test_service_url_replaces_the_path():
    assert service_url('http://h:8773/services/compute', 'euare') == 'http://h:8773/services/Euare'
    assert service_url('https://h:8773/services/Eucalyptus/?x=1', 'properties') == (
        'https://h:8773/services/Properties')
    assert service_url('http://h:8773', 'reporting') == 'http://h:8773/services/Reporting'


def test_service_urls_derived_from_ec2_url(tmp_path):
    creds = load_credentials(opts(), environ=ENV, eucarc_path=str(tmp_path / 'none'),
                             service='euare')
    assert creds.euare_url is None
    assert creds.url('euare') == 'http://env:8773/services/Euare'
    assert creds.url('properties') == 'http://env:8773/services/Properties'
    assert creds.url('reporting') == 'http://env:8773/services/Reporting'
    assert creds.url('ec2') == creds.url() == ENV['EC2_URL']


@pytest.mark.parametrize('variables, expected', [
    ({'EUARE_URL': 'http://a/services/Euare', 'AWS_IAM_URL': 'http://b/'}, 'http://a/services/Euare'),
    ({'AWS_IAM_URL': 'http://b/'}, 'http://b/'),
])
def test_euare_url_variables(tmp_path, variables, expected):
    creds = load_credentials(opts(), environ=dict(ENV, **variables),
                             eucarc_path=str(tmp_path / 'none'), service='euare')
    assert creds.url('euare') == expected


def test_properties_and_reporting_variables(tmp_path):
    environ = dict(ENV, EUCA_PROPERTIES_URL='http://p/', EUCA_REPORTING_URL='http://r/')
    creds = load_credentials(opts(), environ=environ, eucarc_path=str(tmp_path / 'none'))
    assert (creds.url('properties'), creds.url('reporting')) == ('http://p/', 'http://r/')


def test_url_option_sets_the_commands_own_service(tmp_path):
    environ = {'AWS_ACCESS_KEY_ID': 'k', 'AWS_SECRET_ACCESS_KEY': 's'}
    creds = load_credentials(opts(url='https://h:8773/services/Euare'), environ=environ,
                             eucarc_path=str(tmp_path / 'none'), service='euare')
    assert creds.ec2_url is None and creds.euare_url == 'https://h:8773/services/Euare'
    assert creds.url('ec2') == 'https://h:8773/services/compute'
    ec2_creds = load_credentials(opts(url='http://x/'), environ=environ,
                                 eucarc_path=str(tmp_path / 'none'))
    assert ec2_creds.ec2_url == 'http://x/' and ec2_creds.euare_url is None


def test_missing_euare_endpoint_names_its_variables(tmp_path):
    environ = {'AWS_ACCESS_KEY_ID': 'k', 'AWS_SECRET_ACCESS_KEY': 's', 'HOME': str(tmp_path)}
    with pytest.raises(CredentialsError) as caught:
        load_credentials(opts(), environ=environ, service='euare')
    assert 'EUARE_URL, AWS_IAM_URL, EC2_URL or -U' in str(caught.value)


def test_verify_per_service():
    creds = Creds(ec2_url='http://clc:8773/services/compute', s3_url=None, access_key='k',
                  secret_key='s', region='eucalyptus', ca_cert='/keys/cloud-cert.pem',
                  euare_url='https://clc:8773/services/Euare')
    assert creds.verify('ec2') is True
    assert creds.verify('euare') == '/keys/cloud-cert.pem'

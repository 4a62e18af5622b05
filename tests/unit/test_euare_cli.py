"""The euare-* commands: parsers, request builders, output, and whole commands
run in-process against botocore Stubbers of the ``euare`` model (no network).

The stubbers check every request against the euare service model, so a
request that names a member the model lacks (or misses a required one) fails.
"""

import datetime
import json
import os
import socket
import stat
import urllib.parse

import pytest
from botocore.stub import Stubber

from euca2ools import cli
from euca2ools.cli import CommandError
from euca2ools.credentials import parse_eucarc
from euca2ools.euare import accounts, euare_request, groups, policies, quotas, users
from eucacore import policy
from eucacore.awsapi import models

EC2_URL = 'http://clc.example:8773/services/compute'
EUARE_URL = 'http://clc.example:8773/services/Euare'
WHEN = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
POLICY = '{"Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}'


class Stubs:
    """Stands in for ``cli.make_client``: real clients of our models, stubbed."""

    def __init__(self):
        self.stubbers = {}
        self.clients = {}
        self.creds = None

    def __call__(self, service, creds):
        self.creds = creds
        return self.client(service)

    def client(self, service='euare'):
        if service not in self.clients:
            client = models.client(service, endpoint_url='http://stub.invalid/',
                                   access_key='AK', secret_key='SK')
            self.stubbers[service] = Stubber(client)
            self.stubbers[service].activate()
            self.clients[service] = client
        return self.clients[service]

    def expect(self, operation, response=None, params=None, service='euare'):
        self.client(service)
        self.stubbers[service].add_response(operation, response or {}, params)

    def fail(self, operation, code, message='', params=None, status=400):
        self.client()
        self.stubbers['euare'].add_client_error(operation, service_error_code=code,
                                                service_message=message,
                                                http_status_code=status, expected_params=params)

    def assert_done(self):
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()


@pytest.fixture
def stubs(monkeypatch, tmp_path):
    for name in ('EUCA_DEFAULT_REGION', 'AWS_DEFAULT_REGION', 'AWS_ACCESS_KEY', 'EC2_ACCESS_KEY',
                 'AWS_SECRET_KEY', 'EC2_SECRET_KEY', 'AWS_PROFILE', 'EUARE_URL', 'AWS_IAM_URL',
                 'EUCA_PROPERTIES_URL', 'EUCA_REPORTING_URL', 'S3_URL', 'EUCALYPTUS_CERT'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('EC2_URL', EC2_URL)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIEUCAEXAMPLE0001')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'secret')
    fake = Stubs()
    monkeypatch.setattr(cli, 'make_client', fake)
    yield fake
    fake.assert_done()


def user(name, path='/'):
    return {'Path': path, 'UserName': name, 'UserId': f'AIDA{name.upper():0>16}',
            'Arn': f'arn:aws:iam::123456789012:user{path}{name}', 'CreateDate': WHEN}


def group(name, path='/'):
    return {'Path': path, 'GroupName': name, 'GroupId': f'AGPA{name.upper():0>16}',
            'Arn': f'arn:aws:iam::123456789012:group{path}{name}', 'CreateDate': WHEN}


def access_key(user_name, key_id='AKIANEWKEY00000001', secret='newsecret'):
    return {'AccessKey': {'UserName': user_name, 'AccessKeyId': key_id, 'Status': 'Active',
                          'SecretAccessKey': secret}}


PARSERS = [accounts.account_create_parser, accounts.account_list_parser,
           accounts.account_del_parser, quotas.account_set_quota_parser,
           quotas.account_list_quotas_parser, users.user_create_parser,
           users.user_list_by_path_parser, users.user_get_attributes_parser,
           users.user_del_parser, users.user_add_key_parser, users.user_list_keys_parser,
           users.user_mod_key_parser, users.user_del_key_parser,
           users.user_add_login_profile_parser, users.user_del_login_profile_parser,
           users.user_list_groups_parser, groups.group_create_parser,
           groups.group_list_by_path_parser, groups.group_del_parser,
           groups.group_add_user_parser, groups.group_remove_user_parser,
           groups.group_list_users_parser]
POLICY_PARSERS = [(make, owner) for make in (
    policies.upload_policy_parser, policies.list_policies_parser, policies.get_policy_parser,
    policies.delete_policy_parser) for owner in (policies.USER, policies.GROUP, policies.ACCOUNT)]


# --- parsers and common options ------------------------------------------------

@pytest.mark.parametrize('make_parser', PARSERS + [
    lambda make=make, owner=owner: make(owner) for make, owner in POLICY_PARSERS])
def test_help_lists_common_options(make_parser, capsys):
    with pytest.raises(SystemExit) as caught:
        make_parser().parse_args(['--help'])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert make_parser().prog.startswith('euare-')
    for option in ('-U URL', '-I KEY_ID', '-S KEY', '--region', '--debug',
                   '--as-account ACCOUNT', '$EUARE_URL'):
        assert option in text


def test_policy_command_names():
    assert policies.upload_policy_parser(policies.USER).prog == 'euare-useruploadpolicy'
    assert policies.list_policies_parser(policies.GROUP).prog == 'euare-grouplistpolicies'
    assert policies.get_policy_parser(policies.ACCOUNT).prog == 'euare-accountgetpolicy'
    assert policies.delete_policy_parser(policies.ACCOUNT).prog == 'euare-accountdelpolicy'


def test_euare_request_drops_unset_fields_and_adds_delegate():
    args = users.user_create_parser().parse_args(['-u', 'alice', '--as-account', 'dev'])
    assert users.user_create_request(args) == {'UserName': 'alice', 'DelegateAccount': 'dev'}
    args = users.user_create_parser().parse_args(['-u', 'alice', '-p', '/eng/'])
    assert users.user_create_request(args) == {'UserName': 'alice', 'Path': '/eng/'}
    assert euare_request(args, Marker=None) == {}


def test_policy_document_options_are_exclusive_and_required(capsys):
    parser = policies.upload_policy_parser(policies.USER)
    with pytest.raises(SystemExit):
        parser.parse_args(['-u', 'a', '-p', 'p'])
    with pytest.raises(SystemExit):
        parser.parse_args(['-u', 'a', '-p', 'p', '-o', '{}', '-f', 'x'])


def test_request_builders():
    args = accounts.account_del_parser().parse_args(['-a', 'dev', '-r'])
    assert accounts.account_del_request(args) == {'AccountName': 'dev', 'Recursive': True}
    args = accounts.account_del_parser().parse_args(['-a', 'dev'])
    assert accounts.account_del_request(args) == {'AccountName': 'dev'}
    args = users.user_mod_key_parser().parse_args(['-k', 'AKIAKEY00000000001', '-s', 'Inactive'])
    assert users.user_mod_key_request(args) == {'AccessKeyId': 'AKIAKEY00000000001', 'Status': 'Inactive'}
    with pytest.raises(SystemExit):
        users.user_mod_key_parser().parse_args(['-k', 'AKIAKEY00000000001', '-s', 'Gone'])
    args = policies.upload_policy_parser(policies.GROUP).parse_args(
        ['-g', 'eng', '-p', 'all', '-o', POLICY, '--as-account', 'dev'])
    assert policies.upload_policy_request(policies.GROUP, args) == {
        'GroupName': 'eng', 'PolicyName': 'all', 'PolicyDocument': POLICY,
        'DelegateAccount': 'dev'}
    args = groups.group_create_parser().parse_args(['-g', 'eng', '-p', '/x/'])
    assert groups.group_create_request(args) == {'GroupName': 'eng', 'Path': '/x/'}


# --- accounts ------------------------------------------------------------------

def test_account_create(stubs, capsys):
    stubs.expect('create_account', {'Account': {'AccountName': 'dev', 'AccountId': '000000000042'}},
                 {'AccountName': 'dev'})
    assert accounts.account_create(['-a', 'dev']) == 0
    assert capsys.readouterr().out == 'dev\t000000000042\n'
    assert stubs.creds.url('euare') == EUARE_URL


def test_account_create_with_key(stubs, capsys):
    stubs.expect('create_account', {'Account': {'AccountName': 'dev', 'AccountId': '000000000042'}},
                 {'AccountName': 'dev'})
    stubs.expect('create_access_key', access_key('admin'),
                 {'UserName': 'admin', 'DelegateAccount': 'dev'})
    assert accounts.account_create(['-a', 'dev', '-k']) == 0
    assert capsys.readouterr().out == 'dev\t000000000042\nAKIANEWKEY00000001\tnewsecret\n'


def test_account_create_writes_credentials_dir(stubs, capsys, tmp_path, monkeypatch):
    cert = tmp_path / 'caller-cert.pem'
    cert.write_text('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
    monkeypatch.setenv('EUCALYPTUS_CERT', str(cert))
    monkeypatch.setenv('S3_URL', 'http://walrus.example:8776/')
    stubs.expect('create_account', {'Account': {'AccountName': 'dev', 'AccountId': '000000000042'}},
                 {'AccountName': 'dev'})
    stubs.expect('create_access_key', access_key('admin'),
                 {'UserName': 'admin', 'DelegateAccount': 'dev'})
    target = tmp_path / 'creds' / 'dev'
    assert accounts.account_create(['-a', 'dev', '-d', str(target)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == 'dev\t000000000042'
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert sorted(os.listdir(target)) == ['cloud-cert.pem', 'euca2ools.ini', 'eucarc', 'iamrc']
    values = parse_eucarc(str(target / 'eucarc'), environ={})
    assert values['EC2_URL'] == EC2_URL
    assert values['S3_URL'] == 'http://walrus.example:8776/'
    assert values['EUARE_URL'] == values['AWS_IAM_URL'] == EUARE_URL
    assert values['AWS_ACCESS_KEY_ID'] == 'AKIANEWKEY00000001'
    assert values['EC2_ACCOUNT_NUMBER'] == '000000000042'
    assert (target / 'cloud-cert.pem').read_bytes() == cert.read_bytes()
    assert '[user dev-admin]' in (target / 'euca2ools.ini').read_text()


def test_account_list(stubs, capsys):
    stubs.expect('list_accounts', {'Accounts': [
        {'AccountName': 'eucalyptus', 'AccountId': '000000000001'},
        {'AccountName': 'dev', 'AccountId': '000000000042'}]}, {})
    assert accounts.account_list([]) == 0
    assert capsys.readouterr().out == 'eucalyptus\t000000000001\ndev\t000000000042\n'


def test_account_del_recursive(stubs, capsys):
    stubs.expect('delete_account', {}, {'AccountName': 'dev', 'Recursive': True})
    assert accounts.account_del(['-a', 'dev', '-r']) == 0
    assert capsys.readouterr().out == ''


# --- policies ------------------------------------------------------------------

@pytest.mark.parametrize('owner, option, name', [
    (policies.USER, '-u', 'alice'), (policies.GROUP, '-g', 'eng'),
    (policies.ACCOUNT, '-a', 'dev')])
def test_policy_commands_for_each_owner(stubs, capsys, tmp_path, owner, option, name):
    owned = {owner.param: name}
    stubs.expect(f'put_{owner.kind}_policy', {},
                 dict(owned, PolicyName='p1', PolicyDocument=POLICY))
    assert policies.upload_policy(owner, [option, name, '-p', 'p1', '-o', POLICY]) == 0
    policy_file = tmp_path / 'policy.json'
    policy_file.write_text(POLICY)
    stubs.expect(f'put_{owner.kind}_policy', {},
                 dict(owned, PolicyName='p2', PolicyDocument=POLICY, DelegateAccount='dev'))
    assert policies.upload_policy(owner, [option, name, '-p', 'p2', '-f', str(policy_file),
                                          '--as-account', 'dev']) == 0
    stubs.expect(f'list_{owner.kind}_policies', {'PolicyNames': ['p1', 'p2']}, owned)
    assert policies.list_policies(owner, [option, name]) == 0
    stubs.expect(f'get_{owner.kind}_policy',
                 dict(owned, PolicyName='p1', PolicyDocument=urllib.parse.quote(POLICY)),
                 dict(owned, PolicyName='p1'))
    assert policies.get_policy(owner, [option, name, '-p', 'p1']) == 0
    stubs.expect(f'delete_{owner.kind}_policy', {}, dict(owned, PolicyName='p1'))
    assert policies.delete_policy(owner, [option, name, '-p', 'p1']) == 0
    assert capsys.readouterr().out == f'p1\np2\n{POLICY}\n'


def test_get_policy_pretty_print(stubs, capsys):
    stubs.expect('get_user_policy', {'UserName': 'alice', 'PolicyName': 'p',
                                     'PolicyDocument': urllib.parse.quote(POLICY)})
    assert policies.user_get_policy(['-u', 'alice', '-p', 'p', '--pretty-print']) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(POLICY)


def test_missing_policy_file_is_one_line(stubs, capsys, tmp_path):
    assert policies.user_upload_policy(['-u', 'a', '-p', 'p', '-f', str(tmp_path / 'no')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('euare-useruploadpolicy: error: ') and err.count('\n') == 1


# --- quotas --------------------------------------------------------------------

def test_parse_quota_setting():
    assert quotas.parse_quota_setting('instances=5') == ('instances', '5')
    for bad in ('instances', '=5', 'instances='):
        with pytest.raises(Exception):
            quotas.parse_quota_setting(bad)


def test_quota_updates():
    assert quotas.quota_updates([('instances', '5'), ('cores', 'unlimited'),
                                 ('memory', '-1'), ('instances', '6')]) == {
        'instances': 6, 'cores': None, 'memory': None}
    with pytest.raises(CommandError) as caught:
        quotas.quota_updates([('vms', '5')])
    assert "unknown quota 'vms'" in str(caught.value)
    assert ', '.join(policy.QUOTAS) in str(caught.value)
    with pytest.raises(CommandError):
        quotas.quota_updates([('cores', 'many')])
    with pytest.raises(CommandError):
        quotas.quota_updates([('cores', '-2')])


def test_merge_quotas():
    current = {'volumes': 3, 'instances': 5, 'cores': 8}
    assert quotas.merge_quotas(current, {'cores': None, 'memory': 4096, 'instances': 2}) == {
        'instances': 2, 'memory': 4096, 'volumes': 3}
    assert list(quotas.merge_quotas({}, {'buckets': 1, 'instances': 1})) == ['instances',
                                                                            'buckets']
    assert quotas.merge_quotas({'cores': 1}, {'cores': None, 'volumes': None}) == {}


def test_current_quotas_reads_the_policy_back():
    document = policy.quota_policy({'instances': 5, 'volume-gib': 100})
    assert quotas.current_quotas(None) == {}
    assert quotas.current_quotas(document) == {'instances': 5, 'volume-gib': 100}
    assert quotas.current_quotas(urllib.parse.quote(document)) == {'instances': 5,
                                                                   'volume-gib': 100}
    with pytest.raises(CommandError):
        quotas.current_quotas('{"Statement": 1}')


def test_set_quota_merges_with_the_existing_policy(stubs):
    stubs.expect('get_account_policy', {
        'AccountName': 'dev', 'PolicyName': 'quota',
        'PolicyDocument': urllib.parse.quote(policy.quota_policy({'instances': 5, 'cores': 8}))},
        {'AccountName': 'dev', 'PolicyName': 'quota'})
    stubs.expect('put_account_policy', {}, {
        'AccountName': 'dev', 'PolicyName': 'quota',
        'PolicyDocument': policy.quota_policy({'instances': 10, 'volumes': 2})})
    assert quotas.account_set_quota(['-a', 'dev', '-q', 'instances=10', '-q', 'cores=unlimited',
                                     '-q', 'volumes=2']) == 0


def test_set_quota_without_a_policy(stubs):
    stubs.fail('get_account_policy', 'NoSuchEntity', 'no policy quota', status=404)
    stubs.expect('put_account_policy', {}, {
        'AccountName': 'dev', 'PolicyName': 'quota',
        'PolicyDocument': policy.quota_policy({'cores': 4}), 'DelegateAccount': 'x'})
    assert quotas.account_set_quota(['-a', 'dev', '-q', 'cores=4', '--as-account', 'x']) == 0


def test_removing_the_last_quota_deletes_the_policy(stubs):
    stubs.expect('get_account_policy', {'AccountName': 'dev', 'PolicyName': 'quota',
                                        'PolicyDocument': policy.quota_policy({'cores': 8})})
    stubs.expect('delete_account_policy', {}, {'AccountName': 'dev', 'PolicyName': 'quota'})
    assert quotas.account_set_quota(['-a', 'dev', '-q', 'cores=-1']) == 0


def test_unknown_quota_is_one_line_and_calls_nothing(stubs, capsys):
    assert quotas.account_set_quota(['-a', 'dev', '-q', 'vcpus=4']) == 1
    err = capsys.readouterr().err
    assert err == ("euare-accountsetquota: error: unknown quota 'vcpus'; valid quotas: "
                   f"{', '.join(policy.QUOTAS)}\n")


def test_set_quota_other_errors_propagate(stubs, capsys):
    stubs.fail('get_account_policy', 'AccessDenied', 'not the cloud admin', status=403)
    assert quotas.account_set_quota(['-a', 'dev', '-q', 'cores=4']) == 1
    assert capsys.readouterr().err == (
        'euare-accountsetquota: error (AccessDenied): not the cloud admin\n')


def test_list_quotas(stubs, capsys):
    stubs.expect('list_account_quotas', {'Quotas': [
        {'AccountName': 'dev', 'AccountId': '42', 'Name': 'instances',
         'Key': 'ec2:quota-vminstancenumber', 'Limit': 5, 'Used': 0},
        {'AccountName': 'dev', 'AccountId': '42', 'Name': 'cores',
         'Key': 'ec2:quota-cputotalsize', 'Limit': -1, 'Used': 3}]}, {'AccountName': 'dev'})
    assert quotas.account_list_quotas(['-a', 'dev']) == 0
    assert capsys.readouterr().out == ('QUOTA\tdev\tinstances\t0\t5\n'
                                       'QUOTA\tdev\tcores\t3\tunlimited\n')


def test_list_quotas_of_all_accounts_sends_no_name(stubs, capsys):
    stubs.expect('list_account_quotas', {'Quotas': []}, {})
    assert quotas.account_list_quotas([]) == 0


# --- users ---------------------------------------------------------------------

def test_user_create_with_group_key_and_verbose(stubs, capsys):
    stubs.expect('create_user', {'User': user('alice', '/eng/')},
                 {'UserName': 'alice', 'Path': '/eng/'})
    stubs.expect('add_user_to_group', {}, {'GroupName': 'eng', 'UserName': 'alice'})
    stubs.expect('create_access_key', access_key('alice'), {'UserName': 'alice'})
    assert users.user_create(['-u', 'alice', '-p', '/eng/', '-g', 'eng', '-k', '-v']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'arn:aws:iam::123456789012:user/eng/alice', 'AIDA00000000000ALICE', 'AKIANEWKEY00000001\tnewsecret']


def test_user_create_quiet(stubs, capsys):
    stubs.expect('create_user', {'User': user('bob')}, {'UserName': 'bob'})
    assert users.user_create(['-u', 'bob']) == 0
    assert capsys.readouterr().out == ''


def test_user_list_by_path_follows_markers(stubs, capsys):
    stubs.expect('list_users', {'Users': [user('a')], 'IsTruncated': True, 'Marker': 'm1'},
                 {'PathPrefix': '/'})
    stubs.expect('list_users', {'Users': [user('b')], 'IsTruncated': False},
                 {'PathPrefix': '/', 'Marker': 'm1'})
    assert users.user_list_by_path(['-p', '/']) == 0
    assert capsys.readouterr().out == ('arn:aws:iam::123456789012:user/a\n'
                                       'arn:aws:iam::123456789012:user/b\n')


def test_user_get_attributes(stubs, capsys):
    stubs.expect('get_user', {'User': user('alice')}, {'UserName': 'alice'})
    assert users.user_get_attributes(['-u', 'alice']) == 0
    assert capsys.readouterr().out == 'arn:aws:iam::123456789012:user/alice\nAIDA00000000000ALICE\n'


def _expect_user_resources(stubs, login_profile=True):
    stubs.expect('list_access_keys', {'AccessKeyMetadata': [
        {'UserName': 'alice', 'AccessKeyId': 'AKIAKEY00000000001', 'Status': 'Active'}]}, {'UserName': 'alice'})
    stubs.expect('list_user_policies', {'PolicyNames': ['p1']}, {'UserName': 'alice'})
    stubs.expect('list_groups_for_user', {'Groups': [group('eng')]}, {'UserName': 'alice'})
    if login_profile:
        stubs.expect('get_login_profile', {'LoginProfile': {'UserName': 'alice',
                                                            'CreateDate': WHEN}},
                     {'UserName': 'alice'})
    else:
        stubs.fail('get_login_profile', 'NoSuchEntity', status=404)


def test_user_del_recursive(stubs, capsys):
    _expect_user_resources(stubs)
    stubs.expect('delete_access_key', {}, {'UserName': 'alice', 'AccessKeyId': 'AKIAKEY00000000001'})
    stubs.expect('delete_user_policy', {}, {'UserName': 'alice', 'PolicyName': 'p1'})
    stubs.expect('delete_login_profile', {}, {'UserName': 'alice'})
    stubs.expect('remove_user_from_group', {}, {'UserName': 'alice', 'GroupName': 'eng'})
    stubs.expect('delete_user', {}, {'UserName': 'alice'})
    assert users.user_del(['-u', 'alice', '-r']) == 0
    assert capsys.readouterr().out == ''


def test_user_del_pretend_lists_without_deleting(stubs, capsys):
    _expect_user_resources(stubs, login_profile=False)
    assert users.user_del(['-u', 'alice', '-P']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'accesskeys', '\tAKIAKEY00000000001', 'policies', '\tp1', 'groups', '\teng']


def test_user_del_plain(stubs):
    stubs.expect('delete_user', {}, {'UserName': 'alice', 'DelegateAccount': 'dev'})
    assert users.user_del(['-u', 'alice', '--as-account', 'dev']) == 0


def test_user_keys(stubs, capsys):
    stubs.expect('create_access_key', access_key('alice'), {'UserName': 'alice'})
    assert users.user_add_key(['-u', 'alice']) == 0
    stubs.expect('list_access_keys', {'AccessKeyMetadata': [
        {'UserName': 'alice', 'AccessKeyId': 'AKIAKEY00000000001', 'Status': 'Active'},
        {'UserName': 'alice', 'AccessKeyId': 'AKIAKEY00000000002', 'Status': 'Inactive'}]}, {})
    assert users.user_list_keys([]) == 0
    stubs.expect('update_access_key', {}, {'UserName': 'alice', 'AccessKeyId': 'AKIAKEY00000000002',
                                           'Status': 'Active'})
    assert users.user_mod_key(['-u', 'alice', '-k', 'AKIAKEY00000000002', '-s', 'Active']) == 0
    stubs.expect('delete_access_key', {}, {'AccessKeyId': 'AKIAKEY00000000001'})
    assert users.user_del_key(['-k', 'AKIAKEY00000000001']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'AKIANEWKEY00000001\tnewsecret', 'AKIAKEY00000000001', 'Active', 'AKIAKEY00000000002', 'Inactive']


def test_user_login_profile_and_groups(stubs, capsys):
    stubs.expect('create_login_profile', {'LoginProfile': {'UserName': 'alice',
                                                           'CreateDate': WHEN}},
                 {'UserName': 'alice', 'Password': 's3cret!'})
    assert users.user_add_login_profile(['-u', 'alice', '-p', 's3cret!']) == 0
    stubs.expect('delete_login_profile', {}, {'UserName': 'alice'})
    assert users.user_del_login_profile(['-u', 'alice']) == 0
    stubs.expect('list_groups_for_user', {'Groups': [group('eng'), group('ops', '/x/')]},
                 {'UserName': 'alice'})
    assert users.user_list_groups(['-u', 'alice']) == 0
    assert capsys.readouterr().out == ('arn:aws:iam::123456789012:group/eng\n'
                                       'arn:aws:iam::123456789012:group/x/ops\n')


# --- groups --------------------------------------------------------------------

def test_group_create_and_list(stubs, capsys):
    stubs.expect('create_group', {'Group': group('eng')}, {'GroupName': 'eng'})
    assert groups.group_create(['-g', 'eng', '-v']) == 0
    stubs.expect('list_groups', {'Groups': [group('eng'), group('ops')]}, {})
    assert groups.group_list_by_path([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        'arn:aws:iam::123456789012:group/eng', 'AGPA0000000000000ENG', 'groups',
        '\tarn:aws:iam::123456789012:group/eng', '\tarn:aws:iam::123456789012:group/ops']


def test_group_members(stubs, capsys):
    stubs.expect('add_user_to_group', {}, {'GroupName': 'eng', 'UserName': 'alice'})
    assert groups.group_add_user(['-g', 'eng', '-u', 'alice']) == 0
    stubs.expect('remove_user_from_group', {}, {'GroupName': 'eng', 'UserName': 'bob'})
    assert groups.group_remove_user(['-g', 'eng', '-u', 'bob']) == 0
    stubs.expect('get_group', {'Group': group('eng'), 'Users': [user('alice')],
                               'IsTruncated': True, 'Marker': 'm'}, {'GroupName': 'eng'})
    stubs.expect('get_group', {'Group': group('eng'), 'Users': [user('carol')]},
                 {'GroupName': 'eng', 'Marker': 'm'})
    assert groups.group_list_users(['-g', 'eng']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'arn:aws:iam::123456789012:group/eng', 'users',
        '\tarn:aws:iam::123456789012:user/alice', '\tarn:aws:iam::123456789012:user/carol']


def test_group_del_recursive(stubs):
    stubs.expect('get_group', {'Group': group('eng'), 'Users': [user('alice')]},
                 {'GroupName': 'eng'})
    stubs.expect('list_group_policies', {'PolicyNames': ['p1']}, {'GroupName': 'eng'})
    stubs.expect('remove_user_from_group', {}, {'GroupName': 'eng', 'UserName': 'alice'})
    stubs.expect('delete_group_policy', {}, {'GroupName': 'eng', 'PolicyName': 'p1'})
    stubs.expect('delete_group', {}, {'GroupName': 'eng'})
    assert groups.group_del(['-g', 'eng', '-r']) == 0


def test_group_del_pretend(stubs, capsys):
    stubs.expect('get_group', {'Group': group('eng'), 'Users': [user('alice')]},
                 {'GroupName': 'eng'})
    stubs.expect('list_group_policies', {'PolicyNames': ['p1']}, {'GroupName': 'eng'})
    assert groups.group_del(['-g', 'eng', '-P']) == 0
    assert capsys.readouterr().out.splitlines() == ['users', '\talice', 'policies', '\tp1']


# --- errors and endpoints ------------------------------------------------------

def test_client_error_is_one_line(stubs, capsys):
    stubs.fail('delete_user', 'DeleteConflict', 'The user alice has access keys.', status=409)
    assert users.user_del(['-u', 'alice']) == 1
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err == ('euare-userdel: error (DeleteConflict): '
                            'The user alice has access keys.\n')


def test_debug_adds_traceback(stubs, capsys):
    stubs.fail('delete_user', 'NoSuchEntity', 'no user alice', status=404)
    assert users.user_del(['-u', 'alice', '--debug']) == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err
    assert err.rstrip().endswith('euare-userdel: error (NoSuchEntity): no user alice')


def test_euare_client_endpoint_and_url_option(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    for name in ('EC2_URL', 'EUARE_URL', 'AWS_IAM_URL'):
        monkeypatch.delenv(name, raising=False)
    args = accounts.account_list_parser().parse_args(
        ['-U', 'https://clc:8773/services/Euare', '-I', 'AK', '-S', 'SK'])
    creds = cli.load_credentials(args, service='euare')
    client = cli.make_client('euare', creds)
    assert client.meta.endpoint_url == 'https://clc:8773/services/Euare'
    assert client.meta.region_name == 'eucalyptus'
    monkeypatch.setenv('EC2_URL', EC2_URL)
    args = accounts.account_list_parser().parse_args(['-I', 'AK', '-S', 'SK'])
    client = cli.make_client('euare', cli.load_credentials(args, service='euare'))
    assert client.meta.endpoint_url == EUARE_URL


def test_connection_refused_names_euare_url(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.delenv('AWS_PROFILE', raising=False)
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    url = f'http://127.0.0.1:{port}/services/Euare'
    assert accounts.account_list(['-U', url, '-I', 'AK', '-S', 'SK']) == 1
    assert capsys.readouterr().err == (
        f'euare-accountlist: error: cannot reach EUARE_URL {url}: Connection refused\n')

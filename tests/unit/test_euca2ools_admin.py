"""euca-describe-properties, euca-modify-property and eureport-generate-report:
parsers, request builders, output, and the commands against stubbed clients."""

import argparse
import datetime

import pytest
from botocore.stub import Stubber

from euca2ools import admin, cli
from euca2ools.cli import CommandError
from eucacore.awsapi import models

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 31, 12, 0, tzinfo=UTC)


@pytest.fixture
def stub(monkeypatch, tmp_path):
    """stub(service) -> a Stubber whose client the next command gets."""
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('EC2_URL', 'http://clc:8773/services/compute')
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AK')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'SK')
    for name in ('EUCA_PROPERTIES_URL', 'EUCA_REPORTING_URL', 'AWS_PROFILE'):
        monkeypatch.delenv(name, raising=False)
    stubbers, seen = {}, {}

    def make_client(service, creds):
        seen[service] = creds.url(service)
        return stubbers[service].client

    def stub_for(service):
        client = models.client(service, endpoint_url='http://stub.invalid/',
                               access_key='AK', secret_key='SK')
        stubbers[service] = Stubber(client)
        stubbers[service].activate()
        return stubbers[service]
    monkeypatch.setattr(cli, 'make_client', make_client)
    stub_for.seen = seen
    yield stub_for
    for stubber in stubbers.values():
        stubber.assert_no_pending_responses()


# --- properties ----------------------------------------------------------------

def test_describe_properties_request():
    parser = admin.describe_properties_parser()
    assert admin.describe_properties_request(parser.parse_args([])) == {}
    assert admin.describe_properties_request(parser.parse_args(['a.b', 'c'])) == {
        'Properties': ['a.b', 'c']}


def test_format_properties():
    response = {'Properties': [
        {'Name': 'cloud.vmstate.terminated_time', 'Value': '60', 'Description': 'minutes'},
        {'Name': 'walrus.storagedir', 'Value': ''}]}
    assert admin.format_properties(response) == [
        'PROPERTY\tcloud.vmstate.terminated_time\t60', 'PROPERTY\twalrus.storagedir\t']
    assert admin.format_properties(response, verbose=True, empty='(nil)') == [
        'PROPERTY\tcloud.vmstate.terminated_time\t60',
        'DESCRIPTION\tcloud.vmstate.terminated_time\tminutes',
        'PROPERTY\twalrus.storagedir\t(nil)', 'DESCRIPTION\twalrus.storagedir\t(nil)']


def test_parse_assignment():
    assert admin.parse_assignment('a.b=c=d') == ('a.b', 'c=d')
    assert admin.parse_assignment('a.b=') == ('a.b', '')
    for bad in ('a.b', '=x'):
        with pytest.raises(argparse.ArgumentTypeError):
            admin.parse_assignment(bad)


def test_modify_property_requests():
    parser = admin.modify_property_parser()
    assert admin.modify_property_request(parser.parse_args(['-p', 'a.b=5'])) == {
        'Name': 'a.b', 'Value': '5'}
    assert admin.modify_property_request(parser.parse_args(['-r', 'a.b'])) == {
        'Name': 'a.b', 'Reset': True}
    args = parser.parse_args(['-f', 'a.b=/tmp/v'])
    assert admin.modify_property_request(args, 'text') == {'Name': 'a.b', 'Value': 'text'}
    for bad in ([], ['-p', 'a=1', '-r', 'a']):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_format_property_change():
    assert admin.format_property_change({'Name': 'a.b', 'Value': '5', 'OldValue': '3'}) == [
        'PROPERTY\ta.b\t5 was 3']


def test_describe_properties_command(stub, capsys):
    stub('properties').add_response(
        'describe_properties', {'Properties': [{'Name': 'a.b', 'Value': '1'}]},
        {'Properties': ['a.b']})
    assert admin.describe_properties(['a.b']) == 0
    assert capsys.readouterr().out == 'PROPERTY\ta.b\t1\n'
    assert stub.seen['properties'] == 'http://clc:8773/services/Properties'


def test_modify_property_command(stub, capsys, tmp_path):
    properties = stub('properties')
    properties.add_response('modify_property_value',
                            {'Name': 'a.b', 'Value': '5', 'OldValue': '3'},
                            {'Name': 'a.b', 'Value': '5'})
    value_file = tmp_path / 'value'
    value_file.write_text('multi\nline')
    properties.add_response('modify_property_value',
                            {'Name': 'a.c', 'Value': 'multi\nline', 'OldValue': ''},
                            {'Name': 'a.c', 'Value': 'multi\nline'})
    properties.add_response('modify_property_value',
                            {'Name': 'a.b', 'Value': '1', 'OldValue': '5'},
                            {'Name': 'a.b', 'Reset': True})
    assert admin.modify_property(['-p', 'a.b=5']) == 0
    assert admin.modify_property(['-f', f'a.c={value_file}']) == 0
    assert admin.modify_property(['-r', 'a.b']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'PROPERTY\ta.b\t5 was 3', 'PROPERTY\ta.c\tmulti', 'line was ', 'PROPERTY\ta.b\t1 was 5']


def test_modify_property_error_is_one_line(stub, capsys):
    stub('properties').add_client_error('modify_property_value', 'InvalidParameterValue',
                                        'no such property a.x')
    assert admin.modify_property(['-p', 'a.x=1']) == 1
    assert capsys.readouterr().err == (
        'euca-modify-property: error (InvalidParameterValue): no such property a.x\n')


# --- reports -------------------------------------------------------------------

@pytest.mark.parametrize('text, expected', [
    ('2024-05-01', datetime.datetime(2024, 5, 1, tzinfo=UTC)),
    ('2024-05-01T10:30:00Z', datetime.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    ('2024-05-01T10:30', datetime.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
    ('2024-05-01T12:30:00+02:00', datetime.datetime(2024, 5, 1, 10, 30, tzinfo=UTC)),
])
def test_parse_time(text, expected):
    assert admin.parse_time(text) == expected


def test_parse_time_rejects_nonsense():
    with pytest.raises(argparse.ArgumentTypeError):
        admin.parse_time('yesterday')


def test_report_request_defaults_to_the_last_day():
    args = admin.generate_report_parser().parse_args(['-t', 'instance'])
    assert admin.generate_report_request(args, NOW) == {
        'Type': 'instance', 'Format': 'csv', 'StartDate': NOW - datetime.timedelta(days=1),
        'EndDate': NOW}


def test_report_request_with_everything():
    args = admin.generate_report_parser().parse_args(
        ['-t', 's3', '-f', 'json', '-s', '2024-05-01', '-e', '2024-05-02T00:00:00Z',
         '-a', 'dev'])
    assert admin.generate_report_request(args, NOW) == {
        'Type': 's3', 'Format': 'json', 'StartDate': datetime.datetime(2024, 5, 1, tzinfo=UTC),
        'EndDate': datetime.datetime(2024, 5, 2, tzinfo=UTC), 'AccountName': 'dev'}
    args = admin.generate_report_parser().parse_args(['-t', 'volume', '-e', '2024-05-02'])
    assert admin.generate_report_request(args, NOW)['StartDate'] == datetime.datetime(
        2024, 5, 1, tzinfo=UTC)


def test_report_request_rejects_an_empty_period():
    args = admin.generate_report_parser().parse_args(
        ['-t', 'volume', '-s', '2024-05-02', '-e', '2024-05-01'])
    with pytest.raises(CommandError):
        admin.generate_report_request(args, NOW)


def test_report_type_is_checked():
    with pytest.raises(SystemExit):
        admin.generate_report_parser().parse_args(['-t', 'network'])


def test_report_lines():
    assert admin.report_lines({'Data': 'a,b\n1,2\n'}) == ['a,b\n1,2']
    assert admin.report_lines({'Data': ''}) == []
    assert admin.report_lines({}) == []


def test_generate_report_command(stub, capsys, tmp_path):
    reporting = stub('reporting')
    period = {'StartDate': datetime.datetime(2024, 5, 1, tzinfo=UTC),
              'EndDate': datetime.datetime(2024, 5, 2, tzinfo=UTC)}
    reporting.add_response('generate_report', {'Data': 'account,instances\ndev,3\n'},
                           dict(period, Type='instance', Format='csv'))
    assert admin.generate_report(['-t', 'instance', '-s', '2024-05-01', '-e', '2024-05-02']) == 0
    assert capsys.readouterr().out == 'account,instances\ndev,3\n'
    assert stub.seen['reporting'] == 'http://clc:8773/services/Reporting'
    reporting.add_response('generate_report', {'Data': '{"volumes": []}'},
                           dict(period, Type='volume', Format='json'))
    target = tmp_path / 'report.json'
    assert admin.generate_report(['-t', 'volume', '-f', 'json', '-s', '2024-05-01',
                                  '-e', '2024-05-02', '-F', str(target)]) == 0
    assert capsys.readouterr().out == ''
    assert target.read_text() == '{"volumes": []}'


def test_generate_report_empty_period_is_one_line(stub, capsys):
    stub('reporting')
    assert admin.generate_report(['-t', 'instance', '-s', '2024-05-02', '-e', '2024-05-01']) == 1
    err = capsys.readouterr().err
    assert err.startswith('eureport-generate-report: error: the start of the period')
    assert err.count('\n') == 1


@pytest.mark.parametrize('make_parser, variable', [
    (admin.describe_properties_parser, '$EUCA_PROPERTIES_URL'),
    (admin.modify_property_parser, '$EUCA_PROPERTIES_URL'),
    (admin.generate_report_parser, '$EUCA_REPORTING_URL')])
def test_help_names_the_service_url(make_parser, variable, capsys):
    with pytest.raises(SystemExit):
        make_parser().parse_args(['--help'])
    assert variable in capsys.readouterr().out

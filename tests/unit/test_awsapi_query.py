"""The query wire layer (IAM/Euare, properties, reporting) both ways against botocore.

botocore's QuerySerializer -> QueryProtocol.parse must give back the boto3 input;
QueryProtocol.serialize -> botocore's QueryParser must give back the output.
"""

import datetime

import botocore.model
import botocore.parsers
import botocore.serialize
import botocore.session
import pytest
from lxml import etree

from eucacore.awsapi import QueryProtocol
from eucacore.awsapi import models
from eucacore.awsapi.errors import AWSError

UTC = datetime.timezone.utc
T1 = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T2 = datetime.datetime(2023, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
IAM_NS = 'https://iam.amazonaws.com/doc/2010-05-08/'

# Names, lists and maps in every form botocore's query serializer knows.
SYNTHETIC = {
    'version': '2.0',
    'metadata': {'apiVersion': '2020-01-01', 'protocol': 'query', 'serviceId': 'Test',
                 'endpointPrefix': 'test', 'xmlNamespace': 'urn:test'},
    'operations': {'Put': {'name': 'Put', 'http': {'method': 'POST', 'requestUri': '/'},
                           'input': {'shape': 'Everything'},
                           'output': {'shape': 'Everything', 'resultWrapper': 'PutResult'}}},
    'shapes': {
        'String': {'type': 'string'},
        'Integer': {'type': 'integer'},
        'Strings': {'type': 'list', 'member': {'shape': 'String'}},
        'ItemStrings': {'type': 'list', 'member': {'shape': 'String', 'locationName': 'item'}},
        'FlatStrings': {'type': 'list', 'flattened': True, 'member': {'shape': 'String'}},
        'FlatThings': {'type': 'list', 'flattened': True,
                       'member': {'shape': 'String', 'locationName': 'Thing'}},
        'Attributes': {'type': 'map', 'key': {'shape': 'String'}, 'value': {'shape': 'Integer'}},
        'Labels': {'type': 'map', 'key': {'shape': 'String', 'locationName': 'Name'},
                   'value': {'shape': 'String', 'locationName': 'Text'}},
        'FlatMap': {'type': 'map', 'flattened': True, 'key': {'shape': 'String'},
                    'value': {'shape': 'String'}},
        'Inner': {'type': 'structure', 'members': {
            'Count': {'shape': 'Integer'}, 'When': {'shape': 'Timestamp'},
            'Data': {'shape': 'Blob'}, 'On': {'shape': 'Boolean'},
            'Ratio': {'shape': 'Double'}}},
        'Outer': {'type': 'structure', 'members': {'Inner': {'shape': 'Inner'},
                                                   'Items': {'shape': 'InnerList'}}},
        'InnerList': {'type': 'list', 'member': {'shape': 'Inner'}},
        'Timestamp': {'type': 'timestamp'},
        'Blob': {'type': 'blob'},
        'Boolean': {'type': 'boolean'},
        'Double': {'type': 'double'},
        'Everything': {'type': 'structure', 'required': ['Renamed'], 'members': {
            'Renamed': {'shape': 'String', 'locationName': 'OtherName'},
            'Plain': {'shape': 'Strings'}, 'Named': {'shape': 'ItemStrings'},
            'Flat': {'shape': 'FlatStrings'}, 'FlatNamed': {'shape': 'FlatThings'},
            'Attributes': {'shape': 'Attributes'}, 'Labels': {'shape': 'Labels'},
            'FlatMap': {'shape': 'FlatMap'}, 'Outer': {'shape': 'Outer'}}},
    },
}


@pytest.fixture(scope='module')
def iam():
    return QueryProtocol(botocore.session.get_session().get_service_model('iam'))


@pytest.fixture(scope='module')
def protocols(iam):
    named = {name: QueryProtocol(models.service_model(name))
             for name in ('euare', 'properties', 'reporting')}
    named['iam'] = iam
    named['synthetic'] = QueryProtocol(botocore.model.ServiceModel(SYNTHETIC, 'test'))
    return named


def botocore_params(protocol, operation, params):
    serializer = botocore.serialize.create_serializer('query', include_validation=True)
    request = serializer.serialize_to_request(
        params, protocol.service_model.operation_model(operation))
    # On the wire every value is text.
    return {name: str(value) for name, value in request['body'].items()}


def parse_error(protocol, params):
    with pytest.raises(AWSError) as info:
        protocol.parse(dict({'Action': 'CreateUser'}, **params))
    return info.value


# ---------------------------------------------------------------- requests

TAGS = [{'Key': 'team', 'Value': 'storage'}, {'Key': 'env', 'Value': ''}]
POLICY = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]}'
EVERYTHING = {
    'Renamed': 'r', 'Plain': ['a', 'b'], 'Named': ['c'], 'Flat': ['d', 'e'],
    'FlatNamed': ['f'], 'Attributes': {'x': 1, 'y': 2}, 'Labels': {'n': 't'},
    'FlatMap': {'k': 'v'},
    'Outer': {'Inner': {'Count': 3, 'When': T2, 'Data': b'\x00\xff', 'On': False,
                        'Ratio': 0.5},
              'Items': [{'Count': 1}, {'On': True}]}}

REQUESTS = [
    ('iam', 'CreateUser', {'UserName': 'alice', 'Path': '/eng/', 'Tags': TAGS}),
    ('iam', 'CreateUser', {'UserName': 'bob', 'Tags': []}),
    ('iam', 'PutUserPolicy', {'UserName': 'alice', 'PolicyName': 'all',
                              'PolicyDocument': POLICY}),
    ('iam', 'ListUsers', {'PathPrefix': '/eng/', 'MaxItems': 100, 'Marker': 'm-1'}),
    ('iam', 'ListUsers', {}),
    ('iam', 'UpdateAccessKey', {'AccessKeyId': 'AKIAEXAMPLE12345', 'Status': 'Inactive'}),
    ('iam', 'GetAccountSummary', {}),
    ('euare', 'CreateAccount', {'AccountName': 'engineering'}),
    ('euare', 'ListAccounts', {'DelegateAccount': 'eucalyptus'}),
    ('euare', 'CreateUser', {'UserName': 'carol', 'Tags': TAGS[:1],
                             'DelegateAccount': 'engineering'}),
    ('euare', 'PutAccountPolicy', {'AccountName': 'engineering', 'PolicyName': 'quota',
                                   'PolicyDocument': POLICY}),
    ('properties', 'ModifyPropertyValue', {'Name': 'walrus.storagedir', 'Value': '/var/lib',
                                           'Reset': False}),
    ('properties', 'DescribeProperties', {'Properties': ['a.b', 'c.d']}),
    ('reporting', 'GenerateReport', {'Type': 'instance', 'Format': 'csv', 'StartDate': T1,
                                     'EndDate': T2, 'AccountName': 'engineering'}),
    ('synthetic', 'Put', EVERYTHING),
]


@pytest.mark.parametrize('service,operation,params', REQUESTS,
                         ids=[f'{s}-{op}-{i}' for i, (s, op, _) in enumerate(REQUESTS)])
def test_botocore_request_parses_back(protocols, service, operation, params):
    protocol = protocols[service]
    wire = botocore_params(protocol, operation, params)
    wire.update({'AWSAccessKeyId': 'AKID', 'SignatureVersion': '2', 'Signature': 'x',
                 'SignatureMethod': 'HmacSHA256', 'Timestamp': '2024-01-01T00:00:00Z',
                 'X-Amz-Date': '20240101T000000Z', 'X-Amz-Signature': 'abc'})
    assert protocol.parse(wire) == (operation, params)


def test_botocore_wire_names_are_the_query_ones(protocols):
    # Guards the round trip above: each form of name really is on the wire.
    wire = botocore_params(protocols['synthetic'], 'Put', EVERYTHING)
    for name in ('OtherName', 'Plain.member.2', 'Named.item.1', 'Flat.2', 'Thing.1',
                 'Attributes.entry.2.value', 'Labels.entry.1.Name', 'Labels.entry.1.Text',
                 'FlatMap.1.key', 'Outer.Inner.When', 'Outer.Items.member.2.On'):
        assert name in wire
    assert botocore_params(protocols['iam'], 'CreateUser',
                           {'UserName': 'a', 'Tags': TAGS})['Tags.member.2.Key'] == 'env'


def test_list_items_follow_index_order(iam):
    _, parsed = iam.parse({'Action': 'CreateUser', 'UserName': 'a',
                           'Tags.member.10.Key': 'c', 'Tags.member.10.Value': '3',
                           'Tags.member.2.Key': 'b', 'Tags.member.2.Value': '2',
                           'Tags.member.1.Key': 'a', 'Tags.member.1.Value': '1'})
    assert [tag['Key'] for tag in parsed['Tags']] == ['a', 'b', 'c']


@pytest.mark.parametrize('params,code', [
    ({'Action': '', 'Version': '2010-05-08'}, 'MissingAction'),
    ({'Action': 'RunInstances'}, 'InvalidAction'),
    ({'Path': '/'}, 'MissingParameter'),
    ({'UserName': 'a', 'Bogus': '1'}, 'InvalidParameterValue'),
    ({'userName': 'a'}, 'InvalidParameterValue'),  # no ec2-style aliases
    ({'UserName': 'a', 'Tags.1.Key': 'k', 'Tags.1.Value': 'v'}, 'InvalidParameterValue'),
    ({'UserName': 'a', 'Tags.member.x.Key': 'k'}, 'InvalidParameterValue'),
    ({'UserName': 'a', 'Tags.member.1.Colour': 'k'}, 'InvalidParameterValue'),
    ({'UserName': 'a', 'Tags': 'team'}, 'InvalidParameterValue'),
    ({'UserName': 'a', 'UserName.member.1': 'b'}, 'InvalidParameterValue'),
    ({'UserName': ''}, 'ValidationError'),
    ({'UserName': 'x' * 65}, 'ValidationError'),
    ({'Action': 'ListUsers', 'MaxItems': 'ten'}, 'InvalidParameterValue'),
    ({'Action': 'ListUsers', 'MaxItems': '0'}, 'ValidationError'),
    ({'Action': 'ListUsers', 'MaxItems': '1001'}, 'ValidationError'),
    ({'Action': 'UpdateAccessKey', 'AccessKeyId': 'AKIAEXAMPLE12345', 'Status': 'Gone'},
     'ValidationError'),
])
def test_parse_errors(iam, params, code):
    error = parse_error(iam, params)
    assert (error.code, error.status) == (code, 400)


@pytest.mark.parametrize('service,params,code', [
    ('euare', {'Action': 'CreateAccount', 'AccountName': 'a' * 64}, 'ValidationError'),
    ('euare', {'Action': 'CreateAccount'}, 'MissingParameter'),
    ('properties', {'Action': 'ModifyPropertyValue', 'Name': 'a', 'Reset': 'maybe'},
     'InvalidParameterValue'),
    ('reporting', {'Action': 'GenerateReport', 'Type': 'instance',
                   'StartDate': 'yesterday-ish'}, 'InvalidParameterValue'),
    ('reporting', {'Action': 'CreateUser', 'UserName': 'a'}, 'InvalidAction'),
    ('synthetic', {'Action': 'Put', 'OtherName': 'r', 'Attributes.1.key': 'x',
                   'Attributes.1.value': '1'}, 'InvalidParameterValue'),
    ('synthetic', {'Action': 'Put', 'OtherName': 'r', 'Labels.entry.1.Name': 'x'},
     'InvalidParameterValue'),
    ('synthetic', {'Action': 'Put', 'OtherName': 'r', 'Flat.member.1': 'x'},
     'InvalidParameterValue'),
])
def test_parse_errors_of_other_models(protocols, service, params, code):
    with pytest.raises(AWSError) as info:
        protocols[service].parse(params)
    assert info.value.code == code


def test_error_messages_name_the_wire(iam, protocols):
    assert parse_error(iam, {'Action': 'Fly'}).message == \
        'The action Fly is not valid for this web service.'
    assert parse_error(iam, {}).message == 'The request must contain the parameter UserName'
    with pytest.raises(AWSError) as info:
        protocols['synthetic'].parse({'Action': 'Put'})
    assert info.value.message == 'The request must contain the parameter OtherName'
    assert parse_error(iam, {'UserName': 'a', 'Bogus': '1'}).message == \
        'The parameter Bogus is not recognized'


def test_validation_error_message_is_iams(iam):
    assert parse_error(iam, {'UserName': 'x' * 65}).message == (
        f"1 validation error detected: Value '{'x' * 65}' at 'userName' failed to "
        'satisfy constraint: Member must have length less than or equal to 64')
    assert parse_error(iam, {'Action': 'ListUsers', 'MaxItems': '0'}).message.endswith(
        "at 'maxItems' failed to satisfy constraint: "
        'Member must have value greater than or equal to 1')
    assert parse_error(iam, {'UserName': 'a', 'Tags.member.1.Key': '',
                             'Tags.member.1.Value': 'v'}).message.startswith(
        "1 validation error detected: Value '' at 'tags.member.1.key'")
    assert parse_error(iam, {'Action': 'UpdateAccessKey', 'AccessKeyId': 'AKIAEXAMPLE12345',
                             'Status': 'Gone'}).message.endswith(
        'Member must satisfy enum value set: [Active, Inactive, Expired]')


# ---------------------------------------------------------------- responses

USER = {'Path': '/', 'UserName': 'alice', 'UserId': 'AIDAALICE', 'Arn':
        'arn:aws:iam::123456789012:user/alice', 'CreateDate': T1, 'PasswordLastUsed': T2,
        'Tags': TAGS, 'PermissionsBoundary': {
            'PermissionsBoundaryType': 'Policy',
            'PermissionsBoundaryArn': 'arn:aws:iam::123456789012:policy/boundary'}}

RESPONSES = [
    ('iam', 'ListUsers', {'Users': [
        USER, dict(USER, UserName='bob', UserId='AIDABOB', CreateDate=T2, Tags=[]),
        {'Path': '/eng/', 'UserName': 'carol', 'UserId': 'AIDACAROL',
         'Arn': 'arn:aws:iam::123456789012:user/eng/carol', 'CreateDate': T1}],
        'IsTruncated': True, 'Marker': 'next-page'}),
    ('iam', 'ListUsers', {'Users': [], 'IsTruncated': False}),
    ('iam', 'CreateAccessKey', {'AccessKey': {
        'UserName': 'alice', 'AccessKeyId': 'AKIAEXAMPLE12345', 'Status': 'Active',
        'SecretAccessKey': 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'CreateDate': T2}}),
    ('iam', 'GetAccountSummary', {'SummaryMap': {'Users': 3, 'UsersQuota': 5000,
                                                 'AccountMFAEnabled': 0}}),
    ('euare', 'ListAccountQuotas', {'Quotas': [
        {'AccountName': 'eng', 'AccountId': '123456789012', 'Name': 'users',
         'Key': 'iam:quota-usernumber', 'Limit': 100, 'Used': 3},
        {'AccountName': 'eng', 'AccountId': '123456789012', 'Name': 'vms',
         'Key': 'ec2:quota-vminstancenumber', 'Limit': 10, 'Used': 0}]}),
    ('euare', 'CreateAccount', {'Account': {'AccountName': 'eng',
                                            'AccountId': '123456789012', 'CreateDate': T1}}),
    ('euare', 'ListAccounts', {'Accounts': [{'AccountName': 'eucalyptus',
                                             'AccountId': '000000000000'}]}),
    ('properties', 'DescribeProperties', {'Properties': [
        {'Name': 'walrus.storagedir', 'Value': '/var/lib/eucalyptus/bukkits',
         'DefaultValue': '/var/lib/eucalyptus/bukkits', 'Description': 'Where objects live'},
        {'Name': 'cloud.vmstate.terminated_time', 'Value': '60'}]}),
    ('reporting', 'GenerateReport', {'Data': 'account,instances\neng,3\n'}),
    ('synthetic', 'Put', EVERYTHING),
]


def botocore_parse(protocol, operation, body, status=200):
    parser = botocore.parsers.create_parser('query')
    shape = protocol.service_model.operation_model(operation).output_shape
    return parser.parse({'body': body, 'headers': {}, 'status_code': status}, shape)


@pytest.mark.parametrize('service,operation,output', RESPONSES,
                         ids=[f'{s}-{op}-{i}' for i, (s, op, _) in enumerate(RESPONSES)])
def test_serialized_response_parses_back(protocols, service, operation, output):
    protocol = protocols[service]
    body = protocol.serialize(operation, output, 'req-1234')
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    parsed = botocore_parse(protocol, operation, body)
    assert parsed.pop('ResponseMetadata')['RequestId'] == 'req-1234'
    assert parsed == output


def test_response_document_is_iams(iam):
    body = iam.serialize('ListUsers', {'Users': [{'UserName': 'a', 'CreateDate': T1,
                                                  'Unknown': 'ignored'}]}, 'req-1')
    text = body.decode()
    assert (f'<ListUsersResponse xmlns="{IAM_NS}"><ListUsersResult><Users><member>'
            '<UserName>a</UserName><CreateDate>2024-05-06T07:08:09.000Z</CreateDate>'
            '</member></Users></ListUsersResult>'
            '<ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>'
            '</ListUsersResponse>') in text
    assert 'Unknown' not in text and 'ignored' not in text


def test_operation_without_output_answers_only_metadata(iam):
    body = iam.serialize('PutUserPolicy', None, 'req-1')
    root = etree.fromstring(body)
    assert root.tag == f'{{{IAM_NS}}}PutUserPolicyResponse'
    assert [etree.QName(child).localname for child in root] == ['ResponseMetadata']
    parsed = botocore_parse(iam, 'PutUserPolicy', body)
    assert parsed.pop('ResponseMetadata')['RequestId'] == 'req-1'
    assert parsed == {}


@pytest.mark.parametrize('error,fault', [
    (AWSError('NoSuchEntity', 'The user with name alice cannot be found.', 404), 'Sender'),
    (AWSError('ValidationError', "1 validation error detected: Value '' at 'userName'"),
     'Sender'),
    (AWSError('ServiceFailure', 'An internal error has occurred', 500), 'Receiver'),
])
def test_error_document_parses_back(iam, error, fault):
    status, body = iam.serialize_error(error, 'req-err')
    assert status == error.status
    root = etree.fromstring(body)
    assert root.tag == f'{{{IAM_NS}}}ErrorResponse'
    assert root.findtext(f'{{{IAM_NS}}}Error/{{{IAM_NS}}}Type') == fault
    parsed = botocore_parse(iam, 'GetUser', body, status)
    assert parsed['Error']['Code'] == error.code
    assert parsed['Error']['Message'] == error.message
    assert parsed['ResponseMetadata']['RequestId'] == 'req-err'


def test_parse_error_renders_for_botocore(protocols):
    # The two halves together: a rejected request as the client sees it.
    protocol = protocols['euare']
    with pytest.raises(AWSError) as info:
        protocol.parse({'Action': 'CreateAccount', 'AccountName': ''})
    status, body = protocol.serialize_error(info.value, 'req-2')
    parsed = botocore_parse(protocol, 'CreateAccount', body, status)
    assert (status, parsed['Error']['Code']) == (400, 'ValidationError')
    assert "at 'accountName'" in parsed['Error']['Message']

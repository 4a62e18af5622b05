"""The S3 wire layer both ways against botocore itself.

botocore's RestXMLSerializer -> S3Protocol.parse must route to the same
operation and give back the boto3 input; S3Protocol.serialize -> botocore's
RestXMLParser must give back the output.  Normalization: x-amz-meta-* keys
arrive lower-case (tests use lower-case keys).
"""

import datetime
import io

import botocore.handlers
import botocore.parsers
import botocore.serialize
import pytest
from botocore.utils import percent_encode_sequence
from urllib3._collections import HTTPHeaderDict

from eucacore.awsapi.errors import AWSError
from eucacore.awsapi.s3 import S3Protocol

UTC = datetime.timezone.utc
T1 = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
T2 = datetime.datetime(2023, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
SERVICE_HOST = 'walrus.example.com:8773'
OWNER = {'ID': 'a1b2c3', 'DisplayName': 'admin'}


@pytest.fixture(scope='module')
def protocol():
    return S3Protocol()


def botocore_request(protocol, operation, params):
    """(method, raw path, query string, headers, body) as botocore sends them."""
    serializer = botocore.serialize.create_serializer('rest-xml', include_validation=True)
    request = serializer.serialize_to_request(
        params, protocol.service_model.operation_model(operation))
    path, _, literal = request['url_path'].partition('?')
    query = '&'.join(q for q in (literal, percent_encode_sequence(request['query_string'])) if q)
    return request['method'], path, query, dict(request['headers']), request['body']


BODY = b'hello, walrus'

REQUESTS = [
    ('CreateBucket', {'Bucket': 'photos', 'ACL': 'private',
                      'CreateBucketConfiguration': {'LocationConstraint': 'eucalyptus'}}),
    ('CreateBucket', {'Bucket': 'plain'}),
    ('PutObject', {'Bucket': 'photos', 'Key': 'dir/a b+c~ü.txt', 'Body': BODY,
                   'Metadata': {'color': 'blue', 'owner-name': 'x y'},
                   'ContentType': 'text/plain', 'ContentMD5': 'jXd/OF09/siBXSD3SWAm3A==',
                   'CacheControl': 'no-cache', 'ContentLength': len(BODY),
                   'ACL': 'public-read', 'StorageClass': 'STANDARD'}),
    ('GetObject', {'Bucket': 'photos', 'Key': 'a.jpg', 'Range': 'bytes=0-99',
                   'IfMatch': '"abc"', 'IfModifiedSince': T1,
                   'ResponseContentType': 'image/jpeg',
                   'ResponseContentDisposition': 'attachment; filename="a.jpg"',
                   'VersionId': 'v1'}),
    ('GetObject', {'Bucket': 'photos', 'Key': 'a/b/c', 'PartNumber': 2}),
    ('HeadObject', {'Bucket': 'photos', 'Key': 'a.jpg', 'IfNoneMatch': '"abc"',
                    'IfUnmodifiedSince': T1}),
    ('CopyObject', {'Bucket': 'photos', 'Key': 'copy.jpg', 'CopySource': 'src/a.jpg',
                    'MetadataDirective': 'REPLACE', 'Metadata': {'k': 'v'},
                    'CopySourceIfMatch': '"abc"', 'ContentType': 'image/jpeg'}),
    ('DeleteObject', {'Bucket': 'photos', 'Key': 'a.jpg', 'VersionId': 'v2'}),
    ('DeleteObjects', {'Bucket': 'photos', 'Delete': {
        'Objects': [{'Key': 'a'}, {'Key': 'b&<c>', 'VersionId': 'v'}], 'Quiet': True}}),
    ('ListObjects', {'Bucket': 'photos', 'Prefix': 'a/', 'Delimiter': '/',
                     'Marker': 'a/m', 'MaxKeys': 100, 'EncodingType': 'url'}),
    ('ListObjects', {'Bucket': 'photos'}),
    ('ListObjectsV2', {'Bucket': 'photos', 'Prefix': 'p', 'ContinuationToken': 'tok',
                       'StartAfter': 'p/0', 'FetchOwner': True, 'MaxKeys': 5}),
    ('ListObjectVersions', {'Bucket': 'photos', 'KeyMarker': 'k'}),
    ('CreateMultipartUpload', {'Bucket': 'photos', 'Key': 'big.iso',
                               'ContentType': 'application/octet-stream',
                               'Metadata': {'part-size': '5'}}),
    ('UploadPart', {'Bucket': 'photos', 'Key': 'big.iso', 'PartNumber': 3,
                    'UploadId': 'up-1', 'Body': BODY, 'ContentMD5': 'abc=='}),
    ('UploadPartCopy', {'Bucket': 'photos', 'Key': 'big.iso', 'PartNumber': 4,
                        'UploadId': 'up-1', 'CopySource': 'src/x',
                        'CopySourceRange': 'bytes=0-9'}),
    ('CompleteMultipartUpload', {'Bucket': 'photos', 'Key': 'big.iso', 'UploadId': 'up-1',
                                 'MultipartUpload': {'Parts': [
                                     {'PartNumber': 1, 'ETag': '"e1"'},
                                     {'PartNumber': 2, 'ETag': '"e2"'}]}}),
    ('AbortMultipartUpload', {'Bucket': 'photos', 'Key': 'big.iso', 'UploadId': 'up-1'}),
    ('ListParts', {'Bucket': 'photos', 'Key': 'big.iso', 'UploadId': 'up-1',
                   'MaxParts': 10, 'PartNumberMarker': 2}),
    ('ListMultipartUploads', {'Bucket': 'photos', 'Prefix': 'b', 'MaxUploads': 3}),
    ('PutBucketAcl', {'Bucket': 'photos', 'GrantRead': 'uri="http://acs.amazonaws.com/groups/global/AllUsers"',
                      'GrantFullControl': 'id="a1b2c3"'}),
    ('PutBucketAcl', {'Bucket': 'photos', 'AccessControlPolicy': {
        'Owner': OWNER,
        'Grants': [{'Grantee': {'Type': 'CanonicalUser', 'ID': 'a1b2c3', 'DisplayName': 'admin'},
                    'Permission': 'FULL_CONTROL'},
                   {'Grantee': {'Type': 'Group',
                                'URI': 'http://acs.amazonaws.com/groups/global/AllUsers'},
                    'Permission': 'READ'}]}}),
    ('GetBucketAcl', {'Bucket': 'photos'}),
    ('PutObjectAcl', {'Bucket': 'photos', 'Key': 'a.jpg', 'ACL': 'public-read'}),
    ('GetObjectAcl', {'Bucket': 'photos', 'Key': 'a.jpg'}),
    ('GetBucketLocation', {'Bucket': 'photos'}),
    ('HeadBucket', {'Bucket': 'photos'}),
    ('DeleteBucket', {'Bucket': 'photos'}),
    ('ListBuckets', {}),
    ('PutBucketPolicy', {'Bucket': 'photos', 'Policy': '{"Version": "2012-10-17"}'}),
    ('PutBucketVersioning', {'Bucket': 'photos',
                             'VersioningConfiguration': {'Status': 'Enabled'}}),
    ('PutObjectTagging', {'Bucket': 'photos', 'Key': 'a', 'Tagging': {
        'TagSet': [{'Key': 'k', 'Value': 'v'}]}}),
    ('GetBucketTagging', {'Bucket': 'photos'}),
]


@pytest.mark.parametrize('operation,params', REQUESTS,
                         ids=[f'{op}-{i}' for i, (op, _) in enumerate(REQUESTS)])
def test_botocore_request_parses_back(protocol, operation, params):
    method, path, query, headers, body = botocore_request(protocol, operation, params)
    parsed_operation, parsed = protocol.parse(method, path, query, headers, body)
    assert parsed_operation == operation
    assert parsed == params
    if 'Body' in params:
        assert parsed['Body'] is body  # streamed, never read


@pytest.mark.parametrize('operation,params', [
    ('PutObject', {'Bucket': 'photos', 'Key': 'dir/a b.txt', 'Body': BODY}),
    ('GetObject', {'Bucket': 'photos', 'Key': 'k', 'Range': 'bytes=1-2'}),
    ('ListObjectsV2', {'Bucket': 'photos', 'Prefix': 'p'}),
    ('GetBucketLocation', {'Bucket': 'photos'}),
    ('DeleteObjects', {'Bucket': 'photos', 'Delete': {'Objects': [{'Key': 'a'}]}}),
])
def test_virtual_host_style(protocol, operation, params):
    method, path, query, headers, body = botocore_request(protocol, operation, params)
    bucket_prefix = '/' + params['Bucket']
    assert path.startswith(bucket_prefix)
    vhost_path = path[len(bucket_prefix):] or '/'
    assert protocol.parse(method, vhost_path, query, headers, body,
                          host='photos.' + SERVICE_HOST,
                          service_host=SERVICE_HOST) == (operation, params)


def test_path_style_when_host_is_the_service(protocol):
    assert protocol.parse('GET', '/photos/k', '', {}, b'', host=SERVICE_HOST,
                          service_host=SERVICE_HOST) == (
        'GetObject', {'Bucket': 'photos', 'Key': 'k'})


def test_streaming_body_is_not_read(protocol):
    stream = io.BytesIO(BODY)
    _, parsed = protocol.parse('PUT', '/b/k', '', {'Content-Length': '13'}, stream)
    assert parsed['Body'] is stream and stream.tell() == 0


@pytest.mark.parametrize('method,path,query,body,code,status', [
    ('POST', '/b/k', '', b'', 'MethodNotAllowed', 405),
    ('PATCH', '/b', '', b'', 'MethodNotAllowed', 405),
    ('PUT', '/b', 'acl', b'<AccessControlPolicy><oops', 'MalformedXML', 400),
    ('POST', '/b', 'delete', b'', 'MalformedXML', 400),
    ('GET', '/b', 'list-type=2&max-keys=many', b'', 'InvalidArgument', 400),
    ('GET', '/b/k', 'partNumber=x', b'', 'InvalidArgument', 400),
])
def test_parse_errors(protocol, method, path, query, body, code, status):
    with pytest.raises(AWSError) as info:
        protocol.parse(method, path, query, {}, body)
    assert (info.value.code, info.value.status) == (code, status)


# ---------------------------------------------------------------- responses

ACL = {'Owner': OWNER, 'Grants': [
    {'Grantee': {'Type': 'CanonicalUser', 'ID': 'a1b2c3', 'DisplayName': 'admin'},
     'Permission': 'FULL_CONTROL'},
    {'Grantee': {'Type': 'Group', 'URI': 'http://acs.amazonaws.com/groups/global/AllUsers'},
     'Permission': 'READ'}]}
CONTENTS = [{'Key': 'a/1.txt', 'LastModified': T2, 'ETag': '"e1"', 'Size': 10,
             'StorageClass': 'STANDARD', 'Owner': OWNER},
            {'Key': 'a/2 & <3>.txt', 'LastModified': T1, 'ETag': '"e2"', 'Size': 0,
             'StorageClass': 'STANDARD'}]

RESPONSES = [
    ('ListBuckets', {'Buckets': [{'Name': 'photos', 'CreationDate': T1},
                                 {'Name': 'logs', 'CreationDate': T2}], 'Owner': OWNER}),
    ('ListObjectsV2', {'Name': 'photos', 'Prefix': 'a/', 'Delimiter': '/', 'MaxKeys': 1000,
                       'KeyCount': 3, 'IsTruncated': True, 'ContinuationToken': 't1',
                       'NextContinuationToken': 't2', 'StartAfter': 'a/0',
                       'Contents': CONTENTS,
                       'CommonPrefixes': [{'Prefix': 'a/b/'}, {'Prefix': 'a/c/'}]}),
    ('ListObjects', {'Name': 'photos', 'Prefix': '', 'Marker': '', 'MaxKeys': 1000,
                     'IsTruncated': False, 'NextMarker': 'a/2', 'Contents': CONTENTS}),
    ('ListObjectVersions', {'Name': 'photos', 'IsTruncated': False, 'Versions': [
        {'Key': 'k', 'VersionId': 'v1', 'IsLatest': True, 'LastModified': T1,
         'ETag': '"e"', 'Size': 3}],
        'DeleteMarkers': [{'Key': 'd', 'VersionId': 'v2', 'IsLatest': False,
                           'LastModified': T2}]}),
    ('HeadObject', {'ContentLength': 1234, 'ContentType': 'image/jpeg', 'ETag': '"abc"',
                    'LastModified': T1, 'Metadata': {'color': 'blue', 'owner': 'me'},
                    'AcceptRanges': 'bytes', 'VersionId': 'v1', 'CacheControl': 'no-cache',
                    'StorageClass': 'STANDARD'}),
    ('PutObject', {'ETag': '"abc"', 'VersionId': 'v1'}),
    ('CreateMultipartUpload', {'Bucket': 'photos', 'Key': 'big.iso', 'UploadId': 'up-1'}),
    ('UploadPart', {'ETag': '"p1"'}),
    ('UploadPartCopy', {'CopyPartResult': {'ETag': '"p4"', 'LastModified': T1}}),
    ('CompleteMultipartUpload', {'Location': 'http://walrus/photos/big.iso',
                                 'Bucket': 'photos', 'Key': 'big.iso', 'ETag': '"e-2"',
                                 'VersionId': 'v9'}),
    ('ListParts', {'Bucket': 'photos', 'Key': 'big.iso', 'UploadId': 'up-1',
                   'PartNumberMarker': 0, 'NextPartNumberMarker': 2, 'MaxParts': 1000,
                   'IsTruncated': False, 'StorageClass': 'STANDARD',
                   'Initiator': {'ID': 'a1b2c3', 'DisplayName': 'admin'}, 'Owner': OWNER,
                   'Parts': [{'PartNumber': 1, 'LastModified': T1, 'ETag': '"p1"', 'Size': 5},
                             {'PartNumber': 2, 'LastModified': T2, 'ETag': '"p2"', 'Size': 1}]}),
    ('ListMultipartUploads', {'Bucket': 'photos', 'KeyMarker': '', 'UploadIdMarker': '',
                              'MaxUploads': 1000, 'IsTruncated': False, 'Uploads': [
                                  {'UploadId': 'up-1', 'Key': 'big.iso', 'Initiated': T1,
                                   'StorageClass': 'STANDARD', 'Owner': OWNER}]}),
    ('GetBucketAcl', ACL),
    ('GetObjectAcl', dict(ACL, RequestCharged='requester')),
    ('DeleteObjects', {'Deleted': [{'Key': 'a'}, {'Key': 'b', 'VersionId': 'v',
                                                  'DeleteMarker': True}],
                       'Errors': [{'Key': 'c', 'Code': 'AccessDenied',
                                   'Message': 'Access Denied'}]}),
    ('CopyObject', {'CopyObjectResult': {'ETag': '"copy"', 'LastModified': T1},
                    'VersionId': 'v3', 'CopySourceVersionId': 'v1'}),
    ('GetBucketVersioning', {'Status': 'Enabled'}),
    ('GetBucketTagging', {'TagSet': [{'Key': 'k', 'Value': 'v'}]}),
    ('GetBucketPolicy', {'Policy': '{"Version": "2012-10-17"}'}),
]


def botocore_parse(protocol, operation, status, headers, body):
    parser = botocore.parsers.create_parser('rest-xml')
    shape = protocol.service_model.operation_model(operation).output_shape
    return parser.parse({'body': body, 'headers': HTTPHeaderDict(headers),
                         'status_code': status}, shape)


@pytest.mark.parametrize('operation,output', RESPONSES,
                         ids=[f'{op}-{i}' for i, (op, _) in enumerate(RESPONSES)])
def test_serialized_response_parses_back(protocol, operation, output):
    status, headers, body = protocol.serialize(operation, output, 'req-77')
    assert status == 200
    if body:
        assert b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' in body \
            or operation == 'GetBucketPolicy'
    parsed = botocore_parse(protocol, operation, status, headers, body)
    assert parsed.pop('ResponseMetadata')['RequestId'] == 'req-77'
    assert parsed == output


def test_get_object_headers_and_streamed_body(protocol):
    chunks = iter([b'hello ', b'world'])
    output = {'Body': chunks, 'ContentLength': 11, 'ContentType': 'text/plain',
              'ETag': '"5eb63bbbe01eeed093cb22bb8f5acdc3"', 'LastModified': T1,
              'Metadata': {'color': 'blue'}, 'ContentDisposition': 'inline',
              'Expires': T1, 'VersionId': 'v1', 'Unknown': 'ignored'}
    status, headers, body = protocol.serialize('GetObject', output, 'req-1')
    assert status == 200 and body is chunks
    header_dict = dict(headers)
    assert header_dict['Last-Modified'] == 'Mon, 06 May 2024 07:08:09 GMT'
    assert header_dict['x-amz-meta-color'] == 'blue'
    assert header_dict['Content-Length'] == '11'
    parsed = botocore_parse(protocol, 'GetObject', status, headers, body)
    parsed.pop('ResponseMetadata')
    del output['Unknown']
    assert parsed == output


def test_ranged_get_is_206_and_deletes_204(protocol):
    status, headers, body = protocol.serialize(
        'GetObject', {'Body': b'ell', 'ContentRange': 'bytes 1-3/11', 'ContentLength': 3},
        'req-1')
    assert status == 206 and body == b'ell'
    assert ('Content-Range', 'bytes 1-3/11') in headers
    for operation in ('DeleteObject', 'DeleteBucket', 'AbortMultipartUpload'):
        status, _, body = protocol.serialize(operation, {}, 'req-1')
        assert status == 204 and body == b''


def test_result_root_element_names(protocol):
    _, _, body = protocol.serialize('ListBuckets', {'Buckets': []}, 'r')
    assert b'<ListAllMyBucketsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' in body
    _, _, body = protocol.serialize('CreateMultipartUpload', {'UploadId': 'u'}, 'r')
    assert b'<InitiateMultipartUploadResult' in body
    _, _, body = protocol.serialize('GetBucketAcl', ACL, 'r')
    assert b'xsi:type="CanonicalUser"' in body


@pytest.mark.parametrize('region', ['eucalyptus', ''])
def test_get_bucket_location(protocol, region):
    status, headers, body = protocol.serialize(
        'GetBucketLocation', {'LocationConstraint': region}, 'r')
    parsed = botocore_parse(protocol, 'GetBucketLocation', status, headers, body)

    class Response:  # what botocore's handler reads
        raw = True
        content = body
    botocore.handlers.parse_get_bucket_location(parsed, Response())
    assert parsed['LocationConstraint'] == (region or None)


@pytest.mark.parametrize('error,resource', [
    (AWSError('NoSuchKey', 'The specified key does not exist.', 404, Key='a.jpg'), '/b/a.jpg'),
    (AWSError('NoSuchBucket', 'The specified bucket does not exist', 404, BucketName='b'), '/b'),
    (AWSError('AccessDenied', 'Access Denied', 403), None),
    (AWSError('NotImplemented', 'Not implemented', 501), None),
])
def test_error_document_parses_back(protocol, error, resource):
    status, headers, body = protocol.serialize_error(error, 'req-err', resource)
    assert status == error.status
    parsed = botocore_parse(protocol, 'GetObject', status, headers, body)
    assert parsed['Error']['Code'] == error.code
    assert parsed['Error']['Message'] == error.message
    for name, value in error.extra.items():
        assert parsed['Error'][name] == value
    if resource:
        assert parsed['Error']['Resource'] == resource
    assert parsed['ResponseMetadata']['RequestId'] == 'req-err'

"""The S3 rest-xml protocol, server side, driven by botocore's ``s3`` model.

:meth:`S3Protocol.parse` routes a request to an operation by method, path
shape (service, bucket, object) and the query subresources of each
operation's ``requestUri``, then gathers the input members from the uri,
query string, headers and body.  :meth:`S3Protocol.serialize` does the
reverse for a handler's output dict: status, headers and an XML or streaming
body that botocore's ``RestXMLParser`` reads.
"""

import functools
from urllib.parse import parse_qsl, unquote

from lxml import etree

from .errors import AWSError
from .shapes import (NON_BODY_LOCATIONS, XmlReader, XmlWriter,
                     load_service_model, member_xml_name, parse_scalar,
                     parse_xml_document, rfc1123, format_scalar, to_bytes)

S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/'

# The model does not name the root element of outputs without a payload
# member; these are the names S3 itself sends.
_RESULT_ROOTS = {
    'CompleteMultipartUpload': 'CompleteMultipartUploadResult',
    'CreateMultipartUpload': 'InitiateMultipartUploadResult',
    'CreateSession': 'CreateSessionResult',
    'DeleteObjects': 'DeleteResult',
    'GetBucketAccelerateConfiguration': 'AccelerateConfiguration',
    'GetBucketAcl': 'AccessControlPolicy',
    'GetObjectAcl': 'AccessControlPolicy',
    'GetBucketCors': 'CORSConfiguration',
    'GetBucketLifecycle': 'LifecycleConfiguration',
    'GetBucketLifecycleConfiguration': 'LifecycleConfiguration',
    'GetBucketLocation': 'LocationConstraint',
    'GetBucketLogging': 'BucketLoggingStatus',
    'GetBucketNotification': 'NotificationConfiguration',
    'GetBucketNotificationConfiguration': 'NotificationConfiguration',
    'GetBucketRequestPayment': 'RequestPaymentConfiguration',
    'GetBucketTagging': 'Tagging',
    'GetObjectTagging': 'Tagging',
    'GetBucketVersioning': 'VersioningConfiguration',
    'GetBucketWebsite': 'WebsiteConfiguration',
    'GetObjectAttributes': 'GetObjectAttributesResponse',
    'ListBucketAnalyticsConfigurations': 'ListBucketAnalyticsConfigurationResult',
    'ListBucketInventoryConfigurations': 'ListInventoryConfigurationsResult',
    'ListBucketMetricsConfigurations': 'ListMetricsConfigurationsResult',
    'ListBuckets': 'ListAllMyBucketsResult',
    'ListDirectoryBuckets': 'ListAllMyDirectoryBucketsResult',
    'ListMultipartUploads': 'ListMultipartUploadsResult',
    'ListObjectVersions': 'ListVersionsResult',
    'ListObjects': 'ListBucketResult',
    'ListObjectsV2': 'ListBucketResult',
    'ListParts': 'ListPartsResult',
}


class _Route:
    """What a request must look like to be one operation."""

    def __init__(self, operation):
        self.operation = operation
        self.method = operation.http['method']
        path, _, query = operation.http['requestUri'].partition('?')
        if path == '/':
            self.kind = 'service'
        elif path == '/{Bucket}':
            self.kind = 'bucket'
        elif path == '/{Bucket}/{Key+}':
            self.kind = 'object'
        else:
            self.kind = None  # e.g. WriteGetObjectResponse: not for us
        self.literal_query = dict(parse_qsl(query, keep_blank_values=True))
        self.required_query = []
        self.required_headers = []
        shape = operation.input_shape
        for name in (shape.required_members if shape else ()):
            member = shape.members[name]
            location = member.serialization.get('location')
            if location == 'querystring':
                self.required_query.append(member.serialization.get('name', name))
            elif location == 'header':
                self.required_headers.append(
                    member.serialization.get('name', name).lower())

    def score(self, query, headers):
        """How specifically this route matches, or None when it does not."""
        for key, value in self.literal_query.items():
            if key not in query or (value and query[key][0] != value):
                return None
        if any(key not in query for key in self.required_query):
            return None
        if any(name not in headers for name in self.required_headers):
            return None
        return (10 * len(self.literal_query) + len(self.required_query)
                + len(self.required_headers))


class _InputPlan:
    """An input shape's members by where they travel: uri, query string, header, header prefix."""

    def __init__(self, shape):
        self.uri, self.query, self.headers, self.prefixes = [], {}, {}, []
        for name, member in shape.members.items():
            location = member.serialization.get('location')
            wire_name = member.serialization.get('name', name)
            if location == 'uri':
                self.uri.append((name, wire_name.rstrip('+')))
            elif location == 'querystring' and member.type_name != 'map':
                self.query[wire_name] = (name, member)  # no S3 operation takes free-form query maps
            elif location == 'header':
                self.headers[wire_name.lower()] = (name, member, wire_name)
            elif location == 'headers':
                self.prefixes.append((wire_name.lower(), name))


class S3Protocol:
    """Routes and parses S3 REST requests; renders S3 responses and errors."""

    def __init__(self, service_model=None):
        self.service_model = service_model or load_service_model('s3')
        self._routes = [_Route(self.service_model.operation_model(name))
                        for name in self.service_model.operation_names]
        self._routes = [route for route in self._routes if route.kind]
        self._reader = XmlReader()
        # What routing looks at besides method and path: query names (and the values of the
        # literal ones) and the presence of required headers.  Remembered per combination.
        self._valued = {key for r in self._routes for key, value in r.literal_query.items() if value}
        self._header_names = {name for r in self._routes for name in r.required_headers}
        self._chosen = {}
        self._plans = {}

    # ------------------------------------------------------------ requests

    def parse(self, method, raw_path, query_string, headers, body,
              host=None, service_host=None):
        """(operation name, boto3-shaped input dict) for one S3 request.

        A streaming payload member (PutObject/UploadPart ``Body``) is ``body``
        itself, unread; other bodies (XML configuration, policy) are read.
        ``CopySource`` is returned as sent (still URL-encoded).
        """
        method = method.upper()
        raw_path, _, extra_query = raw_path.partition('?')
        query_string = '&'.join(q for q in (query_string, extra_query) if q)
        headers = {name.lower(): value for name, value in headers.items()}
        bucket, key = bucket_and_key(raw_path, host, service_host)
        query = {}
        for name, value in parse_qsl(query_string, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        kind = 'service' if bucket is None else 'bucket' if key is None else 'object'
        route = self._route(method, kind, query, headers)
        operation = route.operation
        if operation.input_shape is None:
            return operation.name, {}
        uri = {'Bucket': bucket, 'Key': key}
        params = self._members(operation.input_shape, uri, query, headers)
        self._payload(operation.input_shape, body, params)
        return operation.name, params

    def _route(self, method, kind, query, headers):
        shape = (method, kind,
                 tuple(sorted((k, query[k][0] if k in self._valued else None) for k in query)),
                 tuple(sorted(name for name in self._header_names if name in headers)))
        route = self._chosen.get(shape)
        if route is None:
            route = self._score_routes(method, kind, query, headers)
            if len(self._chosen) > 4096:  # query names are the client's: keep this bounded
                self._chosen.clear()
            self._chosen[shape] = route
        return route

    def _score_routes(self, method, kind, query, headers):
        best, best_score, kind_seen = None, -1, False
        for route in self._routes:
            if route.kind != kind:
                continue
            score = route.score(query, headers)
            if score is None:
                continue
            kind_seen = True
            if route.method == method and score > best_score:
                best, best_score = route, score
        if best is not None:
            return best
        if kind_seen:
            raise AWSError('MethodNotAllowed',
                           'The specified method is not allowed against this resource.',
                           405, Method=method, ResourceType=kind.upper())
        raise AWSError('NotImplemented',
                       'A header you provided implies functionality that is not implemented',
                       501)

    def _members(self, shape, uri, query, headers):
        plan = self._plan(shape)
        params = {}
        for name, wire_name in plan.uri:
            value = uri.get(wire_name)
            if value is not None:
                params[name] = value
        for wire_name, values in query.items():
            hit = plan.query.get(wire_name)
            if hit is not None:
                params[hit[0]] = self._query_value(hit[1], values, wire_name)
        for header, value in headers.items():
            hit = plan.headers.get(header)
            if hit is not None:
                params[hit[0]] = _header_value(hit[1], value, hit[2])
        for prefix, name in plan.prefixes:
            found = {h[len(prefix):]: v for h, v in headers.items() if h.startswith(prefix)}
            if found:
                params[name] = found
        return params

    def _plan(self, shape):
        """Where each located member of an input shape comes from, by wire name (built once)."""
        plan = self._plans.get(shape.name)
        if plan is None:
            plan = self._plans[shape.name] = _InputPlan(shape)
        return plan

    @staticmethod
    def _query_value(member, values, wire_name):
        if member.type_name == 'list':
            return [_convert(member.member, v, wire_name) for v in values]
        return _convert(member, values[0], wire_name)

    def _payload(self, shape, body, params):
        payload = shape.serialization.get('payload')
        if payload is None or body is None:
            return
        member = shape.members[payload]
        if member.type_name == 'blob' and member.serialization.get('streaming'):
            params[payload] = body  # the caller streams and checks it
            return
        data = _read_all(body)
        if member.type_name == 'structure':
            if not data.strip():
                if payload in shape.required_members:
                    raise AWSError('MalformedXML', 'The XML you provided was not '
                                   'well-formed or did not validate against our '
                                   'published schema')
                return
            try:
                document = parse_xml_document(data)
                if etree.QName(document).localname != member_xml_name(member, payload):
                    raise ValueError(f'unexpected root element {document.tag}')
                params[payload] = self._reader.read(member, document)
            except ValueError:
                raise AWSError('MalformedXML', 'The XML you provided was not '
                               'well-formed or did not validate against our '
                               'published schema') from None
        elif member.type_name == 'string':
            params[payload] = data.decode('utf-8', 'replace')
        else:
            params[payload] = data

    # ------------------------------------------------------------ responses

    def serialize(self, operation_name, output, request_id):
        """(status, headers, body) for an operation's output dict.

        Status is the model's responseCode (204 for deletes), 206 when
        ``ContentRange`` is set, else 200.  A streaming payload (bytes or an
        iterable of bytes) is passed through unread.
        """
        operation = self.service_model.operation_model(operation_name)
        shape = operation.output_shape
        output = output or {}
        status = operation.http.get('responseCode', 200)
        if output.get('ContentRange'):
            status = 206
        headers = [('x-amz-request-id', request_id)]
        if shape is None:
            return status, headers, b''
        headers.extend(_output_headers(shape, output))
        body = self._output_body(operation_name, shape, output, headers)
        return status, headers, body

    def _output_body(self, operation_name, shape, output, headers):
        payload = shape.serialization.get('payload')
        writer = XmlWriter(S3_NAMESPACE)
        if payload is not None:
            member = shape.members[payload]
            value = output.get(payload)
            if member.type_name != 'structure':
                if isinstance(value, str):
                    return value.encode('utf-8')
                return b'' if value is None else value
            if value is None:
                return b''
            root = writer.root(member_xml_name(member, payload), member, value)
        else:
            body_members = [n for n in _body_members(shape) if output.get(n) is not None]
            root_name = _RESULT_ROOTS.get(operation_name)
            if operation_name == 'GetBucketLocation':
                # S3 sends the bare element; botocore parses it with a handler.
                root = etree.Element(f'{{{S3_NAMESPACE}}}LocationConstraint',
                                     nsmap={None: S3_NAMESPACE})
                root.text = output.get('LocationConstraint') or None
            elif not body_members and root_name is None:
                return b''
            else:
                root_name = root_name or shape.name.removesuffix('Output') + 'Result'
                root = writer.root(root_name, shape, output)
        headers.append(('Content-Type', 'application/xml'))
        return to_bytes(root)

    def serialize_error(self, error, request_id, resource=None):
        """(status, headers, body) of the S3 error document for ``error``."""
        root = etree.Element('Error')
        etree.SubElement(root, 'Code').text = error.code
        etree.SubElement(root, 'Message').text = error.message
        for name, value in error.extra.items():
            etree.SubElement(root, name).text = str(value)
        if resource is not None:
            etree.SubElement(root, 'Resource').text = resource
        etree.SubElement(root, 'RequestId').text = request_id
        headers = [('x-amz-request-id', request_id),
                   ('Content-Type', 'application/xml')]
        return error.status, headers, to_bytes(root)


@functools.lru_cache(maxsize=512)  # output shapes come from botocore's model: a bounded set
def _body_members(shape):
    """The names of the members of an output shape that go in the XML body, not in headers."""
    return tuple(n for n, m in shape.members.items()
                 if m.serialization.get('location') not in NON_BODY_LOCATIONS)


def bucket_and_key(raw_path, host, service_host):
    """(bucket, key) from a path-style or virtual-host-style request.

    An empty key (``/bucket/``) counts as no key: a bucket request.
    """
    bucket = None
    if host and service_host:
        hostname = host.rsplit(':', 1)[0].lower().rstrip('.')
        service_name = service_host.rsplit(':', 1)[0].lower()
        if hostname.endswith('.' + service_name):
            bucket = hostname[:-len(service_name) - 1]
    if bucket is not None:
        key = unquote(raw_path[1:]) if raw_path.startswith('/') else unquote(raw_path)
        return bucket, key or None
    parts = raw_path.lstrip('/').split('/', 1)
    bucket = unquote(parts[0]) or None
    key = unquote(parts[1]) if len(parts) > 1 else None
    return bucket, key or None


def _convert(shape, text, wire_name):
    try:
        return parse_scalar(shape, text)
    except ValueError:
        raise AWSError('InvalidArgument', f'Invalid value for {wire_name}: {text!r}',
                       ArgumentName=wire_name, ArgumentValue=text) from None


def _header_value(shape, text, wire_name):
    if shape.type_name == 'list':
        return [_convert(shape.member, item.strip(), wire_name)
                for item in text.split(',') if item.strip()]
    if shape.type_name == 'string' and shape.serialization.get('jsonvalue'):
        return text  # base64 JSON; no S3 handler needs it decoded
    return _convert(shape, text, wire_name)


def _output_headers(shape, output):
    headers = []
    for name, value in output.items():
        member = shape.members.get(name)
        if value is None or member is None:
            continue
        location = member.serialization.get('location')
        wire_name = member.serialization.get('name', name)
        if location == 'header':
            if member.type_name == 'list':
                text = ','.join(format_scalar(member.member, v) for v in value)
            else:
                text = format_scalar(member, value, timestamp=rfc1123)
            headers.append((wire_name, text))
        elif location == 'headers':
            headers.extend((wire_name + key, str(item)) for key, item in value.items())
    return headers


def _read_all(body):
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode('utf-8')
    if hasattr(body, 'read'):
        return body.read()
    return b''.join(body)

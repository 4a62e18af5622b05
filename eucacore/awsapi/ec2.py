"""The EC2 query protocol, server side, driven by botocore's ``ec2`` model.

A request is the flat ``Name.1.Sub=value`` parameter set that botocore's
``EC2Serializer`` produces; :meth:`Ec2Protocol.parse` walks the operation's
input shape over it and gives back the dict boto3 would have been called
with.  :meth:`Ec2Protocol.serialize` walks the output shape over a handler's
plain dict and writes the ``<XResponse>`` document botocore's ``EC2QueryParser``
reads.
"""

from lxml import etree

from .errors import AWSError
from .shapes import XML_DECLARATION, TextWriter, load_service_model, parse_scalar, to_bytes, xml_escape

# Parameters that carry authentication, not operation input; the signature
# check has already looked at them.
_AUTH_PARAMS = frozenset([
    'AWSAccessKeyId', 'Signature', 'SignatureMethod', 'SignatureVersion',
    'Timestamp', 'Expires', 'SecurityToken',
])


def _is_auth_param(name):
    return name in _AUTH_PARAMS or name.lower().startswith('x-amz-')


class _Node:
    """One level of the dotted parameter tree: 'Filter.1.Name' -> Filter/1/Name."""

    __slots__ = ('value', 'children')

    def __init__(self):
        self.value = None
        self.children = {}

    @classmethod
    def from_params(cls, params):
        root = cls()
        for name, value in params.items():
            node = root
            for part in name.split('.'):
                node = node.children.setdefault(part, cls())
            node.value = value
        return root


def _query_name(shape, member_name):
    """The name botocore's EC2Serializer gives a member (queryName, else
    capitalized locationName, else the member name)."""
    if 'queryName' in shape.serialization:
        return shape.serialization['queryName']
    name = shape.serialization.get('name')
    if name:
        return name[0].upper() + name[1:]
    return member_name


class Ec2Protocol:
    """Parses EC2 query requests and renders EC2 XML responses and errors."""

    def __init__(self, service_model=None):
        self.service_model = service_model or load_service_model('ec2')
        version = self.service_model.metadata['apiVersion']
        self.namespace = f'http://ec2.amazonaws.com/doc/{version}/'
        self._writer = TextWriter()

    # ------------------------------------------------------------ requests

    def parse(self, params):
        """(operation name, boto3-shaped input dict) for flat query ``params``.

        Raises AWSError: MissingAction/InvalidAction for a missing or unknown
        Action, InvalidParameterValue for an unparsable value or unknown
        parameter, MissingParameter for a missing required member.
        """
        action = params.get('Action')
        if not action:
            raise AWSError('MissingAction', 'The request must contain the parameter Action')
        if action not in self.service_model.operation_names:
            raise AWSError('InvalidAction',
                           f'The action {action} is not valid for this web service.')
        operation = self.service_model.operation_model(action)
        op_params = {k: v for k, v in params.items()
                     if k not in ('Action', 'Version') and not _is_auth_param(k)}
        tree = _Node.from_params(op_params)
        if operation.input_shape is None:
            self._reject_unknown(tree.children, '')
            return action, {}
        return action, self._structure(operation.input_shape, tree, '')

    def _structure(self, shape, node, prefix):
        if node.value is not None and not node.children:
            raise AWSError('InvalidParameterValue',
                           f'Parameter {prefix} must be a structure, not a value')
        result = {}
        seen = set()
        for member_name, member_shape in shape.members.items():
            for name in self._accepted_names(member_shape, member_name):
                child = node.children.get(name)
                if child is not None:
                    seen.add(name)
                    result[member_name] = self._value(member_shape, child,
                                                      prefix + name)
                    break
        self._reject_unknown({k: v for k, v in node.children.items()
                              if k not in seen}, prefix)
        for required in shape.required_members:
            if required not in result:
                name = self._wire_name(shape.members[required], required)
                raise AWSError('MissingParameter',
                               f'The request must contain the parameter {prefix}{name}')
        return result

    @staticmethod
    def _wire_name(member_shape, member_name):
        """The parameter name botocore's serializer gives a member."""
        return _query_name(member_shape, member_name)

    def _accepted_names(self, member_shape, member_name):
        # Hand-written clients (old euca2ools, curl) also use the bare member
        # name or the lower-case locationName; botocore's name comes first.
        names = [self._wire_name(member_shape, member_name), member_name]
        location_name = member_shape.serialization.get('name')
        if location_name:
            names.append(location_name)
        return list(dict.fromkeys(names))

    @staticmethod
    def _reject_unknown(children, prefix):
        for name in children:
            raise AWSError('InvalidParameterValue',
                           f'The parameter {prefix}{name} is not recognized')

    def _value(self, shape, node, path):
        kind = shape.type_name
        if kind == 'structure':
            return self._structure(shape, node, path + '.')
        if kind == 'list':
            return self._list(shape, node, path)
        if kind == 'map':
            return self._map(shape, node, path)
        return self._scalar(shape, node, path)

    def _scalar(self, shape, node, path):
        if node.children:
            first = next(iter(node.children))
            raise AWSError('InvalidParameterValue',
                           f'The parameter {path}.{first} is not recognized')
        try:
            return parse_scalar(shape, node.value)
        except ValueError:
            raise AWSError('InvalidParameterValue',
                           f'Value ({node.value}) for parameter {path} is invalid') from None

    @staticmethod
    def _indexed(node, path):
        """Children of a list node in index order; each key must be a number."""
        if not node.children and node.value is not None:
            raise AWSError('InvalidParameterValue',
                           f'Value ({node.value}) for parameter {path} is invalid')
        items = []
        for key, child in node.children.items():
            if not key.isdigit():
                raise AWSError('InvalidParameterValue',
                               f'The parameter {path}.{key} is not recognized')
            items.append((int(key), child))
        return [(f'{path}.{i}', child) for i, child in sorted(items, key=lambda p: p[0])]

    def _list(self, shape, node, path):
        if node.value == '' and not node.children:
            return []  # botocore's query serializer sends 'Name=' for []
        if not node.children:
            # 'InstanceId=i-1' without an index: taken as a one-item list.
            return [self._value(shape.member, node, path)]
        return [self._value(shape.member, child, item_path)
                for item_path, child in self._indexed(node, path)]

    def _map(self, shape, node, path):
        entries = node.children.get('entry')
        if entries is not None and len(node.children) == 1:
            node, path = entries, path + '.entry'
        return self._map_entries(shape, node, path)

    def _map_entries(self, shape, node, path):
        """A map from ``path.N.key`` / ``path.N.value`` parameters."""
        key_name = self._wire_name(shape.key, 'key')
        value_name = self._wire_name(shape.value, 'value')
        result = {}
        for entry_path, entry in self._indexed(node, path):
            key_node = entry.children.get(key_name)
            value_node = entry.children.get(value_name)
            if key_node is None or value_node is None:
                raise AWSError('InvalidParameterValue',
                               f'The parameter {entry_path} needs a {key_name} and a {value_name}')
            key = self._value(shape.key, key_node, f'{entry_path}.{key_name}')
            result[key] = self._value(shape.value, value_node,
                                      f'{entry_path}.{value_name}')
        return result

    # ------------------------------------------------------------ responses

    def serialize(self, operation_name, output, request_id):
        """The 200 body for ``operation_name``: ``output`` walked by its output shape.

        Keys the shape does not know are ignored; an operation without an
        output shape answers ``<return>true</return>`` as EC2 does.
        """
        operation = self.service_model.operation_model(operation_name)
        shape = operation.output_shape
        body = '<return>true</return>' if shape is None else self._writer.text(shape, output or {})
        return (f'{XML_DECLARATION}<{operation_name}Response xmlns="{self.namespace}">'
                f'<requestId>{xml_escape(request_id)}</requestId>{body}</{operation_name}Response>').encode()

    def serialize_error(self, error, request_id):
        """(status, body) of the EC2 error document for ``error``."""
        root = etree.Element('Response')
        item = etree.SubElement(etree.SubElement(root, 'Errors'), 'Error')
        etree.SubElement(item, 'Code').text = error.code
        etree.SubElement(item, 'Message').text = error.message
        etree.SubElement(root, 'RequestID').text = request_id
        return error.status, to_bytes(root)

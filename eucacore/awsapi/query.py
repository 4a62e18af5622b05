"""The AWS query protocol, server side: IAM/Euare, properties, reporting.

A request is the flat parameter set that botocore's ``QuerySerializer``
produces (``Tags.member.1.Key=k``, ``Attributes.entry.1.key=k``);
:meth:`QueryProtocol.parse` walks the operation's input shape over it and
gives back the dict boto3 would have been called with, enforcing the length,
enum and range constraints the model declares.  :meth:`QueryProtocol.serialize`
writes the ``<XResponse><XResult>`` document botocore's ``QueryParser`` reads.

The query protocol is the parent of EC2's, so the parameter walk is
:class:`~eucacore.awsapi.ec2.Ec2Protocol`'s; what differs is naming (no
capitalizing, no lenient aliases), the ``member``/``entry`` levels of lists and
maps, validation, and the response and error documents.
"""

from lxml import etree

from .ec2 import Ec2Protocol
from .errors import AWSError
from .shapes import XmlWriter, member_xml_name, to_bytes


class QueryProtocol(Ec2Protocol):
    """Parses query requests and renders query XML responses and errors
    for one botocore ``service_model`` whose protocol is ``query``."""

    def __init__(self, service_model):
        self.service_model = service_model
        self.namespace = service_model.metadata.get('xmlNamespace')

    # ------------------------------------------------------------ requests
    # parse() is Ec2Protocol's; these hooks give it the query naming.

    @staticmethod
    def _wire_name(member_shape, member_name):
        """locationName, else the member name; a flattened list with a named
        item goes by the item's name, as botocore's QuerySerializer does."""
        return member_xml_name(member_shape, member_name)

    def _accepted_names(self, member_shape, member_name):
        return [self._wire_name(member_shape, member_name)]

    def _list(self, shape, node, path):
        if node.value == '' and not node.children:
            return []  # botocore sends 'Name=' for an empty list
        if not shape.serialization.get('flattened'):
            item_name = shape.member.serialization.get('name', 'member')
            node, path = _only_child(node, path, item_name)
        return [self._value(shape.member, child, item_path)
                for item_path, child in self._indexed(node, path)]

    def _map(self, shape, node, path):
        if not shape.serialization.get('flattened'):
            node, path = _only_child(node, path, 'entry')
        return self._map_entries(shape, node, path)

    def _scalar(self, shape, node, path):
        value = super()._scalar(shape, node, path)
        violation = _violated_constraint(shape, value)
        if violation:
            raise AWSError('ValidationError',
                           f"1 validation error detected: Value '{node.value}' at "
                           f"'{_member_path(path)}' failed to satisfy constraint: "
                           f'{violation}')
        return value

    # ------------------------------------------------------------ responses

    def _element(self, parent, name):
        tag = f'{{{self.namespace}}}{name}' if self.namespace else name
        if parent is None:
            return etree.Element(tag, nsmap={None: self.namespace} if self.namespace else None)
        return etree.SubElement(parent, tag)

    def _add_request_id(self, parent, request_id):
        self._element(parent, 'RequestId').text = request_id

    def serialize(self, operation_name, output, request_id):
        """The 200 body for ``operation_name``: ``output`` walked by its output
        shape inside the operation's result wrapper, then ResponseMetadata.

        Keys the shape does not know are ignored; an operation without an
        output shape answers only the ResponseMetadata.
        """
        operation = self.service_model.operation_model(operation_name)
        root = self._element(None, f'{operation_name}Response')
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get('resultWrapper')
            result = self._element(root, wrapper) if wrapper else root
            XmlWriter(self.namespace).fill(result, shape, output or {})
        self._add_request_id(self._element(root, 'ResponseMetadata'), request_id)
        return to_bytes(root)

    def serialize_error(self, error, request_id):
        """(status, body) of the query ``<ErrorResponse>`` document for ``error``;
        the fault is the Receiver's for a 5xx status, else the Sender's."""
        root = self._element(None, 'ErrorResponse')
        item = self._element(root, 'Error')
        self._element(item, 'Type').text = 'Receiver' if error.status >= 500 else 'Sender'
        self._element(item, 'Code').text = error.code
        self._element(item, 'Message').text = error.message
        self._add_request_id(root, request_id)
        return error.status, to_bytes(root)


def _only_child(node, path, name):
    """The one level a list or map adds (``Users.member``, ``Attrs.entry``)."""
    for key in node.children:
        if key != name:
            raise AWSError('InvalidParameterValue',
                           f'The parameter {path}.{key} is not recognized')
    child = node.children.get(name)
    if child is None:
        raise AWSError('InvalidParameterValue',
                       f'Value ({node.value}) for parameter {path} is invalid')
    return child, f'{path}.{name}'


def _violated_constraint(shape, value):
    """The model constraint ``value`` breaks, in AWS's words, or None.

    Only the simple ones: string length and enum, integer range.  Patterns are
    left out: the models' regular expressions are Java's, not Python's.
    """
    low, high = shape.metadata.get('min'), shape.metadata.get('max')
    if shape.type_name == 'string':
        if low is not None and len(value) < low:
            return f'Member must have length greater than or equal to {low}'
        if high is not None and len(value) > high:
            return f'Member must have length less than or equal to {high}'
        if shape.enum and value not in shape.enum:
            return f"Member must satisfy enum value set: [{', '.join(shape.enum)}]"
    elif shape.type_name in ('integer', 'long'):
        if low is not None and value < low:
            return f'Member must have value greater than or equal to {low}'
        if high is not None and value > high:
            return f'Member must have value less than or equal to {high}'
    return None


def _member_path(path):
    """'Tags.member.1.Key' -> 'tags.member.1.key', the way AWS names a member."""
    return '.'.join(part[:1].lower() + part[1:] for part in path.split('.'))

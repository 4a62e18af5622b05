"""Walking botocore shapes: the pieces shared by the EC2 and S3 protocols.

Everything here is protocol-neutral: loading a service model, turning one
scalar between wire text and Python, and turning a structure shape into XML
elements and back the way botocore's own rest-xml/ec2 parsers and serializers
name them (``locationName``, ``flattened``, ``xmlAttribute``,
``xmlNamespace``).
"""

import base64
import binascii
import datetime
import functools
import re
import threading
from collections.abc import Mapping
from email.utils import format_datetime

import botocore.session
from botocore.utils import parse_timestamp
from lxml import etree

#: Locations that put a member outside the XML body (rest protocols).
NON_BODY_LOCATIONS = frozenset(
    ['uri', 'querystring', 'header', 'headers', 'statusCode'])


@functools.lru_cache(maxsize=None)
def load_service_model(name):
    """The botocore ``ServiceModel`` for ``name`` ('ec2', 's3'), loaded once."""
    return botocore.session.get_session().get_service_model(name)


# ---------------------------------------------------------------- scalars

def parse_scalar(shape, text):
    """Wire text -> Python value for a scalar shape; ValueError if unparsable.

    Timestamps become timezone-aware datetimes (any of ISO 8601, RFC 822 or
    epoch seconds is accepted, as AWS does); blobs are base64-decoded.
    """
    kind = shape.type_name
    if kind in ('integer', 'long'):
        return int(text.strip())
    if kind == 'boolean':
        lowered = text.strip().lower()
        if lowered not in ('true', 'false'):
            raise ValueError(f'not a boolean: {text!r}')
        return lowered == 'true'
    if kind in ('float', 'double'):
        return float(text)
    if kind == 'timestamp':
        return _parse_time(text)
    if kind == 'blob':
        try:
            return base64.b64decode(text.strip(), validate=True)
        except binascii.Error as exc:
            raise ValueError(f'not base64: {exc}') from None
    return text


def _parse_time(text):
    try:
        value = parse_timestamp(text.strip())
    except Exception:  # dateutil raises several unrelated types
        raise ValueError(f'not a timestamp: {text!r}') from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value


def _as_utc(value):
    """A datetime (naive ones are taken as UTC) or epoch number -> aware UTC."""
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    if isinstance(value, str):
        value = _parse_time(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc)


def iso8601(value):
    """AWS body timestamp: '2024-01-02T03:04:05.000Z'."""
    value = _as_utc(value)
    return value.strftime('%Y-%m-%dT%H:%M:%S.') + f'{value.microsecond // 1000:03d}Z'


def rfc1123(value):
    """HTTP header timestamp: 'Tue, 02 Jan 2024 03:04:05 GMT'."""
    return format_datetime(_as_utc(value).replace(microsecond=0), usegmt=True)


def format_scalar(shape, value, timestamp=iso8601):
    """Python value -> wire text for a scalar shape."""
    kind = shape.type_name
    if kind == 'boolean':
        return 'true' if value else 'false'
    if kind == 'timestamp':
        if isinstance(value, str):
            return value  # kept as the client sent it (S3's Expires)
        fmt = shape.serialization.get('timestampFormat')
        if fmt == 'unixTimestamp':
            return str(int(_as_utc(value).timestamp()))
        if fmt == 'rfc822':
            return rfc1123(value)
        if fmt == 'iso8601':
            return iso8601(value)
        return timestamp(value)
    if kind == 'blob':
        if isinstance(value, str):
            value = value.encode('utf-8')
        return base64.b64encode(value).decode('ascii')
    if kind in ('float', 'double'):
        return repr(float(value))
    return str(value)


# ---------------------------------------------------------------- XML out

def member_xml_name(shape, member_name):
    """The element name of a structure member, as botocore's XML parser reads it.

    A flattened list with a named member repeats that member's name in place
    of the list's own.
    """
    if shape.type_name == 'list' and shape.serialization.get('flattened'):
        name = shape.member.serialization.get('name')
        if name is not None:
            return name
    return shape.serialization.get('name', member_name)


class XmlWriter:
    """Builds lxml elements for a value of a shape, every tag in namespace ``ns``.

    Members with a rest location (headers, uri...) are left out: they are not
    part of a body.  Keys of ``value`` that the shape does not know are ignored.
    """

    def __init__(self, ns=None):
        self.ns = ns

    def tag(self, name):
        return f'{{{self.ns}}}{name}' if self.ns else name

    def root(self, name, shape, value):
        nsmap = {None: self.ns} if self.ns else {}
        nsmap.update(_shape_nsmap(shape))
        root = etree.Element(self.tag(name), nsmap=nsmap)
        self.fill(root, shape, value)
        return root

    def fill(self, element, shape, value):
        """Write ``value`` into an existing ``element`` according to ``shape``."""
        kind = shape.type_name
        if kind == 'structure':
            self._fill_structure(element, shape, value)
        elif kind == 'list':
            item_name = shape.member.serialization.get('name', 'member')
            for item in value:
                self.add(element, item_name, shape.member, item)
        elif kind == 'map':
            for key, item in value.items():
                entry = etree.SubElement(element, self.tag('entry'))
                self._add_map_entry(entry, shape, key, item)
        else:
            element.text = format_scalar(shape, value)

    def add(self, parent, name, shape, value):
        """Append the element(s) for a member named ``name`` to ``parent``."""
        if value is None:
            return
        flattened = shape.serialization.get('flattened')
        if shape.type_name == 'list' and flattened:
            for item in value:
                self.add(parent, name, shape.member, item)
        elif shape.type_name == 'map' and flattened:
            for key, item in value.items():
                entry = etree.SubElement(parent, self.tag(name))
                self._add_map_entry(entry, shape, key, item)
        else:
            child = etree.SubElement(parent, self.tag(name),
                                     nsmap=_shape_nsmap(shape) or None)
            self.fill(child, shape, value)

    def _fill_structure(self, element, shape, value):
        for member_name, member_shape in shape.members.items():
            item = value.get(member_name)
            if item is None:
                continue
            if member_shape.serialization.get('location') in NON_BODY_LOCATIONS:
                continue
            if member_shape.serialization.get('xmlAttribute'):
                element.set(_attribute_key(element, member_shape), str(item))
                continue
            self.add(element, member_xml_name(member_shape, member_name),
                     member_shape, item)

    def _add_map_entry(self, entry, shape, key, item):
        self.add(entry, shape.key.serialization.get('name', 'key'), shape.key, key)
        self.add(entry, shape.value.serialization.get('name', 'value'),
                 shape.value, item)


class Keyed(Mapping):
    """A structure's value that ``key`` (hashable) determines wholly, built by ``build()`` only
    when it is needed: TextWriter keeps the text it wrote for the value ``ident`` names (an
    instance id) with its key, and writes it again while the key is the same, without building
    the value. For values that are many and seldom change (the instances of a DescribeInstances
    of thousands): their key is what they are made of."""

    __slots__ = ("ident", "key", "_build", "_value")

    def __init__(self, ident, key, build):
        self.ident, self.key, self._build, self._value = ident, key, build, None

    def value(self):
        if self._value is None:
            self._value = self._build()
        return self._value

    def __getitem__(self, name):
        return self.value()[name]

    def __iter__(self):
        return iter(self.value())

    def __len__(self):
        return len(self.value())


class TextWriter:
    """XML text for values of shapes, the same document XmlWriter builds, several times faster.

    For shapes without XML attributes or namespace prefixes (EC2's and the query
    protocols'; S3's use XmlWriter): each shape is compiled once into a function that
    appends the text of its content to a list, so a value of 10,000 instances is one
    walk of plain dicts rather than an element tree.  Text is escaped as lxml does;
    a string XML cannot carry (control characters) is a ValueError, as with lxml.  The text
    of a Keyed value is kept with its key (for the ``remember`` most recently written).
    """

    def __init__(self, remember=50_000):
        self._content = {}  # shape name -> function(value, out)
        self._compiling, self._open = threading.RLock(), set()  # the shapes being compiled
        self._texts, self._texts_lock, self._remember = {}, threading.Lock(), remember

    def text(self, shape, value):
        """The XML text of ``value``'s content (the members of a structure, the items of a list)."""
        parts = []
        self._content_writer(shape)(value, parts)
        return ''.join(parts)

    def _content_writer(self, shape):
        writer = self._content.get(shape.name)
        if writer is not None:
            return writer
        with self._compiling:
            return self._content.get(shape.name) or self._compiled(shape)

    def _compiled(self, shape):
        """Compile ``shape`` (lock held) and keep its writer.  A writer is kept only once every
        shape it writes is compiled, so no thread calls a half-made one.  A recursive shape
        (EC2's and IAM's responses have none) is a ValueError."""
        if shape.name in self._open:
            raise ValueError(f'{shape.name}: a recursive shape needs XmlWriter')
        self._open.add(shape.name)
        try:
            writer = self._content[shape.name] = self._compile(shape)
        finally:
            self._open.discard(shape.name)
        return writer

    def _compile(self, shape):
        """function(value, parts) appending the text of a value's content to ``parts``."""
        kind = shape.type_name
        if kind == 'structure':
            members = {name: self._member_writer(member_xml_name(member, name), member)
                       for name, member in shape.members.items()
                       if member.serialization.get('location') not in NON_BODY_LOCATIONS}
            plans = {}  # the keys of a value -> its members in the shape's order

            def structure(value, parts):
                if value.__class__ is not Keyed:
                    members_of(value, parts)
                elif text := self._text_of(shape.name, value, members_of):
                    parts.append(text)

            def members_of(value, parts):
                keys = tuple(value)
                plan = plans.get(keys)
                if plan is None:
                    plan = plans[keys] = [(name, write) for name, write in members.items() if name in value]
                    if len(plans) > 256:
                        plans.clear()
                for name, write in plan:
                    item = value[name]
                    if item is not None:
                        write(item, parts)
            return structure
        if kind == 'list':
            item = self._member_writer(shape.member.serialization.get('name', 'member'), shape.member)

            def items(value, parts):
                for one in value:
                    item(one, parts)
            return items
        if kind == 'map':
            key = self._member_writer(shape.key.serialization.get('name', 'key'), shape.key)
            entry_value = self._member_writer(shape.value.serialization.get('name', 'value'), shape.value)

            def entries(value, parts):
                for k, v in value.items():
                    parts.append('<entry>')
                    key(k, parts)
                    entry_value(v, parts)
                    parts.append('</entry>')
            return entries
        if kind == 'string':
            return lambda value, parts: parts.append(xml_escape(str(value)))
        return lambda value, parts: parts.append(xml_escape(format_scalar(shape, value)))

    def _text_of(self, shape_name, keyed, write):
        """The text ``write`` writes for ``keyed``'s value: the one kept for it if its key is
        the same, or written now and kept in its place.  The first written go first when more
        than ``remember`` are kept (no reordering on a read: a read takes no lock)."""
        ident = (shape_name, keyed.ident)
        kept = self._texts.get(ident)
        if kept is not None and kept[0] == keyed.key:
            return kept[1]
        parts = []
        write(keyed.value(), parts)
        text = ''.join(parts)
        with self._texts_lock:
            self._texts.pop(ident, None)
            self._texts[ident] = keyed.key, text
            if len(self._texts) > self._remember:
                del self._texts[next(iter(self._texts))]
        return text

    def _member_writer(self, name, shape):
        """function(value, parts) appending the element(s) ``name`` of a value of ``shape``;
        an element without content is written ``<name/>``, as lxml writes it."""
        open_tag, close_tag, empty_tag = f'<{name}>', f'</{name}>', f'<{name}/>'
        kind = shape.type_name
        if kind == 'string':
            return lambda value, parts: parts.append(open_tag + xml_escape(str(value)) + close_tag)
        if kind not in ('structure', 'list', 'map'):
            return lambda value, parts: parts.append(open_tag + xml_escape(format_scalar(shape, value)) + close_tag)
        if _shape_nsmap(shape) or kind == 'map' and shape.serialization.get('flattened') or kind == 'structure' and any(
                m.serialization.get('xmlAttribute') for m in shape.members.values()):
            raise ValueError(f'{shape.name}: XML attributes, namespace prefixes and flattened maps need XmlWriter')
        if kind == 'list' and shape.serialization.get('flattened'):
            inner = self._member_writer(name, shape.member)

            def flattened(value, parts):
                for one in value:
                    inner(one, parts)
            return flattened
        content = self._content_writer(shape)

        def element(value, parts):
            start = len(parts)
            parts.append(open_tag)
            content(value, parts)
            if len(parts) == start + 1:
                parts[start] = empty_tag
            else:
                parts.append(close_tag)
        return element


_XML_SPECIAL = re.compile('[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]')
_XML_ENTITIES = {'&': '&amp;', '<': '&lt;', '>': '&gt;', '\r': '&#13;'}


def _entity(match):
    char = match.group()
    if char not in _XML_ENTITIES:
        raise ValueError('All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters')
    return _XML_ENTITIES[char]


def xml_escape(text):
    """``text`` as XML character data, escaped as lxml escapes it."""
    if _XML_SPECIAL.search(text) is None:
        return text
    return _XML_SPECIAL.sub(_entity, text)


def _shape_nsmap(shape):
    namespace = shape.serialization.get('xmlNamespace')
    if isinstance(namespace, dict) and namespace.get('prefix'):
        return {namespace['prefix']: namespace['uri']}
    return {}


def _attribute_key(element, member_shape):
    """'xsi:type' -> '{http://www.w3.org/2001/XMLSchema-instance}type'."""
    name = member_shape.serialization['name']
    prefix, _, local = name.rpartition(':')
    if prefix and prefix in element.nsmap:
        return f'{{{element.nsmap[prefix]}}}{local}'
    return local


# ---------------------------------------------------------------- XML in

def local_name(element):
    return etree.QName(element).localname


class XmlReader:
    """Reads an lxml element into a value of a shape (the inverse of XmlWriter).

    Namespaces are ignored (clients disagree on them); unknown elements are
    ignored as S3 does.  Raises ValueError for an unparsable scalar.
    """

    def read(self, shape, element):
        kind = shape.type_name
        if kind == 'structure':
            return self._read_structure(shape, element)
        if kind == 'list':
            return [self.read(shape.member, child) for child in element
                    if isinstance(child.tag, str)]
        if kind == 'map':
            return self._read_entries(shape, list(element))
        return parse_scalar(shape, element.text or '')

    def _read_structure(self, shape, element):
        children = {}
        for child in element:
            if isinstance(child.tag, str):
                children.setdefault(local_name(child), []).append(child)
        result = {}
        for member_name, member_shape in shape.members.items():
            if member_shape.serialization.get('location') in NON_BODY_LOCATIONS:
                continue
            if member_shape.serialization.get('xmlAttribute'):
                local = member_shape.serialization['name'].rpartition(':')[2]
                for key, text in element.attrib.items():
                    if etree.QName(key).localname == local:
                        result[member_name] = text
                continue
            nodes = children.get(member_xml_name(member_shape, member_name))
            if not nodes:
                continue
            flattened = member_shape.serialization.get('flattened')
            if member_shape.type_name == 'list' and flattened:
                result[member_name] = [self.read(member_shape.member, n)
                                       for n in nodes]
            elif member_shape.type_name == 'map' and flattened:
                result[member_name] = self._read_entries(member_shape, nodes)
            else:
                result[member_name] = self.read(member_shape, nodes[0])
        return result

    def _read_entries(self, shape, entries):
        key_name = shape.key.serialization.get('name', 'key')
        value_name = shape.value.serialization.get('name', 'value')
        result = {}
        for entry in entries:
            parts = {local_name(c): c for c in entry if isinstance(c.tag, str)}
            if key_name in parts and value_name in parts:
                key = self.read(shape.key, parts[key_name])
                result[key] = self.read(shape.value, parts[value_name])
        return result


def parse_xml_document(data):
    """Bytes -> root element; ValueError if it is not well-formed XML.

    Entities and network access are off: the body comes from the client.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True,
                             huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise ValueError(str(exc)) from None
    if root is None:
        raise ValueError('empty document')
    return root


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def to_bytes(element):
    """Serialized element with an XML declaration, as AWS sends it."""
    return (XML_DECLARATION.encode()
            + etree.tostring(element, encoding='UTF-8', xml_declaration=False))

"""SOAP messages of many records, read and written fast: straight between plain dicts and XML
(read with lxml, written as text), by the types of the service's shipped WSDL.

Why: spyne takes about 0.5 ms to write one instance record and zeep about 0.25 ms to read
one. A CC of 200 nodes polls each every few seconds (50 records an answer: 10,000 records a
cycle), and a CLC's first poll of such a cluster reads all 10,000 at once. Here a record
takes a tenth of that. Walrus reports a usage event for every PUT: a report of 500 cost it
30-40 ms of CPU with zeep and the CLC 60-70 ms with spyne; here a sixth of that. Only the
operations that carry many records go this way; every other one stays spyne's and zeep's.

- ``call(proxy, operation, **fields)``: the request goes zeep's way (its envelope, its
  transport: the same pooled mutual-TLS session, the request id) and the answer is read here
  into what ``cc.cluster.soap_to_dict`` makes of zeep's answer: strings, integers, doubles,
  booleans, nested types, repeated elements as lists (an absent one as an empty list); nil,
  empty and absent single elements left out. A SOAP fault is raised as zeep's Fault, an
  unreadable answer as zeep's TransportError.
- ``send(proxy, operation, fields)``: as ``call``, but the request's envelope is written here
  from the dict ``fields``: what zeep's holds (the same elements in the same order, no SOAP
  header), with zeep's HTTP headers.
- ``FastAnswers(app, service, handlers)``: WSGI middleware in front of a spyne application
  that answers the operations of ``handlers`` itself (a request whose SOAPAction names
  another operation passes unread): the request read as above, the handler's dict written
  in the WSDL's element order (what spyne would write, for zeep and for the original's
  clients); a request it cannot read, an EucaFault the handler raises and anything
  unexpected (logged) answered with a fault, as spyne answers them.
"""

import functools
import io
import logging
import re
from collections.abc import Callable

import requests.adapters
import zeep.exceptions
from lxml import etree
from zeep.wsdl.utils import etree_to_string

from eucacore import soap

log = logging.getLogger("eucalyptus.soap")

_XS = "http://www.w3.org/2001/XMLSchema"
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
#: lxml's escapes of text (a carriage return escaped survives parsing as itself).
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
#: A character XML 1.0 cannot hold.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ENVELOPE_START = (f"<?xml version='1.0' encoding='UTF-8'?>\n<soap11env:Envelope xmlns:soap11env=\"{_SOAP_ENV}\" "
                   f"xmlns:tns=\"{soap.TNS}\"><soap11env:Body>")
_ENVELOPE_END = "</soap11env:Body></soap11env:Envelope>"
_SCALARS = {"string": str, "integer": int, "long": int, "int": int, "double": float,
            "boolean": lambda text: text == "true"}


class SchemaTypes:
    """The complex types of a WSDL: for each, its elements' (type, repeated) in order, and
    each top-level element's type."""

    def __init__(self, wsdl: str):
        tree = etree.parse(wsdl)
        self.types: dict[str, dict[str, tuple[str, bool]]] = {}
        for complex_type in tree.iter(f"{{{_XS}}}complexType"):
            self.types[complex_type.get("name")] = {
                el.get("name"): (el.get("type").split(":", 1)[1], el.get("maxOccurs") == "unbounded")
                for el in complex_type.iter(f"{{{_XS}}}element")}
        self.elements = {el.get("name"): el.get("type").split(":", 1)[1]
                         for el in tree.iter(f"{{{_XS}}}element") if el.getparent().tag == f"{{{_XS}}}schema"}
        # Each type's elements by their qualified tag, for reading (cheaper than a QName apiece),
        # and with their start and end tags, for writing.
        self._by_tag = {type_name: {f"{{{soap.TNS}}}{name}": (name, *field) for name, field in fields.items()}
                        for type_name, fields in self.types.items()}
        self._writing = {type_name: [(name, *field, f"<tns:{name}>", f"</tns:{name}>")
                                     for name, field in fields.items()] for type_name, fields in self.types.items()}

    def read(self, element, type_name: str) -> dict:
        """The element of the complex type ``type_name`` as a dict; elements of another
        namespace are left out, as unknown ones."""
        fields = self._by_tag[type_name]
        out = {name: [] for name, _, repeated in fields.values() if repeated}
        for child in element:
            field = fields.get(child.tag)
            text = child.text
            if field is None or text is None and child.get(_XSI_NIL) == "true":
                continue
            name, child_type, repeated = field
            scalar = _SCALARS.get(child_type)
            if scalar is None:
                value = self.read(child, child_type)
            elif text is None:
                continue  # empty: zeep reads it as None
            else:
                value = scalar(text)
            if repeated:
                out[name].append(value)
            else:
                out[name] = value
        return out

    def write(self, parts: list[str], values: dict, type_name: str) -> None:
        """Append the XML of ``values`` (a dict of the complex type ``type_name``) to ``parts``:
        its elements in the type's order, prefixed ``tns``; None and unknown keys left out.
        Text is written straight, escaped as lxml escapes it, at a quarter of lxml's cost."""
        for name, child_type, repeated, start, end in self._writing[type_name]:
            value = values.get(name)
            if value is None:
                continue
            for item in (value if repeated else (value,)):
                parts.append(start)
                if child_type == "boolean":
                    parts.append("true" if item else "false")
                elif child_type in _SCALARS:
                    parts.append(str(item).translate(_ESCAPES))
                else:
                    self.write(parts, item, child_type)
                parts.append(end)

    def read_reply(self, content: bytes) -> dict:
        """The body of a SOAP reply as a dict; a fault is raised as zeep's Fault."""
        answer = etree.fromstring(content).find(f"{{{_SOAP_ENV}}}Body")[0]
        if answer.tag == f"{{{_SOAP_ENV}}}Fault":
            raise zeep.exceptions.Fault(answer.findtext("faultstring"), code=answer.findtext("faultcode"))
        return self.read(answer, self.elements[etree.QName(answer).localname])

    def envelope(self, element: str, values: dict) -> bytes:
        """A SOAP 1.1 envelope whose body is the top-level ``element`` holding ``values``; a
        string that XML cannot hold (a control character) raises ValueError, as lxml does."""
        parts = [_ENVELOPE_START, f"<tns:{element}>"]
        self.write(parts, values, self.elements[element])
        parts += (f"</tns:{element}>", _ENVELOPE_END)
        text = "".join(parts)
        if _NOT_XML.search(text):
            raise ValueError(f"{element}: a string holds a character XML cannot")
        return text.encode()


@functools.lru_cache(maxsize=8)
def schema_types(wsdl: str) -> SchemaTypes:
    return SchemaTypes(wsdl)


def call(proxy, operation: str, **fields) -> dict:
    """``operation`` of the service behind the zeep ``proxy``, sent as zeep would send it, its
    answer read here."""
    envelope = proxy._client.create_message(proxy, operation, **fields)
    return _post(proxy, operation, etree_to_string(envelope))


def send(proxy, operation: str, fields: dict) -> dict:
    """``operation`` of the service behind the zeep ``proxy`` with the request ``fields``
    written here, as zeep would write them; its answer read here."""
    types = schema_types(proxy._client.wsdl.location)
    return _post(proxy, operation, types.envelope(operation, fields))


def _post(proxy, operation: str, message: bytes) -> dict:
    """The request ``message`` posted through the transport of ``proxy`` with zeep's headers,
    the answer read; a fault raised as zeep's Fault, an unreadable answer as its TransportError
    (and a failed connection as requests' errors), as zeep raises them."""
    client, address = proxy._client, proxy._binding_options["address"]
    headers = {"SOAPAction": f'"{operation}"', "Content-Type": "text/xml; charset=utf-8"}
    response = client.transport.post(address, message, headers)
    try:
        return schema_types(client.wsdl.location).read_reply(response.content)
    except (etree.XMLSyntaxError, IndexError, TypeError, KeyError) as e:
        raise zeep.exceptions.TransportError(f"unreadable answer (HTTP {response.status_code}) from {address}: "
                                             f"{e}", status_code=response.status_code) from None


def widen_pool(proxy, hosts: int) -> None:
    """Let the session behind the zeep ``proxy`` keep a connection open to each of ``hosts``
    hosts (requests keeps 10 by default: a CC of more nodes would shake hands on every poll)."""
    session = proxy._client.transport.session
    if getattr(session.get_adapter("https://x/"), "_pool_connections", 0) < hosts:
        session.mount("https://", requests.adapters.HTTPAdapter(pool_connections=hosts, pool_maxsize=4))


class FastAnswers:
    """WSGI middleware: answers the operations of ``handlers`` (operation -> function of the
    request's dict returning the response's dict) of the service ``service`` itself, and
    passes every other request on to ``app``."""

    def __init__(self, app, service: str, handlers: dict[str, Callable[[dict], dict]]):
        self.app, self.handlers = app, handlers
        self.types = schema_types(str(soap.WSDL_DIR / f"{service}.wsdl"))

    def __call__(self, environ, start_response):
        action = environ.get("HTTP_SOAPACTION", "").strip('"')
        if environ.get("REQUEST_METHOD") != "POST" or action and action not in self.handlers:
            return self.app(environ, start_response)  # names another operation: spyne reads it
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        request = self._request(body)
        if request is None:
            return self.app(environ, start_response)
        operation, element = request
        try:
            fields = self.types.read(element, self.types.elements[operation])
        except ValueError as e:  # a number or a boolean that is none
            return self._refuse(start_response, "Client.SchemaValidationError", str(e))
        try:
            answer = self.handlers[operation](fields)
        except soap.EucaFault as e:
            return self._refuse(start_response, e.faultcode, e.faultstring)
        except Exception:
            log.exception("%s failed", operation)
            return self._refuse(start_response, "Server", "Internal Error")
        return self._respond(start_response, "200 OK", self.types.envelope(f"{operation}Response", answer))

    def _request(self, body: bytes):
        """(operation, its element) if the body is a request of one of ours, else None."""
        try:
            element = etree.fromstring(body).find(f"{{{_SOAP_ENV}}}Body")[0]
        except (etree.XMLSyntaxError, TypeError, IndexError):
            return None  # not ours to refuse: spyne answers it
        operation = etree.QName(element).localname
        return (operation, element) if operation in self.handlers else None

    def _refuse(self, start_response, code: str, message: str):
        """A SOAP fault, as spyne writes one."""
        return self._respond(start_response, "500 Internal Server Error", _fault(code, message))

    @staticmethod
    def _respond(start_response, status: str, content: bytes):
        start_response(status, [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(content)))])
        return [content]


def _fault(code: str, message: str) -> bytes:
    env = etree.Element(f"{{{_SOAP_ENV}}}Envelope", nsmap={"soap11env": _SOAP_ENV})
    fault = etree.SubElement(etree.SubElement(env, f"{{{_SOAP_ENV}}}Body"), f"{{{_SOAP_ENV}}}Fault")
    etree.SubElement(fault, "faultcode").text = f"soap11env:{code}"
    etree.SubElement(fault, "faultstring").text = message
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")

"""SOAP messages of many instance records, read and written fast: with lxml, straight between
plain dicts and XML, by the types of the service's shipped WSDL.

Why: spyne takes about 0.5 ms to write one instance record and zeep about 0.25 ms to read
one. A CC of 200 nodes polls each every few seconds (50 records an answer: 10,000 records a
cycle), and a CLC's first poll of such a cluster reads all 10,000 at once. Here a record
takes a tenth of that. Only the operations that carry many records go this way; every other
one stays spyne's and zeep's.

- ``call(proxy, operation, **fields)``: the request goes zeep's way (its envelope, its
  transport: the same pooled mutual-TLS session, the request id) and the answer is read here
  into what ``cc.cluster.soap_to_dict`` makes of zeep's answer: strings, integers, booleans,
  nested types, repeated elements as lists (an absent one as an empty list); nil, empty and
  absent single elements left out. A SOAP fault is raised as zeep's Fault, an unreadable
  answer as zeep's TransportError.
- ``FastAnswers(app, service, handlers)``: WSGI middleware in front of a spyne application
  that answers the operations of ``handlers`` itself: the request read as above, the
  handler's dict written in the WSDL's element order (what spyne would write, for zeep and
  for the original's clients); a request it cannot read, an EucaFault the handler raises and
  anything unexpected (logged) answered with a fault, as spyne answers them.
"""

import functools
import io
import logging
from collections.abc import Callable

import requests.adapters
import zeep.exceptions
from lxml import etree

from eucacore import soap

log = logging.getLogger("eucalyptus.soap")

_XS = "http://www.w3.org/2001/XMLSchema"
_SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_SCALARS = {"string": str, "integer": int, "long": int, "int": int, "boolean": lambda text: text == "true"}


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

    def read(self, element, type_name: str) -> dict:
        """The element of the complex type ``type_name`` as a dict."""
        fields = self.types[type_name]
        out = {name: [] for name, (_, repeated) in fields.items() if repeated}
        for child in element:
            name = etree.QName(child).localname
            if name not in fields or child.get(_XSI_NIL) == "true":
                continue
            child_type, repeated = fields[name]
            scalar = _SCALARS.get(child_type)
            if scalar is None:
                value = self.read(child, child_type)
            elif child.text is None:
                continue  # empty: zeep reads it as None
            else:
                value = scalar(child.text)
            if repeated:
                out[name].append(value)
            else:
                out[name] = value
        return out

    def write(self, parent, values: dict, type_name: str) -> None:
        """Append ``values`` (a dict of the complex type ``type_name``) to ``parent``, in the
        type's order; None and unknown keys left out."""
        for name, (child_type, repeated) in self.types[type_name].items():
            value = values.get(name)
            if value is None:
                continue
            for item in (value if repeated else [value]):
                child = etree.SubElement(parent, f"{{{soap.TNS}}}{name}")
                if child_type in _SCALARS:
                    child.text = ("true" if item else "false") if child_type == "boolean" else str(item)
                else:
                    self.write(child, item, child_type)

    def read_reply(self, content: bytes) -> dict:
        """The body of a SOAP reply as a dict; a fault is raised as zeep's Fault."""
        answer = etree.fromstring(content).find(f"{{{_SOAP_ENV}}}Body")[0]
        if answer.tag == f"{{{_SOAP_ENV}}}Fault":
            raise zeep.exceptions.Fault(answer.findtext("faultstring"), code=answer.findtext("faultcode"))
        return self.read(answer, self.elements[etree.QName(answer).localname])

    def envelope(self, element: str, values: dict) -> bytes:
        """A SOAP 1.1 envelope whose body is the top-level ``element`` holding ``values``."""
        env = etree.Element(f"{{{_SOAP_ENV}}}Envelope", nsmap={"soap11env": _SOAP_ENV, "tns": soap.TNS})
        body = etree.SubElement(env, f"{{{_SOAP_ENV}}}Body")
        self.write(etree.SubElement(body, f"{{{soap.TNS}}}{element}"), values, self.elements[element])
        return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


@functools.lru_cache(maxsize=8)
def schema_types(wsdl: str) -> SchemaTypes:
    return SchemaTypes(wsdl)


def call(proxy, operation: str, **fields) -> dict:
    """``operation`` of the service behind the zeep ``proxy``, sent as zeep would send it, its
    answer read here."""
    client, address = proxy._client, proxy._binding_options["address"]
    envelope = client.create_message(proxy, operation, **fields)
    headers = {"Content-Type": 'text/xml; charset="utf-8"', "SOAPAction": f'"{operation}"'}
    response = client.transport.post_xml(address, envelope, headers)
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
        if environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
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

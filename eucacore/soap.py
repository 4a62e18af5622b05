"""SOAP between components: spyne services on the server side, zeep clients on the other.

Each service's WSDL is generated from its spyne application and shipped in
``eucacore/wsdl/``; clients load it from there and point it at any host. All calls
go over mutual TLS with the caller's cloud-issued certificate, and carry the
current request id in ``X-Euca-Request-Id``.
"""

import functools
import importlib
from pathlib import Path

import requests
import zeep
import zeep.exceptions
import zeep.transports
from spyne import Application, Fault, rpc
from spyne.interface.wsdl import Wsdl11
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from eucacore.config import split_hostport  # noqa: F401 (re-exported for callers of soap.client)
from eucacore.ids import current_request_id
from eucacore.pki import KeyPair
from eucacore.serving import REQUEST_ID_HEADER

TNS = "http://eucalyptus.ucsb.edu/"
WSDL_DIR = Path(__file__).parent / "wsdl"

#: Service name -> (module with an ``application()`` factory, URL path on its port).
SERVICES = {
    "EucalyptusCC": ("cc.service", "/axis2/services/EucalyptusCC"),
    "EucalyptusNC": ("nc.service", "/axis2/services/EucalyptusNC"),
    "EucalyptusSC": ("sc.service", "/services/Storage"),
    "EucalyptusCLC": ("clc.internal", "/services/Eucalyptus"),
}


class EucaFault(Fault):
    """A SOAP fault with a ``Client.<Code>`` or ``Server.<Code>`` faultcode and a one-line reason."""

    def __init__(self, code: str, message: str, client: bool = True):
        super().__init__(faultcode=f"{'Client' if client else 'Server'}.{code}", faultstring=message)


def operation(name: str, request_type, response_type):
    """spyne's ``@rpc`` for one operation, as every service here declares it: a bare ``<name>``
    request of ``request_type``, answered by a bare ``<name>Response`` of ``response_type``."""
    return rpc(request_type, _returns=response_type, _body_style="bare",
               _in_message_name=name, _out_message_name=f"{name}Response")


def make_application(services: list, name: str) -> Application:
    """A SOAP 1.1 document/literal spyne application in the eucalyptus namespace, lxml-validated."""
    app = Application(services, tns=TNS, name=name, in_protocol=Soap11(validator="lxml"),
                      out_protocol=Soap11())
    return app


def wsgi_app(app: Application) -> WsgiApplication:
    """The WSGI face of a spyne application."""
    return WsgiApplication(app)


def wsdl_document(app: Application, location: str) -> bytes:
    """The WSDL of ``app`` with ``location`` as its endpoint address."""
    WsgiApplication(app)  # declares the HTTP transport in the binding; zeep ignores others
    wsdl = Wsdl11(app.interface)
    wsdl.build_interface_document(location)
    return wsdl.get_interface_document()


def generate_wsdls(out_dir: Path = WSDL_DIR) -> list[Path]:
    """Write every service's WSDL into ``out_dir``; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (module, path) in SERVICES.items():
        app = importlib.import_module(module).application()
        target = out_dir / f"{name}.wsdl"
        target.write_bytes(wsdl_document(app, f"https://localhost{path}"))
        written.append(target)
    return written


class _RequestIdTransport(zeep.transports.Transport):
    """zeep transport that carries the current request id to the next component."""

    def post(self, address, message, headers):
        headers = dict(headers)
        if current_request_id.get() != "-":
            headers[REQUEST_ID_HEADER] = current_request_id.get()
        return super().post(address, message, headers)


@functools.lru_cache(maxsize=32)
def _client(service: str, cert: str, key: str, ca: str, timeout: float) -> zeep.Client:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA with the system's
    session.verify = ca
    session.cert = (cert, key)
    transport = _RequestIdTransport(session=session, timeout=timeout, operation_timeout=timeout)
    return zeep.Client(str(WSDL_DIR / f"{service}.wsdl"), transport=transport)


def client(service: str, host: str, port: int, keys: KeyPair, timeout: float = 30):
    """A zeep service proxy for ``service`` (e.g. ``EucalyptusNC``) at host:port over mutual TLS."""
    c = _client(service, str(keys.cert), str(keys.key), str(keys.ca), timeout)
    path = SERVICES[service][1]
    return c.create_service(f"{{{TNS}}}{service}", f"https://{host}:{port}{path}")




Fault = zeep.exceptions.Fault
TransportError = (zeep.exceptions.TransportError, requests.exceptions.RequestException)
#: The request was sent and no answer came in time: what it did, if anything, is unknown.
Unanswered = requests.exceptions.ReadTimeout

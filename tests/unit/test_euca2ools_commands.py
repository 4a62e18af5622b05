"""Whole euca-* commands over a real socket, real botocore, and a tiny EC2 stand-in.

The stand-in speaks just enough of the EC2 query protocol (three actions) to
exercise option handling, signing, printing and the error paths.
"""

import http.server
import threading
import urllib.parse

import pytest

from euca2ools import cli, ec2

REGIONS_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeRegionsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-1</requestId>
  <regionInfo>
    <item><regionName>eucalyptus</regionName>
      <regionEndpoint>http://10.1.1.10:8773/services/Eucalyptus</regionEndpoint></item>
  </regionInfo>
</DescribeRegionsResponse>"""

KEYPAIR_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<CreateKeyPairResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>req-2</requestId>
  <keyName>mykey</keyName>
  <keyFingerprint>1f:51:ae:28</keyFingerprint>
  <keyMaterial>-----BEGIN RSA PRIVATE KEY-----
MIIEpA
-----END RSA PRIVATE KEY-----</keyMaterial>
</CreateKeyPairResponse>"""

NOT_FOUND_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code>
<Message>The instance ID 'i-12345678' does not exist</Message></Error></Errors>
<RequestID>req-3</RequestID></Response>"""


class FakeClc(http.server.BaseHTTPRequestHandler):
    """Answers DescribeRegions, CreateKeyPair; everything else is NotFound."""

    requests: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        params = dict(urllib.parse.parse_qsl(body.decode()))
        FakeClc.requests.append((self.path, self.headers.get('Authorization', ''), params))
        status, payload = {'DescribeRegions': (200, REGIONS_XML),
                           'CreateKeyPair': (200, KEYPAIR_XML)}.get(
            params.get('Action'), (400, NOT_FOUND_XML))
        self.send_response(status)
        self.send_header('Content-Type', 'text/xml')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def clc_url(monkeypatch, tmp_path):
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), FakeClc)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    FakeClc.requests = []
    url = f'http://127.0.0.1:{server.server_port}/services/Eucalyptus'
    for name in ('EUCA_DEFAULT_REGION', 'AWS_DEFAULT_REGION', 'AWS_ACCESS_KEY',
                 'EC2_ACCESS_KEY', 'AWS_SECRET_KEY', 'EC2_SECRET_KEY', 'AWS_PROFILE'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HOME', str(tmp_path))
    monkeypatch.setenv('EC2_URL', url)
    monkeypatch.setenv('AWS_ACCESS_KEY_ID', 'AKIEUCAEXAMPLE0001')
    monkeypatch.setenv('AWS_SECRET_ACCESS_KEY', 'secret')
    # Set on these machines; must not matter for an explicit verify=.
    monkeypatch.setenv('AWS_CA_BUNDLE', str(tmp_path / 'no-such-bundle.pem'))
    yield url
    server.shutdown()
    server.server_close()


def test_describe_regions_end_to_end(clc_url, capsys):
    assert ec2.describe_regions([]) == 0
    assert capsys.readouterr().out == (
        'REGION\teucalyptus\thttp://10.1.1.10:8773/services/Eucalyptus\n')
    path, authorization, params = FakeClc.requests[0]
    assert path == '/services/Eucalyptus'
    assert params['Action'] == 'DescribeRegions'
    assert 'Credential=AKIEUCAEXAMPLE0001/' in authorization
    assert '/eucalyptus/ec2/aws4_request' in authorization


def test_region_and_keys_from_options(clc_url, capsys):
    assert ec2.describe_regions(['--region', 'other', '-I', 'CLIKEY', '-S', 'x']) == 0
    authorization = FakeClc.requests[0][1]
    assert 'Credential=CLIKEY/' in authorization and '/other/ec2/' in authorization


def test_client_error_is_one_line(clc_url, capsys):
    assert ec2.describe_instances(['i-12345678']) == 1
    captured = capsys.readouterr()
    assert captured.out == ''
    assert captured.err == ("euca-describe-instances: error (InvalidInstanceID.NotFound): "
                            "The instance ID 'i-12345678' does not exist\n")


def test_debug_adds_traceback(clc_url, capsys):
    assert ec2.describe_instances(['--debug', 'i-12345678']) == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err
    assert err.rstrip().endswith("error (InvalidInstanceID.NotFound): "
                                 "The instance ID 'i-12345678' does not exist")


def test_create_keypair_to_file(clc_url, capsys, tmp_path):
    key_file = tmp_path / 'mykey.priv'
    assert ec2.create_keypair(['mykey', '-f', str(key_file)]) == 0
    assert capsys.readouterr().out == 'KEYPAIR\tmykey\t1f:51:ae:28\n'
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.read_text().startswith('-----BEGIN RSA PRIVATE KEY-----\nMIIEpA')


def test_create_keypair_to_stdout(clc_url, capsys):
    assert ec2.create_keypair(['mykey']) == 0
    assert capsys.readouterr().out.splitlines() == [
        'KEYPAIR\tmykey\t1f:51:ae:28', '-----BEGIN RSA PRIVATE KEY-----', 'MIIEpA',
        '-----END RSA PRIVATE KEY-----']


def test_connection_refused_is_one_line(clc_url, capsys):
    import socket
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(('127.0.0.1', 0))
        port = probe.getsockname()[1]
    url = f'http://127.0.0.1:{port}/services/Eucalyptus'
    assert ec2.describe_regions(['-U', url]) == 1
    assert capsys.readouterr().err == (
        f'euca-describe-regions: error: cannot reach EC2_URL {url}: Connection refused\n')


def test_missing_credentials_is_one_line(clc_url, capsys, monkeypatch):
    monkeypatch.delenv('AWS_SECRET_ACCESS_KEY')
    assert ec2.describe_regions([]) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1
    assert err.startswith('euca-describe-regions: error: missing secret key')


def test_unreadable_user_data_file_is_one_line(clc_url, capsys, tmp_path):
    assert ec2.run_instances(['emi-1', '-f', str(tmp_path / 'absent')]) == 1
    err = capsys.readouterr().err
    assert err.startswith('euca-run-instances: error: ') and err.count('\n') == 1


def test_describe_error_fallback_for_other_errors():
    assert cli.describe_error(ValueError('odd')) == 'error: odd'

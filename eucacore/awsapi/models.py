"""The Eucalyptus-only service models, for our servers and for botocore clients.

Three services are ours, not AWS's, and are described here in botocore's own
model format (``data/``):

- ``euare``: botocore's ``iam`` model plus the original Euare's additions
  (CreateAccount, ListAccounts, DeleteAccount, account policies, quotas).
  Every input also accepts ``DelegateAccount``: the cloud admin acting inside
  another account, as euare-* ``--as-account`` did.
- ``properties``: DescribeProperties / ModifyPropertyValue
  (``euca-describe-properties``, ``euca-modify-property``).
- ``reporting``: GenerateReport (``eureport-generate-report``).

The server walks the same ``ServiceModel`` that :func:`client` gives to
botocore, so our clients and our servers cannot drift apart; stock boto3
``iam`` clients work against the Euare endpoint unchanged.
"""

import copy
import functools
import json
from pathlib import Path

import boto3
import botocore.handlers
import botocore.loaders
import botocore.model
import botocore.session
from botocore.exceptions import DataNotFoundError

DATA = Path(__file__).parent / 'data'

#: Service name -> the API version the model carries.
VERSIONS = {'euare': '2010-05-08', 'properties': '2015-01-01', 'reporting': '2012-12-01'}

#: The input member every Euare operation accepts (stripped by the server).
DELEGATE = 'DelegateAccount'


def _json(name):
    return json.loads((DATA / name).read_text())


def _merged_euare(iam):
    raw = copy.deepcopy(iam)
    extra = _json('euare-extensions.json')
    raw['operations'].update(extra['operations'])
    raw['shapes'].update(extra['shapes'])
    raw['shapes']['euareDelegateAccount'] = {'type': 'string'}
    for operation in raw['operations'].values():
        if 'input' not in operation:
            name = operation['name'] + 'EuareInput'
            raw['shapes'][name] = {'type': 'structure', 'members': {}}
            operation['input'] = {'shape': name}
        shape = raw['shapes'][operation['input']['shape']]
        shape.setdefault('members', {})[DELEGATE] = {'shape': 'euareDelegateAccount'}
    raw['metadata'] = dict(raw['metadata'], serviceId='Euare', uid='euare-2010-05-08',
                           serviceFullName='Eucalyptus Euare (IAM)')
    return raw


class _Loader(botocore.loaders.Loader):
    """botocore's loader, which also knows our three services."""

    def load_service_model(self, service_name, type_name, api_version=None):
        if service_name in VERSIONS:
            return raw_model(service_name, type_name)
        return super().load_service_model(service_name, type_name, api_version)

    def list_available_services(self, type_name):
        return sorted(set(super().list_available_services(type_name)) | set(VERSIONS))

    def determine_latest_version(self, service_name, type_name):
        if service_name in VERSIONS:
            return VERSIONS[service_name]
        return super().determine_latest_version(service_name, type_name)


@functools.lru_cache(maxsize=None)
def _raw(service_name, type_name):
    if type_name == 'endpoint-rule-set-1':
        return _json('endpoint-rule-set.json')
    if type_name != 'service-2':
        raise DataNotFoundError(data_path=f'{service_name}/{type_name}')
    if service_name == 'euare':
        iam = botocore.loaders.Loader().load_service_model('iam', 'service-2')
        return _merged_euare(iam)
    return _json(f'{service_name}.json')


def raw_model(service_name, type_name='service-2'):
    """A fresh copy of the raw model dict (botocore may annotate what it is given)."""
    return copy.deepcopy(_raw(service_name, type_name))


@functools.lru_cache(maxsize=None)
def service_model(service_name):
    """The botocore ``ServiceModel`` of one of our services."""
    return botocore.model.ServiceModel(raw_model(service_name), service_name=service_name)


def botocore_session():
    """A botocore session that knows our services and ignores ~/.aws profiles."""
    session = botocore.session.Session(session_vars={'profile': (None, None, None, None)})
    session.register_component('data_loader', _Loader())
    # As for iam: policy documents arrive URL-encoded JSON and are handed over as dicts.
    session.register('after-call.euare', botocore.handlers.json_decode_policies)
    return session


def client(service_name, *, endpoint_url, access_key, secret_key, region='eucalyptus',
           verify=None, config=None):
    """A boto3 client of ``euare``, ``properties`` or ``reporting`` (or any AWS service)."""
    return boto3.session.Session(botocore_session=botocore_session()).client(
        service_name, endpoint_url=endpoint_url, region_name=region,
        aws_access_key_id=access_key, aws_secret_access_key=secret_key,
        aws_session_token=None, verify=verify, config=config)

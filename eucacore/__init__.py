"""Shared core of the cloud: configuration, state, PKI, serving, SOAP and the AWS wire layer."""

__version__ = "0.1.0"

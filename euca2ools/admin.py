"""The cloud admin's commands for cloud properties and usage reports.

``euca-describe-properties`` / ``euca-modify-property`` talk to the CLC's
Properties service, ``eureport-generate-report`` to its Reporting service;
each is a parser, a pure request builder and an output formatter, as in
``euca2ools.ec2``.
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Mapping

from euca2ools import cli, output
from euca2ools.cli import CommandError
from eucacore import ids

REPORT_TYPES = ('instance', 'volume', 'snapshot', 's3')
REPORT_FORMATS = ('csv', 'json')
DEFAULT_REPORT_PERIOD = datetime.timedelta(days=1)


# --- properties --------------------------------------------------------------

def describe_properties_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-properties."""
    parser = cli.command_parser('euca-describe-properties', 'Show cloud properties',
                                service='properties')
    parser.add_argument('names', metavar='PROPERTY', nargs='*',
                        help='limit results to specific properties')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help="also show each property's description")
    return parser


def describe_properties_request(args: argparse.Namespace) -> dict:
    """DescribeProperties keyword arguments for parsed options."""
    return {'Properties': args.names} if args.names else {}


def format_properties(response: Mapping, verbose: bool = False, empty: str = '') -> list[str]:
    """DescribeProperties -> PROPERTY name value (with ``verbose``, DESCRIPTION name text)."""
    lines = []
    for prop in response.get('Properties') or ():
        lines.append(output.tabify(('PROPERTY', prop.get('Name'), prop.get('Value')), empty))
        if verbose:
            lines.append(output.tabify(('DESCRIPTION', prop.get('Name'),
                                        prop.get('Description')), empty))
    return lines


def describe_properties(argv=None) -> int:
    """euca-describe-properties: PROPERTY name value."""
    def action(properties, args):
        response = properties.describe_properties(**describe_properties_request(args))
        return format_properties(response, args.verbose, cli.empty_field(args))
    return cli.run(describe_properties_parser(), action, argv, service='properties')


def parse_assignment(text: str) -> tuple[str, str]:
    """argparse type for ``NAME=VALUE`` (the value may be empty or hold '=')."""
    name, sep, value = text.partition('=')
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"'{text}' must have format NAME=VALUE")
    return name, value


def modify_property_parser() -> argparse.ArgumentParser:
    """Arguments of euca-modify-property."""
    parser = cli.command_parser('euca-modify-property', 'Change a cloud property',
                                service='properties')
    change = parser.add_mutually_exclusive_group(required=True)
    change.add_argument('-p', '--property', dest='assignment', metavar='NAME=VALUE',
                        type=parse_assignment, help='give a property a new value')
    change.add_argument('-f', '--property-from-file', dest='file_assignment',
                        metavar='NAME=FILE', type=parse_assignment,
                        help="give a property a file's contents as its value")
    change.add_argument('-r', '--reset', metavar='NAME',
                        help='return a property to its default value')
    return parser


def modify_property_request(args: argparse.Namespace, file_value: str | None = None) -> dict:
    """ModifyPropertyValue keyword arguments; ``file_value`` is the -f file's text."""
    if args.reset:
        return {'Name': args.reset, 'Reset': True}
    if args.file_assignment:
        return {'Name': args.file_assignment[0], 'Value': file_value}
    name, value = args.assignment
    return {'Name': name, 'Value': value}


def format_property_change(response: Mapping, empty: str = '') -> list[str]:
    """ModifyPropertyValue -> PROPERTY name ``value was oldvalue``."""
    change = f"{response.get('Value') or ''} was {response.get('OldValue') or ''}"
    return [output.tabify(('PROPERTY', response.get('Name'), change), empty)]


def modify_property(argv=None) -> int:
    """euca-modify-property: PROPERTY name ``value was oldvalue``."""
    def action(properties, args):
        file_value = None
        if args.file_assignment:
            with open(args.file_assignment[1], encoding='utf-8') as value_file:
                file_value = value_file.read()
        response = properties.modify_property_value(**modify_property_request(args, file_value))
        return format_property_change(response, cli.empty_field(args))
    return cli.run(modify_property_parser(), action, argv, service='properties')


# --- usage reports -----------------------------------------------------------

def parse_time(text: str) -> datetime.datetime:
    """argparse type for a report bound: a date (midnight UTC) or an ISO 8601 time (UTC if naive)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a date (2024-05-31) or an ISO 8601 time "
            "(2024-05-31T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def generate_report_parser() -> argparse.ArgumentParser:
    """Arguments of eureport-generate-report."""
    parser = cli.command_parser('eureport-generate-report', 'Generate a usage report',
                                service='reporting')
    parser.add_argument('-t', '--type', dest='report_type', required=True, choices=REPORT_TYPES,
                        help='what to report the usage of (required)')
    parser.add_argument('-f', '--format', dest='report_format', choices=REPORT_FORMATS,
                        default='csv', help='report format (default: csv)')
    parser.add_argument('-s', '--start-date', dest='start', metavar='START', type=parse_time,
                        help='start of the period (date or ISO 8601 time; default: END - 24h)')
    parser.add_argument('-e', '--end-date', dest='end', metavar='END', type=parse_time,
                        help='end of the period (date or ISO 8601 time; default: now)')
    parser.add_argument('-a', '--account', dest='account', metavar='ACCOUNT',
                        help="report only this account's usage")
    parser.add_argument('-F', '--file', dest='report_file', metavar='FILE',
                        help='write the report to FILE instead of printing it')
    return parser


def generate_report_request(args: argparse.Namespace, now: datetime.datetime) -> dict:
    """GenerateReport keyword arguments; the period defaults to the 24 hours up to ``now``.

    Raises CommandError when the period is empty.
    """
    end = args.end or now
    start = args.start or end - DEFAULT_REPORT_PERIOD
    if start >= end:
        raise CommandError(f'the start of the period ({start.isoformat()}) must be before '
                           f'its end ({end.isoformat()})')
    request = {'Type': args.report_type, 'Format': args.report_format,
               'StartDate': start, 'EndDate': end}
    if args.account:
        request['AccountName'] = args.account
    return request


def report_lines(response: Mapping) -> list[str]:
    """GenerateReport -> the report's text as output lines (none for an empty report)."""
    data = response.get('Data') or ''
    return [data.rstrip('\n')] if data else []


def generate_report(argv=None) -> int:
    """eureport-generate-report: the report, on stdout or into -F FILE."""
    def action(reporting, args):
        response = reporting.generate_report(**generate_report_request(args, ids.utcnow()))
        if not args.report_file:
            return report_lines(response)
        with open(args.report_file, 'w', encoding='utf-8') as report:
            report.write(response.get('Data') or '')
        return []
    return cli.run(generate_report_parser(), action, argv, service='reporting')

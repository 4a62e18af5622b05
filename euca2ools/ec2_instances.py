"""Instance commands beyond run/describe/terminate: euca-describe-instance-types,
euca-reboot-instances, euca-stop-instances, euca-start-instances,
euca-get-console-output and euca-describe-instance-status.

As in ``euca2ools.ec2``: a parser, a pure request builder and a formatter per
command, and the console script ``<command>(argv=None)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence

from euca2ools import cli, ec2, output

#: The zone name that makes the cloud admin's DescribeAvailabilityZones list
#: each zone's free/max instances per type ("|- m1.small" pseudo-zones).
VERBOSE = 'verbose'
_TYPE_COLUMNS = {'name': 'Name', 'cpu': 'CPUs', 'memory': 'Memory (MiB)', 'disk': 'Disk (GiB)',
                 'used': 'Used', 'total': 'Total', 'used_pct': 'Used %'}
# euca-get-console-output shows control characters (but tab, LF, CR) caret-escaped.
_CONTROL_ESCAPES = {chr(code): '^' + chr(code + 64) for code in range(32)
                    if chr(code) not in '\t\n\r'}
_CONTROL_ESCAPES['\x7f'] = '^?'

Capacity = dict[str, dict[str, tuple[int, int]]]  # zone -> type -> (free, max)


def _instances_parser(prog: str, description: str,
                      required: bool = True) -> argparse.ArgumentParser:
    parser = cli.command_parser(prog, description)
    parser.add_argument('instances', metavar='INSTANCE', nargs='+' if required else '*',
                        help='ID(s) of the instance(s)' if required
                        else 'limit results to specific instances')
    return parser


# --- instance types ----------------------------------------------------------

def describe_instance_types_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-instance-types."""
    parser = cli.command_parser('euca-describe-instance-types',
                                '[Eucalyptus only] Show information about instance types')
    parser.add_argument('types', metavar='INSTANCETYPE', nargs='*',
                        help='limit results to specific instance types')
    parser.add_argument('--by-zone', dest='by_zone', action='store_true',
                        help='show info for each availability zone separately')
    parser.add_argument('--show-capacity', dest='show_capacity', action='store_true',
                        help='show info about instance capacity (cloud admin)')
    return parser


def describe_instance_types_request(args: argparse.Namespace) -> dict:
    """DescribeInstanceTypes keyword arguments for parsed options."""
    return {'InstanceTypes': args.types} if args.types else {}


def capacity_of_zones(response: Mapping) -> Capacity:
    """zone -> type -> (free, max) from a ``verbose`` DescribeAvailabilityZones.

    Each zone is followed by ``|- <type>`` entries whose state reads
    ``free / max cpu ram disk``; plain zones (not the cloud admin) give none.
    """
    capacity: Capacity = {}
    zone = None
    for entry in response.get('AvailabilityZones', ()):
        name = entry.get('ZoneName') or ''
        if not name.startswith('|- '):
            zone = name
            capacity[zone] = {}
            continue
        fields = (entry.get('State') or '').split()
        if zone is None or len(fields) < 3 or fields[1] != '/':
            continue  # the "|- vm types" header
        try:
            capacity[zone][name[3:]] = (int(fields[0]), int(fields[2]))
        except ValueError:
            continue
    return capacity


def _type_row(instance_type: Mapping, free_max: tuple[int, int] | None) -> dict:
    total = free_max[1] if free_max else 0
    used = total - (free_max[0] if free_max else 0)
    return {'name': instance_type.get('InstanceType'),
            'cpu': (instance_type.get('VCpuInfo') or {}).get('DefaultVCpus'),
            'memory': (instance_type.get('MemoryInfo') or {}).get('SizeInMiB'),
            'disk': (instance_type.get('InstanceStorageInfo') or {}).get('TotalSizeInGB', 0),
            'used': used, 'total': total, 'used_pct': f'{used / total:.0%}' if total else ''}


def _type_table(rows: Sequence[dict], with_capacity: bool) -> list[str]:
    widths = {field: max([len(header)] + [len(str(row[field])) for row in rows])
              for field, header in _TYPE_COLUMNS.items()}
    template = ('{{name:<{name}}}  {{cpu:>{cpu}}}  {{memory:>{memory}}}  {{disk:>{disk}}}')
    if with_capacity:
        template += '  {{used:>{used}}} / {{total:>{total}}}  {{used_pct:>{used_pct}}}'
    template = template.format(**widths)
    return ['INSTANCETYPE\t' + template.format(**row) for row in [_TYPE_COLUMNS, *rows]]


def format_instance_types(types: Sequence[Mapping], capacity: Capacity | None = None,
                          by_zone: bool = False) -> list[str]:
    """INSTANCETYPE lines as a column-aligned table: a header, then Name CPUs Memory Disk
    per type, with Used / Total Used% when ``capacity`` is given (summed over the zones,
    or with ``by_zone`` a table per zone after AVAILABILITYZONE name, each ending blank)."""
    if capacity is None:
        return _type_table([_type_row(t, None) for t in types], False)
    if by_zone:
        lines: list[str] = []
        for zone, zone_capacity in sorted(capacity.items()):
            lines.append(output.tabify(('AVAILABILITYZONE', zone)))
            lines.extend(_type_table([_type_row(t, zone_capacity.get(t.get('InstanceType')))
                                      for t in types], True))
            lines.append('')
        return lines
    totals: dict[str, tuple[int, int]] = {}
    for zone_capacity in capacity.values():
        for name, (free, most) in zone_capacity.items():
            old_free, old_most = totals.get(name, (0, 0))
            totals[name] = (old_free + free, old_most + most)
    return _type_table([_type_row(t, totals.get(t.get('InstanceType'))) for t in types], True)


def describe_instance_types(argv=None) -> int:
    """euca-describe-instance-types: the INSTANCETYPE table (capacity from the zones)."""
    def action(client, args):
        types = client.describe_instance_types(
            **describe_instance_types_request(args)).get('InstanceTypes', [])
        capacity = None
        if args.show_capacity or args.by_zone:
            capacity = capacity_of_zones(
                client.describe_availability_zones(ZoneNames=[VERBOSE]))
        return format_instance_types(types, capacity, args.by_zone)
    return cli.run(describe_instance_types_parser(), action, argv)


# --- reboot, stop, start -----------------------------------------------------

def reboot_instances_parser() -> argparse.ArgumentParser:
    """Arguments of euca-reboot-instances."""
    return _instances_parser('euca-reboot-instances', 'Reboot one or more instances')


def reboot_instances(argv=None) -> int:
    """euca-reboot-instances: prints nothing."""
    def action(client, args):
        client.reboot_instances(InstanceIds=args.instances)
        return []
    return cli.run(reboot_instances_parser(), action, argv)


def stop_instances_parser() -> argparse.ArgumentParser:
    """Arguments of euca-stop-instances."""
    parser = _instances_parser('euca-stop-instances', 'Stop one or more running instances')
    parser.add_argument('-f', '--force', action='store_true',
                        help='immediately stop the instance(s). Data may be lost')
    return parser


def stop_instances_request(args: argparse.Namespace) -> dict:
    """StopInstances keyword arguments for parsed options."""
    request: dict = {'InstanceIds': args.instances}
    if args.force:
        request['Force'] = True
    return request


def stop_instances(argv=None) -> int:
    """euca-stop-instances: INSTANCE id previous-state current-state."""
    def action(client, args):
        response = client.stop_instances(**stop_instances_request(args))
        return output.format_state_changes(response.get('StoppingInstances'),
                                           cli.empty_field(args))
    return cli.run(stop_instances_parser(), action, argv)


def start_instances_parser() -> argparse.ArgumentParser:
    """Arguments of euca-start-instances."""
    return _instances_parser('euca-start-instances', 'Start one or more stopped instances')


def start_instances(argv=None) -> int:
    """euca-start-instances: INSTANCE id previous-state current-state."""
    def action(client, args):
        response = client.start_instances(InstanceIds=args.instances)
        return output.format_state_changes(response.get('StartingInstances'),
                                           cli.empty_field(args))
    return cli.run(start_instances_parser(), action, argv)


# --- console output ----------------------------------------------------------

def get_console_output_parser() -> argparse.ArgumentParser:
    """Arguments of euca-get-console-output."""
    parser = cli.command_parser('euca-get-console-output',
                                'Retrieve console output for the specified instance')
    parser.add_argument('instance', metavar='INSTANCE',
                        help='ID of the instance to obtain console output from')
    parser.add_argument('-r', '--raw-console-output', dest='raw', action='store_true',
                        help='display raw output without escaping control characters')
    return parser


def escape_control_characters(text: str) -> str:
    """Control characters other than tab, LF and CR as ^X; undecodable bytes (U+FFFD) as '?'."""
    text = text.replace('\ufffd', '?')
    return text.translate(str.maketrans(_CONTROL_ESCAPES))


def format_console_output(response: Mapping, raw: bool = False, empty: str = '') -> list[str]:
    """GetConsoleOutput -> the instance id, the timestamp, then the console text.

    botocore has already base64-decoded Output (as UTF-8, undecodable bytes
    replaced).
    """
    text = response.get('Output') or ''
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    if not raw:
        text = escape_control_characters(text)
    return [output.tabify((response.get('InstanceId'),), empty),
            output.tabify((response.get('Timestamp'),), empty), text]


def get_console_output(argv=None) -> int:
    """euca-get-console-output: instance id, timestamp, console text."""
    def action(client, args):
        response = client.get_console_output(InstanceId=args.instance)
        return format_console_output(response, args.raw, cli.empty_field(args))
    return cli.run(get_console_output_parser(), action, argv)


# --- instance status ---------------------------------------------------------

def describe_instance_status_parser() -> argparse.ArgumentParser:
    """Arguments of euca-describe-instance-status."""
    parser = _instances_parser('euca-describe-instance-status',
                               'Show information about instance status and scheduled events',
                               required=False)
    parser.add_argument('--hide-healthy', dest='hide_healthy', action='store_true',
                        help='hide instances where all status checks pass')
    parser.add_argument('--include-all-instances', dest='include_all', action='store_true',
                        help='show all instances, not just those that are running')
    cli.add_filter_option(parser)
    return parser


def describe_instance_status_request(args: argparse.Namespace) -> dict:
    """DescribeInstanceStatus keyword arguments for parsed options."""
    request: dict = {'InstanceIds': args.instances} if args.instances else {}
    if args.include_all:
        request['IncludeAllInstances'] = True
    return ec2.with_filters(request, args)


def format_instance_statuses(response: Mapping, hide_healthy: bool = False,
                             empty: str = '') -> list[str]:
    """DescribeInstanceStatus -> per instance INSTANCE id zone state code instanceStatus
    systemStatus retirementStatus retirementDate, then SYSTEMSTATUS, INSTANCESTATUS and
    EVENT lines. ``hide_healthy`` leaves out instances whose two checks are "ok"."""
    lines: list[str] = []
    for status in response.get('InstanceStatuses', ()):
        system = status.get('SystemStatus') or {}
        instance = status.get('InstanceStatus') or {}
        if hide_healthy and system.get('Status') == 'ok' and instance.get('Status') == 'ok':
            continue
        events = status.get('Events') or []
        starts = [event['NotBefore'] for event in events if event.get('NotBefore')]
        state = status.get('InstanceState') or {}
        lines.append(output.tabify((
            'INSTANCE', status.get('InstanceId'), status.get('AvailabilityZone'),
            state.get('Name'), state.get('Code'), instance.get('Status'), system.get('Status'),
            # Retirement is not in the EC2 API; euca2ools inferred it from events.
            'retiring' if events else 'active', min(starts) if starts else None), empty))
        for label, check in (('SYSTEMSTATUS', system), ('INSTANCESTATUS', instance)):
            lines.extend(output.tabify((label, detail.get('Name'), detail.get('Status'),
                                        detail.get('ImpairedSince')), empty)
                         for detail in check.get('Details') or ())
        lines.extend(output.tabify(('EVENT', event.get('Code'), event.get('NotBefore'),
                                    event.get('NotAfter'), event.get('Description')), empty)
                     for event in events)
    return lines


def describe_instance_status(argv=None) -> int:
    """euca-describe-instance-status: INSTANCE, SYSTEMSTATUS, INSTANCESTATUS, EVENT lines."""
    def action(client, args):
        response = client.describe_instance_status(**describe_instance_status_request(args))
        return format_instance_statuses(response, args.hide_healthy, cli.empty_field(args))
    return cli.run(describe_instance_status_parser(), action, argv)

"""Waking a node the cluster powered down (POWERSAVE): a wake-on-LAN "magic packet", as the
original's powerwake sent: six 0xFF bytes, then the node's MAC address sixteen times, in one
UDP datagram to a broadcast address (POWER_WAKE_ADDRESS, port 9 by default)."""

import socket

from eucacore.config import split_hostport


def magic_packet(mac: str) -> bytes:
    """The wake-on-LAN payload for ``mac`` ("52:54:00:12:34:56"); ValueError if it is not a MAC."""
    octets = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    if len(octets) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    return b"\xff" * 6 + octets * 16


def wake_on_lan(mac: str, address: str) -> None:
    """Send the magic packet for ``mac`` to ``address`` ("host:port"; the port defaults to 9)."""
    host, port = split_hostport(address, 9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.sendto(magic_packet(mac), (host, port))

"""cc.power: the wake-on-LAN magic packet, byte for byte, and its sending over a real UDP socket."""

import socket

import pytest

from cc.power import magic_packet, wake_on_lan


def test_magic_packet_is_six_ff_then_the_mac_sixteen_times():
    packet = magic_packet("52:54:00:12:34:56")
    assert len(packet) == 102
    assert packet == bytes.fromhex("ffffffffffff" + "525400123456" * 16)
    assert magic_packet("52-54-00-12-34-56") == packet


@pytest.mark.parametrize("mac", ["", "52:54:00:12:34", "52:54:00:12:34:56:78", "zz:54:00:12:34:56"])
def test_what_is_not_a_mac_is_refused(mac):
    with pytest.raises(ValueError):
        magic_packet(mac)


def test_wake_on_lan_sends_one_datagram_to_the_address():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        wake_on_lan("52:54:00:12:34:56", "127.0.0.1:%d" % receiver.getsockname()[1])
        assert receiver.recvfrom(1024)[0] == magic_packet("52:54:00:12:34:56")

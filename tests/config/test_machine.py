"""What a configuration asks of this machine: its own addresses to bind, a directory for its data;
and an RTP range clear of its own SIP ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from config import ConfigError, ConfigProblem, load_config, machine_problems
from tests.config.test_config import MINIMAL

NOT_THIS_MACHINE = "192.0.2.7"
"""TEST-NET-1 (RFC 5737): documentation only, never an address of a real machine."""
NOT_AN_ADDRESS = "is not an address of this machine (Cannot assign requested address)"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callherald.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    return machine_problems(load_config(_write(tmp_path, text), environ={}))


def _edit(old: str, new: str) -> str:
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


def test_the_machines_own_addresses_and_a_new_data_directory_are_fine(tmp_path: Path) -> None:
    text = _edit(
        "  advertised_address: 192.0.2.1\n", "  advertised_address: 192.0.2.1\n  bind_address: 127.0.0.1\n"
    )
    assert _problems(tmp_path, text + "data_dir: data/callherald\n") == []


@pytest.mark.parametrize("every", ["0.0.0.0", "::"])
def test_every_address_is_fine(tmp_path: Path, every: str) -> None:
    if every == "::" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    text = _edit("  pbx: {host: 127.0.0.1, port: 5060}", f'  pbx: {{host: "{every}", port: 5060}}')
    text = text.replace(
        "  advertised_address: 192.0.2.1\n", f'  advertised_address: 192.0.2.1\n  bind_address: "{every}"\n'
    )
    assert _problems(tmp_path, text) == []


def test_a_listener_host_of_another_machine_is_named_by_its_key(tmp_path: Path) -> None:
    # serve's listener could not bind it and said only "could not bind to local_addr".
    text = _edit(
        "  carrier: {host: 127.0.0.1, port: 5070}", f"  carrier: {{host: {NOT_THIS_MACHINE}, port: 5070}}"
    )
    assert _problems(tmp_path, text) == [
        (
            "listen.carrier.host",
            f"{NOT_THIS_MACHINE} {NOT_AN_ADDRESS}: give one of its own addresses, or 0.0.0.0 for all of them",
        )
    ]


def test_an_rtp_bind_address_of_another_machine_is_named_by_its_key(tmp_path: Path) -> None:
    # serve started with it, and every call failed with 503 "no free RTP port pair".
    text = _edit(
        "  advertised_address: 192.0.2.1\n",
        f"  advertised_address: 192.0.2.1\n  bind_address: {NOT_THIS_MACHINE}\n",
    )
    assert _problems(tmp_path, text) == [
        (
            "media.bind_address",
            f"{NOT_THIS_MACHINE} {NOT_AN_ADDRESS}: give one of its own addresses, or 0.0.0.0 for all of them",
        )
    ]


def test_a_data_dir_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a directory\n", encoding="utf-8")
    assert _problems(tmp_path, MINIMAL + "data_dir: notes.txt\n") == [
        (
            "data_dir",
            f"{tmp_path / 'notes.txt'} is not a directory: give a directory (one that does not exist is made)",
        )
    ]


def test_a_data_dir_under_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a directory\n", encoding="utf-8")
    assert _problems(tmp_path, MINIMAL + "data_dir: notes.txt/data\n") == [
        (
            "data_dir",
            f"{tmp_path / 'notes.txt' / 'data'} cannot be made: {tmp_path / 'notes.txt'} is not a directory",
        )
    ]


@pytest.mark.parametrize(("side", "port"), [("pbx", 20000), ("carrier", 20999)])
def test_an_rtp_range_that_holds_a_sip_listener_port_is_an_error(
    tmp_path: Path, side: str, port: int
) -> None:
    # callherald's own listener holds that port: the RTP pair with it is never free.
    listener = f"  {side}: {{host: 127.0.0.1, port: {5060 if side == 'pbx' else 5070}}}"
    path = _write(tmp_path, _edit(listener, f"  {side}: {{host: 127.0.0.1, port: {port}}}"))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.problems == [
        ConfigProblem(
            file=str(path),
            line=14,
            key="media.rtp_port_min",
            message=f"the RTP range 20000-20999 includes listen.{side}.port {port}, where callherald takes SIP "
            "itself: choose an RTP range clear of the SIP ports",
        )
    ]


def _pbx_listener_and_rtp_bind(listener: str, rtp_bind: str) -> str:
    text = _edit("  pbx: {host: 127.0.0.1, port: 5060}", f"  pbx: {listener}")
    return text.replace(
        "  advertised_address: 192.0.2.1\n", f"  advertised_address: 192.0.2.1\n  bind_address: {rtp_bind}\n"
    )


@pytest.mark.parametrize(
    ("listener", "rtp_bind"),
    [
        ("{host: 127.0.0.1, port: 20000, transport: tcp}", "0.0.0.0"),  # TCP holds no UDP port
        ("{host: 127.0.0.1, port: 20000}", "127.0.0.2"),  # another address of the machine
        ("{host: 127.0.0.2, port: 20000}", "127.0.0.1"),
    ],
)
def test_an_rtp_range_holding_a_sip_port_where_the_listener_cannot_clash_is_fine(
    tmp_path: Path, listener: str, rtp_bind: str
) -> None:
    text = _pbx_listener_and_rtp_bind(listener, rtp_bind)
    if "tcp" in listener:  # the PBX is then reached over TCP too
        text = text.replace("      host: 10.0.0.5\n", "      host: 10.0.0.5\n      transport: tcp\n")
    assert load_config(_write(tmp_path, text), environ={}).listen.pbx.port == 20000


@pytest.mark.parametrize(("sip_host", "rtp_bind"), [("0.0.0.0", "127.0.0.1"), ("127.0.0.1", "127.0.0.1")])
def test_an_rtp_range_holding_a_sip_port_on_an_address_rtp_binds_too_is_an_error(
    tmp_path: Path, sip_host: str, rtp_bind: str
) -> None:
    text = _pbx_listener_and_rtp_bind(f'{{host: "{sip_host}", port: 20000}}', rtp_bind)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text), environ={})
    assert [problem.key for problem in info.value.problems] == ["media.rtp_port_min"]


def test_an_rtp_range_next_to_the_sip_ports_is_fine(tmp_path: Path) -> None:
    text = _edit("  pbx: {host: 127.0.0.1, port: 5060}", "  pbx: {host: 127.0.0.1, port: 19999}")
    text = text.replace(
        "  carrier: {host: 127.0.0.1, port: 5070}", "  carrier: {host: 127.0.0.1, port: 21000}"
    )
    assert load_config(_write(tmp_path, text), environ={}).listen.pbx.port == 19999


def _load_problems(tmp_path: Path, text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as raised:
        load_config(_write(tmp_path, text), environ={})
    return [(problem.key, problem.message) for problem in raised.value.problems]


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1"])
def test_an_advertised_address_no_party_can_send_to_is_an_error(tmp_path: Path, address: str) -> None:
    # c=0.0.0.0 in SDP puts the call on hold (RFC 3264 §8.4): every call would look held.
    text = _edit("  advertised_address: 192.0.2.1\n", f'  advertised_address: "{address}"\n')
    (key, message), *_ = _load_problems(tmp_path, text)
    assert key == "media.advertised_address"
    assert message.startswith(f"{address} is no address a party can send RTP to")


def test_an_advertised_address_of_another_family_than_the_rtp_sockets_is_an_error(tmp_path: Path) -> None:
    # Every call's RTP would go to an address the sockets do not listen on: no audio, no notice.
    text = _edit(
        "  advertised_address: 192.0.2.1\n", '  advertised_address: 192.0.2.1\n  bind_address: "::1"\n'
    )
    assert _load_problems(tmp_path, text) == [
        (
            "media.advertised_address",
            "an IPv4 address, but the RTP sockets are bound to IPv6 ::1 (media.bind_address): no RTP would arrive",
        )
    ]


def test_an_ipv6_advertised_address_for_rtp_sockets_on_every_ipv4_address_is_an_error(tmp_path: Path) -> None:
    text = _edit(
        "  advertised_address: 192.0.2.1\n", '  advertised_address: "2001:db8::1"\n  bind_address: 0.0.0.0\n'
    )
    assert _load_problems(tmp_path, text) == [
        (
            "media.advertised_address",
            "an IPv6 address, but the RTP sockets are bound to IPv4 0.0.0.0 (media.bind_address): no RTP would arrive",
        )
    ]

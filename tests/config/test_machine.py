"""What a configuration asks of this machine: its own addresses to bind, a directory for its data;
and an RTP range clear of its own SIP ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import ConfigError, ConfigProblem, load_config
from tests.config.test_config import MINIMAL


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callherald.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _edit(old: str, new: str) -> str:
    assert MINIMAL.count(old) == 1, old
    return MINIMAL.replace(old, new)


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


def test_an_rtp_range_next_to_the_sip_ports_is_fine(tmp_path: Path) -> None:
    text = _edit("  pbx: {host: 127.0.0.1, port: 5060}", "  pbx: {host: 127.0.0.1, port: 19999}")
    text = text.replace(
        "  carrier: {host: 127.0.0.1, port: 5070}", "  carrier: {host: 127.0.0.1, port: 21000}"
    )
    assert load_config(_write(tmp_path, text), environ={}).listen.pbx.port == 19999

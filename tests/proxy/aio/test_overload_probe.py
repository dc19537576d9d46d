"""The service's event-loop lag probe on a real uvloop loop: a loop kept running late sheds new
calls (``limits.overload_lag_ms``), and takes them again once it keeps time."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
import uvloop

from proxy.aio.service import ListenSpec, ProxyService
from proxy.b2bua.core import B2bua
from proxy.b2bua.settings import Side
from tests.proxy.b2bua.harness import make_settings

LOOPBACK = "127.0.0.1"


def service_for(core: B2bua) -> ProxyService:
    return ProxyService(
        core,
        listen={side: ListenSpec(host=LOOPBACK, port=0) for side in (Side.PBX, Side.CARRIER)},
        media_bind_address=LOOPBACK,
        rtp_inactivity_timeout_s=60.0,
        logger=logging.getLogger("callherald.test.overload"),
    )


@pytest.mark.timeout(30)
def test_a_loop_kept_late_sheds_new_calls_then_takes_them_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="callherald.test.overload")
    core = B2bua(make_settings(overload_lag_s=0.05))

    async def scenario() -> tuple[bool, bool, float]:
        service = service_for(core)
        await service.start()
        try:
            loop = asyncio.get_running_loop()
            # Work that keeps the loop busy 80 ms at a stretch: every probe runs late.
            deadline = loop.time() + 5.0
            while not core.overloaded and loop.time() < deadline:
                time.sleep(0.08)
                await asyncio.sleep(0)
            shed = core.overloaded
            kept_time_from = loop.time()
            deadline = loop.time() + 5.0
            while core.overloaded and loop.time() < deadline:
                await asyncio.sleep(0.05)
            return shed, core.overloaded, loop.time() - kept_time_from
        finally:
            await service.stop()

    shed, still_overloaded, recovery_s = uvloop.run(scenario())
    assert shed, "a loop 80 ms late at every probe was not taken as overloaded"
    assert not still_overloaded, "the overload did not end once the loop kept time"
    assert recovery_s >= 0.9  # ten timely probes, 0.1 s apart
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("overloaded: the event loop ran ")
    assert "(limits.overload_lag_ms 50)" in messages[0]
    assert messages[1] == "no longer overloaded: the event loop keeps time again; new calls are accepted"

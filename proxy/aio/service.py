"""Runs the B2BUA core on asyncio: listeners, one timer, the media relay, and effect execution.

Every input (a SIP message, a timer, a quiet media session) goes into the sans-IO core with
``now = loop.time()``; every effect that comes back is carried out here, in order. One timer
handle follows the core's ``next_deadline``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from proxy.aio.media import MediaRelay
from proxy.aio.transport import Address, Transport, start_tcp, start_udp
from proxy.b2bua.core import B2bua
from proxy.b2bua.effects import (
    CallEnded,
    CallStarted,
    CloseMedia,
    Effect,
    LogEvent,
    OpenMedia,
    SendSip,
    SetMediaRemote,
)
from proxy.b2bua.settings import Side
from proxy.sip import DEFAULT_LIMITS, ParserLimits, Request, Response

__all__ = ["ListenSpec", "ProxyService"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenSpec:
    """Where one side listens: host, port and ``udp`` or ``tcp``."""

    host: str
    port: int
    transport: str = "udp"


class ProxyService:
    """The running proxy. ``start`` binds everything; ``stop`` ends calls and closes sockets."""

    def __init__(
        self,
        core: B2bua,
        *,
        listen: dict[Side, ListenSpec],
        media_bind_address: str,
        rtp_inactivity_timeout_s: float,
        limits: ParserLimits = DEFAULT_LIMITS,
        logger: logging.Logger | None = None,
    ) -> None:
        self.core = core
        self._listen = listen
        self._limits = limits
        self._log = logger or logging.getLogger("callherald")
        self.media = MediaRelay(
            media_bind_address,
            inactivity_timeout_s=rtp_inactivity_timeout_s,
            on_inactive=self._on_media_inactive,
        )
        self.transports: dict[Side, Transport] = {}
        self._owned: list[Transport] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def local_address(self, side: Side) -> Address:
        return self.transports[side].local_address

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        shared = self._listen[Side.PBX] == self._listen[Side.CARRIER]
        for side in (Side.PBX, Side.CARRIER):
            spec = self._listen[side]
            if shared and side is Side.CARRIER:
                self.transports[side] = self.transports[Side.PBX]
                continue
            callback_side = None if shared else side
            transport = await self._open(spec, callback_side)
            self.transports[side] = transport
            self._owned.append(transport)
        self._sweeper = asyncio.create_task(self.media.sweep_forever())
        self._execute(self.core.start(self._now()))

    async def _open(self, spec: ListenSpec, side: Side | None) -> Transport:
        def on_message(message: Request | Response, source: Address, _transport: Transport) -> None:
            self._on_message(message, source, side)

        def accept_source(host: str) -> bool:
            return self.core.accepts_source(host, side)

        start = start_tcp if spec.transport == "tcp" else start_udp
        return await start(
            spec.host,
            spec.port,
            on_message,
            limits=self._limits,
            logger=self._log,
            accept_source=accept_source,
        )

    async def stop(self) -> None:
        """End calls with BYE, un-register, give the messages a moment to leave, close everything."""
        if self._loop is None:
            return
        self._execute(self.core.shutdown(self._now()))
        await asyncio.sleep(0.05)
        if self._timer is not None:
            self._timer.cancel()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        self.media.close_all()
        for transport in self._owned:
            await transport.close()
        self._loop = None

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # Inputs -----------------------------------------------------------------------------------

    def _on_message(self, message: Request | Response, source: Address, side: Side | None) -> None:
        resolved = side if side is not None else self.core.side_of(source[0])
        self._execute(self.core.receive(message, source, resolved, self._now()))

    def _on_media_inactive(self, call_ref: str) -> None:
        self._execute(self.core.media_inactive(call_ref, self._now()))

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        self._execute(self.core.handle_timers(self._now()))

    # Effects ----------------------------------------------------------------------------------

    def _execute(self, effects: list[Effect]) -> None:
        index = 0
        while index < len(effects):
            effect = effects[index]
            index += 1
            if isinstance(effect, SendSip):
                self.transports[effect.side].send(effect.message, effect.destination)
            elif isinstance(effect, SetMediaRemote):
                self.media.set_remote(effect.call_ref, effect.leg, effect.remote)
            elif isinstance(effect, OpenMedia):
                try:
                    self.media.open(effect.call_ref, effect.a_port, effect.b_port)
                except OSError as error:
                    effects.extend(self.core.media_failed(effect.call_ref, str(error), self._now()))
            elif isinstance(effect, CloseMedia):
                self.media.close(effect.call_ref)
            elif isinstance(effect, LogEvent):
                prefix = f"[{effect.call_ref}] " if effect.call_ref else ""
                self._log.log(_LEVELS.get(effect.level, logging.INFO), "%s%s", prefix, effect.text)
            elif isinstance(effect, CallStarted):
                self._log.info(
                    "[%s] %s call from %s to %s",
                    effect.call_ref,
                    effect.direction,
                    effect.caller,
                    effect.callee,
                )
            elif isinstance(effect, CallEnded):
                self._log.info("[%s] call ended: %s", effect.call_ref, effect.reason)
        self._reschedule()

    def _reschedule(self) -> None:
        deadline = self.core.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

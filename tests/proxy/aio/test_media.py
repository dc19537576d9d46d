"""The relay's legs (``LegProtocol``) once a call's media is closed; no sockets."""

from __future__ import annotations

import gc

from proxy.aio.media import LegProtocol


def test_closed_legs_are_freed_without_the_garbage_collector() -> None:
    # The two legs of a call point at each other; closing them must undo that, or every ended call
    # waits for a full collection, which stalls the relay for all the others.
    gc.collect()
    gc.disable()
    try:
        before = _legs_alive()
        source, towards = LegProtocol(), LegProtocol()
        source.other, towards.other = towards, source
        source.close()
        towards.close()
        del source, towards
        after = _legs_alive()
    finally:
        gc.enable()
    assert after == before


def _legs_alive() -> int:
    return sum(isinstance(o, LegProtocol) for o in gc.get_objects())

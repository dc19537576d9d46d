"""Reading SIPp's message trace: requests a peer received, each once."""

from __future__ import annotations

from tests.e2e.test_sipp_calls import SippRun


def _entry(at: str, kind: str, first_line: str, cseq: str, branch: str) -> str:
    return (
        f"----------------------------------------------- 2026-12-01 10:00:{at}\n"
        f"UDP message {kind} [300] bytes :\n\n"
        f"{first_line}\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch};rport\n"
        f"CSeq: {cseq}\n"
        "Content-Length: 0\n\n"
    )


def _run(*entries: str) -> SippRun:
    return SippRun(role="callee", returncode=0, stderr="", trace="".join(entries), elapsed_s=1.0)


def test_a_retransmitted_request_is_received_once() -> None:
    # The BYE's 200 was late, so the BYE came again with its branch and CSeq (RFC 3261 §17.1.2.2).
    run = _run(
        _entry("00.000000", "received", "INVITE sip:pbx@127.0.0.1 SIP/2.0", "1 INVITE", "z9hG4bK-a"),
        _entry("00.010000", "sent", "SIP/2.0 200 OK", "1 INVITE", "z9hG4bK-a"),
        _entry("00.020000", "received", "ACK sip:pbx@127.0.0.1 SIP/2.0", "1 ACK", "z9hG4bK-b"),
        _entry("05.000000", "received", "BYE sip:pbx@127.0.0.1 SIP/2.0", "2 BYE", "z9hG4bK-c"),
        _entry("05.500000", "received", "BYE sip:pbx@127.0.0.1 SIP/2.0", "2 BYE", "z9hG4bK-c"),
        _entry("05.510000", "sent", "SIP/2.0 200 OK", "2 BYE", "z9hG4bK-c"),
    )
    assert run.methods_received() == ["INVITE", "ACK", "BYE"]


def test_requests_of_their_own_transactions_all_count() -> None:
    # An ACK to a failure shares the INVITE's branch but not its method (§17.1.1.3); a second
    # BYE with a new CSeq and branch is a new request, not a retransmission.
    run = _run(
        _entry("00.000000", "received", "INVITE sip:pbx@127.0.0.1 SIP/2.0", "1 INVITE", "z9hG4bK-a"),
        _entry("00.010000", "sent", "SIP/2.0 486 Busy Here", "1 INVITE", "z9hG4bK-a"),
        _entry("00.020000", "received", "ACK sip:pbx@127.0.0.1 SIP/2.0", "1 ACK", "z9hG4bK-a"),
        _entry("01.000000", "received", "BYE sip:pbx@127.0.0.1 SIP/2.0", "2 BYE", "z9hG4bK-c"),
        _entry("02.000000", "received", "BYE sip:pbx@127.0.0.1 SIP/2.0", "3 BYE", "z9hG4bK-d"),
    )
    assert run.methods_received() == ["INVITE", "ACK", "BYE", "BYE"]
    assert [request.header("CSeq") for request in run.requests_received()] == [
        "1 INVITE",
        "1 ACK",
        "2 BYE",
        "3 BYE",
    ]

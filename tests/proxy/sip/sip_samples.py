"""Small SIP messages for tests, written out as a peer would send them and parsed."""

from __future__ import annotations

from proxy.sip import Request, Response, make_response, parse_message

__all__ = ["cancel_for", "request", "response"]

CALL_ID = "a84b4c76e66710@pc33.atlanta.example.com"


def _parse_request(text: str) -> Request:
    message = parse_message(text.replace("\n", "\r\n").encode("utf-8"))
    assert isinstance(message, Request)
    return message


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK776asdhds",
    sent_by: str = "pc33.atlanta.example.com",
    transport: str = "UDP",
    cseq: int = 314159,
    cseq_method: str | None = None,
    call_id: str = CALL_ID,
    to_tag: str | None = None,
    uri: str = "sip:bob@biloxi.example.com",
    extra_headers: str = "",
) -> Request:
    """A request from Alice to Bob; ``branch=None`` leaves the top Via without one (RFC 2543)."""
    branch_param = "" if branch is None else f";branch={branch}"
    to = "Bob <sip:bob@biloxi.example.com>" + ("" if to_tag is None else f";tag={to_tag}")
    return _parse_request(
        f"{method} {uri} SIP/2.0\n"
        f"Via: SIP/2.0/{transport} {sent_by}{branch_param}\n"
        f"{extra_headers}"
        "Max-Forwards: 70\n"
        f"To: {to}\n"
        "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n"
        f"Call-ID: {call_id}\n"
        f"CSeq: {cseq} {cseq_method or method}\n"
        "Contact: <sip:alice@pc33.atlanta.example.com>\n"
        "Content-Length: 0\n\n"
    )


def response(to: Request, status: int, *, to_tag: str = "a6c85cf") -> Response:
    """The response ``status`` to ``to``, with a To tag unless it is 100 Trying (§8.2.6.2)."""
    return make_response(to, status, to_tag=None if status == 100 else to_tag)


def cancel_for(invite: Request) -> Request:
    """The CANCEL of ``invite`` as §9.1 builds it: same Request-URI, top Via, From, To, Call-ID, CSeq number."""
    return _parse_request(
        f"CANCEL {invite.uri} SIP/2.0\n"
        f"Via: {invite.headers.get_all('via')[0]}\n"
        "Max-Forwards: 70\n"
        f"To: {invite.headers.get('to')}\n"
        f"From: {invite.headers.get('from')}\n"
        f"Call-ID: {invite.call_id}\n"
        f"CSeq: {invite.cseq.seq} CANCEL\n"
        "Content-Length: 0\n\n"
    )

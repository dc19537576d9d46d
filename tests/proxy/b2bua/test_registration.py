"""callherald's own registration with the carrier (RFC 3261 §10.2), on virtual time."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.b2bua.registrar import Registrar
from proxy.b2bua.registration import RegistrationClient, RegistrationState, refresh_delay_s
from proxy.b2bua.settings import RegistrationSettings, TrunkAccount
from proxy.sip.auth import Credentials, make_challenge, verify_credentials
from proxy.sip.message import Request, Response, make_response
from proxy.sip.uri import SipUri

REGISTRAR_URI = SipUri(host="carrier.example")
AOR = SipUri(user="acct", host="carrier.example")
CONTACT = "sip:acct@192.0.2.1:5070"
REALM = "carrier.example"
PASSWORD = "pa55"
SETTINGS = RegistrationSettings(interval_s=3600, retry_min_s=30, retry_max_s=600)
T0 = 500.0


def counter(prefix: str) -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers)}"


def make_client(
    *,
    settings: RegistrationSettings = SETTINGS,
    auth_username: str | None = None,
    realm: str | None = None,
) -> RegistrationClient:
    """Tokens: k1 is the From-tag, k2 the Call-ID; each request then takes a branch (and cnonces)."""
    return RegistrationClient(
        registrar_uri=REGISTRAR_URI,
        aor=AOR,
        contact=CONTACT,
        settings=settings,
        username="acct",
        password=PASSWORD,
        auth_username=auth_username,
        realm=realm,
        token=counter("k"),
        local_via_host_port="127.0.0.1:5070",
    )


def reply(request: Request, status: int, *headers: tuple[str, str]) -> Response:
    return make_response(request, status, to_tag="srv", extra_headers=headers)


def www(nonce: str, *, stale: bool = False, realm: str = REALM) -> tuple[str, str]:
    return ("WWW-Authenticate", str(make_challenge(realm=realm, nonce=nonce, stale=stale)))


def proxy_auth(nonce: str) -> tuple[str, str]:
    return ("Proxy-Authenticate", str(make_challenge(realm="proxy.example", nonce=nonce)))


def credentials(request: Request, header: str = "authorization") -> Credentials:
    values = request.headers.fields(header)
    assert len(values) == 1
    return Credentials.parse(values[0])


def ok(request: Request, expires: int = 3600) -> Response:
    return reply(request, 200, ("Contact", f"<{CONTACT}>;expires={expires}"))


def must(request: Request | None) -> Request:
    assert request is not None
    return request


def snapshot(client: RegistrationClient) -> tuple[RegistrationState, float | None, float | None]:
    """State, registered_until and next deadline."""
    return client.state, client.registered_until, client.next_deadline()


def registered(client: RegistrationClient, now: float = T0) -> Request:
    """Start, answer a 401, get a 200 (granted 3600); return the authenticated REGISTER."""
    second = must(client.on_response(reply(client.start(now), 401, www("n1")), now))
    assert client.on_response(ok(second), now) is None
    return second


# ---------------------------------------------------------------------------------------------
# Request fields


def test_first_register_exact_bytes() -> None:
    request = make_client().start(T0)
    assert bytes(request) == (
        b"REGISTER sip:carrier.example SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKk3;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:acct@carrier.example>;tag=k1\r\n"
        b"To: <sip:acct@carrier.example>\r\n"
        b"Call-ID: k2\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b"Contact: <sip:acct@192.0.2.1:5070>\r\n"
        b"Expires: 3600\r\n"
        b"User-Agent: callherald\r\n"
        b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize("contact", [CONTACT, f"<{CONTACT}>", f" <{CONTACT}> "])
def test_contact_given_with_or_without_brackets(contact: str) -> None:
    client = RegistrationClient(
        registrar_uri=REGISTRAR_URI,
        aor=AOR,
        contact=contact,
        settings=SETTINGS,
        username="acct",
        password=PASSWORD,
        token=counter("k"),
        local_via_host_port="127.0.0.1:5070",
    )
    request = client.start(T0)
    assert request.headers.get("contact") == f"<{CONTACT}>"
    client.on_response(reply(request, 200, ("Contact", f"<{CONTACT}>;expires=120")), T0)
    assert client.registered_until == T0 + 120


def test_401_then_200() -> None:
    client = make_client()
    first = client.start(T0)
    assert client.state is RegistrationState.REGISTERING
    second = must(client.on_response(reply(first, 401, www("n1")), T0 + 0.1))
    assert [second.headers.get(name) for name in ("call-id", "cseq", "from", "to", "expires")] == [
        "k2",
        "2 REGISTER",
        "<sip:acct@carrier.example>;tag=k1",
        "<sip:acct@carrier.example>",
        "3600",
    ]
    assert second.top_via.branch == "z9hG4bKk4"
    answer = credentials(second)
    assert [(p.name, p.value) for p in answer.params if p.name != "response"] == [
        ("username", "acct"),
        ("realm", REALM),
        ("nonce", "n1"),
        ("uri", "sip:carrier.example"),
        ("cnonce", "k5"),
        ("qop", "auth"),
        ("nc", "00000001"),
    ]
    assert verify_credentials(answer, method="REGISTER", password=PASSWORD, expected_realm=REALM)
    assert "proxy-authorization" not in second.headers
    assert client.on_response(ok(second, 1800), T0 + 0.3) is None
    assert snapshot(client) == (RegistrationState.REGISTERED, T0 + 0.1 + 1800, T0 + 0.1 + 1440)


def test_407_is_answered_with_proxy_authorization_then_401_with_both() -> None:
    client = make_client()
    second = must(client.on_response(reply(client.start(T0), 407, proxy_auth("p1")), T0))
    assert "authorization" not in second.headers
    proxy = credentials(second, "proxy-authorization")
    assert (proxy.realm, proxy.nonce, proxy.nc) == ("proxy.example", "p1", "00000001")
    assert verify_credentials(proxy, method="REGISTER", password=PASSWORD, expected_realm="proxy.example")
    third = must(client.on_response(reply(second, 401, www("n1")), T0))
    assert [name for name, _ in third.headers][-5:] == [
        "Authorization",
        "Proxy-Authorization",
        "User-Agent",
        "Allow",
        "Content-Length",
    ]
    assert (credentials(third).nonce, credentials(third).nc) == ("n1", "00000001")
    assert credentials(third, "proxy-authorization").nc == "00000002"  # same nonce sent again
    client.on_response(ok(third), T0)
    assert client.state is RegistrationState.REGISTERED


def test_auth_username_is_the_digest_user_only() -> None:
    client = make_client(auth_username="auth-id-77")
    second = must(client.on_response(reply(client.start(T0), 401, www("n1")), T0))
    assert credentials(second).username == "auth-id-77"
    assert second.headers.get("from") == "<sip:acct@carrier.example>;tag=k1"


# ---------------------------------------------------------------------------------------------
# Granted time and refresh


@pytest.mark.parametrize(
    ("headers", "granted", "refresh_after"),
    [
        pytest.param(
            (("Contact", f"<{CONTACT}>;expires=1800"), ("Expires", "600")), 1800, 1440, id="our contact param"
        ),
        pytest.param(
            (("Contact", "<sip:other@192.0.2.9>;expires=100"), ("Contact", f"<{CONTACT}>;expires=900")),
            900,
            720,
            id="our contact among others",
        ),
        pytest.param(
            (("Contact", "<sip:other@192.0.2.9>;expires=100"), ("Expires", "600")),
            600,
            480,
            id="Expires header",
        ),
        pytest.param(
            (("Contact", "<sip:acct@192.0.2.1:5080>;expires=100"), ("Expires", "600")),
            600,
            480,
            id="other port",
        ),
        pytest.param((), 3600, 2880, id="what we asked"),
        pytest.param((("Expires", "120"),), 120, 96, id="short grant: 80 %"),
        pytest.param((("Expires", "20"),), 20, 15, id="5 s margin"),
        pytest.param((("Expires", "6"),), 6, 3, id="tiny grant: halfway"),
    ],
)
def test_granted_time_and_refresh_deadline(
    headers: tuple[tuple[str, str], ...], granted: int, refresh_after: float
) -> None:
    client = make_client()
    request = client.start(T0)
    assert client.next_deadline() is None  # in flight: the transaction reports timeouts
    assert client.on_response(reply(request, 200, *headers), T0 + 0.5) is None
    assert (client.state, client.registered_until, client.next_deadline()) == (
        RegistrationState.REGISTERED,
        T0 + granted,
        T0 + refresh_after,
    )


def test_zero_grant_is_a_failure() -> None:
    client = make_client()
    client.on_response(reply(client.start(T0), 200, ("Expires", "0")), T0 + 1)
    assert (client.state, client.next_deadline()) == (RegistrationState.FAILED_BACKING_OFF, T0 + 31)


@pytest.mark.parametrize(
    ("granted", "delay"),
    [(3600, 2880.0), (600, 480.0), (60, 48.0), (25, 20.0), (24, 19.0), (10, 5.0), (8, 4.0), (1, 0.5)],
)
def test_refresh_delay_rule(granted: int, delay: float) -> None:
    assert refresh_delay_s(granted) == delay


@given(st.integers(min_value=1, max_value=2**31))
def test_refresh_delay_bounds(granted: int) -> None:
    delay = refresh_delay_s(granted)
    assert granted / 2 <= delay <= 0.8 * granted
    if granted >= 10:
        assert delay <= granted - 5


def test_refresh_reuses_the_nonce_with_a_growing_count() -> None:
    client = make_client()
    second = registered(client)
    deadline = T0 + 2880
    assert client.next_deadline() == deadline
    assert client.handle_timers(deadline - 0.001) is None
    refresh = must(client.handle_timers(deadline))
    assert client.handle_timers(deadline) is None  # in flight
    assert client.next_deadline() is None
    assert refresh.headers.get("cseq") == "3 REGISTER"
    assert refresh.headers.get("call-id") == second.headers.get("call-id")
    assert refresh.top_via.branch not in (None, second.top_via.branch)
    answer = credentials(refresh)
    assert (answer.nonce, answer.nc) == ("n1", "00000002")
    assert verify_credentials(answer, method="REGISTER", password=PASSWORD, expected_realm=REALM)
    assert client.state is RegistrationState.REGISTERED  # still registered while refreshing
    client.on_response(ok(refresh, 600), deadline + 0.2)
    assert (client.registered_until, client.next_deadline()) == (deadline + 600, deadline + 480)


def test_cached_nonce_rejected_on_refresh_gets_one_fresh_answer() -> None:
    client = make_client()
    registered(client)
    refresh = must(client.handle_timers(T0 + 2880))
    again = must(client.on_response(reply(refresh, 401, www("n2", stale=True)), T0 + 2880))
    assert (credentials(again).nonce, credentials(again).nc) == ("n2", "00000001")
    client.on_response(ok(again), T0 + 2880)
    assert client.state is RegistrationState.REGISTERED


# ---------------------------------------------------------------------------------------------
# Failures and back-off


def test_back_off_doubles_up_to_the_cap_and_resets_after_success() -> None:
    client = make_client()
    now = T0
    request = client.start(now)
    waits = []
    for _ in range(7):
        assert client.on_response(reply(request, 503), now) is None
        state, _, deadline = snapshot(client)
        assert state is RegistrationState.FAILED_BACKING_OFF
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        request = must(client.handle_timers(now))
        assert snapshot(client)[0] is RegistrationState.REGISTERING
    assert waits == [30, 60, 120, 240, 480, 600, 600]
    client.on_response(ok(request), now)
    assert client.state is RegistrationState.REGISTERED
    refresh = must(client.handle_timers(now + 2880))
    client.on_response(reply(refresh, 500), now + 2881)
    assert client.next_deadline() == now + 2881 + 30
    assert client.registered_until == now + 3600  # the old binding still stands


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        pytest.param("300", 300, id="longer than back-off"),
        pytest.param("10", 30, id="shorter than back-off"),
        pytest.param("5000", 600, id="capped at retry_max_s"),
        pytest.param("120 (maintenance);duration=60", 120, id="with comment and params"),
        pytest.param("soon", 30, id="unreadable"),
    ],
)
def test_retry_after(retry_after: str, wait: float) -> None:
    client = make_client()
    client.on_response(reply(client.start(T0), 503, ("Retry-After", retry_after)), T0)
    assert client.next_deadline() == T0 + wait


def test_timeout_backs_off() -> None:
    client = make_client()
    client.on_timeout(T0)  # nothing in flight: ignored
    assert (client.state, client.next_deadline()) == (RegistrationState.UNREGISTERED, None)
    client.start(T0)
    client.on_timeout(T0 + 32)
    assert (client.state, client.next_deadline()) == (RegistrationState.FAILED_BACKING_OFF, T0 + 62)
    retry = must(client.handle_timers(T0 + 62))
    assert retry.headers.get("cseq") == "2 REGISTER"
    client.on_timeout(T0 + 94)
    assert client.next_deadline() == T0 + 154


@pytest.mark.parametrize(
    ("headers", "follow_up_expires"),
    [
        pytest.param((("Min-Expires", "7200"),), "7200", id="raised"),
        pytest.param((), None, id="no Min-Expires"),
        pytest.param((("Min-Expires", "3600"),), None, id="not above what we asked"),
        pytest.param((("Min-Expires", "junk"),), None, id="unreadable"),
    ],
)
def test_423_interval_too_brief(headers: tuple[tuple[str, str], ...], follow_up_expires: str | None) -> None:
    client = make_client()
    follow_up = client.on_response(reply(client.start(T0), 423, *headers), T0 + 1)
    if follow_up_expires is None:
        assert follow_up is None
        assert (client.state, client.next_deadline()) == (RegistrationState.FAILED_BACKING_OFF, T0 + 31)
        return
    assert follow_up is not None
    assert (follow_up.headers.get("expires"), follow_up.headers.get("cseq")) == (
        follow_up_expires,
        "2 REGISTER",
    )
    assert client.interval_s == 7200
    client.on_response(reply(follow_up, 200), T0 + 2)
    assert client.registered_until == T0 + 1 + 7200
    refresh = must(client.handle_timers(T0 + 1 + 5760))
    assert refresh.headers.get("expires") == "7200"


def test_same_nonce_challenged_again_is_a_failure_and_the_retry_starts_clean() -> None:
    client = make_client()
    second = must(client.on_response(reply(client.start(T0), 401, www("n1")), T0))
    assert client.on_response(reply(second, 401, www("n1")), T0 + 1) is None
    assert (client.state, client.next_deadline()) == (RegistrationState.FAILED_BACKING_OFF, T0 + 31)
    retry = must(client.handle_timers(T0 + 31))
    assert "authorization" not in retry.headers


@pytest.mark.parametrize(
    ("challenge", "nonce", "nc"),
    [
        pytest.param(www("n1", stale=True), "n1", "00000002", id="same nonce, stale"),
        pytest.param(www("n2"), "n2", "00000001", id="new nonce"),
        pytest.param(www("n2", stale=True), "n2", "00000001", id="new nonce, stale"),
    ],
)
def test_challenge_after_an_answer_that_is_answered_again(
    challenge: tuple[str, str], nonce: str, nc: str
) -> None:
    client = make_client()
    second = must(client.on_response(reply(client.start(T0), 401, www("n1")), T0))
    third = must(client.on_response(reply(second, 401, challenge), T0))
    assert (credentials(third).nonce, credentials(third).nc, third.headers.get("cseq")) == (
        nonce,
        nc,
        "3 REGISTER",
    )


def test_challenges_are_answered_at_most_three_times_per_attempt() -> None:
    client = make_client()
    request = client.start(T0)
    statuses = []
    for nonce in ("n1", "n2", "n3", "n4"):
        follow_up = client.on_response(reply(request, 401, www(nonce)), T0)
        statuses.append(client.state)
        if follow_up is None:
            break
        request = follow_up
    assert statuses == [RegistrationState.REGISTERING] * 3 + [RegistrationState.FAILED_BACKING_OFF]


@pytest.mark.parametrize(
    ("header", "realm"),
    [
        pytest.param(("WWW-Authenticate", 'Basic realm="carrier.example"'), None, id="Basic only"),
        pytest.param(
            ("WWW-Authenticate", 'Digest realm="r", nonce="n", algorithm=SHA3'), None, id="unknown algorithm"
        ),
        pytest.param(("WWW-Authenticate", "Digest realm="), None, id="malformed"),
        pytest.param(
            ("Proxy-Authenticate", 'Digest realm="r", nonce="n"'), None, id="challenge in the wrong header"
        ),
        pytest.param(www("n1", realm="elsewhere"), REALM, id="realm not ours"),
    ],
)
def test_unanswerable_challenges_fail(header: tuple[str, str], realm: str | None) -> None:
    client = make_client(realm=realm)
    assert client.on_response(reply(client.start(T0), 401, header), T0) is None
    assert client.state is RegistrationState.FAILED_BACKING_OFF


def test_realm_filter_accepts_the_configured_realm() -> None:
    client = make_client(realm=REALM)
    assert client.on_response(reply(client.start(T0), 401, www("n1")), T0) is not None


# ---------------------------------------------------------------------------------------------
# Stray input, start and stop


def test_stray_responses_are_ignored() -> None:
    client = make_client()
    assert client.on_response(reply(make_client().start(T0), 200), T0) is None  # nothing in flight
    request = client.start(T0)
    provisional = reply(request, 100)
    other_cseq = reply(request, 200)
    other_cseq.headers.set("CSeq", "7 REGISTER")
    other_call = reply(request, 200)
    other_call.headers.set("Call-ID", "someone-else")
    other_method = reply(request, 200)
    other_method.headers.set("CSeq", "1 OPTIONS")
    broken = reply(request, 200)
    broken.headers.set("CSeq", "x")
    for response in (provisional, other_cseq, other_call, other_method, broken):
        assert client.on_response(response, T0) is None
        assert client.state is RegistrationState.REGISTERING
    client.on_response(ok(request), T0)
    assert client.state is RegistrationState.REGISTERED


def test_start_twice_is_an_error() -> None:
    client = make_client()
    client.start(T0)
    with pytest.raises(RuntimeError, match="already started"):
        client.start(T0)


def test_stop_unregisters_with_expires_zero() -> None:
    client = make_client()
    registered(client)
    unregister = must(client.stop(T0 + 100))
    assert [unregister.headers.get(name) for name in ("cseq", "contact", "expires", "call-id")] == [
        "3 REGISTER",
        f"<{CONTACT}>",
        "0",
        "k2",
    ]
    assert credentials(unregister).nc == "00000002"
    assert (client.state, client.registered_until, client.next_deadline()) == (
        RegistrationState.UNREGISTERED,
        None,
        None,
    )
    answered = must(client.on_response(reply(unregister, 401, www("n9")), T0 + 100))
    assert (answered.headers.get("expires"), credentials(answered).nonce) == ("0", "n9")
    assert client.on_response(reply(answered, 200), T0 + 101) is None
    assert (client.state, client.next_deadline(), client.handle_timers(T0 + 10_000)) == (
        RegistrationState.UNREGISTERED,
        None,
        None,
    )


def test_failed_unregister_does_not_retry() -> None:
    client = make_client()
    registered(client)
    client.on_response(reply(must(client.stop(T0 + 100)), 500), T0 + 100)
    assert (client.state, client.next_deadline()) == (RegistrationState.UNREGISTERED, None)
    client.on_timeout(T0 + 200)
    assert client.next_deadline() is None


@pytest.mark.parametrize(
    ("prepare", "sends"),
    [
        pytest.param(lambda c: None, False, id="never started"),
        pytest.param(lambda c: c.start(T0), True, id="first REGISTER in flight"),
        pytest.param(
            lambda c: c.on_response(reply(c.start(T0), 403), T0), False, id="never registered, backing off"
        ),
        pytest.param(lambda c: registered(c, T0 - 4000), False, id="registration lapsed"),
    ],
)
def test_stop_sends_only_when_a_binding_may_exist(
    prepare: Callable[[RegistrationClient], object], sends: bool
) -> None:
    client = make_client()
    prepare(client)
    assert (client.stop(T0) is not None) is sends
    assert (client.state, client.next_deadline()) == (RegistrationState.UNREGISTERED, None)


def test_start_after_stop_keeps_call_id_and_counts_on() -> None:
    client = make_client()
    registered(client)
    client.stop(T0 + 1)
    restart = client.start(T0 + 2)
    assert (restart.headers.get("call-id"), restart.headers.get("cseq")) == ("k2", "4 REGISTER")


# ---------------------------------------------------------------------------------------------
# Against our own registrar


def test_registers_refreshes_and_unregisters_with_the_registrar() -> None:
    registrar = Registrar(
        (TrunkAccount(username="acct", password=PASSWORD, realm=REALM),),
        realm=REALM,
        token=counter("r"),
    )
    client = make_client()
    source = ("127.0.0.1", 5070)
    exchanged: list[int] = []

    def run(request: Request | None, now: float) -> None:
        while request is not None:
            response = registrar.handle(request, source, now)
            exchanged.append(response.status)
            request = client.on_response(response, now)

    run(client.start(T0), T0)
    assert exchanged == [401, 200]
    assert client.state is RegistrationState.REGISTERED
    binding = registrar.lookup("acct", T0)
    assert binding is not None
    assert (binding.contact_uri, binding.source, binding.expires_at) == (CONTACT, source, T0 + 3600)
    deadline = client.next_deadline()
    assert deadline == T0 + 2880
    run(client.handle_timers(deadline), deadline)  # the cached nonce outlived its 300 s: stale, answered
    assert exchanged == [401, 200, 401, 200]
    assert client.registered_until == deadline + 3600
    run(client.stop(deadline + 10), deadline + 10)
    assert exchanged == [401, 200, 401, 200, 200]
    assert registrar.bindings(deadline + 10) == []

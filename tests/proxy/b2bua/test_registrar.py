"""The trunk registrar (RFC 3261 §10.3): digest authentication, bindings, expiry and ordering."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.b2bua.registrar import Binding, Registrar
from proxy.b2bua.settings import Address, TrunkAccount
from proxy.sip.auth import Challenge, Credentials, build_credentials, make_challenge
from proxy.sip.message import Request, Response
from proxy.sip.uri import parse_uri

REALM = "pbx.example"
ACCOUNT = TrunkAccount(username="201", password="s3cret", realm=REALM)
OTHER_ACCOUNT = TrunkAccount(username="202", password="other", realm="other.example")
PBX: Address = ("192.0.2.10", 5062)
CONTACT = "<sip:201@192.0.2.10:5062;transport=udp>"
CONTACT_URI = "sip:201@192.0.2.10:5062;transport=udp"
T0 = 1000.0


def counter(prefix: str) -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{prefix}{next(numbers)}"


def make_registrar(
    accounts: tuple[TrunkAccount, ...] = (ACCOUNT,),
    *,
    max_auth_failures: int = 5,
    auth_failure_window_s: float = 300.0,
) -> Registrar:
    return Registrar(
        accounts,
        realm="callherald",
        token=counter("t"),
        max_auth_failures=max_auth_failures,
        auth_failure_window_s=auth_failure_window_s,
    )


def register(
    *,
    user: str = "201",
    host: str = "cb.example",
    contacts: tuple[str, ...] = (CONTACT,),
    expires: int | None = None,
    call_id: str = "call-1",
    cseq: int = 1,
    authorization: str | None = None,
    method: str = "REGISTER",
) -> Request:
    fields = [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc;rport"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:{user}@{host}>;tag=from1"),
        ("To", f"<sip:{user}@{host}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
    ]
    fields.extend(("Contact", contact) for contact in contacts)
    if expires is not None:
        fields.append(("Expires", str(expires)))
    if authorization is not None:
        fields.append(("Authorization", authorization))
    fields.append(("Content-Length", "0"))
    return Request(method, parse_uri(f"sip:{host}"), fields)


def challenge_of(response: Response) -> Challenge:
    assert response.status == 401
    values = response.headers.get_all("www-authenticate")
    assert len(values) == 1
    return Challenge.parse(values[0])


def answer(
    challenge: Challenge,
    *,
    username: str = "201",
    password: str = "s3cret",
    nonce_count: int = 1,
    rfc2069: bool = False,
    uri: str = "sip:cb.example",
) -> str:
    """What a client sends back; ``rfc2069`` answers as if no qop had been offered (pyVoIP 1.6.8)."""
    if rfc2069:
        assert challenge.realm is not None
        assert challenge.nonce is not None
        challenge = make_challenge(realm=challenge.realm, nonce=challenge.nonce, qop=())
    credentials = build_credentials(
        challenge,
        method="REGISTER",
        uri=uri,
        username=username,
        password=password,
        cnonce="c0ffee",
        nonce_count=nonce_count,
    )
    return str(credentials)


def contacts_of(response: Response) -> list[str]:
    return response.headers.fields("contact")


# ---------------------------------------------------------------------------------------------
# Digest authentication


def test_challenge_then_200_with_exact_headers() -> None:
    registrar = make_registrar()
    first = registrar.handle(register(), PBX, T0)
    assert (first.status, first.reason) == (401, "Unauthorized")
    assert list(first.headers) == [
        ("Via", "SIP/2.0/UDP 192.0.2.10:5062;branch=z9hG4bKabc;rport"),
        ("From", "<sip:201@cb.example>;tag=from1"),
        ("To", "<sip:201@cb.example>;tag=t1"),
        ("Call-ID", "call-1"),
        ("CSeq", "1 REGISTER"),
        ("WWW-Authenticate", 'Digest realm="pbx.example", qop="auth", nonce="t2", algorithm=MD5'),
        ("Content-Length", "0"),
    ]
    second = registrar.handle(register(cseq=2, authorization=answer(challenge_of(first))), PBX, T0 + 0.25)
    assert (second.status, second.reason) == (200, "OK")
    assert second.headers.get("to") == "<sip:201@cb.example>;tag=t3"
    assert contacts_of(second) == [f"<{CONTACT_URI}>;expires=3600"]
    assert registrar.bindings(T0 + 1) == [
        Binding(
            aor="201@cb.example",
            user="201",
            contact_uri=CONTACT_URI,
            source=PBX,
            expires_at=T0 + 0.25 + 3600,
            call_id="call-1",
            cseq=2,
            refreshed_at=T0 + 0.25,
        )
    ]


def test_rfc2069_credentials_without_qop_are_accepted() -> None:
    registrar = make_registrar()
    challenge = challenge_of(registrar.handle(register(), PBX, T0))
    authorization = answer(challenge, rfc2069=True, uri="sip:192.0.2.1;transport=UDP")
    assert Credentials.parse(authorization).qop is None
    response = registrar.handle(register(cseq=2, authorization=authorization), PBX, T0)
    assert response.status == 200


@dataclass(frozen=True)
class AuthCase:
    name: str
    username: str = "201"
    password: str = "s3cret"
    realm: str | None = None  # None: the challenged realm
    nonce: str | None = None  # None: the challenged nonce
    to_user: str = "201"
    answered_at: float = T0
    algorithm: str | None = None
    expected_status: int = 200
    expected_stale: bool = False


AUTH_CASES = [
    AuthCase("correct"),
    AuthCase("wrong password", password="guess", expected_status=401),
    AuthCase("unknown user", username="999", expected_status=401),
    AuthCase("wrong realm", realm="callherald", expected_status=401),
    AuthCase("algorithm not offered", algorithm="SHA-256", expected_status=401),
    AuthCase("nonce we never issued", nonce="forged", expected_status=401, expected_stale=True),
    AuthCase("nonce expired", answered_at=T0 + 300, expected_status=401, expected_stale=True),
    AuthCase("nonce just alive", answered_at=T0 + 299.9),
    AuthCase(
        "authenticated as another account",
        username="202",
        password="other",
        realm="other.example",
        expected_status=403,
    ),
]


@pytest.mark.parametrize("case", AUTH_CASES, ids=[case.name for case in AUTH_CASES])
def test_authentication_outcomes(case: AuthCase) -> None:
    registrar = make_registrar((ACCOUNT, OTHER_ACCOUNT))
    challenge = challenge_of(registrar.handle(register(user=case.to_user), PBX, T0))
    assert challenge.realm == REALM
    answered = make_challenge(
        realm=case.realm or REALM,
        nonce=case.nonce or challenge.nonce or "",
        algorithm=case.algorithm or "MD5",
    )
    authorization = answer(answered, username=case.username, password=case.password)
    response = registrar.handle(
        register(user=case.to_user, cseq=2, authorization=authorization), PBX, case.answered_at
    )
    assert response.status == case.expected_status
    if case.expected_status == 401:
        renewed = challenge_of(response)
        assert renewed.stale is case.expected_stale
        assert renewed.nonce != challenge.nonce
        assert renewed.realm == REALM
    assert len(registrar.bindings(case.answered_at)) == (1 if case.expected_status == 200 else 0)


def test_challenge_realm_follows_the_account_named_in_to() -> None:
    registrar = make_registrar((ACCOUNT, OTHER_ACCOUNT))
    assert challenge_of(registrar.handle(register(user="202"), PBX, T0)).realm == "other.example"
    assert challenge_of(registrar.handle(register(user="777"), PBX, T0)).realm == "callherald"


def test_user_authenticated_for_another_aor_gets_403() -> None:
    registrar = make_registrar((ACCOUNT, OTHER_ACCOUNT))
    challenge = challenge_of(registrar.handle(register(user="202"), PBX, T0))
    # A correct digest for 201, offered for the AOR of 202 (realm as challenged for 202).
    credentials = build_credentials(
        challenge, method="REGISTER", uri="sip:cb.example", username="201", password="s3cret", cnonce="x"
    )
    response = registrar.handle(register(user="202", cseq=2, authorization=str(credentials)), PBX, T0)
    # 201's realm is pbx.example, so the digest does not verify for the other realm: re-challenged.
    assert response.status == 401
    same_realm = Registrar(
        (ACCOUNT, TrunkAccount(username="202", password="other", realm=REALM)),
        realm=REALM,
        token=counter("u"),
    )
    challenge = challenge_of(same_realm.handle(register(user="202"), PBX, T0))
    response = same_realm.handle(
        register(user="202", cseq=2, authorization=answer(challenge, username="201")), PBX, T0
    )
    assert (response.status, same_realm.bindings(T0)) == (403, [])


@pytest.mark.parametrize(
    ("first", "second", "statuses"),
    [
        pytest.param({"nonce_count": 1}, {"nonce_count": 1}, (200, 401), id="qop nc replayed"),
        pytest.param({"nonce_count": 1}, {"nonce_count": 2}, (200, 200), id="qop nc grows"),
        pytest.param({"nonce_count": 3}, {"nonce_count": 2}, (200, 401), id="qop nc falls"),
        pytest.param({"rfc2069": True}, {"rfc2069": True}, (200, 401), id="rfc2069 nonce reused"),
    ],
)
def test_nonce_reuse(first: dict[str, object], second: dict[str, object], statuses: tuple[int, int]) -> None:
    registrar = make_registrar()
    challenge = challenge_of(registrar.handle(register(), PBX, T0))
    results = []
    for cseq, options in ((2, first), (3, second)):
        authorization = answer(challenge, **options)  # type: ignore[arg-type]
        results.append(registrar.handle(register(cseq=cseq, authorization=authorization), PBX, T0 + cseq))
    assert tuple(response.status for response in results) == statuses
    if statuses[1] == 401:
        assert challenge_of(results[1]).stale is True


def test_wrong_passwords_are_rechallenged_then_forbidden() -> None:
    registrar = make_registrar(max_auth_failures=3, auth_failure_window_s=60.0)
    other_host: Address = ("192.0.2.99", 5060)
    timeline: list[tuple[float, Address, str, int]] = [
        (T0 + 0, PBX, "guess1", 401),
        (T0 + 10, PBX, "guess2", 401),
        (T0 + 20, PBX, "guess3", 403),  # third failure within the window
        (T0 + 30, PBX, "s3cret", 403),  # locked: even the right password
        (T0 + 30, ("192.0.2.10", 40000), "s3cret", 403),  # same host, other port
        (T0 + 30, other_host, "s3cret", 200),  # another host is unaffected
        (T0 + 65, PBX, "s3cret", 200),  # first failure aged out: 2 in the window
    ]
    statuses = []
    for cseq, (now, source, password, _) in enumerate(timeline, start=1):
        challenge = make_challenge(realm=REALM, nonce="unused")
        issued = registrar.handle(register(cseq=cseq * 2), source, now)
        if issued.status == 401:
            challenge = challenge_of(issued)
        request = register(cseq=cseq * 2 + 1, authorization=answer(challenge, password=password))
        statuses.append(registrar.handle(request, source, now).status)
    assert statuses == [expected for *_, expected in timeline]


def test_blocked_source_gets_403_without_credentials_too() -> None:
    registrar = make_registrar(max_auth_failures=1)
    challenge = challenge_of(registrar.handle(register(), PBX, T0))
    bad = registrar.handle(register(cseq=2, authorization=answer(challenge, password="x")), PBX, T0)
    assert bad.status == 403
    assert registrar.handle(register(cseq=3), PBX, T0 + 1).status == 403
    assert registrar.handle(register(cseq=4), PBX, T0 + 301).status == 401


def test_without_accounts_the_network_is_trusted() -> None:
    registrar = make_registrar(())
    response = registrar.handle(register(expires=120), PBX, T0)
    assert response.status == 200
    assert response.headers.get("www-authenticate") is None
    assert contacts_of(response) == [f"<{CONTACT_URI}>;expires=120"]


def test_authorization_garbage_is_400() -> None:
    registrar = make_registrar()
    assert registrar.handle(register(authorization="Digest"), PBX, T0).status == 400


# ---------------------------------------------------------------------------------------------
# Expiry


@pytest.mark.parametrize(
    ("contact", "expires_header", "status", "contact_out", "min_expires"),
    [
        pytest.param(f"{CONTACT};expires=120", 600, 200, "expires=120", None, id="param beats header"),
        pytest.param(CONTACT, 600, 200, "expires=600", None, id="header"),
        pytest.param(CONTACT, None, 200, "expires=3600", None, id="default"),
        pytest.param(CONTACT, 60, 200, "expires=60", None, id="exactly min"),
        pytest.param(CONTACT, 59, 423, None, "60", id="header below min"),
        pytest.param(f"{CONTACT};expires=1", 600, 423, None, "60", id="param below min"),
        pytest.param(
            f"{CONTACT};expires=600", 1, 200, "expires=600", None, id="param above min, header below"
        ),
        pytest.param(f"{CONTACT};expires=7200", None, 200, "expires=3600", None, id="param clamped"),
        pytest.param(CONTACT, 4294967295, 200, "expires=3600", None, id="header clamped"),
        pytest.param(f"{CONTACT};expires=abc", None, 400, None, None, id="bad param"),
        pytest.param(f"{CONTACT};expires", None, 400, None, None, id="param without value"),
        pytest.param(CONTACT, 0, 200, None, None, id="zero removes nothing"),
    ],
)
def test_expires(
    contact: str, expires_header: int | None, status: int, contact_out: str | None, min_expires: str | None
) -> None:
    registrar = make_registrar(())
    response = registrar.handle(register(contacts=(contact,), expires=expires_header), PBX, T0)
    assert response.status == status
    assert response.headers.get("min-expires") == min_expires
    assert contacts_of(response) == ([] if contact_out is None else [f"<{CONTACT_URI}>;{contact_out}"])
    assert len(registrar.bindings(T0)) == (1 if contact_out else 0)


def test_refresh_zero_and_star_removal() -> None:
    registrar = make_registrar(())
    second = "<sip:201@192.0.2.11:5062>"
    assert registrar.handle(register(contacts=(CONTACT, second), expires=600), PBX, T0).status == 200
    other_aor = register(user="300", contacts=("<sip:300@192.0.2.12>",), call_id="call-3")
    assert registrar.handle(other_aor, PBX, T0).status == 200
    # Refresh one contact 100 s later, remove the other with expires=0.
    response = registrar.handle(
        register(contacts=(f"{CONTACT};expires=900", f"{second};expires=0"), cseq=2), PBX, T0 + 100
    )
    assert contacts_of(response) == [f"<{CONTACT_URI}>;expires=900"]
    # "*" with Expires: 0 removes every binding of the AOR, and no other.
    response = registrar.handle(register(contacts=("*",), expires=0, cseq=3), PBX, T0 + 200)
    assert (response.status, contacts_of(response)) == (200, [])
    assert [binding.aor for binding in registrar.bindings(T0 + 200)] == ["300@cb.example"]


@pytest.mark.parametrize(
    ("contacts", "expires"),
    [
        pytest.param(("*",), None, id="no Expires"),
        pytest.param(("*",), 60, id="Expires not zero"),
        pytest.param(("*", CONTACT), 0, id="star with another contact"),
        pytest.param((f"*, {CONTACT}",), 0, id="star in a list"),
    ],
)
def test_star_misuse_is_400(contacts: tuple[str, ...], expires: int | None) -> None:
    registrar = make_registrar(())
    assert registrar.handle(register(expires=600), PBX, T0).status == 200
    response = registrar.handle(register(contacts=contacts, expires=expires, cseq=2), PBX, T0)
    assert response.status == 400
    assert len(registrar.bindings(T0)) == 1


def test_423_changes_nothing_even_for_valid_contacts_in_the_same_request() -> None:
    registrar = make_registrar(())
    request = register(contacts=(CONTACT, "<sip:201@192.0.2.11>;expires=5"), expires=600)
    assert registrar.handle(request, PBX, T0).status == 423
    assert registrar.bindings(T0) == []


def test_query_without_contact_lists_bindings_with_remaining_time() -> None:
    registrar = make_registrar(())
    registrar.handle(register(expires=600), PBX, T0)
    response = registrar.handle(register(contacts=(), cseq=2), PBX, T0 + 150)
    assert (response.status, contacts_of(response)) == (200, [f"<{CONTACT_URI}>;expires=450"])


# ---------------------------------------------------------------------------------------------
# Ordering (§10.3 step 7)


@pytest.mark.parametrize(
    ("call_id", "cseq", "status"),
    [
        pytest.param("call-1", 5, 500, id="same call-id, same cseq"),
        pytest.param("call-1", 4, 500, id="same call-id, lower cseq"),
        pytest.param("call-1", 6, 200, id="same call-id, higher cseq"),
        pytest.param("call-2", 1, 200, id="other call-id, lower cseq"),
    ],
)
@pytest.mark.parametrize("contacts", [(f"{CONTACT};expires=300",), ("*",)], ids=["contact", "star"])
def test_ordering(call_id: str, cseq: int, status: int, contacts: tuple[str, ...]) -> None:
    registrar = make_registrar(())
    assert registrar.handle(register(expires=600, cseq=5), PBX, T0).status == 200
    expires = 0 if contacts == ("*",) else None
    response = registrar.handle(
        register(contacts=contacts, expires=expires, call_id=call_id, cseq=cseq), PBX, T0 + 1
    )
    assert response.status == status
    if status == 500:
        assert response.reason == "Out of Order"
        assert [(b.call_id, b.cseq, b.expires_at) for b in registrar.bindings(T0 + 1)] == [
            ("call-1", 5, T0 + 600)
        ]


# ---------------------------------------------------------------------------------------------
# Bindings and lookup


def test_multiple_contacts_listed_with_remaining_times() -> None:
    registrar = make_registrar(())
    first = registrar.handle(
        register(contacts=("<sip:a@192.0.2.1>;expires=300", "<sip:b@192.0.2.2>"), expires=900), PBX, T0
    )
    assert contacts_of(first) == ["<sip:a@192.0.2.1>;expires=300", "<sip:b@192.0.2.2>;expires=900"]
    third = registrar.handle(
        register(contacts=("<sip:c@192.0.2.3>",), expires=120, call_id="call-2"), PBX, T0 + 100
    )
    assert contacts_of(third) == [
        "<sip:a@192.0.2.1>;expires=200",
        "<sip:b@192.0.2.2>;expires=800",
        "<sip:c@192.0.2.3>;expires=120",
    ]


def test_contacts_match_host_case_insensitively_and_aor_user_case_sensitively() -> None:
    registrar = make_registrar(())
    registrar.handle(register(contacts=("<sip:201@PBX.example:5062>",), expires=600), PBX, T0)
    registrar.handle(
        register(host="CB.Example", contacts=("<sip:201@pbx.EXAMPLE:5062>",), expires=900, cseq=2), PBX, T0
    )
    assert [(b.aor, b.contact_uri, b.expires_at) for b in registrar.bindings(T0)] == [
        ("201@cb.example", "sip:201@pbx.EXAMPLE:5062", T0 + 900)
    ]
    registrar.handle(register(user="Alice", contacts=("<sip:a@192.0.2.1>",), expires=600), PBX, T0)
    registrar.handle(register(user="alice", contacts=("<sip:a@192.0.2.1>",), expires=600), PBX, T0)
    assert [b.aor for b in registrar.bindings(T0)] == [
        "201@cb.example",
        "Alice@cb.example",
        "alice@cb.example",
    ]


def test_source_address_is_remembered_and_updated() -> None:
    registrar = make_registrar(())
    registrar.handle(register(expires=600), ("198.51.100.7", 40001), T0)
    registrar.handle(register(expires=600, cseq=2), ("198.51.100.7", 40002), T0 + 30)
    binding = registrar.lookup("201", T0 + 30)
    assert binding is not None
    assert (binding.source, binding.cseq, binding.refreshed_at) == (("198.51.100.7", 40002), 2, T0 + 30)


def test_lookup_picks_the_most_recent_live_binding() -> None:
    registrar = make_registrar(())
    registrar.handle(register(user="201", contacts=("<sip:201@192.0.2.1>",), expires=600), PBX, T0)
    registrar.handle(register(user="202", contacts=("<sip:202@192.0.2.2>",), expires=60), PBX, T0 + 10)
    registrar.handle(
        register(user="201", contacts=("<sip:x@192.0.2.3>", "<sip:y@192.0.2.4>"), expires=600, call_id="c2"),
        PBX,
        T0 + 5,
    )
    cases: list[tuple[str | None, float, str | None]] = [
        (None, T0 + 20, "sip:202@192.0.2.2"),  # 202 is the most recently refreshed
        ("202", T0 + 20, "sip:202@192.0.2.2"),
        ("201", T0 + 20, "sip:x@192.0.2.3"),  # first listed contact of the latest REGISTER
        ("999", T0 + 20, "sip:202@192.0.2.2"),  # unknown user: most recent of any AOR
        (None, T0 + 70, "sip:x@192.0.2.3"),  # 202 expired at T0 + 70
        ("202", T0 + 70, "sip:x@192.0.2.3"),
        (None, T0 + 605, None),  # everything expired
    ]
    found = []
    for user, now, _ in cases:
        binding = registrar.lookup(user, now)
        found.append(None if binding is None else binding.contact_uri)
    assert found == [expected for *_, expected in cases]


def test_lookup_prefers_the_first_contact_of_the_latest_register() -> None:
    registrar = make_registrar(())
    registrar.handle(register(contacts=("<sip:a@192.0.2.1>", "<sip:b@192.0.2.2>"), expires=600), PBX, T0)
    first = registrar.lookup("201", T0)
    registrar.handle(
        register(contacts=("<sip:b@192.0.2.2>", "<sip:a@192.0.2.1>"), expires=600, cseq=2), PBX, T0 + 9
    )
    second = registrar.lookup("201", T0 + 9)
    assert (first and first.contact_uri, second and second.contact_uri) == (
        "sip:a@192.0.2.1",
        "sip:b@192.0.2.2",
    )
    # The listing keeps the order of first registration.
    assert [b.contact_uri for b in registrar.bindings(T0 + 9)] == ["sip:a@192.0.2.1", "sip:b@192.0.2.2"]


def test_purge_removes_expired_bindings() -> None:
    registrar = make_registrar(())
    registrar.handle(register(user="201", expires=60), PBX, T0)
    registrar.handle(register(user="202", contacts=("<sip:202@192.0.2.2>",), expires=600), PBX, T0)
    assert registrar.bindings(T0 + 60) == registrar.bindings(T0 + 61)
    assert [b.user for b in registrar.bindings(T0 + 59)] == ["201", "202"]
    removed = registrar.purge(T0 + 60)
    assert [b.user for b in removed] == ["201"]
    assert registrar.purge(T0 + 60) == []
    assert [b.user for b in registrar.bindings(T0)] == ["202"]


@pytest.mark.parametrize(
    ("to", "status"),
    [
        pytest.param("<sip:cb.example>", 404, id="AOR without user"),
        pytest.param("<tel:+3212345678>", 404, id="tel AOR"),
        pytest.param("<sip:cb.example", 400, id="malformed To"),
    ],
)
def test_unusable_to(to: str, status: int) -> None:
    request = register()
    request.headers.set("To", to)
    response = make_registrar(()).handle(request, PBX, T0)
    assert response.status == status


def test_other_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="INVITE"):
        make_registrar(()).handle(register(method="INVITE"), PBX, T0)


@pytest.mark.parametrize(
    ("min_s", "max_s", "default_s", "failures", "message"),
    [
        pytest.param(0, 3600, 3600, 5, "min_expires_s", id="min zero"),
        pytest.param(100, 50, 50, 5, "min_expires_s", id="min above max"),
        pytest.param(60, 3600, 30, 5, "default_expires_s", id="default below min"),
        pytest.param(60, 3600, 7200, 5, "default_expires_s", id="default above max"),
        pytest.param(60, 3600, 3600, 0, "max_auth_failures", id="no failures allowed"),
    ],
)
def test_bad_limits(min_s: int, max_s: int, default_s: int, failures: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Registrar(
            (),
            realm="r",
            token=counter("t"),
            min_expires_s=min_s,
            max_expires_s=max_s,
            default_expires_s=default_s,
            max_auth_failures=failures,
        )


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4000), st.integers(0, 500)),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 6000),
)
def test_lookup_never_returns_an_expired_binding(events: list[tuple[int, int, int]], probe: int) -> None:
    registrar = make_registrar(())
    now = T0
    for cseq, (user, expires, step) in enumerate(events, start=1):
        now += step
        registrar.handle(register(user=f"u{user}", expires=expires, cseq=cseq), PBX, now)
    at = now + probe
    live = registrar.bindings(at)
    assert all(binding.expires_at > at for binding in live)
    binding = registrar.lookup(None, at)
    if live:
        assert binding is not None
        assert binding.refreshed_at == max(b.refreshed_at for b in live)
    else:
        assert binding is None

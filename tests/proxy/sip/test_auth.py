"""Tests for proxy.sip.auth: header parsing/serialising and the Digest computation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.sip.auth import (
    AuthParam,
    Challenge,
    Credentials,
    auth_header_for,
    build_credentials,
    challenge_header_for,
    choose_challenge,
    is_supported_algorithm,
    make_challenge,
    verify_credentials,
)
from proxy.sip.errors import SipError

# RFC 2617 §3.5 worked example.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_AUTHORIZATION = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, '
    'cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)

# RFC 7616 §3.9.1 worked example (one challenge per algorithm).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"


def rfc7616_challenge(algorithm: str) -> str:
    return (
        f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
        f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def rfc7616_authorization(algorithm: str, response: str) -> str:
    return (
        f'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", nc=00000001, cnonce="{RFC7616_CNONCE}", '
        f'qop=auth, response="{response}", opaque="{RFC7616_OPAQUE}"'
    )


RFC7616_RESPONSES = {
    "MD5": "8ca523f5e9506fed4657c9700eebdbec",
    "SHA-256": "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
}

P = tuple[str, str, bool]


def triples(value: Challenge | Credentials) -> list[P]:
    return [(param.name, param.value, param.quoted) for param in value.params]


# ---------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("text", "scheme", "params"),
    [
        pytest.param(
            'Digest realm="atlanta.com", domain="sip:boxesbybob.com", qop="auth", '
            'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5',
            "Digest",
            [
                ("realm", "atlanta.com", True),
                ("domain", "sip:boxesbybob.com", True),
                ("qop", "auth", True),
                ("nonce", "f84f1cec41e6cbe5aea9c8e88d359", True),
                ("opaque", "", True),
                ("stale", "FALSE", False),
                ("algorithm", "MD5", False),
            ],
            id="rfc3261-20.27",
        ),
        pytest.param(
            r'Digest realm="say \"hi\" \\ bye", nonce="a\bc"',
            "Digest",
            [("realm", 'say "hi" \\ bye', True), ("nonce", "abc", True)],
            id="escapes",
        ),
        pytest.param(
            'Digest   realm = "r" ,nonce="n"  ,  algorithm = SHA-256  ',
            "Digest",
            [("realm", "r", True), ("nonce", "n", True), ("algorithm", "SHA-256", False)],
            id="spacing",
        ),
        pytest.param(
            'Digest\trealm="r",\tnonce="n"',
            "Digest",
            [("realm", "r", True), ("nonce", "n", True)],
            id="tabs",
        ),
        pytest.param(
            'Digest realm="r",\r\n nonce="n"',
            "Digest",
            [("realm", "r", True), ("nonce", "n", True)],
            id="folded-line",
        ),
        pytest.param(
            'digest REALM="r", Nonce="n", QoP="auth"',
            "digest",
            [("realm", "r", True), ("nonce", "n", True), ("qop", "auth", True)],
            id="case-insensitive-names",
        ),
        pytest.param(
            'Digest realm="a, b = c", nonce="x,y"',
            "Digest",
            [("realm", "a, b = c", True), ("nonce", "x,y", True)],
            id="comma-and-equals-inside-quotes",
        ),
        pytest.param(
            "Digest realm=example.com, nonce=abc123, stale=TRUE, userhash=true, charset=UTF-8",
            "Digest",
            [
                ("realm", "example.com", False),
                ("nonce", "abc123", False),
                ("stale", "TRUE", False),
                ("userhash", "true", False),
                ("charset", "UTF-8", False),
            ],
            id="token-values",
        ),
        pytest.param(
            'Digest realm="r", nonce="n", x-vendor=on, x-note="kept as is"',
            "Digest",
            [
                ("realm", "r", True),
                ("nonce", "n", True),
                ("x-vendor", "on", False),
                ("x-note", "kept as is", True),
            ],
            id="unknown-params-kept",
        ),
        pytest.param(
            'Digest realm="Caf\u00e9", nonce=""',
            "Digest",
            [("realm", "Caf\u00e9", True), ("nonce", "", True)],
            id="utf8-and-empty-quoted",
        ),
        pytest.param(
            'Bearer realm="example.com", scope="sip"',
            "Bearer",
            [("realm", "example.com", True), ("scope", "sip", True)],
            id="other-scheme",
        ),
    ],
)
def test_challenge_parse(text: str, scheme: str, params: list[P]) -> None:
    challenge = Challenge.parse(text)
    assert challenge.scheme == scheme
    assert triples(challenge) == params
    # Same grammar for credentials.
    credentials = Credentials.parse(text)
    assert triples(credentials) == params


@pytest.mark.parametrize(
    ("text", "stale", "qop_options", "domain", "algorithm", "userhash"),
    [
        ('Digest realm="r", nonce="n"', False, (), (), None, False),
        ('Digest realm="r", nonce="n", stale=TRUE', True, (), (), None, False),
        ('Digest realm="r", nonce="n", stale="true"', True, (), (), None, False),
        ('Digest realm="r", nonce="n", stale=false', False, (), (), None, False),
        ('Digest realm="r", nonce="n", qop="auth,auth-int"', False, ("auth", "auth-int"), (), None, False),
        ('Digest realm="r", nonce="n", qop=" auth , auth-int ,"', False, ("auth", "auth-int"), (), None,
         False),
        ('Digest realm="r", nonce="n", qop=auth', False, ("auth",), (), None, False),
        ('Digest realm="r", nonce="n", domain="sip:a.example  sip:b.example"', False, (),
         ("sip:a.example", "sip:b.example"), None, False),
        ('Digest realm="r", nonce="n", algorithm=SHA-256-sess', False, (), (), "SHA-256-sess", False),
        ('Digest realm="r", nonce="n", userhash=TRUE', False, (), (), None, True),
    ],
)  # fmt: skip
def test_challenge_properties(
    *,
    text: str,
    stale: bool,
    qop_options: tuple[str, ...],
    domain: tuple[str, ...],
    algorithm: str | None,
    userhash: bool,
) -> None:
    challenge = Challenge.parse(text)
    assert challenge.realm == "r"
    assert challenge.nonce == "n"
    assert challenge.stale is stale
    assert challenge.qop_options == qop_options
    assert challenge.domain == domain
    assert challenge.algorithm == algorithm
    assert challenge.userhash is userhash
    assert challenge.is_digest


def test_challenge_get_is_case_insensitive_and_missing_is_none() -> None:
    challenge = Challenge.parse('Digest Realm="r", nonce="n", opaque="o", charset=UTF-8')
    assert challenge.get("REALM") == "r"
    assert challenge.opaque == "o"
    assert challenge.charset == "UTF-8"
    assert challenge.get("algorithm") is None
    assert Challenge.parse('Basic realm="r"').is_digest is False


def test_credentials_properties() -> None:
    credentials = Credentials.parse(RFC2617_AUTHORIZATION)
    assert credentials.username == "Mufasa"
    assert credentials.realm == "testrealm@host.com"
    assert credentials.nonce == "dcd98b7102dd2f0e8b11d0f600bfb0c093"
    assert credentials.uri == "/dir/index.html"
    assert credentials.qop == "auth"
    assert credentials.nc == "00000001"
    assert credentials.cnonce == "0a4f113b"
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert credentials.algorithm is None
    assert credentials.userhash is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('digest  REALM = "r" , nonce=abc', 'digest realm="r", nonce=abc'),
        (r'Digest realm="a\"b\\c", nonce="n"', r'Digest realm="a\"b\\c", nonce="n"'),
        (r'Digest realm="a\bc", nonce="n"', 'Digest realm="abc", nonce="n"'),
        ('Digest realm="r",\r\n\tnonce="n", stale=TRUE', 'Digest realm="r", nonce="n", stale=TRUE'),
        (RFC2617_AUTHORIZATION, RFC2617_AUTHORIZATION),
    ],
)
def test_serialise(text: str, expected: str) -> None:
    assert str(Challenge.parse(text)) == expected
    assert str(Credentials.parse(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        RFC2617_CHALLENGE,
        RFC2617_AUTHORIZATION,
        rfc7616_challenge("SHA-256"),
        r'Digest realm="say \"hi\" \\ bye", nonce="n"',
        'Digest realm="r", nonce="n", x-vendor=on, qop="auth,auth-int", stale=TRUE',
    ],
)
def test_round_trip(text: str) -> None:
    challenge = Challenge.parse(text)
    assert Challenge.parse(str(challenge)) == challenge
    credentials = Credentials.parse(text)
    assert Credentials.parse(str(credentials)) == credentials


def test_challenge_and_credentials_are_not_equal() -> None:
    challenge: object = Challenge.parse(RFC2617_CHALLENGE)
    assert challenge != Credentials.parse(RFC2617_CHALLENGE)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty authentication header value"),
        ("   \t", "empty authentication header value"),
        ("Digest", "authentication scheme 'Digest' without parameters"),
        ("Digest  ", "authentication scheme 'Digest' without parameters"),
        ('realm="r", nonce="n"', "authentication header value without a scheme"),
        ('"Digest" realm="r"', "authentication header value without a scheme"),
        ('Dig@st realm="r"', "authentication header value without a scheme"),
        ('Digest,realm="r"', "authentication header value without a scheme"),
        ('Digest realm="r', "unterminated quoted-string in authentication header"),
        ('Digest realm="r\\', "unterminated quoted-string in authentication header"),
        ('Digest realm="r\\"', "unterminated quoted-string in authentication header"),
        ('Digest realm="a\r\nb"', "line break inside a quoted-string"),
        ("Digest realm", "authentication parameter 'realm' without '='"),
        ('Digest realm="r", nonce', "authentication parameter 'nonce' without '='"),
        ('Digest realm "r"', "authentication parameter 'realm' without '='"),
        ("Digest realm=", "authentication parameter 'realm' without a value"),
        ('Digest realm=, nonce="n"', "authentication parameter 'realm' without a value"),
        ('Digest realm="r" nonce="n"', "expected ',' between authentication parameters"),
        ('Digest realm=a/b, nonce="n"', "expected ',' between authentication parameters"),
        ('Digest realm="r",', "expected an authentication parameter name"),
        ('Digest realm="r",, nonce="n"', "expected an authentication parameter name"),
        ('Digest ,realm="r"', "expected an authentication parameter name"),
        ('Digest ="r"', "expected an authentication parameter name"),
        ('Digest realm="r", REALM="s"', "duplicate authentication parameter 'realm'"),
    ],
)
@pytest.mark.parametrize("kind", [Challenge, Credentials])
def test_malformed_raises_400(text: str, reason: str, kind: type[Challenge] | type[Credentials]) -> None:
    with pytest.raises(SipError) as info:
        kind.parse(text)
    assert info.value.reason == reason
    assert info.value.status_hint == 400


# ---------------------------------------------------------------------------------------------
# Value-type invariants


@pytest.mark.parametrize(
    ("name", "value", "quoted", "expected"),
    [
        ("Realm", "r", True, 'realm="r"'),
        ("nc", "00000001", False, "nc=00000001"),
        ("x", 'a"b\\c', True, r'x="a\"b\\c"'),
        ("x", "a\x01b\tc\x7f", True, 'x="a\\\x01b\tc\\\x7f"'),
    ],
)
def test_auth_param_str(name: str, value: str, quoted: bool, expected: str) -> None:
    assert str(AuthParam(name=name, value=value, quoted=quoted)) == expected


@pytest.mark.parametrize(
    ("name", "value", "quoted"),
    [
        ("", "v", True),
        ("bad name", "v", True),
        ("x", "", False),
        ("x", "a b", False),
        ("x", 'a"', False),
        ("x", "a\r\nb", True),
        ("x", "a\nb", True),
    ],
)
def test_auth_param_rejects_unwritable(name: str, value: str, quoted: bool) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError
        AuthParam(name=name, value=value, quoted=quoted)


@pytest.mark.parametrize(
    ("scheme", "params"),
    [
        ("Digest", ()),
        ("Dig est", (AuthParam(name="realm", value="r"),)),
        ("", (AuthParam(name="realm", value="r"),)),
        ("Digest", (AuthParam(name="realm", value="r"), AuthParam(name="REALM", value="s"))),
    ],
)
def test_header_value_rejects_invalid(scheme: str, params: tuple[AuthParam, ...]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError
        Challenge(scheme=scheme, params=params)


# ---------------------------------------------------------------------------------------------
# Published worked examples


def test_rfc2617_example() -> None:
    challenge = Challenge.parse(RFC2617_CHALLENGE)
    credentials = build_credentials(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle Of Life",
        cnonce="0a4f113b",
        nonce_count=1,
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert str(credentials) == (
        'Digest username="Mufasa", realm="testrealm@host.com", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", '
        'response="6629fae49393a05397450978507c4ef1", cnonce="0a4f113b", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41", qop=auth, nc=00000001'
    )
    # No algorithm in the challenge, so none in the credentials.
    assert credentials.algorithm is None


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_rfc7616_example(algorithm: str) -> None:
    challenge = Challenge.parse(rfc7616_challenge(algorithm))
    credentials = build_credentials(
        challenge,
        method="GET",
        uri="/dir/index.html",
        username="Mufasa",
        password="Circle of Life",
        cnonce=RFC7616_CNONCE,
    )
    assert credentials.response == RFC7616_RESPONSES[algorithm]
    assert credentials.algorithm == algorithm
    assert credentials.opaque == RFC7616_OPAQUE
    assert credentials.qop == "auth"
    assert credentials.nc == "00000001"
    assert credentials.get("username") == "Mufasa"
    # The RFC's own Authorization header carries the same parameters.
    published = Credentials.parse(rfc7616_authorization(algorithm, RFC7616_RESPONSES[algorithm]))
    assert sorted(triples(credentials)) == sorted(triples(published))


@pytest.mark.parametrize(
    ("text", "password", "realm", "expected"),
    [
        (RFC2617_AUTHORIZATION, "Circle Of Life", "testrealm@host.com", True),
        (RFC2617_AUTHORIZATION, "Circle of Life", "testrealm@host.com", False),
        (RFC2617_AUTHORIZATION, "Circle Of Life", "other@host.com", False),
        (rfc7616_authorization("MD5", RFC7616_RESPONSES["MD5"]), "Circle of Life",
         "http-auth@example.org", True),
        (rfc7616_authorization("SHA-256", RFC7616_RESPONSES["SHA-256"]), "Circle of Life",
         "http-auth@example.org", True),
        (rfc7616_authorization("SHA-256", RFC7616_RESPONSES["SHA-256"]), "Circle Of Life",
         "http-auth@example.org", False),
        (rfc7616_authorization("SHA-256", RFC7616_RESPONSES["SHA-256"]), "Circle of Life",
         "HTTP-AUTH@example.org", False),
        # The MD5 response presented as SHA-256 does not verify.
        (rfc7616_authorization("SHA-256", RFC7616_RESPONSES["MD5"]), "Circle of Life",
         "http-auth@example.org", False),
    ],
)  # fmt: skip
def test_verify_published_credentials(text: str, password: str, realm: str, expected: bool) -> None:
    credentials = Credentials.parse(text)
    assert verify_credentials(credentials, method="GET", password=password, expected_realm=realm) is expected


def test_verify_rejects_other_method() -> None:
    credentials = Credentials.parse(RFC2617_AUTHORIZATION)
    assert not verify_credentials(
        credentials, method="POST", password="Circle Of Life", expected_realm="testrealm@host.com"
    )


# ---------------------------------------------------------------------------------------------
# Digest variants checked against the formulas written out (RFC 7616 §3.4, RFC 2069)


def h(hash_name: str, data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.new(hash_name, raw).hexdigest()


@pytest.mark.parametrize(
    ("algorithm", "hash_name", "sess"),
    [
        ("MD5", "md5", False),
        ("md5", "md5", False),
        ("MD5-sess", "md5", True),
        ("SHA-256", "sha256", False),
        ("SHA-256-sess", "sha256", True),
        ("SHA-512-256", "sha512_256", False),
        ("SHA-512-256-sess", "sha512_256", True),
    ],
)
@pytest.mark.parametrize(
    ("offered", "qop"),
    [("auth", "auth"), ("auth-int,auth", "auth"), ("auth-int", "auth-int"), ("AUTH", "auth")],
)
def test_digest_with_qop(algorithm: str, hash_name: str, sess: bool, offered: str, qop: str) -> None:
    challenge = Challenge.parse(
        f'Digest realm="carrier.example", nonce="n0nce", qop="{offered}", algorithm={algorithm}'
    )
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
    credentials = build_credentials(
        challenge,
        method="INVITE",
        uri="sip:+4930123@carrier.example",
        username="trunk1",
        password="s3cret",
        cnonce="c-n",
        nonce_count=0x1F,
        body=body,
    )
    ha1 = h(hash_name, "trunk1:carrier.example:s3cret")
    if sess:
        ha1 = h(hash_name, f"{ha1}:n0nce:c-n")
    a2 = "INVITE:sip:+4930123@carrier.example"
    if qop == "auth-int":
        a2 += ":" + h(hash_name, body)
    expected = h(hash_name, f"{ha1}:n0nce:0000001f:c-n:{qop}:{h(hash_name, a2)}")
    assert triples(credentials) == [
        ("username", "trunk1", True),
        ("realm", "carrier.example", True),
        ("nonce", "n0nce", True),
        ("uri", "sip:+4930123@carrier.example", True),
        ("response", expected, True),
        ("algorithm", algorithm, False),
        ("cnonce", "c-n", True),
        ("qop", qop, False),
        ("nc", "0000001f", False),
    ]

    def verify(password: str, body: bytes) -> bool:
        return verify_credentials(
            credentials, method="INVITE", password=password, expected_realm="carrier.example", body=body
        )

    assert verify("s3cret", body)
    assert not verify("s3cret!", body)
    # The body counts only with auth-int.
    assert verify("s3cret", b"other") is (qop == "auth")


@pytest.mark.parametrize(("algorithm", "hash_name"), [(None, "md5"), ("MD5", "md5"), ("SHA-256", "sha256")])
def test_digest_without_qop(algorithm: str | None, hash_name: str) -> None:
    challenge = make_challenge(realm="pbx.example", nonce="abc", algorithm=algorithm, qop=(), opaque="op")
    credentials = build_credentials(
        challenge,
        method="REGISTER",
        uri="sip:pbx.example",
        username="201",
        password="pw",
        cnonce="unused",
        nonce_count=7,
    )
    ha1 = h(hash_name, "201:pbx.example:pw")
    ha2 = h(hash_name, "REGISTER:sip:pbx.example")
    expected = h(hash_name, f"{ha1}:abc:{ha2}")  # RFC 2069
    params = [
        ("username", "201", True),
        ("realm", "pbx.example", True),
        ("nonce", "abc", True),
        ("uri", "sip:pbx.example", True),
        ("response", expected, True),
    ]
    if algorithm is not None:
        params.append(("algorithm", algorithm, False))
    params.append(("opaque", "op", True))
    assert triples(credentials) == params
    assert verify_credentials(credentials, method="REGISTER", password="pw", expected_realm="pbx.example")
    assert not verify_credentials(credentials, method="REGISTER", password="pW", expected_realm="pbx.example")


def test_userhash() -> None:
    challenge = Challenge.parse(
        'Digest realm="r.example", nonce="n", qop="auth", algorithm=SHA-256, userhash=true'
    )
    credentials = build_credentials(
        challenge, method="REGISTER", uri="sip:r.example", username="alice", password="pw", cnonce="c"
    )
    assert credentials.username == h("sha256", "alice:r.example")  # RFC 7616 §3.4.4
    assert credentials.userhash is True
    ha1 = h("sha256", "alice:r.example:pw")  # the real username goes into A1
    ha2 = h("sha256", "REGISTER:sip:r.example")
    assert credentials.response == h("sha256", f"{ha1}:n:00000001:c:auth:{ha2}")
    # The verifier has no username to hash against, so it refuses userhash credentials.
    assert not verify_credentials(credentials, method="REGISTER", password="pw", expected_realm="r.example")


@pytest.mark.parametrize(
    ("nonce_count", "nc"), [(1, "00000001"), (255, "000000ff"), (0xFFFFFFFF, "ffffffff")]
)
def test_nonce_count_format(nonce_count: int, nc: str) -> None:
    challenge = make_challenge(realm="r", nonce="n")
    credentials = build_credentials(
        challenge,
        method="INVITE",
        uri="sip:x@r",
        username="u",
        password="p",
        cnonce="c",
        nonce_count=nonce_count,
    )
    assert credentials.nc == nc
    assert verify_credentials(credentials, method="INVITE", password="p", expected_realm="r")


@pytest.mark.parametrize(("nonce_count", "cnonce"), [(0, "c"), (-1, "c"), (0x1_0000_0000, "c"), (1, "")])
def test_build_rejects_bad_arguments(nonce_count: int, cnonce: str) -> None:
    challenge = make_challenge(realm="r", nonce="n")
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError
        build_credentials(
            challenge,
            method="INVITE",
            uri="sip:x@r",
            username="u",
            password="p",
            cnonce=cnonce,
            nonce_count=nonce_count,
        )


def test_empty_cnonce_is_fine_without_qop() -> None:
    challenge = make_challenge(realm="r", nonce="n", qop=())
    credentials = build_credentials(
        challenge, method="INVITE", uri="sip:x@r", username="u", password="p", cnonce=""
    )
    assert credentials.cnonce is None
    assert credentials.nc is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('Basic realm="r"', "unsupported authentication scheme 'Basic'"),
        ('Digest nonce="n"', "Digest challenge without realm or nonce"),
        ('Digest realm="r"', "Digest challenge without realm or nonce"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "unsupported Digest algorithm 'SHA-1'"),
        ('Digest realm="r", nonce="n", algorithm=""', "unsupported Digest algorithm ''"),
        ('Digest realm="r", nonce="n", qop="auth-conf"', "no supported qop in ('auth-conf',)"),
        ('Digest realm="r", nonce="n", qop=""', "no supported qop in ()"),
        ('Digest realm="r", nonce="n", algorithm=MD5-sess', "-sess algorithm without qop"),
    ],
)
def test_build_rejects_unanswerable_challenge(text: str, reason: str) -> None:
    with pytest.raises(SipError) as info:
        build_credentials(
            Challenge.parse(text), method="INVITE", uri="sip:x@r", username="u", password="p", cnonce="c"
        )
    assert info.value.reason == reason
    assert info.value.status_hint == 400


# ---------------------------------------------------------------------------------------------
# Verifier: one field changed at a time


def _good_credentials() -> Credentials:
    challenge = make_challenge(realm="callherald", nonce="N1", algorithm="SHA-256", opaque="O")
    return build_credentials(
        challenge, method="REGISTER", uri="sip:callherald", username="pbx", password="pw", cnonce="C"
    )


def _replace(credentials: Credentials, name: str, value: str | None, quoted: bool = True) -> Credentials:
    params = [param for param in credentials.params if param.name != name]
    if value is not None:
        params.append(AuthParam(name=name, value=value, quoted=quoted))
    return Credentials(scheme=credentials.scheme, params=tuple(params))


@pytest.mark.parametrize(
    ("name", "value", "quoted", "expected"),
    [
        ("opaque", "other", True, True),  # opaque is not hashed; its check is the caller's
        ("response", None, True, False),
        ("username", None, True, False),
        ("uri", None, True, False),
        ("nonce", None, True, False),
        ("realm", None, True, False),
        ("username", "pbx2", True, False),
        ("uri", "sip:other", True, False),
        ("nonce", "N2", True, False),
        ("cnonce", "D", True, False),
        ("cnonce", None, True, False),
        ("nc", "00000002", False, False),
        ("nc", "1", False, False),
        ("nc", "0000000g", False, False),
        ("nc", None, False, False),
        ("qop", "auth-int", False, False),
        ("qop", "auth-conf", False, False),
        ("qop", "auth", True, True),  # a quoted qop from a lenient client still verifies
        ("algorithm", "MD5", False, False),
        ("algorithm", "SHA-1", False, False),
        ("algorithm", "sha-256", False, True),
        ("userhash", "true", False, False),
    ],
)
def test_verify_field_changes(name: str, value: str | None, quoted: bool, expected: bool) -> None:
    credentials = _replace(_good_credentials(), name, value, quoted)
    assert (
        verify_credentials(credentials, method="REGISTER", password="pw", expected_realm="callherald")
        is expected
    )


def test_verify_other_cases() -> None:
    good = _good_credentials()

    def verify(credentials: Credentials, password: str) -> bool:
        return verify_credentials(
            credentials, method="REGISTER", password=password, expected_realm="callherald"
        )

    assert verify(good, "pw")
    assert not verify(good, "")
    assert not verify(Credentials(scheme="Basic", params=good.params), "pw")
    response = good.response
    assert response is not None
    upper = _replace(good, "response", response.upper())
    assert verify(upper, "pw")
    non_ascii = _replace(good, "response", "\u00e9" * 64)
    assert not verify(non_ascii, "pw")
    # -sess without qop has no cnonce to hash.
    challenge = make_challenge(realm="callherald", nonce="N1", algorithm="MD5-sess")
    sess = build_credentials(
        challenge, method="REGISTER", uri="sip:callherald", username="pbx", password="pw", cnonce="C"
    )
    assert verify(sess, "pw")
    for name in ("qop", "nc", "cnonce"):
        sess = _replace(sess, name, None)
    assert not verify(sess, "pw")


# ---------------------------------------------------------------------------------------------
# Challenge choice and header names


def _challenge(nonce: str, extra: str) -> Challenge:
    return Challenge.parse(f'Digest realm="r", nonce="{nonce}"{extra}')


@pytest.mark.parametrize(
    ("challenges", "chosen"),
    [
        ([], None),
        ([_challenge("a", ", algorithm=MD5"), _challenge("b", ", algorithm=SHA-256")], "b"),
        ([_challenge("a", ", algorithm=SHA-256"), _challenge("b", ", algorithm=MD5")], "a"),
        ([_challenge("a", ""), _challenge("b", ', qop="auth", algorithm=SHA-256-sess')], "b"),
        ([_challenge("a", ", algorithm=SHA-512-256"), _challenge("b", ", algorithm=SHA-256")], "a"),
        ([_challenge("a", ", algorithm=SHA-256"), _challenge("b", ", algorithm=SHA-512-256")], "a"),
        ([_challenge("a", ", algorithm=MD5"), _challenge("b", ", algorithm=MD5")], "a"),
        ([_challenge("a", ", algorithm=SHA-1"), _challenge("b", ", algorithm=MD5")], "b"),
        ([_challenge("a", ", algorithm=SHA-1")], None),
        ([_challenge("a", ', qop="auth-conf", algorithm=SHA-256'), _challenge("b", "")], "b"),
        ([_challenge("a", ", algorithm=SHA-256-sess"), _challenge("b", "")], "b"),
        ([Challenge.parse('Digest nonce="a", algorithm=SHA-256'), _challenge("b", "")], "b"),
        ([Challenge.parse('Basic realm="a"'), _challenge("b", "")], "b"),
        ([Challenge.parse('Basic realm="a"')], None),
    ],
)
def test_choose_challenge(challenges: list[Challenge], chosen: str | None) -> None:
    result = choose_challenge(challenges)
    assert (None if result is None else result.nonce) == chosen


@pytest.mark.parametrize(
    ("algorithm", "supported"),
    [
        (None, True),
        ("MD5", True),
        ("md5-SESS", True),
        ("SHA-256", True),
        ("SHA-256-sess", True),
        ("SHA-512-256", True),
        ("SHA-1", False),
        ("SHA-512", False),
        ("", False),
        ("-sess", False),
        ("AKAv1-MD5", False),
    ],
)
def test_is_supported_algorithm(algorithm: str | None, supported: bool) -> None:
    assert is_supported_algorithm(algorithm) is supported


@pytest.mark.parametrize(
    ("status", "auth", "challenge"),
    [(401, "Authorization", "WWW-Authenticate"), (407, "Proxy-Authorization", "Proxy-Authenticate")],
)
def test_header_names(status: int, auth: str, challenge: str) -> None:
    assert auth_header_for(status) == auth
    assert challenge_header_for(status) == challenge


@pytest.mark.parametrize("status", [200, 400, 403, 408])
def test_header_names_reject_other_status(status: int) -> None:
    with pytest.raises(ValueError, match=str(status)):
        auth_header_for(status)
    with pytest.raises(ValueError, match=str(status)):
        challenge_header_for(status)


@pytest.mark.parametrize(
    ("challenge", "expected"),
    [
        (make_challenge(realm="pbx", nonce="n"), 'Digest realm="pbx", qop="auth", nonce="n"'),
        (make_challenge(realm="pbx", nonce="n", qop=()), 'Digest realm="pbx", nonce="n"'),
        (
            make_challenge(
                realm="pbx", nonce="n", qop=("auth", "auth-int"), opaque="o", stale=True, algorithm="SHA-256"
            ),
            'Digest realm="pbx", qop="auth,auth-int", nonce="n", opaque="o", stale=true, algorithm=SHA-256',
        ),
    ],
)
def test_make_challenge(challenge: Challenge, expected: str) -> None:
    assert str(challenge) == expected
    assert Challenge.parse(expected) == challenge


# ---------------------------------------------------------------------------------------------
# Properties

_TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
tokens = st.text(alphabet=_TOKEN_ALPHABET, min_size=1, max_size=12)
quoted_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=20
)
param_values = st.one_of(
    st.tuples(quoted_text, st.just(True)),
    st.tuples(tokens, st.just(False)),
)


@st.composite
def auth_params(draw: st.DrawFn) -> tuple[AuthParam, ...]:
    names = draw(st.lists(tokens, min_size=1, max_size=6, unique_by=str.lower))
    return tuple(
        AuthParam(name=name, value=value, quoted=quoted)
        for name in names
        for value, quoted in [draw(param_values)]
    )


@given(scheme=tokens, params=auth_params())
def test_challenge_round_trip_property(scheme: str, params: tuple[AuthParam, ...]) -> None:
    challenge = Challenge(scheme=scheme, params=params)
    assert Challenge.parse(str(challenge)) == challenge


@given(scheme=tokens, params=auth_params())
def test_credentials_round_trip_property(scheme: str, params: tuple[AuthParam, ...]) -> None:
    credentials = Credentials(scheme=scheme, params=params)
    assert Credentials.parse(str(credentials)) == credentials


@given(
    algorithm=st.sampled_from([None, "MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256"]),
    qop=st.sampled_from([(), ("auth",), ("auth-int",)]),
    username=quoted_text,
    password=quoted_text,
    realm=quoted_text,
    nonce=quoted_text,
    uri=quoted_text,
    cnonce=quoted_text.filter(bool),
    nonce_count=st.integers(min_value=1, max_value=0xFFFFFFFF),
    body=st.binary(max_size=40),
)
def test_build_then_verify_property(
    *,
    algorithm: str | None,
    qop: tuple[str, ...],
    username: str,
    password: str,
    realm: str,
    nonce: str,
    uri: str,
    cnonce: str,
    nonce_count: int,
    body: bytes,
) -> None:
    assume(algorithm is None or not algorithm.endswith("-sess") or bool(qop))
    challenge = make_challenge(realm=realm, nonce=nonce, algorithm=algorithm, qop=qop)
    credentials = build_credentials(
        challenge,
        method="REGISTER",
        uri=uri,
        username=username,
        password=password,
        cnonce=cnonce,
        nonce_count=nonce_count,
        body=body,
    )
    wire = Credentials.parse(str(credentials))
    assert wire == credentials
    assert verify_credentials(wire, method="REGISTER", password=password, expected_realm=realm, body=body)
    assert not verify_credentials(
        wire, method="REGISTER", password=password + "x", expected_realm=realm, body=body
    )

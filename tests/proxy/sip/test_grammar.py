"""The lexical helpers: quoted-string aware splitting, quoting, parameters."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.sip.grammar import _split_quoted_slowly, parse_params, quote, split_quoted, unquote


@pytest.mark.parametrize(
    ("text", "separator", "pieces"),
    [
        ('a;b="x;y";c', ";", ["a", 'b="x;y"', "c"]),
        ("<sip:a;b>;c=1,d", ";", ["<sip:a;b>", "c=1,d"]),
        ("<sip:a;b>;c=1,d", ",", ["<sip:a;b>;c=1", "d"]),
        ('"a\\"b;";x', ";", ['"a\\"b;"', "x"]),
        ('a, <b,c> , "d,e"', ",", ["a", "<b,c>", '"d,e"']),
        ("", ",", [""]),
    ],
)
def test_split_respects_quotes_and_brackets(text: str, separator: str, pieces: list[str]) -> None:
    assert split_quoted(text, separator) == pieces


@pytest.mark.parametrize("text", ['a;"b', "a;<b", 'x,"unterminated\\"'])
def test_split_rejects_unterminated_quotes_and_brackets(text: str) -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_quoted(text, ";" if ";" in text else ",")


@given(st.text(alphabet=st.sampled_from(list('ab;,"<>\\ =')), max_size=40), st.sampled_from([",", ";"]))
def test_fast_split_agrees_with_the_character_loop(text: str, separator: str) -> None:
    try:
        expected: list[str] | str = _split_quoted_slowly(text, separator)
    except ValueError:
        expected = "error"
    try:
        got: list[str] | str = split_quoted(text, separator)
    except ValueError:
        got = "error"
    assert got == expected


@given(st.text(max_size=30))
def test_quote_and_unquote_round_trip(text: str) -> None:
    assert unquote(quote(text)) == text


def test_parse_params_keeps_order_case_and_flags() -> None:
    assert parse_params(';Branch=z9hG4bK1; rport ;x="a;b"') == (
        ("Branch", "z9hG4bK1"),
        ("rport", None),
        ("x", '"a;b"'),
    )

"""Lexical helpers shared by the SIP parsers (RFC 3261 §25.1).

Everything here works on ``str`` values of a single header field whose folding has already been
undone. Splitting respects quoted strings and angle brackets, so a comma inside a display name or a
URI never splits a value.
"""

from __future__ import annotations

import re

__all__ = [
    "TOKEN_CHARS",
    "TOKEN_RE",
    "is_token",
    "parse_params",
    "quote",
    "split_quoted",
    "unquote",
]

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_is_token_match = TOKEN_RE.fullmatch


def is_token(text: str) -> bool:
    """True when ``text`` is a non-empty RFC 3261 token."""
    return _is_token_match(text) is not None


_PIECES = {
    separator: re.compile(rf'(?:[^{separator}"<]|"(?:[^"\\]|\\.)*"|<[^>]*>)*') for separator in (",", ";")
}


def split_quoted(text: str, separator: str) -> list[str]:
    """Split ``text`` on ``separator`` outside quoted strings and ``<...>``; pieces are stripped.

    Raises ``ValueError`` on an unterminated quoted string or angle bracket.
    """
    if '"' not in text and "<" not in text:
        return [piece.strip() for piece in text.split(separator)]
    pattern = _PIECES.get(separator)
    if pattern is None:
        return _split_quoted_slowly(text, separator)
    pieces: list[str] = []
    position = 0
    length = len(text)
    while True:
        match = pattern.match(text, position)
        assert match is not None  # the pattern matches the empty string
        end = match.end()
        if end < length and text[end] != separator:
            raise ValueError("unterminated quoted string" if text[end] == '"' else "unterminated '<'")
        pieces.append(text[position:end].strip())
        if end >= length:
            return pieces
        position = end + 1


def _split_quoted_slowly(text: str, separator: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    index = 0
    length = len(text)
    while index < length:
        char = text[index]
        if char == '"':
            index = _end_of_quoted(text, index)
        elif char == "<":
            close = text.find(">", index)
            if close < 0:
                raise ValueError("unterminated '<'")
            index = close
        elif char == separator:
            pieces.append(text[start:index].strip())
            start = index + 1
        index += 1
    pieces.append(text[start:].strip())
    return pieces


def _end_of_quoted(text: str, open_index: int) -> int:
    """Index of the closing quote of the quoted string opening at ``open_index`` (§25.1 quoted-pair)."""
    index = open_index + 1
    length = len(text)
    while index < length:
        char = text[index]
        if char == "\\":
            index += 2
            continue
        if char == '"':
            return index
        index += 1
    raise ValueError("unterminated quoted string")


def unquote(text: str) -> str:
    """The content of a quoted string with its quoted-pairs resolved; plain text is returned as is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        index = 0
        while index < len(inner):
            char = inner[index]
            if char == "\\" and index + 1 < len(inner):
                index += 1
                char = inner[index]
            out.append(char)
            index += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """``text`` as a quoted string, escaping backslash and double quote (§25.1 quoted-pair)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """Parse ``;name=value;flag`` (leading ``;`` optional) into ordered (name, value) pairs.

    Names keep their case; values keep their quotes, so serialising gives the text back.
    Raises ``ValueError`` on an empty or non-token name.
    """
    if not text:
        return ()
    body = text[1:] if text[0] == ";" else text
    params: list[tuple[str, str | None]] = []
    pieces = body.split(";") if '"' not in body else split_quoted(body, ";")
    for piece in pieces:
        name, equals, value = piece.partition("=")
        name = name.strip()
        if _is_token_match(name) is None:
            raise ValueError(f"bad parameter name {name!r}")
        params.append((name, value.strip() if equals else None))
    return tuple(params)

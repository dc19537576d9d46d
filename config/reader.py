"""Reading composed YAML nodes into typed values, collecting every problem with its line and key.

Theory of operation
-------------------
The document is *composed*, not constructed, with PyYAML's SafeLoader resolver: every value is a
node that keeps its line and the tag YAML 1.1 would give it (int, bool, ...), while its text is
still the text of the file. Nothing is ever converted by YAML's own type guessing, so
``+31201234567`` can be refused with a hint to quote it instead of silently becoming an integer.

A `Reader` wraps one mapping. A section is read by a small function that asks the reader for each
of its keys (`Reader.str_`, `Reader.int_`, `Reader.mapping`, `Reader.list_`, ...) and builds a
frozen dataclass from the answers. Each ask returns a valid value, or records a `ConfigProblem`
(file, line, key path, what was expected) and returns a placeholder of the right type, so reading
goes on and every problem is found in one pass; `read_document` raises them all together, so no
placeholder ever escapes. Keys in the mapping that were never asked for are unknown keys.

A reader without a node is *silent*: it answers every ask with the default (or a placeholder) and
records nothing. It fills in optional sections that are absent, stands in for sections that are
broken, and, with discovery on, lists every key path the section functions ask for (`discover_keys`).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum, auto
from ipaddress import ip_network
from pathlib import Path
from typing import Final, Generic, Literal, NoReturn, TypeAlias, TypeVar

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from config.errors import ConfigError, ConfigProblem
from config.schema import Network, Secret

__all__ = [
    "DEFAULTS",
    "REQUIRED",
    "Context",
    "InvalidValueError",
    "Kind",
    "Reader",
    "discover_keys",
    "expected",
    "key_line",
    "read_document",
]

T = TypeVar("T")
D = TypeVar("D")
E = TypeVar("E", bound=StrEnum)

_TAG = "tag:yaml.org,2002:"
STR_TAG: Final = _TAG + "str"
INT_TAG: Final = _TAG + "int"
FLOAT_TAG: Final = _TAG + "float"
BOOL_TAG: Final = _TAG + "bool"
NULL_TAG: Final = _TAG + "null"
TIMESTAMP_TAG: Final = _TAG + "timestamp"

_DECIMAL_INT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_DECIMAL_FLOAT = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+][0-9]+)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# One step of a key path as problems name it: a key, or a list index ("prompt_sets[0]").
_KEY_STEP = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


class _Missing(Enum):
    REQUIRED = auto()
    DEFAULTS = auto()


REQUIRED: Final = _Missing.REQUIRED
"""Default of a key that must be given."""
DEFAULTS: Final = _Missing.DEFAULTS
"""Default of a key whose absence means the value's own defaults (the placeholder)."""

_Default: TypeAlias = Literal[_Missing.REQUIRED, _Missing.DEFAULTS]


class InvalidValueError(Exception):
    """Raised by a value parser: ``message`` says what was expected and what was found."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def expected(what: str, got: str) -> NoReturn:
    """Raise `InvalidValueError` with the standard wording, ``expected <what>, got <got>``."""
    raise InvalidValueError(f"expected {what}, got {got}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind(Generic[T]):
    """A value written as a YAML string and parsed into ``T`` (a target, a phone number, ...)."""

    expected: str
    """What the string must be, for messages (``"a SIP URI or host:port"``)."""
    parse: Callable[[str], T]
    """Parses the string; raises `InvalidValueError` with a full message when it is not valid."""
    placeholder: T
    """Stands in for an invalid or missing value while the rest of the file is read."""


class Context:
    """What one load shares: where the text came from, the environment, and the problems found."""

    def __init__(
        self,
        *,
        source: str,
        base_dir: Path | None,
        environ: Mapping[str, str],
        discover: bool = False,
        read_secrets: bool = True,
    ) -> None:
        self.source = source
        self.base_dir = base_dir
        self.environ = environ
        # False for the commands that never use a secret (they read the data directory): a
        # secret's form is still checked, but its variable or file is not read.
        self.read_secrets = read_secrets
        self.problems: list[ConfigProblem] = []
        self.discovered: list[str] | None = [] if discover else None

    def report(self, line: int | None, key: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(ConfigProblem(file=self.source, line=line, key=key, message=message))

    def resolve(self, path: str) -> Path:
        """A path from the file: relative ones are relative to the file's directory (when known)."""
        candidate = Path(path)
        if self.base_dir is None or candidate.is_absolute():
            return candidate
        return self.base_dir / candidate


def line_of(node: Node) -> int:
    """The 1-based line a node starts on."""
    return int(node.start_mark.line) + 1


def join(path: str, key: str) -> str:
    """``join("carrier", "port") == "carrier.port"``; the root path is empty."""
    return f"{path}.{key}" if path else key


def describe(node: Node) -> str:
    """How a node is shown after ``got`` in a message."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    text = str(node.value)
    if node.tag == STR_TAG:
        return repr(text)
    if node.tag == NULL_TAG:
        return "an empty value" if text == "" else "null"
    if node.tag == BOOL_TAG:
        return f"{text} (a boolean)"
    if node.tag in (INT_TAG, FLOAT_TAG):
        return text
    return f"{text!r} tagged {node.tag}"


def yaml_reading(node: ScalarNode) -> str:
    """What YAML 1.1 turns an unquoted scalar into (``"the octal number 50674039"``)."""
    try:
        value = SafeConstructor().construct_object(node)
    except yaml.YAMLError:
        return f"a value tagged {node.tag}"
    text = str(node.value).lstrip("+-")
    if node.tag == INT_TAG:
        if text.startswith(("0x", "0X")):
            base = "hexadecimal "
        elif text.startswith(("0b", "0B")):
            base = "binary "
        elif ":" in text:
            base = "base-60 "
        elif text.startswith("0") and text != "0":
            base = "octal "
        else:
            return f"the integer {value}"
        return f"the {base}number {value}"
    if node.tag == FLOAT_TAG:
        return f"the number {value}"
    if node.tag == BOOL_TAG:
        return f"the boolean {str(value).lower()}"
    if node.tag == NULL_TAG:
        return "null (no value)"
    if node.tag == TIMESTAMP_TAG:
        return "a date"
    return f"a value tagged {node.tag}"


def _comment_after(node: ScalarNode) -> str | None:
    """The comment on the rest of the line after an empty plain scalar (``#7`` in ``code: #7``),
    None when there is none or the text is not at hand."""
    mark = node.start_mark
    if mark.buffer is None or node.value != "" or node.style is not None:
        return None
    rest = str(mark.buffer)[mark.pointer :].split("\n", 1)[0].strip(" \t\r\0")
    return rest if rest.startswith("#") else None


def scalar_text(node: Node, what: str) -> str:
    """The text of a string scalar; anything YAML would read as another type is refused.

    A plain (unquoted) scalar that YAML 1.1 resolves to a number, boolean, null or date is an
    error with a hint to quote it: ``+31201234567`` would lose its ``+`` and ``0301234567`` would
    become an octal number. Empty strings are refused too; an empty value followed by a comment
    is a ``#`` that needed quotes (``code: #7`` is ``code:`` and the comment ``#7``).
    """
    if isinstance(node, ScalarNode) and node.tag == STR_TAG:
        text = str(node.value)
        if text == "":
            expected(what, "an empty string")
        return text
    if isinstance(node, ScalarNode) and node.style is None and node.value != "":
        known = (INT_TAG, FLOAT_TAG, BOOL_TAG, NULL_TAG, TIMESTAMP_TAG)
        if node.tag in known:
            raw = str(node.value)
            raise InvalidValueError(
                f"expected {what}, got {raw} unquoted, which YAML reads as {yaml_reading(node)}; "
                f'quote it: "{raw}"'
            )
    comment = _comment_after(node) if isinstance(node, ScalarNode) and node.tag == NULL_TAG else None
    if comment is not None:
        # In YAML a '#' after white space starts a comment, so the value ends before it.
        hint = "" if any(char.isspace() for char in comment) else f'; quote it: "{comment}"'
        got = f"an empty value: YAML reads {comment} as a comment"
        raise InvalidValueError(f"expected {what}, got {got}{hint}")
    expected(what, describe(node))


def _int_value(node: Node, what: str) -> int:
    if not (isinstance(node, ScalarNode) and node.tag == INT_TAG):
        expected(what, describe(node))
    text = str(node.value)
    if not _DECIMAL_INT.fullmatch(text):
        raise InvalidValueError(
            f"expected {what}, got {text}, which YAML reads as {yaml_reading(node)}; "
            "write plain decimal digits"
        )
    return int(text.replace("_", ""))


def _range_text(noun: str, lo: float, hi: float | None) -> str:
    return f"{noun} {lo}-{hi}" if hi is not None else f"{noun} >= {lo}"


class Reader:
    """Reads the keys of one YAML mapping. See the module docstring for the contract.

    Every ``*_`` method takes the key and an optional default: without one the key is required.
    An explicit null (``key:`` with no value) counts as absent for keys that have a default, except
    where a method is given ``null_is_absent=False``: for keys whose absence turns something off
    that nobody would switch off by writing the key empty (a DTMF code cut off by a ``#`` comment).
    """

    def __init__(self, ctx: Context, node: MappingNode | None, *, path: str, line: int) -> None:
        """Wrap ``node`` (None for a silent reader) found at ``path``, introduced on ``line``."""
        self.ctx = ctx
        self.path = path
        self.line = line
        self.silent = node is None
        self._entries: dict[str, tuple[Node, Node]] = {}
        self._asked: list[str] = []
        self._failed: set[str] = set()
        if node is None:
            return
        for key_node, value_node in node.value:
            if not (isinstance(key_node, ScalarNode) and key_node.value != ""):
                ctx.report(line_of(key_node), path, f"expected a key name, got {describe(key_node)}")
                continue
            key = str(key_node.value)
            if key in self._entries:
                first = line_of(self._entries[key][0])
                ctx.report(line_of(key_node), join(path, key), f"duplicate key (first given on line {first})")
                continue
            self._entries[key] = (key_node, value_node)

    # -- plumbing ---------------------------------------------------------------------------------

    def _silent_child(self, key: str) -> Reader:
        return Reader(self.ctx, None, path=join(self.path, key), line=self.line)

    def _lookup(self, key: str) -> tuple[Node, Node] | None:
        self._asked.append(key)
        if self.ctx.discovered is not None and self.silent:
            self.ctx.discovered.append(join(self.path, key))
        return self._entries.get(key)

    def _field(
        self,
        key: str,
        default: D | _Default,
        read: Callable[[Node, str, int], T],
        placeholder: Callable[[], T],
        *,
        null_is_absent: bool = True,
    ) -> T | D:
        """Look ``key`` up and read it with ``read(value_node, key_path, key_line)``."""
        entry = self._lookup(key)
        if entry is not None and default is not REQUIRED and null_is_absent:
            value_node = entry[1]
            if isinstance(value_node, ScalarNode) and value_node.tag == NULL_TAG and value_node.style is None:
                entry = None
        if entry is None:
            if default is DEFAULTS:
                return placeholder()
            if default is REQUIRED:
                self.missing(key)
                return placeholder()
            return default
        key_node, value_node = entry
        before = len(self.ctx.problems)
        try:
            value = read(value_node, join(self.path, key), line_of(key_node))
        except InvalidValueError as invalid:
            self.ctx.report(line_of(value_node), join(self.path, key), invalid.message)
            value = placeholder()
        if len(self.ctx.problems) > before:
            self._failed.add(key)
        return value

    def has(self, key: str) -> bool:
        """True when the mapping gives ``key`` a value (an explicit null counts as absent).

        Asking does not count as reading: an unread key is still reported by `finish`.
        """
        entry = self._entries.get(key)
        if entry is None:
            return False
        value_node = entry[1]
        return not (
            isinstance(value_node, ScalarNode) and value_node.tag == NULL_TAG and value_node.style is None
        )

    def count(self, key: str) -> int | None:
        """How many items the list at ``key`` has as written; None when it is absent or not a list."""
        entry = self._entries.get(key)
        if entry is None or not isinstance(entry[1], SequenceNode):
            return None
        return len(entry[1].value)

    def missing(self, key: str, why: str = "") -> None:
        """Report that required ``key`` is absent, at this mapping's key and line."""
        self._failed.add(key)
        if not self.silent:
            self.ctx.report(self.line, self.path, f"missing required key '{key}'{why}")

    def error(self, key: str, message: str, *, item: int | None = None) -> None:
        """Report a problem found by a check across keys, at ``key`` (or at its list ``item``)."""
        self._failed.add(key)
        if self.silent:
            return
        entry = self._entries.get(key)
        line = line_of(entry[0]) if entry is not None else self.line
        path = join(self.path, key)
        if entry is not None and item is not None and isinstance(entry[1], SequenceNode):
            line = line_of(entry[1].value[item])
            path = f"{path}[{item}]"
        self.ctx.report(line, path, message)

    def forbidden(self, key: str, message: str) -> None:
        """Report ``key`` with ``message`` when the mapping gives it a value here (an explicit null
        counts as absent). Its value is not read, so it is reported once, and never as unknown."""
        if self._lookup(key) is not None and self.has(key):
            self.error(key, message)

    def ok(self, *keys: str) -> bool:
        """True when each key was read without a problem (so cross-key checks may use them)."""
        return not self.silent and not any(key in self._failed for key in keys)

    def finish(self) -> None:
        """Report every key of the mapping that no read asked for, with a "did you mean"."""
        for key, (key_node, _) in self._entries.items():
            if key in self._asked:
                continue
            close = difflib.get_close_matches(key, self._asked, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed keys: " + ", ".join(self._asked)
            self.ctx.report(line_of(key_node), join(self.path, key), f"unknown key; {hint}")

    # -- scalars ----------------------------------------------------------------------------------

    def str_(self, key: str, default: D | _Default = REQUIRED) -> str | D:
        """A non-empty string; numbers, booleans and dates must be quoted (see `scalar_text`)."""
        return self._field(key, default, lambda node, _p, _l: scalar_text(node, "a string"), lambda: "")

    def label(self, key: str, default: D | _Default = REQUIRED) -> str | D:
        """A non-negative integer in plain decimal digits or a string, kept as text (``1`` -> ``"1"``)."""
        what = "an integer or a quoted string"

        def read(node: Node, _path: str, _line: int) -> str:
            if isinstance(node, ScalarNode) and node.tag == INT_TAG and node.style is None:
                text = str(node.value)
                if _DECIMAL_INT.fullmatch(text) and not text.startswith(("-", "+")):
                    return str(int(text.replace("_", "")))
            return scalar_text(node, what)

        return self._field(key, default, read, lambda: "")

    def parsed(
        self, key: str, kind: Kind[T], default: D | _Default = REQUIRED, *, null_is_absent: bool = True
    ) -> T | D:
        """A string parsed by ``kind``."""
        return self._field(
            key,
            default,
            lambda node, _p, _l: kind.parse(scalar_text(node, kind.expected)),
            lambda: kind.placeholder,
            null_is_absent=null_is_absent,
        )

    def int_(self, key: str, default: D | _Default = REQUIRED, *, lo: int, hi: int | None = None) -> int | D:
        """An integer in ``lo..hi`` (inclusive), written in plain decimal digits."""
        what = _range_text("an integer", lo, hi)

        def read(node: Node, _path: str, _line: int) -> int:
            value = _int_value(node, what)
            if value < lo or (hi is not None and value > hi):
                expected(what, str(node.value))
            return value

        return self._field(key, default, read, lambda: lo)

    def number(
        self, key: str, default: D | _Default = REQUIRED, *, lo: float, hi: float | None = None
    ) -> float | D:
        """A finite decimal number (integer or fraction) in ``lo..hi`` (inclusive)."""
        what = _range_text("a number", lo, hi)

        def read(node: Node, _path: str, _line: int) -> float:
            text = str(node.value)
            if not (isinstance(node, ScalarNode) and node.tag in (INT_TAG, FLOAT_TAG)):
                expected(what, describe(node))
            if not _DECIMAL_FLOAT.fullmatch(text):
                raise InvalidValueError(
                    f"expected {what}, got {text}, which YAML reads as {yaml_reading(node)}; "
                    "write plain decimal digits"
                )
            value = float(text.replace("_", ""))
            if not math.isfinite(value) or value < lo or (hi is not None and value > hi):
                expected(what, text)
            return value

        return self._field(key, default, read, lambda: float(lo))

    def bool_(self, key: str, default: D | _Default = REQUIRED) -> bool | D:
        """``true`` or ``false``."""

        def read(node: Node, _path: str, _line: int) -> bool:
            if not (isinstance(node, ScalarNode) and node.tag == BOOL_TAG):
                expected("true or false", describe(node))
            return bool(SafeConstructor().construct_object(node))

        return self._field(key, default, read, lambda: False)

    def choice(self, key: str, enum: type[E], default: D | _Default = REQUIRED) -> E | D:
        """One of a `StrEnum`'s values (case-insensitive)."""
        values = [member.value for member in enum]
        what = "one of " + ", ".join(values)

        def read(node: Node, _path: str, _line: int) -> E:
            text = scalar_text(node, what)
            if text.lower() not in values:
                expected(what, repr(text))
            return enum(text.lower())

        return self._field(key, default, read, lambda: next(iter(enum)))

    def path_(self, key: str, default: D | _Default = REQUIRED) -> Path | D:
        """A filesystem path; a relative one is relative to the config file's directory."""
        return self._field(
            key, default, lambda node, _p, _l: self.ctx.resolve(scalar_text(node, "a path")), Path
        )

    def secret(self, key: str) -> Secret:
        """A required secret, ``{env: VAR_NAME}`` or ``{file: path}``, resolved now.

        A file path is relative to the config file's directory; the file's trailing line breaks
        are dropped. An unset or empty variable and an unreadable or empty file are problems.
        """
        return self._field(key, REQUIRED, self._read_secret, lambda: Secret(value="", source=""))

    def _read_secret(self, node: Node, _path: str, _line: int) -> Secret:
        forms = "{env: VARIABLE_NAME} or {file: path/to/file}"
        if isinstance(node, ScalarNode) and node.tag != NULL_TAG:
            raise InvalidValueError(f"secrets are not written inline; give {forms}")
        if not isinstance(node, MappingNode):
            expected(forms, describe(node))
        if len(node.value) != 1:
            keys = ", ".join(repr(str(key.value)) for key, _ in node.value)
            expected(f"{forms} (one key)", f"a mapping with keys {keys}" if keys else "an empty mapping")
        key_node, value_node = node.value[0]
        form = str(key_node.value)
        if form == "env":
            name = scalar_text(value_node, "an environment variable name")
            if not _ENV_NAME.fullmatch(name):
                expected("an environment variable name", repr(name))
            if not self.ctx.read_secrets:
                return Secret(value="", source=f"env:{name}")
            value = self.ctx.environ.get(name)
            if value is None:
                raise InvalidValueError(f"environment variable {name} is not set")
            if value == "":
                raise InvalidValueError(f"environment variable {name} is empty")
            return Secret(value=value, source=f"env:{name}")
        if form == "file":
            path = self.ctx.resolve(scalar_text(value_node, "a file path"))
            if not self.ctx.read_secrets:
                return Secret(value="", source=f"file:{os.fspath(path)}")
            try:
                value = path.read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise InvalidValueError(f"cannot read secret file {os.fspath(path)!r}: {reason}") from None
            if value == "":
                raise InvalidValueError(f"secret file {os.fspath(path)!r} is empty")
            return Secret(value=value, source=f"file:{os.fspath(path)}")
        expected(forms, f"a mapping with key {form!r}")

    # -- collections ------------------------------------------------------------------------------

    def _mapping_parts(
        self, key: str, read: Callable[[Reader], T]
    ) -> tuple[Callable[[Node, str, int], T], Callable[[], T]]:
        def read_mapping(node: Node, path: str, key_line: int) -> T:
            if not isinstance(node, MappingNode):
                expected("a mapping", describe(node))
            return read_with(Reader(self.ctx, node, path=path, line=key_line), read)

        def silent() -> T:
            return read(self._silent_child(key))

        return read_mapping, silent

    def mapping(self, key: str, read: Callable[[Reader], T], *, required: bool = True) -> T:
        """A nested mapping read by ``read``; when absent and not required, all its defaults."""
        read_mapping, silent = self._mapping_parts(key, read)
        return self._field(key, REQUIRED if required else DEFAULTS, read_mapping, silent)

    def optional_mapping(self, key: str, read: Callable[[Reader], T]) -> T | None:
        """A nested mapping read by ``read``, or None when absent."""
        read_mapping, silent = self._mapping_parts(key, read)
        value = self._field(key, None, read_mapping, silent)
        if self.silent and self.ctx.discovered is not None:
            silent()
        return value

    def list_(
        self,
        key: str,
        read: Callable[[Reader], T],
        default: D | _Default = REQUIRED,
        *,
        min_items: int = 0,
        noun: str = "entry",
    ) -> tuple[T, ...] | D:
        """A list of mappings, each read by ``read``, with at least ``min_items`` items."""

        def read_list(node: Node, path: str, _line: int) -> tuple[T, ...]:
            if not isinstance(node, SequenceNode):
                expected(f"a list of {noun} mappings", describe(node))
            if len(node.value) < min_items:
                expected(f"a list of at least {min_items} {noun}", "an empty list")
            items: list[T] = []
            for index, item in enumerate(node.value):
                item_path = f"{path}[{index}]"
                if not isinstance(item, MappingNode):
                    message = f"expected a {noun} mapping, got {describe(item)}"
                    self.ctx.report(line_of(item), item_path, message)
                    continue
                items.append(read_with(Reader(self.ctx, item, path=item_path, line=line_of(item)), read))
            return tuple(items)

        def empty() -> tuple[T, ...]:
            return ()

        value = self._field(key, default, read_list, empty)
        if self.silent and self.ctx.discovered is not None:
            read(self._silent_child(key))
        return value

    def scalar_list(
        self,
        key: str,
        kind: Kind[T],
        default: D | _Default = REQUIRED,
        *,
        min_items: int = 0,
        noun: str = "item",
        plural: str | None = None,
        one_or_list: bool = False,
        null_is_absent: bool = True,
    ) -> tuple[T, ...] | D:
        """A list of strings, each parsed by ``kind``; an invalid item is reported at its own line
        and kept as ``kind.placeholder``, so item positions match the file. ``plural`` defaults to
        ``noun`` + "s". With ``one_or_list`` a single string is a list of one."""
        nouns = noun + "s" if plural is None else plural

        def read_list(node: Node, path: str, _line: int) -> tuple[T, ...]:
            if one_or_list and isinstance(node, ScalarNode):
                return (kind.parse(scalar_text(node, kind.expected)),)
            if not isinstance(node, SequenceNode):
                what = f"{kind.expected} or a list of {nouns}" if one_or_list else f"a list of {nouns}"
                expected(what, describe(node))
            if len(node.value) < min_items:
                expected(
                    f"a list of at least {min_items} {noun if min_items == 1 else nouns}", "an empty list"
                )
            items: list[T] = []
            for index, item in enumerate(node.value):
                try:
                    items.append(kind.parse(scalar_text(item, kind.expected)))
                except InvalidValueError as invalid:
                    self.ctx.report(line_of(item), f"{path}[{index}]", invalid.message)
                    items.append(kind.placeholder)
            return tuple(items)

        def empty() -> tuple[T, ...]:
            return ()

        return self._field(key, default, read_list, empty, null_is_absent=null_is_absent)

    def named_mappings(
        self,
        key: str,
        read: Callable[[str, Reader], T],
        *,
        name: Kind[str],
        name_placeholder: str,
        min_items: int = 1,
        noun: str = "entry",
    ) -> tuple[T, ...]:
        """A required mapping from names (parsed by ``name``) to mappings, each read by
        ``read(name, reader)``, in the order written. Its keys are listed by `discover_keys` under
        ``name_placeholder`` (``prompts.<language>.file``)."""

        def read_mapping(node: Node, path: str, _line: int) -> tuple[T, ...]:
            if not isinstance(node, MappingNode):
                expected(f"a mapping of {noun}s", describe(node))
            if len(node.value) < min_items:
                expected(f"a mapping of at least {min_items} {noun}", "an empty mapping")
            items: list[T] = []
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                raw = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                item_path = join(path, raw)
                try:
                    item_name = name.parse(scalar_text(key_node, name.expected))
                except InvalidValueError as invalid:
                    self.ctx.report(line_of(key_node), item_path, invalid.message)
                    continue
                if item_name in first:
                    message = f"duplicate key (first given on line {first[item_name]})"
                    self.ctx.report(line_of(key_node), item_path, message)
                    continue
                first[item_name] = line_of(key_node)
                if not isinstance(value_node, MappingNode):
                    self.ctx.report(
                        line_of(value_node), item_path, f"expected a mapping, got {describe(value_node)}"
                    )
                    continue
                reader = Reader(self.ctx, value_node, path=item_path, line=line_of(key_node))
                items.append(read(item_name, reader))
                reader.finish()
            return tuple(items)

        def empty() -> tuple[T, ...]:
            return ()

        value = self._field(key, REQUIRED, read_mapping, empty)
        if self.silent and self.ctx.discovered is not None:
            placeholder_path = join(join(self.path, key), name_placeholder)
            self.ctx.discovered.append(placeholder_path)
            read(name_placeholder, Reader(self.ctx, None, path=placeholder_path, line=self.line))
        return value

    def cidr_list(self, key: str, default: D | _Default = REQUIRED) -> tuple[Network, ...] | D:
        """A non-empty list of networks in CIDR form (``10.0.0.0/8``); a bare address is a /32 or /128."""
        what = "a network in CIDR form like 192.0.2.0/24"

        def read_list(node: Node, path: str, _line: int) -> tuple[Network, ...]:
            if not isinstance(node, SequenceNode):
                expected("a list of networks in CIDR form like [192.0.2.0/24]", describe(node))
            if not node.value:
                expected("a list of at least 1 network", "an empty list")
            networks: list[Network] = []
            for index, item in enumerate(node.value):
                try:
                    networks.append(parse_network(scalar_text(item, what)))
                except InvalidValueError as invalid:
                    self.ctx.report(line_of(item), f"{path}[{index}]", invalid.message)
            return tuple(networks)

        return self._field(key, default, read_list, tuple)


def parse_network(text: str) -> Network:
    """A network in CIDR form; host bits set is an error that suggests the network."""
    what = "a network in CIDR form like 192.0.2.0/24"
    try:
        return ip_network(text, strict=True)
    except ValueError:
        pass
    try:
        loose = ip_network(text, strict=False)
    except ValueError:
        expected(what, repr(text))
    raise InvalidValueError(f"expected {what}, got {text!r}, which has host bits set; did you mean {loose}?")


def read_with(reader: Reader, read: Callable[[Reader], T]) -> T:
    """Run a section function on ``reader``, then report the mapping's unknown keys."""
    value = read(reader)
    reader.finish()
    return value


def _compose(text: str, ctx: Context) -> MappingNode | None:
    """The document's top-level mapping, or None after reporting why there is none."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        detail = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            detail = f"{exc.context}, {exc.problem}"
        elif (
            exc.context and exc.problem and exc.context.startswith("while ") and exc.context_mark is not None
        ):
            # The construct the problem was found in, when it began on another line: an unclosed
            # "[" is found only where the next key is.
            begun = exc.context_mark.line + 1
            if begun != line:
                detail = f"{exc.problem} ({exc.context} that begins on line {begun})"
        ctx.report(line, "", f"invalid YAML: {detail}")
        return None
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow (a control character): its position is an offset.
        before = text[: exc.position]
        column = exc.position - before.rfind("\n")
        ctx.report(
            before.count("\n") + 1,
            "",
            f"invalid YAML: character #x{exc.character:04x} in column {column}: {exc.reason}",
        )
        return None
    except yaml.YAMLError as exc:
        ctx.report(None, "", f"invalid YAML: {exc}")
        return None
    if isinstance(root, MappingNode):
        return root
    got = "an empty document" if root is None else describe(root)
    ctx.report(1 if root is None else line_of(root), "", f"expected a mapping of sections, got {got}")
    return None


def read_document(text: str, ctx: Context, read: Callable[[Reader], T]) -> T:
    """Compose ``text`` and read its top-level mapping with ``read``.

    Raises:
        ConfigError: with every problem found (YAML syntax, types, ranges, unknown keys, ...),
            sorted by line.
    """
    root = _compose(text, ctx)
    value = read_with(Reader(ctx, root, path="", line=1), read)
    if ctx.problems:
        raise ConfigError(sorted(ctx.problems, key=lambda problem: problem.line or 0))
    return value


def key_line(text: str, key: str) -> int | None:
    """The line ``key`` (a key path as problems name it: ``announcements.prompt_sets[0].prompts.nl.file``)
    is written on in the YAML ``text``; when it is not written, the line of the nearest enclosing
    key that is. None when not even the first step is written, or ``text`` is not YAML."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    line = None
    for name, index in _KEY_STEP.findall(key):
        if name and isinstance(node, MappingNode):
            entry = next((pair for pair in node.value if pair[0].value == name), None)
            if entry is None:
                break
            line, node = line_of(entry[0]), entry[1]
        elif index and isinstance(node, SequenceNode) and int(index) < len(node.value):
            node = node.value[int(index)]
            line = line_of(node)
        else:
            break
    return line


def discover_keys(read: Callable[[Reader], object]) -> list[str]:
    """Every dotted key path ``read`` asks for, in the order asked (list items' keys under the list)."""
    ctx = Context(source="<schema>", base_dir=None, environ={}, discover=True)
    read(Reader(ctx, None, path="", line=1))
    assert ctx.discovered is not None
    return ctx.discovered

"""The ``callherald`` command: a thin layer over library functions.

Each command loads the modules it needs when it runs: the evidence database, the announcements
and the proxy take a second or more to load, which ``calls pause`` (an agent about to take a card
number) and the other light commands must not wait for."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import getpass
import logging
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from callherald import __version__, calls
from callherald.command import PASSPHRASE_ENV
from callherald.layout import DataDirInUseError, DataDirLockFileError, DataLayout
from config import (
    HOME_ENV,
    Config,
    ConfigError,
    ConfigProblem,
    default_config,
    load_config,
    machine_problems,
    problem_at,
    risky_keys,
)
from storage.keys import generate_private_key, key_id, save_private_key, save_public_key
from storage.recording_state import RecordingState

if TYPE_CHECKING:
    from announcements import AnnouncementError
    from callherald.recordings import Selection

MIN_PASSPHRASE_CHARS = 12
SIGPIPE_EXIT = 141
"""The exit status when standard output's reader went away: a shell's for a process ended by SIGPIPE."""
_KEY_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")

__all__ = ["PASSPHRASE_ENV", "main"]


def _home() -> Path:
    return Path(os.environ.get(HOME_ENV, "callherald-data"))


def _load(path: str | None) -> Config:
    return default_config(_home()) if path is None else load_config(path)


def _problem(path: str | None, key: str, message: str) -> ConfigProblem:
    """A problem with ``key`` of the file at ``path``, or of the embedded default (no file)."""
    if path is None:
        return ConfigProblem(file="the embedded default", line=None, key=key, message=message)
    return problem_at(path, key, message)


def _serve(args: argparse.Namespace) -> int:
    # A hang-up while it starts would end it unlogged: ignored until the event loop logs each one.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = _load(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    from callherald.app import signing_key_problem  # slow to load: after the configuration is read

    problems = [_problem(args.config, key, message) for key, message in machine_problems(config)]
    signing_key = signing_key_problem(config)
    if signing_key is not None:
        problems.append(_problem(args.config, "recording.manifest_signing_key", signing_key))
    if problems:  # what check-config says: an address, data directory or signing key this machine cannot use
        print(ConfigError(problems), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, str(config.logging.level).upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.config is None:
        logging.getLogger("callherald").info("no --config given: running the embedded default (loopback)")
    # Imported here: the proxy's modules take a fifth of a second to load, which every other
    # command (an agent's `calls pause` above all) would otherwise pay.
    import uvloop

    from callherald.app import run_forever
    from callherald.heap import keep_freed_memory
    from proxy.aio.control import ControlSocketError
    from proxy.aio.service import ListenError
    from storage.crypto import StorageError

    keep_freed_memory()
    try:
        uvloop.run(run_forever(config))
    except ListenError as error:  # the port in use (or not allowed), or the address not this machine's
        what = "host" if error.errno == errno.EADDRNOTAVAIL else "port"
        problem = _problem(args.config, f"listen.{error.side}.{what}", str(error))
        logging.getLogger("callherald").error("callherald cannot start: %s", problem)
        return 2
    except (DataDirInUseError, DataDirLockFileError, ControlSocketError, StorageError, OSError) as error:
        # Another callherald on the data directory, a port in use, a data directory that cannot
        # be written, a socket path too long: say what and stop, without a traceback.
        logging.getLogger("callherald").error("callherald cannot start: %s", error)
        return 2
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    for key, message in config_warnings(config):
        warning = problem_at(args.file, key, message)
        where = warning.file if warning.line is None else f"{warning.file}:{warning.line}"
        print(f"{where}: warning: {message}", file=sys.stderr)
    machine = machine_problems(config)
    problems = [problem_at(args.file, key, message) for key, message in machine]
    from callherald.app import signing_key_problem  # slow to load, as in `_serve`

    signing_key = signing_key_problem(config)
    if signing_key is not None:  # serve would stop on it
        problems.append(problem_at(args.file, "recording.manifest_signing_key", signing_key))
    if not any(key == "data_dir" for key, _ in machine):  # the announcement cache lives there
        problems += [problem_at(args.file, key, str(error)) for key, error in check_prompt_files(config)]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 2
    print(f"{args.file}: OK")
    return 0


def check_prompt_files(config: Config) -> list[tuple[str, AnnouncementError]]:
    """Import every configured announcement once (cached under the data directory); list each
    failure with the key it is about (``announcements.prompt_sets[0].prompts.nl.file``)."""
    from announcements import AnnouncementError, PromptLibrary, PromptSet

    layout = DataLayout(config.data_dir)
    if config.announcements.prompt_sets:
        with contextlib.suppress(OSError):  # the import below says what cannot be written
            layout.make_root()  # 0700, as serve makes it; the cache would take the umask's mode
    library = PromptLibrary(layout.root / "announcements-cache")
    problems: list[tuple[str, AnnouncementError]] = []
    for index, prompt_set in enumerate(config.announcements.prompt_sets):
        key = f"announcements.prompt_sets[{index}]"
        try:
            imported = PromptSet.from_mapping(prompt_set.to_mapping(), base_dir=Path("/"))
        except AnnouncementError as error:
            problems.append((key, error))
            continue
        problems.extend(
            (key if error.language is None else f"{key}.prompts.{error.language}.file", error)
            for error in library.check(imported)
        )
    return problems


def config_warnings(config: Config) -> list[tuple[str, str]]:
    """What a valid configuration does that is seldom meant for real calls, each with the key it
    is about: what `serve` warns about at start-up, said before it runs."""
    # Imported here, as in `_serve`: the proxy's modules are slow to load for the other commands.
    from callherald.app import (
        ephemeral_overlap,
        ephemeral_ports,
        held_evidence_dir_problem,
        readable_signing_key,
        writable_recipient_files,
    )

    warnings: list[tuple[str, str]] = []
    recording = config.recording
    if not recording.recipients and recording.enabled and any(policy.record for policy in config.policies):
        keys = DataLayout(config.data_dir).keys_dir
        warnings.append(
            (
                "recording.recipients",
                f"no recording.recipients: recordings will be encrypted for the development key in {keys}, "
                "whose passphrase lies next to it: anyone who can read that directory can play them; "
                "list the public keys of those who may (callherald keys generate)",
            )
        )
    warnings.extend(("recording.recipients", warning) for warning in writable_recipient_files(config))
    held_dir_problem = held_evidence_dir_problem(config)
    if held_dir_problem is not None:
        warnings.append(("recording.held_evidence_dir", held_dir_problem))
    readable = readable_signing_key(config)
    if readable is not None:
        warnings.append(("recording.manifest_signing_key", readable))
    media = config.media
    overlap = ephemeral_overlap(media.rtp_port_min, media.rtp_port_max, ephemeral_ports())
    if overlap is not None:
        warnings.append(("media.rtp_port_min", overlap))
    warnings.extend(risky_keys(config))
    return warnings


def _new_passphrase() -> str | None:
    """The passphrase for a new private key: from the environment, else asked twice."""
    passphrase = os.environ.get(PASSPHRASE_ENV)
    if not passphrase:
        if not sys.stdin.isatty():
            print(f"no terminal to ask for a passphrase: set {PASSPHRASE_ENV}", file=sys.stderr)
            return None
        passphrase = getpass.getpass("Passphrase for the new private key: ")
        if getpass.getpass("Same passphrase again: ") != passphrase:
            print("the passphrases differ", file=sys.stderr)
            return None
    if len(passphrase.strip()) < MIN_PASSPHRASE_CHARS:  # twelve spaces protect nothing
        print(
            f"the passphrase needs at least {MIN_PASSPHRASE_CHARS} characters, not counting"
            " leading and trailing spaces",
            file=sys.stderr,
        )
        return None
    return passphrase


def _key_name(text: str) -> str:
    """A key pair's file name stem: a plain name in ``--out``, neither a path nor a hidden file."""
    if not _KEY_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            "expected a plain file name (letters, digits, '.', '_', '-', not starting with '.'), "
            f"got {text!r}"
        )
    return text


def _keys_generate(args: argparse.Namespace) -> int:
    directory = Path(args.out)
    private_path = directory / f"{args.name}.key"
    public_path = directory / f"{args.name}.pub"
    if directory.exists() and not directory.is_dir():
        print(f"{directory} is not a directory", file=sys.stderr)
        return 2
    for path in (private_path, public_path):
        if path.exists():
            print(f"{path} exists already; refusing to overwrite a key", file=sys.stderr)
            return 2
    passphrase = _new_passphrase()
    if passphrase is None:
        return 2
    private_key = generate_private_key()
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)  # made here: its owner's alone
        save_private_key(private_path, private_key, passphrase)
        written.append(private_path)
        save_public_key(public_path, private_key.public_key())
    except OSError as error:
        for path in written:  # no half a pair left behind to block the next attempt
            path.unlink(missing_ok=True)
        print(f"cannot write {error.filename or directory}: {error.strerror or error}", file=sys.stderr)
        return 2
    print(f"key id {key_id(private_key.public_key())}")
    print(f"private key (keep it away from the proxy): {private_path}")
    print(f"public key (give it to the proxy as a recipient): {public_path}")
    return 0


def _layout(args: argparse.Namespace) -> DataLayout | None:
    config = _tool_config(args)
    return None if config is None else DataLayout(config.data_dir)


def _tool_config(args: argparse.Namespace) -> Config | None:
    # Without secrets: the carrier's password, which only `serve` uses, need not be in the
    # environment of an admin who lists or exports recordings.
    try:
        if args.config is None:
            return default_config(_home())
        return load_config(args.config, read_secrets=False)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return None


def _utc_time(text: str) -> dt.datetime:
    from callherald import recordings

    try:
        return recordings.parse_utc_time(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _utc_until(text: str) -> dt.datetime:
    value = _utc_time(text)
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return value  # a time: started before it
    return value + dt.timedelta(days=1)  # a date alone: up to the end of that day


def _number(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a number, got nothing")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _recordings_list(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.list_recordings(
        layout,
        number=args.number,
        since=args.since,
        until=args.until,
        state=None if args.state is None else RecordingState(args.state),
        limit=args.limit,
        as_json=args.json,
    )


def _recordings_show(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.show_recording(layout, args.id, as_json=args.json)


def _recordings_export(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.export_recording(
        layout,
        args.id,
        out=Path(args.out),
        key_path=None if args.key is None else Path(args.key),
        force=args.force,
    )


def _selection(args: argparse.Namespace) -> Selection:
    from callherald.recordings import Selection

    return Selection(recording_id=args.id, call_id=args.call, number=args.number)


def _recordings_erase(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.erase_recordings(layout, _selection(args), reason=args.reason, dry_run=args.dry_run)


def _recordings_hold(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.hold_recordings(layout, _selection(args), reason=args.reason)


def _recordings_release(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.release_recordings(layout, _selection(args), reason=args.reason)


def _recordings_expire(args: argparse.Namespace) -> int:
    from callherald import recordings

    layout = _layout(args)
    if layout is None:
        return 2
    return recordings.expire_recordings(layout, dry_run=args.dry_run)


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("say why (it is kept in the evidence record and the audit log)")
    return text.strip()


def _call_id(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a call id, got nothing")
    return text


def _add_selection(command: argparse.ArgumentParser, *, help_reason: str) -> None:
    """The recordings a command acts on: exactly one of ID, ``--call`` and ``--number``; and why."""
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument("id", metavar="ID", nargs="?", help="the recording id")
    which.add_argument("--call", metavar="CALL_ID", type=_call_id, help="every recording of this call")
    which.add_argument(
        "--number",
        metavar="NUMBER",
        type=_number,
        help="every recording of every call from or to this whole number (matched as list --number)",
    )
    command.add_argument("--reason", metavar="TEXT", required=True, type=_reason, help=help_reason)


def _add_recordings(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("recordings", help="list, show, export, erase and hold recordings")
    subcommands = group.add_subparsers(dest="recordings_command", metavar="RECORDINGS_COMMAND", required=True)
    config_help = "the YAML configuration file (default: the embedded default's data directory)"

    listing = subcommands.add_parser("list", help="the recordings by start time, filtered")
    listing.add_argument("--config", metavar="FILE", help=config_help)
    listing.add_argument(
        "--number",
        metavar="N",
        type=_number,
        help="only calls from or to this whole number, not a prefix (spaces, dashes, a leading + ignored)",
    )
    listing.add_argument(
        "--since", metavar="ISO", type=_utc_time, help="started at or after (UTC if no offset)"
    )
    listing.add_argument(
        "--until",
        metavar="ISO",
        type=_utc_until,
        help="started before this time, or up to the end of this date (UTC if no offset)",
    )
    listing.add_argument("--state", choices=[state.value for state in RecordingState])
    listing.add_argument("--limit", metavar="N", type=_positive, help="at most N recordings")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    listing.set_defaults(handler=_recordings_list)

    show = subcommands.add_parser("show", help="one recording and the evidence timeline of its call")
    show.add_argument("id", metavar="ID", help="the recording id")
    show.add_argument("--config", metavar="FILE", help=config_help)
    show.add_argument("--json", action="store_true", help='JSON {"recording": ..., "timeline": [...]}')
    show.set_defaults(handler=_recordings_show)

    export = subcommands.add_parser(
        "export", help="decrypt and verify a recording into a WAV file (FLAC for .flac, via ffmpeg)"
    )
    export.add_argument("id", metavar="ID", help="the recording id")
    export.add_argument("--out", metavar="FILE", required=True, help="the audio file to write")
    export.add_argument(
        "--key",
        metavar="FILE",
        help=f"the private key (passphrase from {PASSPHRASE_ENV} or asked); default: the development key",
    )
    export.add_argument("--force", action="store_true", help="replace an existing --out file")
    export.add_argument("--config", metavar="FILE", help=config_help)
    export.set_defaults(handler=_recordings_export)

    erase = subcommands.add_parser(
        "erase", help="erase recordings for good: destroy their keys, remove their files, keep the evidence"
    )
    _add_selection(erase, help_reason="why (kept in the record and audit log)")
    erase.add_argument("--dry-run", action="store_true", help="list what would be erased, erase nothing")
    erase.add_argument("--config", metavar="FILE", help=config_help)
    erase.set_defaults(handler=_recordings_erase)

    hold = subcommands.add_parser("hold", help="put recordings on legal hold: none is erased until released")
    _add_selection(hold, help_reason="why, e.g. the claim (kept in the record and audit log)")
    hold.add_argument("--config", metavar="FILE", help=config_help)
    hold.set_defaults(handler=_recordings_hold)

    release = subcommands.add_parser("release", help="release recordings from their legal hold")
    _add_selection(release, help_reason="why (kept in the record and audit log)")
    release.add_argument("--config", metavar="FILE", help=config_help)
    release.set_defaults(handler=_recordings_release)

    expire = subcommands.add_parser(
        "expire", help="erase every recording whose purposes are all past their delete-after date"
    )
    expire.add_argument("--dry-run", action="store_true", help="list what would be erased, erase nothing")
    expire.add_argument("--config", metavar="FILE", help=config_help)
    expire.set_defaults(handler=_recordings_expire)


def _calls_list(args: argparse.Namespace) -> int:
    layout = _layout(args)
    if layout is None:
        return 2
    return calls.list_calls(layout, as_json=args.json)


def _calls_pause(args: argparse.Namespace) -> int:
    layout = _layout(args)
    if layout is None:
        return 2
    return calls.pause_call(layout, args.call, pause=args.calls_command == "pause")


def _add_calls(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser(
        "calls", help="list the running callherald's calls, pause and resume their recording"
    )
    subcommands = group.add_subparsers(dest="calls_command", metavar="CALLS_COMMAND", required=True)
    config_help = "the YAML configuration file of the running callherald (default: the embedded default's)"

    listing = subcommands.add_parser("list", help="the active calls: reference, direction, recording, pauses")
    listing.add_argument("--config", metavar="FILE", help=config_help)
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    listing.set_defaults(handler=_calls_list)

    for name, help_text in (
        ("pause", "write silence instead of the call until resumed (e.g. while a card number is given)"),
        ("resume", "record the call again after a pause"),
    ):
        command = subcommands.add_parser(name, help=help_text)
        command.add_argument("call", metavar="CALL", help="the call reference (callherald calls list)")
        command.add_argument("--config", metavar="FILE", help=config_help)
        command.set_defaults(handler=_calls_pause)


def _audit_verify(args: argparse.Namespace) -> int:
    from callherald import auditing

    config = _tool_config(args)
    if config is None:
        return 2
    return auditing.verify_audit_log(
        DataLayout(config.data_dir),
        expected_head=args.expected_head,
        as_json=args.json,
        trust=args.trust,
        signing_key=config.recording.manifest_signing_key,
    )


def _sha256_hex(text: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError(f"not a SHA-256 hash (64 hex digits): {text!r}")
    return text.lower()


def _add_audit(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("audit", help="check the hash-chained audit log of the evidence record")
    subcommands = group.add_subparsers(dest="audit_command", metavar="AUDIT_COMMAND", required=True)
    verify = subcommands.add_parser(
        "verify",
        help="walk the chain, report the first broken row, print the head to keep elsewhere; "
        "report each recording whose evidence no longer matches its manifest",
    )
    verify.add_argument(
        "--config", metavar="FILE", help="the YAML configuration file (default: the embedded default's)"
    )
    verify.add_argument(
        "--expected-head",
        metavar="HASH",
        type=_sha256_hex,
        help="a head printed by an earlier verify: the chain must still hold that row (rows may follow)",
    )
    verify.add_argument(
        "--trust",
        metavar="FILE",
        type=Path,
        action="append",
        default=[],
        help="a public key (PEM) to check manifest signatures with, best a copy kept away from this "
        "machine; repeat for a key rotated out (default: the signing key's .pub beside it)",
    )
    verify.add_argument("--json", action="store_true", help="a JSON object instead of text")
    verify.set_defaults(handler=_audit_verify)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callherald",
        description="A SIP B2BUA that announces, asks consent for, records and encrypts business calls.",
    )
    parser.add_argument("--version", action="version", version=f"callherald {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="run the proxy (the embedded loopback default without --config)"
    )
    serve.add_argument("--config", metavar="FILE", help="the YAML configuration file")
    serve.set_defaults(handler=_serve)
    check = commands.add_parser("check-config", help="validate a configuration file and report every problem")
    check.add_argument("file", metavar="FILE")
    check.set_defaults(handler=_check_config)
    keys = commands.add_parser("keys", help="manage the key pairs that recordings are encrypted for")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="KEYS_COMMAND", required=True)
    generate = key_commands.add_parser(
        "generate",
        help=f"make an X25519 key pair, the private key under a passphrase (or {PASSPHRASE_ENV})",
    )
    generate.add_argument("--out", metavar="DIR", required=True, help="where to write NAME.key and NAME.pub")
    generate.add_argument(
        "--name",
        type=_key_name,
        default="reviewer",
        help="file name stem: letters, digits, '.', '_', '-', not starting with '.' (default: reviewer)",
    )
    generate.set_defaults(handler=_keys_generate)
    _add_recordings(commands)
    _add_calls(commands)
    _add_audit(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _run(argv)
        finally:
            sys.stdout.flush()  # a closed pipe is found here (also after --help), not at exit
    except BrokenPipeError:
        # The reader went away (`recordings show ... | head`): nothing more to say. Standard
        # output now goes nowhere, so the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT


def _run(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``callherald`` command: a thin layer over library functions."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import uvloop

from announcements import AnnouncementError, PromptLibrary, PromptSet
from callherald import __version__
from callherald.app import run_forever
from config import HOME_ENV, Config, ConfigError, default_config, load_config

__all__ = ["main"]


def _home() -> Path:
    return Path(os.environ.get(HOME_ENV, "callherald-data"))


def _load(path: str | None) -> Config:
    return default_config(_home()) if path is None else load_config(path)


def _serve(args: argparse.Namespace) -> int:
    try:
        config = _load(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, str(config.logging.level).upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.config is None:
        logging.getLogger("callherald").info("no --config given: running the embedded default (loopback)")
    uvloop.run(run_forever(config))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    problems = check_prompt_files(config)
    for problem in problems:
        print(f"{args.file}: {problem}", file=sys.stderr)
    if problems:
        return 2
    print(f"{args.file}: OK")
    return 0


def check_prompt_files(config: Config) -> list[AnnouncementError]:
    """Import every configured announcement once (cached under the data directory); list failures."""
    library = PromptLibrary(config.data_dir / "announcements-cache")
    problems: list[AnnouncementError] = []
    for prompt_set in config.announcements.prompt_sets:
        try:
            imported = PromptSet.from_mapping(prompt_set.to_mapping(), base_dir=Path("/"))
        except AnnouncementError as error:
            problems.append(error)
            continue
        problems.extend(library.check(imported))
    return problems


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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

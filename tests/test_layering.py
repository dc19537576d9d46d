"""The layering rules of ARCHITECTURE.md ("Direction of dependencies"), enforced on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SANS_IO_PACKAGES = ("proxy/sip", "proxy/rtp", "proxy/b2bua")
FORBIDDEN_MODULES = {"asyncio", "socket", "threading", "selectors", "time", "uvloop", "datetime"}
CLOCK_CALLS = {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "now", "utcnow", "today"}

# package -> the packages of ours it must not import
FORBIDDEN_IMPORTS = {
    "config": ("proxy", "storage", "announcements", "callherald"),
    "announcements": ("proxy", "storage", "config", "callherald"),
    "storage": ("proxy", "announcements", "config", "callherald"),
    "proxy": ("callherald", "storage", "announcements", "config"),
}


def _python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("package", SANS_IO_PACKAGES)
def test_sans_io_core_imports_no_io_or_clock(package: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _python_files(package)
        for line, module in _imported_modules(path)
        if module.split(".")[0] in FORBIDDEN_MODULES
    ]
    assert offences == []


@pytest.mark.parametrize("package", SANS_IO_PACKAGES)
def test_sans_io_core_reads_no_clock(package: str) -> None:
    offences = []
    for path in _python_files(package):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_CALLS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in {"time", "datetime", "date", "loop", "asyncio"}
            ):
                offences.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {node.func.value.id}.{node.func.attr}()"
                )
    assert offences == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_dependencies_point_one_way(package: str) -> None:
    forbidden = FORBIDDEN_IMPORTS[package]
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in _python_files(package)
        for line, module in _imported_modules(path)
        if module.split(".")[0] in forbidden
    ]
    assert offences == []


def test_sip_and_rtp_do_not_import_b2bua_or_aio() -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for package in ("proxy/sip", "proxy/rtp")
        for path in _python_files(package)
        for line, module in _imported_modules(path)
        if module.startswith(("proxy.b2bua", "proxy.aio"))
    ]
    assert offences == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom socket import socket\n", encoding="utf-8")
    assert [module for _, module in _imported_modules(sample)] == ["asyncio", "socket"]

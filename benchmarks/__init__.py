"""Benchmarks and fuzzers for the SIP core, run as ``python -m benchmarks.<name>``."""

__all__: list[str] = []

"""Benchmarks: each module has ``run() -> dict`` and runs on its own with ``python -m benchmarks.<name>``."""

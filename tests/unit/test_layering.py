"""The core's boundary (ARCHITECTURE.md, issue #12): kbbot.core imports no platform, store, backend, search index,
HTTP or SQL library, so it can be reused and tested without any of them. Checked on the import statements
themselves (also indented and late ones), not on what happens to be loaded."""

from __future__ import annotations

import ast
from pathlib import Path

import kbbot.core

CORE = Path(kbbot.core.__file__).parent
#: kbbot packages the core must not reach into: the outer layers build on it, not the other way round.
OUTER = ("backends", "store", "search", "adapters", "ops", "commands", "config", "runtime", "reports", "formats")
#: Libraries that belong to an adapter, backend or store.
PLATFORM = ("slack_sdk", "slack_bolt", "discord", "httpx", "aiohttp", "redis", "sqlite3", "tantivy")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    return names


def test_the_core_imports_no_outer_layer_and_no_platform_library() -> None:
    forbidden = tuple(f"kbbot.{p}" for p in OUTER) + PLATFORM
    found = [
        f"{path.relative_to(CORE)}: {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert found == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from kbbot.search.query import STOPWORDS\n    import redis.asyncio\n")
    assert _imports(sample) == ["kbbot.search.query", "redis.asyncio"]

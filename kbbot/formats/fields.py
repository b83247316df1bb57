"""Reading one field of an export's JSON, which may hold anything: a damaged or hand-edited file must not crash."""

from __future__ import annotations


def text_field(value: object) -> str:
    """A string field stripped, a number as text (some exporters write ids and timestamps as numbers), else ""."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""

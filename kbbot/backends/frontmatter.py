"""The small YAML subset Markdown front matter uses, without a YAML dependency at runtime.

Reads ``title`` and ``tags`` from a leading ``---`` block: plain or quoted scalars, and tags as a flow list
(``[a, "b c"]``), a comma list (``a, b``) or a block list (``- a``). Other keys are kept as raw strings.
Writes JSON-quoted values, which are valid YAML, so any title round-trips.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kbbot.core.text import clean_tags

_BLOCK = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_KEY = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*)$")
_ITEM = re.compile(r"^[ \t]+-[ \t]*(.*)$|^-[ \t]+(.*)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class FrontMatter:
    title: str | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def _scalar(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return str(json.loads(raw))
        except ValueError:
            return raw[1:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    # An unquoted scalar ends at a comment.
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def _flow_list(raw: str) -> list[str]:
    inner = raw.strip()[1:-1]
    items: list[str] = []
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|\'(?:[^\']|\'\')*\'|[^,]+', inner):
        value = _scalar(match.group(0))
        if value:
            items.append(value)
    return items


def split(text: str) -> tuple[FrontMatter, str]:
    """The front matter of ``text`` (empty when there is none or it is malformed) and the body after it."""
    match = _BLOCK.match(text)
    if not match:
        return FrontMatter(), text
    values: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    current: str | None = None
    for line in match.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = _ITEM.match(line)
        if item and current is not None:
            lists.setdefault(current, []).append(_scalar(item.group(1) or item.group(2) or ""))
            continue
        key = _KEY.match(line)
        if key:
            current = key.group(1).lower()
            values[current] = key.group(2)
    body = text[match.end() :]
    title_raw = values.pop("title", "")
    title = _CONTROL.sub(" ", _scalar(title_raw)).strip() or None
    tags_raw = values.pop("tags", "").strip()
    if tags_raw.startswith("[") and tags_raw.endswith("]"):
        tags = clean_tags(_flow_list(tags_raw))
    elif tags_raw:
        tags = clean_tags([_scalar(part) for part in tags_raw.split(",")])
    else:
        tags = clean_tags(lists.get("tags", []))
    extra = {key: _scalar(value) for key, value in values.items()}
    return FrontMatter(title=title, tags=tags, extra=extra), body


def render(title: str, tags: tuple[str, ...], body: str) -> str:
    """A page file: front matter with JSON-quoted (valid YAML) title and tags, then the body."""
    lines = ["---", "title: " + json.dumps(title, ensure_ascii=False)]
    if tags:
        lines.append("tags: " + json.dumps(list(tags), ensure_ascii=False))
    lines.append("---")
    return "\n".join(lines) + "\n\n" + body.lstrip("\n")

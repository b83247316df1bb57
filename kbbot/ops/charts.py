"""The dashboard's charts, drawn on the server as SVG with pygal: nothing to download, nothing to run.

pygal always embeds a small ``<script>`` with its tooltip config (even with ``js=[]``); the dashboard runs no
script at all (its Content-Security-Policy forbids them), so the element is removed from the tree before the
SVG is serialized. Labels are dates and fixed words, never user text.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pygal
from pygal.style import Style

from kbbot.reports.usage import SOURCES, Usage

_STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#ccc",
    colors=("#3b6fd4", "#33a474", "#e0a030", "#9aa3ad", "#d4493b"),
    font_family="system-ui, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
)
_SVG = "{http://www.w3.org/2000/svg}"
ET.register_namespace("", _SVG[1:-1])
ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")


def _options(title: str) -> dict[str, object]:
    return {
        "title": title, "style": _STYLE, "js": [], "disable_xml_declaration": True, "width": 760, "height": 280,
        "explicit_size": False, "show_legend": True, "legend_at_bottom": True, "x_label_rotation": 0,
        "show_minor_x_labels": False, "print_values": False, "include_x_axis": True, "margin": 8,
        "truncate_label": -1, "truncate_legend": -1,
    }


def _svg(chart: pygal.graph.graph.Graph) -> str:
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                parent.remove(child)
    return ET.tostring(tree, encoding="unicode")


def _labels(chart: pygal.graph.graph.Graph, days: list[str]) -> None:
    chart.x_labels = [day[5:] for day in days]  # MM-DD
    # About eight labels along the axis, whatever the window.
    step = max(1, len(days) // 8)
    chart.x_labels_major = [day[5:] for n, day in enumerate(days) if n % step == 0]


def questions_per_day(usage: Usage) -> str:
    chart = pygal.StackedBar(**_options("Questions per day"))
    _labels(chart, usage.days)
    for series in (*SOURCES, "empty", "error"):
        chart.add(series, [usage.per_day[day][series] for day in usage.days])
    return _svg(chart)


def ai_calls_per_day(usage: Usage) -> str:
    chart = pygal.Bar(**_options("Billed AI calls per day"))
    _labels(chart, usage.days)
    chart.add("AI calls", [usage.ai_calls[day] for day in usage.days])
    return _svg(chart)

"""The dashboard's charts: Vega-Lite specs of the figures, drawn to static SVG by vl-convert.

Vega-Lite is the grammar a data team already reads (Altair writes it, the Vega editor opens it),
and vl-convert runs Vega itself, in-process, to draw each chart once on the server. The page then
ships no script at all: it works under a strict CSP, from a static host and from file://.

The SVG carries colours as presentation attributes, which any CSS rule overrides: the
stylesheet recolours text and axes for dark mode, and the chart scales with its viewBox.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import vl_convert

WIDTHS = {"wide": 520, "narrow": 300}  # a chart is drawn for each; CSS shows one (phones)
TOP = 10  # components drawn; the table beside the chart lists them all
TRENDS = 5  # components whose weekly trend is drawn
MARK = "#4c78a8"  # readable on light and dark backgrounds

_CONFIG = {
    "background": None,  # the page's own, light or dark
    # The generic family: vl-convert measures labels in the font it resolves it to, which is
    # close to what a browser draws; a named font it lacks would be measured narrower than
    # the browser draws it, and long labels would run out of the chart.
    "font": "sans-serif",
    "view": {"stroke": None},
    # Room to spare all the same: the browser's sans-serif is not always the same font.
    "padding": {"left": 24, "right": 12, "top": 5, "bottom": 5},
    "axis": {"labelFontSize": 12, "titleFontSize": 12, "labelLimit": 240, "labelOverlap": True},
    "legend": {"labelFontSize": 12, "titleFontSize": 12, "orient": "bottom", "columns": 1,
               "labelLimit": 360},
    "mark": {"color": MARK},
}


# Weeks are UTC dates, drawn as such whatever the server's time zone.
_WEEK = {"field": "week", "type": "temporal", "title": "Week of", "scale": {"type": "utc"},
         "axis": {"format": "%b %d", "labelAngle": -40}}
_INSTALLATIONS = {"field": "installations", "type": "quantitative", "title": "Installations",
                  "axis": {"tickMinStep": 1}}


def _spec(values: list[dict[str, Any]], title: str, **rest: Any) -> dict[str, Any]:
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "description": title, "width": WIDTHS["wide"], "config": _CONFIG,
            "data": {"values": values}, **rest}


def _week_axis(figures: dict[str, Any]) -> dict[str, Any]:
    """The whole period, a tick on each Monday (Vega's own weeks start on Sunday)."""
    mondays = [int(datetime.fromisoformat(w["week"]).replace(tzinfo=UTC).timestamp() * 1000)
               for w in figures["weekly"]]
    return {**_WEEK, "scale": {**_WEEK["scale"], "domain": [mondays[0], mondays[-1]]},
            "axis": {**_WEEK["axis"], "values": mondays}}


def weekly_spec(figures: dict[str, Any]) -> dict[str, Any]:
    """Weekly active installations, the weeks below K left out."""
    values = [w for w in figures["weekly"] if w["installations"] is not None]
    return _spec(values, "Weekly active installations", height=220,
                 mark={"type": "line", "point": True},
                 encoding={"x": _week_axis(figures),
                           "y": _INSTALLATIONS})


def components_spec(figures: dict[str, Any]) -> dict[str, Any]:
    """The top components by installations."""
    values = figures["components"][:TOP]
    return _spec(values, "Top components by installations", height=max(60, 26 * len(values)),
                 mark="bar",
                 encoding={"y": {"field": "componentId", "type": "nominal", "title": None,
                                 "sort": None},
                           "x": _INSTALLATIONS})


def trend_spec(figures: dict[str, Any]) -> dict[str, Any]:
    """Each top component's installations week by week."""
    weeks = [w["week"] for w in figures["weekly"]]
    values = [{"componentId": c["componentId"], "week": week, "installations": n}
              for c in figures["components"][:TRENDS]
              for week, n in zip(weeks, c["trend"], strict=True) if n is not None]
    return _spec(values, "Trend of the top components", height=220,
                 mark={"type": "line", "point": True},
                 encoding={"x": _week_axis(figures),
                           "y": _INSTALLATIONS,
                           "color": {"field": "componentId", "type": "nominal",
                                     "title": None, "sort": None}})


def event_types_spec(figures: dict[str, Any]) -> dict[str, Any]:
    """Events by event type."""
    values = figures["event_types"]
    return _spec(values, "Events by type", height=max(60, 26 * len(values)), mark="bar",
                 encoding={"y": {"field": "eventType", "type": "nominal", "title": None,
                                 "sort": "-x"},
                           "x": {"field": "events", "type": "quantitative",
                                 "title": "Events"}})


SPECS = {"weekly": weekly_spec, "components": components_spec, "trend": trend_spec,
         "event-types": event_types_spec}


def svg(spec: dict[str, Any], width: int | None = None) -> str:
    """The chart as an SVG element, for the page as it is; `width` in place of the spec's."""
    drawn = vl_convert.vegalite_to_svg(spec if width is None else {**spec, "width": width})
    # Inline in HTML, the root needs no namespace declarations, and a fixed size would not
    # shrink on a phone: the viewBox keeps the proportions.
    head, _, body = drawn.partition(">")
    view_box = head[head.index('viewBox="'):].split('"')[1]
    return f'<svg viewBox="{view_box}" role="img" class="marks">{body}'


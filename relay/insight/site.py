"""The dashboard: the figures as one HTML page with its charts, tables and downloads.

The same files make the static site of `ui-telemetry report` and the live pages of the relay:
`index.html` (or `usage`), `usage.css`, `usage.json` and a CSV per table, all linked by relative
names, so a directory of them works from any host and from file://. The page carries its
figures (the charts are SVG in it, the tables are HTML): it fetches nothing and runs no script.
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..serve.pages import STATIC_DIR, TEMPLATE_DIR
from ..store.data import package_version
from . import charts
from .report import DEFAULT_WEEKS, usage
from .store import opened


@dataclass(frozen=True)
class Table:
    """One table of the page and its CSV: a name for the file, a caption, columns and rows."""

    name: str
    caption: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


def tables(figures: dict[str, Any]) -> dict[str, Table]:
    """The page's tables, by the chart they stand beside."""
    weeks = [w["week"] for w in figures["weekly"]]
    top = figures["components"][:charts.TRENDS]
    return {
        "weekly": Table("weekly", "Each ISO week, from its Monday",
                        ("week", "installations", "events"),
                        [(w["week"], w["installations"], w["events"])
                         for w in figures["weekly"]]),
        "components": Table(
            "components", "Components used by at least K installations",
            ("componentId", "componentType", "installations", "share", "events"),
            [(c["componentId"], c["componentType"], c["installations"],
              f"{c['share']:.0%}", c["events"]) for c in figures["components"]]),
        "trend": Table("trend", "Installations a week of the top components",
                       ("week", *(c["componentId"] for c in top)),
                       [(week, *(c["trend"][i] for c in top))
                        for i, week in enumerate(weeks)]),
        "event-types": Table("event-types", "Event types used by at least K installations",
                             ("eventType", "installations", "events"),
                             [(e["eventType"], e["installations"], e["events"])
                              for e in figures["event_types"]]),
        "versions": Table("versions", "Relay versions of at least K installations",
                          ("version", "installations"),
                          [(v["version"], v["installations"]) for v in figures["versions"]]),
    }


def to_csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(("" if v is None else v for v in row) for row in table.rows)
    return out.getvalue()


_env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(),
                   trim_blocks=True, lstrip_blocks=True)


def page(figures: dict[str, Any], title: str = "Usage") -> str:
    """The dashboard's HTML."""
    # Vega draws no data as an empty frame of no size: the page says so in words instead.
    specs = {name: spec for name, spec_of in charts.SPECS.items()
             if (spec := spec_of(figures))["data"]["values"]}
    jobs = [(name, size, width) for name in specs for size, width in charts.WIDTHS.items()]
    # vl-convert draws on several threads at once: 0.7 s for the eight instead of 1.0.
    with ThreadPoolExecutor(4) as pool:
        svgs = pool.map(lambda job: charts.svg(specs[job[0]], job[2]), jobs)
    drawn: dict[str, dict[str, str]] = {name: {} for name in charts.SPECS}
    for (name, size, _), svg in zip(jobs, svgs, strict=True):
        drawn[name][size] = svg
    return _env.get_template("dashboard.html").render(
        f=figures, title=title, charts=drawn, tables=tables(figures),
        top=charts.TOP, trends=charts.TRENDS, version=package_version(),
        generated=datetime.now(UTC).date().isoformat())


def stylesheet() -> str:
    return (Path(STATIC_DIR) / "css" / "dashboard.css").read_text()


def render(figures: dict[str, Any], name: str, title: str = "Usage") -> str | None:
    """One file of the site by its name, or None when there is no such file."""
    if name == "index.html":
        return page(figures, title)
    if name == "usage.css":
        return stylesheet()
    if name == "usage.json":
        return json.dumps(figures, indent=1) + "\n"
    table = tables(figures).get(name.removeprefix("usage-").removesuffix(".csv"))
    return to_csv(table) if table and name == f"usage-{table.name}.csv" else None


def names(figures: dict[str, Any]) -> list[str]:
    """Every file of the site: what `report` writes and the relay serves."""
    return ["index.html", "usage.css", "usage.json",
            *(f"usage-{name}.csv" for name in tables(figures))]


def write_site(figures: dict[str, Any], out: Path, title: str = "Usage") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names(figures):
        (out / name).write_text(render(figures, name, title) or "")
        written.append(out / name)
    return written


def load_and_count(usage_path: Path, sink: Path | None, k: int,
                   weeks: int = DEFAULT_WEEKS) -> tuple[int, dict[str, Any]]:
    """Load what is new in the file sink (when records go to a file), then count the figures:
    (records new in the store, figures). What `report` and the live pages both do."""
    with opened(usage_path) as store:
        loaded = store.load_file(sink) if sink else 0
        return loaded, usage(store, weeks=weeks, min_installations=k)

"""`flyte.report`: an HTML report per action, as Flyte 2's (`get_tab`, `log`, `replace`, `flush`).

In a task declared with `@env.task(report=True)`, `flush()` writes the report to `report.html` in the
action's raw-data folder under the run's logs (`flyte.ctx().raw_data_path.path`); elsewhere the calls
collect HTML and `flush()` writes nothing. `log`, `replace` and `flush` work sync and as `await f.aio()`::

    flyte.report.get_tab("Summary").log("<p>ok</p>")
    await flyte.report.flush.aio()
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from flyte_decl import _context
from flyte_decl._syncify import SyncAio

__all__ = ["Report", "Tab", "current_report", "flush", "get_tab", "log", "replace"]


@dataclass
class Tab:
    """One tab of the report: HTML fragments in order."""

    name: str
    content: list[str] = field(default_factory=list)

    def log(self, content: str) -> None:
        self.content.append(content)

    def replace(self, content: str) -> None:
        self.content = [content]

    def get_html(self) -> str:
        return "\n".join(self.content)


@dataclass
class Report:
    """The action's report: tabs by name, "main" first."""

    name: str = "report"
    tabs: dict[str, Tab] = field(default_factory=lambda: {"main": Tab("main")})

    def get_tab(self, name: str, create_if_missing: bool = True) -> Tab:
        if name not in self.tabs:
            if not create_if_missing:
                raise ValueError(f"no report tab {name!r}")
            self.tabs[name] = Tab(name)
        return self.tabs[name]

    def get_final_report(self) -> str:
        """The whole report as one HTML page, a section per tab that has content."""
        sections = "".join(
            f"<section><h2>{html.escape(tab.name)}</h2>\n{tab.get_html()}</section>\n"
            for tab in self.tabs.values()
            if tab.content
        )
        return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.name)}</title></head>\n<body>{sections}</body></html>\n"  # noqa: E501


_report = Report()


def current_report() -> Report:
    return _report


def get_tab(name: str, /, create_if_missing: bool = True) -> Tab:
    """A tab of the current action's report, made on first use."""
    return _report.get_tab(name, create_if_missing)


def _flush() -> None:
    """Write the report to `report.html` in the action's raw-data folder (a task with report=True only)."""
    current = _context.ctx()
    if not current or not current.data.get("report"):
        return
    folder = Path(current.raw_data_path.path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(_report.get_final_report())


def _log(content: str, do_flush: bool = False) -> None:
    """Add HTML to the main tab."""
    _report.get_tab("main").log(content)
    if do_flush:
        _flush()


def _replace(content: str, do_flush: bool = False) -> None:
    """Replace the main tab's HTML."""
    _report.get_tab("main").replace(content)
    if do_flush:
        _flush()


flush = SyncAio(_flush)
log = SyncAio(_log)
replace = SyncAio(_replace)

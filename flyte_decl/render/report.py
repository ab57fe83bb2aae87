"""A run as one self-contained HTML file: a timeline of its actions, and CPU and memory per action.

Nothing is fetched: the data is inline JSON, drawn into SVG by inline JavaScript. When drawing is
done the page says so on <body> (`data-drawn`, `data-bars`, `data-plots`), which is what the
headless-browser test reads.

    html = render_report(run, actions)
    Path("report.html").write_text(html)
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from typing import Any

from flyte_decl.render.history import cpu_use, memory_use, seconds, short, when
from flyte_decl.store.store import StoredAction, StoredRun

PHASE_COLOURS = {
    "queued": "#c9ced6",
    "running": "#e6b422",
    "succeeded": "#2e9e5b",
    "failed": "#d64545",
    "timed_out": "#e07b24",
    "aborted": "#8a8f98",
    "cached": "#3b82c4",
}


def render_report(run: StoredRun, actions: Sequence[StoredAction]) -> str:
    """The report page for a run and every attempt of its actions (with their samples)."""
    end = run.ended_at or max([a.ended_at or a.started_at or a.queued_at for a in actions] + [time.time()])
    data = {
        "run": {"id": run.id, "start": run.created_at, "end": end},
        "colours": PHASE_COLOURS,
        "attempts": [_attempt(action) for action in actions],
    }
    payload = json.dumps(data).replace("<", "\\u003c")
    status = run.status + (f" ({run.kind})" if run.kind and run.kind != run.status else "")
    facts = [
        ("task", run.task),
        ("status", status + (f": {run.message}" if run.message else "")),
        ("started", when(run.created_at)),
        ("duration", seconds(run.duration) if run.duration is not None else "still running"),
        ("actions", str(len({a.id for a in actions}))),
        ("inputs", short(run.inputs_json, 160)),
        ("outputs", short(run.outputs_json, 160) if run.status == "succeeded" else "-"),
        ("from", f"{run.origin} of {run.source_run}" if run.source_run else run.origin),
        *((f"{name} limits", how) for name, how in run.mechanisms.items()),
    ]
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    legend = "".join(
        f'<span class="key"><i style="background:{colour}"></i>{phase}</span>'
        for phase, colour in PHASE_COLOURS.items()
    )
    return _PAGE.format(
        title=html.escape(f"flyte-decl run {run.id}: {run.task} {run.status}"),
        heading=html.escape(f"run {run.id}"),
        facts=rows,
        legend=legend,
        style=_STYLE,
        script=_SCRIPT,
        data=payload,
    )


def _attempt(action: StoredAction) -> dict[str, Any]:
    return {
        "id": action.id,
        "attempt": action.attempt,
        "label": action.label + (f" #{action.attempt}" if action.attempt > 1 else ""),
        "parent": action.parent,
        "phase": action.phase,
        "kind": action.kind,
        "message": action.message,
        "queued": action.queued_at,
        "started": action.started_at,
        "ended": action.ended_at,
        "cpu_seconds": action.cpu_seconds,
        "peak_memory": action.peak_memory,
        "memory_text": memory_use(action),
        "cpu_text": cpu_use(action),
        "limits": {"cpu": action.limits.get("cpu"), "memory": action.limits.get("memory")},
        "samples": [[round(t, 4), rss, round(cpu, 4)] for t, rss, cpu in action.samples],
    }


_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 15px; margin: 24px 0 8px; }
table.facts th { text-align: left; padding-right: 12px; color: #5b6472; font-weight: 500; }
table.facts td { font-family: ui-monospace, monospace; word-break: break-all; }
.legend .key { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #3a4250; }
svg .axis { stroke: #c6cbd3; } svg .grid { stroke: #eef0f3; }
svg .limit { stroke: #d64545; stroke-dasharray: 4 3; }
.actions { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.card { border: 1px solid #e1e4e8; border-radius: 6px; padding: 8px 10px; }
.card h3 { font-size: 13px; margin: 0 0 4px; font-family: ui-monospace, monospace; }
.card .note { color: #5b6472; font-size: 12px; margin-bottom: 4px; }
.phase { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 11px; }
"""

_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("run-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const el = (name, attrs, parent) => {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  };
  const text = (parent, x, y, content, anchor) => {
    const node = el("text", {x: x, y: y, "text-anchor": anchor || "start"}, parent);
    node.textContent = content;
    return node;
  };
  const fmtSeconds = (s) => s < 10 ? s.toFixed(2) + "s" : s < 60 ? s.toFixed(1) + "s" : (s / 60).toFixed(1) + "m";
  const fmtBytes = (b) => {
    const units = ["B", "Ki", "Mi", "Gi", "Ti"];
    let i = 0;
    while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
    return (b >= 100 || i === 0 ? b.toFixed(0) : b.toFixed(1)) + units[i];
  };
  const ticks = (max, count, unit) => {
    if (!(max > 0)) return [0];
    unit = unit || 1;  // bytes tick at round MiB: 64Mi, 128Mi rather than 95.4Mi
    const raw = max / count / unit, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = unit * [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
    return out;
  };
  const colour = (phase) => data.colours[phase] || "#888";
  const start = data.run.start, end = Math.max(data.run.end, start + 1e-3);
  const attempts = data.attempts;
  let bars = 0, plots = 0;

  // Timeline: one row per attempt, a pale bar while queued, a solid one while it ran.
  const labelWidth = 220, width = 1000, row = 18, top = 24;
  const span = end - start;
  const x = (t) => labelWidth + ((t - start) / span) * (width - labelWidth - 10);
  const timeline = el("svg", {width: width, height: top + attempts.length * row + 8, id: "timeline"},
                      document.getElementById("timeline-box"));
  for (const t of ticks(span, 8)) {
    el("line", {x1: x(start + t), x2: x(start + t), y1: top - 6, y2: top + attempts.length * row, class: "grid"}, timeline);
    text(timeline, x(start + t), top - 10, fmtSeconds(t), "middle");
  }
  attempts.forEach((a, i) => {
    const y = top + i * row;
    text(timeline, 4, y + 13, a.id + "  " + a.label);
    const began = a.started || a.ended || a.queued;
    const finished = a.ended || end;
    el("rect", {x: x(a.queued), y: y + 6, width: Math.max(1, x(began) - x(a.queued)), height: 6,
                fill: colour("queued"), class: "queued"}, timeline);
    const bar = el("rect", {x: x(began), y: y + 2, width: Math.max(2, x(finished) - x(began)), height: 14,
                            rx: 2, fill: colour(a.phase), class: "bar", "data-phase": a.phase}, timeline);
    el("title", {}, bar).textContent = a.label + ": " + a.phase + (a.kind ? " (" + a.kind + ")" : "") +
      ", " + fmtSeconds(finished - began) + (a.message ? " - " + a.message : "");
    bars++;
  });

  // Per attempt: CPU (cores, from cumulative CPU seconds) and memory (tree RSS) against the limits.
  const plot = (parent, title, points, limit, format, unit, t0, t1) => {
    const w = 260, h = 110, left = 46, bottom = 18, right = 8, topPad = 16;
    const svg = el("svg", {width: w, height: h, class: "plot"}, parent);
    text(svg, left, 11, title);
    const maxValue = Math.max(limit || 0, ...points.map((p) => p[1]), 1e-9) * 1.1;
    const span = Math.max(t1 - t0, 1e-3);
    const px = (t) => left + ((t - t0) / span) * (w - left - right);
    const py = (v) => h - bottom - (v / maxValue) * (h - bottom - topPad);
    el("line", {x1: left, x2: w - right, y1: h - bottom, y2: h - bottom, class: "axis"}, svg);
    el("line", {x1: left, x2: left, y1: topPad, y2: h - bottom, class: "axis"}, svg);
    for (const v of ticks(maxValue, 3, unit)) text(svg, left - 4, py(v) + 4, format(v), "end");
    text(svg, left, h - 4, "0s");
    text(svg, w - right, h - 4, fmtSeconds(span), "end");
    if (limit) {
      el("line", {x1: left, x2: w - right, y1: py(limit), y2: py(limit), class: "limit"}, svg);
      text(svg, w - right, py(limit) - 3, "limit " + format(limit), "end");
    }
    if (points.length) {
      const line = points.map((p) => px(p[0]).toFixed(1) + "," + py(p[1]).toFixed(1)).join(" ");
      el("polyline", {points: line, fill: "none", stroke: "#2f6fb3", "stroke-width": 1.5, class: "series"}, svg);
    } else {
      text(svg, (left + w - right) / 2, h / 2, "no samples", "middle");
    }
    svg.setAttribute("data-points", points.length);
    plots++;
  };
  const box = document.getElementById("actions");
  for (const a of attempts) {
    const card = document.createElement("div");
    card.className = "card";
    card.id = "action-" + a.id + "-" + a.attempt;
    const h = document.createElement("h3");
    h.textContent = a.id + " " + a.label + " ";
    const badge = document.createElement("span");
    badge.className = "phase";
    badge.style.background = colour(a.phase);
    badge.textContent = a.phase + (a.kind && a.kind !== a.phase ? " (" + a.kind + ")" : "");
    h.appendChild(badge);
    card.appendChild(h);
    const note = document.createElement("div");
    note.className = "note";
    note.textContent = "memory peak " + a.memory_text + " · cpu avg " + a.cpu_text + (a.message ? " · " + a.message : "");
    card.appendChild(note);
    const t0 = a.started || a.queued, t1 = Math.max(a.ended || end, t0);
    const s = a.samples.slice();
    // The total measured at the end can be newer than the last sample.
    if (a.cpu_seconds != null && a.ended && s.length && a.ended > s[s.length - 1][0] && a.cpu_seconds > s[s.length - 1][2]) {
      s.push([a.ended, s.length ? s[s.length - 1][1] : 0, a.cpu_seconds]);
    }
    const cores = [];
    for (let i = 1; i < s.length; i++) {
      const dt = s[i][0] - s[i - 1][0];
      if (dt > 0) cores.push([s[i - 1][0], (s[i][2] - s[i - 1][2]) / dt], [s[i][0], (s[i][2] - s[i - 1][2]) / dt]);
    }
    // Too short for two samples: the totals measured at the end, drawn flat over the attempt.
    if (!cores.length && a.cpu_seconds != null && a.started && a.ended > a.started) {
      const average = a.cpu_seconds / (a.ended - a.started);
      cores.push([t0, average], [t1, average]);
    }
    let memory = a.samples.map((p) => [p[0], p[1]]);
    if (memory.length < 2 && a.peak_memory != null) memory = [[t0, a.peak_memory], [t1, a.peak_memory]];
    plot(card, "CPU (cores)", cores, a.limits.cpu, (v) => v.toFixed(v < 1 ? 2 : 1), 1, t0, t1);
    plot(card, "memory (RSS)", memory, a.limits.memory, fmtBytes, 1048576, t0, t1);
    box.appendChild(card);
  }
  document.body.dataset.bars = bars;
  document.body.dataset.plots = plots;
  document.body.dataset.attempts = attempts.length;
  document.body.dataset.drawn = "true";
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{style}</style>
</head>
<body data-drawn="false">
<h1>{heading}</h1>
<table class="facts">
{facts}
</table>
<h2>Timeline</h2>
<div class="legend">{legend}</div>
<div id="timeline-box"></div>
<h2>CPU and memory per action</h2>
<div id="actions" class="actions"></div>
<script id="run-data" type="application/json">{data}</script>
<script>{script}</script>
</body>
</html>
"""

"""A run as one self-contained HTML page that summarises it, as Nextflow's execution report does.

Sections: the run's header (with its config sources); a summary per task (count, outcomes, and the
range of duration, memory and CPU against the limits); the failures with their tracebacks and the
last lines of their logs; a sortable table of every action; the timeline; the call graph (which
task called which, how many times); and CPU and memory plots only for the attempts where they say
something (failed, slowest, closest to a limit). Nothing is fetched: the data is inline JSON,
drawn by inline JavaScript. When drawing is done the page says so on <body> (`data-drawn`,
`data-bars`, `data-plots`, `data-rows`, `data-ms`), which is what the headless-browser test reads.

Memory is one figure everywhere, `memory_figure`: the peak of the process tree's RSS as sampled
every 100 ms, the same samples the plots draw; an attempt too short to be sampled shows the
peak its enforcing mechanism measured (the cgroup counter or the watchdog), and says so.

    html = render_report(run, actions, log_tails)
    Path("report.html").write_text(html)
"""

from __future__ import annotations

import html
import json
import statistics
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from flyte_decl.quantity import format_bytes, format_cpu
from flyte_decl.render.failure import caused_by_child, describe
from flyte_decl.render.history import last_attempts, seconds, short, when
from flyte_decl.store.store import StoredAction, StoredRun
from flyte_decl.words import counted

PHASE_COLOURS = {
    "queued": "#c9ced6",
    "running": "#e6b422",
    "succeeded": "#2e9e5b",
    "failed": "#d64545",
    "timed_out": "#e07b24",
    "aborted": "#8a8f98",
    "cached": "#3b82c4",
}
SAMPLED = "tree RSS peak (sampled every 100 ms)"
ENFORCER = "enforcer's peak (too short to sample)"
MAX_PLOTTED = 12  # attempts with plots: the failed, the slowest and those closest to a limit
MAX_FAILURES = 50  # failures listed with traceback and log tail
ROW_PER_ATTEMPT = 300  # above this many attempts the timeline draws one lane per task


def memory_figure(action: StoredAction) -> tuple[int | None, str]:
    """The attempt's memory peak in bytes and where it comes from (see the module docstring)."""
    if action.samples:
        return max(rss for _, rss, _ in action.samples), SAMPLED
    return action.peak_memory, ENFORCER


def render_report(
    run: StoredRun,
    actions: Sequence[StoredAction],
    log_tails: Mapping[tuple[str, int], list[str]] | None = None,
    task_reports: Mapping[str, str] | None = None,
) -> str:
    """The report page for a run and every attempt of its actions (samples filled in).

    `log_tails` maps (action, attempt) to the last lines its log holds, for the failures;
    `task_reports` maps an action id to the URL of the page its task wrote with `flyte.report`.
    """
    log_tails = log_tails or {}
    end = run.ended_at or max([a.ended_at or a.started_at or a.queued_at for a in actions] + [time.time()])
    tasks = sorted({a.task for a in actions})
    task_index = {task: i for i, task in enumerate(tasks)}
    phases = list(PHASE_COLOURS)
    names = sorted({a.group for a in actions if a.group} | {a.short_name for a in actions if a.short_name})
    name_index = {name: i for i, name in enumerate(names)}
    rows = []
    for a in actions:
        peak, source = memory_figure(a)
        rows.append([
            a.id, a.attempt, task_index[a.task], a.index, phases.index(a.phase) if a.phase in phases else 0,
            a.kind or "", round(a.queued_at - run.created_at, 3),
            None if a.started_at is None else round(a.started_at - run.created_at, 3),
            None if a.ended_at is None else round(a.ended_at - run.created_at, 3),
            peak, int(source == ENFORCER), a.limits.get("memory"),
            None if a.cpu_seconds is None else round(a.cpu_seconds, 3), a.limits.get("cpu"),
            name_index.get(a.group or ""), name_index.get(a.short_name or ""),
        ])  # fmt: skip
    data = {
        "run": {"id": run.id, "start": run.created_at, "span": max(end - run.created_at, 1e-3)},
        "colours": PHASE_COLOURS,
        "phases": phases,
        "tasks": tasks,
        "names": names,  # groups and short names (Flyte's display labels), by index from the rows
        "rows": rows,
        "lanes": len(actions) > ROW_PER_ATTEMPT,
        "plots": [_plotted(a, why, run.created_at) for a, why in _worth_plotting(actions)],
    }
    payload = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    status = run.status + (f" ({run.kind})" if run.kind and run.kind != run.status else "")
    facts = [
        ("task", run.task),
        ("status", status + (f": {run.message}" if run.message else "")),
        ("started", when(run.created_at)),
        ("duration", seconds(run.duration) if run.duration is not None else "still running"),
        ("actions", f"{len({a.id for a in actions})} ({counted(len(actions), 'attempt')})"),
        ("config", run.sources.describe()),
        ("inputs", short(run.inputs_json, 160)),
        ("outputs", short(run.outputs_json, 160) if run.status == "succeeded" else "-"),
        ("from", f"{run.origin} of {run.source_run}" if run.source_run else run.origin),
        ("memory figure", f"{SAMPLED}; for attempts too short to sample, the enforcing mechanism's peak"),
        *((f"{name} limits", how) for name, how in run.mechanisms.items()),
    ]
    legend = "".join(
        f'<span class="key"><i style="background:{colour}"></i>{phase}</span>'
        for phase, colour in PHASE_COLOURS.items()
    )
    return _PAGE.format(
        title=_e(f"flyte-decl run {run.id}: {run.task} {run.status}"),
        heading=_e(f"run {run.id}"),
        facts="\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts),
        summary=_summary(actions),
        failures=_failures(actions, log_tails),
        calls=_call_graph(actions),
        task_reports=_task_reports(actions, task_reports or {}),
        legend=legend,
        style=_STYLE,
        script=_SCRIPT,
        data=payload,
    )


def _e(text: object) -> str:
    return html.escape(str(text))


def _range(values: Sequence[float], fmt: Any) -> str:
    """`min / median / max`, or the one value."""
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return fmt(low) if low == high else f"{fmt(low)} / {fmt(mid)} / {fmt(high)}"


def _summary(actions: Sequence[StoredAction]) -> str:
    """One row per task: actions, outcomes, retries, and ranges of duration, memory and CPU vs limits."""
    by_task: dict[str, list[StoredAction]] = {}
    for action in last_attempts(actions):
        by_task.setdefault(action.task, []).append(action)
    retried = Counter(a.task for a in actions if a.attempt > 1)
    rows = []
    for task, group in sorted(by_task.items()):
        outcomes = Counter(a.phase for a in group)
        durations = [a.duration for a in group if a.duration is not None]
        peaks = [p for p in (memory_figure(a)[0] for a in group) if p is not None]
        cores = [a.cpu_seconds / a.duration for a in group if a.cpu_seconds is not None and a.duration]
        memory_limit, cpu_limit = group[0].limits.get("memory"), group[0].limits.get("cpu")
        memory = _range(peaks, lambda v: format_bytes(int(v)))
        if memory_limit and peaks:
            memory += f" of {format_bytes(int(memory_limit))} (max {100 * max(peaks) / memory_limit:.0f}%)"
        cpu = _range(cores, lambda v: f"{v:.2f}")
        if cpu_limit and cores:
            cpu += f" of {format_cpu(cpu_limit)}"
        outcome = ", ".join(
            f'<span class="phase" style="background:{PHASE_COLOURS.get(p, "#888")}">{n} {_e(p)}</span>'
            for p, n in outcomes.most_common()
        )
        rows.append(
            f"<tr><td class='mono'>{_e(task)}</td><td>{len(group)}</td><td>{outcome}</td>"
            f"<td>{retried[task] or '-'}</td><td>{_e(_range(durations, seconds))}</td>"
            f"<td>{_e(memory)}</td><td>{_e(cpu)}</td></tr>"
        )
    head = ("<tr><th>task</th><th>actions</th><th>outcomes</th><th>retries</th><th>duration min / median / max"
            "</th><th>memory peak min / median / max</th><th>cpu cores min / median / max</th></tr>")  # fmt: skip
    return f"<table class='grid'>{head}{''.join(rows)}</table>"


def _failures(actions: Sequence[StoredAction], log_tails: Mapping[tuple[str, int], list[str]]) -> str:
    """Each failed attempt that raised on its own: its line, its traceback and the end of its log."""
    failed = [a for a in actions if (a.kind is not None or a.phase == "aborted") and not caused_by_child(a)]
    if not failed:
        return "<p>none</p>"
    parts = []
    for action in failed[:MAX_FAILURES]:
        tail = log_tails.get((action.id, action.attempt), [])
        block = f"<div class='failure' id='failure-{_e(action.id)}-{action.attempt}'><h3>{_e(describe(action))}</h3>"
        if action.traceback:
            block += f"<pre class='traceback'>{_e(action.traceback.rstrip())}</pre>"
        if tail:
            block += f"<div class='note'>last {counted(len(tail), 'line')} of its log</div><pre>{_e(chr(10).join(tail))}</pre>"
        parts.append(block + "</div>")
    if len(failed) > MAX_FAILURES:
        parts.append(
            f"<p>and {len(failed) - MAX_FAILURES} more failed {'attempt' if len(failed) - MAX_FAILURES == 1 else 'attempts'} (see the table)</p>"
        )
    return "".join(parts)


def _call_graph(actions: Sequence[StoredAction]) -> str:
    """Which task called which, how many times, as an indented tree from the root task."""
    task_of = {a.id: a.task for a in actions}
    edges: Counter[tuple[str, str]] = Counter()
    for action in last_attempts(actions):
        if action.parent in task_of:
            edges[task_of[action.parent], action.task] += 1
    roots = [a.task for a in actions if a.parent is None][:1]
    lines: list[str] = []

    def walk(task: str, depth: int, seen: frozenset[str]) -> None:
        for (caller, callee), count in sorted(edges.items()):
            if caller == task:
                lines.append(
                    f"{'  ' * depth}└─ {callee} ×{count}" + (" (recursive)" if callee in seen else "")
                )
                if callee not in seen:
                    walk(callee, depth + 1, seen | {callee})

    for root in roots:
        lines.append(root)
        walk(root, 1, frozenset({root}))
    return f"<pre class='calls'>{_e(chr(10).join(lines))}</pre>"


def _task_reports(actions: Sequence[StoredAction], urls: Mapping[str, str]) -> str:
    """A link to each page that a task wrote with `flyte.report` (`@env.task(report=True)`)."""
    if not urls:
        return "<p>none (a task declared with <code>report=True</code> writes one with <code>flyte.report</code>)</p>"
    labels = {a.id: a.display for a in last_attempts(actions)}
    items = "".join(
        f'<li><a href="{_e(url)}">{_e(labels.get(action, action))}</a></li>'
        for action, url in sorted(urls.items())
    )
    return f"<ul class='task-reports'>{items}</ul>"


def _worth_plotting(actions: Sequence[StoredAction]) -> list[tuple[StoredAction, str]]:
    """The failed attempts, the slowest, and those closest to their memory or CPU limit; at most MAX_PLOTTED."""
    ran = [a for a in actions if a.started_at is not None and a.phase != "cached"]
    failed = [a for a in ran if a.kind is not None and not caused_by_child(a)]
    slowest = sorted(ran, key=lambda a: a.duration or 0, reverse=True)[:3]

    def nearness(a: StoredAction) -> float:
        peak, memory_limit, cpu_limit = memory_figure(a)[0], a.limits.get("memory"), a.limits.get("cpu")
        memory = peak / memory_limit if peak and memory_limit else 0
        cpu = a.cpu_seconds / a.duration / cpu_limit if a.cpu_seconds and a.duration and cpu_limit else 0
        return max(memory, cpu)

    closest = sorted(ran, key=nearness, reverse=True)[:3]
    chosen: dict[tuple[str, int], tuple[StoredAction, str]] = {}
    for why, group in (("failed", failed[:6]), ("slowest", slowest), ("closest to a limit", closest)):
        for action in group:
            chosen.setdefault((action.id, action.attempt), (action, why))
    return list(chosen.values())[:MAX_PLOTTED]


def _plotted(action: StoredAction, why: str, start: float) -> dict[str, Any]:
    peak, source = memory_figure(action)
    return {
        "id": action.id,
        "attempt": action.attempt,
        "label": action.display + (f" #{action.attempt}" if action.attempt > 1 else ""),
        "why": why,
        "phase": action.phase,
        "started": (action.started_at or action.queued_at) - start,
        "ended": (action.ended_at or time.time()) - start,
        "cpu_seconds": action.cpu_seconds,
        "peak": peak,
        "source": source,
        "limits": {"cpu": action.limits.get("cpu"), "memory": action.limits.get("memory")},
        "samples": [[round(t - start, 3), rss, round(cpu, 3)] for t, rss, cpu in action.samples],
    }


_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2430; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; } h2 { font-size: 15px; margin: 24px 0 8px; }
h3 { font-size: 13px; margin: 8px 0 4px; font-family: ui-monospace, monospace; }
table.facts th { text-align: left; padding-right: 12px; color: #5b6472; font-weight: 500; }
table.facts td, .mono, pre { font-family: ui-monospace, monospace; }
table.facts td { word-break: break-all; }
table.grid { border-collapse: collapse; } table.grid td, table.grid th { padding: 2px 10px 2px 0; text-align: left; }
table.grid th { color: #5b6472; font-weight: 500; border-bottom: 1px solid #e1e4e8; }
#table-box { max-height: 480px; overflow: auto; border: 1px solid #e1e4e8; }
#actions-table th { cursor: pointer; position: sticky; top: 0; background: #fff; }
#actions-table td { font-family: ui-monospace, monospace; white-space: nowrap; }
pre { background: #f6f8fa; padding: 6px 8px; overflow-x: auto; margin: 4px 0; font-size: 12px; }
pre.traceback { border-left: 3px solid #d64545; }
.legend .key { margin-right: 14px; white-space: nowrap; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #3a4250; }
svg .axis { stroke: #c6cbd3; } svg .grid { stroke: #eef0f3; }
svg .limit { stroke: #d64545; stroke-dasharray: 4 3; }
.actions { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.card { border: 1px solid #e1e4e8; border-radius: 6px; padding: 8px 10px; }
.note { color: #5b6472; font-size: 12px; margin-bottom: 4px; }
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
  const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
  const fmtSeconds = (s) => s == null ? "-" : s < 10 ? s.toFixed(2) + "s" : s < 60 ? s.toFixed(1) + "s" : (s / 60).toFixed(1) + "m";
  const fmtBytes = (b) => {
    if (b == null) return "-";
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
  // rows: [id, attempt, task, index, phase, kind, queued, started, ended, peak, enforcerPeak, memLimit, cpuSeconds,
  //        cpuLimit, group, shortName] (group and shortName index data.names, or null)
  const rows = data.rows.map((r) => {
    const duration = r[7] != null && r[8] != null ? r[8] - r[7] : null;
    const label = data.tasks[r[2]] + "[" + r[3] + "]";
    const group = r[14] != null ? data.names[r[14]] : "", shortName = r[15] != null ? data.names[r[15]] : "";
    return {
      id: r[0], attempt: r[1], task: data.tasks[r[2]], label: label, group: group, shortName: shortName,
      display: (group ? group + "/" : "") + label + (shortName ? ' "' + shortName + '"' : ""),
      phase: data.phases[r[4]], kind: r[5], queued: r[6], started: r[7], ended: r[8], duration: duration,
      peak: r[9], enforcer: r[10], memLimit: r[11], cpu: r[12] != null && duration ? r[12] / duration : null,
      cpuLimit: r[13], wait: r[7] != null ? r[7] - r[6] : null,
    };
  });
  const span = data.run.span;
  let bars = 0, plots = 0;

  // Timeline: a row per attempt (a lane per task when there are many), pale while queued, solid while running.
  const labelWidth = 220, width = 1000, top = 24;
  const lanes = data.lanes;
  const row = lanes ? 22 : 18;
  const count = lanes ? data.tasks.length : rows.length;
  const x = (t) => labelWidth + (t / span) * (width - labelWidth - 10);
  const timeline = el("svg", {width: width, height: top + count * row + 8, id: "timeline"});
  for (const t of ticks(span, 8)) {
    el("line", {x1: x(t), x2: x(t), y1: top - 6, y2: top + count * row, class: "grid"}, timeline);
    text(timeline, x(t), top - 10, fmtSeconds(t), "middle");
  }
  if (lanes) data.tasks.forEach((task, i) => text(timeline, 4, top + i * row + 14, task));
  const fragment = document.createDocumentFragment(), paths = {};
  rows.forEach((a, i) => {
    const y = top + (lanes ? data.tasks.indexOf(a.task) : i) * row;
    if (!lanes) text(fragment, 4, y + 13, a.id + "  " + a.display + (a.attempt > 1 ? " #" + a.attempt : ""));
    const began = a.started != null ? a.started : a.ended != null ? a.ended : a.queued;
    const finished = a.ended != null ? a.ended : span;
    if (!lanes) el("rect", {x: x(a.queued), y: y + 6, width: Math.max(1, x(began) - x(a.queued)), height: 6,
                            fill: colour("queued"), class: "queued"}, fragment);
    const left = x(began), w = Math.max(2, x(finished) - left);
    if (lanes) {  // one path per lane and phase: thousands of rects would take seconds to lay out
      const key = a.task + "\u0000" + a.phase;
      (paths[key] = paths[key] || []).push("M" + left.toFixed(1) + " " + (y + 2) + "h" + w.toFixed(1) + "v18h" + (-w).toFixed(1) + "z");
    } else {
      el("rect", {x: left, y: y + 2, width: w, height: 14, rx: 2, fill: colour(a.phase), class: "bar",
                  "data-phase": a.phase}, fragment);
    }
    bars++;
  });
  for (const [key, parts] of Object.entries(paths)) {
    const phase = key.split("\u0000")[1];
    el("path", {d: parts.join(""), fill: colour(phase), "fill-opacity": 0.6, class: "lane", "data-phase": phase}, fragment);
  }
  timeline.appendChild(fragment);
  document.getElementById("timeline-box").appendChild(timeline);

  // The table of every attempt, sorted by a click on a column.
  const columns = [
    ["id", "action", (a) => a.id], ["label", "task", (a) => a.label + (a.attempt > 1 ? " #" + a.attempt : "")],
    ...(data.names.length ? [["shortName", "name", (a) => a.shortName || "-"], ["group", "group", (a) => a.group || "-"]] : []),
    ["phase", "phase", (a) => '<span class="phase" style="background:' + colour(a.phase) + '">' + a.phase +
      (a.kind && a.kind !== a.phase ? " (" + a.kind + ")" : "") + "</span>"],
    ["wait", "queued", (a) => fmtSeconds(a.wait)], ["duration", "duration", (a) => fmtSeconds(a.duration)],
    ["peak", "memory peak / limit", (a) => fmtBytes(a.peak) + (a.enforcer ? "*" : "") +
      (a.memLimit ? " / " + fmtBytes(a.memLimit) + " (" + (100 * (a.peak || 0) / a.memLimit).toFixed(0) + "%)" : "")],
    ["cpu", "cpu cores / limit", (a) => a.cpu == null ? "-" : a.cpu.toFixed(2) + (a.cpuLimit ? " / " + a.cpuLimit : "")],
  ];
  const table = document.getElementById("actions-table");
  const head = table.createTHead().insertRow();
  // All rows sort; a page of them is in the DOM at a time (laying out 10,000 table rows takes seconds).
  let sortKey = null, descending = false, first = 0;
  const PAGE = 500, pager = document.getElementById("pager");
  const draw = () => {
    const body = [];
    for (const a of rows.slice(first, first + PAGE)) {
      body.push("<tr><td>" + columns.map((c) => c[0] === "phase" ? c[2](a) : esc(c[2](a))).join("</td><td>") + "</td></tr>");
    }
    table.tBodies[0].innerHTML = body.join("");
    pager.querySelector("span").textContent = "rows " + (first + 1) + "-" + Math.min(first + PAGE, rows.length) + " of " + rows.length;
  };
  pager.querySelector(".prev").addEventListener("click", () => { first = Math.max(0, first - PAGE); draw(); });
  pager.querySelector(".next").addEventListener("click", () => { if (first + PAGE < rows.length) first += PAGE; draw(); });
  const natural = (a, b) => a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : a.attempt - b.attempt);
  for (const [key, title] of columns) {
    const th = document.createElement("th");
    th.textContent = title;
    th.dataset.key = key;
    th.addEventListener("click", () => {
      descending = sortKey === key ? !descending : !["id", "label", "shortName", "group", "phase"].includes(key);
      sortKey = key;
      first = 0;
      rows.sort((a, b) => {
        const va = a[key], vb = b[key];
        const order = key === "id" ? natural(a, b) : va == null ? 1 : vb == null ? -1 : va < vb ? -1 : va > vb ? 1 : 0;
        return descending ? -order : order;
      });
      draw();
    });
    head.appendChild(th);
  }
  table.createTBody();
  draw();

  // Plots for the attempts worth a look: CPU (cores, from cumulative CPU seconds) and memory against limits.
  const plot = (parent, title, points, limit, format, unit, t0, t1) => {
    const w = 260, h = 110, left = 46, bottom = 18, right = 8, topPad = 16;
    const svg = el("svg", {width: w, height: h, class: "plot"}, parent);
    text(svg, left, 11, title);
    const maxValue = Math.max(limit || 0, ...points.map((p) => p[1]), 1e-9) * 1.1;
    const width = Math.max(t1 - t0, 1e-3);
    const px = (t) => left + ((t - t0) / width) * (w - left - right);
    const py = (v) => h - bottom - (v / maxValue) * (h - bottom - topPad);
    el("line", {x1: left, x2: w - right, y1: h - bottom, y2: h - bottom, class: "axis"}, svg);
    el("line", {x1: left, x2: left, y1: topPad, y2: h - bottom, class: "axis"}, svg);
    for (const v of ticks(maxValue, 3, unit)) text(svg, left - 4, py(v) + 4, format(v), "end");
    text(svg, left, h - 4, "0s");
    text(svg, w - right, h - 4, fmtSeconds(width), "end");
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
  for (const a of data.plots) {
    const card = document.createElement("div");
    card.className = "card";
    card.id = "action-" + a.id + "-" + a.attempt;
    const h = document.createElement("h3");
    h.textContent = a.id + " " + a.label + " (" + a.why + ") ";
    const badge = document.createElement("span");
    badge.className = "phase";
    badge.style.background = colour(a.phase);
    badge.textContent = a.phase;
    h.appendChild(badge);
    card.appendChild(h);
    const note = document.createElement("div");
    note.className = "note";
    note.textContent = "memory peak " + fmtBytes(a.peak) + " (" + a.source + ")" +
      (a.limits.memory ? " of " + fmtBytes(a.limits.memory) : "");
    card.appendChild(note);
    const t0 = a.started, t1 = Math.max(a.ended, t0);
    const s = a.samples.slice();
    if (a.cpu_seconds != null && s.length && a.ended > s[s.length - 1][0] && a.cpu_seconds > s[s.length - 1][2]) {
      s.push([a.ended, s[s.length - 1][1], a.cpu_seconds]);
    }
    const cores = [];
    for (let i = 1; i < s.length; i++) {
      const dt = s[i][0] - s[i - 1][0];
      if (dt > 0) cores.push([s[i - 1][0], (s[i][2] - s[i - 1][2]) / dt], [s[i][0], (s[i][2] - s[i - 1][2]) / dt]);
    }
    if (!cores.length && a.cpu_seconds != null && t1 > t0) {
      const average = a.cpu_seconds / (t1 - t0);
      cores.push([t0, average], [t1, average]);
    }
    let memory = a.samples.map((p) => [p[0], p[1]]);
    if (memory.length < 2 && a.peak != null) memory = [[t0, a.peak], [t1, a.peak]];
    plot(card, "CPU (cores)", cores, a.limits.cpu, (v) => v.toFixed(v < 1 ? 2 : 1), 1, t0, t1);
    plot(card, "memory (" + (a.samples.length ? "tree RSS" : "enforcer's peak") + ")", memory, a.limits.memory,
         fmtBytes, 1048576, t0, t1);
    box.appendChild(card);
  }
  if (!data.plots.length) box.textContent = "no attempt ran long enough, failed or came close to a limit";
  void document.body.offsetHeight;  // lay the page out before saying it is drawn
  document.body.dataset.bars = bars;
  document.body.dataset.plots = plots;
  document.body.dataset.rows = rows.length;
  document.body.dataset.shown = table.tBodies[0].rows.length;
  document.body.dataset.attempts = rows.length;
  document.body.dataset.ms = Math.round(performance.now());
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
<h2>Tasks</h2>
{summary}
<h2>Failures</h2>
{failures}
<h2>Actions</h2>
<div class="note">click a column to sort; * marks a memory peak measured by the enforcer (too short to sample)</div>
<div id="pager"><button class="prev">previous</button> <span></span> <button class="next">next</button></div>
<div id="table-box"><table id="actions-table" class="grid"></table></div>
<h2>Timeline</h2>
<div class="legend">{legend}</div>
<div id="timeline-box"></div>
<h2>Calls</h2>
{calls}
<h2>Task reports</h2>
{task_reports}
<h2>CPU and memory of the attempts worth a look</h2>
<div id="actions" class="actions"></div>
<script id="run-data" type="application/json">{data}</script>
<script>{script}</script>
</body>
</html>
"""

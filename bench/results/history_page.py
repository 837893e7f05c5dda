"""The history page: ``index.html`` and the data it loads, ``history.json`` (``twinbench.results.history.history``).

One static page, no library and nothing fetched from elsewhere: a small script in the page loads ``history.json``
from beside it and draws, per series, an SVG plot (each point's ratio with its 95% CI as a bar, a dashed line at
1 = no difference, called steps as a red line) and tables of the points and of the steps, the candidates asv
proposed that the CI rule did not call among them, with their reasons. Points whose ratio has no verdict
(busy machine, unresolved) are drawn hollow. Browsers do not let a page opened from a file fetch its neighbour, so
serve the directory: ``python -m http.server -d DIR`` (the page says so when it cannot load its data).
"""

from __future__ import annotations

from pathlib import Path

from twinbench.records import write_json_atomic

DATA_FILE = "history.json"
PAGE_FILE = "index.html"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>twinbench history</title>
<link rel="icon" href="data:,">
<style>
  body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
  section { margin-bottom: 3em; }
  svg { background: #fafafa; border: 1px solid #ddd; }
  .ci { stroke: #36c; stroke-width: 2; }
  .point { fill: #36c; stroke: #36c; stroke-width: 2; }
  .point.no-verdict { fill: #fff; }
  .one { stroke: #888; stroke-dasharray: 4 3; }
  .step.called { stroke: #c22; stroke-width: 2; }
  .axis text, .label { font-size: 11px; fill: #444; }
  table { border-collapse: collapse; font-size: 13px; margin-top: 0.5em; }
  td, th { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; }
  .note { color: #555; font-size: 13px; }
</style>
</head>
<body>
<h1>twinbench history</h1>
<p id="status" class="note">loading history.json ...</p>
<p class="note">Each plot: a ratio of step times (&gt;1: the first is slower) at each point with its 95% CI as a bar;
filled points have a verdict, hollow ones do not (machine busy or unresolved: see the table); the dashed line is 1
(no difference); a red line is a called step. Candidate steps that the CI rule did not call are listed under the plot.</p>
<p id="detector" class="note"></p>
<div id="series"></div>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const W = 720, H = 260, LEFT = 80, RIGHT = 20, TOP = 15, BOTTOM = 60, INSET = 60;

function el(name, attrs, parent, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  parent.appendChild(node);
  return node;
}

function title(s) {
  const what = s.kind === "latency" ? "p50 latency, batch " + s.batch_size : s.kind + ", batch " + s.batch_size;
  const over = s.axis === "version" ? "over versions" : "over twinbench commits, " + s.stack;
  return s.numerator + " / " + s.denominator + " — " + s.model + " (" + what + "), " + over + ", on " + s.machine;
}

function plot(s, parent) {
  const svg = el("svg", {width: W, height: H, "data-series": s.id}, parent);
  const lows = s.points.map(p => p.ci_low), highs = s.points.map(p => p.ci_high);
  let lo = Math.min(1, ...lows), hi = Math.max(1, ...highs);
  const pad = (hi - lo) * 0.08 || 0.05; lo -= pad; hi += pad;
  const n = s.points.length;
  const inner = W - LEFT - RIGHT - 2 * INSET;  // points kept off the edges: room for their slanted labels
  const x = i => LEFT + INSET + (n === 1 ? inner / 2 : i * inner / (n - 1));
  const y = v => TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
  const axis = el("g", {class: "axis"}, svg);
  for (let k = 0; k <= 4; k++) {
    const v = lo + k * (hi - lo) / 4;
    el("text", {x: LEFT - 6, y: y(v) + 4, "text-anchor": "end"}, axis, v.toFixed(3));
  }
  el("text", {x: 12, y: TOP + (H - TOP - BOTTOM) / 2, transform: "rotate(-90 12 " + (TOP + (H - TOP - BOTTOM) / 2) + ")",
              "text-anchor": "middle", class: "label"}, svg, "time ratio (95% CI)");
  el("line", {class: "one", x1: LEFT, x2: W - RIGHT, y1: y(1), y2: y(1)}, svg);
  for (const step of s.steps.filter(t => t.called)) {  // candidates not called: in the table only
    const sx = (x(step.index - 1) + x(step.index)) / 2;
    el("line", {class: "step called", x1: sx, x2: sx, y1: TOP, y2: H - BOTTOM},
       svg).appendChild(document.createElementNS(SVG, "title")).textContent = step.why;
  }
  s.points.forEach((p, i) => {
    el("line", {class: "ci", x1: x(i), x2: x(i), y1: y(p.ci_low), y2: y(p.ci_high)}, svg);
    const dot = el("circle", {class: "point" + (p.verdict_status === "called" ? "" : " no-verdict"),
                              cx: x(i), cy: y(p.ratio), r: 4}, svg);
    el("title", {}, dot, p.x + ": " + p.ratio.toFixed(3) + " [" + p.ci_low.toFixed(3) + ", " + p.ci_high.toFixed(3) +
       "] " + p.verdict);
    el("text", {x: x(i), y: H - BOTTOM + 14, "text-anchor": "end",
                transform: "rotate(-30 " + x(i) + " " + (H - BOTTOM + 14) + ")"}, axis, p.x);
  });
}

function table(rows, headers, parent) {
  const t = document.createElement("table");
  const head = t.insertRow();
  for (const h of headers) head.appendChild(document.createElement("th")).textContent = h;
  for (const row of rows) {
    const tr = t.insertRow();
    for (const cell of row) tr.insertCell().textContent = cell;
  }
  parent.appendChild(t);
}

function show(data) {
  document.getElementById("detector").textContent = data.detector;
  const root = document.getElementById("series");
  for (const s of data.series) {
    const section = document.createElement("section");
    section.appendChild(document.createElement("h2")).textContent = title(s);
    section.appendChild(document.createElement("p")).textContent = s.meaning;
    plot(s, section);
    table(s.points.map(p => [p.x, p.ratio.toFixed(3), p.ci_low.toFixed(3) + "-" + p.ci_high.toFixed(3),
                             p.runs_a + "/" + p.runs_b, p.commits.join(" "), p.verdict]),
          ["point", "ratio", "95% CI", "runs", "commits", "verdict"], section);
    if (s.steps.length)
      table(s.steps.map(t => [t.before + " → " + t.after, t.change === null ? "" : t.change.toFixed(3),
                              t.change === null ? "" : t.change_low.toFixed(3) + "-" + t.change_high.toFixed(3),
                              t.called ? "called" : "candidate", t.why]),
            ["step", "after / before", "interval", "status", "why"], section);
    root.appendChild(section);
  }
  const points = data.series.reduce((sum, s) => sum + s.points.length, 0);
  document.getElementById("status").textContent = data.series.length + " series, " + points + " points, from " +
    data.sources.join(", ") + " (made " + data.generated + ")";
  document.body.dataset.loaded = "true";
}

fetch("history.json")
  .then(response => { if (!response.ok) throw new Error("history.json: HTTP " + response.status); return response.json(); })
  .then(show)
  .catch(err => {
    document.getElementById("status").textContent = "Could not load history.json (" + err.message + "). Serve this " +
      "directory (python -m http.server -d DIR) and open it from there: a page opened as a file cannot fetch it.";
    document.body.dataset.loaded = "failed";
    console.error(err);
  });
</script>
</body>
</html>
"""


def write_page(data: dict, out_dir) -> Path:
    """Write ``index.html`` and ``history.json`` (``data``) into ``out_dir``; returns the page's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / DATA_FILE, data)
    page = out / PAGE_FILE
    page.write_text(PAGE, encoding="utf-8")
    return page

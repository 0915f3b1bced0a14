// The dashboard page: one EventSource on /events; each event is a snapshot of every job view (see
// runtime/cli/dashboard/events.ts). Rates and time shares come from the previous snapshot of the job.

import { count, derive, esc, ms } from "./format.js";
import { renderGraph } from "./graph.js";
import { renderCheckpoints } from "./checkpoints.js";
import { lineChart } from "./charts.js";
import * as tables from "./tables.js";

const SERIES_KEPT = 300;
// `wanted`: the job the link or a click asked for; shown again whenever it is listed (a job missing from one
// snapshot must not switch the page to another for good).
const wanted = new URLSearchParams(location.search).get("job");
const page = { wanted, selected: wanted, previous: new Map(), series: new Map(), last: undefined };

const $ = (id) => document.getElementById(id);
const body = (id) => $(id).querySelector(".body");

/** One view per job: the leader's (it covers the whole job). */
function jobViews(snapshot) {
  const jobs = new Map();
  for (const v of snapshot.views) if (!jobs.has(v.job) || v.leader) jobs.set(v.job, v);
  return [...jobs.values()].sort((a, b) => a.job.localeCompare(b.job));
}

function renderJobs(views) {
  if (views.length === 0) {
    body("jobs").innerHTML = `<p class="muted">no running jobs${page.last?.error ? `: ${esc(page.last.error)}` : ""}</p>`;
    return;
  }
  const rows = views.map((v) => {
    const s = v.status;
    return `<tr class="clickable ${v.job === page.selected ? "selected" : ""}" data-job="${esc(v.job)}"><td><a href="?job=${encodeURIComponent(v.job)}">${esc(v.job)}</a></td><td class="state">${esc(s.state)}</td><td class="num">${ms(s.uptimeMs)}</td>
      <td class="num">${s.parallelism}</td><td class="num">${s.subtasks.length}</td><td class="num">${count(s.recordsIn)}</td><td class="num">${count(s.recordsOut)}</td><td class="num">${s.restarts}</td><td class="num">${s.workers?.length ?? 1}</td></tr>`;
  }).join("");
  body("jobs").innerHTML = `<table><thead><tr><th>job</th><th>state</th><th class="num">uptime</th><th class="num">parallelism</th><th class="num">subtasks</th><th class="num">records in</th><th class="num">records out</th><th class="num">restarts</th><th class="num">workers</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function card(label, value, id) {
  return `<div class="card"><div class="label">${esc(label)}</div><div class="value"${id ? ` id="${id}"` : ""}>${value}</div></div>`;
}

function renderSummary(view, rate) {
  const s = view.status;
  $("summary").innerHTML = [
    card("job", esc(s.job)), card("state", esc(s.state), "job-state"), card("uptime", ms(s.uptimeMs)),
    card("records in", count(s.recordsIn), "records-in"), card("records out", count(s.recordsOut), "records-out"),
    card("in / s", count(rate?.in), "rate-in"), card("out / s", count(rate?.out), "rate-out"),
    card("dead letters", String(s.deadLetters)), card("restarts", String(s.restarts), "restarts"),
    card("checkpoints", s.checkpoints ? String(s.checkpoints.completed) : "off"),
  ].join("");
}

/** The job's records/s at its sources and sinks since the previous snapshot. */
function jobRate(prev, view) {
  if (!prev) return undefined;
  const dt = (Date.parse(view.at) - Date.parse(prev.at)) / 1000;
  const din = view.status.recordsIn - prev.status.recordsIn, dout = view.status.recordsOut - prev.status.recordsOut;
  if (dt <= 0 || din < 0 || dout < 0) return undefined;
  return { in: din / dt, out: dout / dt };
}

async function render(snapshot) {
  page.last = snapshot;
  const views = jobViews(snapshot);
  if (page.wanted && views.some((v) => v.job === page.wanted)) page.selected = page.wanted;
  else if (!views.some((v) => v.job === page.selected)) page.selected = views[0]?.job;
  renderJobs(views);
  const view = views.find((v) => v.job === page.selected);
  for (const id of ["summary", "throughput", "graph-section", "bottlenecks", "checkpoints", "exceptions", "subtasks", "watermarks", "workers", "state"]) $(id).hidden = !view;
  if (!view) return;
  const prev = page.previous.get(view.job);
  page.previous.set(view.job, view);
  const derived = derive(prev, view);
  const rate = jobRate(prev, view);
  renderSummary(view, rate);
  const series = page.series.get(view.job) ?? [];
  if (rate) series.push({ t: Date.parse(view.at) / 1000, ...rate });
  if (series.length > SERIES_KEPT) series.splice(0, series.length - SERIES_KEPT);
  page.series.set(view.job, series);
  body("bottlenecks").innerHTML = tables.bottlenecks(view, derived);
  body("exceptions").innerHTML = tables.exceptions(view);
  body("subtasks").innerHTML = tables.subtasks(view, derived);
  body("watermarks").innerHTML = tables.watermarks(view, derived);
  body("workers").innerHTML = tables.workers(view);
  body("state").innerHTML = tables.stateBackend(view);
  renderCheckpoints(body("checkpoints"), view, snapshot.checkpoints[view.job] ?? []);
  await renderGraph($("graph"), view, derived);
  // Navigation to the graph drawn: bench/dashboard.bench.ts reads it.
  if (performance.getEntriesByName("weir:graph-drawn").length === 0) performance.mark("weir:graph-drawn");
  document.body.dataset.drawn = String(Number(document.body.dataset.drawn ?? 0) + 1);
  void lineChart(body("throughput"), "time", series.map((p) => p.t), [
    { label: "in / s", values: series.map((p) => p.in), stroke: "#2f6fde" },
    { label: "out / s", values: series.map((p) => p.out), stroke: "#2e9d5b" },
  ], true);
}

document.addEventListener("click", (e) => {
  const row = e.target.closest?.("tr[data-job]");
  if (!row) return;
  e.preventDefault();
  page.selected = page.wanted = row.dataset.job;
  history.replaceState(null, "", `?job=${encodeURIComponent(page.selected)}`);
  if (page.last) void render(page.last);
});

const events = new EventSource("/events");
let rendering = Promise.resolve();
events.onopen = () => { $("connection").className = "dot live"; $("connection").textContent = "live"; };
events.onerror = () => {
  $("connection").className = "dot down";
  $("connection").textContent = "disconnected, retrying";
  document.body.classList.add("stale");
};
events.onmessage = (m) => {
  document.body.classList.remove("stale");
  const snapshot = JSON.parse(m.data);
  rendering = rendering.then(() => render(snapshot)).catch((e) => console.error(e));
};

// Checkpoints: counts, the one in flight, the last failure, a chart of durations and alignments, and
// the history with each checkpoint's per-subtask acknowledgements.

import { bytes, count, esc, ms } from "./format.js";
import { lineChart } from "./charts.js";

export function renderCheckpoints(el, view, history) {
  const c = view.status.checkpoints;
  if (!c) {
    el.innerHTML = `<p class="muted">checkpoints are off for this job (checkpointIntervalMs 0)</p>`;
    return;
  }
  // Skipped: periodic checkpoints of a job at rest (checkpointIntervalWhileIdleMs).
  const skipped = c.skipped ? ` · skipped at rest <b>${c.skipped}</b>` : "";
  const summary = `<p>completed <b>${c.completed}</b> · aborted <b>${c.aborted}</b>${skipped}${c.inFlight !== undefined ? ` · checkpoint ${c.inFlight} in flight` : ""}</p>`;
  const failure = c.lastFailure ? `<p class="error">last failure: ${esc(c.lastFailure)}</p>` : "";
  const rows = history.map((r) => `<tr data-checkpoint="${r.id}"><td>${r.id}</td><td>${esc(r.kind)}</td><td>${esc(new Date(r.triggeredAt).toISOString().slice(11, 23))}</td>
    <td class="num">${ms(r.durationMs)}</td><td class="num">${count(r.entries)}</td><td class="num">${bytes(r.bytes)}</td><td class="num">${ms(r.alignmentMs)}</td>
    <td><details><summary>${r.acks.length} acks, last +${ms(Math.max(0, ...r.acks.map((a) => a.afterMs)))}</summary>${r.acks.map((a) => `${esc(a.subtask)} +${ms(a.afterMs)}`).join("<br>")}</details></td></tr>`).join("");
  const tableHtml = history.length === 0 ? `<p class="muted">no completed checkpoint yet</p>`
    : `<table><thead><tr><th>id</th><th>kind</th><th>triggered (UTC)</th><th class="num">duration</th><th class="num">state changed</th><th class="num">size</th><th class="num">alignment</th><th>acknowledgements</th></tr></thead><tbody>${rows}</tbody></table>`;
  if (!el.querySelector(".cp-chart")) el.innerHTML = `<div class="head"></div><div class="cp-chart chart"></div><div class="rows"></div>`;
  el.querySelector(".head").innerHTML = summary + failure;
  el.querySelector(".rows").innerHTML = tableHtml;
  const ordered = [...history].reverse();
  void lineChart(el.querySelector(".cp-chart"), "checkpoint id", ordered.map((r) => r.id), [
    { label: "duration ms", values: ordered.map((r) => r.durationMs), stroke: "#2f6fde" },
    { label: "alignment ms", values: ordered.map((r) => r.alignmentMs), stroke: "#d99a1e" },
  ]);
}

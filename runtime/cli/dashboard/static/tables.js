// The tables of one job: bottlenecks, subtasks (actor state, records, time shares), watermarks,
// exceptions and restarts, workers, the state backend. Each renders the whole section from a snapshot.

import { bytes, count, esc, level, ms, percent, watermark } from "./format.js";

function table(cols, rows, empty) {
  if (rows.length === 0) return `<p class="muted">${esc(empty)}</p>`;
  const head = cols.map((c) => `<th class="${c.num ? "num" : ""}">${esc(c.label)}</th>`).join("");
  const body = rows.map((r) => `<tr>${r.map((cell, i) => `<td class="${cols[i].num ? "num" : ""}">${cell}</td>`).join("")}</tr>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

const C = (label, num = false) => ({ label, num });

function share(x) {
  const w = x === null || x === undefined ? 0 : Math.round(x * 60);
  return `<span class="bar" style="width:${w}px"></span> ${percent(x)}`;
}

export function bottlenecks(view, derived) {
  const rows = view.status.subtasks.map((s) => ({ s, d: derived.get(s.id) ?? {} }))
    .sort((a, b) => (b.d.busy ?? 0) - (a.d.busy ?? 0) || (b.d.backpressured ?? 0) - (a.d.backpressured ?? 0) || (b.d.lagMs ?? 0) - (a.d.lagMs ?? 0))
    .slice(0, 10)
    .map(({ s, d }) => [esc(s.id), esc(s.name), share(d.busy), `<span class="${level(d.backpressured)}">${share(d.backpressured)}</span>`, ms(d.lagMs), String(s.queuedFrames), String(s.pendingFrames)]);
  return table([C("subtask"), C("operator"), C("busy"), C("backpressured"), C("watermark lag", true), C("queued frames", true), C("pending frames", true)], rows, "no subtasks");
}

export function subtasks(view, derived) {
  const rows = view.status.subtasks.map((s) => {
    const d = derived.get(s.id) ?? {};
    return [esc(s.id), esc(s.name), `<span class="state">${esc(s.state)}</span>`, count(s.recordsIn), count(s.recordsOut), `${count(d.inRate)}/s`, `${count(d.outRate)}/s`,
      percent(d.busy), percent(d.backpressured), percent(d.idle), s.isBacklog ? "backlog" : "", String(s.deadLetters), s.error ? `<span class="error">${esc(s.error)}</span>` : ""];
  });
  return table([C("subtask"), C("operator"), C("actor state"), C("records in", true), C("records out", true), C("in", true), C("out", true), C("busy", true), C("backpressured", true), C("idle", true), C("input"), C("dead letters", true), C("error")], rows, "no subtasks deployed");
}

export function watermarks(view, derived) {
  const rows = view.status.subtasks.map((s) => [esc(s.id), esc(s.name), watermark(s.watermark), watermark(s.watermarkOut), ms(derived.get(s.id)?.lagMs)]);
  return table([C("subtask"), C("operator"), C("input watermark"), C("output watermark"), C("lag", true)], rows, "no subtasks deployed");
}

export function exceptions(view) {
  const s = view.status;
  const next = s.nextRestartAt ? `, next restart at ${esc(s.nextRestartAt)} (delay ${ms(s.nextRestartDelayMs)})` : "";
  const head = `<p>restarts: <b>${s.restarts}</b> · strategy ${esc(s.restartStrategy)}${next}${s.restoredFrom !== undefined ? ` · restored from checkpoint ${s.restoredFrom}` : ""}</p>`;
  const current = s.failure ? `<p class="error">current failure: ${esc(s.failure)}</p>` : "";
  const rows = [...s.failures].reverse().map((f) => [esc(f.at), esc(f.subtask ?? "job"), `<span class="error">${esc(f.error)}</span>`, f.restarted ? "restarted" : "not restarted"]);
  const failing = s.subtasks.filter((t) => t.error).map((t) => [esc(view.at), esc(t.id), `<span class="error">${esc(t.error)}</span>`, "current"]);
  return head + current + table([C("at"), C("subtask"), C("failure"), C("then")], [...failing, ...rows], "no failures");
}

export function workers(view) {
  const list = view.status.workers;
  if (list && list.length > 0) {
    const rows = list.map((w) => [esc(w.id), esc(w.host), String(w.pid), w.leader ? "leader" : "", String(w.subtasks.length), esc(w.subtasks.join(", ")), ms(w.heartbeatAgeMs), ms(w.lagMs)]);
    return `<p class="muted">epoch ${esc(view.status.epoch ?? "–")}</p>` + table([C("worker"), C("host"), C("pid", true), C("role"), C("subtasks", true), C("subtask ids"), C("heartbeat age", true), C("event-loop lag", true)], rows, "");
  }
  const ids = view.localSubtasks.map((t) => t.id);
  return table([C("worker"), C("role"), C("subtasks", true), C("subtask ids")], [[esc(view.worker), view.leader ? "leader" : "", String(ids.length), esc(ids.join(", "))]], "");
}

export function stateBackend(view) {
  const rows = [];
  for (const s of view.status.subtasks) {
    for (const [op, m] of Object.entries(s.operators)) {
      if (m.cacheEntries === undefined && m.dirtyEntries === undefined) continue;
      const hits = m.cacheHits ?? 0, misses = m.cacheMisses ?? 0;
      rows.push([esc(s.id), esc(op), count(m.cacheEntries), bytes(m.cacheBytes), hits + misses > 0 ? percent(hits / (hits + misses)) : "no reads", count(hits), count(misses), count(m.cacheEvictions), count(m.dirtyEntries), bytes(m.dirtyBytes)]);
    }
  }
  return table([C("subtask"), C("operator"), C("cache entries", true), C("cache bytes", true), C("hit ratio", true), C("hits", true), C("misses", true), C("evictions", true), C("dirty entries", true), C("dirty bytes", true)], rows,
    "no keyed state cache figures (a stateless job, or the heap state backend)");
}

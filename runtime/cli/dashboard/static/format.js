// Formatting and the figures derived from two consecutive snapshots of a job (rates, time shares).

export function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function count(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

export function percent(x) {
  return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
}

export function ms(x) {
  if (x === null || x === undefined) return "–";
  if (x < 1000) return `${Math.round(x)} ms`;
  if (x < 120_000) return `${(x / 1000).toFixed(1)} s`;
  return `${(x / 60_000).toFixed(1)} min`;
}

export function bytes(b) {
  if (b === null || b === undefined) return "–";
  if (b < 1024) return `${b} B`;
  if (b < 1024 * 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${(b / 1024 / 1024).toFixed(1)} MiB`;
}

/** A watermark as a time of day (MAX: the input ended). */
export function watermark(w) {
  if (w === null || w === undefined) return "–";
  if (w >= Number.MAX_SAFE_INTEGER) return "MAX (ended)";
  return new Date(w).toISOString().replace("T", " ").replace("Z", "");
}

export function level(bp) {
  return bp === null || bp === undefined ? "" : bp >= 0.5 ? "bad" : bp >= 0.1 ? "warn" : "ok";
}

/**
 * Per subtask id: records/s in and out and the shares of time busy, backpressured and idle over the last
 * interval (before a second snapshot: the shares since the subtask started; no rates), and the watermark
 * lag behind the snapshot's time (input watermark, else output). A counter that went down (a restart) gives no rate for that interval.
 */
export function derive(prev, view) {
  const at = Date.parse(view.at);
  const before = new Map((prev?.status.subtasks ?? []).map((s) => [s.id, s]));
  const dt = prev ? at - Date.parse(prev.at) : 0;
  const out = new Map();
  for (const s of view.status.subtasks) {
    const p = before.get(s.id);
    const d = (k) => (p && dt > 0 && (s[k] ?? 0) >= (p[k] ?? 0) ? (s[k] ?? 0) - (p[k] ?? 0) : null);
    const din = d("recordsIn"), dout = d("recordsOut"), dbusy = d("busyMs"), dbp = d("backpressuredMs"), didle = d("idleMs");
    // Shares of the time since the previous snapshot: none before a second one (an average over the whole
    // run, shown as "in the last second", said a job idle for minutes was busy or backpressured).
    const share = (delta) => (delta !== null ? Math.min(1, delta / dt) : null);
    // A source has no input watermark: its lag is that of the watermark it sends.
    const wm = s.watermark ?? s.watermarkOut;
    out.set(s.id, {
      inRate: din === null ? null : (din * 1000) / dt,
      outRate: dout === null ? null : (dout * 1000) / dt,
      busy: share(dbusy),
      backpressured: share(dbp),
      idle: share(didle),
      lagMs: wm === null || wm === undefined || wm >= Number.MAX_SAFE_INTEGER ? null : Math.max(0, at - wm),
    });
  }
  return out;
}

/** "gen#0" → "gen" (the chain head's uid). */
export function uidOf(subtaskId) {
  const i = subtaskId.lastIndexOf("#");
  return i < 0 ? subtaskId : subtaskId.slice(0, i);
}

// The job graph as SVG: one box per chain (vertex) with its parallelism, records/s in and out, the
// busiest and most backpressured subtask's shares and the largest watermark lag; coloured by
// backpressure. Laid out by dagre (served at /vendor/dagre.js); without it, by a layered layout here.

import { count, esc, level, ms, percent } from "./format.js";

const W = 230, H = 92;
const FILL = { ok: "#e3f4ea", warn: "#fbefd2", bad: "#f8dcd9", "": "#eef0f4" };

let dagre;
const loading = import("/vendor/dagre.js").then((m) => { dagre = m; }, () => { dagre = null; });

/** Vertices and edges: from the status's graph, else (an older job) one vertex per chain seen in the subtasks. */
function topology(status) {
  if (status.graph) return status.graph;
  const vs = new Map();
  for (const s of status.subtasks) {
    const v = vs.get(s.vertex) ?? { id: s.vertex, uid: s.id.slice(0, s.id.lastIndexOf("#")), name: s.name, parallelism: 0, operators: [s.name] };
    v.parallelism++;
    vs.set(s.vertex, v);
  }
  return { vertices: [...vs.values()].sort((a, b) => a.id - b.id), edges: [] };
}

function layout(g) {
  if (dagre) {
    const d = new dagre.graphlib.Graph();
    d.setGraph({ rankdir: "LR", nodesep: 30, ranksep: 60, marginx: 10, marginy: 10 });
    d.setDefaultEdgeLabel(() => ({}));
    for (const v of g.vertices) d.setNode(String(v.id), { width: W, height: H });
    for (const e of g.edges) d.setEdge(String(e.from), String(e.to));
    dagre.layout(d);
    const pos = new Map(g.vertices.map((v) => { const n = d.node(String(v.id)); return [v.id, { x: n.x - W / 2, y: n.y - H / 2 }]; }));
    return { pos, width: d.graph().width, height: d.graph().height };
  }
  // Layered: a vertex's column is its longest path from a source; rows in order within a column.
  const col = new Map(g.vertices.map((v) => [v.id, 0]));
  for (let i = 0; i < g.vertices.length; i++) for (const e of g.edges) col.set(e.to, Math.max(col.get(e.to), col.get(e.from) + 1));
  const rows = new Map();
  const pos = new Map();
  for (const v of g.vertices) {
    const c = col.get(v.id), r = rows.get(c) ?? 0;
    rows.set(c, r + 1);
    pos.set(v.id, { x: 10 + c * (W + 60), y: 10 + r * (H + 30) });
  }
  const cols = Math.max(...col.values()) + 1;
  return { pos, width: 20 + cols * (W + 60) - 60, height: 20 + Math.max(...rows.values()) * (H + 30) - 30 };
}

/** Per vertex: the sums and worst figures of its subtasks. */
function vertexFigures(status, derived) {
  const figs = new Map();
  for (const s of status.subtasks) {
    const d = derived.get(s.id) ?? {};
    const f = figs.get(s.vertex) ?? { inRate: null, outRate: null, busy: null, backpressured: null, lagMs: null, running: 0, states: new Set() };
    const add = (a, b) => (b === null || b === undefined ? a : (a ?? 0) + b);
    const max = (a, b) => (b === null || b === undefined ? a : Math.max(a ?? 0, b));
    f.inRate = add(f.inRate, d.inRate); f.outRate = add(f.outRate, d.outRate);
    f.busy = max(f.busy, d.busy); f.backpressured = max(f.backpressured, d.backpressured); f.lagMs = max(f.lagMs, d.lagMs);
    f.states.add(s.state);
    figs.set(s.vertex, f);
  }
  return figs;
}

export async function renderGraph(el, view, derived) {
  await loading;
  const g = topology(view.status);
  const key = JSON.stringify(g);
  if (el.dataset.key !== key) {
    el.dataset.key = key;
    el.__layout = layout(g);
  }
  const { pos, width, height } = el.__layout;
  const figs = vertexFigures(view.status, derived);
  const edges = g.edges.map((e) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) return "";
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    return `<g class="edge"><path d="M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 6},${y2}" marker-end="url(#arrow)"/><text x="${mx}" y="${(y1 + y2) / 2 - 4}" text-anchor="middle">${esc(e.partitioning)}</text></g>`;
  }).join("");
  const nodes = g.vertices.map((v) => {
    const p = pos.get(v.id), f = figs.get(v.id) ?? {};
    const name = v.name.length > 30 ? `${v.name.slice(0, 28)}…` : v.name;
    const states = f.states ? [...f.states].join(", ") : "";
    return `<g class="node ${level(f.backpressured)}" data-vertex="${esc(v.uid)}" transform="translate(${p.x},${p.y})">
      <title>${esc(v.operators.join(" → "))}\n${esc(states)}</title>
      <rect width="${W}" height="${H}" fill="${FILL[level(f.backpressured)]}"/>
      <text class="title" x="10" y="18">${esc(name)}</text>
      <text x="10" y="36">parallelism ${v.parallelism} · ${esc(v.uid)}</text>
      <text x="10" y="53">in ${count(f.inRate)}/s · out ${count(f.outRate)}/s</text>
      <text x="10" y="70">busy ${percent(f.busy)} · backpressured ${percent(f.backpressured)}</text>
      <text x="10" y="86">watermark lag ${ms(f.lagMs)}</text>
    </g>`;
  }).join("");
  el.innerHTML = `<svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="job graph">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#7a869a"/></marker></defs>
    ${edges}${nodes}</svg>`;
}

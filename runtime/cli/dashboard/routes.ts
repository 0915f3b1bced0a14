// The web dashboard on weir's HTTP server: `/` and its ES modules and CSS (static/, served as they are:
// no build step), the two small browser libraries from node_modules (uPlot for charts, dagre for the
// graph layout), `/events` (server-sent events, events.ts) and `/api/snapshot` (one snapshot as JSON).

import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { JobViewSource } from "../http/job-view.ts";
import type { HttpServer, RouteHandler } from "../http/server.ts";
import { CheckpointHistory, type HistorySeed } from "./history.ts";
import { SnapshotStream } from "./events.ts";

const STATIC_DIR = fileURLToPath(new URL("./static/", import.meta.url));

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
};

/** Browser files of the libraries, resolved through their package.json (uPlot has no `exports`). */
const VENDOR: ReadonlyArray<{ route: string; pkg: string; file: string }> = [
  { route: "/vendor/uplot.js", pkg: "uplot", file: "dist/uPlot.esm.js" },
  { route: "/vendor/uplot.css", pkg: "uplot", file: "dist/uPlot.min.css" },
  { route: "/vendor/dagre.js", pkg: "@dagrejs/dagre", file: "dist/dagre.esm.js" },
];

function fileRoute(path: string): RouteHandler {
  const contentType = TYPES[extname(path)] ?? "application/octet-stream";
  // Read on each request: small files, and an edited file shows on reload.
  return () => ({ contentType, body: readFileSync(path, "utf8") });
}

function vendorRoute(pkg: string, file: string): RouteHandler {
  const contentType = TYPES[extname(file)] ?? "application/octet-stream";
  return () => {
    let path: string;
    try {
      path = join(dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`)), file);
    } catch {
      // The page draws without it (its own layered layout, no charts): say what is missing.
      return { status: 404, contentType: "text/plain; charset=utf-8", body: `${pkg} is not installed (npm install ${pkg})\n` };
    }
    return { contentType, body: readFileSync(path, "utf8") };
  };
}

export interface DashboardOptions {
  readonly source: JobViewSource;
  /** Reads a job's stored checkpoints, to list those taken before the page was first opened. */
  readonly seedCheckpoints?: HistorySeed;
  readonly intervalMs?: number;
}

/** Adds the dashboard's routes; close the returned stream before the server. */
export function addDashboardRoutes(http: HttpServer, o: DashboardOptions): SnapshotStream {
  const stream = new SnapshotStream(o.source, new CheckpointHistory(o.seedCheckpoints), o.intervalMs);
  http.addRoute("/", fileRoute(join(STATIC_DIR, "index.html")));
  for (const f of readdirSync(STATIC_DIR)) if (f !== "index.html") http.addRoute(`/static/${f}`, fileRoute(join(STATIC_DIR, f)));
  for (const v of VENDOR) http.addRoute(v.route, vendorRoute(v.pkg, v.file));
  http.addRoute("/api/snapshot", async () => ({ contentType: "application/json; charset=utf-8", body: JSON.stringify(await stream.json()) }));
  http.addStream("/events", stream.handler());
  return stream;
}

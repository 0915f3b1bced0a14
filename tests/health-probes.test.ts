// `/healthz` and `/readyz` of `weir run --http`, as a Kubernetes probe reads them, for each state a
// worker's status can be in (tests/metrics-http checks them on a real job, starting and running).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { HttpServer } from "../runtime/cli/http/server.ts";
import { HealthRoutes } from "../runtime/cli/http/health.ts";
import type { JobStatus } from "../actors/job/job-status.ts";

const test = suite("health probes");

test("/readyz: 503 while starting, failing or cut off from NATS, saying why; 200 while running; /healthz always 200", async () => {
  const http = new HttpServer();
  const health = new HealthRoutes(http, "probed");
  const { port } = await http.listen({ host: "127.0.0.1", port: 0 });
  const get = async (path: string) => { const r = await fetch(`http://127.0.0.1:${port}${path}`); return [r.status, await r.text()]; };
  let status = { state: "running" } as unknown as JobStatus;
  try {
    assert.equal(await get("/readyz"), [503, "not ready: job probed is starting\n"]);
    health.attach(() => status);
    assert.equal(await get("/readyz"), [200, "ready: job probed is running\n"]);
    status = { state: "running", natsDisconnectedSince: "2026-12-07T00:00:00.000Z" } as unknown as JobStatus;
    assert.equal(await get("/readyz"), [503, "not ready: the NATS connection is down since 2026-12-07T00:00:00.000Z\n"]);
    status = { state: "restarting", failure: "operator \"count\" (subtask 0) failed: boom\n  at x" } as unknown as JobStatus;
    assert.equal(await get("/readyz"), [503, "not ready: job probed is restarting: operator \"count\" (subtask 0) failed: boom\n"]);
    assert.equal(await get("/healthz"), [200, "ok\n"]);
  } finally {
    await http.close();
  }
});

test.run();

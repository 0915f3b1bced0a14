// `weir dashboard [--http ADDR]`: the web dashboard and /metrics for every job on a NATS server. Just
// another NATS client: it lists the jobs and reads their status as `weir status` does, and changes
// nothing. Runs until SIGINT/SIGTERM.

import { connectNats, resolveNatsConnection } from "../../nats/connect.ts";
import { watchPermissionDenials } from "../../nats/denials.ts";
import type { NatsFlags } from "../../nats/connection-settings.ts";
import { describeServers } from "../../nats/server-urls.ts";
import { HttpServer, parseHttpAddress, type HttpAddress } from "../http/server.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { addDashboardRoutes } from "../dashboard/routes.ts";
import { storedCheckpoints } from "../dashboard/history.ts";
import { natsJobViews } from "../dashboard/nats-source.ts";

/**
 * Not 8222 (nats-server monitoring) nor the embedded server's ports: 9464, loopback only unless asked
 * (the port OpenTelemetry's Prometheus exporter uses by default, rarely taken on a developer machine).
 */
export const DEFAULT_DASHBOARD_ADDRESS = "127.0.0.1:9464";

export async function dashboardCommand(flags: NatsFlags & { http?: HttpAddress }): Promise<number> {
  const settings = await resolveNatsConnection({ flags });
  const nc = await connectNats(settings, "weir-dashboard");
  const http = new HttpServer();
  const metrics = new MetricsRegistry();
  // A user who may not make the dashboard's requests would see an empty dashboard and no reason: each
  // permission the server denies is one line (once; a request's inbox differs each time, so not its id).
  const told = new Set<string>();
  watchPermissionDenials(nc, (e) => {
    const line = e.message.replace(/_INBOX\.[A-Za-z0-9]+/g, "_INBOX.<id>");
    if (told.has(line)) return;
    told.add(line);
    process.stderr.write(`weir dashboard: ${line}\n`);
  });
  const views = natsJobViews(nc);
  metrics.attach(views, {});
  http.addRoute("/metrics", metrics.route());
  const stream = addDashboardRoutes(http, { source: views, seedCheckpoints: storedCheckpoints(async () => nc) });
  try {
    const at = await http.listen(flags.http ?? parseHttpAddress(DEFAULT_DASHBOARD_ADDRESS));
    const host = at.host.includes(":") ? `[${at.host}]` : at.host;
    process.stderr.write(`weir dashboard: jobs on NATS ${describeServers(settings)}\ndashboard: http://${host}:${at.port}/ (metrics at /metrics)\n`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
      nc.closed().then(() => resolve(), () => resolve());
    });
    return 0;
  } finally {
    await stream.close();
    await http.close();
    if (!nc.isClosed()) await nc.close();
  }
}

// `/healthz` and `/readyz` beside /metrics (`weir run --http`): what a Kubernetes liveness and readiness
// probe, or a load balancer, asks a long-running worker. Liveness: the process answers HTTP (its event
// loop turns). Readiness: this worker's job runs and its own NATS connection is up; otherwise a 503 with
// one line saying why (starting, restarting after a failure, NATS down). Read from the status the worker
// already keeps, when asked: nothing per record.

import type { JobStatus } from "../../../actors/job/job-status.ts";
import { TEXT, type HttpServer, type RouteResponse } from "./server.ts";

export class HealthRoutes {
  private status: (() => JobStatus) | undefined;

  constructor(http: HttpServer, private readonly job: string) {
    http.addRoute("/healthz", () => TEXT(200, "ok\n"));
    http.addRoute("/readyz", () => this.readiness());
  }

  /** The worker's status, once it exists (before, the job is starting). */
  attach(status: () => JobStatus): void { this.status = status; }

  private readiness(): RouteResponse {
    const s = this.status?.();
    if (s === undefined) return TEXT(503, `not ready: job ${this.job} is starting\n`);
    if (s.natsDisconnectedSince !== undefined) return TEXT(503, `not ready: the NATS connection is down since ${s.natsDisconnectedSince}\n`);
    if (s.state !== "running") {
      const why = s.failure !== undefined ? `: ${s.failure.split("\n")[0]}` : "";
      return TEXT(503, `not ready: job ${this.job} is ${s.state}${why}\n`);
    }
    // A spare is ready: it stands by to take subtasks, and a rolling update must not wait on it for ever.
    if (s.spare) return TEXT(200, `ready: job ${this.job} is running on its other workers; this worker is a spare (the job places no subtasks on it)\n`);
    return TEXT(200, `ready: job ${this.job} is running\n`);
  }
}

// The execution mode a launch runs in, decided from the job's sources as Flink does (execution.runtime-mode):
// "batch" needs every source bounded and is refused otherwise, naming the source; "automatic" runs a job
// whose sources are all bounded in batch mode (unless it takes checkpoints, which batch mode never does:
// the job then keeps the mixed mode of FLIP-327, sorting backlogs only), and any other job in that mixed mode.

import type { JobGraph } from "../graph/job-graph.ts";
import { ErrorCode, WeirError } from "../core/errors.ts";
import type { ExecutionMode, ResolvedJobOptions } from "../contracts/job-options.ts";

/** How a source of each kind is given an end, for the refusal's hint. */
const END_OPTION: Readonly<Record<string, string>> = { jetstream: "bounded: true", generator: "count" };

/** The sources of the graph a launch runs. */
function sourcesOf(graph: JobGraph): Array<{ name: string; kind: string; bounded: boolean }> {
  const out: Array<{ name: string; kind: string; bounded: boolean }> = [];
  for (const v of graph.vertices) {
    for (const n of v.nodes) if (n.kind === "source") out.push({ name: n.name, kind: n.source.kind, bounded: n.source.bounded });
  }
  return out;
}

/** The mode this launch of `graph` runs in; throws (one line) for mode "batch" with an unbounded source. */
export function executionModeFor(job: Pick<ResolvedJobOptions, "mode" | "checkpointIntervalMs">, graph: JobGraph): ExecutionMode {
  const sources = sourcesOf(graph);
  const unbounded = sources.find((s) => !s.bounded);
  if (job.mode === "batch") {
    if (unbounded) {
      const end = END_OPTION[unbounded.kind] ? ` (${END_OPTION[unbounded.kind]})` : "";
      throw new WeirError(ErrorCode.InvalidGraph, `mode "batch": source "${unbounded.name}" (Sources.${unbounded.kind}) is unbounded; give it an end${end} or use mode "streaming"`);
    }
    return "batch";
  }
  if (job.mode === "automatic" && unbounded === undefined && sources.length > 0 && job.checkpointIntervalMs === 0) return "batch";
  return job.mode;
}

// Scenario job: visits per user in keyed state on the jetstream-kv backend, from live JetStream records
// (`startAt: "new"`: without checkpoints a restarted job must not read the stream again from the start).
// A graceful stop flushes the state to KV, so the job started again continues each user's count.
// Used by scenarios/state-survives-restart.scenario.yaml.
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState } from "weir";

export const Visit = t.type({ user: t.string }, "Visit");
export interface VisitCount { user: string; visits: number }

const visits = valueState("visits", t.number);

export default defineJob({ name: "scenario-visits", parallelism: 2, stateBackend: "jetstream-kv" }, (env) => {
  env
    .fromSource(Sources.jetstream({ stream: "VISITS", subjects: ["visits.eu", "visits.us"], codec: Visit, startAt: "new" }), { name: "visits" })
    .keyBy((v) => v.user)
    .process<VisitCount>({
      async processElement(_visit, ctx) {
        const n = ((await ctx.state(visits).value()) ?? 0) + 1;
        await ctx.state(visits).update(n);
        ctx.collect({ user: ctx.key, visits: n });
      },
    }, { name: "count visits" })
    .sinkTo(Sinks.jetstream({ stream: "VISIT_COUNTS", subject: (c: VisitCount) => `visit-counts.${c.user}` }), { name: "visit counts" });
});

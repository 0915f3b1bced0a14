// Scenario job: an alert when a user has been idle for a minute of processing time: each event moves the
// user's deadline (keyed state) and registers a processing-time timer there; a timer that is no longer the
// deadline does nothing. Used by scenarios/timers-survive-crash.scenario.yaml.
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState } from "weir";
const E = t.type({ user: t.string }, "Event");
interface Alert { user: string; at: number; seen: number; now: number }
const due = valueState("due", t.number);
const seen = valueState("seen", t.number);
export default defineJob({ name: "scenario-idle-alerts", parallelism: 2 }, (env) => {
  env
    .fromSource(Sources.jetstream({ stream: "EVENTS", subjects: ["events.>"], codec: E }), { name: "events" })
    .keyBy((e) => e.user)
    .process<Alert>({
      async processElement(_e, ctx) {
        const at = ctx.currentProcessingTime() + 60_000;
        await ctx.state(due).update(at);
        await ctx.state(seen).update(((await ctx.state(seen).value()) ?? 0) + 1);
        ctx.timers.registerProcessingTimeTimer(at);
      },
      async onTimer(ts, ctx) {
        if ((await ctx.state(due).value()) !== ts) return; // a later event moved the deadline
        ctx.collect({ user: ctx.key, at: ts, seen: (await ctx.state(seen).value()) ?? 0, now: ctx.currentProcessingTime() });
      },
    }, { name: "idle" })
    .sinkTo(Sinks.jetstream({ stream: "ALERTS", subject: (a: Alert) => `alerts.${a.user}` }), { name: "alert sink" });
});

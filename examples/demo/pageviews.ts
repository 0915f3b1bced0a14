// The demo job: page-view events from the PAGEVIEWS stream → per-user and per-page view counts in keyed
// state → the PAGE_STATS stream. Malformed events go to the dead-letter stream, not into the counts.
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState, WatermarkStrategy } from "weir";

export const PageView = t.type({ user: t.string, page: t.string, ts: t.number, ms: t.number }, "PageView");
export type PageView = t.TypeOf<typeof PageView>;
export interface Stat { kind: "user" | "page"; key: string; views: number; lastTs: number }

const views = valueState("views", t.number);

export default defineJob({ name: "pageviews", parallelism: 2, checkpointIntervalMs: 2000 }, (env) => {
  const events = env
    .fromSource(Sources.jetstream({ stream: "PAGEVIEWS", subjects: ["pageviews.>"], codec: PageView }), { name: "page views", uid: "pageviews-source" })
    .assignTimestampsAndWatermarks(WatermarkStrategy.boundedOutOfOrderness<PageView>(2000, (e) => e.ts).withIdleness(5000), { uid: "pageviews-watermarks" })
    .filter((e) => e.ms >= 0, { name: "valid durations", uid: "valid" });

  const count = (kind: Stat["kind"], key: (e: PageView) => string) => events
    .keyBy(key)
    .process<Stat>({
      async processElement(e, ctx) {
        const n = ((await ctx.state(views).value()) ?? 0) + 1;
        await ctx.state(views).update(n);
        ctx.collect({ kind, key: ctx.key, views: n, lastTs: e.ts });
      },
    }, { name: `views per ${kind}`, uid: `views-per-${kind}` });

  count("user", (e) => e.user)
    .union(count("page", (e) => e.page))
    .sinkTo(Sinks.jetstream({ stream: "PAGE_STATS", subject: (s: Stat) => `stats.${s.kind}.${s.key}` }), { name: "stats", uid: "stats-sink" });
});

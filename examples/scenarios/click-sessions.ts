// Scenario job: event-time session windows per user (a session ends after 1 s without a click), kept for
// 2 s of allowed lateness: a late click within it fires its session again, merged; a later one goes to the
// LATE side output. One source subtask, so the watermark follows every click.
// Used by scenarios/session-windows.scenario.yaml.
import * as t from "io-ts";
import { defineJob, EventTimeSessionWindows, outputTag, Sinks, Sources, WatermarkStrategy } from "weir";
const Click = t.type({ user: t.string, ts: t.number }, "Click");
type Click = t.TypeOf<typeof Click>;
interface Session { user: string; start: number; end: number; clicks: number }
const late = outputTag<Click>("late");
export default defineJob({ name: "scenario-sessions", parallelism: 2, autoWatermarkIntervalMs: 50 }, (env) => {
  const s = env
    .fromSource(Sources.jetstream({ stream: "CLICKS", subjects: ["clicks.>"], codec: Click }), { name: "clicks", parallelism: 1 })
    .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Click>((c) => c.ts), { name: "ts", parallelism: 1 })
    .keyBy((c) => c.user)
    .window(EventTimeSessionWindows.withGap(1000))
    .allowedLateness(2000)
    .sideOutputLateData(late)
    .process<Session>({
      process(user, { window }, clicks, out) { out.collect({ user, start: window.start, end: window.end, clicks: clicks.length }); },
    }, { name: "sessions" });
  s.sinkTo(Sinks.jetstream({ stream: "SESSIONS", subject: (x: Session) => `sessions.${x.user}` }), { name: "session sink" });
  s.getSideOutput(late).sinkTo(Sinks.jetstream({ stream: "LATE", subject: (c: Click) => `late.${c.user}` }), { name: "late sink" });
});

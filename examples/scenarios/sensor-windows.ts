// Scenario job: event-time tumbling windows (1 s) per sensor over two partitions. Timestamps come from the
// readings; `withIdleness(500)` lets a partition that goes quiet stop holding the watermark back, so the
// windows of the busy partition keep firing. Late readings (their window already fired) go to LATE.
// Used by scenarios/watermark-idleness.scenario.yaml.
import * as t from "io-ts";
import { defineJob, outputTag, Sinks, Sources, TumblingEventTimeWindows, WatermarkStrategy } from "weir";

export const Reading = t.type({ sensor: t.string, ts: t.number, value: t.number }, "Reading");
export type Reading = t.TypeOf<typeof Reading>;
export interface WindowResult { sensor: string; start: number; end: number; count: number; sum: number }

const late = outputTag<Reading>("late");

export default defineJob({ name: "scenario-sensors", parallelism: 2, autoWatermarkIntervalMs: 50 }, (env) => {
  const windows = env
    .fromSource(Sources.jetstream({ stream: "SENSORS", subjects: ["sensors.a", "sensors.b"], codec: Reading }), { name: "readings" })
    .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps<Reading>((r) => r.ts).withIdleness(500), { name: "timestamps" })
    .keyBy((r) => r.sensor)
    .window(TumblingEventTimeWindows.of(1000))
    .sideOutputLateData(late)
    .process<WindowResult>({
      process(sensor, { window }, readings, out) {
        out.collect({ sensor, start: window.start, end: window.end, count: readings.length, sum: readings.reduce((s, r) => s + r.value, 0) });
      },
    }, { name: "windows" });
  windows.sinkTo(Sinks.jetstream({ stream: "WINDOWS", subject: (w: WindowResult) => `windows.${w.sensor}` }), { name: "window sink" });
  windows.getSideOutput(late).sinkTo(Sinks.jetstream({ stream: "LATE", subject: (r: Reading) => `late.${r.sensor}` }), { name: "late sink" });
});

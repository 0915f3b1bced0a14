// Scenario job: each customer's order total per hour of processing time (tumbling processing-time
// windows: an order belongs to the hour the window operator sees it in; no timestamps or watermarks).
// Run with `weir run --manual-clock <ms>`, the hours pass only when `weir advance-clock` (or a scenario's
// `advanceClock` step) moves them. Used by scenarios/processing-time-windows.scenario.yaml.
import * as t from "io-ts";
import { defineJob, Sinks, Sources, TumblingProcessingTimeWindows } from "weir";

export const Order = t.type({ customer: t.string, amount: t.number }, "Order");
export type Order = t.TypeOf<typeof Order>;
export interface HourTotal { customer: string; start: number; end: number; orders: number; total: number }

const HOUR_MS = 3_600_000;

export default defineJob({ name: "scenario-hourly-totals", parallelism: 2 }, (env) => {
  env
    .fromSource(Sources.jetstream({ stream: "ORDERS", subjects: ["orders.>"], codec: Order }), { name: "orders" })
    .keyBy((o) => o.customer)
    .window(TumblingProcessingTimeWindows.of(HOUR_MS))
    .process<HourTotal>({
      process(customer, { window }, orders, out) {
        out.collect({ customer, start: window.start, end: window.end, orders: orders.length, total: orders.reduce((s, o) => s + o.amount, 0) });
      },
    }, { name: "hourly" })
    .sinkTo(Sinks.jetstream({ stream: "HOURLY", subject: (h: HourTotal) => `hourly.${h.customer}` }), { name: "hourly sink" });
});

// Scenario job: running order totals per user from JSON orders checked by an io-ts codec. Malformed JSON
// and orders that fail the codec go to the job's dead letters (weir.scenario-orders.dlq) with the reason;
// the good ones flow on. The source is bounded: the job ends when it has read what the stream held.
// Used by scenarios/dead-letters.scenario.yaml.
import * as t from "io-ts";
import { defineJob, Sinks, Sources } from "weir";

export const Order = t.type({ user: t.string, amount: t.number }, "Order");
export type Order = t.TypeOf<typeof Order>;

// mode "streaming": a running total per order (a bounded job without checkpoints would otherwise run in
// batch mode and emit each user's final total only).
export default defineJob({ name: "scenario-orders", parallelism: 2, mode: "streaming" }, (env) => {
  env
    .fromSource(Sources.jetstream({ stream: "ORDERS", subjects: ["orders.eu", "orders.us"], codec: Order, bounded: true }), { name: "orders" })
    .keyBy((o) => o.user)
    .reduce((a, b) => ({ user: a.user, amount: a.amount + b.amount }), { name: "totals" })
    .sinkTo(Sinks.jetstream({ stream: "TOTALS", subject: (o: Order) => `totals.${o.user}` }), { name: "totals sink" });
});

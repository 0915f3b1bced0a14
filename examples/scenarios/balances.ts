// Scenario job: account balances bootstrapped from a file of history, then kept up to date from live
// JetStream records (Sources.hybrid: the file is read first, in backlog, then the stream). One running
// balance per account in keyed state. Used by scenarios/hybrid-bootstrap.scenario.yaml and
// scenarios/sort-during-backlog.scenario.yaml.
import { fileURLToPath } from "node:url";
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState } from "weir";

export const Payment = t.type({ account: t.string, amount: t.number }, "Payment");
export type Payment = t.TypeOf<typeof Payment>;
export interface Balance { account: string; balance: number; payments: number }

const HISTORY = fileURLToPath(new URL("./data/payments-history.jsonl", import.meta.url));
const balance = valueState("balance", t.type({ balance: t.number, payments: t.number }));

export default defineJob({ name: "scenario-balances", parallelism: 2 }, (env) => {
  env
    .fromSource(Sources.hybrid(
      Sources.file(HISTORY, { format: "jsonl", codec: Payment }),
      Sources.jetstream({ stream: "PAYMENTS", subjects: ["payments.>"], codec: Payment }),
    ), { name: "payments" })
    .keyBy((p) => p.account)
    .process<Balance>({
      async processElement(p, ctx) {
        const b = (await ctx.state(balance).value()) ?? { balance: 0, payments: 0 };
        const next = { balance: b.balance + p.amount, payments: b.payments + 1 };
        await ctx.state(balance).update(next);
        ctx.collect({ account: ctx.key, ...next });
      },
    }, { name: "balance" })
    .sinkTo(Sinks.jetstream({ stream: "BALANCES", subject: (b: Balance) => `balances.${b.account}` }), { name: "balances" });
});

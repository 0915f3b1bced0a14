// The tests' keyed count: a count per key in value state, each new count out as { key, n }. A key's
// counts must come out as 1..n exactly once however the job was restarted, rescaled or disconnected.
import * as t from "io-ts";
import { valueState, type KeyedProcessFunction } from "../../mod.ts";

export interface KeyCount { key: string; n: number }

const count = valueState("count", t.number);

export const countPerKey: KeyedProcessFunction<string, { key: string }, KeyCount> = {
  async processElement(e, ctx) {
    const n = ((await ctx.state(count).value()) ?? 0) + 1;
    await ctx.state(count).update(n);
    ctx.collect({ key: e.key, n });
  },
};

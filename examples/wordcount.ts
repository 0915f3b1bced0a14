// The job from API.md: lines from a JetStream stream, split into words, a count per word in keyed
// state, each new count published to COUNTS. Run it with: npx weir run examples/wordcount.ts
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState } from "weir";

const count = valueState("count", t.number);

export default defineJob({ name: "wordcount", parallelism: 2, checkpointIntervalMs: 1000 }, (env) => {
  env
    .fromSource(Sources.jetstream({ stream: "WORDS", subjects: ["words.>"], format: "text" }), { name: "lines" })
    .flatMap((line: string) => line.split(/\s+/).filter(Boolean))
    .keyBy((word) => word)
    .process({
      async processElement(word, ctx) {
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        ctx.collect({ word, n });
      },
    }, { name: "count" })
    .sinkTo(Sinks.jetstream({ stream: "COUNTS", subject: (o) => `counts.${o.word}` }));
});

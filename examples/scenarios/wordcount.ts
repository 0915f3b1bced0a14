// Scenario job: keyed word count. Lines of text from two JetStream subjects (one per source subtask at
// parallelism 2), split into words, a count per word in keyed state, each new count to COUNTS.
// No checkpoints of its own: the scenarios that need them set checkpointIntervalMs in their options. Used by
// scenarios/wordcount, subtask-failure, subtask-restart, crash-recovery and workers (.scenario.yaml).
import * as t from "io-ts";
import { defineJob, Sinks, Sources, valueState } from "weir";

const count = valueState("count", t.number);

export interface WordCount { word: string; n: number }

export default defineJob({ name: "scenario-wordcount", parallelism: 2 }, (env) => {
  env
    .fromSource(Sources.jetstream({ stream: "WORDS", subjects: ["words.left", "words.right"], format: "text" }), { name: "lines" })
    .flatMap((line: string) => line.toLowerCase().split(/[^a-z0-9]+/), { name: "split" })
    .filter((word) => word.length > 0, { name: "non-empty" })
    .keyBy((word) => word)
    .process<WordCount>({
      async processElement(word, ctx) {
        const n = ((await ctx.state(count).value()) ?? 0) + 1;
        await ctx.state(count).update(n);
        ctx.collect({ word, n });
      },
    }, { name: "count" })
    .sinkTo(Sinks.jetstream({ stream: "COUNTS", subject: (o: WordCount) => `counts.${o.word}` }), { name: "counts" });
});

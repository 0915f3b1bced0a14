// Sinks.print(): one line per record on stdout, prefixed with the subtask like Flink's "2> ".

import type { SinkDef } from "../api/connectors.ts";

export function printSink<T>(options: { prefix?: string } = {}): SinkDef<T> {
  return {
    kind: "print",
    async createWriter(ctx) {
      const prefix = `${options.prefix ?? ""}${ctx.parallelism > 1 ? `${ctx.subtaskIndex + 1}> ` : ""}`;
      return {
        write(value) {
          process.stdout.write(`${prefix}${typeof value === "string" ? value : JSON.stringify(value)}\n`);
        },
        async flush() {},
        async close() {},
      };
    },
  };
}

// Sinks.print(): one line per record on stdout, prefixed with the subtask like Flink's "2> ". A bytes
// record prints as Node shows it (`Uint8Array(3) [ 1, 2, 3 ]`, the first 100 bytes), not as JSON.

import { inspect } from "node:util";
import * as t from "io-ts";
import type { SinkDef } from "../contracts/connectors.ts";
import { decodeOptions } from "../core/validation.ts";
import { rejectRecord, unencodable } from "./payload.ts";

const Options = t.exact(t.partial({ prefix: t.string }));

export function printSink<T>(options: { prefix?: string } = {}): SinkDef<T> {
  decodeOptions(Options, options, "Sinks.print", "Sinks.print options");
  return {
    kind: "print",
    settings: options,
    async createWriter(ctx) {
      const prefix = `${options.prefix ?? ""}${ctx.parallelism > 1 ? `${ctx.subtaskIndex + 1}> ` : ""}`;
      return {
        write(value) {
          let text: string;
          try {
            text = typeof value === "string" ? value : value instanceof Uint8Array ? inspect(value, { breakLength: Infinity, compact: true }) : String(JSON.stringify(value));
          } catch (e) {
            rejectRecord(ctx, value, unencodable(e));
            return;
          }
          process.stdout.write(`${prefix}${text}\n`);
        },
        async flush() {},
        async close() {},
      };
    },
  };
}

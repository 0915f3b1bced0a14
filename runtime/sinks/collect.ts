// The sink behind executeAndCollect: records into an array in this process; at `limit` it asks the job
// to stop (so unbounded sources can be collected too).

import type { SinkDef } from "../contracts/connectors.ts";

export function collectSink<T>(into: T[], limit: number | undefined, onLimit: () => void): SinkDef<T> {
  let signalled = false;
  return {
    kind: "collect",
    defaultParallelism: 1,
    async createWriter() {
      return {
        write(value) {
          if (limit !== undefined && into.length >= limit) return;
          into.push(value);
          if (limit !== undefined && into.length >= limit && !signalled) {
            signalled = true;
            onLimit();
          }
        },
        async flush() {},
        async close() {},
      };
    },
  };
}

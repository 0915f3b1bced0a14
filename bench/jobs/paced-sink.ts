// A sink that takes `rate` records per second overall (a write waits for its slot): the slow consumer of
// the backpressure bench and test.
import type { SinkDef } from "../../mod.ts";

/** Paced from the first record: no burst to catch up on the time the job took to start. */
export function pacedSink(rate: number, delivered: { n: number }): SinkDef<unknown> {
  return {
    kind: "paced",
    createWriter: async () => {
      let started: number | undefined;
      return {
        write: () => {
          started ??= performance.now();
          const due = started + (++delivered.n * 1000) / rate;
          const wait = due - performance.now();
          if (wait > 1) return new Promise<void>((r) => setTimeout(r, wait));
        },
        flush: async () => {},
        close: async () => {},
      };
    },
  };
}

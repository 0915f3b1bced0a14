// The output of a chain toward one downstream vertex: routes each record to a channel by the edge's
// partitioning (keyBy: Flink's key-group formula; rebalance: round robin; forward: same index) and
// broadcasts watermarks, watermark status, RecordAttributes, barriers and end-of-input to all channels.

import type { JobEdge } from "../../runtime/graph/job-graph.ts";
import { operatorIndexForKey } from "../../state/key-groups.ts";
import { UserFunctionError } from "../../runtime/core/errors.ts";
import { keyProblem } from "../../runtime/core/json-data.ts";
import type { ChannelWriter } from "../../runtime/transport/channel-writer.ts";
import { FrameKind, type CheckpointBarrier, type RecordAttributes } from "../../runtime/transport/frames.ts";
import type { Output } from "../../runtime/contracts/operators.ts";

export class NetworkOutput implements Output {
  private next = 0;
  /** The last watermark sent downstream (per watermark, not per record): the output watermark in /metrics. */
  lastWatermark: number | undefined;
  private readonly route: (value: unknown, ts: number | undefined) => void;

  constructor(
    readonly edge: JobEdge,
    /** Writers indexed by target subtask; forward edges have exactly one. */
    readonly writers: readonly ChannelWriter[],
    producer: { name: string; index: number },
    maxParallelism: number,
  ) {
    const p = edge.partitioning;
    const n = writers.length;
    this.next = producer.index % n;
    if (p.type === "hash") {
      const selector = p.selector;
      this.route = (value, ts) => {
        let key: unknown;
        try { key = selector(value); } catch (e) { throw new UserFunctionError(`${producer.name} (keyBy)`, producer.index, undefined, e); }
        // As Flink refuses a null key: a key JSON cannot hold (undefined, a Date, NaN) would be shared by every such record.
        const problem = keyProblem(key);
        if (problem !== undefined) throw new UserFunctionError(`${producer.name} (keyBy)`, producer.index, undefined, new TypeError(problem));
        writers[operatorIndexForKey(key, maxParallelism, n)]!.add(value, ts);
      };
    } else if (p.type === "rebalance") {
      this.route = (value, ts) => {
        writers[this.next]!.add(value, ts);
        if (++this.next === n) this.next = 0;
      };
    } else if (p.type === "broadcast") {
      this.route = (value, ts) => { for (const w of writers) w.add(value, ts); };
    } else {
      const w = writers[0]!;
      this.route = (value, ts) => w.add(value, ts);
    }
  }

  /** Records this output takes now without waiting for credit: partitioned ones spread, copies go to all. */
  sendableRecords(): number {
    const type = this.edge.partitioning.type;
    let sum = 0;
    let min = Number.POSITIVE_INFINITY;
    for (const w of this.writers) {
      const n = w.sendableRecords;
      sum += n;
      if (n < min) min = n;
    }
    return type === "hash" || type === "rebalance" ? sum : min;
  }

  collect(value: unknown, ts: number | undefined): void { this.route(value, ts); }
  side(): void { /* side outputs are routed by the chain, never to a network output directly */ }
  emitWatermark(w: number): void {
    this.lastWatermark = w;
    for (const x of this.writers) x.control({ k: FrameKind.Watermark, w });
  }
  emitIdle(idle: boolean): void { for (const x of this.writers) x.control({ k: FrameKind.Status, idle }); }
  emitAttributes(a: RecordAttributes): void { for (const x of this.writers) x.control({ k: FrameKind.Attributes, backlog: a.isBacklog }); }
  emitBarrier(b: CheckpointBarrier): void { for (const x of this.writers) x.control({ k: FrameKind.Barrier, b }); }
  emitEndOfInput(): void { for (const x of this.writers) x.control({ k: FrameKind.EndOfInput }); }
}

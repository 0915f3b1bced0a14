// The run loop of a source subtask: polls its reader in batches and pushes them into the chain; mail
// (checkpoint triggers and notifications) runs between batches. It ends when the reader ends (bounded
// input: the final MAX watermark fires every event-time timer and window), on a graceful stop (without
// that watermark) or when the subtask ended.

import type { SourceReader } from "../../runtime/contracts/connectors.ts";
import { MAX_WATERMARK } from "../../runtime/transport/frames.ts";
import { emitAttributes } from "./attributes.ts";
import { flushNow, maybeFlush, sourcePollLimit } from "./pacing.ts";
import type { SubtaskParts } from "./parts.ts";
import { LoopWait, waitingOn } from "./wait-report.ts";

export async function runSource(parts: SubtaskParts, reader: SourceReader<unknown>): Promise<void> {
  const { gate, outputs, lifecycle, counters, debloater } = parts;
  const out = parts.chain.headOutput;
  // A watermark per split, when the source reads several and its watermarks are fromSource's (none: idle).
  const bySplit = reader.splits ? out.forSplits?.(reader.splits) : undefined;
  // Said once: a live source whose lag grows again reports backlog at every poll (the demo logged it
  // hundreds of times a second).
  let backlogIgnored = false;
  for (;;) {
    for (let m = gate.poll(); m; m = gate.poll()) {
      if (m.type === "mail") { const p = m.action(); if (p) await waitingOn(parts.wait, LoopWait.Mail, p); }
    }
    if (lifecycle.sourceShouldEnd) return;
    if (outputs.isBlocked()) { await waitingOn(parts.wait, LoopWait.Credit, outputs.waitUnblocked(() => lifecycle.isTerminal)); continue; }
    const attrs = reader.takeAttributes?.();
    if (attrs) {
      if (!lifecycle.wentLive) {
        await emitAttributes(lifecycle, out, attrs);
      } else if (attrs.isBacklog && !backlogIgnored) {
        // As in Flink: once live, a source does not go back to backlog processing (nor says "live" again
        // downstream: a control frame to every channel each time its lag crossed the line).
        parts.log(`source ${parts.id} reported backlog again after going live: its records keep streaming (only the backlog a job starts with is sorted); said once`);
        backlogIgnored = true;
      }
    }
    const polledAt = performance.now();
    const batch = await waitingOn(parts.wait, LoopWait.Poll, reader.pollNext(debloater ? sourcePollLimit(parts, debloater) : undefined));
    if (batch === null) {
      const p = out.emitWatermark(MAX_WATERMARK);
      if (p) await p;
      counters.currentWatermark = MAX_WATERMARK;
      return;
    }
    const { values, timestamps, splits } = batch;
    if (values.length === 0) {
      counters.idleMs += performance.now() - polledAt;
      flushNow(parts);
      continue;
    }
    counters.recordsIn += values.length;
    if (bySplit !== undefined && splits !== undefined) {
      for (let i = 0; i < values.length; i++) {
        const p = bySplit(values[i], timestamps?.[i], splits[i]!);
        if (p) await p;
      }
    } else {
      for (let i = 0; i < values.length; i++) {
        const p = out.collect(values[i], timestamps?.[i]);
        if (p) await p;
      }
    }
    maybeFlush(parts);
  }
}

// The run loop of a source subtask: polls its reader in batches and pushes them into the chain; mail
// (checkpoint triggers and notifications) runs between batches. It ends when the reader ends (bounded
// input: the final MAX watermark fires every event-time timer and window), on a graceful stop (without
// that watermark) or when the subtask ended.

import type { SourceBatch, SourceReader } from "../../runtime/contracts/connectors.ts";
import { MAX_WATERMARK } from "../../runtime/transport/frames.ts";
import { emitAttributes } from "./attributes.ts";
import { flushNow, maybeFlush, sourcePollLimit } from "./pacing.ts";
import type { SubtaskParts } from "./parts.ts";
import { LoopWait, waitingOn } from "./wait-report.ts";

/**
 * How long a poll may wait for records once the one before found none, when the reader can be
 * interrupted: mail (a barrier to inject, a timer, a stop) signals the gate, which cuts the wait short, so
 * nothing waits on it; an idle source then wakes its process about once a second instead of 20 times.
 */
export const IDLE_POLL_WAIT_MS = 1000;

/** `named`: the reader's own error (its pollNext threw or rejected) as one naming the source operator and subtask. */
export async function runSource(parts: SubtaskParts, reader: SourceReader<unknown>, named: (e: unknown) => Error): Promise<void> {
  const interrupt = reader.interrupt?.bind(reader);
  parts.gate.onSignal(interrupt);
  try {
    await sourceLoop(parts, reader, interrupt !== undefined, named);
  } finally {
    parts.gate.onSignal(undefined);
  }
}

async function sourceLoop(parts: SubtaskParts, reader: SourceReader<unknown>, interruptible: boolean, named: (e: unknown) => Error): Promise<void> {
  const { gate, outputs, lifecycle, counters, debloater } = parts;
  const out = parts.chain.headOutput;
  // A watermark per split, when the source reads several and its watermarks are fromSource's (none: idle).
  let bySplit = reader.splits ? out.forSplits?.(reader.splits) : undefined;
  let splitsGeneration = reader.splits?.generation;
  // Said once: a live source whose lag grows again reports backlog at every poll (the demo logged it
  // hundreds of times a second).
  let backlogIgnored = false;
  let idle = false;
  for (;;) {
    for (let m = gate.poll(); m; m = gate.poll()) {
      if (m.type === "mail") { const p = m.action(); if (p) await waitingOn(parts.wait, LoopWait.Mail, p); }
    }
    if (lifecycle.sourceShouldEnd) return;
    if (outputs.isBlocked()) { await waitingOn(parts.wait, LoopWait.Credit, outputs.waitUnblocked(() => lifecycle.isTerminal)); continue; }
    const attrs = reader.takeAttributes?.();
    if (attrs) {
      parts.activity.mark();
      if (!lifecycle.wentLive) {
        await emitAttributes(lifecycle, out, attrs);
      } else if (attrs.isBacklog && !backlogIgnored) {
        // As in Flink: once live, a source does not go back to backlog processing (nor says "live" again
        // downstream: a control frame to every channel each time its lag crossed the line).
        parts.log(`source ${parts.id} reported backlog again after going live: its records keep streaming (only the backlog a job starts with is sorted); said once`);
        backlogIgnored = true;
      }
    }
    // Mail that came meanwhile goes first (a long wait would not be interrupted by it: it signalled already).
    if (gate.hasMail) continue;
    const waitLong: boolean = idle && interruptible;
    const polledAt = performance.now();
    let polled: Promise<SourceBatch<unknown> | null>;
    try { polled = reader.pollNext(debloater ? sourcePollLimit(parts, debloater) : undefined, waitLong ? IDLE_POLL_WAIT_MS : undefined); } catch (e) { throw named(e); }
    const batch: SourceBatch<unknown> | null = await waitingOn(parts.wait, waitLong ? LoopWait.IdlePoll : LoopWait.Poll, polled.catch((e: unknown) => { throw named(e); }));
    if (batch === null) {
      parts.activity.mark();
      const p = out.emitWatermark(MAX_WATERMARK);
      if (p) await p;
      counters.currentWatermark = MAX_WATERMARK;
      return;
    }
    const { values, timestamps, splits } = batch;
    // A hybrid source's next part reads other splits: a subtask given none there (more subtasks than
    // subjects) must go idle, not hold every window back with the one split its earlier part had.
    if (reader.splits !== undefined && reader.splits.generation !== splitsGeneration) {
      splitsGeneration = reader.splits.generation;
      bySplit = out.forSplits?.(reader.splits);
    }
    // A long wait counts as idle while it lasts (status.ts), so all of it counts once it ends.
    if (values.length === 0 || waitLong) counters.idleMs += performance.now() - polledAt;
    idle = batch.values.length === 0;
    if (idle) {
      flushNow(parts);
      continue;
    }
    counters.recordsIn += values.length;
    if (!parts.activity.active) parts.activity.mark();
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

// The run loop of a subtask that reads input channels: frames from the input gate go to the head
// operator (records by plain function calls, never through the lifecycle actor), watermarks and
// attributes through their valves, barriers to the checkpointer; mail (checkpoint notifications,
// operator callbacks) runs between frames.

import type { MaybePromise, StreamOperator } from "../../runtime/contracts/operators.ts";
import { FrameKind, type Frame } from "../../runtime/transport/frames.ts";
import type { InputChannelSpec } from "../../runtime/transport/input-gate.ts";
import { emitAttributes } from "./attributes.ts";
import { FLUSH_INTERVAL_MS } from "./outputs.ts";
import { flushNow, maybeFlush } from "./pacing.ts";
import type { SubtaskParts } from "./parts.ts";
import { LoopWait, waitingOn } from "./wait-report.ts";

/** Runs until every input channel ended (resolves) or the subtask ended (resolves early). */
export async function runInput(parts: SubtaskParts): Promise<void> {
  const { gate, outputs, lifecycle, counters } = parts;
  const head = parts.chain.operators[0]!.operator;
  const channels = gate.channels;
  let ended = 0;
  while (!lifecycle.isTerminal) {
    if (outputs.isBlocked()) await waitingOn(parts.wait, LoopWait.Credit, outputs.waitUnblocked(() => lifecycle.isTerminal));
    const item = gate.poll();
    if (item === undefined) {
      head.onInputIdle?.();
      flushNow(parts);
      // Async records still running emit later: wake up to flush what they produce.
      const idleFrom = performance.now();
      await waitingOn(parts.wait, LoopWait.Input, gate.waitForInput((head.pendingWork?.() ?? 0) > 0 ? FLUSH_INTERVAL_MS : undefined));
      counters.idleMs += performance.now() - idleFrom;
      continue;
    }
    if (item.type === "mail") {
      const p = item.action();
      if (p) await waitingOn(parts.wait, LoopWait.Mail, p);
      continue;
    }
    const spec = channels[item.channel]!;
    if (item.frame.k === "e") ended++;
    // Anything but a barrier is activity (activity.ts): once per frame, not per record.
    if (!parts.activity.active && item.frame.k !== FrameKind.Barrier) parts.activity.mark();
    const p = handleFrame(parts, head, spec, item.channel, item.frame);
    if (p) await waitingOn(parts.wait, LoopWait.Frame, p);
    gate.ack(item.channel);
    if (ended === channels.length) return;
    maybeFlush(parts);
  }
}

function handleFrame(parts: SubtaskParts, head: StreamOperator, spec: InputChannelSpec, channel: number, frame: Frame): MaybePromise {
  const input = spec.inputIndex;
  switch (frame.k) {
    case FrameKind.Records: {
      const { v, t } = frame;
      parts.counters.recordsIn += v.length;
      for (let i = 0; i < v.length; i++) {
        const p = head.processElement(v[i], t ? (t[i] ?? undefined) : undefined, input);
        if (p) return continueRecords(head, input, v, t, i + 1, p);
      }
      return;
    }
    case FrameKind.Watermark: return deliverWatermark(parts, parts.inputs.watermark(input, spec.indexInInput, frame.w));
    case FrameKind.Status: return deliverWatermark(parts, parts.inputs.status(input, spec.indexInInput, frame.idle));
    case FrameKind.Attributes: {
      const changed = parts.attributes.input(input, spec.indexInInput, frame.backlog);
      if (changed !== undefined) return emitAttributes(parts.lifecycle, parts.chain.headOutput, { isBacklog: changed });
      return;
    }
    case FrameKind.Barrier:
      return parts.checkpointer.onBarrier(channel, frame.b);
    case FrameKind.EndOfInput: {
      const attrs = parts.attributes.ended(input, spec.indexInInput);
      const w = deliverWatermark(parts, parts.inputs.ended(input, spec.indexInInput));
      const a = (): MaybePromise => (attrs === undefined ? undefined : emitAttributes(parts.lifecycle, parts.chain.headOutput, { isBacklog: attrs }));
      // An ended channel no longer owes barriers: it may complete an alignment.
      const c = (): MaybePromise => parts.checkpointer.onEndOfInput(channel);
      return andThen(andThen(w, a), c);
    }
  }
}

async function continueRecords(head: StreamOperator, input: number, v: unknown[], t: Array<number | null> | undefined, from: number, first: Promise<void>): Promise<void> {
  await first;
  for (let i = from; i < v.length; i++) {
    const p = head.processElement(v[i], t ? (t[i] ?? undefined) : undefined, input);
    if (p) await p;
  }
}

function deliverWatermark(parts: SubtaskParts, change: { watermark?: number; idle?: boolean }): MaybePromise {
  const out = parts.chain.headOutput;
  let p: MaybePromise = undefined;
  // Going idle, the watermark goes first (downstream ignores watermarks of an idle channel); going active, after.
  if (change.idle === false) p = out.emitIdle(false);
  if (change.watermark !== undefined) {
    const w = change.watermark;
    parts.counters.currentWatermark = w;
    p = p ? p.then(() => out.emitWatermark(w)) : out.emitWatermark(w);
  }
  if (change.idle === true) p = p ? p.then(() => out.emitIdle(true)) : out.emitIdle(true);
  return p;
}

function andThen(first: MaybePromise, next: () => MaybePromise): MaybePromise {
  return first ? first.then(next) : next();
}

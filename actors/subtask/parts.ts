// What a subtask's run loops work with: its input gate, operator chain, outputs, checkpointer and
// lifecycle, plus the counters they keep. Built by actors/subtask/subtask.ts; the loops only use them.

import type { SubtaskActivity } from "./activity.ts";
import type { SubtaskCheckpointer } from "./checkpointer.ts";
import type { InputsAttributes } from "../../runtime/transport/attributes-valve.ts";
import type { BufferDebloater } from "../../runtime/transport/buffer-debloater.ts";
import type { InputGate } from "../../runtime/transport/input-gate.ts";
import type { InputsWatermark } from "../../runtime/transport/watermark-valve.ts";
import type { OperatorChain } from "./chain.ts";
import type { SubtaskLifecycle } from "./lifecycle.ts";
import type { SubtaskOutputs } from "./outputs.ts";
import type { LogFn } from "../../runtime/core/log.ts";

/** Counters of the record path: plain fields, updated per frame or batch. */
export interface SubtaskCounters {
  recordsIn: number;
  /** Time spent waiting for input (a source: polls that found nothing), for the debloater's throughput. */
  idleMs: number;
  currentWatermark: number;
  /** The busy time status last reported: it never goes back (a Prometheus counter). */
  busyReportedMs: number;
}

/** What the run loop waits on now (a LoopWait of wait-report.ts; undefined: running), and since when (performance.now()). */
export interface LoopWaitState { waitingOn: string | undefined; waitingSince: number }

export interface SubtaskParts {
  readonly id: string;
  readonly gate: InputGate;
  readonly chain: OperatorChain;
  readonly outputs: SubtaskOutputs;
  readonly checkpointer: SubtaskCheckpointer;
  readonly lifecycle: SubtaskLifecycle;
  readonly inputs: InputsWatermark;
  readonly attributes: InputsAttributes;
  readonly debloater: BufferDebloater | undefined;
  readonly counters: SubtaskCounters;
  /** Whether anything happened since the last snapshot (activity.ts): marked per frame or batch. */
  readonly activity: SubtaskActivity;
  /** What the run loop waits on now (wait-report.ts). */
  readonly wait: LoopWaitState;
  readonly log: LogFn;
}

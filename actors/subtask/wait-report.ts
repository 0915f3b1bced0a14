// What a subtask's run loop is waiting on, for the line a checkpoint timeout logs about each subtask that
// did not acknowledge: a barrier stuck behind frames without credit, a mail action or a record's state
// requests that never finish, an input channel whose frames stopped. Set at the loops' awaits (per frame
// or batch, never per record) and read only when a checkpoint timed out.

import type { LoopWaitState, SubtaskParts } from "./parts.ts";

export const LoopWait = {
  Credit: "credit for its output frames",
  Mail: "a mail action (checkpoint trigger or notification, timer, callback)",
  Frame: "a frame to be processed (its records' user functions and state requests, or a barrier waiting for them)",
  Input: "input",
  Poll: "its source reader",
  /** A source reader's wait for records after a poll that found none (counted as idle while it lasts). */
  IdlePoll: "its source reader (idle)",
} as const;
export type LoopWait = (typeof LoopWait)[keyof typeof LoopWait];

/** Awaits `p` as `what`: recorded for the report while it lasts. */
export async function waitingOn<T>(state: LoopWaitState, what: LoopWait, p: Promise<T>): Promise<T> {
  state.waitingOn = what;
  state.waitingSince = performance.now();
  try {
    return await p;
  } finally {
    state.waitingOn = undefined;
  }
}

/** One line: the loop's wait, its output channels that wait for credit, its input channels. */
export function describeWait(parts: SubtaskParts, state: LoopWaitState): string {
  const wait = state.waitingOn === undefined ? "running" : `waiting ${Math.round(performance.now() - state.waitingSince)} ms for ${state.waitingOn}`;
  const stuck = parts.outputs.writers.filter((w) => w.backlog > 0).map((w) => w.describe());
  const pending = parts.chain.operators.reduce((n, { operator }) => n + (operator.pendingWork?.() ?? 0), 0);
  const inputs = parts.gate.describe();
  return [
    wait,
    pending > 0 ? `${pending} records in flight` : "",
    stuck.length > 0 ? `output without credit: ${stuck.slice(0, 4).join("; ")}${stuck.length > 4 ? ` and ${stuck.length - 4} more` : ""}` : "",
    inputs ? `input: ${inputs}` : "",
  ].filter((s) => s !== "").join(", ");
}

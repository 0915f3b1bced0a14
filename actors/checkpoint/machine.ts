// The checkpoint coordinator's logic: one checkpoint in flight at a time.
//
//   idle ──TRIGGER──▶ pending ──ACK (last one)──▶ committing ──commit done──▶ idle
//   pending ──DECLINE | after(timeout)──▶ idle (aborted; a timeout beyond `tolerableTimeouts` in a row
//                                       also reports them: the job restarts from its last checkpoint)
//   committing ──commit error──▶ idle (aborted)
//   idle | pending ──STOP──▶ stopped
//   idle ──ABANDON──▶ idle (aborted before its barriers: while its id was reserved)
//
// Effects (inject barriers, notify subtasks) are provided by the runtime; the commit (writing the metadata)
// is an invoked promise actor, so its outcome comes back to this state and no other. The timeout runs on
// the actor's clock, so tests can drive it with a simulated one.

import { assign, fromPromise, setup } from "xstate";

export interface CheckpointMachineInput {
  readonly firstId: number;
  readonly timeoutMs: number;
  /** Checkpoint timeouts in a row that are tolerated; the next one is reported (reportTimeouts). */
  readonly tolerableTimeouts: number;
}

export interface CheckpointMachineContext extends CheckpointMachineInput {
  expectedAcks: number;
  nextId: number;
  pendingId?: number;
  kind: "checkpoint" | "savepoint";
  acks: number;
  completed: number;
  aborted: number;
  /** Timeouts since the last completed checkpoint. */
  timeoutsInARow: number;
  lastCompletedId?: number;
  lastFailure?: string;
}

export type CheckpointEvent =
  | { type: "TRIGGER"; kind: "checkpoint" | "savepoint"; expectedAcks: number }
  | { type: "ACK"; checkpointId: number }
  | { type: "DECLINE"; checkpointId: number; reason: string }
  /** A trigger that ended before its barriers; `consumed`: its id was reserved, the next one takes another. */
  | { type: "ABANDON"; reason: string; consumed: boolean }
  | { type: "STOP" };

/** Why a commit failed, as one line (an Error's message, or the value). */
function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What every timeout does: subtasks learn of the abort, and it is counted (before any report). */
const TIMED_OUT = [
  { type: "notifyAborted", params: ({ context }: { context: CheckpointMachineContext }) => ({ checkpointId: context.pendingId!, reason: "timeout" }) },
  "countTimeout",
  { type: "markAborted", params: ({ context }: { context: CheckpointMachineContext }) => ({ reason: `checkpoint ${context.pendingId} timed out after ${context.timeoutMs} ms` }) },
] as const;

export const checkpointMachine = setup({
  types: {
    input: {} as CheckpointMachineInput,
    context: {} as CheckpointMachineContext,
    events: {} as CheckpointEvent,
  },
  actions: {
    injectBarriers: (_, _p: { checkpointId: number; kind: "checkpoint" | "savepoint" }) => {},
    notifyComplete: (_, _p: { checkpointId: number }) => {},
    notifyAborted: (_, _p: { checkpointId: number; reason: string }) => {},
    /** More timeouts in a row than tolerated: a stalled job (provided: it restarts the job). */
    reportTimeouts: (_, _p: { timeouts: number }) => {},
    /** Savepoints are not counted: a failed savepoint fails only itself (as in Flink). */
    countTimeout: assign({ timeoutsInARow: ({ context }) => context.timeoutsInARow + (context.kind === "checkpoint" ? 1 : 0) }),
    start: assign({
      pendingId: ({ context }) => context.nextId,
      nextId: ({ context }) => context.nextId + 1,
      kind: ({ event }) => (event.type === "TRIGGER" ? event.kind : "checkpoint"),
      acks: () => 0,
      expectedAcks: ({ event, context }) => (event.type === "TRIGGER" ? event.expectedAcks : context.expectedAcks),
    }),
    countAck: assign({ acks: ({ context }) => context.acks + 1 }),
    markCompleted: assign({
      completed: ({ context }) => context.completed + 1,
      timeoutsInARow: () => 0,
      lastCompletedId: ({ context }) => context.pendingId,
      pendingId: () => undefined,
    }),
    abandon: assign({
      aborted: ({ context }) => context.aborted + 1,
      lastFailure: ({ context, event }) => (event.type === "ABANDON" ? event.reason : context.lastFailure),
      nextId: ({ context, event }) => context.nextId + (event.type === "ABANDON" && event.consumed ? 1 : 0),
    }),
    markAborted: assign({
      aborted: ({ context }) => context.aborted + 1,
      lastFailure: (_, p: { reason: string }) => p.reason,
      pendingId: () => undefined,
    }),
  },
  actors: {
    /** Writes the checkpoint's metadata; provided by the coordinator (a failure aborts the checkpoint). */
    commit: fromPromise<void, { checkpointId: number }>(async () => { throw new Error("no commit provided"); }),
  },
  guards: {
    isPending: ({ context, event }) => "checkpointId" in event && event.checkpointId === context.pendingId,
    lastAck: ({ context, event }) => "checkpointId" in event && event.checkpointId === context.pendingId && context.acks + 1 >= context.expectedAcks,
    /** This timeout is one more in a row than tolerated. */
    intolerableTimeout: ({ context }) => context.kind === "checkpoint" && context.timeoutsInARow + 1 > context.tolerableTimeouts,
  },
  delays: {
    timeout: ({ context }) => context.timeoutMs,
  },
}).createMachine({
  id: "checkpoints",
  context: ({ input }) => ({ ...input, nextId: input.firstId, kind: "checkpoint", acks: 0, expectedAcks: 0, completed: 0, aborted: 0, timeoutsInARow: 0 }),
  initial: "idle",
  states: {
    idle: {
      on: {
        TRIGGER: {
          target: "pending",
          actions: ["start", { type: "injectBarriers", params: ({ context }) => ({ checkpointId: context.pendingId!, kind: context.kind }) }],
        },
        ABANDON: { actions: "abandon" },
        STOP: "stopped",
      },
    },
    pending: {
      after: {
        timeout: [
          { guard: "intolerableTimeout", target: "idle", actions: [...TIMED_OUT, { type: "reportTimeouts", params: ({ context }) => ({ timeouts: context.timeoutsInARow }) }] },
          { target: "idle", actions: TIMED_OUT },
        ],
      },
      on: {
        ACK: [
          { guard: "lastAck", target: "committing", actions: "countAck" },
          { guard: "isPending", actions: "countAck" },
        ],
        DECLINE: {
          guard: "isPending",
          target: "idle",
          actions: [
            { type: "notifyAborted", params: ({ context, event }) => ({ checkpointId: context.pendingId!, reason: event.reason }) },
            { type: "markAborted", params: ({ event }) => ({ reason: event.reason }) },
          ],
        },
        STOP: "stopped",
      },
    },
    committing: {
      invoke: {
        src: "commit",
        input: ({ context }) => ({ checkpointId: context.pendingId! }),
        onDone: {
          target: "idle",
          actions: [{ type: "notifyComplete", params: ({ context }) => ({ checkpointId: context.pendingId! }) }, "markCompleted"],
        },
        onError: {
          target: "idle",
          actions: [
            { type: "notifyAborted", params: ({ context, event }) => ({ checkpointId: context.pendingId!, reason: reasonOf(event.error) }) },
            { type: "markAborted", params: ({ event }) => ({ reason: reasonOf(event.error) }) },
          ],
        },
      },
    },
    stopped: { type: "final" },
  },
});

// The checkpoint coordinator's logic: one checkpoint in flight at a time.
//
//   idle ──TRIGGER──▶ pending ──ACK (last one)──▶ committing ──COMMITTED──▶ idle
//   pending ──DECLINE | after(timeout)──▶ idle (aborted)
//   committing ──COMMIT_FAILED──▶ idle (aborted)
//   idle | pending ──STOP──▶ stopped
//
// Effects (inject barriers, write the metadata, notify subtasks) are provided by the runtime; results come
// back as events. The timeout runs on the actor's clock, so tests can drive it with a simulated one.

import { assign, setup } from "xstate";

export interface CheckpointMachineInput {
  readonly firstId: number;
  readonly timeoutMs: number;
}

export interface CheckpointMachineContext extends CheckpointMachineInput {
  expectedAcks: number;
  nextId: number;
  pendingId?: number;
  kind: "checkpoint" | "savepoint";
  acks: number;
  completed: number;
  aborted: number;
  lastCompletedId?: number;
  lastFailure?: string;
}

export type CheckpointEvent =
  | { type: "TRIGGER"; kind: "checkpoint" | "savepoint"; expectedAcks: number }
  | { type: "ACK"; checkpointId: number }
  | { type: "DECLINE"; checkpointId: number; reason: string }
  | { type: "COMMITTED"; checkpointId: number }
  | { type: "COMMIT_FAILED"; checkpointId: number; reason: string }
  | { type: "STOP" };

export const checkpointMachine = setup({
  types: {
    input: {} as CheckpointMachineInput,
    context: {} as CheckpointMachineContext,
    events: {} as CheckpointEvent,
  },
  actions: {
    injectBarriers: (_, _p: { checkpointId: number; kind: "checkpoint" | "savepoint" }) => {},
    commit: (_, _p: { checkpointId: number }) => {},
    notifyComplete: (_, _p: { checkpointId: number }) => {},
    notifyAborted: (_, _p: { checkpointId: number; reason: string }) => {},
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
      lastCompletedId: ({ context }) => context.pendingId,
      pendingId: () => undefined,
    }),
    markAborted: assign({
      aborted: ({ context }) => context.aborted + 1,
      lastFailure: ({ event, context }) =>
        event.type === "DECLINE" || event.type === "COMMIT_FAILED" ? event.reason : `checkpoint ${context.pendingId} timed out after ${context.timeoutMs} ms`,
      pendingId: () => undefined,
    }),
  },
  guards: {
    isPending: ({ context, event }) => "checkpointId" in event && event.checkpointId === context.pendingId,
    lastAck: ({ context, event }) => "checkpointId" in event && event.checkpointId === context.pendingId && context.acks + 1 >= context.expectedAcks,
  },
  delays: {
    timeout: ({ context }) => context.timeoutMs,
  },
}).createMachine({
  id: "checkpoints",
  context: ({ input }) => ({ ...input, nextId: input.firstId, kind: "checkpoint", acks: 0, expectedAcks: 0, completed: 0, aborted: 0 }),
  initial: "idle",
  states: {
    idle: {
      on: {
        TRIGGER: {
          target: "pending",
          actions: ["start", { type: "injectBarriers", params: ({ context }) => ({ checkpointId: context.pendingId!, kind: context.kind }) }],
        },
        STOP: "stopped",
      },
    },
    pending: {
      after: {
        timeout: {
          target: "idle",
          actions: [{ type: "notifyAborted", params: ({ context }) => ({ checkpointId: context.pendingId!, reason: "timeout" }) }, "markAborted"],
        },
      },
      on: {
        ACK: [
          { guard: "lastAck", target: "committing", actions: ["countAck", { type: "commit", params: ({ context }) => ({ checkpointId: context.pendingId! }) }] },
          { guard: "isPending", actions: "countAck" },
        ],
        DECLINE: {
          guard: "isPending",
          target: "idle",
          actions: [{ type: "notifyAborted", params: ({ context, event }) => ({ checkpointId: context.pendingId!, reason: event.reason }) }, "markAborted"],
        },
        STOP: "stopped",
      },
    },
    committing: {
      on: {
        COMMITTED: {
          guard: "isPending",
          target: "idle",
          actions: [{ type: "notifyComplete", params: ({ context }) => ({ checkpointId: context.pendingId! }) }, "markCompleted"],
        },
        COMMIT_FAILED: {
          guard: "isPending",
          target: "idle",
          actions: [{ type: "notifyAborted", params: ({ context, event }) => ({ checkpointId: context.pendingId!, reason: event.reason }) }, "markAborted"],
        },
      },
    },
    stopped: { type: "final" },
  },
});

// The lifecycle of one operator subtask. Logic only: the subtask runtime performs the effects and reports
// their results as events; the named actions it provides (`.provide`) are how the machine asks for effects.
//
//   created ──DEPLOY──▶ restoring ──RESTORED──▶ running ──END_OF_INPUT──▶ finishing ──FINISHED──▶ finished
//   running = parallel { mode: backlog ⇄ sorting → streaming ; checkpoint: idle ⇄ aligning → snapshotting }
//   any non-final ──FAIL──▶ failed        any non-final ──CANCEL──▶ cancelled
//
// Records never pass through the machine: it changes state a handful of times per checkpoint or phase.

import { and, assign, setup } from "xstate";

export interface SubtaskMachineInput {
  readonly vertex: number;
  readonly index: number;
  readonly name: string;
  /** A keyed operator whose job takes no checkpoints during backlog sorts its backlog (FLIP-327). */
  readonly sortsDuringBacklog: boolean;
}

export interface SubtaskMachineContext extends SubtaskMachineInput {
  error?: string;
  lastCheckpoint?: number;
  pendingCheckpoint?: number;
}

export type SubtaskEvent =
  | { type: "DEPLOY" }
  | { type: "RESTORED" }
  | { type: "BACKLOG"; isBacklog: boolean }
  | { type: "SORT_DRAINED" }
  | { type: "BARRIER_RECEIVED"; checkpointId: number; aligned: boolean }
  | { type: "BARRIERS_ALIGNED"; checkpointId: number }
  | { type: "SNAPSHOT_DONE"; checkpointId: number }
  | { type: "CHECKPOINT_ABORTED"; checkpointId: number }
  | { type: "END_OF_INPUT" }
  | { type: "FINISHED" }
  | { type: "FAIL"; error: string }
  | { type: "CANCEL" };

export const subtaskMachine = setup({
  types: {
    input: {} as SubtaskMachineInput,
    context: {} as SubtaskMachineContext,
    events: {} as SubtaskEvent,
  },
  actions: {
    // Effects: provided by the subtask runtime.
    startSnapshot: (_, _params: { checkpointId: number }) => {},
    requestStop: () => {},
    recordError: assign({ error: ({ event }) => (event.type === "FAIL" ? event.error : undefined) }),
    rememberPending: assign({
      pendingCheckpoint: ({ event }) => ("checkpointId" in event ? event.checkpointId : undefined),
    }),
    completeCheckpoint: assign({
      lastCheckpoint: ({ event, context }) => (event.type === "SNAPSHOT_DONE" ? event.checkpointId : context.lastCheckpoint),
      pendingCheckpoint: () => undefined,
    }),
    clearPending: assign({ pendingCheckpoint: () => undefined }),
  },
  guards: {
    sortsDuringBacklog: ({ context }) => context.sortsDuringBacklog,
    isBacklog: ({ event }) => event.type === "BACKLOG" && event.isBacklog,
    isLive: ({ event }) => event.type === "BACKLOG" && !event.isBacklog,
    alignedAtOnce: ({ event }) => event.type === "BARRIER_RECEIVED" && event.aligned,
  },
}).createMachine({
  id: "subtask",
  context: ({ input }) => ({ ...input }),
  initial: "created",
  states: {
    created: {
      on: { DEPLOY: "restoring" },
    },
    restoring: {
      on: { RESTORED: "running" },
    },
    running: {
      type: "parallel",
      states: {
        mode: {
          initial: "streaming",
          states: {
            streaming: {
              on: { BACKLOG: { guard: "isBacklog", target: "backlog" } },
            },
            backlog: {
              on: {
                BACKLOG: [
                  { guard: and(["isLive", "sortsDuringBacklog"]), target: "sorting" },
                  { guard: "isLive", target: "streaming" },
                ],
              },
            },
            sorting: {
              // The keyed operator processes its sorted backlog; it reports SORT_DRAINED when done.
              on: { SORT_DRAINED: "streaming" },
            },
          },
        },
        checkpoint: {
          initial: "idle",
          states: {
            idle: {
              on: {
                BARRIER_RECEIVED: [
                  { guard: "alignedAtOnce", target: "snapshotting", actions: "rememberPending" },
                  { target: "aligning", actions: "rememberPending" },
                ],
              },
            },
            aligning: {
              on: {
                BARRIERS_ALIGNED: "snapshotting",
                CHECKPOINT_ABORTED: { target: "idle", actions: "clearPending" },
              },
            },
            snapshotting: {
              entry: { type: "startSnapshot", params: ({ context }) => ({ checkpointId: context.pendingCheckpoint ?? -1 }) },
              on: {
                SNAPSHOT_DONE: { target: "idle", actions: "completeCheckpoint" },
                CHECKPOINT_ABORTED: { target: "idle", actions: "clearPending" },
              },
            },
          },
        },
      },
      on: { END_OF_INPUT: "finishing" },
    },
    finishing: {
      on: {
        FINISHED: "finished",
        // A checkpoint may still complete while the last records drain.
        SNAPSHOT_DONE: { actions: "completeCheckpoint" },
      },
    },
    finished: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" },
  },
  on: {
    FAIL: { target: ".failed", actions: "recordError" },
    CANCEL: { target: ".cancelled", actions: "requestStop" },
  },
});

/** "running.streaming", "finishing", ...: what `weir status` shows. */
export function describeSubtaskState(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as { running?: { mode?: string; checkpoint?: string } };
  if (v.running) {
    const cp = v.running.checkpoint && v.running.checkpoint !== "idle" ? `+${v.running.checkpoint}` : "";
    return `running.${v.running.mode}${cp}`;
  }
  return JSON.stringify(value);
}

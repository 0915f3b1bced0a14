// The lifecycle of one operator subtask, and the only record of it: the subtask runtime
// (actors/subtask/subtask.ts) performs effects, reports their results as events and reads this machine's
// snapshot to decide what to do next; the named actions it provides (`.provide`) are the effects the
// machine asks for. Records never pass through the machine: it changes state a handful of times per
// checkpoint or phase. Every legal transition (tests/subtask-machine.test.ts covers each):
//
//   created ──DEPLOY──▶ restoring ──RESTORED──▶ running ──END_OF_INPUT──▶ finishing ──CLOSED──▶ finished
//
//   running = parallel { mode, checkpoint }
//     mode:  streaming ──BACKLOG(backlog; never live before)──▶ backlog
//            backlog ──BACKLOG(live)──▶ sorting (a keyed operator sorting its backlog) ──SORT_DRAINED──▶ streaming
//            backlog ──BACKLOG(live)──▶ streaming (otherwise)
//            BACKLOG(live) anywhere marks the subtask live: it never goes back to backlog (FLIP-327)
//
//   running and finishing each have the region
//     checkpoint: idle ──BARRIER_RECEIVED(aligned)──▶ snapshotting      idle ──BARRIER_RECEIVED──▶ aligning
//                 aligning ──BARRIERS_ALIGNED──▶ snapshotting            aligning ──CHECKPOINT_ABORTED──▶ idle
//                 aligning ──BARRIERS_ALIGNED(already taken)──▶ idle
//                 snapshotting.capturing (entry: startSnapshot) ──SNAPSHOT_CAPTURED──▶ snapshotting.persisting
//                 snapshotting ──SNAPSHOT_DONE(this one)──▶ idle          snapshotting ──CHECKPOINT_ABORTED(this one)──▶ idle
//                 snapshotting(.persisting) ──BARRIER_RECEIVED(newer)──▶ aligning | snapshotting
//                 SNAPSHOT_DONE of another checkpoint: remembered as the last completed, no transition
//                 a checkpoint is snapshotted once: a barrier for one already started is not snapshotted again
//
//   finishing = parallel { phase, checkpoint }
//     phase: endingInput ──OUTPUTS_ENDED──▶ draining ──DRAINED [checkpointing]──▶ awaitingFinalCheckpoint
//            draining ──DRAINED──▶ closing           awaitingFinalCheckpoint ──RELEASE──▶ closing
//            closing ──CLOSED──▶ finished
//
//   any non-final ──FAIL──▶ failed       any non-final ──CANCEL──▶ cancelled
//   (both discard the operators' buffered state, except from closing, which is closing them already)
//   STOP (graceful stop) in any non-final state: context.stopRequested, the source ends its input
//
// No transition is timed: a subtask waits for its final checkpoint as long as the job takes to complete
// it. The actor still runs on the job's injected clock, so a delay added here is simulated in tests.

import { and, assign, not, setup } from "xstate";

export interface SubtaskMachineInput {
  readonly vertex: number;
  readonly index: number;
  readonly name: string;
  /** A keyed operator whose job takes no checkpoints during backlog sorts its backlog (FLIP-327). */
  readonly sortsDuringBacklog: boolean;
  /** Checkpoints are on: a subtask whose input ended waits for a checkpoint holding its final state (FLIP-147). */
  readonly checkpointing: boolean;
}

export interface SubtaskMachineContext extends SubtaskMachineInput {
  error?: string;
  /** The newest checkpoint this subtask acknowledged. */
  lastCheckpoint?: number;
  /** The checkpoint being aligned or snapshotted. */
  pendingCheckpoint?: number | undefined;
  /** The newest checkpoint whose snapshot was started: each is taken once, however asked. */
  lastStarted: number;
  /** The subtask's input left backlog once: it does not go back (as in Flink). */
  wentLive: boolean;
  /** Graceful stop: a source ends its input as if it were bounded. */
  stopRequested: boolean;
}

export type SubtaskEvent =
  | { type: "DEPLOY" }
  | { type: "RESTORED" }
  | { type: "BACKLOG"; isBacklog: boolean }
  | { type: "SORT_DRAINED" }
  | { type: "BARRIER_RECEIVED"; checkpointId: number; aligned: boolean }
  | { type: "BARRIERS_ALIGNED"; checkpointId: number }
  | { type: "SNAPSHOT_CAPTURED"; checkpointId: number }
  | { type: "SNAPSHOT_DONE"; checkpointId: number }
  | { type: "CHECKPOINT_ABORTED"; checkpointId: number }
  | { type: "END_OF_INPUT" }
  | { type: "OUTPUTS_ENDED" }
  | { type: "DRAINED" }
  | { type: "RELEASE" }
  | { type: "CLOSED" }
  | { type: "STOP" }
  | { type: "FAIL"; error: string }
  | { type: "CANCEL" };

/** Tags of the snapshot the runtime reads instead of keeping flags. */
export const SubtaskTag = {
  /** End-of-input went downstream: no barrier may follow it. */
  outputsEnded: "outputsEnded",
  /** Input ended and outputs drained: the subtask takes part only in the final checkpoint, then closes. */
  inputFinished: "inputFinished",
} as const;

const checkpointIdOf = (event: SubtaskEvent): number | undefined => ("checkpointId" in event ? event.checkpointId : undefined);

export const subtaskMachine = setup({
  types: {
    input: {} as SubtaskMachineInput,
    context: {} as SubtaskMachineContext,
    events: {} as SubtaskEvent,
    tags: {} as (typeof SubtaskTag)[keyof typeof SubtaskTag],
  },
  actions: {
    // Effects: provided by the subtask runtime.
    /** Capture the operators' state for the checkpoint and forward its barrier; reports SNAPSHOT_CAPTURED. */
    startSnapshot: (_, _params: { checkpointId: number }) => {},
    /** Wake the run loop so it sees the stop request. */
    wakeForStop: () => {},
    /** Close the operators without writing buffered state: the restart restores a checkpoint. */
    discardOperators: () => {},
    /** Close the input gate, credit subscription and source reader; wake every waiter. */
    releaseResources: () => {},
    // Context.
    recordError: assign({ error: ({ event }) => (event.type === "FAIL" ? event.error : undefined) }),
    markStopRequested: assign({ stopRequested: true }),
    markLive: assign({ wentLive: true }),
    rememberPending: assign({ pendingCheckpoint: ({ event }) => checkpointIdOf(event) }),
    markStarted: assign({ lastStarted: ({ context }) => Math.max(context.lastStarted, context.pendingCheckpoint ?? 0) }),
    recordCompleted: assign({
      lastCheckpoint: ({ event, context }) => Math.max(context.lastCheckpoint ?? 0, checkpointIdOf(event) ?? 0),
    }),
    clearPending: assign({ pendingCheckpoint: undefined }),
  },
  guards: {
    sortsDuringBacklog: ({ context }) => context.sortsDuringBacklog,
    checkpointing: ({ context }) => context.checkpointing,
    wentLive: ({ context }) => context.wentLive,
    isBacklog: ({ event }) => event.type === "BACKLOG" && event.isBacklog,
    isLive: ({ event }) => event.type === "BACKLOG" && !event.isBacklog,
    alignedAtOnce: ({ event }) => event.type === "BARRIER_RECEIVED" && event.aligned,
    /** The event is about the checkpoint being aligned or snapshotted now. */
    isPending: ({ context, event }) => checkpointIdOf(event) === context.pendingCheckpoint,
    /** The event's checkpoint has not been snapshotted yet here. */
    notStarted: ({ context, event }) => (checkpointIdOf(event) ?? 0) > context.lastStarted,
    /** The pending checkpoint (aligned now) was already snapshotted, asked by the coordinator directly. */
    pendingStarted: ({ context }) => (context.pendingCheckpoint ?? 0) <= context.lastStarted,
    newerThanPending: ({ context, event }) => (checkpointIdOf(event) ?? 0) > (context.pendingCheckpoint ?? 0),
  },
}).createMachine({
  id: "subtask",
  context: ({ input }) => ({ ...input, lastStarted: 0, wentLive: false, stopRequested: false }),
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
              on: {
                BACKLOG: [
                  { guard: and(["isBacklog", not("wentLive")]), target: "backlog" },
                  { guard: "isLive", actions: "markLive" },
                ],
              },
            },
            backlog: {
              on: {
                BACKLOG: [
                  { guard: and(["isLive", "sortsDuringBacklog"]), target: "sorting", actions: "markLive" },
                  { guard: "isLive", target: "streaming", actions: "markLive" },
                ],
              },
            },
            sorting: {
              // The keyed operator processes its sorted backlog; it reports SORT_DRAINED when done.
              on: { SORT_DRAINED: "streaming" },
            },
          },
        },
        checkpoint: checkpointRegion(),
      },
      on: { END_OF_INPUT: { target: "finishing", actions: "clearPending" } },
    },
    finishing: {
      type: "parallel",
      states: {
        phase: {
          initial: "endingInput",
          states: {
            // Operators flush what they hold (endInput); then end-of-input goes to every output channel.
            endingInput: {
              on: { OUTPUTS_ENDED: "draining" },
            },
            // Waiting for the output channels to send their last frames.
            draining: {
              tags: [SubtaskTag.outputsEnded],
              on: {
                DRAINED: [
                  { guard: "checkpointing", target: "awaitingFinalCheckpoint" },
                  { target: "closing" },
                ],
              },
            },
            // Only checkpoint requests and notifications arrive, until the job releases the subtask.
            awaitingFinalCheckpoint: {
              tags: [SubtaskTag.outputsEnded, SubtaskTag.inputFinished],
              on: { RELEASE: "closing" },
            },
            closing: {
              tags: [SubtaskTag.outputsEnded, SubtaskTag.inputFinished],
              on: {
                CLOSED: "#subtask.finished",
                // Already closing the operators: nothing to discard.
                FAIL: { target: "#subtask.failed", actions: "recordError" },
                CANCEL: { target: "#subtask.cancelled" },
              },
            },
          },
        },
        checkpoint: checkpointRegion(),
      },
    },
    finished: { type: "final", entry: "releaseResources" },
    failed: { type: "final", entry: "releaseResources" },
    cancelled: { type: "final", entry: "releaseResources" },
  },
  on: {
    FAIL: { target: ".failed", actions: ["recordError", "discardOperators"] },
    CANCEL: { target: ".cancelled", actions: "discardOperators" },
    STOP: { actions: ["markStopRequested", "wakeForStop"] },
  },
});

/** The checkpoint region of `running` and `finishing` (a subtask whose input ended takes the final one). */
function checkpointRegion() {
  return {
    initial: "idle" as const,
    on: {
      // Acknowledged after this region moved on (or after running → finishing).
      SNAPSHOT_DONE: { actions: "recordCompleted" as const },
    },
    states: {
      idle: {
        on: {
          BARRIER_RECEIVED: [
            { guard: and(["alignedAtOnce", "notStarted"]), target: "snapshotting", actions: "rememberPending" as const },
            { guard: "alignedAtOnce" as const },
            { target: "aligning", actions: "rememberPending" as const },
          ],
        },
      },
      aligning: {
        on: {
          BARRIERS_ALIGNED: [
            { guard: "pendingStarted" as const, target: "idle", actions: "clearPending" as const },
            { target: "snapshotting" },
          ],
          CHECKPOINT_ABORTED: { guard: "isPending" as const, target: "idle", actions: "clearPending" as const },
        },
      },
      snapshotting: {
        initial: "capturing" as const,
        on: {
          SNAPSHOT_DONE: { guard: "isPending" as const, target: "idle", actions: ["recordCompleted", "clearPending"] as const },
          CHECKPOINT_ABORTED: { guard: "isPending" as const, target: "idle", actions: "clearPending" as const },
          // Only while persisting: the run loop awaits the capture before it reads another frame.
          BARRIER_RECEIVED: [
            { guard: and(["newerThanPending", "alignedAtOnce", "notStarted"]), target: "snapshotting", reenter: true, actions: "rememberPending" as const },
            { guard: and(["newerThanPending", not("alignedAtOnce")]), target: "aligning", actions: "rememberPending" as const },
          ],
        },
        states: {
          capturing: {
            entry: [
              "markStarted" as const,
              { type: "startSnapshot" as const, params: ({ context }: { context: SubtaskMachineContext }) => ({ checkpointId: context.pendingCheckpoint ?? -1 }) },
            ],
            on: { SNAPSHOT_CAPTURED: { guard: "isPending" as const, target: "persisting" } },
          },
          // The barrier went downstream and processing resumed; the captured state is being made durable.
          persisting: {},
        },
      },
    },
  };
}

/** "running.streaming", "running.streaming+snapshotting", "finishing.awaitingFinalCheckpoint", ...: what `weir status` shows. */
export function describeSubtaskState(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as { running?: { mode?: string; checkpoint?: unknown }; finishing?: { phase?: string; checkpoint?: unknown } };
  const cp = (c: unknown) => {
    const name = typeof c === "string" ? c : c && typeof c === "object" ? Object.keys(c)[0] : undefined;
    return name && name !== "idle" ? `+${name}` : "";
  };
  if (v.running) return `running.${v.running.mode}${cp(v.running.checkpoint)}`;
  if (v.finishing) return `finishing.${v.finishing.phase}${cp(v.finishing.checkpoint)}`;
  return JSON.stringify(value);
}

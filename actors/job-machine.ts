// The job coordinator's lifecycle. Legal transitions (anything else is ignored):
//
//   created ──DEPLOY──▶ deploying ──DEPLOYED──▶ running
//   running ──SUBTASK_FINISHED (last one)──▶ finished
//   running ──STOP──▶ stopping ──SUBTASK_FINISHED (last one)──▶ stopped
//   deploying | running | stopping ──SUBTASK_FAILED──▶ failing ──ALL_TERMINATED──▶ failed
//   deploying | running | stopping ──CANCEL──▶ cancelling ──ALL_TERMINATED──▶ cancelled
//   failing ──RESTART (restart strategy allows)──▶ restarting ──DEPLOYED──▶ running      (issue 5)
//
// The coordinator runtime deploys and tears down subtasks (effects) and reports results as events.

import { assign, setup } from "xstate";

export interface JobMachineInput {
  readonly job: string;
  readonly subtasks: number;
}

export interface JobMachineContext extends JobMachineInput {
  finished: number;
  failure?: string;
  restarts: number;
}

export type JobEvent =
  | { type: "DEPLOY" }
  | { type: "DEPLOYED" }
  | { type: "SUBTASK_FINISHED" }
  | { type: "SUBTASK_FAILED"; error: string }
  | { type: "STOP"; savepoint: boolean }
  | { type: "CANCEL" }
  | { type: "ALL_TERMINATED" }
  | { type: "RESTART" };

export const jobMachine = setup({
  types: {
    input: {} as JobMachineInput,
    context: {} as JobMachineContext,
    events: {} as JobEvent,
  },
  actions: {
    deploy: () => {},
    stopSources: (_, _params: { savepoint: boolean }) => {},
    cancelAll: () => {},
    countFinished: assign({ finished: ({ context }) => context.finished + 1 }),
    recordFailure: assign({
      failure: ({ context, event }) => context.failure ?? (event.type === "SUBTASK_FAILED" ? event.error : undefined),
    }),
    resetForRestart: assign({ finished: () => 0, failure: () => undefined, restarts: ({ context }) => context.restarts + 1 }),
  },
  guards: {
    lastSubtask: ({ context }) => context.finished + 1 >= context.subtasks,
  },
}).createMachine({
  id: "job",
  context: ({ input }) => ({ ...input, finished: 0, restarts: 0 }),
  initial: "created",
  states: {
    created: { on: { DEPLOY: { target: "deploying", actions: "deploy" } } },
    deploying: {
      on: {
        DEPLOYED: "running",
        SUBTASK_FAILED: { target: "failing", actions: ["recordFailure", "cancelAll"] },
        CANCEL: { target: "cancelling", actions: "cancelAll" },
      },
    },
    running: {
      on: {
        SUBTASK_FINISHED: [
          { guard: "lastSubtask", target: "finished", actions: "countFinished" },
          { actions: "countFinished" },
        ],
        STOP: { target: "stopping", actions: { type: "stopSources", params: ({ event }) => ({ savepoint: event.savepoint }) } },
        SUBTASK_FAILED: { target: "failing", actions: ["recordFailure", "cancelAll"] },
        CANCEL: { target: "cancelling", actions: "cancelAll" },
      },
    },
    stopping: {
      on: {
        SUBTASK_FINISHED: [
          { guard: "lastSubtask", target: "stopped", actions: "countFinished" },
          { actions: "countFinished" },
        ],
        SUBTASK_FAILED: { target: "failing", actions: ["recordFailure", "cancelAll"] },
        CANCEL: { target: "cancelling", actions: "cancelAll" },
      },
    },
    failing: {
      on: {
        SUBTASK_FAILED: { actions: "recordFailure" },
        ALL_TERMINATED: "failed",
        RESTART: { target: "restarting", actions: "resetForRestart" },
      },
    },
    restarting: {
      entry: "deploy",
      on: {
        DEPLOYED: "running",
        SUBTASK_FAILED: { target: "failing", actions: ["recordFailure", "cancelAll"] },
        CANCEL: { target: "cancelling", actions: "cancelAll" },
      },
    },
    cancelling: { on: { ALL_TERMINATED: "cancelled" } },
    finished: { type: "final" },
    stopped: { type: "final" },
    failed: { type: "final" },
    cancelled: { type: "final" },
  },
});

export type JobState = "created" | "deploying" | "running" | "stopping" | "failing" | "restarting" | "cancelling" | "finished" | "stopped" | "failed" | "cancelled";

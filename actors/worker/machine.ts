// A worker's lifecycle (one per `weir run` process of a job). Legal transitions (anything else is ignored):
//
//   joining ──JOINED──▶ following
//   joining | following ──ELECTED──▶ leading              (it took the job's lease: it runs the coordinators)
//   leading ──DEPOSED──▶ following                         (another worker holds the lease now: it cancels its subtasks)
//   following ──FENCED──▶ following                        (no word from a leader for a lease: its subtasks stop)
//   joining | following | leading ──LEAVE──▶ leaving ──LEFT──▶ left
//   joining | following | leading ──JOB_ENDED──▶ ended    (the leader announced the job's end)
//
// The worker (job-worker.ts) performs the effects; the machine is the only record of where it stands.

import { assign, setup } from "xstate";

export type WorkerEvent =
  | { type: "JOINED" }
  | { type: "ELECTED"; epoch: number }
  | { type: "DEPOSED"; reason: string }
  | { type: "FENCED"; reason: string }
  | { type: "LEAVE" }
  | { type: "LEFT" }
  | { type: "JOB_ENDED"; state: string };

export interface WorkerContext {
  readonly worker: string;
  /** Epoch of the last election this worker won. */
  leaderEpoch?: number;
  lastDeposed?: string;
  jobState?: string;
  elections: number;
}

export const WorkerStates = ["joining", "following", "leading", "leaving", "left", "ended"] as const;
export type WorkerState = (typeof WorkerStates)[number];

export const workerMachine = setup({
  types: { input: {} as { worker: string }, context: {} as WorkerContext, events: {} as WorkerEvent },
  actions: {
    lead: () => {},
    abdicate: (_, _p: { reason: string }) => {},
    fence: (_, _p: { reason: string }) => {},
    leave: () => {},
    recordElection: assign({
      leaderEpoch: ({ event, context }) => (event.type === "ELECTED" ? event.epoch : context.leaderEpoch),
      elections: ({ context }) => context.elections + 1,
    }),
    recordDeposed: assign({ lastDeposed: ({ event, context }) => (event.type === "DEPOSED" ? event.reason : context.lastDeposed) }),
    recordEnd: assign({ jobState: ({ event, context }) => (event.type === "JOB_ENDED" ? event.state : context.jobState) }),
  },
}).createMachine({
  id: "worker",
  context: ({ input }) => ({ worker: input.worker, elections: 0 }),
  initial: "joining",
  on: { JOB_ENDED: { target: ".ended", actions: "recordEnd" } },
  states: {
    joining: {
      on: {
        JOINED: "following",
        ELECTED: { target: "leading", actions: ["recordElection", "lead"] },
        LEAVE: { target: "leaving", actions: "leave" },
      },
    },
    following: {
      on: {
        ELECTED: { target: "leading", actions: ["recordElection", "lead"] },
        FENCED: { actions: { type: "fence", params: ({ event }) => ({ reason: event.reason }) } },
        LEAVE: { target: "leaving", actions: "leave" },
      },
    },
    leading: {
      on: {
        DEPOSED: { target: "following", actions: ["recordDeposed", { type: "abdicate", params: ({ event }) => ({ reason: event.reason }) }] },
        LEAVE: { target: "leaving", actions: "leave" },
      },
    },
    leaving: { on: { LEFT: "left", JOB_ENDED: { target: "left", actions: "recordEnd" } } },
    left: { type: "final" },
    ended: { type: "final" },
  },
});

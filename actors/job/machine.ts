// The job coordinator's lifecycle. Legal transitions (anything else is ignored):
//
//   created ──DEPLOY──▶ deploying ──DEPLOYED──▶ running
//   deploying | restarting ──DEPLOYED──▶ finished         (every subtask finished before DEPLOYED: counted meanwhile)
//   running ──SUBTASK_FINISHED (last one)──▶ finished
//   running ──STOP──▶ stopping ──SUBTASK_FINISHED (last one)──▶ stopped
//   deploying | running | stopping | restarting ──SUBTASK_FAILED──▶ failing.tearingDown   (restart decided)
//   failing.tearingDown ──ALL_TERMINATED──▶ failing.waitingToRestart   [restartAllowed]
//                                        └▶ failed                      otherwise
//   failing.waitingToRestart ──after(restartDelay)──▶ failing.preparingRestart
//   failing.preparingRestart ──prepareRestart done──▶ restarting ──DEPLOYED──▶ running
//                            └─prepareRestart error──▶ failed
//   deploying | running | stopping | restarting | failing.tearingDown ──CANCEL──▶ cancelling ──ALL_TERMINATED──▶ cancelled
//   failing.waitingToRestart | failing.preparingRestart ──CANCEL──▶ cancelled   (nothing left to tear down)
//   failing.waitingToRestart | failing.preparingRestart ──STOP──▶ stopped   [no savepoint asked for: nothing
//                                          runs, the next run resumes from the latest checkpoint; a stop with
//                                          a savepoint waits until the job runs again]
//   failing.tearingDown ──STOP──▶ (noted) ──ALL_TERMINATED──▶ stopped   [as above, and a restart was decided]
//   running ──RESCALE──▶ failing.tearingDown   (workers joined or left: the same path as a restart, at once,
//                                              from the checkpoint taken just before, not counted as a restart)
//   created | deploying ──CARRY_ON──▶ (same state)   (a new leader takes over a live run: the restarts so far)
//
// The restart policy is decided here, once per failure of the job, by the pure decideRestart
// (actors/job/restart-strategy.ts): further subtasks failing while the job is torn down are the same
// failure. A failure put down to a NATS outage (the event says so) restarts after a short pause without
// counting against the strategy. Times come in the events (`at`), so the machine is pure; the delay runs
// on the actor's clock. The runner deploys and tears down subtasks (effects) and reports results as events.

import { assign, fromPromise, setup, type Actor } from "xstate";
import { NO_HISTORY, decideRestart, type RestartDecision, type RestartHistory, type RestartStrategy } from "./restart-strategy.ts";

/** After an outage the restart waits for the connection anyway; a short pause only spaces retries. */
export const OUTAGE_RESTART_DELAY_MS = 250;

export interface JobMachineInput {
  readonly job: string;
  readonly subtasks: number;
  readonly strategy: RestartStrategy;
  /** Without checkpoints there is nothing to restart from. */
  readonly checkpointing: boolean;
  /** Jitter source for exponential-delay; tests pass a fixed one. */
  readonly random?: () => number;
}

export interface JobMachineContext extends JobMachineInput {
  finished: number;
  failure?: string;
  restarts: number;
  /** Restarts caused by NATS outages (included in `restarts`, not counted by the strategy). */
  outageRestarts: number;
  history: RestartHistory;
  /** The decision for the failure being handled, and whether that failure is put down to an outage. */
  decision?: RestartDecision;
  outage: boolean;
  /** While waiting for the restart delay: when it ends. */
  nextRestartAt?: number;
  /** A stop came while the job failed over: it ends stopped, without a final checkpoint, instead of restarting. */
  stoppedWhileRestarting?: boolean;
  /** The teardown under way is a rescale (workers joined or left), with its cause. */
  rescaling?: string;
  rescales: number;
}

export type JobEvent =
  | { type: "DEPLOY" }
  | { type: "DEPLOYED"; subtasks?: number }
  | { type: "SUBTASK_FINISHED" }
  | { type: "SUBTASK_FAILED"; error: string; at: number; outage: boolean; /** Ends the job: no restart mends it (the first restore failed, a NATS permission, state its codec cannot read, a closed connection), or a stop was asked for. */ final?: boolean }
  | { type: "STOP"; savepoint: boolean }
  | { type: "CANCEL" }
  | { type: "ALL_TERMINATED"; at: number }
  | { type: "RESCALE"; cause: string }
  /** A worker took over a live run as leader: the restarts so far, the takeover included (actors/worker/takeover-history.ts). */
  | { type: "CARRY_ON"; restarts: number; notCounted: number };

export const JobStates = ["created", "deploying", "running", "stopping", "failing", "restarting", "cancelling", "finished", "stopped", "failed", "cancelled"] as const;
export type JobState = (typeof JobStates)[number];
/** States with a deployment that a failure tears down (a failure seen again meanwhile is the same failure). */
export const DEPLOYED_STATES: ReadonlySet<JobState> = new Set(["deploying", "running", "stopping", "restarting"]);

/** The top-level state of a job machine's snapshot value (`{ failing: "tearingDown" }` → "failing"). */
export function jobStateOf(value: unknown): JobState {
  return (typeof value === "string" ? value : Object.keys(value as object)[0]) as JobState;
}

const failed = { target: "failing", actions: ["recordFailure", "decide", "reportDecision", "cancelAll"] } as const;
// Subtasks that finished before the deployment was confirmed (a tiny bounded job on another worker ends
// between its `run` command and DEPLOYED) are counted while deploying: all of them → finished at once.
const deployed = [
  { guard: "finishedWhileDeploying", target: "finished", actions: "recordDeployment" },
  { target: "running", actions: "recordDeployment" },
] as const;
const finishedEarly = { actions: "countFinished" } as const;
// Nothing runs while the job waits to restart: a stop ends it now rather than after the restart delay (up
// to a minute of exponential backoff, longer than a service manager waits before it kills).
const stopWhileRestarting = { guard: "noSavepoint", target: "#job.stopped", actions: ["noteStopWhileRestarting", "reportStopWhileRestarting"] } as const;

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
    /** Tells the runner the decision just taken (it logs a refusal). */
    reportDecision: () => {},
    /** The runner's part of a restart (new attempt id, the checkpoint to restore, a log line). */
    beginRestart: () => {},
    countFinished: assign({ finished: ({ context }) => context.finished + 1 }),
    /** A deployment may have another parallelism (`parallelism: "auto"` follows the workers). */
    recordDeployment: assign({
      subtasks: ({ context, event }) => (event.type === "DEPLOYED" && event.subtasks !== undefined ? event.subtasks : context.subtasks),
      rescaling: () => undefined,
    }),
    recordFailure: assign({
      failure: ({ context, event }) => context.failure ?? (event.type === "SUBTASK_FAILED" ? event.error : undefined),
    }),
    decide: assign(({ context, event }) => {
      if (event.type !== "SUBTASK_FAILED") return {};
      const decision: RestartDecision = !context.checkpointing
        ? { restart: false, reason: "checkpoints are off, so there is nothing to restart from", history: context.history }
        : event.final === true
          ? { restart: false, reason: "no restart mends it (a checkpoint that cannot be restored, a NATS permission, stored state its codec cannot read, a closed connection), or a stop was asked for", history: context.history }
        : event.outage
          ? { restart: true, delayMs: OUTAGE_RESTART_DELAY_MS, history: context.history }
          : decideRestart(context.strategy, context.history, event.at, context.random);
      return { decision, history: decision.history, outage: event.outage };
    }),
    decideRescale: assign(({ context, event }) => (event.type === "RESCALE"
      ? { decision: { restart: true, delayMs: 0, history: context.history } as RestartDecision, outage: false, rescaling: event.cause }
      : {})),
    scheduleRestart: assign({
      nextRestartAt: ({ context, event }) => (event.type === "ALL_TERMINATED" && context.decision?.restart ? event.at + context.decision.delayMs : undefined),
    }),
    clearNextRestart: assign({ nextRestartAt: () => undefined }),
    noteStopWhileRestarting: assign({ stoppedWhileRestarting: () => true }),
    /** Tells the runner the job ends stopped instead of restarting (it logs from which checkpoint a next run resumes). */
    reportStopWhileRestarting: () => {},
    carryOn: assign(({ event }) => (event.type === "CARRY_ON" ? { restarts: event.restarts, outageRestarts: event.notCounted } : {})),
    resetForRestart: assign({
      finished: () => 0,
      failure: () => undefined,
      restarts: ({ context }) => context.restarts + (context.rescaling ? 0 : 1),
      outageRestarts: ({ context }) => context.outageRestarts + (context.outage && !context.rescaling ? 1 : 0),
      rescales: ({ context }) => context.rescales + (context.rescaling ? 1 : 0),
    }),
  },
  actors: {
    /** Waits for NATS if needed and finds the checkpoint to restart from; provided by the runner. */
    prepareRestart: fromPromise<void>(async () => {}),
  },
  guards: {
    lastSubtask: ({ context }) => context.finished + 1 >= context.subtasks,
    finishedWhileDeploying: ({ context, event }) => event.type === "DEPLOYED" && context.finished > 0 && context.finished >= (event.subtasks ?? context.subtasks),
    restartAllowed: ({ context }) => context.decision?.restart === true,
    noSavepoint: ({ event }) => event.type === "STOP" && !event.savepoint,
    stopInsteadOfRestart: ({ context }) => context.decision?.restart === true && context.stoppedWhileRestarting === true,
  },
  delays: {
    restartDelay: ({ context }) => (context.decision?.restart ? context.decision.delayMs : 0),
  },
}).createMachine({
  id: "job",
  context: ({ input }) => ({ ...input, finished: 0, restarts: 0, outageRestarts: 0, rescales: 0, history: NO_HISTORY, outage: false }),
  initial: "created",
  states: {
    created: { on: { DEPLOY: { target: "deploying", actions: "deploy" }, CARRY_ON: { actions: "carryOn" } } },
    deploying: {
      on: {
        CARRY_ON: { actions: "carryOn" },
        DEPLOYED: deployed,
        SUBTASK_FINISHED: finishedEarly,
        SUBTASK_FAILED: failed,
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
        SUBTASK_FAILED: failed,
        RESCALE: { target: "failing", actions: ["decideRescale", "cancelAll"] },
        CANCEL: { target: "cancelling", actions: "cancelAll" },
      },
    },
    stopping: {
      on: {
        SUBTASK_FINISHED: [
          { guard: "lastSubtask", target: "stopped", actions: "countFinished" },
          { actions: "countFinished" },
        ],
        SUBTASK_FAILED: failed,
        CANCEL: { target: "cancelling", actions: "cancelAll" },
      },
    },
    failing: {
      initial: "tearingDown",
      on: { SUBTASK_FAILED: { actions: "recordFailure" } },
      states: {
        tearingDown: {
          on: {
            ALL_TERMINATED: [
              { guard: "stopInsteadOfRestart", target: "#job.stopped", actions: "reportStopWhileRestarting" },
              { guard: "restartAllowed", target: "waitingToRestart" },
              { target: "#job.failed" },
            ],
            CANCEL: "#job.cancelling",
            STOP: { guard: "noSavepoint", actions: "noteStopWhileRestarting" },
          },
        },
        waitingToRestart: {
          entry: "scheduleRestart",
          exit: "clearNextRestart",
          after: { restartDelay: "preparingRestart" },
          on: { CANCEL: "#job.cancelled", STOP: stopWhileRestarting },
        },
        preparingRestart: {
          invoke: {
            src: "prepareRestart",
            onDone: { target: "#job.restarting", actions: ["resetForRestart", "beginRestart"] },
            onError: "#job.failed",
          },
          on: { CANCEL: "#job.cancelled", STOP: stopWhileRestarting },
        },
      },
    },
    restarting: {
      entry: "deploy",
      on: {
        DEPLOYED: deployed,
        SUBTASK_FINISHED: finishedEarly,
        SUBTASK_FAILED: failed,
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

/** Runs `f` now if the job runs (or stops), else once it runs again; never if it ends first. */
export function whenRunning(actor: Actor<typeof jobMachine>, f: () => void): void {
  const now = jobStateOf(actor.getSnapshot().value);
  if (now === "running" || now === "stopping") { f(); return; }
  const sub = actor.subscribe((snap) => {
    if (jobStateOf(snap.value) === "running") { sub.unsubscribe(); f(); } else if (snap.status === "done") sub.unsubscribe();
  });
}

/** Resolves once the job runs or finished; a job that ended otherwise rejects as `done` does. */
export function untilRunning(actor: Actor<typeof jobMachine>, done: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const sub = actor.subscribe((snap) => {
      const state = jobStateOf(snap.value);
      if (state !== "running" && snap.status !== "done") return;
      sub.unsubscribe();
      if (state === "running" || state === "finished") resolve();
      else done.then(() => resolve(), reject);
    });
  });
}

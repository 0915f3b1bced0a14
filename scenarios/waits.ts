// The waits of a scenario: each a poll function that says whether it is done, or where things stand.

import type { JobStatus } from "../actors/job/job-runner.ts";
import type { SubtaskStatus } from "../actors/subtask/subtask.ts";
import { dlqStream } from "./describe.ts";
import type { Wait } from "./format.ts";
import { exitMatches } from "./job-process.ts";
import { StepFailure, type ScenarioState } from "./run-state.ts";
import { describeWorkers } from "./worker-steps.ts";

/** A poll function for a wait: done, or a description of where things stand. */
export function waitCondition(run: ScenarioState, w: Wait): (baseline: number | undefined, setBaseline: (b: number) => void) => Promise<{ done: boolean; detail: string }> {
  const io = run.nats;
  switch (w.kind) {
    case "output": {
      const { stream, count, subject } = w.body;
      return async () => {
        const n = await io.count(stream, subject);
        const where = subject ? `${stream} (${subject})` : stream;
        return { done: (n ?? 0) >= count, detail: n === undefined ? `stream ${stream} does not exist` : `${where} has ${n} of ${count} messages` };
      };
    }
    case "dlq": {
      const stream = dlqStream(run.jobName);
      return async () => {
        const n = (await io.count(stream)) ?? 0;
        return { done: n >= w.body.count, detail: `${n} of ${w.body.count} dead letters in ${stream}` };
      };
    }
    case "exit": {
      const expected = w.body;
      return async () => {
        const proc = run.proc;
        if (!proc) throw new StepFailure("no job process was started");
        if (proc.running) return { done: false, detail: "the job is still running" };
        proc.judged = true;
        if (exitMatches(proc.exit!, expected)) return { done: true, detail: "" };
        throw new StepFailure(`the job ended with ${proc.describeExit()}, expected exit ${expected}`);
      };
    }
    case "recordsIn": {
      return async () => {
        const s = await io.status(run.jobName);
        return { done: (s?.recordsIn ?? 0) >= w.body, detail: s ? `the job read ${s.recordsIn} of ${w.body} records` : "the job does not answer" };
      };
    }
    case "processed": {
      const { operator, count } = w.body;
      return async () => {
        const s = await io.status(run.jobName);
        if (!s) return { done: false, detail: "the job does not answer" };
        const n = matchSubtasks(s, operator, undefined).reduce((sum, t) => sum + t.recordsIn, 0);
        return { done: n >= count, detail: `operator ${operator} took in ${n} of ${count} records` };
      };
    }
    case "watermark": {
      const { operator, atLeast, subtask } = w.body;
      return async () => {
        const s = await io.status(run.jobName);
        if (!s) return { done: false, detail: "the job does not answer" };
        const subs = matchSubtasks(s, operator, subtask);
        // A source chain has no input watermark: what it emits (its watermark assigner's) is its watermark.
        const marks = subs.map((t) => t.watermark ?? t.watermarkOut ?? null);
        const shown = subs.map((t, i) => `${t.name}#${t.index}: ${marks[i] ?? "none"}`).join(", ");
        // None yet on a manual clock: a periodic watermark waits for the clock (the failure said only "none").
        const hint = run.s.options?.manualClock !== undefined && marks.some((m) => m === null) ? " (on a manual clock, periodic watermarks are emitted only as advanceClock moves the clock)" : "";
        return { done: marks.length > 0 && marks.every((m) => m !== null && m >= atLeast), detail: `watermarks ${shown}; waiting for ${atLeast}${hint}` };
      };
    }
    case "state": {
      const { operator, subtask, is } = w.body;
      return async () => {
        const s = await io.status(run.jobName);
        if (!s) return { done: false, detail: "the job does not answer" };
        const subs = operator === undefined ? s.subtasks.filter((t) => subtask === undefined || t.index === subtask) : matchSubtasks(s, operator, subtask);
        const states = subs.map((t) => `${t.name}#${t.index}: ${t.state}`).join(", ");
        return { done: subs.length > 0 && subs.every((t) => stateMatches(t.state, is)), detail: `states ${states || "(no subtasks)"}; waiting for ${is}` };
      };
    }
    case "workers": {
      const n = w.body;
      return async () => {
        const s = await io.status(run.jobName);
        const ws = s?.workers ?? [];
        return { done: s?.state === "running" && ws.length === n && ws.every((x) => x.subtasks.length > 0), detail: `waiting for ${n} workers with subtasks: ${describeWorkers(s)}` };
      };
    }
    case "checkpoint": {
      const more = w.body;
      return async (baseline, setBaseline) => {
        const s = await io.status(run.jobName);
        if (!s) return { done: false, detail: "the job does not answer" };
        const n = completedCheckpoints(s);
        if (n === undefined) {
          throw new StepFailure("the job's status reports no checkpoints (no checkpoints.completed): the job takes none (checkpointIntervalMs 0)");
        }
        if (baseline === undefined) { setBaseline(n); baseline = n; }
        return { done: n - baseline >= more, detail: `${n - baseline} of ${more} checkpoints completed since the step began (${n} in all)` };
      };
    }
  }
}

/** Subtasks of `operator` (a name or uid in the chain); an unknown name fails at once, listing the known ones. */
export function matchSubtasks(s: JobStatus, operator: string, index: number | undefined): SubtaskStatus[] {
  const subs = s.subtasks.filter((t) => operatorMatches(t, operator) && (index === undefined || t.index === index));
  if (subs.length === 0 && s.state === "running") {
    throw new StepFailure(`no operator "${operator}"${index !== undefined ? ` with subtask ${index}` : ""}; subtasks: ${subtaskNames(s).join(", ")}`);
  }
  return subs;
}

function operatorMatches(t: SubtaskStatus, operator: string): boolean {
  const uid = t.id.slice(0, t.id.lastIndexOf("#"));
  return uid === operator || t.name === operator || t.name.split(" -> ").includes(operator) || operator in (t.operators ?? {});
}

export function subtaskNames(s: JobStatus): string[] {
  return s.subtasks.map((t) => `${t.name}#${t.index} (uid ${t.id.slice(0, t.id.lastIndexOf("#"))})`);
}

/** "running.streaming" matches itself and "running.streaming+snapshotting"; "running" matches any running state. */
function stateMatches(actual: string, wanted: string): boolean {
  return actual === wanted || actual.startsWith(`${wanted}.`) || actual.startsWith(`${wanted}+`);
}

/**
 * Checkpoints completed, from the job's status: `checkpoints.completed` (the contract this runner reads),
 * or the id of `lastCheckpoint`. Undefined when the status has neither.
 */
function completedCheckpoints(s: JobStatus): number | undefined {
  const x = s as unknown as { checkpoints?: { completed?: unknown }; lastCheckpoint?: unknown };
  if (typeof x.checkpoints?.completed === "number") return x.checkpoints.completed;
  if (typeof x.lastCheckpoint === "number") return x.lastCheckpoint;
  const id = (x.lastCheckpoint as { id?: unknown } | undefined)?.id;
  return typeof id === "number" ? id : undefined;
}

// One-line descriptions of steps and expectations (progress lines and failure reasons), and the dead-letter
// stream a scenario reads.

import { ConnectorNames, JobNames } from "../runtime/core/names.ts";
import type { Expectation, Step } from "./format.ts";

/** The stream that keeps job `job`'s dead letters. */
export function dlqStream(job: string): string {
  return new ConnectorNames(new JobNames(job)).dlqStream;
}

export function describeStep(step: Step): string {
  switch (step.kind) {
    case "publish": {
      const p = step.body;
      const what = p.lines ? `${p.lines.length} lines` : p.json !== undefined ? "json" : "text";
      return `publish ${what} to ${p.subject}${p.count && p.count > 1 ? ` ×${p.count}` : ""}${p.intervalMs ? ` every ${p.intervalMs} ms` : ""}${p.background ? " in the background" : ""}`;
    }
    case "start": return step.body.worker !== undefined ? `start worker ${step.body.worker}` : "start";
    case "sleep": return `sleep ${step.body} ms`;
    case "advanceClock": return `advance the clock ${step.body} ms`;
    case "kill": return step.body === "process" ? "kill process" : step.body.worker !== undefined ? `kill worker ${step.body.worker}` : `kill subtask ${step.body.subtask}`;
    case "restart": return step.body !== "process" && step.body.worker !== undefined ? `restart worker ${step.body.worker}` : "restart process";
    case "pause": return `pause worker ${step.body.worker}`;
    case "resume": return `resume worker ${step.body.worker}`;
    case "stop": return step.body.worker !== undefined ? `stop worker ${step.body.worker}`
      : `stop${step.body.via === "control" ? " via control" : ""}${step.body.savepoint ? " with savepoint" : ""}`;
    case "wait": {
      const w = step.body;
      switch (w.kind) {
        case "output": return `wait output ${w.body.stream}${w.body.subject ? ` (${w.body.subject})` : ""} ≥ ${w.body.count}`;
        case "watermark": return `wait watermark ${w.body.operator} ≥ ${w.body.atLeast}`;
        case "state": return `wait state ${w.body.operator ?? "all"} is ${w.body.is}`;
        case "checkpoint": return `wait ${w.body} checkpoint(s)`;
        case "exit": return `wait exit ${w.body}`;
        case "dlq": return `wait dlq ≥ ${w.body.count}`;
        case "recordsIn": return `wait recordsIn ≥ ${w.body}`;
        case "processed": return `wait ${w.body.operator} processed ≥ ${w.body.count}`;
        case "workers": return `wait ${w.body} worker(s)`;
      }
    }
  }
}

export function describeExpectation(e: Expectation): string {
  switch (e.kind) {
    case "stream": return `stream ${e.body.stream}${e.body.subject ? ` (${e.body.subject})` : ""}`;
    case "dlq": return "dlq";
    case "exit": return `exit ${e.body}`;
    case "failure": return "failure";
  }
}

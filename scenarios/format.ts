// The scenario file format (`*.scenario.yaml`), its io-ts codecs and `loadScenario`. A bad file is one
// line naming the file and the field: `scenarios/x.scenario.yaml: steps[2].publish.subject: expected
// string, got 3`. docs/scenarios.md describes every field.

import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import * as t from "io-ts";
import { isLeft } from "fp-ts/lib/Either.js";
import { parseDocument } from "yaml";
import { ErrorCode, WeirError } from "../runtime/core/errors.ts";
import { describeErrors } from "../runtime/core/validation.ts";
import {
  NonEmptyString, NonNegativeInteger, NonNegativeNumber, PositiveInteger, RegexString, StreamName, checked, oneOf, strictObject,
} from "./codec-util.ts";
import { jsonTemplateProblem, templateProblem } from "./template.ts";
import { subjectProblem } from "../runtime/sinks/subject.ts";
import { subtaskMachine } from "../actors/subtask/machine.ts";

/** Job option overrides: each becomes the `weir run` flag that sets it. */
export const JobOverrides = strictObject("options", {}, {
  // "auto" as `weir run --parallelism auto`: each operator runs on every worker the scenario starts.
  parallelism: t.union([PositiveInteger, t.literal("auto")]),
  stateBackend: t.keyof({ heap: null, "jetstream-kv": null }),
  mode: t.keyof({ streaming: null, batch: null, automatic: null }),
  checkpointIntervalMs: NonNegativeInteger,
  /** `--manual-clock <ms>`: processing time starts there and moves only by `advanceClock` steps. */
  manualClock: NonNegativeInteger,
  /** `--restore latest | none | <checkpoint-id>` */
  restore: t.union([t.literal("latest"), t.literal("none"), t.refinement(t.union([t.string, t.number]), (v) => /^\d+$/.test(String(v)), "checkpoint id")]),
});
export type JobOverrides = t.TypeOf<typeof JobOverrides>;

/** An exit code to expect: a number, "nonzero" or "any". */
export const ExitMatcher = new t.Type<number | "nonzero" | "any", unknown, unknown>(
  "exit code",
  (u): u is number | "nonzero" | "any" => u === "nonzero" || u === "any" || (typeof u === "number" && Number.isInteger(u) && u >= 0),
  (u, c) => (u === "nonzero" || u === "any" || (typeof u === "number" && Number.isInteger(u) && u >= 0)
    ? t.success(u as number | "nonzero" | "any")
    : t.failure(u, c, `an exit code (a number, "nonzero" or "any")`)),
  t.identity,
);
export type ExitMatcher = t.TypeOf<typeof ExitMatcher>;

/** `start: {}`, `start:` (null) and `start: { ... }` are all allowed: a missing body is `{}`. */
function optionalBody<C extends t.Mixed>(codec: C): t.Type<t.TypeOf<C>, unknown, unknown> {
  return new t.Type<t.TypeOf<C>, unknown, unknown>(codec.name, codec.is, (u, c) => codec.validate(u === null || u === undefined ? {} : u, c), t.identity);
}

/** `kill: process` or `kill: { subtask: ... }`: a literal word or an object, with one readable error. */
function wordOr<W extends string, C extends t.Mixed>(word: W, codec: C): t.Type<W | t.TypeOf<C>, unknown, unknown> {
  return new t.Type<W | t.TypeOf<C>, unknown, unknown>(
    `"${word}" | ${codec.name}`,
    (u): u is W | t.TypeOf<C> => u === word || codec.is(u),
    (u, c) => {
      if (u === word) return t.success(word);
      if (typeof u !== "object" || u === null) return t.failure(u, c, `"${word}" or an object (${codec.name})`);
      return codec.validate(u, c);
    },
    t.identity,
  );
}

const Publish = checked(
  strictObject("publish", { subject: NonEmptyString }, {
    data: t.string,
    json: t.unknown,
    lines: t.array(t.string),
    count: PositiveInteger,
    intervalMs: NonNegativeNumber,
    via: t.keyof({ auto: null, jetstream: null, core: null }),
    /** Publish while the next steps run (awaited, and its failure reported, before the expectations). */
    background: t.boolean,
  }),
  (p) => {
    const given = (["data", "json", "lines"] as const).filter((k) => p[k] !== undefined);
    if (given.length !== 1) return `exactly one of data, json, lines${given.length ? ` (got ${given.join(" and ")})` : ""}`;
    const at = (field: string, value: unknown, problem: string | undefined) => (problem === undefined ? undefined : { at: field, problem, value });
    return at("subject", p.subject, templateProblem(p.subject) ?? publishSubjectProblem(p.subject)) ?? (p.data !== undefined ? at("data", p.data, templateProblem(p.data)) : undefined)
      ?? (p.lines ? at("lines", p.lines, p.lines.map(templateProblem).find((x) => x !== undefined)) : undefined) ?? at("json", p.json, jsonTemplateProblem(p.json));
  },
);

/**
 * A subject that cannot be published to (an empty token, a space, a wildcard): the server drops such a
 * message, and the publish then fails as "jetstream is not enabled" or not at all. Each template stands
 * for a number here (what it gives), so the literal parts are checked when the file loads.
 */
function publishSubjectProblem(subject: string): string | undefined {
  const problem = subjectProblem(subject.replace(/\$\{[^}]*\}/g, "0"));
  return problem === undefined ? undefined : `a subject to publish to (${problem})`;
}

/** A worker process of the job, by the name a step gave it; the process the scenario starts unnamed is "main". */
const WorkerName = NonEmptyString;
export const MAIN_WORKER = "main";

const Start = optionalBody(strictObject("start", {}, { options: JobOverrides, worker: WorkerName }));
const Stop = optionalBody(checked(strictObject("stop", {}, {
  /** "signal" (SIGTERM, as Ctrl-C would; default) or "control" (the ctl.stop request, as `weir stop`). */
  via: t.keyof({ signal: null, control: null }),
  savepoint: t.boolean,
  /** The exit code the stop must end with (default 0). */
  exit: ExitMatcher,
  /** Only this worker leaves (SIGTERM); without it, the job stops (every worker). */
  worker: WorkerName,
}), (s) => (s.worker !== undefined && (s.via === "control" || s.savepoint) ? "no via: control or savepoint beside worker (a named worker leaves on SIGTERM; the stop request stops the whole job)" : undefined)));
const Kill = wordOr("process", checked(
  strictObject("kill", {}, { subtask: NonEmptyString, worker: WorkerName }),
  (k) => ((k.subtask === undefined) === (k.worker === undefined) ? "exactly one of subtask, worker" : undefined),
));
const Restart = wordOr("process", strictObject("restart", {}, { options: JobOverrides, worker: WorkerName }));
const Pause = strictObject("pause", { worker: WorkerName }, {});
const Resume = strictObject("resume", { worker: WorkerName }, {});

/**
 * The subtask states `weir status` shows (actors/subtask/machine.ts describeSubtaskState): a top state, or
 * `running.<mode>` / `finishing.<phase>`, optionally `+<checkpoint phase>`; all taken from the machine, so
 * a misspelt one is refused when the file loads instead of waited for until the timeout.
 */
const SUBTASK_STATES = ((): string[] => {
  const names = (node: { states?: Record<string, unknown> } | undefined) => Object.keys(node?.states ?? {});
  const root = subtaskMachine.root as unknown as { states: Record<string, { states?: Record<string, { states?: Record<string, unknown> }> }> };
  const out = names(root);
  for (const [top, region] of [["running", "mode"], ["finishing", "phase"]] as const) {
    const regions = root.states[top]?.states;
    const checkpoints = names(regions?.checkpoint).filter((c) => c !== "idle");
    for (const sub of names(regions?.[region])) {
      out.push(`${top}.${sub}`);
      for (const c of checkpoints) out.push(`${top}.${sub}+${c}`);
    }
  }
  return out;
})();
const SubtaskState = t.refinement(NonEmptyString, (s) => SUBTASK_STATES.includes(s), `subtask state (one of ${SUBTASK_STATES.filter((s) => !s.includes("+")).join(", ")}, optionally +aligning or +snapshotting)`);

const OperatorTarget = {
  /** An operator's name or uid; omitted: every subtask of the job. */
  operator: NonEmptyString,
  /** One subtask index; omitted: every subtask of the operator. */
  subtask: NonNegativeInteger,
};

const Wait = oneOf("wait", {
  output: strictObject("output", { stream: StreamName, count: PositiveInteger }, { subject: NonEmptyString }),
  watermark: strictObject("watermark", { operator: NonEmptyString, atLeast: t.number }, { subtask: NonNegativeInteger }),
  state: strictObject("state", { is: SubtaskState }, OperatorTarget),
  checkpoint: PositiveInteger,
  exit: ExitMatcher,
  dlq: strictObject("dlq", { count: PositiveInteger }, {}),
  recordsIn: PositiveInteger,
  /** The job runs on exactly this many workers, each with subtasks. */
  workers: PositiveInteger,
  /** The subtasks of one operator took in at least `count` records (the operator's own input, after an exchange). */
  processed: strictObject("processed", { operator: NonEmptyString, count: PositiveInteger }, {}),
}, { timeoutMs: PositiveInteger });
export type Wait = t.TypeOf<typeof Wait>;

export const Step = checked(oneOf("step", {
  publish: Publish,
  start: Start,
  wait: Wait,
  sleep: NonNegativeNumber,
  kill: Kill,
  restart: Restart,
  stop: Stop,
  pause: Pause,
  resume: Resume,
  /** Moves the processing time of a job started with `manualClock` on by this many ms. */
  advanceClock: NonNegativeInteger,
}, { timeoutMs: PositiveInteger, name: NonEmptyString }),
// Two timeouts for one wait: which one holds would be a guess (the inner one did, silently).
(s) => (s.kind === "wait" && s.body.timeoutMs !== undefined && s.timeoutMs !== undefined ? { at: "timeoutMs", problem: "a timeout given once (inside wait or beside it, not both)", value: s.timeoutMs } : undefined));
export type Step = t.TypeOf<typeof Step>;
export type StepOf<K extends Step["kind"]> = Extract<Step, { kind: K }>;

const StreamExpectation = checked(
  strictObject("stream expectation", { stream: StreamName }, {
    subject: NonEmptyString,
    records: t.array(t.unknown),
    contains: t.array(t.unknown),
    count: NonNegativeInteger,
    ordered: t.boolean,
    lastPerKey: NonEmptyString,
    timeoutMs: PositiveInteger,
  }),
  (e) => {
    if (e.records === undefined && e.contains === undefined && e.count === undefined) return "at least one of records, contains, count";
    if (e.ordered && e.lastPerKey) return "either ordered or lastPerKey, not both";
    if ((e.ordered || e.lastPerKey) && e.records === undefined) return "records (ordered and lastPerKey compare records)";
    return undefined;
  },
);

const OtherExpectation = oneOf("expectation", {
  dlq: checked(
    strictObject("dlq", {}, { count: NonNegativeInteger, reasonMatches: t.union([RegexString, t.array(RegexString)]) }),
    (d) => (d.count === undefined && d.reasonMatches === undefined ? "at least one of count, reasonMatches" : undefined),
  ),
  exit: ExitMatcher,
  failure: NonEmptyString,
}, {});

export type StreamExpectation = t.TypeOf<typeof StreamExpectation>;
export type Expectation = { kind: "stream"; body: StreamExpectation } | t.TypeOf<typeof OtherExpectation>;

/** `- stream: X` with its fields beside it, or `- dlq: {...}` / `- exit: 0` / `- failure: "..."`. */
export const Expectation = new t.Type<Expectation, unknown, unknown>(
  "expectation",
  (u): u is Expectation => typeof u === "object" && u !== null && "kind" in u,
  (u, c) => {
    if (typeof u === "object" && u !== null && !Array.isArray(u) && "stream" in u) {
      const r = StreamExpectation.validate(u, c);
      return isLeft(r) ? r : t.success({ kind: "stream", body: r.right } as Expectation);
    }
    const r = OtherExpectation.validate(u, c);
    if (isLeft(r)) {
      // Say that `stream` is also a choice.
      const e = r.left[0];
      if (e?.message?.startsWith("one of ")) return t.failure(e.value, e.context, e.message.replace("one of ", "one of stream, "));
    }
    return r as t.Validation<Expectation>;
  },
  t.identity,
);

// At least one subject: with none, JetStream would capture the stream's name as its subject.
const StreamSpec = strictObject("stream", { name: StreamName, subjects: t.refinement(t.array(NonEmptyString), (a) => a.length > 0, "non-empty list of subjects") }, {
  duplicateWindowMs: PositiveInteger,
});

export const ScenarioFile = strictObject("scenario", { job: NonEmptyString, steps: t.array(Step) }, {
  name: NonEmptyString,
  description: t.string,
  options: JobOverrides,
  /** Default timeout of every step (ms), 10000 when absent. */
  timeoutMs: PositiveInteger,
  /** The scenario is known to fail, with this reason (e.g. a feature not built yet): a failure is reported as "xfail", a pass as an error. */
  expectFailure: NonEmptyString,
  streams: t.array(StreamSpec),
  expect: t.array(Expectation),
});
export type ScenarioFile = t.TypeOf<typeof ScenarioFile>;

export interface Scenario extends ScenarioFile {
  /** The path as given (for messages). */
  readonly file: string;
  readonly name: string;
  /** Absolute path of the job module. */
  readonly jobPath: string;
  readonly timeoutMs: number;
  /** The timeout of `start` and `restart` steps that set none: the file's `timeoutMs`, else 30 s. */
  readonly startTimeoutMs: number;
  readonly expect: Expectation[];
}

export const DEFAULT_STEP_TIMEOUT_MS = 10_000;
/** A job coming up (`start`, `restart`): loading the job file and connecting take seconds on a loaded machine. */
export const DEFAULT_START_TIMEOUT_MS = 30_000;

/** Why a path cannot be followed, in words (not `ELOOP: too many symbolic links encountered, stat '...'`). */
export function unreadable(e: unknown): string {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ELOOP") return "a symlink loop (too many levels of symbolic links)";
  if (code === "ENOENT") return "a symlink to nothing";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "ENOTDIR") return "not found: a part of its path is a file, not a folder";
  return (e as Error).message;
}

/** Reads, parses and validates a scenario file; any problem is one line naming the file. */
export function loadScenario(file: string): Scenario {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : unreadable(e);
    throw new WeirError(ErrorCode.Scenario, `${file}: ${why}`);
  }
  const s = parseScenario(text, file);
  // Checked here, so validating a file (a CI lint step) catches a wrong job path, named by file and field.
  const job = statSync(s.jobPath, { throwIfNoEntry: false });
  if (job?.isDirectory()) throw new WeirError(ErrorCode.Scenario, `${file}: job: ${s.jobPath} is a directory: give the job's .ts file`);
  if (!job?.isFile()) throw new WeirError(ErrorCode.Scenario, `${file}: job: job file not found: ${s.jobPath}`);
  return s;
}

/** Parses scenario text as if read from `file` (the job path resolves against the file's folder). */
export function parseScenario(text: string, file: string): Scenario {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    // The library's own words ("please use YAML.parseAllDocuments()") name an API the user does not call.
    if (e.code === "MULTIPLE_DOCS") {
      throw new WeirError(ErrorCode.Scenario, `${file}: invalid YAML: a second document (---) at line ${e.linePos?.[0].line ?? "?"}: a scenario file holds one scenario`);
    }
    // With prettyErrors the message ends "at line L, column C:" followed by the source excerpt.
    const first = e.message.split("\n")[0]!.replace(/:$/, "");
    throw new WeirError(ErrorCode.Scenario, `${file}: invalid YAML: ${first}`);
  }
  const value: unknown = doc.toJS();
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new WeirError(ErrorCode.Scenario, `${file}: expected a mapping with job, steps and expect, got ${value === null ? "an empty file" : JSON.stringify(value)?.slice(0, 60)}`);
  }
  const decoded = ScenarioFile.decode(value);
  if (isLeft(decoded)) throw new WeirError(ErrorCode.Scenario, `${file}: ${describeErrors(decoded.left)}`);
  const s = decoded.right;
  const base = file.replace(/^.*[\\/]/, "").replace(/\.scenario\.ya?ml$|\.ya?ml$/, "");
  return {
    ...s,
    file,
    name: s.name ?? base,
    jobPath: resolve(dirname(resolve(file)), s.job),
    timeoutMs: s.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS,
    startTimeoutMs: s.timeoutMs ?? DEFAULT_START_TIMEOUT_MS,
    expect: s.expect ?? [],
  };
}

// Every options object a user writes is checked: an unknown key is one line naming it, where it was,
// what is allowed there, and the nearest name when it looks like a typo. No server is involved except
// for the CLI case, which runs a real `weir run` against a real nats-server.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import * as t from "io-ts";
import {
  defineJob, resolveJobOptions, Sinks, Sources, StreamEnvironment, TumblingEventTimeWindows, WatermarkStrategy, outputTag,
} from "../mod.ts";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const options = suite("option validation");
const nats = withServer(options);

/** The one-line message `fn` throws. */
function errorOf(fn: () => unknown): string {
  try { fn(); } catch (e) { return (e as Error).message; }
  assert.unreachable("expected an error");
  return "";
}

function assertOneLine(message: string, ...parts: string[]): void {
  assert.not.match(message, /\n/, message);
  for (const p of parts) assert.ok(message.includes(p), `expected ${JSON.stringify(p)} in: ${message}`);
}

const env = () => StreamEnvironment.create({ name: "opts" });
/** `target[method](...args)` as a JavaScript caller may write it, past what the types allow. */
const untyped = (target: object, method: string, ...args: unknown[]): unknown => (target as Record<string, (...a: unknown[]) => unknown>)[method]!.apply(target, args);

options("job options: a misspelled top-level option is refused with a suggestion", () => {
  const m = errorOf(() => defineJob({ name: "j", checkpointIntervalMS: 1000 } as never, () => {}));
  assertOneLine(m, "job options", `"checkpointIntervalMS"`, `did you mean "checkpointIntervalMs"?`, "allowed: name, parallelism");
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", paralellism: 2 })), `unknown option "paralellism"`, `"parallelism"`);
  assertOneLine(errorOf(() => StreamEnvironment.create({ name: "j", zzz: 1 } as never)), `unknown option "zzz"`, "allowed:");
});

options("options that would be ignored are refused: slotsPerWorker with a fixed parallelism, maxDelayMs below initialDelayMs, an async build", () => {
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", parallelism: 2, slotsPerWorker: 4 })), "slotsPerWorker", `parallelism "auto" only`);
  assert.is(resolveJobOptions({ name: "j", parallelism: "auto", slotsPerWorker: 4 }).slotsPerWorker, 4);
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", checkpointIntervalMs: 100, restartStrategy: { type: "exponential-delay", initialDelayMs: 5000, maxDelayMs: 1000 } })), "restartStrategy.maxDelayMs (1000) is below initialDelayMs (5000)");
  // Capped at the default maxDelayMs (60 s), a 120 s first delay never grew: the multiplier did nothing.
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", checkpointIntervalMs: 100, restartStrategy: { type: "exponential-delay", initialDelayMs: 120_000, multiplier: 3 } })), "restartStrategy.initialDelayMs (120000) is not below the default maxDelayMs (60000)");
  resolveJobOptions({ name: "j", checkpointIntervalMs: 100, restartStrategy: { type: "exponential-delay", initialDelayMs: 120_000, maxDelayMs: 600_000, multiplier: 3 } });
  assertOneLine(errorOf(() => defineJob({ name: "j" }, async () => {})), "build function returned a promise", "synchronously");
  const later = defineJob({ name: "j" }, (() => Promise.resolve()) as never);
  assertOneLine(errorOf(() => later.createEnvironment()), "build function returned a promise");
});

options("job options: nested options are checked too", () => {
  const cases: Array<[Record<string, unknown>, string, string]> = [
    [{ asyncState: { bufferSise: 10 } }, "asyncState.bufferSise", "asyncState.bufferSize"],
    [{ state: { cacheMaxEntrys: 10 } }, "state.cacheMaxEntrys", "state.cacheMaxEntries"],
    [{ backlogSort: { memoryByte: 10 } }, "backlogSort.memoryByte", "backlogSort.memoryBytes"],
    [{ restartStrategy: { attempts: 1, delayMs: 1, delay: 2 } }, "restartStrategy.delay", "restartStrategy.delayMs"],
  ];
  for (const [extra, bad, guess] of cases) {
    const m = errorOf(() => resolveJobOptions({ name: "j", ...extra }));
    assertOneLine(m, "job options", `unknown option "${bad}"`, `did you mean "${guess}"?`, `allowed in ${bad.split(".")[0]}:`);
  }
});

options("job options: worker heartbeats: the timeout must leave room for several intervals", () => {
  const o = resolveJobOptions({ name: "j", heartbeatIntervalMs: 2000, heartbeatTimeoutMs: 20_000 });
  assert.is(o.heartbeatIntervalMs, 2000);
  assert.is(o.heartbeatTimeoutMs, 20_000);
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", heartbeatIntervalMs: 2000 })), "heartbeatTimeoutMs (5000)", "4 × heartbeatIntervalMs (2000)");
});

options("job options: every documented state option is accepted and resolved", () => {
  const o = resolveJobOptions({ name: "j", inspect: () => {}, state: { materializeIntervalMs: 5, flushIntervalMs: 7, dirtyMaxEntries: 9, requestTimeoutMs: 11 } });
  assert.is(o.state.materializeIntervalMs, 5);
  assert.is(o.state.flushIntervalMs, 7);
  assert.is(o.state.dirtyMaxEntries, 9);
  assert.is(o.state.requestTimeoutMs, 11);
  assert.type(o.inspect, "function");
  // The job decides durability from whether it checkpoints.
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", state: { durability: "flush" } } as never)), `unknown option "state.durability"`);
});

options("restartStrategy without checkpoints (or in batch mode) is refused: it would be ignored", () => {
  const fixed = { type: "fixed-delay", attempts: 3, delayMs: 50 } as const;
  assert.throws(() => resolveJobOptions({ name: "j", restartStrategy: fixed }), /^job options: restartStrategy "fixed-delay": it needs checkpointIntervalMs/);
  assert.throws(() => resolveJobOptions({ name: "j", mode: "batch", restartStrategy: fixed }), /restartStrategy "fixed-delay": mode "batch" takes no checkpoints/);
  assert.is(resolveJobOptions({ name: "j", restartStrategy: fixed, checkpointIntervalMs: 100 }).restartStrategy.type, "fixed-delay");
  assert.is(resolveJobOptions({ name: "j", restartStrategy: { type: "none" } }).restartStrategy.type, "none", "none says what happens anyway");
});

options("backlogSort.directory that is not a directory is refused as the job loads (the first spill failed mid-job with a bare ENOENT)", () => {
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", backlogSort: { directory: "/nonexistent/weir-sort" } })), `job options: backlogSort.directory "/nonexistent/weir-sort" is not an existing directory`);
  assertOneLine(errorOf(() => resolveJobOptions({ name: "j", backlogSort: { directory: "" } })), "backlogSort.directory: expected NonEmptyString");
  assert.is(resolveJobOptions({ name: "j", backlogSort: { directory: tmpdir() } }).backlogSort.directory, tmpdir());
});

options("asyncState tuning with asyncState.enabled false is refused: sync mode runs one record at a time and would ignore it", () => {
  for (const key of ["bufferSize", "stallTimeoutMs", "watermarkMode"]) {
    const value = key === "watermarkMode" ? "out-of-order" : 5000;
    assertOneLine(errorOf(() => resolveJobOptions({ name: "j", asyncState: { enabled: false, [key]: value } })), `asyncState.${key} applies with asyncState.enabled true only`);
  }
  assert.is(resolveJobOptions({ name: "j", asyncState: { enabled: false } }).asyncState.enabled, false);
  assert.is(resolveJobOptions({ name: "j", asyncState: { enabled: true, bufferSize: 10 } }).asyncState.bufferSize, 10);
});

options("natsReplicas: default 1, a positive integer, named when wrong", () => {
  assert.is(resolveJobOptions({ name: "j" }).natsReplicas, 1);
  assert.is(resolveJobOptions({ name: "j", natsReplicas: 3 }).natsReplicas, 3);
  for (const bad of [0, 1.5, "3"]) assertOneLine(errorOf(() => resolveJobOptions({ name: "j", natsReplicas: bad } as never)), "natsReplicas");
});

options("operator options: every stream method refuses an unknown key, naming the method", () => {
  const e = env();
  const src = () => e.fromSource(Sources.array([1, 2, 3]));
  const keyed = () => src().keyBy((x) => x % 2);
  const cases: Array<[() => unknown, string, string]> = [
    [() => src().map((x) => x, { nmae: "m" } as never), "map() options", `did you mean "name"?`],
    [() => src().map((x) => x, { paralelism: 2 } as never), "map() options", `did you mean "parallelism"?`],
    [() => src().filter(() => true, { uidd: "f" } as never), "filter() options", `did you mean "uid"?`],
    [() => src().flatMap((x) => [x], { x: 1 } as never), "flatMap() options", "allowed: name, uid, parallelism"],
    [() => src().process({ processElement() {} }, { x: 1 } as never), "process() options", `"x"`],
    [() => src().sinkTo(Sinks.print(), { x: 1 } as never), "sinkTo() options", `"x"`],
    [() => src().assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps((x: number) => x), { x: 1 } as never), "assignTimestampsAndWatermarks() options", `"x"`],
    [() => keyed().process({ processElement() {} }, { x: 1 } as never), "keyBy().process() options", `"x"`],
    [() => keyed().reduce((a, b) => a + b, { x: 1 } as never), "keyBy().reduce() options", `"x"`],
    [() => keyed().window(TumblingEventTimeWindows.of(10)).reduce((a, b) => a + b, { x: 1 } as never), "window().reduce() options", `"x"`],
    [() => keyed().window(TumblingEventTimeWindows.of(10)).aggregate({ createAccumulator: () => 0, add: (v, a) => a + v, getResult: (a) => a }, { x: 1 } as never), "window().aggregate() options", `"x"`],
    [() => keyed().window(TumblingEventTimeWindows.of(10)).process({ process() {} } as never, { x: 1 } as never), "window().process() options", `"x"`],
    [() => src().connect(src()).map((a) => a, (b) => b, { x: 1 } as never), "connect().map() options", `"x"`],
    [() => src().connect(src()).process({ processElement1() {}, processElement2() {} }, { x: 1 } as never), "connect().process() options", `"x"`],
    [() => env().fromSource(Sources.array([1]), { name: "s", watermark: 1 } as never), "fromSource() options", `did you mean "watermarks"?`],
    [() => src().executeAndCollect({ limt: 1 } as never), "executeAndCollect() options", `did you mean "limit"?`],
    [() => StreamEnvironment.create({ name: "j" }, { chainig: false } as never), "StreamEnvironment.create() hooks", `did you mean "chaining"?`],
    // Builders that take no options refuse one rather than drop it.
    [() => untyped(src(), "keyBy", (x: number) => x, { name: "k" }), "keyBy(): takes a key selector and nothing more", "an object with keys name"],
    [() => untyped(keyed(), "window", TumblingEventTimeWindows.of(10), { name: "w" }), "keyBy().window(): takes a window assigner and nothing more", "name"],
    [() => untyped(src(), "connect", src(), { name: "c" }), "connect(): takes one stream and nothing more", "name"],
  ];
  for (const [fn, where, hint] of cases) assertOneLine(errorOf(fn), where, hint);
  // A side output tag is not an options object; operator options that are right still pass.
  const tag = outputTag<number>("late");
  assert.ok(src().map((x) => x, { name: "m", uid: "m", parallelism: 1 }).getSideOutput(tag));
});

options("source and sink options: an unknown key is refused, functions as values still work", () => {
  const cases: Array<[() => unknown, string, string]> = [
    [() => Sources.jetstream({ stream: "S", subjects: ["a"], strtAt: "first" } as never), "Sources.jetstream options", `did you mean "startAt"?`],
    [() => Sources.jetstream({ stream: "S", subjects: ["a"], startAt: { sequence: 3, tme: 1 } } as never), "Sources.jetstream options", `unknown option "startAt.tme"`],
    [() => Sources.nats({ subject: "a", queu: "q" } as never), "Sources.nats options", `did you mean "queue"?`],
    [() => Sources.file("x.jsonl", { format: "jsonl", heder: true } as never), `Sources.file("x.jsonl") options`, `did you mean "header"?`],
    [() => Sources.generator({ make: (i: number) => i, cont: 3 } as never), "Sources.generator options", `did you mean "count"?`],
    [() => Sinks.jetstream({ subject: "a", stram: "S" } as never), "Sinks.jetstream options", `did you mean "stream"?`],
    [() => Sinks.nats({ subject: "a", x: 1 } as never), "Sinks.nats options", "allowed: subject"],
    [() => Sinks.kv({ bucket: "b", key: "k", lingerMS: 1 } as never), "Sinks.kv options", `did you mean "lingerMs"?`],
    [() => Sinks.file("out.jsonl", { fromat: "jsonl" } as never), `Sinks.file("out.jsonl") options`, `did you mean "format"?`],
    [() => Sinks.print({ prefx: ">" } as never), "Sinks.print options", `did you mean "prefix"?`],
    [() => (Sources.array as (items: unknown[], o: unknown) => unknown)([1], { bogus: 1 }), "Sources.array(items) takes no options", "fromSource(source, { parallelism"],
  ];
  for (const [fn, where, hint] of cases) assertOneLine(errorOf(fn), where, hint);
  assert.ok(Sinks.jetstream({ stream: "S", subject: (v: { k: string }) => `out.${v.k}` }));
  assert.ok(Sinks.kv({ bucket: "b", key: (v: { k: string }) => v.k }));
  assert.ok(Sources.jetstream({ stream: "S", subjects: ["a"], codec: t.number, startAt: { sequence: 3 } }));
  assert.ok(Sources.jetstream({ stream: "S", subjects: ["a"], startAt: { time: "2026-12-02T00:00:00Z" } }));
  assert.ok(Sources.file("x.csv", { format: "csv", codec: t.record(t.string, t.string), header: true, delimiter: ";" }));
});

options("source and sink options that would be ignored are refused: CSV options on jsonl/lines, duplicateWindowMs without stream, ratePerSec not a number", () => {
  const cases: Array<[() => unknown, ...string[]]> = [
    [() => Sources.file("x.jsonl", { format: "jsonl", header: false }), `Sources.file("x.jsonl"): header applies to format "csv" only, not "jsonl"`],
    [() => Sources.file("x.txt", { format: "lines", delimiter: ";" }), `Sources.file("x.txt"): delimiter applies to format "csv" only, not "lines"`],
    [() => Sinks.jetstream({ subject: "out", duplicateWindowMs: 5000 }), "Sinks.jetstream: duplicateWindowMs", "give stream too"],
    [() => Sources.generator({ make: (i: number) => i, ratePerSec: "5" as never }), "Sources.generator: ratePerSec must be a finite positive number", `got "5"`],
    [() => Sources.generator({ make: (i: number) => i, ratePerSec: Infinity }), "Sources.generator: ratePerSec", "got Infinity"],
    // "got 10" for the string "10" read as if 10 were refused; a count past 2^53 never ends (its indexes stop counting up).
    [() => Sources.generator({ make: (i: number) => i, count: "10" as never }), "Sources.generator: count must be a non-negative integer", `got "10"`],
    [() => Sources.generator({ make: (i: number) => i, count: 1e20 }), "Sources.generator: count must be a non-negative integer up to 9007199254740991", "got 100000000000000000000"],
  ];
  for (const [fn, ...parts] of cases) assertOneLine(errorOf(fn), ...parts);
  assert.ok(Sinks.jetstream({ stream: "S", subject: "out", duplicateWindowMs: 5000 }));
  assert.ok(Sources.generator({ make: (i: number) => i, ratePerSec: 0.5 }));
});

options("stream builders: a wrong function, source, sink or stream is one line naming the call, when the graph is built", () => {
  const e = env();
  const src = () => e.fromSource(Sources.array([1, 2, 3]));
  const keyed = () => src().keyBy((x) => x % 2);
  const other = env().fromSource(Sources.array([4]));
  const cases: Array<[() => unknown, ...string[]]> = [
    [() => e.fromSource({} as never), "fromSource(): expected a source such as Sources.jetstream(...) (with createReader), got an object with no keys"],
    [() => src().sinkTo({ write: () => {} } as never), "sinkTo(): expected a sink", "(with createWriter)", "got an object with keys write"],
    [() => src().map(undefined as never), "map(): expected a function, got undefined"],
    [() => src().filter({} as never), "filter(): expected a function"],
    [() => src().flatMap("x" as never), "flatMap(): expected a function, got string"],
    [() => src().process({} as never), "process(): expected a ProcessFunction (with processElement)"],
    [() => keyed().process({ processelement: () => {} } as never), "keyBy().process(): expected a KeyedProcessFunction (with processElement), got an object with keys processelement"],
    [() => keyed().reduce(null as never), "keyBy().reduce(): expected a function, got null"],
    [() => keyed().aggregate({ add: () => 0 } as never), "keyBy().aggregate(): expected an AggregateFunction (with createAccumulator, getResult)"],
    [() => keyed().window({} as never), "keyBy().window(): expected a window assigner"],
    [() => keyed().window(TumblingEventTimeWindows.of(10)).aggregate({} as never), "window().aggregate(): expected an AggregateFunction"],
    [() => keyed().window(TumblingEventTimeWindows.of(10)).process({} as never), "window().process(): expected a ProcessWindowFunction (with process)"],
    [() => src().connect(src()).process({ processElement1: () => {} } as never), "connect().process(): expected a CoProcessFunction (with processElement2)"],
    [() => src().union(other), "union(): the stream comes from another StreamEnvironment"],
    [() => src().union([1] as never), "union(): expected a DataStream, got an array"],
    [() => src().connect(other), "connect(): the stream comes from another StreamEnvironment"],
    [() => src().assignTimestampsAndWatermarks({} as never), "assignTimestampsAndWatermarks(): expected a WatermarkStrategy", "got an object with no keys"],
    [() => src().assignTimestampsAndWatermarks(null as never), "assignTimestampsAndWatermarks(): expected a WatermarkStrategy", "got null"],
    [() => WatermarkStrategy.forMonotonousTimestamps<number>().withTimestampAssigner(5 as never), "withTimestampAssigner: the timestamp assigner must be a function, got number"],
    [() => keyed().window(TumblingEventTimeWindows.of(10)).sideOutputLateData("late" as never), "window().sideOutputLateData(): expected an output tag", `got the string "late"`],
    [() => src().getSideOutput("late" as never), "getSideOutput(): expected an output tag"],
  ];
  for (const [fn, ...parts] of cases) assertOneLine(errorOf(fn), ...parts);
  // Right arguments still build, a union of streams of the same environment included.
  assert.ok(src().union(src(), src()).connect(src()).map((a) => a, (b) => b).sinkTo(Sinks.print()));
});

options("weir run refuses a job file with a misspelled option: one line, non-zero exit", async () => {
  const child = spawn(process.execPath, ["bin/weir.mjs", "run", "tests/fixtures/jobs/misspelled-option.ts", "--nats", nats.url], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const deadline = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve)).finally(() => clearTimeout(deadline));
  assert.is.not(code, 0, `exit code ${code}; stdout: ${stdout}`);
  const lines = stderr.trim().split("\n");
  assert.is(lines.length, 1, stderr);
  assertOneLine(lines[0]!, "job options", `unknown option "paralellism"`, `did you mean "parallelism"?`);
  assert.not.match(stdout, /out \d/, "the job must not have run");
});

options("checkpoint tuning given to a job that takes no checkpoints: it runs, and says once that those options have no effect", async () => {
  const discard = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };
  const run = async (extra: Record<string, unknown>): Promise<string[]> => {
    const lines: string[] = [];
    const e = StreamEnvironment.create({ name: "opts-unused", nats: nats.url, stateBackend: "heap", checkpointTimeoutMs: 5000, checkpointsRetained: 2, ...extra }, { log: (m) => lines.push(m) });
    try {
      e.fromSource(Sources.array([1, 2, 3])).sinkTo(discard);
      await e.execute();
    } finally {
      await e.close();
    }
    return lines.filter((l) => l.startsWith("job options:"));
  };
  assert.equal(await run({ mode: "streaming" }), ["job options: checkpointTimeoutMs, checkpointsRetained have no effect: checkpoints are off (checkpointIntervalMs 0)"]);
  // Bounded and without checkpoints: batch mode (as Flink's automatic runtime mode).
  assert.equal(await run({ tolerableCheckpointTimeouts: 1 }), [`job options: checkpointTimeoutMs, tolerableCheckpointTimeouts, checkpointsRetained have no effect: mode "batch" takes no checkpoints`]);
  assert.equal(await run({ mode: "streaming", checkpointIntervalMs: 60_000 }), [], "with checkpoints they apply");
});

options("weir run: a usage error and a checkpoint that does not exist are each one line on stderr, non-zero exit", async () => {
  const usage = await runWeir(["run", "tests/fixtures/jobs/worker-counts.ts", "--bogus"]);
  assert.is.not(usage.code, 0);
  assert.equal(usage.stderr.trim().split("\n"), ["weir: unknown option '--bogus' (weir --help: usage)"]);
  const missing = await runWeir(["run", "tests/fixtures/jobs/worker-counts.ts", "--nats", nats.url, "--restore", "99999", "--quiet"]);
  assert.is.not(missing.code, 0);
  assert.equal(missing.stderr.trim().split("\n"), ["weir: checkpoint 99999 of job workers does not exist (see weir checkpoints workers)"], missing.stderr);
});

options.run();

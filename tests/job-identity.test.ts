// What the workers of one job must agree on (runtime/cluster/job-identity.ts): the same job graph and
// placement options, and a manual clock on all of them or none (a worker on the system clock would fire
// processing-time timers on its own; the leader gives it no subtasks and says why).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Sinks, SlidingEventTimeWindows, Sources, StreamEnvironment, TumblingEventTimeWindows, type SinkDef, type SourceDef } from "../mod.ts";
import { resolveJobOptions } from "../runtime/api/options.ts";
import { identityDifference, jobIdentity } from "../runtime/cluster/job-identity.ts";

const discard: SinkDef<number> = { kind: "discard", createWriter: async () => ({ write: () => {}, flush: async () => {}, close: async () => {} }) };

function graphOf(parallelism: number) {
  const env = StreamEnvironment.create({ name: "ident", nats: "nats://127.0.0.1:1", parallelism });
  env.fromSource(Sources.array([1, 2, 3])).keyBy((n) => n % 2).reduce((a, b) => a + b).sinkTo(discard);
  return env.jobGraph();
}

test("workers differing in clock, parallelism or job graph are told how; the same job is no difference", () => {
  const job = resolveJobOptions({ name: "ident", parallelism: 2 });
  const manual = jobIdentity(graphOf(2), job, "manual");
  assert.is(identityDifference(manual, jobIdentity(graphOf(2), job, "manual")), undefined);
  assert.is(identityDifference(manual, jobIdentity(graphOf(2), job)), `clock "system" (the leader's: "manual")`);
  assert.is(identityDifference(manual, jobIdentity(graphOf(2), resolveJobOptions({ name: "ident", parallelism: 4 }), "manual")), "parallelism 4 (the leader's: 2)");
  const other = StreamEnvironment.create({ name: "ident", nats: "nats://127.0.0.1:1", parallelism: 2 });
  other.fromSource(Sources.array([1])).map((n) => n).sinkTo(discard);
  assert.match(identityDifference(manual, jobIdentity(other.jobGraph(), job, "manual")) ?? "", /^another job graph/);
  // An operator's own parallelism: the same graph shape, another number of source subtasks.
  const withSource = (p?: number) => {
    const env = StreamEnvironment.create({ name: "ident", nats: "nats://127.0.0.1:1", parallelism: 2 });
    env.fromSource(Sources.array([1, 2, 3]), { uid: "src", ...(p === undefined ? {} : { parallelism: p }) }).keyBy((n) => n % 2).reduce((a, b) => a + b).sinkTo(discard);
    return jobIdentity(env.jobGraph(), job);
  };
  assert.is(identityDifference(withSource(1), withSource(1)), undefined);
  assert.is(identityDifference(withSource(1), withSource(3)), `parallelism of "src" 3 (the leader's: 1)`);
  assert.is(identityDifference(withSource(1), withSource()), `parallelism of "src" not set (the leader's: 1)`);
});

test("workers whose job files differ only in a function body are told so; the same text is no difference", () => {
  const job = resolveJobOptions({ name: "ident", parallelism: 2 });
  const OTHER = /^other code in its operators' functions or key selectors/;
  const identity = (build: (env: StreamEnvironment) => void) => {
    const env = StreamEnvironment.create({ name: "ident", nats: "nats://127.0.0.1:1", parallelism: 2 });
    build(env);
    return jobIdentity(env.jobGraph(), job);
  };
  const counted = (add: (a: number, b: number) => number, key: (n: number) => number) => identity((env) => {
    env.fromSource(Sources.array([1, 2, 3]), { uid: "src" }).map((n) => n * 2, { uid: "double" }).keyBy(key).reduce(add, { uid: "sum" }).sinkTo(discard);
  });
  const add = (a: number, b: number) => a + b;
  const parity = (n: number) => n % 2;
  assert.is(identityDifference(counted(add, parity), counted((a: number, b: number) => a + b, (n: number) => n % 2)), undefined);
  assert.match(identityDifference(counted(add, parity), counted((a, b) => a + b + 1, parity)) ?? "", OTHER);
  assert.match(identityDifference(counted(add, parity), counted(add, (n) => n % 3)) ?? "", OTHER);
  // A process function's method, a window's aggregate function, the two functions of connect().map().
  const processed = (body: string) => identity((env) => {
    const fn = { processElement: new Function("e", "ctx", body) as (e: number, ctx: { collect(v: number): void }) => void };
    env.fromSource(Sources.array([1]), { uid: "src" }).process(fn, { uid: "p" }).sinkTo(discard);
  });
  assert.is(identityDifference(processed("ctx.collect(e)"), processed("ctx.collect(e)")), undefined);
  assert.match(identityDifference(processed("ctx.collect(e)"), processed("ctx.collect(e + 1)")) ?? "", OTHER);
  const coMapped = (second: (n: number) => number) => identity((env) => {
    const a = env.fromSource(Sources.array([1]), { uid: "a" });
    a.connect(env.fromSource(Sources.array([2]), { uid: "b" })).map((n) => n, second, { uid: "co" }).sinkTo(discard);
  });
  assert.is(identityDifference(coMapped((n) => n), coMapped((n) => n)), undefined);
  assert.match(identityDifference(coMapped((n) => n), coMapped((n) => -n)) ?? "", OTHER);
  // A window's assigner: its kind and sizes are settings, not code.
  const windowed = (sizeMs: number, sliding = false) => identity((env) => {
    env.fromSource(Sources.array([1]), { uid: "src" }).keyBy(parity).window(sliding ? SlidingEventTimeWindows.of(sizeMs, 1000) : TumblingEventTimeWindows.of(sizeMs)).reduce(add, { uid: "w" }).sinkTo(discard);
  });
  assert.is(identityDifference(windowed(60_000), windowed(60_000)), undefined);
  assert.is(identityDifference(windowed(60_000), windowed(30_000)), `windows of "w" "TumblingEventTimeWindows.of(30000)" (the leader's: "TumblingEventTimeWindows.of(60000)")`);
  assert.match(identityDifference(windowed(60_000), windowed(60_000, true)) ?? "", /windows of "w" "SlidingEventTimeWindows\.of\(60000, 1000\)"/);
  const counted2 = (size: number) => identity((env) => {
    env.fromSource(Sources.array([1]), { uid: "src" }).keyBy(parity).countWindow(size).reduce(add, { uid: "c" }).sinkTo(discard);
  });
  assert.is(identityDifference(counted2(100), counted2(100)), undefined);
  assert.is(identityDifference(counted2(100), counted2(50)), `windows of "c" "countWindow(50)" (the leader's: "countWindow(100)")`);
  // Another graph says so, not "other code" as well.
  const another = identityDifference(counted(add, parity), processed("ctx.collect(e)")) ?? "";
  assert.match(another, /^another job graph \(other operators, uids, chains or exchanges: another job file\?\)/);
  assert.not.match(another, /other code/);
});

test("workers whose sources or sinks are set up otherwise (another subject, count, path or function) are told which setting", () => {
  const job = resolveJobOptions({ name: "ident", parallelism: 2 });
  const identity = (source: SourceDef<{ n: number }>, subject = "out.a") => {
    const env = StreamEnvironment.create({ name: "ident", nats: "nats://127.0.0.1:1", parallelism: 2 });
    env.fromSource(source, { uid: "src" }).map((e) => e.n, { uid: "m" }).sinkTo(Sinks.nats({ subject }), { uid: "out" });
    return jobIdentity(env.jobGraph(), job);
  };
  const make = (i: number) => ({ n: i });
  const generated = (count: number, fn = make) => Sources.generator({ count, make: fn });
  assert.is(identityDifference(identity(generated(10)), identity(generated(10, (i: number) => ({ n: i })))), undefined, "the same text");
  assert.is(identityDifference(identity(generated(10)), identity(generated(20))), `count of source "src" 20 (the leader's: 10)`);
  assert.match(identityDifference(identity(generated(10)), identity(generated(10, (i) => ({ n: i + 1 })))) ?? "", /^make of source "src" "function [0-9a-f]{12}" \(the leader's: "function [0-9a-f]{12}"\)$/);
  assert.is(identityDifference(identity(generated(10)), identity(generated(10), "out.b")), `subject of sink "out" "out.b" (the leader's: "out.a")`);
  const nats = (subject: string) => Sources.nats<{ n: number }>({ subject });
  assert.is(identityDifference(identity(nats("in.a")), identity(nats("in.b"))), `subject of source "src" "in.b" (the leader's: "in.a")`);
  // A hybrid source's parts, and an array source's items.
  const hybrid = (subject: string) => Sources.hybrid<{ n: number }>(generated(10), nats(subject));
  assert.is(identityDifference(identity(hybrid("in.a")), identity(hybrid("in.a"))), undefined);
  assert.is(identityDifference(identity(hybrid("in.a")), identity(hybrid("in.b"))), `part 2.settings.subject of source "src" "in.b" (the leader's: "in.a")`);
  assert.match(identityDifference(identity(Sources.array([{ n: 1 }])), identity(Sources.array([{ n: 2 }]))) ?? "", /^items of source "src" "list [0-9a-f]{12}"/);
  // A worker of a version that sends no connector settings is not judged by them.
  const leader = identity(generated(10));
  const older = { ...leader, settings: Object.fromEntries(Object.entries(leader.settings).filter(([k]) => !/ of (source|sink) /.test(k))) };
  assert.is(identityDifference(leader, older), undefined);
});

test.run();

// Small defects a user would trip over: a job file with a syntax error, the progress line after a
// restart, a bad executeAndCollect limit, nameless actors in inspection events.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { spawnSync } from "node:child_process";
import { Sinks, Sources, StreamEnvironment } from "../mod.ts";
import { ProgressReporter } from "../runtime/cli/progress.ts";
import { formatStatus } from "../runtime/cli/commands/control.ts";
import type { JobStatus } from "../actors/job/job-runner.ts";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir, WEIR } from "./helpers/cli.ts";

const test = suite("small defects");
const nats = withServer(test);

test("a TypeScript job in a CommonJS folder (package.json type commonjs) runs as an ES module, its local imports too", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-cjs-"));
  try {
    const weir = join(dirname(WEIR), "..", "mod.ts");
    writeFileSync(join(dir, "package.json"), `{ "type": "commonjs" }\n`);
    writeFileSync(join(dir, "double.ts"), `export const double = (n: number): number => n * 2;\n`);
    writeFileSync(join(dir, "job.ts"), `import { defineJob, Sinks, Sources } from ${JSON.stringify(weir)};\nimport { double } from "./double.ts";\n` +
      `export default defineJob({ name: "cjsjob", stateBackend: "heap" }, (env) => { env.fromSource(Sources.array([1, 2, 3])).map(double).sinkTo(Sinks.print()); });\n`);
    const r = await runWeir(["run", join(dir, "job.ts"), "--nats", nats.url, "--quiet"]);
    assert.is(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n"), ["2", "4", "6"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a job in a folder with no packages (a temporary folder) imports \"weir\" and io-ts as API.md's example does: the weir that runs it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-outside-"));
  try {
    writeFileSync(join(dir, "job.ts"), `import * as t from "io-ts";\nimport { defineJob, Sinks, Sources, valueState } from "weir";\n` +
      `const total = valueState("total", t.number);\n` +
      `export default defineJob({ name: "outsidejob", stateBackend: "heap" }, (env) => {\n` +
      `  env.fromSource(Sources.array([1, 2, 3])).keyBy(() => "all").process({ async processElement(n: number, ctx) {\n` +
      `    const sum = ((await ctx.state(total).value()) ?? 0) + n; await ctx.state(total).update(sum); ctx.collect(sum);\n` +
      `  } }).sinkTo(Sinks.print());\n});\n`);
    const r = await runWeir(["run", join(dir, "job.ts"), "--nats", nats.url, "--quiet"]);
    assert.is(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split("\n"), ["1", "3", "6"]);
    // A package neither the folder nor weir has is still one line naming it.
    writeFileSync(join(dir, "job.ts"), `import { nothing } from "weir-not-installed";\nexport default nothing;\n`);
    const missing = await runWeir(["run", join(dir, "job.ts"), "--nats", nats.url]);
    assert.is(missing.code, 1);
    assert.match(missing.stderr, /^weir: cannot load job file .*Cannot find package 'weir-not-installed' imported from .*job\.ts\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a syntax error in a job file: one line with file:line:column and the reason", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-syntax-"));
  try {
    const file = join(dir, "broken.ts");
    writeFileSync(file, `import { defineJob } from "weir";\n\nconst x = ;\nexport default defineJob({ name: "broken" }, () => {});\n`);
    const r = await runWeir(["run", file, "--nats", nats.url]);
    assert.is(r.code, 1);
    assert.is(r.stderr, `weir: cannot load job file ${file}:3:11: syntax error: Unexpected ";"\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the progress line never shows a negative rate after a restart resets the counters", () => {
  const lines: string[] = [];
  const stream = { isTTY: false, write: (t: string) => { lines.push(t); return true; } } as unknown as NodeJS.WriteStream;
  const status = (recordsIn: number, backpressuredMs: number): JobStatus => ({
    job: "p", state: "running", attempt: "a", startedAt: "", uptimeMs: 1000, parallelism: 1, recordsIn, recordsOut: 0, deadLetters: 0,
    restarts: 0, restartStrategy: "none", failures: [], subtasks: [{ backpressuredMs } as JobStatus["subtasks"][number]],
  });
  const progress = new ProgressReporter(() => status(0, 0), { stream });
  progress.line(status(50_000, 900));
  const after = progress.line(status(1_000, 10));
  assert.not.match(after, /-\d/, after);
  assert.match(after, /in 1000 [\d.]+[kM]?\/s/, after);
});

test("weir status and the progress line show checkpoints, and a keyed subtask's records in flight", () => {
  const subtask = {
    name: "count", index: 0, state: "running.streaming", recordsIn: 10, recordsOut: 10, watermark: null, backpressuredMs: 0, queuedFrames: 0, pendingFrames: 0,
    operators: { count: { inFlightRecords: 5, activeBufferSize: 2 } },
  } as unknown as JobStatus["subtasks"][number];
  const s: JobStatus = {
    job: "p", state: "running", attempt: "a", startedAt: "", uptimeMs: 1000, parallelism: 1, recordsIn: 10, recordsOut: 10, deadLetters: 0,
    restarts: 0, restartStrategy: "none", failures: [], subtasks: [subtask],
    checkpoints: { completed: 3, aborted: 1, lastCompleted: { id: 3, kind: "checkpoint", triggeredAt: Date.now() - 2000, durationMs: 45, entries: 1200, bytes: 0, alignmentMs: 0, acks: [] } },
  };
  const text = formatStatus(s);
  assert.match(text, /^  checkpoints: 3 completed, 1 aborted; last 3 \(checkpoint\) [\d.]+s ago, took 45 ms, 1200 entries changed$/m, text);
  assert.match(text, /in flight/, text);
  assert.match(text, /count#0 .* 5 \(2 batched\)/, text);
  // The checkpoint in flight is named by its id, not written as if it were a count.
  const pending = formatStatus({ ...s, checkpoints: { ...s.checkpoints!, inFlight: 4 } });
  assert.match(pending, /^  checkpoints: 3 completed, 1 aborted, checkpoint 4 in flight; last 3/m, pending);
  const line = new ProgressReporter(() => s, { stream: { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream }).line(s);
  assert.match(line, /checkpoints 3/, line);
});

test("executeAndCollect refuses a limit that is not a positive integer, in one line", async () => {
  for (const limit of [-1, 0, 1.5, Number.NaN]) {
    const env = StreamEnvironment.create({ name: "collectlimit", nats: nats.url });
    try {
      const err = await env.fromSource(Sources.array([1, 2, 3])).executeAndCollect({ limit }).then(() => undefined, (e: Error) => e);
      assert.ok(err, `limit ${limit} refused`);
      assert.is(err!.message, `executeAndCollect: limit must be a positive integer, got ${limit}`);
    } finally {
      await env.close();
    }
  }
});

test("inspection events name the job, checkpoint and subtask actors", async () => {
  const ids = new Set<string>();
  const systemIds = new Set<string>();
  const env = StreamEnvironment.create({
    name: "inspected", nats: nats.url, parallelism: 2, checkpointIntervalMs: 50,
    inspect: (e: unknown) => {
      const ref = (e as { actorRef?: { id?: string; systemId?: string } }).actorRef;
      if (ref?.id) ids.add(ref.id);
      if (ref?.systemId) systemIds.add(ref.systemId);
    },
  });
  try {
    env.fromSource(Sources.array([1, 2, 3, 4]), { uid: "numbers" })
      .keyBy((n) => n % 2)
      .reduce((a, b) => a + b, { uid: "sum" })
      .sinkTo(Sinks.nats({ subject: "inspected.out" }), { uid: "out" });
    const result = await env.execute();
    const subtasks = result.status.subtasks.map((s) => s.id);
    assert.ok(subtasks.includes("sum#1"), subtasks.join(", "));
    for (const id of ["job:inspected", "checkpoint:inspected", ...subtasks]) {
      assert.ok(ids.has(id), `actor id ${id} in ${[...ids].join(", ")}`);
      assert.ok(systemIds.has(id), `system id ${id}`);
    }
  } finally {
    await env.close();
  }
});

test("the weir executable runs by its own first line (node with its young generation set), as npm installs it", () => {
  // `env -S` splits the shebang's arguments; without it (or with a flag node refuses) nothing would start.
  const r = spawnSync(WEIR, ["--help"], { encoding: "utf8", timeout: 60_000, env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` } });
  assert.is(r.status, 0, `${r.error?.message ?? ""}${r.stderr}`);
  assert.match(r.stdout, /Usage: weir/);
});

test("natsReplicas above 1 on a server that is not clustered is refused in one line (the server took R3 for existing streams without complaint)", async () => {
  const env = StreamEnvironment.create({ name: "standalone", nats: nats.url, stateBackend: "heap", natsReplicas: 3 });
  try {
    env.fromSource(Sources.array([1])).sinkTo(Sinks.nats({ subject: "standalone.out" }));
    const err = await env.execute().then(() => "finished", (e: Error) => e.message);
    assert.match(err, /^natsReplicas 3: the NATS server is not part of a cluster/);
  } finally {
    await env.close();
  }
});

test.run();

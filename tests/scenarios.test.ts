// The shipped scenarios, run for real through runScenario (each on its own nats-server, the job as a
// `weir run` child process), plus proof that the runner fails: a wrong expectation, a bad file, a pass
// of a scenario marked expectFailure, and the `weir scenario` command's table and exit code.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { getEventListeners } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { findScenarioFiles, runScenario, type ScenarioResult } from "../scenarios/runner.ts";
import { loadScenario } from "../scenarios/format.ts";
import { JobProcess } from "../scenarios/job-process.ts";
import { within } from "./helpers/cli.ts";

const root = resolve(new URL("..", import.meta.url).pathname);
const examples = join(root, "examples/scenarios");
let dir: string;

function explain(r: ScenarioResult): string {
  return `${r.name}: ${r.outcome}${r.reason ? ` (${r.reason})` : ""}\n${r.stderr.split("\n").slice(-15).join("\n")}`;
}

async function assertPasses(file: string): Promise<ScenarioResult> {
  const r = await runScenario(file);
  assert.is(r.outcome, "passed", explain(r));
  return r;
}

/** A scenario file in the temp dir (its job path relative to examples/scenarios/). */
function scenarioFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text.replaceAll("JOBS/", `${examples}/`));
  return file;
}

const shipped = suite("shipped scenarios");
shipped.before(() => { dir = mkdtempSync(join(tmpdir(), "weir-scenarios-")); });
shipped.after(() => { rmSync(dir, { recursive: true, force: true }); });

for (const file of findScenarioFiles([join(root, "scenarios")])) {
  const s = loadScenario(file);
  shipped(`${file.slice(root.length + 1)}: ${s.name}`, async () => {
    const r = await runScenario(file);
    if (s.expectFailure) {
      // Known to fail until a feature lands: it must fail (not pass silently, not crash the runner).
      assert.is(r.outcome, "xfail", explain(r));
    } else {
      assert.is(r.outcome, "passed", explain(r));
    }
    assert.ok(r.ok);
  });
}

shipped("publish via auto: core NATS where no stream captures the subject; via jetstream there fails the step, saying why", async () => {
  const lines = (via: string) => [
    "name: loose subjects",
    "job: JOBS/order-totals.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: ORDERS, subjects: ['orders.>'] }]",
    "steps:",
    `  - publish: { subject: loose.x, data: hello, count: 3${via} }`,
    "  - publish: { subject: orders.eu, json: { user: u1, amount: 2 } }",
    "  - start: {}",
    "  - wait: { exit: 0 }",
    "expect:",
    "  - stream: TOTALS",
    "    count: 1",
  ].join("\n");
  // `weir scenario` hands one signal to every file's run: a run that ended must not stay listening on it.
  const signal = new AbortController().signal;
  const auto = await runScenario(scenarioFile("loose-auto.scenario.yaml", lines("")), { signal });
  assert.is(auto.outcome, "passed", explain(auto));
  assert.is(getEventListeners(signal, "abort").length, 0, "the ended run took its abort listener off");
  const strict = await runScenario(scenarioFile("loose-js.scenario.yaml", lines(", via: jetstream")));
  assert.is(strict.outcome, "failed", explain(strict));
  assert.match(strict.reason ?? "", /JetStream publish to loose\.x failed: no stream captures this subject/);
});

shipped("wait watermark on the chain that assigns them; a stop with a savepoint the job refuses fails the step at once", async () => {
  const file = scenarioFile("refused.scenario.yaml", [
    "name: watermark of the assigner, then a refused savepoint",
    "job: JOBS/sensor-windows.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: SENSORS, subjects: ['sensors.>'] }]",
    "steps:",
    "  - publish: { subject: sensors.a, json: { sensor: a, ts: '${1000 * i}', value: 1 }, count: 5 }",
    "  - publish: { subject: sensors.b, json: { sensor: b, ts: '${1000 * i}', value: 1 }, count: 5 }",
    "  - start: {}",
    "  - wait: { watermark: { operator: timestamps, atLeast: 3000 }, timeoutMs: 60000 }",
    "  - stop: { via: control, savepoint: true }",
    "    timeoutMs: 120000",
    "expect: []",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "failed", explain(r));
  // Step 4 (the watermark) passed; step 5 failed on the job's answer, not after its 120 s timeout.
  assert.match(r.reason ?? "", /^step 5 .*the job refused the stop request: stop --savepoint needs checkpointing/, explain(r));
});

shipped("a watermark wait on a manual clock that never advances: the timeout says periodic watermarks wait for advanceClock", async () => {
  const file = scenarioFile("manual-watermark.scenario.yaml", [
    "name: watermark on a manual clock",
    "job: JOBS/sensor-windows.ts",
    "options: { stateBackend: heap, manualClock: 0 }",
    "streams: [{ name: SENSORS, subjects: ['sensors.>'] }]",
    "steps:",
    "  - publish: { subject: sensors.a, json: { sensor: a, ts: '${1000 * i}', value: 1 }, count: 5 }",
    "  - start: {}",
    "  - wait: { watermark: { operator: timestamps, atLeast: 3000 }, timeoutMs: 4000 }",
    "expect: []",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "failed", explain(r));
  assert.match(r.reason ?? "", /^step 3 .*none.*on a manual clock, periodic watermarks are emitted only as advanceClock moves the clock/, explain(r));
});

shipped("restart: process starts the job with the options it was started with (here parallelism 3)", async () => {
  const file = scenarioFile("restart-options.scenario.yaml", [
    "name: restart keeps the start options",
    "job: JOBS/visit-counts.ts",
    "streams: [{ name: VISITS, subjects: ['visits.>'] }]",
    "steps:",
    "  - start: { options: { parallelism: 3 } }",
    "  - wait: { state: { operator: count visits, subtask: 2, is: running } }",
    "  - kill: process",
    "  - restart: process",
    "  - wait: { state: { operator: count visits, subtask: 2, is: running } }",
    "  - stop: {}",
    "expect: []",
  ].join("\n"));
  await assertPasses(file);
});

shipped("stop and kill after a bounded job ended by itself: the stop holds when it ended with the exit expected", async () => {
  const lines = (exit: string) => [
    "name: stop after the end",
    "job: JOBS/order-totals.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: ORDERS, subjects: ['orders.>'] }]",
    "steps:",
    "  - publish: { subject: orders.eu, json: { user: u1, amount: 2 }, count: 3 }",
    "  - start: {}",
    "  - wait: { output: { stream: TOTALS, count: 3 } }",
    "  - wait: { exit: 0 }",
    "  - kill: process",
    `  - stop: { exit: ${exit} }`,
    "expect:",
    "  - stream: TOTALS",
    "    count: 3",
  ].join("\n");
  const ok = await runScenario(scenarioFile("stop-ended.scenario.yaml", lines("0")));
  assert.is(ok.outcome, "passed", explain(ok));
  const wrong = await runScenario(scenarioFile("stop-ended-1.scenario.yaml", lines("1")));
  assert.is(wrong.outcome, "failed", explain(wrong));
  assert.match(wrong.reason ?? "", /stopped with exit code 0, expected exit 1/, explain(wrong));
});

shipped("options: { mode: batch } runs the job as weir run --mode batch: one final total per user, not one per order", async () => {
  const file = scenarioFile("batch-mode.scenario.yaml", [
    "name: the order totals in batch mode",
    "job: JOBS/order-totals.ts",
    "options: { stateBackend: heap, mode: batch }",
    "streams: [{ name: ORDERS, subjects: ['orders.>'] }]",
    "steps:",
    "  - publish: { subject: orders.eu, json: { user: u1, amount: 2 }, count: 3 }",
    "  - start: {}",
    "  - wait: { exit: 0 }",
    "expect:",
    "  - stream: TOTALS",
    "    records: [{ user: u1, amount: 6 }]",
  ].join("\n"));
  await assertPasses(file);
});

shipped("a scenario whose expectation is wrong fails, naming what differs", async () => {
  const file = scenarioFile("wrong.scenario.yaml", [
    "name: wrong totals",
    "job: JOBS/order-totals.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: ORDERS, subjects: ['orders.>'] }]",
    "steps:",
    "  - publish: { subject: orders.eu, json: { user: u1, amount: 2 }, count: 3 }",
    "  - start: {}",
    "  - wait: { exit: 0 }",
    "expect:",
    "  - stream: TOTALS",
    "    lastPerKey: user",
    "    records: [{ user: u1, amount: 7 }]",
    "  - stream: TOTALS",
    "    count: 3",
    "  - dlq: { count: 1 }",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "failed");
  assert.not.ok(r.ok);
  assert.is(r.failures.length, 2, r.failures.join("\n"));
  assert.match(r.reason!, /^expect\[0\] \(stream TOTALS\): .*"u1": got \{"amount":6,"user":"u1"\}, expected \{"amount":7,"user":"u1"\}/);
  assert.match(r.failures[1]!, /^expect\[2\] \(dlq\): 0 dead letters, expected 1$/);
});

shipped("advanceClock on a job that runs on the system clock fails the step, saying how to run it on a manual one", async () => {
  const file = scenarioFile("wall-clock.scenario.yaml", [
    "job: JOBS/hourly-totals.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: ORDERS, subjects: ['orders.>'] }]",
    "steps:",
    "  - start: {}",
    "  - advanceClock: 3600000",
    "  - stop: {}",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "failed");
  assert.match(r.reason!, /^step 2 \(advance the clock 3600000 ms\): .*cannot advance the clock of job scenario-hourly-totals: .*--manual-clock/);
  assert.not.ok(r.reason!.includes("\n"), r.reason);
});

shipped("a step that cannot complete fails at its timeout with where things stand", async () => {
  const file = scenarioFile("timeout.scenario.yaml", [
    "job: JOBS/wordcount.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: WORDS, subjects: ['words.>'] }]",
    "steps:",
    "  - start: {}",
    "  - publish: { subject: words.left, data: 'one two' }",
    "  - wait: { output: { stream: COUNTS, count: 3 }, timeoutMs: 1500 }",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "failed");
  assert.is(r.reason, "step 3 (wait output COUNTS ≥ 3): timed out after 1500 ms: COUNTS has 2 of 3 messages");
});

shipped("a job that fails to start fails the steps after it with its stderr line", async () => {
  const file = scenarioFile("no-stream.scenario.yaml", [
    "job: JOBS/wordcount.ts",
    "steps:",
    "  - start: {}",
    "  - wait: { output: { stream: COUNTS, count: 1 } }",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "failed");
  assert.match(r.reason!, /^step 2 \(wait output COUNTS ≥ 1\): the job process ended \(exit code 1: weir: .*WORDS.*\) before this happened/);
});

shipped("named workers: kill: { worker: b } SIGKILLs b, not main; main alone then stops the job, and a stop of the ended job holds (b's SIGKILL was its kill step's)", async () => {
  const file = scenarioFile("worker-killed.scenario.yaml", [
    "job: JOBS/wordcount.ts",
    "options: { parallelism: 2, stateBackend: heap, checkpointIntervalMs: 200 }",
    "timeoutMs: 30000",
    "streams: [{ name: WORDS, subjects: ['words.>'] }]",
    "steps:",
    "  - start: {}",
    "  - start: { worker: b }",
    "  - wait: { workers: 2 }",
    "  - kill: { worker: b }",
    "  - wait: { workers: 1 }",
    "  - stop: { worker: main }",
    "  - stop: {}",
    "expect:",
    "  - exit: 0",
  ].join("\n"));
  const r = await assertPasses(file);
  assert.match(r.stderr, /^--- job process 1 \(exit code 0\)$/m, "main stopped the job gracefully");
  assert.match(r.stderr, /^--- job process 2 \(killed by SIGKILL\)$/m, "worker b was SIGKILLed");
});

shipped("a job process that writes megabytes to stderr keeps the end: its failure line is the last weir: line", async () => {
  // A stand-in for `weir run`: 2 MB of a chatty job's own lines, then the one line that says why.
  const bin = join(dir, "chatty-weir.mjs");
  writeFileSync(bin, 'for (let i = 0; i < 10000; i++) process.stderr.write(`debug ${i} ${"-".repeat(200)}\\n`);\nprocess.stderr.write("weir: no bad users allowed\\n", () => process.exit(1));\n');
  const proc = new JobProcess({ jobPath: "job.ts", natsUrl: "nats://127.0.0.1:1", overrides: {}, weirBin: bin });
  try {
    assert.ok(await proc.waitExit(30_000), "the process ended");
    assert.is(proc.failureLine(), "weir: no bad users allowed");
    assert.match(proc.describeExit(), /^exit code 1: weir: no bad users allowed$/);
    assert.match(proc.stderr, /^\[\.\.\. the first \d+ characters of stderr dropped \.\.\.\]\ndebug \d+ -+\n/);
    assert.ok(proc.stderr.length < 1.1 * (1 << 20), `kept ${proc.stderr.length} characters`);
  } finally {
    await proc.kill();
  }
});

shipped("a job that failed fails the scenario unless a step or expectation expected it", async () => {
  const lines = (expect: string[]) => [`job: ${join(root, "tests/fixtures/jobs/build-fails.ts")}`, "steps:", "  - start: {}", ...expect].join("\n");
  // Nothing looked at the exit: the scenario passed, as if the job had run.
  const r = await runScenario(scenarioFile("unnoticed.scenario.yaml", lines([])));
  assert.is(r.outcome, "failed");
  assert.is(r.reason, 'the job ended with exit code 1: weir: job file tests/fixtures/jobs/build-fails.ts: its build function threw Error: the pipeline cannot be built, which no step or expectation expected (a wait: { exit: nonzero } step, or an exit or failure expectation, expects it)'.replace("tests/fixtures", join(root, "tests/fixtures")));
  await assertPasses(scenarioFile("expected.scenario.yaml", lines(["expect:", "  - failure: the pipeline cannot be built"])));
});

shipped("a bad file fails with one line naming the file and the field", async () => {
  const file = scenarioFile("bad.scenario.yaml", "job: JOBS/wordcount.ts\nsteps:\n  - publish: { subject: a, data: x }\n  - start: {}\n  - publish: { subject: 3, data: x }\n");
  const r = await runScenario(file);
  assert.is(r.outcome, "failed");
  assert.is(r.reason, `${file}: steps[2].publish.subject: expected non-empty string, got 3`);
});

shipped("a missing job module fails with one line", async () => {
  const file = scenarioFile("nojob.scenario.yaml", "job: ./nowhere.ts\nsteps: []\n");
  const r = await runScenario(file);
  assert.is(r.outcome, "failed");
  assert.is(r.reason, `${file}: job: job file not found: ${join(dir, "nowhere.ts")}`);
});

shipped("a scenario marked expectFailure that passes is an error (xpass)", async () => {
  const file = scenarioFile("xpass.scenario.yaml", [
    "expectFailure: pretend this is not built",
    "job: JOBS/order-totals.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: ORDERS, subjects: ['orders.>'] }]",
    "steps:",
    "  - start: {}",
    "  - wait: { exit: 0 }",
    "expect:",
    "  - exit: 0",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "xpass");
  assert.not.ok(r.ok);
  assert.match(r.reason!, /remove the mark/);
});

shipped("weir scenario prints a table and exits non-zero when a scenario failed", () => {
  const good = join(root, "scenarios/union-connect.scenario.yaml");
  const bad = scenarioFile("cli-bad.scenario.yaml", "job: JOBS/wordcount.ts\nsteps:\n  - sleep: soon\n");
  const run = spawnSync(process.execPath, [join(root, "bin/weir.mjs"), "scenario", good, bad], { cwd: root, encoding: "utf8", timeout: 60_000 });
  assert.is(run.status, 1, run.stdout + run.stderr);
  const lines = run.stdout.trim().split("\n");
  assert.match(lines[0]!, /^scenario\s+result\s+secs\s+reason$/);
  assert.ok(lines.some((l) => /^union \+ connect enriches clicks .*\s+pass\s+\d+\.\d$/.test(l)), run.stdout);
  // Its row names the file; its reason says only why (the path not again).
  assert.ok(lines.some((l) => /cli-bad\.scenario\.yaml\s+FAIL\s+\d+\.\d\s+steps\[0\]\.sleep: expected non-negative number, got "soon"$/.test(l)), run.stdout);
  assert.is(lines[lines.length - 1], "2 scenarios: 1 passed, 1 failed");
  const ok = spawnSync(process.execPath, [join(root, "bin/weir.mjs"), "scenario", good], { cwd: root, encoding: "utf8", timeout: 60_000 });
  assert.is(ok.status, 0, ok.stdout + ok.stderr);
});

shipped("SIGINT to weir scenario: the scenario fails as interrupted, its job process and nats-server are gone, exit 130", async () => {
  const file = scenarioFile("long.scenario.yaml", [
    "job: JOBS/wordcount.ts",
    "options: { stateBackend: heap }",
    "streams: [{ name: WORDS, subjects: ['words.>'] }]",
    "steps:",
    "  - start: {}",
    "  - sleep: 60000",
  ].join("\n"));
  const child = spawn(process.execPath, [join(root, "bin/weir.mjs"), "scenario", file, "--verbose"], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (d: Buffer) => { stdout += d.toString(); });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  try {
    const deadline = Date.now() + 60_000;
    while (!stdout.includes("step 2 (sleep")) {
      if (Date.now() > deadline) throw new Error(`the scenario did not reach its sleep: ${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const children = spawnSync("pgrep", ["-P", String(child.pid)], { encoding: "utf8" }).stdout.split("\n").filter(Boolean).map(Number);
    assert.ok(children.length >= 2, `the server and the job run as children: ${children.join(", ")}`);
    child.kill("SIGINT");
    const code = (await within(exited, 60_000)) ?? "hung";
    assert.is(code, 130, stdout);
    assert.match(stdout, /step 2 \(sleep 60000 ms\): interrupted \(SIGINT\)/);
    const alive = children.filter((pid) => { try { process.kill(pid, 0); return true; } catch { return false; } });
    assert.equal(alive, [], "no child process left");
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
  }
});

shipped("a wait while no job runs still waits for a background publish; a job module that never loads fails at the start timeout", async () => {
  const file = scenarioFile("background.scenario.yaml", [
    "job: JOBS/wordcount.ts",
    "streams: [{ name: WORDS, subjects: ['words.>'] }]",
    "steps:",
    "  - publish: { subject: words.x, data: 'w${i}', count: 20, intervalMs: 50, background: true }",
    "  - wait: { output: { stream: WORDS, count: 20 } }",
  ].join("\n"));
  const r = await runScenario(file);
  assert.is(r.outcome, "passed", explain(r));
  // A module (an import makes it one) whose top-level await never settles.
  writeFileSync(join(dir, "never.mts"), `import { defineJob } from "${root}/mod.ts";\nawait new Promise(() => {});\nexport default defineJob({ name: "never" }, () => {});\n`);
  const never = scenarioFile("never.scenario.yaml", ["job: never.mts", "timeoutMs: 2000", "steps:", "  - sleep: 1"].join("\n"));
  const n = await runScenario(never);
  assert.is(n.outcome, "failed");
  assert.is(n.reason, "job never.mts: did not load within 2000 ms");
});

shipped("docs/scenarios.md shows a scenario that is valid", () => {
  const doc = readFileSync(join(root, "docs/scenarios.md"), "utf8");
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => /^job:/m.test(b));
  assert.ok(blocks.length > 0, "a full example in docs/scenarios.md");
  for (const [i, b] of blocks.entries()) {
    // Its job path is relative to scenarios/; here it points at the same job from the temp dir.
    const file = scenarioFile(`doc-${i}.scenario.yaml`, b.replace(/^job: \.\.\/examples\/scenarios\//m, "job: JOBS/"));
    loadScenario(file);
  }
});

shipped.run();

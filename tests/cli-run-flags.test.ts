// `weir run`'s flags override the job's own options (API.md: "CLI flags override options"):
// --checkpoint-interval turns checkpoints on for a job defined without them (and 0 turns them off for one
// defined with them), --parallelism and --state-backend replace the job's; a malformed value is one line
// naming the flag and a non-zero exit, before anything runs.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { createStream, publishAll } from "./helpers/streams.ts";
import { eventually, runWeir, startWeir, within, type WeirProcess } from "./helpers/cli.ts";

const test = suite("weir run flags");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

interface Status { parallelism: number; checkpoints?: { completed: number } }

async function status(): Promise<Status | undefined> {
  const r = await runWeir(["status", "workers", "--json", "--nats", nats.url]);
  return r.code === 0 ? (JSON.parse(r.stdout) as Status) : undefined;
}

async function stopped(run: WeirProcess): Promise<void> {
  const stop = await runWeir(["stop", "workers", "--nats", nats.url], { deadlineMs: 90_000 });
  assert.is(stop.code, 0, stop.stderr);
  assert.is((await within(run.exited, 60_000))?.code, 0, run.stderr().slice(-600));
}

test.before(async () => {
  const nc = await connect({ servers: nats.url });
  try {
    await createStream(nc, "IN", ["in.*"]);
    await createStream(nc, "OUT", ["out.>"]);
    await publishAll(nc, Array.from({ length: 40 }, (_, id) => [`in.${id % 4}`, { id, key: `k${id % 5}` }] as [string, unknown]));
  } finally {
    await nc.close();
  }
});

test("--checkpoint-interval, --parallelism and --state-backend replace what the job defines", async () => {
  // The job as defined: no checkpoints (0), parallelism 4, state on KV.
  const run = startWeir(["run", JOB, "--nats", nats.url, "--checkpoint-interval", "100", "--parallelism", "3", "--state-backend", "heap"], { env: { WORKERS_CHECKPOINT_MS: "0" } });
  try {
    await run.waitForStderr("weir: running workers (parallelism 3, state heap)", 60_000);
    const s = await eventually("two completed checkpoints", 60_000, async () => {
      const now = await status();
      return (now?.checkpoints?.completed ?? 0) >= 2 ? now : undefined;
    });
    assert.is(s.parallelism, 3);
    await stopped(run);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
});

test("--checkpoint-interval 0 turns off the checkpoints a job defines: a stop with a savepoint is refused", async () => {
  const run = startWeir(["run", JOB, "--nats", nats.url, "--checkpoint-interval", "0", "--restore", "none"], { env: { WORKERS_CHECKPOINT_MS: "100" } });
  try {
    await run.waitForStderr("weir: running workers", 60_000);
    const refused = await runWeir(["stop", "workers", "--savepoint", "--nats", nats.url], { deadlineMs: 90_000 });
    assert.is.not(refused.code, 0);
    assert.match(refused.stderr, /needs checkpointing/, refused.stderr);
    assert.is(refused.stderr.trim().split("\n").length, 1, `one line: ${refused.stderr}`);
    assert.is((await status())?.checkpoints?.completed ?? 0, 0, "no checkpoint was taken");
    await stopped(run);
  } finally {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  }
});

for (const [flags, named] of [
  [["--checkpoint-interval", "-5"], /--checkpoint-interval/],
  [["--checkpoint-interval", "soon"], /--checkpoint-interval/],
  [["--state-backend", "rocksdb"], /--state-backend/],
  [["--parallelism", "0"], /--parallelism/],
] as const) {
  test(`weir run ${flags.join(" ")}: one line naming the flag, non-zero exit`, async () => {
    const r = await runWeir(["run", JOB, "--nats", nats.url, ...flags]);
    assert.is.not(r.code, 0);
    assert.match(r.stderr, named, r.stderr);
    assert.is(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
  });
}

test("a flag that makes the job's options refused (--mode batch on a job with checkpointIntervalMs) is named in the one line", async () => {
  // It said "job options: checkpointIntervalMs with mode \"batch\" ...", naming no flag: the file says no batch.
  const r = await runWeir(["run", "tests/fixtures/jobs/bounded-chain.ts", "--nats", nats.url, "--mode", "batch"]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /^weir: job options: checkpointIntervalMs with mode "batch": .* \(given by weir run --mode batch\)\n$/, r.stderr);
});

test("--workers 2: records a print sink writes come out as written, behind [worker n]; JSON log lines get \"process\"", async () => {
  const r = await runWeir(["run", "tests/fixtures/jobs/print-json.ts", "--nats", nats.url, "--workers", "2"], { env: { PRINT_JOB: "printworkers" }, deadlineMs: 90_000 });
  assert.is(r.code, 0, r.stderr);
  // The supervisor wrote "process" into every stdout line starting with "{": {"process":1,"a":1}, {"process":1,} and {"process":1,not json.
  const printed = r.stdout.split("\n").filter((l) => /\] [{]/.test(l) || l.startsWith("{")).map((l) => l.replace(/^\[worker [12]\] /, ""));
  assert.equal(printed, ['{"a":1}', "{}", "{not json"], r.stdout);
  const json = r.stderr.split("\n").filter((l) => l.startsWith("{"));
  assert.ok(json.length > 0, r.stderr);
  for (const l of json) assert.ok([1, 2].includes((JSON.parse(l) as { process: number }).process), l);
});

test.run();

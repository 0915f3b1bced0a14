// A failure no restart mends ends a job on workers as it ends one in a single process: a worker's reply
// to "deploy" carries its failure's code, so the leader does not restart over and over (with growing
// delays) a restore that can never succeed.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { eventually, runWeir, startWeir, within } from "./helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";

const test = suite("workers: a restore that cannot succeed");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/secured-counts.ts";

test("a checkpoint of the heap backend, run on two workers with the KV backend: the job fails at once, exit 1, with the reason", async () => {
  const env = { SECURED_JOB: "refused", SECURED_UNBOUNDED: "1" };
  const nc = await connect({ servers: nats.url });
  const heap = startWeir(["run", JOB, "--nats", nats.url, "--state-backend", "heap"], { env });
  try {
    await eventually("a checkpoint on the heap backend", 60_000, async () => ((await fetchStatus(nc, "refused").catch(() => undefined))?.checkpoints?.completed ?? 0) >= 1 || undefined);
    const stop = await runWeir(["stop", "refused", "--nats", nats.url]);
    assert.is(stop.code, 0, stop.stderr);
    assert.is((await within(heap.exited, 60_000))?.code, 0, heap.stderr().slice(-800));
  } finally {
    if (heap.child.exitCode === null) heap.child.kill("SIGKILL");
    await nc.close();
  }
  const kv = await runWeir(["run", JOB, "--nats", nats.url, "--workers", "2", "--parallelism", "2", "--state-backend", "jetstream-kv"], { env, deadlineMs: 90_000 });
  assert.is(kv.code, 1, `the run fails (exit 1), never finishing: ${kv.stderr.slice(-1500)}`);
  assert.match(kv.stderr, "was taken with the heap state backend, and this job runs jetstream-kv");
  assert.not.match(kv.stderr, /next restart in|restarting from/, "no restart was tried");
  // The last line is the failure itself, naming the worker, as a lone `weir run` ends with it.
  const last = kv.stderr.trim().split("\n").pop() ?? "";
  assert.match(last, /^weir: .*was taken with the heap state backend, and this job runs jetstream-kv.* \(worker [12]\)$/, last);
});

test.run();

// A worker of `weir run --workers N` that fails while the others still load the job file: the run ends
// with that failure (exit 1, its line last), not with the code of a worker its supervisor stopped while
// loading (which exited 130, as a lone `weir run` stopped by a signal does, and the run then read 130).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("workers: one fails while another loads");
const nats = withServer(test);

test("the run fails with the failing worker's exit code and reason, the loading one stopped quietly", async () => {
  const dir = await mkdtemp(join(tmpdir(), "weir-onefails-"));
  try {
    const run = await runWeir(["run", "tests/fixtures/jobs/one-fails-one-loads.ts", "--nats", nats.url, "--workers", "2"], { env: { ONE_FAILS_LOCK: join(dir, "lock") }, deadlineMs: 90_000 });
    assert.is(run.code, 1, run.stderr.slice(-1500));
    assert.match(run.stderr, "one-fails-one-loads: loading", "the other worker was still loading");
    assert.match(run.stderr, /worker [12] failed \(exit code 1\); stopping the other workers/);
    const last = run.stderr.trim().split("\n").pop() ?? "";
    assert.match(last, /this worker fails while loading.*\(worker [12]\)$/, last);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();

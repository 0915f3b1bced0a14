// `weir checkpoints <job>`: a job's completed checkpoints from its bucket, the latest marked; a job with
// no checkpoint bucket is one line and non-zero, and the command creates nothing.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const test = suite("weir checkpoints");
const nats = withServer(test);

test("lists a finished job's checkpoints, the latest marked; an unknown job is one line and creates no bucket", async () => {
  const run = await runWeir(["run", "tests/fixtures/jobs/fail-once.ts", "--nats", nats.url, "--quiet"], { env: { JOB_NAME: "listed", COUNT: "3000", FAIL_AT: "999999" }, deadlineMs: 120_000 });
  assert.is(run.code, 0, run.stderr.slice(-800));
  const listed = await runWeir(["checkpoints", "listed", "--nats", nats.url]);
  assert.is(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^checkpoint \d+ \(latest\): triggered /m);
  const json = await runWeir(["checkpoints", "listed", "--nats", nats.url, "--json"]);
  const parsed = JSON.parse(json.stdout) as { latest?: { id: number }; checkpoints: Array<{ id: number }> };
  assert.ok(parsed.checkpoints.some((c) => c.id === parsed.latest?.id), "the latest is among those listed");

  const unknown = await runWeir(["checkpoints", "nosuchjob", "--nats", nats.url]);
  assert.is(unknown.code, 1);
  assert.is(unknown.stderr.trim(), "weir: job nosuchjob has no checkpoints on this NATS (no bucket weir_nosuchjob_ckpt); weir status lists the jobs running");
  const nc = await connect({ servers: nats.url });
  try {
    const names: string[] = [];
    for await (const s of (await jetstreamManager(nc)).streams.list()) names.push(s.config.name);
    assert.not.ok(names.includes("KV_weir_nosuchjob_ckpt"), "no bucket created for it");
  } finally {
    await nc.close();
  }
});

test.run();

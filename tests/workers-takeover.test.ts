// A worker that takes over a live run restores the checkpoint the job log recorded as committed, not the
// checkpoint bucket's `latest`: a newly elected stream leader can answer with an older `latest` (or none)
// before it has applied its log (nats-server before 2.11), and restoring that would count input again over
// state already in KV and publish committed output again. A purge of `latest` stands in for such a leader
// (as in tests/checkpoint-latest-behind): right after a commit, `latest` is purged and the leader
// SIGKILLed; the worker left takes over, and the output is exact.
import { suite } from "uvu";
import { jetstreamManager } from "@nats-io/jetstream";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir, eventually } from "./helpers/cli.ts";
import { checkOutputExplained, runningOn, withInput } from "./helpers/worker-counts.ts";

const s = suite("workers takeover");
const nats = withServer(s);
const JOB = "tests/fixtures/jobs/worker-counts.ts";
const LATEST = "$KV.weir_workers_ckpt.latest";

s("a worker taking over from a SIGKILLed leader restores the job log's last commit although `latest` reads as none: output exact", () => withInput(nats.url, 50, async ({ nc, procs, stopInput }) => {
  // Commits 3 s apart: the purge and the kill below land between two of them.
  const start = () => startWeir(["run", JOB, "--nats", nats.url], { env: { WORKERS_CHECKPOINT_MS: "3000" } });
  procs.push(start(), start());
  const st = await runningOn(nc, procs, "the job runs on both workers");
  const leader = procs.find((p) => p.child.pid === st.workers!.find((w) => w.leader)!.pid)!;
  const survivor = procs.find((p) => p !== leader)!;
  const jsm = await jetstreamManager(nc);
  const outputs = async () => (await jsm.streams.info("OUT").catch(() => undefined))?.state.messages ?? 0;
  // A commit publishes the checkpoint's output once `latest` has moved: right after new output shows,
  // `latest` and the log's last commit name the same checkpoint, and the next commit is 3 s away.
  const before = await outputs();
  await eventually("a commit's output", 60_000, async () => ((await outputs()) > before ? true : undefined));
  await jsm.streams.purge("KV_weir_workers_ckpt", { filter: LATEST });
  leader.child.kill("SIGKILL");
  await leader.exited;
  // The takeover first: the survivor's subtasks may still be publishing their share of the commit the
  // leader completed before its kill, which is new output that came before any takeover.
  await survivor.waitForStderr(/taking over the running job: restoring checkpoint \d+, the last its job log recorded/, 90_000);
  const taken = await outputs();
  await eventually("new output after the takeover", 90_000, async () => ((await outputs()) > taken ? true : undefined));
  const total = await stopInput();
  await checkOutputExplained(nc, total, [survivor]);
}));

s.run();

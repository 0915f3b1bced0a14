// npm run soak: a long run at steady load, to show that nothing grows. Starts its own nats-server, runs
// bench/jobs/soak.ts as a real `weir run` child process (keyed count in valueState + event-time tumbling
// window, exactly-once JetStream sinks, checkpoints every second, jetstream-kv state) while a producer
// publishes WEIR_SOAK_RATE records/s (default 2,000) over WEIR_SOAK_KEYS keys (default 10,000), each with
// a message id, for WEIR_SOAK_MINUTES (default 30). Every WEIR_SOAK_SAMPLE_SECONDS (default 60) it prints a
// row: RSS of the job and the server, consumers on every stream, size of each stream, records in/out and
// the last checkpoint. At the end: verdicts per figure after WEIR_SOAK_WARMUP_MINUTES (default 5, at most a
// third of the run), then `weir stop`, and the output checked against the reference (bench/soak-check.ts).
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { launchNatsServer } from "../runtime/internal.ts";
import { freePort, within } from "../tests/helpers/cli.ts";
import { fetchStatus } from "../runtime/cli/commands/control.ts";
import { checkCounts, checkWindows } from "./soak-check.ts";
import { assertModel, eventTime, keyIndex, keyName, type SoakModel } from "./soak-model.ts";
import { jobStatus, sample, type Sample } from "./soak-sample.ts";
import { TOLERANCE, fmt, tableHeader, tableRow, verdicts } from "./soak-report.ts";

const JOB = "soak";
const DRAIN_STALL_MS = 120_000;
const root = new URL("..", import.meta.url).pathname;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return n;
}

if (process.argv.length > 2) {
  console.error(`soak: takes no arguments (got ${process.argv.slice(2).join(" ")}); set WEIR_SOAK_MINUTES, WEIR_SOAK_RATE, WEIR_SOAK_KEYS, WEIR_SOAK_SAMPLE_SECONDS, WEIR_SOAK_WARMUP_MINUTES, WEIR_SOAK_CPU_PROF_DIR`);
  process.exit(2);
}
const minutes = setting("WEIR_SOAK_MINUTES", 30);
const sampleMs = setting("WEIR_SOAK_SAMPLE_SECONDS", 60) * 1000;
const warmup = Math.min(setting("WEIR_SOAK_WARMUP_MINUTES", 5), minutes / 3);
const model: SoakModel = { rate: setting("WEIR_SOAK_RATE", 2000), keys: Math.round(setting("WEIR_SOAK_KEYS", 10_000)), windowMs: 10_000 };
assertModel(model);

/** Publishes ids 0, 1, 2, ... at `model.rate` per second, each with a message id, retrying until acknowledged. */
class Producer {
  published = 0;
  private stopping = false;
  private running: Promise<void> | undefined;
  constructor(private readonly nc: NatsConnection) {}
  start(): void { this.running ??= this.loop(); }
  async stop(): Promise<void> { this.stopping = true; await this.running; }
  private async loop(): Promise<void> {
    const js = jetstream(this.nc, { timeout: 5000 });
    const started = Date.now();
    while (!this.stopping) {
      // Catch up to where the rate says we should be (in batches of at most half a second).
      const due = Math.min(Math.floor(((Date.now() - started) * model.rate) / 1000), this.published + Math.ceil(model.rate / 2));
      const from = this.published;
      if (due > from) {
        for (;;) {
          const acks = [];
          for (let id = from; id < due; id++) {
            const body = JSON.stringify({ id, key: keyName(keyIndex(model, id)), ts: eventTime(model, id) });
            // The stream's duplicate window drops a retried id that did arrive.
            acks.push(js.publish(`soak.in.${id % 2}`, body, { msgID: `e${id}` }));
          }
          const settled = await Promise.allSettled(acks);
          if (settled.every((s) => s.status === "fulfilled")) break;
          await sleep(200);
        }
        this.published = due;
      }
      await sleep(50);
    }
  }
}

function runWeir(args: string[], url: string): ChildProcess {
  // WEIR_SOAK_CPU_PROF_DIR: the job's CPU profile (node --cpu-prof, written when it exits) goes there.
  const profile = process.env.WEIR_SOAK_CPU_PROF_DIR ? ["--cpu-prof", `--cpu-prof-dir=${process.env.WEIR_SOAK_CPU_PROF_DIR}`] : [];
  const child = spawn(process.execPath, [...profile, `${root}bin/weir.mjs`, ...args, "--nats", url], {
    cwd: root, env: { ...process.env, SOAK_WINDOW_MS: String(model.windowMs) }, stdio: ["ignore", "pipe", "pipe"],
  });
  for (const s of [child.stdout!, child.stderr!]) createInterface({ input: s }).on("line", (l) => console.log(`  [weir ${args[0]}] ${l}`));
  return child;
}

const exitOf = (child: ChildProcess) => new Promise<number | null>((resolve) => {
  if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
  else child.once("exit", (code) => resolve(code));
});

async function waitFor<T>(what: string, check: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`soak: ${what} not within ${ms / 1000} s`);
    await sleep(500);
  }
}

const server = await launchNatsServer();
const nc = await connect({ servers: server.url });
let job: ChildProcess | undefined;
let failed = false;
try {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: "SOAK_IN", subjects: ["soak.in.*"] });
  await jsm.streams.add({ name: "SOAK_COUNTS", subjects: ["soak.count"] });
  await jsm.streams.add({ name: "SOAK_WINDOWS", subjects: ["soak.window"] });
  console.log(`soak: ${minutes} min at ${model.rate} records/s over ${model.keys} keys, ${model.windowMs / 1000} s windows, checkpoints every 1 s; server ${server.url} (pid ${server.pid})`);
  // --http: the job's /metrics give its V8 heap and external memory beside its RSS.
  const metricsPort = await freePort();
  job = runWeir(["run", "bench/jobs/soak.ts", "--quiet", "--http", `127.0.0.1:${metricsPort}`], server.url);
  const jobExit = exitOf(job);
  await waitFor("the job running", async () => (await fetchStatus(nc, JOB))?.state === "running", 120_000);
  console.log(`soak: job running (pid ${job.pid})`);
  const producer = new Producer(nc);
  const t0 = Date.now();
  producer.start();
  const samples: Sample[] = [];
  let header = false;
  for (let i = 1; i * sampleMs <= minutes * 60_000; i++) {
    const next = t0 + i * sampleMs;
    const ended = await Promise.race([jobExit.then(() => true), sleep(Math.max(0, next - Date.now())).then(() => false)]);
    if (ended) throw new Error(`soak: the job exited early (code ${job.exitCode})`);
    const s = await sample(nc, JOB, { job: job.pid!, server: server.pid }, Number((((Date.now() - t0) / 60_000)).toFixed(1)), `http://127.0.0.1:${metricsPort}/metrics`);
    samples.push(s);
    if (!header) { console.log(tableHeader(Object.keys(s.figures))); header = true; }
    console.log(tableRow(s));
  }
  await producer.stop();
  const published = producer.published;
  const elapsed = (Date.now() - t0) / 1000;
  console.log(`\nsoak: published ${published} records in ${elapsed.toFixed(0)} s (${Math.round(published / elapsed)}/s); draining`);
  console.log(`\nverdicts after a ${warmup}-min warm-up (flat: the peak of the second half at most ${TOLERANCE * 100}% above the peak of the first half, or a floor of 16 MB RSS / 100 messages / 256 KiB (changelog: 1,000 messages / 1,000 KiB) if larger):`);
  console.log("| figure | after warm-up | last | slope / 10 min | verdict |\n| --- | --- | --- | --- | --- |");
  const vs = verdicts(samples, warmup);
  for (const v of vs) console.log(`| ${v.figure} | ${fmt(v.first)} | ${fmt(v.last)} | ${fmt(v.slopePer10Min)} | ${v.verdict} |`);
  const consumers = samples[samples.length - 1]?.consumersByStream ?? {};
  console.log(`consumers per stream at the end: ${Object.entries(consumers).map(([k, n]) => `${k} ${n}`).join(", ")}`);

  const drainStart = Date.now();
  // A loaded machine drains slowly: give up only after DRAIN_STALL_MS without a new output.
  let counted = -1;
  let progressAt = Date.now();
  for (;;) {
    const n = (await jsm.streams.info("SOAK_COUNTS")).state.messages;
    if (n >= published) break;
    if (n > counted) { counted = n; progressAt = Date.now(); }
    if (Date.now() - progressAt > DRAIN_STALL_MS) throw new Error(`soak: draining stalled at ${n} of ${published} counts`);
    await sleep(1000);
  }
  let pending = 0;
  for await (const c of jsm.consumers.list("SOAK_IN")) pending += c.num_pending + c.num_ack_pending;
  const status = await jobStatus(nc, JOB);
  console.log(`soak: drained in ${((Date.now() - drainStart) / 1000).toFixed(1)} s; input consumers' pending ${pending}; job records in ${status?.recordsIn}, restarts ${status?.restarts}, checkpoints ${status?.checkpoints?.completed} completed / ${status?.checkpoints?.aborted} aborted`);

  const stop = runWeir(["stop", JOB], server.url);
  const stopCode = await exitOf(stop);
  const jobEnded = await within(jobExit.then((code) => ({ code })), 120_000);
  const jobCode = jobEnded === undefined ? "still running" : jobEnded.code;
  console.log(`soak: weir stop exited ${stopCode}; the job exited ${jobCode}`);
  const counts = await checkCounts(nc, model, published);
  const windows = await checkWindows(nc, model, published);
  console.log(`soak: counts: ${counts.outputs} outputs for ${published} inputs, lost ${counts.lost}, duplicated ${counts.duplicated}, keys without their final count ${counts.wrongFinal}`);
  console.log(`soak: windows: ${windows.outputs} outputs over ${windows.windows} windows, wrong counts ${windows.wrong}, duplicated ${windows.duplicated}, missing ${windows.missing}${windows.missing ? ` (window: missing ${JSON.stringify(windows.missingByWindow)})` : ""}`);
  const exact = counts.lost === 0 && counts.duplicated === 0 && counts.wrongFinal === 0 && windows.wrong === 0 && windows.duplicated === 0 && windows.missing === 0;
  const grows = vs.filter((v) => !/^(flat|steady)/.test(v.verdict)).map((v) => v.figure);
  console.log(`\nsoak: output ${exact ? "exact" : "NOT EXACT"}; input ${pending === 0 ? "fully consumed" : `${pending} pending`}; ${grows.length ? `not flat: ${grows.join(", ")}` : "every figure flat or steady"}`);
  failed = !exact || pending !== 0 || stopCode !== 0 || jobCode !== 0;
} catch (e) {
  console.error((e as Error).message);
  failed = true;
} finally {
  if (job && job.exitCode === null && job.signalCode === null) { job.kill("SIGKILL"); await exitOf(job); }
  await nc.close().catch(() => {});
  await server.stop();
}
process.exit(failed ? 1 : 0);

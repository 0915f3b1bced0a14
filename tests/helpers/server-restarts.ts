// Runs a keyed count with an exactly-once JetStream sink, input published continuously, while its
// nats-server is SIGKILLed and started again (same port, same store) again and again; then compares the
// output with the reference: every key's counts 1..n, each exactly once. Used by
// tests/nats-restart.test.ts (a few restarts) and `npm run bench restarts` (more, with figures).
// With `disrupt` instead of `server` it runs against any set of servers (a cluster: tests/cluster-failover.test.ts,
// `npm run bench cluster`), and with `windows` the job also counts each key's events in 1000-id event-time
// windows to a second exactly-once sink, checked window by window.

import * as t from "io-ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { outputTag, Sinks, Sources, StreamEnvironment, TumblingEventTimeWindows, valueState, WatermarkStrategy, type JobClient } from "../../mod.ts";
import type { RestartableServer } from "../../runtime/nats/restartable-server.ts";
import { idRanges } from "./streams.ts";
import { within } from "./cli.ts";

export interface RestartRunOptions {
  /** A single server, SIGKILLed, down `downMs`, restarted each round. */
  readonly server?: RestartableServer;
  /**
   * Or: the URLs (comma-separated) and what each round does to the servers; returns when it is done, with
   * the moment to measure the time to progress from (e.g. the kill, or the restart).
   */
  readonly cluster?: { readonly url: string; disrupt(round: number): Promise<number> };
  /** The job's natsReplicas (and the input stream's replicas). */
  readonly natsReplicas?: number;
  /** Also run event-time windows over the same input (a second exactly-once sink). */
  readonly windows?: boolean;
  readonly restarts: number;
  /** How long the server stays down each time. */
  readonly downMs: number;
  /** Input records published per second while the job runs. */
  readonly ratePerSec: number;
  readonly checkpointIntervalMs: number;
  /** Deadline for each wait (progress after a restart, the final drain). */
  readonly waitMs: number;
  readonly log: (line: string) => void;
}

export interface RestartRunResult {
  readonly published: number;
  readonly outputs: number;
  /** Counts 1..n missing, summed over keys. */
  readonly lost: number;
  /** Counts seen more than once (or beyond n), summed over keys. */
  readonly duplicated: number;
  /** Per restart: ms from the server being back to the next new output (undefined: none before the deadline). */
  readonly progressMs: ReadonlyArray<number | undefined>;
  /** With `windows`: windows fired, and those missing, fired twice or with a wrong count. */
  readonly windows?: WindowCheck;
  readonly jobRestarts: number;
  readonly jobState: string;
  /** One line per subtask at the end (records, watermarks, backlog, the operators' figures), for a diagnosis. */
  readonly subtasks: readonly string[];
  /** When output is missing: the input stream's replicas and each of its consumers as the servers see them. */
  readonly consumers?: readonly string[];
  /** When output is missing: the input ids no output names, as ranges, and whether each key lost its last counts or counts in between. */
  readonly lostDetail?: readonly string[];
}

const Event = t.type({ id: t.number, key: t.string });
const count = valueState("count", t.number);
const keyOf = (i: number) => `k${(i * 31) % 101}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runWithServerRestarts(o: RestartRunOptions): Promise<RestartRunResult> {
  const url = o.server?.url ?? o.cluster!.url;
  const replicas = o.natsReplicas ?? 1;
  const nc = await connect({ servers: url.split(","), maxReconnectAttempts: -1, reconnectTimeWait: 200 });
  const env = StreamEnvironment.create({ name: "restarty", nats: url, parallelism: 2, checkpointIntervalMs: o.checkpointIntervalMs, natsReplicas: replicas }, { log: (m) => o.log(`  [job] ${m}`) });
  const publisher = new Publisher(nc, o.ratePerSec);
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "IN", subjects: ["in.*"], num_replicas: replicas });
    env
      .fromSource(Sources.jetstream({ stream: "IN", subjects: ["in.a", "in.b"], codec: Event }), { uid: "events" })
      .keyBy((e) => e.key)
      .process<{ key: string; n: number; id: number }>({
        async processElement(e, ctx) {
          const n = ((await ctx.state(count).value()) ?? 0) + 1;
          await ctx.state(count).update(n);
          ctx.collect({ key: e.key, n, id: e.id });
        },
      }, { uid: "count" })
      .sinkTo(Sinks.jetstream({ stream: "OUT", subject: (x) => `out.${x.key}` }), { uid: "out" });
    if (o.windows) {
      // Ids are event times: each subject (one per source subtask) is in id order.
      const late = outputTag<WindowCount & { id: number }>("late");
      const windows = env
        .fromSource(Sources.jetstream({ stream: "IN", subjects: ["in.a", "in.b"], codec: Event }), { uid: "events-w" })
        .assignTimestampsAndWatermarks(WatermarkStrategy.forMonotonousTimestamps((e) => e.id), { uid: "stamp" })
        .map((e): WindowCount & { id: number } => ({ key: e.key, w: Math.floor(e.id / WINDOW) * WINDOW, n: 1, id: e.id }), { uid: "one" })
        .keyBy((c) => c.key)
        .window(TumblingEventTimeWindows.of(WINDOW))
        .sideOutputLateData(late)
        .reduce((a, b) => ({ key: a.key, w: a.w, n: a.n + b.n, id: Math.max(a.id, b.id) }), { uid: "window" });
      windows.sinkTo(Sinks.jetstream({ stream: "OUTW", subject: (c) => `outw.${c.key}` }), { uid: "out-w" });
      // Late records (none in a correct run): named when windows are wrong, to tell a late input from a lost one.
      windows.getSideOutput(late).sinkTo(Sinks.jetstream({ stream: "LATEW", subject: (c) => `latew.${c.key}` }), { uid: "late-w" });
    }
    const client = await env.executeAsync();
    const outputs = () => outputCount(nc);
    const progressMs: Array<number | undefined> = [];
    publisher.start();
    await waitFor(async () => (await outputs()) > 0, o.waitMs);
    for (let i = 0; i < o.restarts; i++) {
      await sleep(200 + ((i * 397) % 1300));
      let back: number;
      if (o.server) {
        await o.server.kill();
        await sleep(o.downMs);
        await o.server.restart();
        back = Date.now();
      } else {
        back = await o.cluster!.disrupt(i);
      }
      const before = await waitFor(outputs, o.waitMs);
      const progressed = await waitFor(async () => (await outputs()) > before, o.waitMs);
      progressMs.push(progressed ? Date.now() - back : undefined);
      o.log(`restart ${i + 1}/${o.restarts}: ${progressed ? `new output ${Date.now() - back} ms after the server was back` : "no new output before the deadline"}; published ${publisher.published}`);
      // A stall is rare and gone by the end of the run: what the job and the streams were doing then.
      if (!progressed) for (const line of await stallView(nc, client.status())) o.log(`  stalled: ${line}`);
    }
    await publisher.stop();
    const published = publisher.published;
    await waitFor(async () => (await outputs()) >= published, o.waitMs);
    if (o.windows) {
      const closed = closedWindows(published).length;
      await waitFor(async () => (await outputCount(nc, "OUTW")) >= closed, o.waitMs);
    }
    const status = client.status();
    await within(client.stop().catch(() => {}), o.waitMs);
    const out = await readBySeq<{ key: string; n: number; id: number }>(nc, "OUT");
    const windows = o.windows ? await checkWindows(nc, published) : undefined;
    const subtasks = status.subtasks.map(describeSubtask);
    const incomplete = out.length < published || (windows !== undefined && windows.missing > 0);
    const consumers = incomplete ? await describeConsumers(nc, "IN") : undefined;
    const lost = compare(published, out);
    const lostDetail = lost.lost > 0 ? describeLost(published, out) : undefined;
    return { published, outputs: out.length, ...lost, progressMs, jobRestarts: status.restarts, jobState: status.state, subtasks, ...(windows ? { windows } : {}), ...(consumers ? { consumers } : {}), ...(lostDetail ? { lostDetail } : {}) };
  } finally {
    await publisher.stop();
    await within(env.close().catch(() => {}), o.waitMs);
    await within(nc.close().catch(() => {}), 5000);
  }
}

/** How many of the first `published` inputs each key has: its outputs must be exactly 1..that. */
function inputsPerKey(published: number): Map<string, number> {
  const expected = new Map<string, number>();
  for (let i = 0; i < published; i++) expected.set(keyOf(i), (expected.get(keyOf(i)) ?? 0) + 1);
  return expected;
}

/** Lost and duplicated counts against the reference: key k's outputs are exactly 1..(inputs of k). */
function compare(published: number, out: ReadonlyArray<{ key: string; n: number }>): { lost: number; duplicated: number } {
  const expected = inputsPerKey(published);
  const seen = new Map<string, Map<number, number>>();
  for (const x of out) {
    const m = seen.get(x.key) ?? new Map<number, number>();
    m.set(x.n, (m.get(x.n) ?? 0) + 1);
    seen.set(x.key, m);
  }
  let lost = 0;
  let duplicated = 0;
  for (const [key, n] of expected) {
    const m = seen.get(key) ?? new Map<number, number>();
    for (let c = 1; c <= n; c++) if (!m.has(c)) lost++;
    for (const [c, times] of m) duplicated += c > n ? times : times - 1;
  }
  for (const [key, m] of seen) if (!expected.has(key)) for (const times of m.values()) duplicated += times;
  return { lost, duplicated };
}

interface WindowCount { key: string; w: number; n: number }
const WINDOW = 1000;

/** Reference counts of every (key, window) of ids 0..published-1 (the last window may be partial). */
function referenceWindows(published: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < published; i++) {
    const k = `${keyOf(i)}@${Math.floor(i / WINDOW) * WINDOW}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/**
 * The windows that must have fired: those ending at or before `published - 2` (each subject's last id
 * holds its watermark; an open window past it cannot fire while the input continues).
 */
function closedWindows(published: number): string[] {
  const end = Math.floor((published - 2) / WINDOW) * WINDOW;
  return [...referenceWindows(published).keys()].filter((k) => Number(k.split("@")[1]) + WINDOW <= end);
}

export interface WindowCheck {
  fired: number;
  missing: number;
  duplicated: number;
  wrong: number;
  /** Of the wrong windows: records counted beyond the reference, and short of it; the first and last window start. */
  over?: number;
  under?: number;
  wrongFrom?: number;
  wrongTo?: number;
  /** Records the windows took as late (side output), with the first few ids. */
  late?: number;
  lateIds?: number[];
  /** Input ids stored after a higher id of the same subject (a late input the job cannot be blamed for). */
  inputOutOfOrder?: number;
}

/** Compares the fired windows with the reference; when some are wrong, also says how (for a diagnosis). */
async function checkWindows(nc: NatsConnection, published: number): Promise<WindowCheck> {
  const r = compareWindows(published, await readBySeq<WindowCount>(nc, "OUTW"));
  if (r.wrong === 0 && r.missing === 0) return r;
  const late = await readBySeq<{ id: number }>(nc, "LATEW");
  const input = await readBySeq<{ id: number }>(nc, "IN");
  const lastBySubject = [-1, -1];
  let inputOutOfOrder = 0;
  for (const e of input) {
    const subject = e.id % 2;
    if (e.id < lastBySubject[subject]!) inputOutOfOrder++;
    else lastBySubject[subject] = e.id;
  }
  return { ...r, late: late.length, lateIds: late.slice(0, 10).map((e) => e.id), inputOutOfOrder };
}

/** Closed windows missing, windows fired more than once, fired windows whose count is not the reference's. */
function compareWindows(published: number, out: readonly WindowCount[]): WindowCheck {
  const reference = referenceWindows(published);
  const seen = new Map<string, number>();
  let wrong = 0;
  let over = 0;
  let under = 0;
  let wrongFrom = Number.POSITIVE_INFINITY;
  let wrongTo = Number.NEGATIVE_INFINITY;
  for (const c of out) {
    const k = `${c.key}@${c.w}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    const expected = c.w + WINDOW > published ? 0 : reference.get(k) ?? 0;
    if (c.n === expected) continue;
    wrong++;
    if (c.n > expected) over += c.n - expected;
    else under += expected - c.n;
    wrongFrom = Math.min(wrongFrom, c.w);
    wrongTo = Math.max(wrongTo, c.w);
  }
  const missing = closedWindows(published).filter((k) => !seen.has(k)).length;
  let duplicated = 0;
  for (const times of seen.values()) duplicated += times - 1;
  return { fired: out.length, missing, duplicated, wrong, ...(wrong > 0 ? { over, under, wrongFrom, wrongTo } : {}) };
}

/**
 * Which inputs have no output (ids as ranges, by subject: in.a holds the odd ids), and per key whether the
 * missing counts are its last ones (input never counted) or gaps (counted, output not kept).
 */
function describeLost(published: number, out: ReadonlyArray<{ key: string; n: number; id: number }>): string[] {
  const seenIds = new Set(out.map((x) => x.id));
  const ranges = idRanges(Array.from({ length: published }, (_, id) => id).filter((id) => !seenIds.has(id)));
  const expected = inputsPerKey(published);
  const counts = new Map<string, Set<number>>();
  for (const x of out) counts.set(x.key, (counts.get(x.key) ?? new Set()).add(x.n));
  let tails = 0;
  let gaps = 0;
  for (const [key, n] of expected) {
    const got = counts.get(key) ?? new Set<number>();
    const top = Math.max(0, ...got);
    for (let c = 1; c <= n; c++) if (!got.has(c)) (c > top ? tails++ : gaps++);
  }
  return [`input ids without output: ${ranges.slice(0, 40).join(", ")}${ranges.length > 40 ? ` (${ranges.length} ranges)` : ""}`, `missing counts: ${tails} at keys' ends, ${gaps} in between`];
}

/**
 * Every message of `stream` in order, read by sequence (64 gets in flight, each retried for a while): no
 * consumer, which after a server loss can stall for good, so the read ends.
 */
async function readBySeq<T>(nc: NatsConnection, stream: string): Promise<T[]> {
  const jsm = await jetstreamManager(nc, { timeout: 5000 });
  const get = async (seq: number) => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await jsm.streams.getMessage(stream, { seq });
      } catch (e) {
        if (/no message found|not found/i.test((e as Error).message)) return null;
        if (attempt >= 10) throw e;
        await sleep(500);
      }
    }
  };
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return [];
  const out: T[] = [];
  for (let from = info.state.first_seq; from <= info.state.last_seq; from += 64) {
    const batch = await Promise.all(Array.from({ length: Math.min(64, info.state.last_seq - from + 1) }, (_, k) => get(from + k)));
    for (const m of batch) if (m) out.push(m.json<T>());
  }
  return out;
}

type Status = ReturnType<JobClient["status"]>;

/** One subtask's figures (records, watermarks, backlog, frames, its operators'), for a diagnosis. */
function describeSubtask(x: Status["subtasks"][number]): string {
  return `${x.name}#${x.index} ${x.state}: in ${x.recordsIn} out ${x.recordsOut} wm ${x.watermark} wm-out ${x.watermarkOut} backlog ${x.isBacklog} queued ${x.queuedFrames} pending ${x.pendingFrames} ${JSON.stringify(x.operators)}`;
}

/** The job's state and checkpoints, its subtasks, and the streams' leaders and consumers, at a stall. */
async function stallView(nc: NatsConnection, s: Status): Promise<string[]> {
  const c = s.checkpoints;
  const lines = [
    `job ${s.state}, restarts ${s.restarts}${s.failure ? `, failure ${s.failure}` : ""}, recent failures ${JSON.stringify(s.failures.slice(-3))}`,
    `checkpoints completed ${c?.completed}, aborted ${c?.aborted}, in flight ${c?.inFlight}, last completed ${JSON.stringify(c?.lastCompleted)}, last failure ${c?.lastFailure}`,
    ...s.subtasks.map(describeSubtask),
  ];
  for (const stream of ["OUT", "OUTW", "IN"]) lines.push(...(await describeConsumers(nc, stream)));
  return lines;
}

/** The stream's replicas (current? lag) and its consumers (where, delivered, pending, pulls waiting). */
async function describeConsumers(nc: NatsConnection, stream: string): Promise<string[]> {
  try {
    const jsm = await jetstreamManager(nc, { timeout: 5000 });
    const info = await jsm.streams.info(stream);
    const lines = [`stream ${stream}: last seq ${info.state.last_seq}, leader ${info.cluster?.leader}, replicas ${JSON.stringify(info.cluster?.replicas?.map((r) => ({ name: r.name, current: r.current, lag: r.lag })))}`];
    for await (const c of jsm.consumers.list(stream)) {
      lines.push(`consumer ${c.name} (${c.config.filter_subject ?? c.config.filter_subjects?.join(",")}) on ${c.cluster?.leader}: delivered ${c.delivered.stream_seq}, pending ${c.num_pending}, pulls waiting ${c.num_waiting}`);
    }
    return lines;
  } catch (e) {
    return [`consumers of ${stream} not described: ${(e as Error).message}`];
  }
}

async function outputCount(nc: NatsConnection, stream = "OUT"): Promise<number> {
  try {
    return (await (await jetstreamManager(nc, { timeout: 1000 })).streams.info(stream)).state.messages;
  } catch {
    return 0;
  }
}

/** Polls `check` until it is truthy or `ms` passed; returns its last value. */
async function waitFor<T>(check: () => Promise<T>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v || Date.now() > deadline) return v;
    await sleep(100);
  }
}

/** Publishes event after event at a steady rate, each with a message id, retrying until acknowledged. */
class Publisher {
  published = 0;
  private running: Promise<void> | undefined;
  private stopping = false;

  constructor(private readonly nc: NatsConnection, private readonly ratePerSec: number) {}

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
  }

  private async loop(): Promise<void> {
    const js = jetstream(this.nc, { timeout: 2000 });
    const batch = Math.max(1, Math.round(this.ratePerSec / 20));
    while (!this.stopping) {
      const started = Date.now();
      const from = this.published;
      for (;;) {
        // The stream's duplicate window drops a retried id that did arrive.
        const acks = Array.from({ length: batch }, (_, k) => {
          const id = from + k;
          return js.publish(`in.${id % 2 ? "a" : "b"}`, JSON.stringify({ id, key: keyOf(id) }), { msgID: `e${id}` });
        });
        const settled = await Promise.allSettled(acks);
        if (settled.every((s) => s.status === "fulfilled")) break;
        await sleep(100);
      }
      this.published = from + batch;
      await sleep(Math.max(0, 50 - (Date.now() - started)));
    }
  }
}

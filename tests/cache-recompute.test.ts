// FLIP-205 on a real nats-server: a cached stream lost behind the environment's back (its stream deleted,
// messages purged, its end frame gone) is computed again from its input in the next execution, with the
// same results and one log line, and cached anew; caches left by a process killed before env.close() are
// found dead by the owner rule and removed.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { hostname } from "node:os";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Sources, StreamEnvironment } from "../mod.ts";
import { listCacheStreams, OWNER_STALE_MS } from "../runtime/cache/owners.ts";
import { withServer } from "./helpers/nats-server.ts";
import { runWeir } from "./helpers/cli.ts";

const s = suite("cache recompute");
const nats = withServer(s);
let nc: NatsConnection;
let jsm: JetStreamManager;
s.before(async () => { nc = await connect({ servers: nats.url }); jsm = await jetstreamManager(nc); });
s.after(async () => { await nc?.close(); });

interface Row { id: number; pad: string }
const N = 24_000;
const rows = (n: number): Row[] => Array.from({ length: n }, (_, i) => ({ id: i, pad: "x".repeat(40 + (i % 13)) }));

async function cacheStreamsOf(job: string): Promise<string[]> {
  return (await listCacheStreams(jsm, job)).map((c) => c.stream);
}

/** An environment with one cached stream over `n` rows, counting how often its map runs. */
function pipeline(job: string, n: number) {
  const logs: string[] = [];
  const env = StreamEnvironment.create({ name: job, nats: nats.url, parallelism: 2, mode: "batch" }, { log: (m) => logs.push(m) });
  const counter = { computed: 0 };
  // Over 256 KB per subtask, so each subject holds several record frames.
  const cached = env.fromSource(Sources.array(rows(n)), { parallelism: 2 }).map((r) => { counter.computed++; return { ...r, sq: r.id * r.id }; }).cache();
  const ids = async () => (await cached.executeAndCollect()).map((r) => `${r.id}:${r.sq}`).sort();
  return { env, cached, counter, logs, ids };
}

s("a cache whose stream was deleted between executions is computed again, transparently, and cached anew", async () => {
  const p = pipeline("lost-deleted", N);
  try {
    const first = await p.ids();
    assert.is(p.counter.computed, N);
    const [stream] = await cacheStreamsOf("lost-deleted");
    assert.ok(stream, "the cache stream exists");
    await jsm.streams.delete(stream!);

    const second = await p.ids();
    assert.equal(second, first, "the same records as the first execution, no error");
    assert.is(p.counter.computed, 2 * N, "computed again from the input");
    assert.ok(p.logs.some((l) => /cached stream ".*" was lost \(its stream .* was deleted\): computing it again/.test(l)), `one log line says so: ${p.logs.join(" | ")}`);

    assert.equal(await p.ids(), first);
    assert.is(p.counter.computed, 2 * N, "cached again: the third execution reads it");

    await p.cached.invalidate();
    assert.equal(await p.ids(), first);
    assert.is(p.counter.computed, 3 * N, "invalidate() works after the loss");
  } finally {
    await p.env.close();
  }
});

s("a cache with messages purged or its end frame deleted is computed again with the same results", async () => {
  const p = pipeline("lost-cut", N);
  try {
    const first = await p.ids();
    const [stream] = await cacheStreamsOf("lost-cut");
    const info = await jsm.streams.info(stream!, { subjects_filter: ">" });
    const subjects = Object.keys(info.state.subjects ?? {}).sort();
    assert.is(subjects.length, 2, "a subject per writing subtask");
    assert.ok(info.state.subjects![subjects[0]!]! >= 3, `several frames per subject (${info.state.subjects![subjects[0]!]})`);

    // Purge all but the last two messages of subtask 0's subject: its end frame stays, frames go.
    await jsm.streams.purge(stream!, { filter: subjects[0]!, keep: 2 });
    assert.equal(await p.ids(), first, "records equal to the first execution");
    assert.is(p.counter.computed, 2 * N, "computed again");
    assert.ok(p.logs.some((l) => /was lost \(.* holds 1 of its \d+ frames \(messages purged or expired\)\)/.test(l)), p.logs.join(" | "));
    assert.equal(await p.ids(), first);
    assert.is(p.counter.computed, 2 * N, "and cached again");

    // Delete subtask 1's end frame: a subject without its end is incomplete too.
    const last = await jsm.streams.getMessage(stream!, { last_by_subj: subjects[1]! });
    await jsm.streams.deleteMessage(stream!, last!.seq);
    assert.equal(await p.ids(), first);
    assert.is(p.counter.computed, 3 * N);
    assert.ok(p.logs.some((l) => /has no end frame\): computing it again/.test(l)), p.logs.join(" | "));
  } finally {
    await p.env.close();
  }
  assert.equal(await cacheStreamsOf("lost-cut"), [], "close() still deletes the cache stream");
});

s("the cache of a process killed before env.close() is found dead and removed", async () => {
  const child = spawn(process.execPath, ["--import", "tsx", new URL("./fixtures/cache-owner-child.ts", import.meta.url).pathname, nats.url, "orphan"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  try {
    const deadline = Date.now() + 60_000;
    while (!out.includes("cached ") && child.exitCode === null) {
      if (Date.now() > deadline) throw new Error(`the child did not cache in 60 s: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(out, /cached weir_orphan_cache_[0-9a-f]+/, err);
    const [alive] = await listCacheStreams(jsm, "orphan");
    assert.ok(alive?.liveness.alive, "listed with a live owner while the process runs");
    assert.is(alive!.owner?.pid, child.pid);
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
  const [orphan] = await listCacheStreams(jsm, "orphan");
  assert.ok(orphan, "a killed process leaves its cache stream behind");
  assert.is(orphan!.liveness.alive, false);
  assert.match(orphan!.liveness.why, new RegExp(`process ${child.pid} on this host is gone`));

  // Any environment that creates its own cache stream removes it, and says so.
  const p = pipeline("sweeper", 100);
  try {
    await p.ids();
    const deadline = Date.now() + 30_000;
    while ((await cacheStreamsOf("orphan")).length > 0) {
      if (Date.now() > deadline) assert.unreachable("the orphaned cache stream was not removed");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(p.logs.some((l) => l.startsWith(`removed cache stream ${orphan!.stream} (job orphan): its owner is dead`)), p.logs.join(" | "));
    assert.is((await cacheStreamsOf("sweeper")).length, 1, "its own cache stays");
  } finally {
    await p.env.close();
  }
});

s("an owner on another host is alive while its heartbeat is fresh, dead once it is stale", async () => {
  const describe = (beat: number) => JSON.stringify({ weir: "cache", job: "remote", env: "ab12", host: `not-${hostname()}`, pid: 1, beat });
  await jsm.streams.add({ name: "weir_remote_cache_ab12", subjects: ["weir.remote.cache.ab12.>"], description: describe(Date.now()) });
  try {
    let [c] = await listCacheStreams(jsm, "remote");
    assert.is(c!.liveness.alive, true, c!.liveness.why);
    await jsm.streams.update("weir_remote_cache_ab12", { description: describe(Date.now() - OWNER_STALE_MS - 1000) });
    [c] = await listCacheStreams(jsm, "remote");
    assert.is(c!.liveness.alive, false);
    assert.match(c!.liveness.why, /no heartbeat for \d+ s/);
  } finally {
    await jsm.streams.delete("weir_remote_cache_ab12").catch(() => {});
  }
});

s("weir caches lists cache streams with their owner's liveness and drops the dead ones, or one environment's", async () => {
  const add = (env: string, beat: number) => jsm.streams.add({ name: `weir_listed_cache_${env}`, subjects: [`weir.listed.cache.${env}.>`], description: JSON.stringify({ weir: "cache", job: "listed", env, host: `not-${hostname()}`, pid: 1, beat }) });
  await add("aa01", Date.now() - OWNER_STALE_MS - 60_000);
  await add("bb02", Date.now());
  await add("cc03", Date.now());
  try {
    const listed = await runWeir(["caches", "listed", "--nats", nats.url]);
    assert.is(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /weir_listed_cache_aa01: job listed, env aa01, 0 B in 0 frames, age \d+ s, owner dead \(no heartbeat for \d+ s\)/);
    assert.match(listed.stdout, /weir_listed_cache_bb02: .* owner alive/);
    const dead = await runWeir(["caches", "listed", "--drop-dead", "--json", "--nats", nats.url]);
    assert.equal(JSON.parse(dead.stdout).map((r: { env: string; dropped: boolean }) => [r.env, r.dropped]), [["aa01", true], ["bb02", false], ["cc03", false]]);
    const one = await runWeir(["caches", "--drop", "cc03", "--nats", nats.url]);
    assert.is(one.code, 0, one.stderr);
    assert.equal(await cacheStreamsOf("listed"), ["weir_listed_cache_bb02"]);
    const both = await runWeir(["caches", "--drop-dead", "--drop-all", "--nats", nats.url]);
    assert.is(both.code, 1);
    assert.is(both.stderr.trim(), "weir: caches: --drop-dead and --drop-all together; give one");
    assert.equal(await cacheStreamsOf("listed"), ["weir_listed_cache_bb02"], "nothing dropped");
    const none = await runWeir(["caches", "--drop", "zz99", "--nats", nats.url]);
    assert.is(none.code, 1);
    assert.match(none.stderr, /no cache stream of environment "zz99"/);
  } finally {
    for (const env of ["aa01", "bb02", "cc03"]) await jsm.streams.delete(`weir_listed_cache_${env}`).catch(() => {});
  }
});

s.run();

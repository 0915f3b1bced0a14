// `weir run --http`: a leader deposed (frozen with SIGSTOP past its lease, another worker leads meanwhile)
// keeps counting on at /metrics. Its subtasks' counters are scraped over real HTTP from two real `weir run`
// workers on a real nats-server while input flows: frozen, thawed, then made leader again (the other
// leaves), the deposed worker runs the same subtasks again, and none of their counters ever went down,
// nor its checkpoint duration histogram.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connect } from "@nats-io/transport-node";
import { withServer } from "./helpers/nats-server.ts";
import { startWeir, eventually, within, freePort, type WeirProcess } from "./helpers/cli.ts";
import { feed, reset, runningOn, stopAll } from "./helpers/worker-counts.ts";

const test = suite("metrics of a deposed leader");
const nats = withServer(test);
const JOB = "tests/fixtures/jobs/worker-counts.ts";

/** Per-subtask counter series (`name{operator#subtask}`, the worker label left out) and the checkpoint counts of one scrape; undefined if it got no answer. */
async function subtaskCounters(port: number): Promise<Map<string, number> | undefined> {
  // A frozen process does not answer: the scrape gives up rather than wait for the thaw.
  const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
  if (!res || res.status !== 200) return undefined;
  const text = await res.text().catch(() => undefined);
  if (text === undefined) return undefined;
  const counters = new Set([...text.matchAll(/^# TYPE (\S+) counter$/gm)].map((m) => m[1]!));
  const series = new Map<string, number>();
  for (const m of text.matchAll(/^(weir_\w+)\{([^}]*)\} (\S+)$/gm)) {
    const operator = /\boperator="([^"]*)"/.exec(m[2]!)?.[1];
    const subtask = /\bsubtask="([^"]*)"/.exec(m[2]!)?.[1];
    if (counters.has(m[1]!) && operator !== undefined && subtask !== undefined) series.set(`${m[1]}{${operator}#${subtask}}`, Number(m[3]));
    // The leader's job-wide checkpoint counts (its coordinator is new each time the worker leads again).
    const status = /\bstatus="([^"]*)"/.exec(m[2]!)?.[1];
    if (m[1] === "weir_checkpoints_total" && status !== undefined) series.set(`${m[1]}{${status}}`, Number(m[3]));
    // And its checkpoint duration histogram: every bucket, the sum and the count.
    const le = /\ble="([^"]*)"/.exec(m[2]!)?.[1];
    if (m[1]!.startsWith("weir_checkpoint_duration_seconds_")) series.set(`${m[1]}{${le ?? ""}}`, Number(m[3]));
  }
  return series;
}

/** Scrapes `port` every 200 ms until stopped: the highest figure seen per series, and every drop below it. */
function watchCounters(port: number): { last(): Map<string, number>; stop(): Promise<string[]> } {
  const highest = new Map<string, number>();
  const drops: string[] = [];
  let latest = new Map<string, number>();
  let running = true;
  const loop = (async () => {
    while (running) {
      const s = await subtaskCounters(port);
      if (s) {
        latest = s;
        for (const [k, v] of s) {
          const top = highest.get(k) ?? 0;
          if (v < top) drops.push(`${k}: ${top} → ${v}`);
          highest.set(k, Math.max(top, v));
        }
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return { last: () => latest, stop: async () => { running = false; await loop; return drops; } };
}

const recordsIn = (s: Map<string, number>) => [...s].filter(([k]) => k.startsWith("weir_operator_records_in_total{")).reduce((n, [, v]) => n + v, 0);

test("a leader frozen past its lease, deposed, thawed and leading again: its subtasks' and checkpoints' counters and its checkpoint duration histogram never went down", async () => {
  const nc = await connect({ servers: nats.url });
  const procs: WeirProcess[] = [];
  let input: ReturnType<typeof feed> | undefined;
  let watch: ReturnType<typeof watchCounters> | undefined;
  try {
    await reset(nc);
    input = feed(nc, 100);
    const [portA, portB] = [await freePort(), await freePort()];
    const a = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${portA}`]);
    procs.push(a);
    await runningOn(nc, [a], "the job runs on worker A, its leader");
    const b = startWeir(["run", JOB, "--nats", nats.url, "--http", `127.0.0.1:${portB}`]);
    procs.push(b);
    await runningOn(nc, [a, b], "the job runs on both workers, A leading");
    watch = watchCounters(portA);
    const shared = await eventually("A's subtasks counted at /metrics", 60_000, () => (watch!.last().size > 0 ? new Map(watch!.last()) : undefined));
    // Much counted before the freeze: a counter starting again from 0 stays below it for a while.
    await eventually("A counting on", 60_000, () => (recordsIn(watch!.last()) >= recordsIn(shared) + 3000 ? true : undefined));
    const before = new Map(watch.last());

    a.child.kill("SIGSTOP");
    await runningOn(nc, [b], "B leads and runs the job alone while A is frozen");
    a.child.kill("SIGCONT");
    await a.waitForStderr("no longer leading", 60_000);
    await runningOn(nc, [a, b], "A is a worker of the job again, B leading");
    // B leaves: A leads again and runs every subtask, the ones it ran before its freeze among them.
    b.child.kill("SIGTERM");
    assert.ok(await within(b.exited, 60_000), "B left");
    await runningOn(nc, [a], "A leads again and runs the job alone");
    await eventually("A's subtasks of before the freeze at /metrics again", 60_000, () => ([...before.keys()].every((k) => watch!.last().has(k)) ? true : undefined));
    const after = new Map(watch.last());
    const drops = await watch.stop();
    watch = undefined;
    assert.equal(drops, [], "no counter of A's subtasks or checkpoints, nor its checkpoint duration histogram, went down");
    assert.ok(before.has("weir_checkpoints_total{completed}"), `A counted checkpoints as leader: ${[...before.keys()].join(", ")}`);
    assert.ok((before.get("weir_checkpoint_duration_seconds_count{}") ?? 0) > 0, "A's checkpoint duration histogram counted some before the freeze");
    for (const [k, v] of before) assert.ok(after.get(k)! >= v, `${k}: ${after.get(k)} at least ${v}, what it showed before the freeze`);
  } finally {
    await watch?.stop().catch(() => {});
    await input?.stop().catch(() => {});
    for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGCONT");
    await stopAll(procs);
    await nc.close().catch(() => {});
  }
});

test.run();

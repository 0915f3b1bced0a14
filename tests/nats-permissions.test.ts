// examples/nats-secured.conf as shipped: a job runs under the `weir` user's permissions, and the `app`
// user, which may publish the input and read the output, cannot stop or query the job, read its data
// subjects or inject a frame: the server denies each, and the job's output is what it would be anyway.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { fileURLToPath } from "node:url";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { launchNatsServer, type NatsServerProcess } from "../runtime/nats/server-process.ts";
import { eventually, freePort, killWeir, runWeir, startWeir, within } from "./helpers/cli.ts";
import { JetStreamPublishPipe } from "../runtime/nats/publish-pipe.ts";
import { isTransientJetStreamError, retryJetStream } from "../state/backends/jetstream-retry.ts";

const test = suite("NATS permissions");
const CONF = fileURLToPath(new URL("../examples/nats-secured.conf", import.meta.url));
const WEIR_PASSWORD = "weir-Pw-31";
const APP_PASSWORD = "app-Pw-47";
const JOB = "tests/fixtures/jobs/app-counts.ts";
const CLEAN_ENV = { WEIR_NATS_URL: "", WEIR_NATS_USER: "", WEIR_NATS_PASSWORD: "", WEIR_NATS_TOKEN: "", WEIR_NATS_CREDS: "", WEIR_NATS_NKEY: "", WEIR_NATS_CONTEXT: "" };

const as = (server: NatsServerProcess, user: string, password: string) => server.url.replace("nats://", `nats://${user}:${password}@`);

async function outputCounts(app: NatsConnection): Promise<string[]> {
  const jsm = await jetstreamManager(app, { checkAPI: false });
  const info = await jsm.streams.info("APP_OUT");
  const out: string[] = [];
  for (let seq = 1; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage("APP_OUT", { seq });
    if (m) { const o = m.json<{ word: string; n: number }>(); out.push(`${o.word}${o.n}`); }
  }
  return out.sort();
}

test("a job under the weir user; the app user can feed and read it, and nothing else", async () => {
  const server = await launchNatsServer({ args: ["-c", CONF], env: { WEIR_PASSWORD, APP_PASSWORD } });
  let weir: NatsConnection | undefined;
  let app: NatsConnection | undefined;
  let run: ReturnType<typeof startWeir> | undefined;
  try {
    weir = await connect({ servers: server.url, user: "weir", pass: WEIR_PASSWORD });
    app = await connect({ servers: server.url, user: "app", pass: APP_PASSWORD, inboxPrefix: "_INBOX_app" });
    const jsm = await jetstreamManager(weir);
    await jsm.streams.add({ name: "APP_IN", subjects: ["app.in.>"] });
    await jsm.streams.add({ name: "APP_OUT", subjects: ["app.out.>"] });
    const js = jetstream(app);
    for (const w of ["a", "b", "a", "c", "a"]) await js.publish(`app.in.${w}`, w);

    run = startWeir(["run", JOB, "--nats", as(server, "weir", WEIR_PASSWORD)], { env: { ...CLEAN_ENV, APP_JOB: "perm" } });
    const expected = ["a1", "a2", "a3", "b1", "c1"];
    await eventually("the job's output, read by the app user", 90_000, async () => {
      const out = await outputCounts(app!);
      return out.length >= expected.length ? out : undefined;
    });

    // The app user: weir status and weir stop are refused, with the permission named.
    const appUrl = as(server, "app", APP_PASSWORD);
    for (const args of [["status", "perm"], ["status"], ["stop", "perm", "--timeout", "5"]]) {
      const r = await runWeir([...args, "--nats", appUrl], { env: CLEAN_ENV });
      assert.is.not(r.code, 0, `weir ${args.join(" ")} as app: ${r.stdout}`);
      assert.match(r.stderr, /lacks a permission weir needs: .*Permissions Violation for (Publish to "weir\.|Subscription to "_INBOX\.)/, r.stderr);
      assert.not.match(r.stdout, /perm: (running|stopped)/);
    }
    // It cannot read the job's data subjects ...
    const sub = app.subscribe("weir.perm.>");
    const closed = await within(sub.closed, 10_000);
    assert.instance(closed, Error, "the server closed the subscription to weir.perm.>");
    assert.match((closed as Error).message, "Permissions Violation for Subscription");
    // ... nor inject a frame on a channel.
    const denied = new Promise<string>((resolve) => {
      void (async () => { for await (const s of app!.status()) if (s.type === "error") { resolve(String(s.error)); return; } })();
    });
    app.publish("weir.perm.run.1.ch.0.0.0", JSON.stringify({ records: ["a", "a", "a"] }));
    assert.match((await within(denied, 10_000)) ?? "no error", "Permissions Violation for Publish");
    assert.equal(await outputCounts(app), expected, "the output is what the input made, nothing injected");

    // The weir user stops it.
    const stop = await runWeir(["stop", "perm", "--nats", as(server, "weir", WEIR_PASSWORD)], { env: CLEAN_ENV });
    assert.is(stop.code, 0, stop.stderr);
    assert.is((await within(run.exited, 60_000))?.code, 0, run.stderr().slice(-800));
    assert.equal(await outputCounts(app), expected);
  } finally {
    if (run && run.child.exitCode === null) run.child.kill("SIGKILL");
    await app?.close();
    await weir?.close();
    await server.stop();
  }
});

test("weir run as a user who may not publish or subscribe on weir.>: one line naming the permission, non-zero exit, not a hang or a crash", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-perm-"));
  const conf = join(dir, "perm.conf");
  writeFileSync(conf, [
    "jetstream: enabled",
    "accounts: { A: { jetstream: enabled, users: [",
    "  { user: nopub, password: pw, permissions: { publish: { deny: [\"weir.>\"] } } }",
    "  { user: nosub, password: pw, permissions: { subscribe: { deny: [\"weir.>\"] } } }",
    "  { user: nojs, password: pw, permissions: { publish: { deny: [\"$JS.API.>\"] } } }",
    "] } }",
  ].join("\n"));
  const server = await launchNatsServer({ args: ["-c", conf] });
  try {
    for (const user of ["nopub", "nosub"]) {
      const r = await runWeir(["run", JOB, "--nats", as(server, user, "pw")], { env: { ...CLEAN_ENV, APP_JOB: user }, deadlineMs: 90_000 });
      assert.is.not(r.code, 0, `${user}: ${r.stderr}`);
      assert.is.not(r.code, null, `${user}: killed at the deadline (it hung): ${r.stderr.slice(-500)}`);
      const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("weir: "));
      assert.is(lines.length, 1, `${user}: ${r.stderr}`);
      assert.match(lines[0]!, new RegExp(`lacks a permission weir needs: .*Permissions Violation for ${user === "nopub" ? "Publish" : "Subscription"} to "weir\\.`), lines[0]);
      assert.not.match(r.stderr, /TypeError|    at /, `${user}: no stack trace`);
    }
    // A user who may ask jobs but not read JetStream: a job not running says why its last state is not shown.
    const status = await runWeir(["status", "gone", "--nats", as(server, "nojs", "pw")], { env: CLEAN_ENV, deadlineMs: 60_000 });
    assert.is(status.code, 1, status.stderr);
    assert.match(status.stdout, /^gone: not running \(its last state, in the KV bucket weir_jobs, could not be read: .*Permissions Violation for Publish to "\$JS\.API\./, status.stdout);
    // The dashboard goes on (a denial may be partial) but says why it shows no job, once per permission.
    const port = await freePort();
    const dashboard = startWeir(["dashboard", "--nats", as(server, "nopub", "pw"), "--http", `127.0.0.1:${port}`], { env: CLEAN_ENV });
    try {
      await dashboard.waitForStderr("dashboard: http://", 30_000);
      for (let i = 0; i < 2; i++) await eventually("a snapshot", 30_000, () => fetch(`http://127.0.0.1:${port}/api/snapshot`).then((r) => r.text(), () => undefined));
      await dashboard.waitForStderr(/weir dashboard: the NATS user lacks a permission weir needs: Permissions Violation for Publish to "weir\.jobs\.ping"/, 30_000);
      assert.is(dashboard.stderr().split("Permissions Violation for Publish to \"weir.jobs.ping\"").length, 2, dashboard.stderr());
    } finally {
      killWeir(dashboard);
    }
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a JetStream publish to a subject the user may not publish fails at once naming the permission, not after timeouts and 30 s of retries", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-perm-"));
  const conf = join(dir, "perm.conf");
  writeFileSync(conf, "jetstream: enabled\naccounts: { A: { jetstream: enabled, users: [ { user: nosink, password: pw, permissions: { publish: { deny: [\"out.weir.leader.>\"] } } } ] } }\n");
  const server = await launchNatsServer({ args: ["-c", conf] });
  let nc: NatsConnection | undefined;
  let pipe: JetStreamPublishPipe | undefined;
  try {
    nc = await connect({ servers: server.url, user: "nosink", pass: "pw" });
    // A timeout longer than the deadline: only the server's denial can settle the publish in time.
    pipe = new JetStreamPublishPipe(nc, 600_000);
    const p = pipe;
    const subject = "out.weir.leader.x";
    const failure = (f: () => Promise<unknown>) => within(f().then(() => "published", (e: unknown) => e as Error), 20_000);
    for (const [what, f] of [["a publish", () => p.publish(subject, "{}", { msgID: "a" })], ["one retried through elections", () => retryJetStream(() => p.publish(subject, "{}", { msgID: "b" }))]] as const) {
      const e = await failure(f);
      assert.ok(e instanceof Error, `${what}: ${e === undefined ? "still waiting after 20 s" : String(e)}`);
      assert.match(e.message, `lacks a permission weir needs: Permissions Violation for Publish to "${subject}"`);
      assert.not.ok(isTransientJetStreamError(e), "no retry mends a permission");
    }
  } finally {
    pipe?.close();
    await nc?.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a server without JetStream, or a user whose account has none: weir run ends with one line saying what to enable", async () => {
  const dir = mkdtempSync(join(tmpdir(), "weir-nojs-"));
  const servers: NatsServerProcess[] = [];
  try {
    const conf = (name: string, text: string) => { const f = join(dir, name); writeFileSync(f, text); return f; };
    // launchNatsServer adds JetStream's store dir (-sd), which turns it on: -js=false keeps it off.
    servers.push(await launchNatsServer({ args: ["-c", conf("off.conf", "server_name: nojs\n"), "-js=false"] }));
    servers.push(await launchNatsServer({ args: ["-c", conf("acct.conf", "jetstream: enabled\naccounts: { A: { users: [ { user: a, password: pw } ] } }\n")] }));
    for (const [url, expected] of [
      [servers[0]!.url, /^weir: the NATS server nojs at 127\.0\.0\.1:\d+ runs without JetStream: .*start nats-server with -js/],
      [as(servers[1]!, "a", "pw"), /^weir: JetStream is not enabled for this NATS user's account on 127\.0\.0\.1:\d+: .*`jetstream: enabled`/],
    ] as const) {
      const r = await runWeir(["run", JOB, "--nats", url], { env: { ...CLEAN_ENV, APP_JOB: "nojs" }, deadlineMs: 60_000 });
      assert.is.not(r.code, 0, r.stderr);
      const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("weir: "));
      assert.is(lines.length, 1, r.stderr);
      assert.match(lines[0]!, expected);
    }
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

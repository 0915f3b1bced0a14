// `weir run` connected as NATS users connect: user/password (URL or environment), token, NKey, a JWT
// creds file, TLS with a client certificate, a nats CLI context, and `--workers` passing them on. Each
// test starts its own secured nats-server and runs a small bounded job to completion through the CLI; the
// job's output is read back from its stream. Wrong credentials: one line, non-zero, the secret nowhere.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { AuthorizationError, UserAuthenticationExpiredError } from "@nats-io/transport-node";
import { closingCause, connectNats } from "../runtime/nats/connect.ts";
import { ConnectionWatch } from "../actors/job/connection-watch.ts";
import { systemClock } from "../runtime/core/clock.ts";
import { messageOf } from "../runtime/core/errors.ts";
import { resolveNatsSettings } from "../runtime/nats/connection-settings.ts";
import { runWeir, startWeir, within, type WeirExit } from "./helpers/cli.ts";
import { makeJwtChain, makeNkeyUser, makeTls, secureDir, startWithConfig, type JwtChain, type SecureDir } from "./helpers/nats-secure.ts";
import type { NatsServerProcess } from "../runtime/nats/server-process.ts";

const test = suite("NATS connections");
const JOB = "tests/fixtures/jobs/secured-counts.ts";
const PASSWORD = "pw-Very-Secret-42";
const USERS = `authorization { users: [ { user: alice, password: "${PASSWORD}" } ] }\n`;
/** Every variable a developer's shell may set: a test sets only its own. */
const CLEAN_ENV = { WEIR_NATS_URL: "", WEIR_NATS_USER: "", WEIR_NATS_PASSWORD: "", WEIR_NATS_TOKEN: "", WEIR_NATS_CREDS: "", WEIR_NATS_NKEY: "", WEIR_NATS_TLS_CA: "", WEIR_NATS_TLS_CERT: "", WEIR_NATS_TLS_KEY: "", WEIR_NATS_CONTEXT: "" };

async function withSecured(name: string, config: (d: SecureDir) => string, body: (server: NatsServerProcess, d: SecureDir) => Promise<void>): Promise<void> {
  const d = secureDir();
  let server: NatsServerProcess | undefined;
  try {
    server = await startWithConfig(d, name, config(d));
    await body(server, d);
  } finally {
    await server?.stop();
    d.close();
  }
}

function run(job: string, args: string[], env: Record<string, string> = {}): Promise<WeirExit> {
  return runWeir(["run", JOB, ...args], { env: { ...CLEAN_ENV, SECURED_JOB: job, ...env }, deadlineMs: 120_000 });
}

/** The counts the job wrote, read back as the same user (`env` as given to weir). */
async function outputOf(job: string, env: Record<string, string>, flags: { nats?: string; creds?: string; context?: string } = {}): Promise<string[]> {
  const nc = await connectNats(resolveNatsSettings({ flags, env: { ...process.env, ...CLEAN_ENV, ...env } }), "test");
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(`${job}_OUT`);
    const out: string[] = [];
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(`${job}_OUT`, { seq });
      if (m) out.push(new TextDecoder().decode(m.data));
    }
    return out.map((s) => JSON.parse(s) as { word: string; n: number }).map((o) => `${o.word}${o.n}`).sort();
  } finally {
    await nc.close();
  }
}

const EXPECTED = ["a1", "a2", "a3", "b1", "c1"];

function assertFinished(exit: WeirExit, job: string): void {
  assert.is(exit.code, 0, `weir run: ${exit.stderr.slice(-800)}`);
  assert.match(exit.stdout, `${job} finished`);
}

const withPassword = (url: string, user: string, password: string) => url.replace("nats://", `nats://${user}:${encodeURIComponent(password)}@`);

test("user and password in the --nats URL", async () => {
  await withSecured("userpass", () => USERS, async (server) => {
    const url = withPassword(server.url, "alice", PASSWORD);
    assertFinished(await run("up_url", ["--nats", url]), "up_url");
    assert.equal(await outputOf("up_url", {}, { nats: url }), EXPECTED);
  });
});

test("user and password in WEIR_NATS_USER / WEIR_NATS_PASSWORD; weir status never shows the password", async () => {
  await withSecured("userpass-env", () => USERS, async (server) => {
    const env = { WEIR_NATS_URL: server.url, WEIR_NATS_USER: "alice", WEIR_NATS_PASSWORD: PASSWORD };
    assertFinished(await run("up_env", [], env), "up_env");
    assert.equal(await outputOf("up_env", env), EXPECTED);
    for (const args of [["status", "up_env"], ["status", "up_env", "--json"], ["status", "up_env", "--nats", withPassword(server.url, "alice", PASSWORD)]]) {
      const status = await runWeir(args, { env: { ...CLEAN_ENV, ...env } });
      assert.match(status.stdout, "up_env", `weir ${args.join(" ")}: ${status.stderr}`);
      assert.not.match(status.stdout + status.stderr, PASSWORD);
    }
    // Nothing weir stored about the job (its last status) holds the password either.
    const nc = await connectNats(resolveNatsSettings({ env: { ...process.env, ...CLEAN_ENV, ...env } }), "test");
    try {
      const kv = await new Kvm(nc).open("weir_jobs");
      const entry = await kv.get("up_env");
      assert.ok(entry, "the job's last status is stored");
      assert.not.match(entry.string(), PASSWORD);
    } finally {
      await nc.close();
    }
  });
});

test("a wrong password: exit non-zero, one line naming the server with the password masked", async () => {
  await withSecured("wrong", () => USERS, async (server) => {
    const wrong = "Wrong-Secret-99";
    for (const [args, env] of [
      [["--nats", withPassword(server.url, "alice", wrong)], {}],
      [[], { WEIR_NATS_URL: server.url, WEIR_NATS_USER: "alice", WEIR_NATS_PASSWORD: wrong }],
    ] as const) {
      const exit = await run("wrong_pw", [...args], env);
      assert.is.not(exit.code, 0);
      const lines = exit.stderr.trim().split("\n");
      assert.is(lines.length, 1, exit.stderr);
      assert.is(lines[0], `weir: NATS at ${server.url.replace("nats://", "nats://alice:***@")} refused the credentials (Authorization Violation)`);
      assert.not.match(exit.stdout + exit.stderr, wrong);
    }
    const status = await runWeir(["status", "--nats", withPassword(server.url, "alice", wrong)], { env: CLEAN_ENV });
    assert.is.not(status.code, 0);
    assert.not.match(status.stdout + status.stderr, wrong);
  });
});

test("the password changed on the server while the job runs: the job ends with one line naming the credentials, no restart loop", async () => {
  await withSecured("revoked", () => USERS, async (server, d) => {
    const job = startWeir(["run", JOB], { env: { ...CLEAN_ENV, SECURED_JOB: "revoked", SECURED_UNBOUNDED: "1", WEIR_NATS_URL: withPassword(server.url, "alice", PASSWORD) } });
    try {
      await job.waitForStderr("weir: revoked running", 60_000);
      // The server reloads its configuration: alice's connection is dropped and her old password refused.
      d.file("revoked.conf", USERS.replace(PASSWORD, "another-password"));
      process.kill(server.pid, "SIGHUP");
      const exit = await within(job.exited, 60_000);
      assert.ok(exit, "the job ends");
      assert.is.not(exit.code, 0);
      assert.match(exit.stderr, /weir: NATS refused the credentials when the connection came back \(Authorization Violation\)/);
    } finally {
      job.child.kill("SIGKILL");
    }
  });
});

test("a token (WEIR_NATS_TOKEN)", async () => {
  const token = "tok-Secret-7781";
  await withSecured("token", () => `authorization { token: "${token}" }\n`, async (server) => {
    const env = { WEIR_NATS_URL: server.url, WEIR_NATS_TOKEN: token };
    assertFinished(await run("tok", [], env), "tok");
    assert.equal(await outputOf("tok", env), EXPECTED);
    const refused = await run("tok", [], { WEIR_NATS_URL: server.url });
    assert.is.not(refused.code, 0, "without the token the server refuses");
  });
});

test("an NKey seed file (WEIR_NATS_NKEY)", async () => {
  const user = makeNkeyUser();
  await withSecured("nkey", () => `authorization { users: [ { nkey: ${user.publicKey} } ] }\n`, async (server, d) => {
    const env = { WEIR_NATS_URL: server.url, WEIR_NATS_NKEY: d.file("user.nk", `${user.seed}\n`) };
    assertFinished(await run("nk", [], env), "nk");
    assert.equal(await outputOf("nk", env), EXPECTED);
    const exit = await run("nk", [], { WEIR_NATS_URL: server.url, WEIR_NATS_NKEY: join(d.dir, "missing.nk") });
    assert.is.not(exit.code, 0);
    assert.match(exit.stderr, `missing.nk (from WEIR_NATS_NKEY) cannot be read`);
    // A seed cut short (a bad paste) is not echoed back as a file name.
    const cut = user.seed.slice(0, 30);
    const short = await run("nk", [], { WEIR_NATS_URL: server.url, WEIR_NATS_NKEY: cut });
    assert.is.not(short.code, 0);
    assert.match(short.stderr, /a user seed that is cut short/);
    assert.not.ok(short.stderr.includes(cut.slice(2)), "no part of the seed printed");
  });
});

test("a JWT creds file (--creds), the server in operator mode", async () => {
  let creds = "";
  await withSecured("creds", (d) => { const chain = makeJwtChain(d); creds = chain.credsFile; return chain.serverConfig; }, async (server) => {
    assertFinished(await run("jwt", ["--nats", server.url, "--creds", creds]), "jwt");
    assert.equal(await outputOf("jwt", {}, { nats: server.url, creds }), EXPECTED);
    assert.is.not((await run("jwt", ["--nats", server.url])).code, 0, "without the creds the server refuses");
    const garbage = join(dirname(creds), "garbage.creds");
    writeFileSync(garbage, "not a creds file\n");
    const bad = await run("jwt", ["--nats", server.url, "--creds", garbage]);
    assert.is.not(bad.code, 0);
    assert.is(bad.stderr.trim(), `weir: NATS credentials file ${garbage} (from --creds) is not a credentials file: it needs a user JWT and an NKey seed (as \`nsc generate creds\` writes it)`);
  });
});

test("the refusal reported for a connection closed for good: an expiry its status reported beats the \"Authorization Violation\" the client closed with after it", () => {
  // The order the test below meets only now and then (a full npm test, 2026-12-07): the server reports the
  // expiry, the client's reconnect is refused with "Authorization Violation", and the client closes with that.
  const expired = new UserAuthenticationExpiredError("User Authentication Expired");
  const violation = new AuthorizationError("Authorization Violation");
  const refused = new Error("connection refused");
  assert.is(closingCause(violation, expired), expired);
  assert.is(closingCause(violation, undefined), violation);
  assert.is(closingCause(refused, violation), violation, "the client's own closing error says less than the refusal before it");
  assert.is(closingCause(refused, undefined), refused);
});

test("a creds file whose JWT expired: at connect, one line naming the file and when; while connected, \"User Authentication Expired\", not the client's \"connection refused\"", async () => {
  let chain: JwtChain | undefined;
  await withSecured("expiry", (d) => { chain = makeJwtChain(d); return chain.serverConfig; }, async (server) => {
    const expired = chain!.expiringCreds("expired.creds", Date.now() - 60_000);
    const refused = await run("jwtexp", ["--nats", server.url, "--creds", expired]);
    assert.is.not(refused.code, 0);
    assert.match(refused.stderr.trim(), new RegExp(`^weir: NATS at ${server.url} refused the credentials \\(Authorization Violation\\); the user JWT in ${expired} \\(from --creds\\) expired at \\d{4}-`));
    // Expires while connected and busy (a job's traffic): the server drops the connection, refuses the reconnect, the client gives up.
    const settings = resolveNatsSettings({ flags: { nats: server.url, creds: chain!.expiringCreds("soon.creds", Date.now() + 3000) }, env: CLEAN_ENV });
    const nc = await connectNats(settings, "test");
    // As a job watches its connection (job-runner.ts): what it fails with once the client gave up.
    let closedForGood: (e: unknown) => void = () => {};
    const failure = new Promise<unknown>((r) => { closedForGood = r; });
    const watch = new ConnectionWatch(nc, systemClock, { onDisconnect: () => {}, onReconnect: () => {}, onClosedForGood: (e) => closedForGood(e) });
    const busy = setInterval(() => { try { nc.publish("busy.x", "x"); } catch { /* closed */ } }, 20);
    try {
      nc.subscribe("busy.>");
      const e = await within(failure, 30_000);
      assert.ok(e !== undefined, "the client gave up within 30 s");
      assert.match(messageOf(e), /^NATS refused the credentials when the connection came back \(User Authentication Expired\)/);
    } finally {
      clearInterval(busy);
      watch.stop();
      await nc.close().catch(() => {});
    }
  });
});

test("TLS with a client certificate the server verifies (WEIR_NATS_TLS_CA / _CERT / _KEY)", async () => {
  let env: Record<string, string> = {};
  await withSecured("tls", (d) => {
    const tls = makeTls(d);
    env = { WEIR_NATS_TLS_CA: tls.ca, WEIR_NATS_TLS_CERT: tls.clientCert, WEIR_NATS_TLS_KEY: tls.clientKey };
    return `tls { cert_file: "${tls.serverCert}", key_file: "${tls.serverKey}", ca_file: "${tls.ca}", verify: true }\n`;
  }, async (server) => {
    const withUrl = { ...env, WEIR_NATS_URL: server.url };
    assertFinished(await run("tls", [], withUrl), "tls");
    assert.equal(await outputOf("tls", withUrl), EXPECTED);
    const noCert = await run("tls", [], { WEIR_NATS_URL: server.url, WEIR_NATS_TLS_CA: env.WEIR_NATS_TLS_CA! });
    assert.is.not(noCert.code, 0, "without a client certificate the server refuses");
    assert.match(noCert.stderr, /a client that has no certificate \(set one with WEIR_NATS_TLS_CERT and WEIR_NATS_TLS_KEY/, "the failure names the settings");
    const noCa = await run("tls", [], { WEIR_NATS_URL: server.url, WEIR_NATS_TLS_CERT: env.WEIR_NATS_TLS_CERT!, WEIR_NATS_TLS_KEY: env.WEIR_NATS_TLS_KEY! });
    assert.match(noCa.stderr, /no CA is set, and the system's CAs do not trust the server's certificate \(set it with WEIR_NATS_TLS_CA/);
    const foreignKey = join(dirname(env.WEIR_NATS_TLS_KEY!), "foreign.key");
    writeFileSync(foreignKey, generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }));
    const mismatch = await run("tls", [], { ...withUrl, WEIR_NATS_TLS_KEY: foreignKey });
    assert.is(mismatch.stderr.trim(), `weir: NATS TLS client key ${foreignKey} (from WEIR_NATS_TLS_KEY) does not belong to the client certificate ${env.WEIR_NATS_TLS_CERT} (from WEIR_NATS_TLS_CERT)`);
    const notPem = await run("tls", [], { ...withUrl, WEIR_NATS_TLS_CA: foreignKey });
    assert.match(notPem.stderr, new RegExp(`NATS TLS CA certificate ${foreignKey} \\(from WEIR_NATS_TLS_CA\\) is not a PEM CA certificate`));
  });
});

test("--context NAME reads the nats CLI's context file; a missing context is one line naming the file", async () => {
  await withSecured("context", () => USERS, async (server, d) => {
    const config = join(d.dir, "xdg");
    mkdirSync(join(config, "nats", "context"), { recursive: true });
    // As `nats context save` writes it: every field, empty ones too.
    d.file("xdg/nats/context/prod.json", JSON.stringify({ description: "", url: server.url, socks_proxy: "", token: "", user: "alice", password: PASSWORD, creds: "", nkey: "", cert: "", key: "", ca: "", nsc: "", jetstream_domain: "", jetstream_api_prefix: "", jetstream_event_prefix: "", inbox_prefix: "", user_jwt: "", color_scheme: "" }, null, 2));
    const env = { XDG_CONFIG_HOME: config };
    assertFinished(await run("ctx", ["--context", "prod"], env), "ctx");
    assert.equal(await outputOf("ctx", env, { context: "prod" }), EXPECTED);
    const status = await runWeir(["status", "ctx", "--context", "prod"], { env: { ...CLEAN_ENV, ...env } });
    assert.match(status.stdout, "ctx");
    const missing = await run("ctx", ["--context", "nosuch"], env);
    assert.is.not(missing.code, 0);
    assert.is(missing.stderr.trim(), `weir: NATS context "nosuch" (--context) not found: no file ${join(config, "nats", "context", "nosuch.json")}`);
  });
});

test("--workers 2 passes --creds to every worker", async () => {
  let creds = "";
  await withSecured("workers", (d) => { const chain = makeJwtChain(d); creds = chain.credsFile; return chain.serverConfig; }, async (server) => {
    const exit = await run("wk", ["--workers", "2", "--nats", server.url, "--creds", creds, "--quiet"]);
    assert.is(exit.code, 0, exit.stderr.slice(-800));
    assert.equal(await outputOf("wk", {}, { nats: server.url, creds }), EXPECTED);
  });
});

test.run();

// Connection settings without a server: which source wins, URL credentials, masking, the job option
// `nats` checked, nats CLI contexts read.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeServers, redactUrl, resolveNatsSettings } from "../runtime/nats/connection-settings.ts";
import { resolveJobOptions } from "../runtime/api/options.ts";
import { clientOptions } from "../runtime/nats/connect.ts";

const test = suite("NATS connection settings");

test("redactUrl masks the password or token of every URL and keeps the rest", () => {
  assert.is(redactUrl("nats://alice:s3cret@10.0.0.1:4222"), "nats://alice:***@10.0.0.1:4222");
  assert.is(redactUrl("nats://tok3n@h:4222,tls://bob:pw@h2:4222,h3:4222"), "nats://***@h:4222,tls://bob:***@h2:4222,h3:4222");
  assert.is(redactUrl("nats://h:4222"), "nats://h:4222");
  // A password with a raw "@": the userinfo ends at the last "@" (as Go's url.Parse and WHATWG URL read it).
  assert.is(redactUrl("nats://alice:P@ss@w0rd@10.0.0.1:4222"), "nats://alice:***@10.0.0.1:4222");
});

test("credentials come out of the URLs (the client ignores them there), several servers kept", () => {
  const s = resolveNatsSettings({ flags: { nats: "nats://alice:p%40ss@a:4222, nats://b:4222" }, env: {} });
  assert.equal(s.servers, ["nats://a:4222", "nats://b:4222"]);
  assert.is(s.user, "alice");
  assert.is(s.password, "p@ss");
  assert.is(describeServers(s), "nats://alice:***@a:4222,nats://alice:***@b:4222");
  assert.is(resolveNatsSettings({ option: "nats://t0k@a:1", env: {} }).token, "t0k");
  // Not percent-encoded: the password runs to the last "@", none of it in the servers or their description.
  const raw = resolveNatsSettings({ flags: { nats: "nats://alice:P@ss@w0rd@a:4222" }, env: {} });
  assert.equal([raw.user, raw.password, raw.servers], ["alice", "P@ss@w0rd", ["nats://a:4222"]]);
  assert.is(describeServers(raw), "nats://alice:***@a:4222");
});

test("URLs with different credentials are refused (the client has one set); the same set repeated is fine", () => {
  assert.throws(() => resolveNatsSettings({ flags: { nats: "nats://a:x@h1:4222,nats://b:y@h2:4222" }, env: {} }), /--nats: the server URLs carry different credentials/);
  assert.throws(() => resolveNatsSettings({ env: { WEIR_NATS_URL: "nats://t1@h1:4222,nats://t2@h2:4222" } }), /WEIR_NATS_URL: the server URLs carry different credentials/);
  const same = resolveNatsSettings({ flags: { nats: "nats://a:x@h1:4222,nats://a:x@h2:4222,nats://h3:4222" }, env: {} });
  assert.equal([same.user, same.password, same.servers.length], ["a", "x", 3]);
});

test("the job option nats.tls turns TLS on, even empty (the system's CAs, as nats.js reads tls: {})", () => {
  const tlsOf = (option: Parameters<typeof resolveNatsSettings>[0]["option"]) => clientOptions(resolveNatsSettings({ env: {}, option })).tls;
  assert.ok(tlsOf({ servers: "nats://h:4222", tls: {} }), "tls: {} requires TLS");
  assert.is(tlsOf({ servers: "nats://h:4222" }), undefined, "no tls: plain");
  assert.ok(tlsOf({ servers: "tls://h:4222" }), "a tls:// URL requires TLS");
});

test("flags over WEIR_NATS_* over the job option, setting by setting", () => {
  const env = { WEIR_NATS_URL: "nats://env:1", WEIR_NATS_USER: "envuser", WEIR_NATS_PASSWORD: "envpw", WEIR_NATS_CREDS: "/env.creds" };
  const option = { servers: ["nats://opt:1"], user: "optuser", password: "optpw", creds: "/opt.creds", tls: { ca: "/opt-ca.pem" } };
  const s = resolveNatsSettings({ flags: { nats: "nats://flag:1", creds: "/flag.creds" }, env, option });
  assert.equal(s.servers, ["nats://flag:1"]);
  assert.is(s.creds, "/flag.creds");
  assert.is(s.user, "envuser");
  assert.is(s.ca, "/opt-ca.pem");
  const fromEnv = resolveNatsSettings({ env, option });
  assert.equal(fromEnv.servers, ["nats://env:1"]);
  assert.is(fromEnv.origin.creds, "WEIR_NATS_CREDS");
  assert.equal(resolveNatsSettings({ env: {}, option: "nats://opt:1" }).servers, ["nats://opt:1"]);
  assert.equal(resolveNatsSettings({ env: {} }).servers, [], "nothing set: the embedded default");
});

test("a context sits right below the source naming it; a missing one is one line naming the file", () => {
  const xdg = mkdtempSync(join(tmpdir(), "weir-ctx-"));
  try {
    mkdirSync(join(xdg, "nats", "context"), { recursive: true });
    writeFileSync(join(xdg, "nats", "context", "prod.json"), JSON.stringify({ description: "x", url: "nats://ctx:1,nats://ctx:2", user: "cu", password: "cp", nkey: "", jetstream_domain: "" }));
    writeFileSync(join(xdg, "nats", "context", "hub.json"), JSON.stringify({ url: "nats://hub:1", jetstream_domain: "hub" }));
    const s = resolveNatsSettings({ flags: { context: "prod" }, env: { XDG_CONFIG_HOME: xdg, WEIR_NATS_USER: "envuser" } });
    assert.equal(s.servers, ["nats://ctx:1", "nats://ctx:2"]);
    assert.is(s.user, "cu", "the --context's user beats WEIR_NATS_USER");
    assert.throws(() => resolveNatsSettings({ flags: { context: "nope" }, env: { XDG_CONFIG_HOME: xdg } }), (e: Error) => e.message === `NATS context "nope" (--context) not found: no file ${join(xdg, "nats", "context", "nope.json")}`);
    assert.throws(() => resolveNatsSettings({ env: { XDG_CONFIG_HOME: xdg, WEIR_NATS_CONTEXT: "hub" } }), /field jetstream_domain: not supported by weir/);
  } finally {
    rmSync(xdg, { recursive: true, force: true });
  }
});

test("the job option nats: string or object; an unknown or mistyped field is named, its value never shown", () => {
  assert.is(resolveJobOptions({ name: "j", nats: "nats://h:1" }).nats, "nats://h:1");
  assert.equal(resolveJobOptions({ name: "j", nats: { servers: "nats://h:1", tls: { ca: "/ca.pem" } } }).nats, { servers: "nats://h:1", tls: { ca: "/ca.pem" } });
  assert.throws(() => resolveJobOptions({ name: "j", nats: { servers: "nats://h:1", passwd: "x" } }), /job options: unknown option "nats.passwd" \(did you mean "nats.password"\?\)/);
  assert.throws(() => resolveJobOptions({ name: "j", nats: { tls: { cafile: "/x" } } }), /unknown option "nats.tls.cafile"/);
  assert.throws(() => resolveJobOptions({ name: "j", nats: { user: "u", password: 12345678 } }), (e: Error) => e.message === "job options: nats.password: expected a string");
  assert.throws(() => resolveNatsSettings({ env: { WEIR_NATS_PASSWORD: "pw" } }), (e: Error) => /password is set \(WEIR_NATS_PASSWORD\) but no user/.test(e.message) && !e.message.includes("pw)"));
});

test("as the nats CLI: a context's file paths expand ~, and a context without a url means nats://127.0.0.1:4222; a misspelled WEIR_NATS_* is an error", () => {
  const xdg = mkdtempSync(join(tmpdir(), "weir-ctx-"));
  try {
    mkdirSync(join(xdg, "nats", "context"), { recursive: true });
    writeFileSync(join(xdg, "nats", "context", "home.json"), JSON.stringify({ url: "", nkey: "~/keys/user.nk", ca: "~/ca.pem" }));
    const s = resolveNatsSettings({ flags: { context: "home" }, env: { XDG_CONFIG_HOME: xdg, HOME: "/home/u" } });
    assert.is(s.nkey, "/home/u/keys/user.nk");
    assert.is(s.ca, "/home/u/ca.pem");
    assert.equal(s.servers, ["nats://127.0.0.1:4222"]);
    // Every field of a context as the nats CLI (jsm.go natscontext) may write it, empty: the list is `[]` once edited.
    const empty = { description: "", url: "nats://h:4222", socks_proxy: "", token: "", user: "u", password: "p", creds: "", nkey: "", cert: "", key: "", ca: "", nsc: "", jetstream_domain: "", jetstream_api_prefix: "", jetstream_event_prefix: "", inbox_prefix: "", user_jwt: "", color_scheme: "", tls_first: false, windows_cert_store: "", windows_cert_match_by: "", windows_cert_match: "" };
    for (const list of [null, []]) {
      writeFileSync(join(xdg, "nats", "context", "saved.json"), JSON.stringify({ ...empty, windows_ca_certs_match: list }));
      assert.equal(resolveNatsSettings({ flags: { context: "saved" }, env: { XDG_CONFIG_HOME: xdg } }).servers, ["nats://h:4222"], JSON.stringify(list));
    }
    writeFileSync(join(xdg, "nats", "context", "saved.json"), JSON.stringify({ ...empty, windows_ca_certs_match: ["CN=corp"] }));
    assert.throws(() => resolveNatsSettings({ flags: { context: "saved" }, env: { XDG_CONFIG_HOME: xdg } }), /field windows_ca_certs_match: not supported by weir/);
    assert.throws(() => resolveNatsSettings({ env: { WEIR_NATS_SERVERS: "nats://h:1" } }), /unknown environment variable WEIR_NATS_SERVERS \(weir reads WEIR_NATS_URL/);
  } finally {
    rmSync(xdg, { recursive: true, force: true });
  }
});

test.run();

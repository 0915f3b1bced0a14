// A server certificate the client refuses is one line naming the CA setting, whether the client asked
// for TLS or not (a server with `tls {}` upgrades a nats:// connection, and Node's "unable to verify the
// first certificate" names no setting).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { connectNats } from "../runtime/nats/connect.ts";
import { resolveNatsSettings } from "../runtime/nats/connection-settings.ts";
import { tlsFailureHint } from "../runtime/nats/tls.ts";
import { runWeir } from "./helpers/cli.ts";
import { makeTls, secureDir, startWithConfig, type SecureDir } from "./helpers/nats-secure.ts";
import type { NatsServerProcess } from "../runtime/nats/server-process.ts";

const test = suite("TLS failures name the settings");
const CLEAN_ENV = { WEIR_NATS_URL: "", WEIR_NATS_USER: "", WEIR_NATS_PASSWORD: "", WEIR_NATS_TOKEN: "", WEIR_NATS_CREDS: "", WEIR_NATS_NKEY: "", WEIR_NATS_TLS_CA: "", WEIR_NATS_TLS_CERT: "", WEIR_NATS_TLS_KEY: "", WEIR_NATS_CONTEXT: "" };

async function connectError(env: NodeJS.ProcessEnv): Promise<string> {
  const nc = await connectNats(resolveNatsSettings({ env })).catch((e: unknown) => e as Error);
  if (!(nc instanceof Error)) { await nc.close(); throw new Error("connected"); }
  return nc.message;
}

test("a verifying TLS server and a client with no TLS settings: the error names WEIR_NATS_TLS_CA and says none was set", async () => {
  const d: SecureDir = secureDir();
  let server: NatsServerProcess | undefined;
  try {
    const tls = makeTls(d);
    server = await startWithConfig(d, "tlshint", `tls { cert_file: "${tls.serverCert}", key_file: "${tls.serverKey}", ca_file: "${tls.ca}", verify: true }\n`);
    // nats:// as in the report (the helper gives a TLS server's URL as tls://, which asks for TLS).
    const url = server.url.replace(/^tls:/, "nats:");
    const message = await connectError({ WEIR_NATS_URL: url });
    assert.match(message, /unable to verify the first certificate/);
    assert.match(message, /the server requires TLS, no CA is set, .*\(set it with WEIR_NATS_TLS_CA/);
    // Another CA than the server's: named with the setting it came from.
    const other = secureDir();
    try {
      const foreign = makeTls(other);
      assert.match(await connectError({ WEIR_NATS_URL: url, WEIR_NATS_TLS_CA: foreign.ca }), `not signed by the CA ${foreign.ca} (from WEIR_NATS_TLS_CA)`);
    } finally {
      other.close();
    }
    // As `weir` prints it: one line.
    const exit = await runWeir(["status"], { env: { ...CLEAN_ENV, WEIR_NATS_URL: url }, deadlineMs: 60_000 });
    assert.is.not(exit.code, 0);
    assert.is(exit.stderr.trim().split("\n").length, 1, exit.stderr);
    assert.match(exit.stderr, /^weir: cannot reach NATS at .*no CA is set.*WEIR_NATS_TLS_CA/);
  } finally {
    await server?.stop();
    d.close();
  }
});

test("a server URL with an IP address: the certificate is checked against that IP (not \"localhost\"), as the nats CLI checks it", async () => {
  for (const [names, accepted] of [["IP:127.0.0.1", true], ["DNS:localhost", false]] as const) {
    const d: SecureDir = secureDir();
    let server: NatsServerProcess | undefined;
    try {
      const tls = makeTls(d, names);
      server = await startWithConfig(d, "tlsip", `tls { cert_file: "${tls.serverCert}", key_file: "${tls.serverKey}" }\n`);
      const env = { WEIR_NATS_URL: server.url.replace(/^tls:/, "nats:"), WEIR_NATS_TLS_CA: tls.ca };
      assert.match(env.WEIR_NATS_URL, /^nats:\/\/127\.0\.0\.1:/);
      if (accepted) await (await connectNats(resolveNatsSettings({ env }))).close();
      else assert.match(await connectError(env), /IP: 127\.0\.0\.1 is not in the cert's list.*does not name the host in the URL/);
    } finally {
      await server?.stop();
      d.close();
    }
  }
});

test("every certificate verification failure names the CA setting", () => {
  const none = resolveNatsSettings({ env: { WEIR_NATS_URL: "nats://h:4222" } });
  const withCa = resolveNatsSettings({ env: { WEIR_NATS_URL: "nats://h:4222", WEIR_NATS_TLS_CA: "/etc/ca.pem" } });
  for (const reason of [
    "unable to verify the first certificate",
    "self-signed certificate in certificate chain",
    "self signed certificate",
    "unable to get local issuer certificate",
    "unable to get issuer certificate",
    "certificate has expired",
    "certificate is not yet valid",
    "Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list: 127.0.0.1",
  ]) {
    assert.match(tlsFailureHint(reason, none, false), /the server requires TLS, .*no CA is set.*WEIR_NATS_TLS_CA/, reason);
    assert.match(tlsFailureHint(reason, none), /no CA is set.*WEIR_NATS_TLS_CA/, reason);
    assert.match(tlsFailureHint(reason, withCa), "/etc/ca.pem (from WEIR_NATS_TLS_CA)", reason);
  }
  assert.is(tlsFailureHint("connection refused", none, false), "");
  assert.is(tlsFailureHint("timeout", none, false), "", "a timeout without TLS settings is no TLS failure");
});

test.run();

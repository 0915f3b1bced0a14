// Secured nats-servers for tests: a server per credential kind (user/password, token, NKey, JWT creds,
// TLS with client certificates), started with tests/helpers/nats-server.ts, and the matching client
// material in a temp dir that `close()` removes. Certificates come from `openssl`; JWTs are signed here with
// @nats-io/nkeys (a JWT is base64url(header).base64url(claims).base64url(ed25519 signature by the issuer)).

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { createAccount, createOperator, createUser, type KeyPair } from "@nats-io/nkeys";
import { launchNatsServer, type NatsServerProcess } from "../../runtime/nats/server-process.ts";

export interface SecureDir {
  readonly dir: string;
  file(name: string, text: string): string;
  close(): void;
}

export function secureDir(): SecureDir {
  const dir = mkdtempSync(join(tmpdir(), "weir-secure-"));
  return {
    dir,
    file(name, text) { const p = join(dir, name); writeFileSync(p, text, { mode: 0o600 }); return p; },
    close() { rmSync(dir, { recursive: true, force: true }); },
  };
}

/** A nats-server on a config file written into `d` (JetStream on, random port, own store). */
export async function startWithConfig(d: SecureDir, name: string, config: string): Promise<NatsServerProcess> {
  const conf = d.file(`${name}.conf`, config);
  return launchNatsServer({ args: ["-c", conf] });
}

export interface TlsFiles { readonly ca: string; readonly serverCert: string; readonly serverKey: string; readonly clientCert: string; readonly clientKey: string }

/** A CA, a server certificate for `serverNames` (subjectAltName) and a client certificate it signed (EC P-256, one day). */
export function makeTls(d: SecureDir, serverNames = "IP:127.0.0.1,DNS:localhost"): TlsFiles {
  const p = (n: string) => join(d.dir, n);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: d.dir, stdio: ["ignore", "ignore", "pipe"] });
  const newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl("req", "-x509", ...newKey, "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "1", "-subj", "/CN=weir-test-ca");
  for (const [who, ext] of [["server", `subjectAltName=${serverNames}\nextendedKeyUsage=serverAuth\n`], ["client", "extendedKeyUsage=clientAuth\n"]] as const) {
    ssl("req", ...newKey, "-keyout", p(`${who}.key`), "-out", p(`${who}.csr`), "-subj", `/CN=weir-test-${who}`);
    const extFile = d.file(`${who}.ext`, ext);
    ssl("x509", "-req", "-in", p(`${who}.csr`), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial", "-out", p(`${who}.pem`), "-days", "1", "-extfile", extFile);
  }
  return { ca: p("ca.pem"), serverCert: p("server.pem"), serverKey: p("server.key"), clientCert: p("client.pem"), clientKey: p("client.key") };
}

export interface NkeyUser { readonly seed: string; readonly publicKey: string }

export function makeNkeyUser(): NkeyUser {
  const kp = createUser();
  return { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() };
}

const b64 = (v: Uint8Array | string) => Buffer.from(v).toString("base64url");

/** A JWT as nats-server reads it: claims `nats` of `type`, issued and signed by `issuer` for `subject`. */
function signJwt(issuer: KeyPair, subject: string, name: string, nats: Record<string, unknown>, expiresAt?: number): string {
  const header = b64(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));
  const claims = b64(JSON.stringify({ jti: randomBytes(16).toString("hex").toUpperCase(), iat: Math.floor(Date.now() / 1000), iss: issuer.getPublicKey(), name, sub: subject, ...(expiresAt !== undefined ? { exp: Math.floor(expiresAt / 1000) } : {}), nats: { ...nats, version: 2 } }));
  const signature = b64(issuer.sign(new TextEncoder().encode(`${header}.${claims}`)));
  return `${header}.${claims}.${signature}`;
}

export interface JwtChain {
  /** The server config lines: operator, an in-memory resolver with the account preloaded. */
  readonly serverConfig: string;
  /** A creds file for one user of the account. */
  readonly credsFile: string;
  /** A creds file for another user of the account whose JWT expires at `expiresAt` (ms since the epoch). */
  expiringCreds(name: string, expiresAt: number): string;
}

/** Operator → account (JetStream unlimited) → user, and the creds file of the user. */
export function makeJwtChain(d: SecureDir): JwtChain {
  const operator = createOperator();
  const account = createAccount();
  // JetStream in operator mode needs a system account.
  const system = createAccount();
  const user = createUser();
  const operatorJwt = signJwt(operator, operator.getPublicKey(), "weir-test-operator", { type: "operator" });
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 };
  const accountJwt = signJwt(operator, account.getPublicKey(), "weir-test-account", { type: "account", limits: unlimited });
  const systemJwt = signJwt(operator, system.getPublicKey(), "SYS", { type: "account", limits: { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 } });
  const credsOf = (file: string, u: KeyPair, expiresAt?: number) => d.file(file, [
    "-----BEGIN NATS USER JWT-----", signJwt(account, u.getPublicKey(), "weir-test-user", { type: "user", pub: {}, sub: {}, subs: -1, data: -1, payload: -1 }, expiresAt), "------END NATS USER JWT------", "",
    "************************* IMPORTANT *************************", "NKEY Seed printed below can be used to sign and prove identity.", "",
    "-----BEGIN USER NKEY SEED-----", new TextDecoder().decode(u.getSeed()), "------END USER NKEY SEED------", "",
  ].join("\n"));
  const credsFile = credsOf("user.creds", user);
  const operatorFile = d.file("operator.jwt", operatorJwt);
  return {
    serverConfig: `operator: "${operatorFile}"\nsystem_account: ${system.getPublicKey()}\nresolver: MEMORY\nresolver_preload: {\n  ${account.getPublicKey()}: "${accountJwt}"\n  ${system.getPublicKey()}: "${systemJwt}"\n}\n`,
    credsFile,
    expiringCreds: (name, expiresAt) => credsOf(name, createUser(), expiresAt),
  };
}

// Which server a command talks to and how (connection-settings.ts: flags, WEIR_NATS_*, the job option,
// a nats CLI context; else the embedded default, started or reused). Connection failures become one
// readable line that shows the servers with `describeServers` and never a secret.

import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, nkeyAuthenticator, AuthorizationError, type Authenticator, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { ErrorCode, WeirError } from "../core/errors.ts";
import type { NatsConnectionOptions } from "../contracts/job-options.ts";
import { ensureEmbeddedServer } from "./embedded.ts";
import { describeServers, parseServers, resolveNatsSettings, type NatsFlags, type NatsSettings } from "./connection-settings.ts";
import { credsExpiryHint } from "./creds-expiry.ts";
import { checkTlsFiles, serverIdentity, tlsFailureHint } from "./tls.ts";
import { isCredentialsRefusal, moreTelling, watchPermissionDenials } from "./denials.ts";

/** Every source merged; with no server named anywhere, the embedded default (started or reused). */
export async function resolveNatsConnection(given: { flags?: NatsFlags; option?: string | NatsConnectionOptions | undefined }): Promise<NatsSettings> {
  const settings = resolveNatsSettings(given);
  if (settings.servers.length > 0) return settings;
  const { url } = await ensureEmbeddedServer();
  return { ...settings, servers: [url], origin: { ...settings.origin, servers: "the embedded default server" } };
}

/** A URL (credentials in it are used) or resolved settings. */
export async function connectNats(target: string | NatsSettings, name = "weir"): Promise<NatsConnection> {
  const parsed = typeof target === "string" ? parseServers(target, "NATS URL") : undefined;
  const settings: NatsSettings = parsed ? { ...parsed.values, servers: parsed.values.servers!, origin: parsed.origin } : target as NatsSettings;
  const shown = describeServers(settings);
  const options = clientOptions(settings);
  try {
    // Reconnect forever (a daemon outlives a server restart), and ping every 5 s so a server that vanished
    // without closing the socket is noticed within ~15 s rather than the client's default 2 minutes × 2.
    // noAsyncTraces: otherwise every request (each JetStream publish) builds two Errors with stack traces
    // up front in case it fails: a quarter of the soak job's CPU in a profile (bench/soak.ts).
    return await connect({ ...options, name, maxReconnectAttempts: -1, reconnectTimeWait: 500, timeout: 5000, pingInterval: 5000, maxPingOut: 2, noAsyncTraces: true });
  } catch (e) {
    const reason = scrub((e as Error).message || String(e), settings);
    // The client reads the file only when it connects: its complaint is about the file, not the server.
    if (settings.creds !== undefined && /unable to parse credentials/i.test(reason)) {
      throw new WeirError(ErrorCode.InvalidOption, `NATS credentials file ${settings.creds} (from ${settings.origin.creds ?? "creds"}) is not a credentials file: it needs a user JWT and an NKey seed (as \`nsc generate creds\` writes it)`, { cause: e });
    }
    if (e instanceof AuthorizationError || /authorization|authentication/i.test(reason)) {
      const expired = settings.creds !== undefined ? credsExpiryHint(settings.creds, settings.origin.creds ?? "creds") : "";
      throw new WeirError(ErrorCode.NatsAuth, `NATS at ${shown} refused the credentials (${reason.replace(/^'|'$/g, "")})${expired}`, { cause: e });
    }
    throw new WeirError(ErrorCode.NatsUnreachable, `cannot reach NATS at ${shown}: ${reason}${tlsFailureHint(reason, settings, options.tls !== undefined)}`, { cause: e });
  }
}

/** The client's options: user/password and token as options (the client ignores them in URLs), files read here so a missing one is one line naming it. */
export function clientOptions(s: NatsSettings): NodeConnectionOptions {
  const authenticator: Authenticator[] = [];
  if (s.creds !== undefined) authenticator.push(credsAuthenticator(readSetting(s, "creds", "credentials file")));
  if (s.nkey !== undefined) authenticator.push(nkeyAuthenticator(new TextEncoder().encode(nkeySeed(s))));
  const tlsWanted = s.tls !== undefined || s.ca !== undefined || s.cert !== undefined || s.servers.some((u) => /^tls:\/\//i.test(u));
  checkTlsFiles(s, (k) => readSetting(s, k, `TLS ${k} file`));
  return {
    servers: [...s.servers],
    ...(s.user !== undefined ? { user: s.user, ...(s.password !== undefined ? { pass: s.password } : {}) } : {}),
    ...(s.token !== undefined ? { token: s.token } : {}),
    ...(authenticator.length > 0 ? { authenticator } : {}),
    // checkServerIdentity: the client's TLS options are handed to Node's tls.connect as they are.
    ...(tlsWanted ? { tls: { checkServerIdentity: serverIdentity, ...(s.ca !== undefined ? { caFile: s.ca } : {}), ...(s.cert !== undefined ? { certFile: s.cert, keyFile: s.key! } : {}) } as NonNullable<NodeConnectionOptions["tls"]> } : {}),
  };
}

function readSetting(s: NatsSettings, key: "creds" | "nkey" | "ca" | "cert" | "key", what: string): Uint8Array {
  const file = s[key]!;
  try {
    return readFileSync(file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new WeirError(ErrorCode.InvalidOption, `NATS ${what} ${file} (from ${s.origin[key] ?? key}) cannot be read (${why})`, { cause: e });
  }
}

/** `nkey`: a file with a user seed (as the nats CLI takes it), or the seed itself (`SU...`). */
function nkeySeed(s: NatsSettings): string {
  const value = s.nkey!;
  // Something that looks like a seed (SU...) but is not a whole one is not echoed back as a file name.
  if (/^SU[A-Z2-7]+$/.test(value.trim()) && !/^SU[A-Z2-7]{50,}$/.test(value.trim())) {
    throw new WeirError(ErrorCode.InvalidOption, `NATS NKey (from ${s.origin.nkey ?? "nkey"}): a user seed that is cut short (${value.trim().length} characters); give the whole seed or the file that holds it`);
  }
  const text = /^SU[A-Z2-7]{50,}$/.test(value.trim()) ? value.trim() : new TextDecoder().decode(readSetting(s, "nkey", "NKey seed file"));
  const seed = text.split(/\r?\n/).map((l) => l.trim()).find((l) => /^SU[A-Z2-7]+$/.test(l));
  if (!seed) throw new WeirError(ErrorCode.InvalidOption, `NATS NKey (from ${s.origin.nkey ?? "nkey"}): no user seed (a line starting with SU) found`);
  return seed;
}

/** A client error message with any secret of `s` masked (the client should not echo them; belt and braces). */
function scrub(message: string, s: NatsSettings): string {
  let out = message;
  for (const secret of [s.password, s.token]) if (secret) out = out.split(secret).join("***");
  return out;
}

/**
 * The first permission the server denied this connection (a denied publish is not an error of the call
 * that made it: the server answers on the side), for commands that would otherwise report "no answer".
 */
export function permissionDenials(nc: NatsConnection): () => WeirError | undefined {
  let denied: WeirError | undefined;
  watchPermissionDenials(nc, (e) => { denied ??= e; });
  return () => denied;
}

/**
 * Why the client closed on its own: reconnecting forever, it does so only once the server refused the
 * credentials, though it may close with another error of its own then ("connection refused"): `lastRefusal`,
 * the last refusal its status reported, says why; and an expiry it reported says more than the
 * "Authorization Violation" of the reconnect the client closed with after it (moreTelling).
 */
export function closingCause(closedWith: Error, lastRefusal: Error | undefined): Error {
  return moreTelling(lastRefusal, closedWith) ?? closedWith;
}

/**
 * Why a connection that was up closed for good: the client gives up reconnecting when the server refuses
 * its credentials (changed or revoked while weir ran) and closes with that error, which a request made
 * afterwards reports only as "closed connection". `fallback` when it closed without one (closed by weir).
 */
export async function closedConnectionFailure(nc: NatsConnection, fallback: unknown, lastRefusal?: Error): Promise<unknown> {
  const closedWith = await nc.closed();
  if (!closedWith) return fallback;
  const why = closingCause(closedWith, lastRefusal);
  if (isCredentialsRefusal(why)) {
    return new WeirError(ErrorCode.NatsAuth, `NATS refused the credentials when the connection came back (${why.message}); the client closed the connection, so the job cannot go on: check the user's credentials and permissions on the server`, { cause: why });
  }
  return new WeirError(ErrorCode.Transport, `the NATS connection closed for good: ${why.message}`, { cause: why });
}

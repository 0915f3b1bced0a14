// Where and how weir connects to NATS: servers, credentials and TLS, from (highest first) the command line
// (--nats, --context, --creds), the WEIR_NATS_* environment variables, the job option `nats`, and a context
// of the nats CLI named by one of those. Each setting comes from the highest source that sets it, so
// `--nats nats://prod:4222` with WEIR_NATS_CREDS set uses both. Secrets never leave this module in
// text: URLs are shown with `redactUrl`, and errors name the setting, never its value.

import * as t from "io-ts";
import { isLeft } from "fp-ts/lib/Either.js";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { errorPath, unknownKeyError } from "../core/validation.ts";
import type { NatsConnectionOptions } from "../contracts/job-options.ts";
import { readNatsContext } from "./context.ts";
import { parseServers, SettingNames, type NatsLayer, type SettingName, type Values } from "./server-urls.ts";

export { describeServers, redactUrl, parseServers, type NatsLayer, type SettingName } from "./server-urls.ts";

const TlsCodec = t.exact(t.partial({ ca: t.string, cert: t.string, key: t.string }), "NatsTls");
export const NatsConnectionOptionsCodec = t.exact(t.partial({
  servers: t.union([t.string, t.readonlyArray(t.string)]),
  user: t.string,
  password: t.string,
  token: t.string,
  creds: t.string,
  nkey: t.string,
  tls: TlsCodec,
  context: t.string,
}), "NatsConnectionOptions");
/** The job option `nats`: a URL (several comma-separated) or the settings object. */
export const NatsOptionCodec = t.union([t.string, NatsConnectionOptionsCodec], "NatsOption");

export interface NatsSettings extends Values {
  /** URLs without credentials; empty: the embedded default server. */
  readonly servers: readonly string[];
  readonly origin: Readonly<Partial<Record<SettingName, string>>>;
}

/** The command-line flags of every weir command that connects. */
export interface NatsFlags {
  readonly nats?: string;
  readonly context?: string;
  readonly creds?: string;
}

function layerOf(values: Partial<Record<Exclude<SettingName, "servers">, string | undefined>>, origin: (k: SettingName) => string, base?: NatsLayer): NatsLayer {
  const v: { -readonly [K in keyof Values]: Values[K] } = { ...base?.values };
  const o: Partial<Record<SettingName, string>> = { ...base?.origin };
  for (const [k, value] of Object.entries(values) as Array<[Exclude<SettingName, "servers">, string | undefined]>) {
    if (value === undefined || value === "") continue;
    v[k] = value;
    o[k] = origin(k);
  }
  return { values: v, origin: o };
}

export function flagsLayer(flags: NatsFlags): NatsLayer {
  const base = flags.nats !== undefined ? parseServers(flags.nats, "--nats") : undefined;
  const layer = layerOf({ creds: flags.creds }, () => "--creds", base);
  return flags.context ? { ...layer, context: { name: flags.context, origin: "--context" } } : layer;
}

const ENV = {
  user: "WEIR_NATS_USER", password: "WEIR_NATS_PASSWORD", token: "WEIR_NATS_TOKEN", creds: "WEIR_NATS_CREDS",
  nkey: "WEIR_NATS_NKEY", ca: "WEIR_NATS_TLS_CA", cert: "WEIR_NATS_TLS_CERT", key: "WEIR_NATS_TLS_KEY",
} as const;
/** Every environment variable weir reads for its connection (a child process started for a test clears them). */
export const NATS_ENV_VARS = ["WEIR_NATS_URL", "WEIR_NATS_CONTEXT", ...Object.values(ENV)] as const;

export function envLayer(env: NodeJS.ProcessEnv): NatsLayer {
  // A misspelled variable would be ignored and weir would connect elsewhere (the embedded server).
  const unknown = Object.keys(env).filter((k) => k.startsWith("WEIR_NATS_") && !(NATS_ENV_VARS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new WeirError(ErrorCode.InvalidOption, `unknown environment variable ${unknown[0]} (weir reads ${NATS_ENV_VARS.join(", ")})`);
  const url = env.WEIR_NATS_URL;
  const base = url ? parseServers(url, "WEIR_NATS_URL") : undefined;
  const values = Object.fromEntries(Object.entries(ENV).map(([k, name]) => [k, env[name]]));
  const layer = layerOf(values, (k) => ENV[k as keyof typeof ENV], base);
  return env.WEIR_NATS_CONTEXT ? { ...layer, context: { name: env.WEIR_NATS_CONTEXT, origin: "WEIR_NATS_CONTEXT" } } : layer;
}

export function optionLayer(option: string | NatsConnectionOptions | undefined): NatsLayer {
  if (option === undefined) return { values: {}, origin: {} };
  if (typeof option === "string") return parseServers(option, "job option nats");
  const base = option.servers !== undefined ? parseServers(option.servers, "job option nats.servers") : undefined;
  const { tls } = option;
  const layer = layerOf(
    { user: option.user, password: option.password, token: option.token, creds: option.creds, nkey: option.nkey, ca: tls?.ca, cert: tls?.cert, key: tls?.key, tls: tls ? "required" : undefined },
    (k) => `job option nats.${k === "ca" || k === "cert" || k === "key" ? `tls.${k}` : k}`,
    base,
  );
  return option.context ? { ...layer, context: { name: option.context, origin: "job option nats.context" } } : layer;
}

/** Each setting from the highest layer that sets it; the first context named is read and placed right below its namer. */
export function mergeLayers(layers: readonly NatsLayer[], env: NodeJS.ProcessEnv): NatsSettings {
  const named = layers.findIndex((l) => l.context !== undefined);
  const all = named < 0 ? [...layers] : [...layers.slice(0, named + 1), readNatsContext(layers[named]!.context!.name, layers[named]!.context!.origin, env), ...layers.slice(named + 1)];
  const values: { -readonly [K in keyof Values]: Values[K] } = {};
  const origin: Partial<Record<SettingName, string>> = {};
  for (const name of SettingNames) {
    const from = all.find((l) => l.values[name] !== undefined);
    if (!from) continue;
    (values as Record<string, unknown>)[name] = from.values[name];
    origin[name] = from.origin[name]!;
  }
  if (values.password !== undefined && values.user === undefined) {
    throw new WeirError(ErrorCode.InvalidOption, `NATS: a password is set (${origin.password}) but no user`);
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    const [has, lacks] = values.cert !== undefined ? ["cert", "key"] : ["key", "cert"];
    throw new WeirError(ErrorCode.InvalidOption, `NATS TLS: a client ${has} is set (${origin[has as SettingName]}) but no ${lacks}`);
  }
  return { ...values, servers: values.servers ?? [], origin };
}

export function resolveNatsSettings(given: { flags?: NatsFlags; option?: string | NatsConnectionOptions | undefined; env?: NodeJS.ProcessEnv }): NatsSettings {
  const env = given.env ?? process.env;
  return mergeLayers([flagsLayer(given.flags ?? {}), envLayer(env), optionLayer(given.option)], env);
}

/**
 * Checks the job option `nats`: an unknown field is an error naming it; a wrong type names the field and
 * never shows the value (it may be a password).
 */
export function checkNatsOption(value: unknown, what: string): void {
  if (value === undefined || typeof value === "string") return;
  const unknown = unknownKeyError(t.partial({ nats: NatsConnectionOptionsCodec }), { nats: value }, what);
  if (unknown) throw new WeirError(ErrorCode.InvalidOption, unknown);
  const result = NatsOptionCodec.decode(value);
  if (isLeft(result)) {
    const objectErrors = NatsConnectionOptionsCodec.decode(value);
    const path = isLeft(objectErrors) ? errorPath(objectErrors.left) : "(value)";
    const field = path === "(value)" ? "nats" : `nats.${path}`;
    throw new WeirError(ErrorCode.InvalidOption, `${what}: ${field}: expected ${field === "nats" ? "a URL string or an object" : field === "nats.servers" ? "a string or a list of strings" : field === "nats.tls" ? "an object { ca, cert, key }" : "a string"}`);
  }
}

// The nats CLI's contexts: `--context NAME` reads `$XDG_CONFIG_HOME/nats/context/NAME.json` (default
// ~/.config/nats/context), as the CLI writes it (natscontext in github.com/nats-io/jsm.go): url (several
// comma-separated), user, password, token, creds, nkey (a seed file), cert, key, ca. The CLI writes every
// field, empty ones too, so empty fields are skipped; a field weir cannot honour (nsc, a JetStream domain
// or API prefix, ...) that has a value is an error naming it, rather than a connection that differs from
// what the nats CLI would make.

import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { ErrorCode, WeirError } from "../core/errors.ts";
import { parseServers, type NatsLayer, type SettingName } from "./server-urls.ts";

const PATH_FIELDS: ReadonlySet<string> = new Set(["creds", "nkey", "cert", "key", "ca"]);

function expandHome(path: string, env: NodeJS.ProcessEnv): string {
  return path === "~" || path.startsWith("~/") ? join(env.HOME ?? homedir(), path.slice(1)) : path;
}

const FIELDS = { user: "user", password: "password", token: "token", creds: "creds", nkey: "nkey", cert: "cert", key: "key", ca: "ca" } as const;
/** Fields that only describe the context. */
const IGNORED = new Set(["description", "color_scheme"]);

export function contextPath(name: string, env: NodeJS.ProcessEnv): string {
  const parent = env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(parent, "nats", "context", `${name}.json`);
}

export function readNatsContext(name: string, origin: string, env: NodeJS.ProcessEnv): NatsLayer {
  if (!name || name.includes("..") || name.includes("/")) {
    throw new WeirError(ErrorCode.InvalidOption, `${origin}: invalid NATS context name "${name}"`);
  }
  const file = contextPath(name, env);
  if (!existsSync(file)) throw new WeirError(ErrorCode.InvalidOption, `NATS context "${name}" (${origin}) not found: no file ${file}`);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new WeirError(ErrorCode.InvalidOption, `NATS context "${name}": cannot read ${file}: ${(e as Error).message.split("\n")[0]}`, { cause: e });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    throw new WeirError(ErrorCode.InvalidOption, `NATS context "${name}": ${file} is not a JSON object`);
  }
  const where = (field: string) => `context "${name}" (${file}) field ${field}`;
  const entries = Object.entries(doc as Record<string, unknown>);
  for (const [field, value] of entries) {
    if (value === "" || value === null || value === false || (Array.isArray(value) && value.length === 0) || IGNORED.has(field)) continue;
    if (field === "url" || field in FIELDS) {
      if (typeof value !== "string") throw new WeirError(ErrorCode.InvalidOption, `NATS ${where(field)}: expected a string`);
      continue;
    }
    throw new WeirError(ErrorCode.InvalidOption, `NATS ${where(field)}: not supported by weir (supported: url, ${Object.keys(FIELDS).join(", ")})`);
  }
  const get = (field: string) => {
    const v = (doc as Record<string, unknown>)[field];
    // As the nats CLI's context loader: a leading ~ in a file path is the home directory.
    return typeof v === "string" && v !== "" ? (PATH_FIELDS.has(field) ? expandHome(v, env) : v) : undefined;
  };
  // As the nats CLI: a context without a url means the default server, not weir's embedded one.
  const url = get("url") ?? "nats://127.0.0.1:4222";
  const base = parseServers(url, url === get("url") ? where("url") : `context "${name}" (no url: the nats CLI's default)`);
  const values: Record<string, unknown> = { ...base.values };
  const origins: Partial<Record<SettingName, string>> = { ...base.origin };
  for (const [setting, field] of Object.entries(FIELDS) as Array<[Exclude<SettingName, "servers">, string]>) {
    const v = get(field);
    if (v === undefined) continue;
    values[setting] = v;
    origins[setting] = where(field);
  }
  return { values, origin: origins };
}

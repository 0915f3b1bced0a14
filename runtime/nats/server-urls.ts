// Server URLs and the credentials in them: the one place a URL is parsed for user/password or a token,
// and the one way a URL is shown (`redactUrl`). Also the shape of one source of connection settings.

import { ErrorCode, WeirError } from "../core/errors.ts";

// `tls` is "required" when the job option names a `tls` object (even `{}`: TLS with the system's CAs, as nats.js reads it).
export const SettingNames = ["servers", "user", "password", "token", "creds", "nkey", "ca", "cert", "key", "tls"] as const;
export type SettingName = (typeof SettingNames)[number];
export type Values = { servers?: readonly string[] } & { [K in Exclude<SettingName, "servers">]?: string };

/** One source's settings before merging; `origin` names where each came from, for error messages. */
export interface NatsLayer {
  readonly values: Values;
  readonly origin: Readonly<Partial<Record<SettingName, string>>>;
  /** The context this source names: read and placed right below it. */
  readonly context?: { readonly name: string; readonly origin: string };
}


/** `nats://alice:***@host:4222`, `nats://***@host:4222` (a token): the one way a URL is shown or stored. */
export function redactUrl(url: string): string {
  return url.split(",").map((one) => one.trim().replace(/^([a-z][a-z0-9+.-]*:\/\/)?([^/]*)@/i, (_all, scheme: string | undefined, info: string) => {
    const colon = info.indexOf(":");
    return `${scheme ?? ""}${colon >= 0 ? `${info.slice(0, colon)}:***` : "***"}@`;
  })).join(",");
}

/** The servers as a user reads them: with the user shown and the password masked when there is one. */
export function describeServers(s: { readonly servers: readonly string[]; readonly user?: string; readonly token?: string }): string {
  const info = s.user !== undefined ? `${s.user}:***@` : s.token !== undefined ? "***@" : "";
  return s.servers.map((u) => u.replace(/^([a-z][a-z0-9+.-]*:\/\/)?/i, (scheme) => `${scheme}${info}`)).join(",");
}

/** Splits a comma-separated server list and takes user/password or a token out of the URLs (the client ignores them there). */
export function parseServers(list: string | readonly string[], origin: string): NatsLayer {
  const urls = (typeof list === "string" ? list.split(",") : list.flatMap((u) => u.split(","))).map((u) => u.trim()).filter(Boolean);
  const values: { -readonly [K in keyof Values]: Values[K] } = {};
  const servers: string[] = [];
  for (const raw of urls) {
    const m = /^([a-z][a-z0-9+.-]*:\/\/)?([^/]*)@(.*)$/i.exec(raw);
    if (!m) { servers.push(raw); continue; }
    servers.push(`${m[1] ?? ""}${m[3]}`);
    const [name, pass] = splitUserInfo(m[2]!, origin);
    if (values.user !== undefined || values.token !== undefined) {
      // The client has one set of credentials for all its servers: a second, different set would be ignored.
      if (pass !== undefined ? values.user !== name || values.password !== pass : values.token !== name) {
        throw new WeirError(ErrorCode.InvalidOption, `${origin}: the server URLs carry different credentials; the NATS client uses one set for every server, so give the same in each URL (or set them once apart from the URLs)`);
      }
      continue;
    }
    // As the nats CLI and nats.go read a URL: user:password, or a lone token.
    if (pass !== undefined) { values.user = name; values.password = pass; } else values.token = name;
  }
  if (servers.length === 0) throw new WeirError(ErrorCode.InvalidOption, `${origin}: no server URL given`);
  values.servers = servers;
  const origins: Partial<Record<SettingName, string>> = { servers: origin };
  for (const k of ["user", "password", "token"] as const) if (values[k] !== undefined) origins[k] = `${origin} (in the URL)`;
  return { values, origin: origins };
}

function splitUserInfo(info: string, origin: string): [string, string | undefined] {
  const colon = info.indexOf(":");
  const decode = (s: string) => {
    try { return decodeURIComponent(s); } catch { throw new WeirError(ErrorCode.InvalidOption, `${origin}: the credentials in the URL are not valid percent-encoding`); }
  };
  return colon < 0 ? [decode(info), undefined] : [decode(info.slice(0, colon)), decode(info.slice(colon + 1))];
}


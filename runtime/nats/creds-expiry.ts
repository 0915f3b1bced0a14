// When the server refuses a creds file's user, whether its JWT has expired: the server only says
// "Authorization Violation", which names neither the file nor the reason.

import { readFileSync } from "node:fs";

/** "; the user JWT in FILE (from ORIGIN) expired at <ISO time>", or "" (not expired, or unreadable). */
export function credsExpiryHint(file: string, origin: string, now = Date.now()): string {
  try {
    const jwt = /-----BEGIN NATS USER JWT-----\s*([A-Za-z0-9_.-]+)/.exec(readFileSync(file, "utf8"))?.[1];
    const claims = jwt?.split(".")[1];
    if (!claims) return "";
    const exp = (JSON.parse(Buffer.from(claims, "base64url").toString("utf8")) as { exp?: unknown }).exp;
    return typeof exp === "number" && exp * 1000 <= now ? `; the user JWT in ${file} (from ${origin}) expired at ${new Date(exp * 1000).toISOString()}` : "";
  } catch {
    return "";
  }
}

// The one reversible encoding of strings into NATS KV keys, for keyed state (state/backends/jetstream-kv/
// keys.ts) and for `Sinks.kv` (runtime/sinks/kv-keys.ts). A token keeps [A-Za-z0-9_-]; any other
// character becomes "=" and the hex of its UTF-8 bytes ("user 1" → "user=201", "\"a\"" → "=22a=22").
// Encoded tokens never contain "." "/" "*" ">" "=" unescaped, so decoding is exact.

const SAFE = /^[A-Za-z0-9_-]+$/;
const UNSAFE_CHAR = /[^A-Za-z0-9_-]/gu;
const ESCAPE = /(?:=[0-9A-F]{2})+/g;

function escapeChar(c: string): string {
  const code = c.charCodeAt(0);
  if (code < 0x80) return `=${code < 16 ? "0" : ""}${code.toString(16).toUpperCase()}`;
  let out = "";
  for (const b of Buffer.from(c, "utf8")) out += `=${b < 16 ? "0" : ""}${b.toString(16).toUpperCase()}`;
  return out;
}

/** One KV key token for any string ("" gives "": callers that need a token reject it first). */
export function encodeKeyToken(s: string): string {
  if (SAFE.test(s)) return s;
  // Fast path for the most common state key id, the JSON of a plain string: "user-1" → =22user-1=22.
  if (s.length > 2 && s.charCodeAt(0) === 34 && s.charCodeAt(s.length - 1) === 34) {
    const inner = s.slice(1, -1);
    if (SAFE.test(inner)) return `=22${inner}=22`;
  }
  return s.replace(UNSAFE_CHAR, escapeChar);
}

/** The string a token (or a key of tokens: "." and "/" pass through) encodes. */
export function decodeKeyTokens(encoded: string): string {
  return encoded.replace(ESCAPE, (run) => Buffer.from(run.replaceAll("=", ""), "hex").toString("utf8"));
}

/**
 * A whole KV key for a string that may itself be hierarchical ("orders.eu/42"): each "."-separated
 * part and "/"-separated piece is one token, so keys NATS allows as they are stay readable; a key with
 * an empty part ("a..b", ".x") is one token with its dots escaped; "" is "=" (no token decodes to it).
 */
export function encodeKey(s: string): string {
  if (s === "") return "=";
  const parts = s.split(".");
  if (parts.some((p) => p === "")) return encodeKeyToken(s);
  return parts.map((p) => p.split("/").map(encodeKeyToken).join("/")).join(".");
}

export function decodeKey(stored: string): string {
  return stored === "=" ? "" : decodeKeyTokens(stored);
}
